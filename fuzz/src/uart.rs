//! A modem UART that answers with raw fuzz bytes.
//!
//! The stream is cut into segments at NUL bytes; each command the driver finishes (a write
//! holding `\r`) releases the next segment, as a modem answers only once asked. Without
//! that, the driver's settle-and-drain after sync would swallow every later reply and the
//! fuzzer would never get past `AT`. A segment is handed out in fuzz-chosen read sizes;
//! when none is released the UART is silent (pending), so the driver's deadlines run out.

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

use crate::Splits;

#[derive(Debug)]
pub struct SegmentUart<'a> {
    segments: core::slice::Split<'a, u8, fn(&u8) -> bool>,
    current: &'a [u8],
    splits: Splits,
    pub written: usize,
    /// Released segments not yet handed out (a command can be finished before the last
    /// answer was read).
    queued: usize,
}

impl<'a> SegmentUart<'a> {
    pub fn new(stream: &'a [u8], splits: Splits) -> Self {
        let is_nul: fn(&u8) -> bool = |b| *b == 0;
        let mut segments = stream.split(is_nul);
        // The first segment is what the modem says before it is asked anything (boot).
        let current = segments.next().unwrap_or_default();
        SegmentUart {
            segments,
            current,
            splits,
            written: 0,
            queued: 0,
        }
    }
}

impl ErrorType for SegmentUart<'_> {
    type Error = ErrorKind;
}

impl Read for SegmentUart<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() && self.queued > 0 {
            self.queued -= 1;
            match self.segments.next() {
                Some(s) => self.current = s,
                None => self.queued = 0,
            }
        }
        if self.current.is_empty() {
            // Silence: never ready; the driver's deadline decides.
            core::future::pending::<()>().await;
        }
        let n = self.splits.next(buf.len()).min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

impl Write for SegmentUart<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.written += buf.len();
        if buf.contains(&b'\r') {
            self.queued += 1;
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
