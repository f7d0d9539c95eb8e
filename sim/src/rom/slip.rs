//! SLIP framing as the ROM loader uses it (ESP-FORMATS.md §1.1).
//!
//! The decoder is a byte-at-a-time state machine so that the loader can be fed whatever a
//! serial read returns (half a frame, three frames, boot noise) and a hostile host cannot
//! make it allocate without bound: a frame longer than the ROM's receive buffer is dropped
//! whole and reported, as the ROM answers it, instead of being collected.

/// Frame delimiter.
pub const END: u8 = 0xC0;
/// Escape introducer.
pub const ESC: u8 = 0xDB;
/// `ESC ESC_END` stands for `END` inside a frame.
pub const ESC_END: u8 = 0xDC;
/// `ESC ESC_ESC` stands for `ESC` inside a frame.
pub const ESC_ESC: u8 = 0xDD;

/// Appends `payload` to `out` as one frame.
pub fn encode_into(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + payload.len() / 16 + 2);
    out.push(END);
    for &b in payload {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(END);
}

/// `payload` as one frame.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(payload, &mut out);
    out
}

/// What went wrong with a frame; `head` holds its first decoded bytes (at most 8), so the
/// loader can still echo the command byte in its error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// `ESC` followed by something other than `ESC_END`/`ESC_ESC`.
    BadEscape { head: Vec<u8> },
    /// More bytes than the receive buffer holds.
    TooLong { head: Vec<u8> },
}

impl FrameError {
    pub fn head(&self) -> &[u8] {
        match self {
            FrameError::BadEscape { head } | FrameError::TooLong { head } => head,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: everything but `END` is noise.
    Idle,
    InFrame,
    AfterEsc,
    /// The frame is already lost; skip to its closing `END`.
    Discard,
}

/// Streaming decoder.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    buf: Vec<u8>,
    max: usize,
    error: Option<FrameError>,
}

impl Decoder {
    /// A decoder that accepts frames of at most `max` decoded bytes.
    pub fn new(max: usize) -> Self {
        Decoder {
            state: State::Idle,
            buf: Vec::new(),
            max,
            error: None,
        }
    }

    fn head(&self) -> Vec<u8> {
        self.buf[..self.buf.len().min(8)].to_vec()
    }

    /// Whether a frame has begun and not yet ended.
    pub fn in_frame(&self) -> bool {
        self.state != State::Idle
    }

    /// Feeds one byte; returns a finished frame or a frame that had to be dropped.
    ///
    /// Back-to-back delimiters (`C0 C0`) close one frame and open the next; an empty frame
    /// is no frame.
    pub fn push(&mut self, b: u8) -> Option<Result<Vec<u8>, FrameError>> {
        match self.state {
            State::Idle => {
                if b == END {
                    self.buf.clear();
                    self.state = State::InFrame;
                }
                None
            }
            State::InFrame => match b {
                END if self.buf.is_empty() => None,
                END => {
                    self.state = State::Idle;
                    Some(Ok(std::mem::take(&mut self.buf)))
                }
                ESC => {
                    self.state = State::AfterEsc;
                    None
                }
                _ => self.store(b),
            },
            State::AfterEsc => match b {
                ESC_END => {
                    self.state = State::InFrame;
                    self.store(END)
                }
                ESC_ESC => {
                    self.state = State::InFrame;
                    self.store(ESC)
                }
                END => {
                    // The frame ended inside an escape: report it now, nothing follows.
                    self.state = State::Idle;
                    let head = self.head();
                    self.buf.clear();
                    Some(Err(FrameError::BadEscape { head }))
                }
                _ => {
                    self.error = Some(FrameError::BadEscape { head: self.head() });
                    self.buf.clear();
                    self.state = State::Discard;
                    None
                }
            },
            State::Discard => {
                if b == END {
                    self.state = State::Idle;
                    self.error.take().map(Err)
                } else {
                    None
                }
            }
        }
    }

    fn store(&mut self, b: u8) -> Option<Result<Vec<u8>, FrameError>> {
        if self.buf.len() >= self.max {
            self.error = Some(FrameError::TooLong { head: self.head() });
            self.buf.clear();
            self.state = State::Discard;
        } else {
            self.buf.push(b);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        bytes.iter().filter_map(|&b| d.push(b)).collect()
    }

    #[test]
    fn round_trip_with_escapes_and_noise() {
        let payload = [0x01, END, 0x02, ESC, 0x03, ESC, ESC_END];
        let mut wire = b"boot noise\r\n".to_vec();
        encode_into(&payload, &mut wire);
        encode_into(&[0x42], &mut wire);
        let mut d = Decoder::new(64);
        assert_eq!(decode_all(&mut d, &wire), vec![Ok(payload.to_vec()), Ok(vec![0x42])]);
    }

    #[test]
    fn back_to_back_delimiters_are_no_frame() {
        let mut d = Decoder::new(64);
        assert_eq!(decode_all(&mut d, &[END, END, END, 0x07, END]), vec![Ok(vec![0x07])]);
    }

    #[test]
    fn bad_escape_and_overflow_are_reported_once_and_resync() {
        let mut d = Decoder::new(4);
        let got = decode_all(
            &mut d,
            &[
                END, 0x00, 0x08, ESC, 0x11, 0x22, END, END, 1, 2, 3, 4, 5, 6, END, END, 9, END,
            ],
        );
        assert_eq!(
            got,
            vec![
                Err(FrameError::BadEscape { head: vec![0x00, 0x08] }),
                Err(FrameError::TooLong { head: vec![1, 2, 3, 4] }),
                Ok(vec![9]),
            ]
        );
    }

    #[test]
    fn frame_ending_in_an_escape_is_bad() {
        let mut d = Decoder::new(8);
        assert_eq!(
            decode_all(&mut d, &[END, 0x00, 0x0A, ESC, END]),
            vec![Err(FrameError::BadEscape { head: vec![0x00, 0x0A] })]
        );
    }
}
