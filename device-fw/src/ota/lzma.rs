//! An LZMA decoder for one segment of a compressed image ([`crate::wire::compressed`]),
//! whose dictionary is the image already written to the slot.
//!
//! Each segment is a raw LZMA stream (no header, no end marker) with the fixed properties
//! [`LC`], [`LP`], [`PB`], and the whole image before it as its preset dictionary: the
//! probabilities, the state and the repeated distances start afresh at every segment, and
//! only the dictionary crosses the cut. The dictionary is the slot itself
//! ([`super::window`]), so a power cut costs at most the segment it hit, and the decoder's
//! RAM is its probabilities ([`LzmaProbs`], [`LZMA_PROBS_BYTES`]) and a copy buffer on the
//! stack of the call. LZMA's adaptive range coding is what takes the compressed form under
//! DEFLATE's Huffman codes on code (docs/fewer-bytes.md).
//!
//! The decoding follows the LZMA specification of the LZMA SDK (`LzmaSpec.cpp`, Igor
//! Pavlov, public domain), restricted to those properties and to a known output length.
//! Every distance, length and the range coder's state are checked: hostile input ends in an
//! [`LzmaError`], never a panic nor a byte written past the block.

use super::window::{History, Output, WindowError};

/// Literal context bits: none. The literal coder's probabilities are 0x300 << (lc + lp),
/// so 1.5 KiB here against 12 KiB for xz's default lc=3; on firmware it costs 0.1 % of
/// the compressed size (measured in docs/fewer-bytes.md).
pub const LC: u32 = 0;
/// Literal position bits.
pub const LP: u32 = 0;
/// Position bits: RISC-V code is mostly 4-byte instructions.
pub const PB: u32 = 2;
/// The properties byte these make in an `.lzma` header, `(pb * 5 + lp) * 9 + lc`.
pub const PROPERTIES: u8 = ((PB * 5 + LP) * 9 + LC) as u8;

const POS_STATES: usize = 1 << PB;
const LITERAL_PROBS: usize = 0x300 << (LC + LP);
const STATES: usize = 12;
const LEN_TO_POS_STATES: usize = 4;
const END_POS_MODEL_INDEX: u32 = 14;
const FULL_DISTANCES: usize = 128;
const ALIGN_BITS: u32 = 4;
const MATCH_MIN_LEN: usize = 2;
const PROB_INIT: u16 = 1 << 10;
const PROB_BITS: u32 = 11;
const MOVE_BITS: u32 = 5;
const TOP: u32 = 1 << 24;

/// Why a segment did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LzmaError<E> {
    #[error("compressed data ended inside the segment")]
    InputEnded,
    #[error("compressed data does not start a range coder (first byte not 0)")]
    BadStart,
    #[error("the range coder's state is corrupt")]
    Corrupt,
    #[error("compressed data has bytes after the segment's image")]
    TrailingBytes,
    #[error("compressed data carries an end marker, which this form does not use")]
    EndMarker,
    #[error("a match reaches before the start of the image")]
    DistanceTooFar,
    #[error("the segment decodes to more bytes than its block holds")]
    Overrun,
    #[error("flash read failed: {0:?}")]
    History(E),
}

impl<E> From<WindowError<E>> for LzmaError<E> {
    fn from(e: WindowError<E>) -> Self {
        match e {
            WindowError::DistanceTooFar => LzmaError::DistanceTooFar,
            WindowError::Overrun => LzmaError::Overrun,
            WindowError::History(e) => LzmaError::History(e),
        }
    }
}

// The model is one array of probabilities, as in the specification, so that resetting it
// at every segment is one fill (a struct of arrays cost the chip hundreds of bytes of
// stores). Where each coder's probabilities start:
const LITERAL: usize = 0;
const IS_MATCH: usize = LITERAL + LITERAL_PROBS;
const IS_REP: usize = IS_MATCH + STATES * POS_STATES;
const IS_REP_G0: usize = IS_REP + STATES;
const IS_REP_G1: usize = IS_REP_G0 + STATES;
const IS_REP_G2: usize = IS_REP_G1 + STATES;
const IS_REP0_LONG: usize = IS_REP_G2 + STATES;
const POS_SLOT: usize = IS_REP0_LONG + STATES * POS_STATES;
const POS_SPECIAL: usize = POS_SLOT + (1 << 6) * LEN_TO_POS_STATES;
const ALIGN: usize = POS_SPECIAL + 1 + FULL_DISTANCES - END_POS_MODEL_INDEX as usize;
const LEN: usize = ALIGN + (1 << ALIGN_BITS);
const REP_LEN: usize = LEN + LEN_PROBS;
const PROBS: usize = REP_LEN + LEN_PROBS;
// A length coder: choice, choice 2, then low and mid (3 bits per position state) and high
// (8 bits).
const LEN_CHOICE2: usize = 1;
const LEN_LOW: usize = 2;
const LEN_MID: usize = LEN_LOW + POS_STATES * (1 << 3);
const LEN_HIGH: usize = LEN_MID + POS_STATES * (1 << 3);
const LEN_PROBS: usize = LEN_HIGH + (1 << 8);

