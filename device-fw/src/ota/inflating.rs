//! Takes the compressed form of an image ([`crate::wire::compressed`]) or a patch from the
//! running image ([`crate::wire::delta`]) and writes the image it decodes to into the slot,
//! a segment (4 KiB of image) at a time. Both forms are cut the same way and share this
//! writer; they differ in their header, their codec (LZMA, [`super::lzma`], or DEFLATE,
//! [`super::inflate`]) and in what a segment decodes to (the block, or the operations that
//! build it from the running slot, [`super::patch`]).
//!
//! A segment's bytes are gathered in RAM as they arrive, in whatever pieces the modem
//! hands over; once whole, it is decoded into a 4 KiB block, with back-references into
//! earlier blocks read from the slot, and the block goes to the [`SlotWriter`] like raw
//! image bytes. Each decoded block ends on a sector boundary, which is the resume point the
//! journal keeps, together with where the next segment starts in the compressed file: after
//! a power cut the download carries on from that segment with nothing but the slot's
//! contents. A dropped connection costs nothing at all, since a part-gathered segment stays
//! in RAM while the next Range request continues the file.
//!
//! RAM beyond the raw data path: [`DECODER_RAM_BYTES`].

use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

use super::engine::{DownloadError, ImageSink, Mark};
use super::inflate::{InflateTables, inflate_segment};
use super::lzma::{LzmaProbs, lzma_segment};
use super::patch::{BASE_CHUNK, apply_segment};
use super::slot::{SECTOR, Slot, SlotWriter};
use super::window::{COPY_BUFFER, History};
use crate::wire::compressed::{self, CompressedError, SEGMENT_PREFIX, SEGMENT_RAW, check_header, segment_raw_len};
use crate::wire::delta::{self, DeltaError};

/// The longest header of either form.
const MAX_HEADER: usize = max(compressed::HEADER_LEN, delta::HEADER_LEN);
/// The longest segment of either form.
const MAX_INPUT: usize = max(compressed::MAX_SEGMENT, delta::MAX_SEGMENT);
/// What a segment inflates to: the block, or the operations that build it.
const MAX_DECODED: usize = max(SEGMENT_RAW, delta::MAX_DECODED);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Which segmented form the writer takes, with its decoder's model: LZMA's probabilities
/// for the compressed form, Huffman tables for a patch. One or the other, so the RAM is
/// the larger of the two (not boxed: no heap).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Form {
    Compressed(LzmaProbs),
    /// A patch from the image in `base` (the running slot), which the header must name.
    Delta {
        base: Slot,
        expected: delta::Header,
        tables: InflateTables,
    },
}

impl Form {
    const fn header_len(&self) -> usize {
        match self {
            Form::Compressed(_) => compressed::HEADER_LEN,
            Form::Delta { .. } => delta::HEADER_LEN,
        }
    }

    const fn max_segment(&self) -> usize {
        match self {
            Form::Compressed(_) => compressed::MAX_SEGMENT,
            Form::Delta { .. } => delta::MAX_SEGMENT,
        }
    }
}

/// The decoder's buffers: a segment's input, what it decodes to, the model.
#[derive(Debug)]
struct Decoder {
    form: Form,
    header: [u8; MAX_HEADER],
    header_have: usize,
    prefix: [u8; SEGMENT_PREFIX],
    prefix_have: usize,
    input: [u8; MAX_INPUT],
    input_have: usize,
    block: [u8; MAX_DECODED],
}

/// RAM the compressed and delta forms need beyond the raw data path (the [`SlotWriter`]
/// and the engine's receive buffers, which both share): the segment buffer, the decoded
/// segment, the model, and the larger of the two stack buffers used one after the other
/// (a back-reference copied out of the slot, base bytes read from the running slot). A
/// test holds it to what `size_of` says.
pub const DECODER_RAM_BYTES: usize = core::mem::size_of::<Decoder>() + max(COPY_BUFFER, BASE_CHUNK) + 16;
const _: () = assert!(DECODER_RAM_BYTES <= 16 * 1024);

/// Reads the image before the current block back from the slot.
struct SlotHistory<'f, F> {
    flash: &'f mut F,
    slot: Slot,
}

