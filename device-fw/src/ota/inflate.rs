//! A small DEFLATE (RFC 1951) decoder for one segment of a patch ([`crate::wire::delta`]),
//! whose back-references reach into the image already written to the slot.
//!
//! A patch is raw DEFLATE cut by a sync flush at every segment: each segment starts a
//! fresh block with fresh Huffman tables, and only the 32 KiB window crosses the cut, which
//! is the image before the segment, read back from the slot ([`super::window`]). So the
//! decoder's RAM is the Huffman tables ([`InflateTables`], about 1 KiB) and a 258-byte
//! copy buffer on the stack of the call (miniz_oxide's inflater needs a 32 KiB window of
//! its own and cannot take it from elsewhere).
//!
//! Every length, distance and table is checked: hostile input ends in an
//! [`InflateError`], never a panic nor a byte written past the block.

use super::window::{History, Output, WindowError};

/// Why a segment did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError<E> {
    #[error("compressed data ended inside a block")]
    InputEnded,
    #[error("compressed data has bytes after its last block")]
    TrailingBytes,
    #[error("compressed data has block type 3, which DEFLATE does not define")]
    BadBlockType,
    #[error("a stored block's length does not match its complement")]
    StoredLength,
    #[error("a Huffman code table is over-subscribed or has too many codes")]
    BadTable,
    #[error("a Huffman code that its table does not define")]
    BadCode,
    #[error("a back-reference reaches before the start of the image")]
    DistanceTooFar,
    #[error("the segment decodes to more bytes than its block holds")]
    Overrun,
    #[error("flash read failed: {0:?}")]
    History(E),
}

const MAX_BITS: usize = 15;
const MAX_LCODES: usize = 286;
const MAX_DCODES: usize = 30;
const FIX_LCODES: usize = 288;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
];
/// Order of the code-length code lengths in a dynamic block header.
const CL_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/// A canonical Huffman code as counts per length and symbols in code order (as zlib's
/// `puff` decodes): smaller than lookup tables, and a segment is at most 4 KiB of output.
#[derive(Debug, Clone)]
struct Huffman<const N: usize> {
    count: [u16; MAX_BITS + 1],
    symbol: [u16; N],
}

impl<const N: usize> Huffman<N> {
    const fn new() -> Self {
        Huffman {
            count: [0; MAX_BITS + 1],
            symbol: [0; N],
        }
    }

