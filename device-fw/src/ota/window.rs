//! The block a segment decodes into, and the image before it, which the decoders of the
//! compressed form ([`super::lzma`]) and of patches ([`super::inflate`]) both refer back
//! into. An ordinary decoder keeps that history (its dictionary or window) in RAM; here it
//! is the slot itself: a reference into the current 4 KiB block is served from RAM, one
//! that reaches further back is read from flash through [`History`]. That is what lets a
//! download carry on at any segment boundary after a power cut with nothing but what the
//! slot holds, and keeps the decoders' RAM to their tables.

/// Where the image before this block is read from (the slot, on the device).
pub trait History {
    type Error;
    /// Reads `buf.len()` bytes of the image from offset `at`.
    async fn read(&mut self, at: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// Why a byte could not go into the block or be fetched from behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError<E> {
    /// A reference to before the image's first byte.
    DistanceTooFar,
    /// More bytes than the block holds.
    Overrun,
    /// The flash read failed.
    History(E),
}

/// Longest run copied out of flash in one read: DEFLATE's longest match (LZMA's, 273, is
/// read in two).
pub const COPY_BUFFER: usize = 258;

/// The block being decoded: its bytes so far, and the image before it.
pub(crate) struct Output<'o, H> {
    buf: &'o mut [u8],
    len: usize,
    history: &'o mut H,
    /// Image bytes before this block (all in the slot).
    before: u32,
    /// The byte in the slot just past the last copy's source, read with it: LZMA codes the
    /// literal after a match against that byte, so this saves a flash read per match.
    after_copy: Option<(usize, u8)>,
}

impl<'o, H: History> Output<'o, H> {
    /// An empty block that decodes into `buf`, after the image's first `before` bytes.
    pub fn new(buf: &'o mut [u8], history: &'o mut H, before: u32) -> Self {
        Output {
            buf,
            len: 0,
            history,
            before,
            after_copy: None,
        }
    }

    /// Bytes of the block decoded so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Position in the image of the next byte.
    pub const fn position(&self) -> usize {
        self.before as usize + self.len
    }

    /// Room left in the block.
    pub const fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    pub fn push(&mut self, byte: u8) -> Result<(), WindowError<H::Error>> {
        *self.buf.get_mut(self.len).ok_or(WindowError::Overrun)? = byte;
        self.len += 1;
        Ok(())
    }

    /// Appends `bytes` as they stand (a stored block).
    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), WindowError<H::Error>> {
        let dest = self
            .buf
            .get_mut(self.len..self.len + bytes.len())
            .ok_or(WindowError::Overrun)?;
        dest.copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// The byte `distance` bytes back from the next one (1: the last byte).
    pub async fn byte_back(&mut self, distance: usize) -> Result<u8, WindowError<H::Error>> {
        let here = self.position();
        if distance == 0 || distance > here {
            return Err(WindowError::DistanceTooFar);
        }
        let from = here - distance;
        let before = self.before as usize;
        if from >= before {
            return Ok(self.buf[from - before]);
        }
        if let Some((at, byte)) = self.after_copy
            && at == from
        {
            return Ok(byte);
        }
        let mut byte = [0u8; 1];
        self.history
            .read(from as u32, &mut byte)
            .await
            .map_err(WindowError::History)?;
        Ok(byte[0])
    }

    /// Appends `length` bytes copied from `distance` bytes back.
    pub async fn copy(&mut self, distance: usize, length: usize) -> Result<(), WindowError<H::Error>> {
        let here = self.position();
        if distance == 0 || distance > here {
            return Err(WindowError::DistanceTooFar);
        }
        if length > self.room() {
            return Err(WindowError::Overrun);
        }
        let mut from = here - distance;
        let mut left = length;
        let before = self.before as usize;
        while from < before && left > 0 {
            let n = left.min(before - from).min(COPY_BUFFER - 1);
            // One byte more when the slot has it: the next literal's match byte.
            let extra = usize::from(n == left && from + n < before);
            let mut read = [0u8; COPY_BUFFER];
            self.history
                .read(from as u32, &mut read[..n + extra])
                .await
                .map_err(WindowError::History)?;
            if extra == 1 {
                self.after_copy = Some((from + n, read[n]));
            }
            self.buf[self.len..self.len + n].copy_from_slice(&read[..n]);
            self.len += n;
            from += n;
            left -= n;
        }
        // Byte by byte: source and destination overlap when the distance is shorter than
        // the length (a run).
        for _ in 0..left {
            self.buf[self.len] = self.buf[from - before];
            self.len += 1;
            from += 1;
        }
        Ok(())
    }
}