impl<F: NorFlash> History for SlotHistory<'_, F> {
    type Error = F::Error;
    async fn read(&mut self, at: u32, buf: &mut [u8]) -> Result<(), F::Error> {
        self.flash.read(self.slot.offset + at, buf).await
    }
}

/// A [`SlotWriter`] behind a decoder of the compressed form.
#[derive(Debug)]
pub struct InflatingWriter<F, const STAGE: usize = 256> {
    writer: SlotWriter<F, STAGE>,
    raw_size: u32,
    fetched: u64,
    decoder: Decoder,
}

impl<F: NorFlash, const STAGE: usize> InflatingWriter<F, STAGE> {
    /// A writer at the start of `slot` and of the compressed file, for an image of
    /// `raw_size` bytes (the signed size).
    pub fn new(flash: F, slot: Slot, raw_size: u32) -> Self {
        Self::resume(flash, slot, raw_size, 0, 0)
    }

    /// Carries on after `written` image bytes already in the slot, the compressed file at
    /// `fetched` (both from a journal [`Mark`]). `written` must be a segment boundary; any
    /// other value (a foreign record) starts over.
    pub fn resume(flash: F, slot: Slot, raw_size: u32, written: u32, fetched: u32) -> Self {
        Self::resume_form(
            flash,
            slot,
            Form::Compressed(LzmaProbs::new()),
            raw_size,
            written,
            fetched,
        )
    }

    /// A writer for a patch ([`crate::wire::delta`]) from the image in `base` (the running
    /// slot, never written), whose header must say what `expected` says (from the signed
    /// manifest); `written` and `fetched` as for [`resume`](Self::resume).
    pub fn resume_delta(flash: F, slot: Slot, base: Slot, expected: delta::Header, written: u32, fetched: u32) -> Self {
        let raw_size = expected.raw_size;
        let form = Form::Delta {
            base,
            expected,
            tables: InflateTables::new(),
        };
        Self::resume_form(flash, slot, form, raw_size, written, fetched)
    }

    fn resume_form(flash: F, slot: Slot, form: Form, raw_size: u32, written: u32, fetched: u32) -> Self {
        let header_len = form.header_len();
        let on_boundary = written > 0
            && (written as usize).is_multiple_of(SEGMENT_RAW)
            && written <= raw_size
            && fetched as usize >= header_len;
        let (written, fetched) = if on_boundary { (written, fetched) } else { (0, 0) };
        let mut writer = SlotWriter::resume(flash, slot, written);
        writer.expect_image_len(u64::from(raw_size));
        InflatingWriter {
            writer,
            raw_size,
            fetched: u64::from(fetched),
            decoder: Decoder {
                form,
                header: [0; MAX_HEADER],
                header_have: if written > 0 { header_len } else { 0 },
                prefix: [0; SEGMENT_PREFIX],
                prefix_have: 0,
                input: [0; MAX_INPUT],
                input_have: 0,
                block: [0; MAX_DECODED],
            },
        }
    }