    /// Builds the code from per-symbol lengths. An incomplete code is accepted (a stream
    /// that uses a missing code fails in [`decode`](Self::decode)); an over-subscribed one
    /// is not.
    fn build<E>(&mut self, lengths: &[u8]) -> Result<(), InflateError<E>> {
        if lengths.len() > N {
            return Err(InflateError::BadTable);
        }
        self.count = [0; MAX_BITS + 1];
        for &len in lengths {
            let len = usize::from(len);
            if len > MAX_BITS {
                return Err(InflateError::BadTable);
            }
            self.count[len] += 1;
        }
        let mut left: i32 = 1;
        for len in 1..=MAX_BITS {
            left = (left << 1) - i32::from(self.count[len]);
            if left < 0 {
                return Err(InflateError::BadTable);
            }
        }
        let mut offsets = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offsets[len + 1] = offsets[len] + self.count[len];
        }
        for (symbol, &len) in lengths.iter().enumerate() {
            if len != 0 {
                let at = &mut offsets[usize::from(len)];
                self.symbol[usize::from(*at)] = symbol as u16;
                *at += 1;
            }
        }
        Ok(())
    }

    fn decode<E>(&self, bits: &mut Bits<'_>) -> Result<u16, InflateError<E>> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS {
            code |= bits.take::<E>(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return Ok(self.symbol[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(InflateError::BadCode)
    }
}

/// The decoder's tables: the whole RAM a segment's decoding needs besides its input and
/// output (and a 258-byte copy buffer on the stack). Kept by the caller so that its size is
/// fixed and visible.
#[derive(Debug, Clone)]
pub struct InflateTables {
    lengths: Huffman<FIX_LCODES>,
    distances: Huffman<MAX_DCODES>,
    code_lengths: [u8; MAX_LCODES + MAX_DCODES],
}

impl InflateTables {
    pub const fn new() -> Self {
        InflateTables {
            lengths: Huffman::new(),
            distances: Huffman::new(),
            code_lengths: [0; MAX_LCODES + MAX_DCODES],
        }
    }
}

impl Default for InflateTables {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes of RAM the decoder's tables take ([`InflateTables`]); a test checks it.
pub const INFLATE_TABLES_BYTES: usize = core::mem::size_of::<InflateTables>();

struct Bits<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl Bits<'_> {
    fn take<E>(&mut self, need: u32) -> Result<u32, InflateError<E>> {
        let mut value = self.buf;
        while self.count < need {
            let byte = *self.input.get(self.pos).ok_or(InflateError::InputEnded)?;
            self.pos += 1;
            value |= u32::from(byte) << self.count;
            self.count += 8;
        }
        self.buf = value >> need;
        self.count -= need;
        Ok(value & ((1u32 << need) - 1))
    }
}

impl<E> From<WindowError<E>> for InflateError<E> {
    fn from(e: WindowError<E>) -> Self {
        match e {
            WindowError::DistanceTooFar => InflateError::DistanceTooFar,
            WindowError::Overrun => InflateError::Overrun,
            WindowError::History(e) => InflateError::History(e),
        }
    }
}

/// Decodes one segment into `out` (its block, at most 4 KiB), the image's first `before`
/// bytes readable through `history`. Returns the bytes decoded. The segment ends at a
/// final block or where its input ends on a block boundary (after a sync flush).
pub async fn inflate_segment<H: History>(
    input: &[u8],
    out: &mut [u8],
    history: &mut H,
    before: u32,
    tables: &mut InflateTables,
) -> Result<usize, InflateError<H::Error>> {
    let mut bits = Bits {
        input,
        pos: 0,
        buf: 0,
        count: 0,
    };
    let mut out = Output::new(out, history, before);
    loop {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => stored(&mut bits, &mut out)?,
            1 => {
                fixed_tables(tables)?;
                codes(&mut bits, &mut out, tables).await?
            }
            2 => {
                dynamic_tables(&mut bits, tables)?;
                codes(&mut bits, &mut out, tables).await?
            }
            _ => return Err(InflateError::BadBlockType),
        }
        if last || (bits.pos == input.len() && bits.count < 8) {
            break;
        }
    }
    if bits.pos != input.len() {
        return Err(InflateError::TrailingBytes);
    }
    Ok(out.len())
}

fn stored<H: History>(bits: &mut Bits<'_>, out: &mut Output<'_, H>) -> Result<(), InflateError<H::Error>> {
    bits.buf = 0;
    bits.count = 0;
    let header = bits.input.get(bits.pos..bits.pos + 4).ok_or(InflateError::InputEnded)?;
    let len = u16::from_le_bytes([header[0], header[1]]);
    let complement = u16::from_le_bytes([header[2], header[3]]);
    if len != !complement {
        return Err(InflateError::StoredLength);
    }
    bits.pos += 4;
    let data = bits
        .input
        .get(bits.pos..bits.pos + usize::from(len))
        .ok_or(InflateError::InputEnded)?;
    out.extend(data)?;
    bits.pos += data.len();
    Ok(())
}

fn fixed_tables<E>(tables: &mut InflateTables) -> Result<(), InflateError<E>> {
    let lengths = &mut tables.code_lengths;
    lengths[..144].fill(8);
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    lengths[280..FIX_LCODES].fill(8);
    tables.lengths.build(&lengths[..FIX_LCODES])?;
    lengths[..MAX_DCODES].fill(5);
    tables.distances.build(&lengths[..MAX_DCODES])
}

fn dynamic_tables<E>(bits: &mut Bits<'_>, tables: &mut InflateTables) -> Result<(), InflateError<E>> {
    let nlen = bits.take(5)? as usize + 257;
    let ndist = bits.take(5)? as usize + 1;
    let ncode = bits.take(4)? as usize + 4;
    if nlen > MAX_LCODES || ndist > MAX_DCODES {
        return Err(InflateError::BadTable);
    }
    let mut cl_lengths = [0u8; 19];
    for &index in &CL_ORDER[..ncode] {
        cl_lengths[index] = bits.take(3)? as u8;
    }
    let mut cl_code = Huffman::<19>::new();
    cl_code.build(&cl_lengths)?;
    let lengths = &mut tables.code_lengths;
    let mut at = 0;
    while at < nlen + ndist {
        let symbol = cl_code.decode(bits)?;
        let (value, repeat) = match symbol {
            0..=15 => (symbol as u8, 1),
            16 => {
                let previous = *lengths[..at].last().ok_or(InflateError::BadTable)?;
                (previous, 3 + bits.take(2)? as usize)
            }
            17 => (0, 3 + bits.take(3)? as usize),
            _ => (0, 11 + bits.take(7)? as usize),
        };
        if at + repeat > nlen + ndist {
            return Err(InflateError::BadTable);
        }
        lengths[at..at + repeat].fill(value);
        at += repeat;
    }
    // No end-of-block code: the block could never end.
    if lengths[256] == 0 {
        return Err(InflateError::BadTable);
    }
    tables.lengths.build(&lengths[..nlen])?;
    tables.distances.build(&lengths[nlen..nlen + ndist])
}

async fn codes<H: History>(
    bits: &mut Bits<'_>,
    out: &mut Output<'_, H>,
    tables: &InflateTables,
) -> Result<(), InflateError<H::Error>> {
    loop {
        let symbol = tables.lengths.decode(bits)?;
        match symbol {
            0..=255 => out.push(symbol as u8)?,
            256 => return Ok(()),
            _ => {
                let index = usize::from(symbol - 257);
                let (&base, &extra) = LEN_BASE
                    .get(index)
                    .zip(LEN_EXTRA.get(index))
                    .ok_or(InflateError::BadCode)?;
                let length = usize::from(base) + bits.take(u32::from(extra))? as usize;
                let index = usize::from(tables.distances.decode(bits)?);
                let (&base, &extra) = DIST_BASE
                    .get(index)
                    .zip(DIST_EXTRA.get(index))
                    .ok_or(InflateError::BadCode)?;
                let distance = usize::from(base) + bits.take(u32::from(extra))? as usize;
                out.copy(distance, length).await?;
            }
        }
    }
}
