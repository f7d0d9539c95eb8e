//! FLASH_DEFL_DATA's zlib stream inflated as it arrives, block by block, into the 32 KiB
//! window the ROM's and the stub's tinfl use, so a stream that needs more (or is broken)
//! fails here as it would on the chip.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use super::protocol::RomError;

/// The inflate window the ROM's tinfl uses.
const DICT: usize = 32 * 1024;

/// Streaming zlib inflate into a 32 KiB window, as the ROM's tinfl runs.
pub struct Inflater {
    decomp: DecompressorOxide,
    dict: Vec<u8>,
    dict_ofs: usize,
    /// Inflated bytes not yet programmed (programs are whole words).
    pub pending: Vec<u8>,
    pub done: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("pending", &self.pending.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    pub fn new() -> Box<Inflater> {
        Box::new(Inflater {
            decomp: DecompressorOxide::new(),
            dict: vec![0; DICT],
            dict_ofs: 0,
            pending: Vec::new(),
            done: false,
        })
    }

    /// Inflates `input` onto `pending`.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), RomError> {
        if self.done {
            return if input.is_empty() {
                Ok(())
            } else {
                Err(RomError::Inflate)
            };
        }
        let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
            | inflate_flags::TINFL_FLAG_HAS_MORE_INPUT
            | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32;
        loop {
            let (status, used, produced) = decompress(&mut self.decomp, input, &mut self.dict, self.dict_ofs, flags);
            input = &input[used..];
            self.pending
                .extend_from_slice(&self.dict[self.dict_ofs..self.dict_ofs + produced]);
            self.dict_ofs = (self.dict_ofs + produced) & (DICT - 1);
            match status {
                TINFLStatus::HasMoreOutput => continue,
                TINFLStatus::NeedsMoreInput if input.is_empty() => return Ok(()),
                TINFLStatus::NeedsMoreInput => continue,
                TINFLStatus::Done => {
                    self.done = true;
                    // Bytes after the end of the zlib stream are not part of any image.
                    return if input.is_empty() {
                        Ok(())
                    } else {
                        Err(RomError::Inflate)
                    };
                }
                TINFLStatus::Adler32Mismatch => return Err(RomError::InflateAdler),
                _ => return Err(RomError::Inflate),
            }
        }
    }
}