    /// Image bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.accepted()
    }

    pub fn into_flash(self) -> F {
        self.writer.into_flash()
    }

    /// The error of this writer's form.
    fn form_error(&self, compressed: CompressedError, delta: DeltaError) -> DownloadError<F::Error> {
        match self.decoder.form {
            Form::Compressed(_) => DownloadError::Compressed(compressed),
            Form::Delta { .. } => DownloadError::Patch(super::patch::PatchError::Delta(delta)),
        }
    }

    /// Checks the whole header against what the signed manifest says.
    fn check_header(&self) -> Result<(), DownloadError<F::Error>> {
        let d = &self.decoder;
        match &d.form {
            Form::Compressed(_) => {
                let header: &[u8; compressed::HEADER_LEN] =
                    d.header[..compressed::HEADER_LEN].try_into().expect("header length");
                check_header(header, self.raw_size).map_err(DownloadError::Compressed)
            }
            Form::Delta { expected, .. } => {
                let header: &[u8; delta::HEADER_LEN] = d.header[..delta::HEADER_LEN].try_into().expect("header length");
                delta::Header::parse(header)
                    .and_then(|h| h.check(expected))
                    .map_err(|e| DownloadError::Patch(super::patch::PatchError::Delta(e)))
            }
        }
    }

    /// The segment's length once its prefix is whole.
    fn segment_len(&self) -> usize {
        usize::from(u16::from_le_bytes(self.decoder.prefix))
    }

    /// Decodes the gathered segment and writes its block.
    async fn finish_segment(&mut self, hasher: &mut Sha256) -> Result<Option<Mark>, DownloadError<F::Error>> {
        let before = self.writer.accepted() as u32;
        let index = before / SEGMENT_RAW as u32;
        let expected = segment_raw_len(self.raw_size, index);
        let slot = self.writer.slot();
        let d = &mut self.decoder;
        let mut history = SlotHistory {
            flash: self.writer.flash(),
            slot,
        };
        // The compressed form decodes to the block itself, a patch to its operations.
        match &mut d.form {
            Form::Compressed(probs) => {
                lzma_segment(
                    &d.input[..d.input_have],
                    &mut d.block[..expected],
                    &mut history,
                    before,
                    probs,
                )
                .await
                .map_err(DownloadError::Lzma)?;
            }
            Form::Delta {
                base,
                expected: header,
                tables,
            } => {
                let n = inflate_segment(
                    &d.input[..d.input_have],
                    &mut d.block[..delta::MAX_DECODED],
                    &mut history,
                    before,
                    tables,
                )
                .await
                .map_err(|e| DownloadError::Patch(super::patch::PatchError::Inflate(e)))?;
                let mut base = SlotHistory {
                    flash: self.writer.flash(),
                    slot: *base,
                };
                apply_segment(&mut d.block, n, expected, before, &mut base, header.base_size)
                    .await
                    .map_err(DownloadError::Patch)?;
            }
        }
        let n = expected;
        self.writer.write(&d.block[..n]).await?;
        hasher.update(&d.block[..n]);
        d.prefix_have = 0;
        d.input_have = 0;
        Ok(self.writer.accepted().is_multiple_of(u64::from(SECTOR)).then(|| Mark {
            written: self.writer.programmed(),
            prefix_sha256: hasher.clone().finalize().into(),
            fetched: self.fetched as u32,
        }))
    }
}

impl<F: NorFlash, const STAGE: usize> ImageSink for InflatingWriter<F, STAGE> {
    type Flash = F;

    fn fetched(&self) -> u64 {
        self.fetched
    }

    /// The compressed size does not bound the image: the signed raw size, given at
    /// construction, does.
    fn expect_fetched_len(&mut self, _: u64) {}

    /// Erases the sectors of every block that `data` completes: the length prefixes in it
    /// say which.
    async fn erase_ahead(&mut self, data: &[u8]) -> Result<(), DownloadError<F::Error>> {
        let d = &self.decoder;
        let mut at = d.form.header_len().saturating_sub(d.header_have).min(data.len());
        let (mut prefix, mut prefix_have, mut input_have) = (d.prefix, d.prefix_have, d.input_have);
        let mut raw = self.writer.accepted();
        while at < data.len() {
            if prefix_have < SEGMENT_PREFIX {
                prefix[prefix_have] = data[at];
                prefix_have += 1;
                at += 1;
                continue;
            }
            let len = usize::from(u16::from_le_bytes(prefix));
            let n = (len - input_have.min(len)).min(data.len() - at);
            at += n;
            input_have += n;
            if input_have >= len {
                // Past the image's end (after a short last segment too) a segment adds
                // nothing: it is an error once taken, and nothing past the image is erased.
                if raw < u64::from(self.raw_size) {
                    raw += segment_raw_len(self.raw_size, (raw / SEGMENT_RAW as u64) as u32) as u64;
                }
                (prefix_have, input_have) = (0, 0);
            }
        }
        let ahead = (raw - self.writer.accepted()) as usize;
        Ok(self.writer.erase_ahead(ahead).await?)
    }

