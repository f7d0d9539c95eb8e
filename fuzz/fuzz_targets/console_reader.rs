//! The app console's line reader (`device_fw::app::Console::read_line`) on bytes in
//! fuzz-chosen read sizes, then every line through the command parser.
//!
//! Input: number of split sizes (1), the sizes, then the bytes.
//!
//! Asserts: no panic; the lines it returns are exactly those of a reference splitter (CR
//! or LF ends a line, blank lines skipped, a line longer than the buffer reported as too
//! long and dropped to its end): no byte lost, repeated or moved between lines; a line
//! never exceeds the buffer.
#![no_main]

use device_fw::app::{Console, Input};
use device_fw::wire::console::{Command, MAX_COMMAND_LINE};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::{Bytes, Splits, run};

struct Cable<'a> {
    data: &'a [u8],
    splits: Splits,
}

impl ErrorType for Cable<'_> {
    type Error = ErrorKind;
}

impl Read for Cable<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = self.splits.next(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Cable<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Got {
    Line(Vec<u8>),
    TooLong,
}

fn reference(data: &[u8], cap: usize) -> Vec<Got> {
    let (mut out, mut cur, mut over) = (Vec::new(), Vec::new(), false);
    for &b in data {
        if b == b'\r' || b == b'\n' {
            if std::mem::take(&mut over) {
                out.push(Got::TooLong);
            } else if !cur.is_empty() {
                out.push(Got::Line(std::mem::take(&mut cur)));
            }
            cur.clear();
        } else if cur.len() < cap {
            cur.push(b);
        } else {
            over = true;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let n = usize::from(b.u8() % 16);
    let splits = Splits::new(b.take(n));
    let bytes = b.rest();
    let mut cable = Cable { data: bytes, splits };
    let mut console = Console::new(&mut cable);
    let cap = console.line.len();
    assert!(cap >= MAX_COMMAND_LINE);
    let got = run(
        async {
            let mut got = Vec::new();
            loop {
                match console.read_line().await {
                    Input::Line(n) => {
                        assert!(n <= cap, "line longer than the buffer");
                        let line = &console.line[..n];
                        let _ = Command::parse(line);
                        got.push(Got::Line(line.to_vec()));
                    }
                    Input::TooLong => got.push(Got::TooLong),
                    Input::Closed => break got,
                }
                assert!(got.len() <= bytes.len() + 1, "more lines than bytes");
            }
        },
        100_000,
    )
    .expect("a cable that always answers");
    assert_eq!(got, reference(bytes, cap));
});