/// The decoder's adaptive model, reset at every segment.
#[derive(Debug, Clone)]
pub struct LzmaProbs([u16; PROBS]);

impl LzmaProbs {
    pub const fn new() -> Self {
        LzmaProbs([PROB_INIT; PROBS])
    }
}

impl Default for LzmaProbs {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes of RAM the decoder's model takes ([`LzmaProbs`]); a test checks it.
pub const LZMA_PROBS_BYTES: usize = core::mem::size_of::<LzmaProbs>();

/// The range decoder over a segment's bytes.
struct RangeDecoder<'a> {
    input: &'a [u8],
    at: usize,
    range: u32,
    code: u32,
}

impl<'a> RangeDecoder<'a> {
    fn new<E>(input: &'a [u8]) -> Result<Self, LzmaError<E>> {
        let head = input.get(..5).ok_or(LzmaError::InputEnded)?;
        if head[0] != 0 {
            return Err(LzmaError::BadStart);
        }
        let code = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if code == u32::MAX {
            return Err(LzmaError::Corrupt);
        }
        Ok(RangeDecoder {
            input,
            at: 5,
            range: u32::MAX,
            code,
        })
    }

    fn normalize<E>(&mut self) -> Result<(), LzmaError<E>> {
        if self.range < TOP {
            let byte = *self.input.get(self.at).ok_or(LzmaError::InputEnded)?;
            self.at += 1;
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(byte);
        }
        Ok(())
    }

    #[inline(never)]
    fn bit<E>(&mut self, prob: &mut u16) -> Result<u32, LzmaError<E>> {
        let bound = (self.range >> PROB_BITS) * u32::from(*prob);
        let bit = if self.code < bound {
            self.range = bound;
            *prob += ((1 << PROB_BITS) - *prob) >> MOVE_BITS;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            *prob -= *prob >> MOVE_BITS;
            1
        };
        self.normalize()?;
        Ok(bit)
    }

    #[inline(never)]
    fn direct_bits<E>(&mut self, count: u32) -> Result<u32, LzmaError<E>> {
        let mut value = 0u32;
        for _ in 0..count {
            self.range >>= 1;
            self.code = self.code.wrapping_sub(self.range);
            let t = 0u32.wrapping_sub(self.code >> 31);
            self.code = self.code.wrapping_add(self.range & t);
            if self.code == self.range {
                return Err(LzmaError::Corrupt);
            }
            self.normalize()?;
            value = (value << 1).wrapping_add(t.wrapping_add(1));
        }
        Ok(value)
    }

    /// A `bits`-bit symbol, most significant bit first, over `probs[1..1 << bits]`.
    #[inline(never)]
    fn tree<E>(&mut self, probs: &mut [u16], bits: u32) -> Result<u32, LzmaError<E>> {
        let mut m = 1usize;
        for _ in 0..bits {
            m = (m << 1) + self.bit(&mut probs[m])? as usize;
        }
        Ok(m as u32 - (1 << bits))
    }

    /// A `bits`-bit symbol, least significant bit first, over `probs[1..1 << bits]`.
    #[inline(never)]
    fn reverse_tree<E>(&mut self, probs: &mut [u16], bits: u32) -> Result<u32, LzmaError<E>> {
        let mut m = 1usize;
        let mut symbol = 0u32;
        for i in 0..bits {
            let bit = self.bit(&mut probs[m])?;
            m = (m << 1) + bit as usize;
            symbol |= bit << i;
        }
        Ok(symbol)
    }

    #[inline(never)]
    /// A match length (minus [`MATCH_MIN_LEN`]) from the length coder at `probs`.
    fn length<E>(&mut self, probs: &mut [u16], pos_state: usize) -> Result<usize, LzmaError<E>> {
        let len = if self.bit(&mut probs[0])? == 0 {
            self.tree(&mut probs[LEN_LOW + pos_state * 8..], 3)?
        } else if self.bit(&mut probs[LEN_CHOICE2])? == 0 {
            8 + self.tree(&mut probs[LEN_MID + pos_state * 8..], 3)?
        } else {
            16 + self.tree(&mut probs[LEN_HIGH..], 8)?
        };
        Ok(len as usize)
    }