    async fn take(&mut self, mut data: &[u8], hasher: &mut Sha256) -> Result<Option<Mark>, DownloadError<F::Error>> {
        let mut mark = None;
        while !data.is_empty() {
            let d = &mut self.decoder;
            let header_len = d.form.header_len();
            let n = if d.header_have < header_len {
                let n = (header_len - d.header_have).min(data.len());
                d.header[d.header_have..d.header_have + n].copy_from_slice(&data[..n]);
                d.header_have += n;
                if d.header_have == header_len {
                    self.check_header()?;
                }
                n
            } else if self.writer.accepted() >= u64::from(self.raw_size) {
                return Err(self.form_error(CompressedError::TrailingBytes, DeltaError::TrailingBytes));
            } else if d.prefix_have < SEGMENT_PREFIX {
                d.prefix[d.prefix_have] = data[0];
                d.prefix_have += 1;
                1
            } else {
                let len = self.segment_len();
                if len > self.decoder.form.max_segment() {
                    return Err(self.form_error(
                        CompressedError::SegmentTooLong { len },
                        DeltaError::SegmentTooLong { len },
                    ));
                }
                let d = &mut self.decoder;
                let n = (len - d.input_have).min(data.len());
                d.input[d.input_have..d.input_have + n].copy_from_slice(&data[..n]);
                d.input_have += n;
                n
            };
            data = &data[n..];
            self.fetched += n as u64;
            let d = &self.decoder;
            if d.header_have == d.form.header_len()
                && d.prefix_have == SEGMENT_PREFIX
                && d.input_have == self.segment_len()
                && let Some(m) = self.finish_segment(hasher).await?
            {
                mark = Some(m);
            }
        }
        Ok(mark)
    }

    async fn finish(&mut self) -> Result<u64, DownloadError<F::Error>> {
        let d = &self.decoder;
        if d.header_have < d.form.header_len()
            || d.prefix_have > 0
            || self.writer.accepted() != u64::from(self.raw_size)
        {
            return Err(self.form_error(CompressedError::Truncated, DeltaError::Truncated));
        }
        Ok(self.writer.finish().await?)
    }

    fn flash(&mut self) -> &mut F {
        self.writer.flash()
    }
}

/// The slot writer for the form a release is fetched in: one type, so the engine's download
/// loop is compiled once for both forms (a second copy cost the chip's image kilobytes).
///
/// Not boxed: the firmware has no heap, and the update holds one writer either way.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum FormWriter<F, const STAGE: usize = 256> {
    Raw(SlotWriter<F, STAGE>),
    Compressed(InflatingWriter<F, STAGE>),
}

impl<F: NorFlash, const STAGE: usize> ImageSink for FormWriter<F, STAGE> {
    type Flash = F;

    fn fetched(&self) -> u64 {
        match self {
            FormWriter::Raw(w) => w.fetched(),
            FormWriter::Compressed(w) => w.fetched(),
        }
    }

    fn expect_fetched_len(&mut self, len: u64) {
        match self {
            FormWriter::Raw(w) => w.expect_fetched_len(len),
            FormWriter::Compressed(w) => w.expect_fetched_len(len),
        }
    }

    async fn erase_ahead(&mut self, data: &[u8]) -> Result<(), DownloadError<F::Error>> {
        match self {
            FormWriter::Raw(w) => ImageSink::erase_ahead(w, data).await,
            FormWriter::Compressed(w) => w.erase_ahead(data).await,
        }
    }

    async fn take(&mut self, data: &[u8], hasher: &mut Sha256) -> Result<Option<Mark>, DownloadError<F::Error>> {
        match self {
            FormWriter::Raw(w) => w.take(data, hasher).await,
            FormWriter::Compressed(w) => w.take(data, hasher).await,
        }
    }

    async fn finish(&mut self) -> Result<u64, DownloadError<F::Error>> {
        match self {
            FormWriter::Raw(w) => ImageSink::finish(w).await,
            FormWriter::Compressed(w) => w.finish().await,
        }
    }

    fn flash(&mut self) -> &mut F {
        match self {
            FormWriter::Raw(w) => w.flash(),
            FormWriter::Compressed(w) => w.flash(),
        }
    }
}
