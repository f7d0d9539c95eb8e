//! The ROM loader emulator's SLIP decoder and request parser (`sim::rom::slip`,
//! `sim::rom::protocol`) on any byte stream.
//!
//! Asserts: no panic; no frame is longer than the decoder's limit (and an over-long one
//! is reported, not returned); a decoded frame re-encodes to a frame that decodes to
//! itself; a parsed request's data lies within its frame and is as long as its size field
//! says; a dropped frame's head is at most 8 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sim::rom::protocol::{HEADER, Request};
use sim::rom::slip::{self, Decoder, FrameError};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(limit) * 8 + 1;
    let mut d = Decoder::new(max);
    for &b in stream {
        match d.push(b) {
            None => {}
            Some(Ok(frame)) => {
                assert!(!frame.is_empty(), "an empty frame was returned");
                assert!(
                    frame.len() <= max,
                    "frame of {} bytes past the limit {max}",
                    frame.len()
                );
                let encoded = slip::encode(&frame);
                let mut again = Decoder::new(max);
                let decoded: Vec<_> = encoded.iter().filter_map(|&b| again.push(b)).collect();
                assert_eq!(decoded, vec![Ok(frame.clone())], "SLIP round trip");
                if let Ok(req) = Request::parse(&frame) {
                    assert!(otactl_fuzz::within(&frame, req.data));
                    assert_eq!(req.data.len(), usize::from(u16::from_le_bytes([frame[2], frame[3]])));
                    assert_eq!(frame.len(), HEADER + req.data.len());
                    for i in 0..req.data.len() / 4 + 1 {
                        let _ = req.word(i);
                    }
                }
            }
            Some(Err(e)) => {
                assert!(e.head().len() <= 8, "error head of {} bytes", e.head().len());
                assert!(matches!(e, FrameError::BadEscape { .. } | FrameError::TooLong { .. }));
            }
        }
    }
});