    /// A match's distance minus one, for a match of `len` (minus [`MATCH_MIN_LEN`]).
    #[inline(never)]
    fn distance<E>(&mut self, probs: &mut [u16; PROBS], len: usize) -> Result<u32, LzmaError<E>> {
        let len_state = len.min(LEN_TO_POS_STATES - 1);
        let slot = self.tree(&mut probs[POS_SLOT + len_state * (1 << 6)..], 6)?;
        if slot < 4 {
            return Ok(slot);
        }
        let direct = (slot >> 1) - 1;
        let mut distance = (2 | (slot & 1)) << direct;
        if slot < END_POS_MODEL_INDEX {
            let base = (distance - slot) as usize;
            distance += self.reverse_tree(&mut probs[POS_SPECIAL + base..], direct)?;
        } else {
            distance = distance.wrapping_add(self.direct_bits(direct - ALIGN_BITS)? << ALIGN_BITS);
            distance = distance.wrapping_add(self.reverse_tree(&mut probs[ALIGN..], ALIGN_BITS)?);
        }
        Ok(distance)
    }
}

/// Decodes one segment into `out` (its block, exactly `out.len()` bytes), the image's first
/// `before` bytes readable through `history` as the dictionary. The segment must end with
/// the block: no bytes left over and the range coder flushed.
pub async fn lzma_segment<H: History>(
    input: &[u8],
    out: &mut [u8],
    history: &mut H,
    before: u32,
    probs: &mut LzmaProbs,
) -> Result<(), LzmaError<H::Error>> {
    probs.0.fill(PROB_INIT);
    let size = out.len();
    let mut rc = RangeDecoder::new(input)?;
    let mut out = Output::new(out, history, before);
    let mut state = 0usize;
    let mut reps = [0u32; 4];
    let probs = &mut probs.0;
    while out.len() < size {
        let pos_state = out.position() & (POS_STATES - 1);
        if rc.bit(&mut probs[IS_MATCH + state * POS_STATES + pos_state])? == 0 {
            let match_byte = if state >= 7 {
                Some(out.byte_back(reps[0] as usize + 1).await?)
            } else {
                None
            };
            out.push(literal(&mut rc, &mut probs[LITERAL..IS_MATCH], match_byte)?)?;
            state = match state {
                0..=3 => 0,
                4..=9 => state - 3,
                _ => state - 6,
            };
            continue;
        }
        let len = if rc.bit(&mut probs[IS_REP + state])? != 0 {
            if rc.bit(&mut probs[IS_REP_G0 + state])? == 0 {
                if rc.bit(&mut probs[IS_REP0_LONG + state * POS_STATES + pos_state])? == 0 {
                    // A short rep: one byte from the last distance.
                    state = if state < 7 { 9 } else { 11 };
                    let byte = out.byte_back(reps[0] as usize + 1).await?;
                    out.push(byte)?;
                    continue;
                }
            } else {
                let distance = if rc.bit(&mut probs[IS_REP_G1 + state])? == 0 {
                    reps[1]
                } else {
                    let d = if rc.bit(&mut probs[IS_REP_G2 + state])? == 0 {
                        reps[2]
                    } else {
                        let d = reps[3];
                        reps[3] = reps[2];
                        d
                    };
                    reps[2] = reps[1];
                    d
                };
                reps[1] = reps[0];
                reps[0] = distance;
            }
            state = if state < 7 { 8 } else { 11 };
            rc.length(&mut probs[REP_LEN..PROBS], pos_state)?
        } else {
            reps = [0, reps[0], reps[1], reps[2]];
            let len = rc.length(&mut probs[LEN..REP_LEN], pos_state)?;
            state = if state < 7 { 7 } else { 10 };
            reps[0] = rc.distance(probs, len)?;
            if reps[0] == u32::MAX {
                return Err(LzmaError::EndMarker);
            }
            len
        };
        out.copy(reps[0] as usize + 1, len + MATCH_MIN_LEN).await?;
    }
    if rc.code != 0 {
        return Err(LzmaError::Corrupt);
    }
    if rc.at != input.len() {
        return Err(LzmaError::TrailingBytes);
    }
    Ok(())
}

/// A literal: coded alone after a literal, or against `match_byte` (the byte at the last
/// distance) just after a match, where the two tend to agree.
#[inline(never)]
fn literal<E>(rc: &mut RangeDecoder<'_>, probs: &mut [u16], match_byte: Option<u8>) -> Result<u8, LzmaError<E>> {
    let mut symbol = 1usize;
    if let Some(match_byte) = match_byte {
        let mut match_byte = usize::from(match_byte);
        while symbol < 0x100 {
            let match_bit = (match_byte >> 7) & 1;
            match_byte <<= 1;
            let bit = rc.bit(&mut probs[((1 + match_bit) << 8) + symbol])? as usize;
            symbol = (symbol << 1) | bit;
            if match_bit != bit {
                break;
            }
        }
    }
    while symbol < 0x100 {
        symbol = (symbol << 1) | rc.bit(&mut probs[symbol])? as usize;
    }
    Ok((symbol - 0x100) as u8)
}
