//! Test support for the modem driver: a scripted fake UART and a clock on tokio's paused
//! time. Included by the `modem_*` tests with `#[path = "modem_support.rs"] mod support;`.
//!
//! A script is a list of steps played in order:
//! - `out(bytes)`: modem output, handed to the driver in reads of at most `chunk` bytes;
//! - `expect(bytes)`: the driver must write exactly these bytes next (a mismatch panics,
//!   naming what was expected and what came); output after it is held until it is written;
//! - `sleep(us)`: output pauses (virtual time);
//! - `deaf()` / `hear()`: between these, writes are swallowed (a modem still booting).
//!
//! Writes may run ahead of unread output (a notice the driver has not read yet): they are
//! matched against the next `expect` step.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use device_fw::clock::Clock;
use device_fw::modem::{Dialect, Modem, ModemConfig};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use tokio::time::Instant;

/// Clock on tokio's (paused) time.
#[derive(Debug, Clone)]
pub struct TestClock {
    base: Instant,
}

impl TestClock {
    pub fn new() -> Self {
        Self { base: Instant::now() }
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    async fn sleep_us(&self, us: u64) {
        tokio::time::sleep(Duration::from_micros(us)).await
    }
}

#[derive(Debug)]
enum Step {
    Out(Vec<u8>, usize),
    Expect(Vec<u8>, usize),
    Sleep(u64, Option<Instant>),
    Deaf(bool),
}

/// The script and what happened to it.
#[derive(Debug, Default)]
pub struct State {
    steps: VecDeque<Step>,
    deaf: bool,
    chunk: usize,
    /// Everything the driver wrote, in order.
    pub written: Vec<u8>,
    /// What the driver wrote while the modem was deaf.
    pub swallowed: Vec<u8>,
    /// Sizes of the reads handed out.
    pub reads: usize,
}

impl State {
    /// Pops leading zero-time control steps.
    fn settle_front(&mut self) {
        loop {
            match self.steps.front() {
                Some(Step::Deaf(d)) => {
                    self.deaf = *d;
                    self.steps.pop_front();
                }
                Some(Step::Expect(e, n)) if *n == e.len() => {
                    self.steps.pop_front();
                }
                _ => return,
            }
        }
    }
}

enum Poll {
    Ready(usize),
    Until(Instant),
    Pending,
}

/// Builds a script.
#[derive(Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
    chunk: Option<usize>,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Modem output.
    pub fn out(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.steps.push(Step::Out(bytes.as_ref().to_vec(), 0));
        self
    }

    /// Bytes the driver must write next.
    pub fn expect(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.steps.push(Step::Expect(bytes.as_ref().to_vec(), 0));
        self
    }

    /// `cmd` + `\r` expected, then `reply` output.
    pub fn cmd(self, cmd: &str, reply: impl AsRef<[u8]>) -> Self {
        self.expect(format!("{cmd}\r")).out(reply)
    }

    /// `cmd` expected, answered with `\r\nOK\r\n` (echo off).
    pub fn ok(self, cmd: &str) -> Self {
        self.cmd(cmd, "\r\nOK\r\n")
    }

    /// Output pauses for `us` microseconds.
    pub fn sleep(mut self, us: u64) -> Self {
        self.steps.push(Step::Sleep(us, None));
        self
    }

    pub fn deaf(mut self) -> Self {
        self.steps.push(Step::Deaf(true));
        self
    }

    pub fn hear(mut self) -> Self {
        self.steps.push(Step::Deaf(false));
        self
    }

    /// Appends another script's steps.
    pub fn then(mut self, other: Script) -> Self {
        self.steps.extend(other.steps);
        self
    }

    /// Hands out at most `n` bytes per read (1 = every byte boundary is a split).
    pub fn chunk(mut self, n: usize) -> Self {
        self.chunk = Some(n);
        self
    }

    pub fn build(self) -> FakeUart {
        FakeUart(Rc::new(RefCell::new(State {
            steps: self.steps.into(),
            chunk: self.chunk.unwrap_or(64),
            ..State::default()
        })))
    }
}

/// The fake modem UART. Clones share the script, so a test can keep one to inspect.
#[derive(Debug, Clone)]
pub struct FakeUart(pub Rc<RefCell<State>>);

impl FakeUart {
    /// Panics unless every step was played.
    pub fn assert_done(&self) {
        let mut s = self.0.borrow_mut();
        s.settle_front();
        assert!(
            s.steps.is_empty(),
            "script not finished; next steps: {:?}\nwritten so far: {}",
            s.steps.iter().take(3).map(show_step).collect::<Vec<_>>(),
            show(&s.written)
        );
    }

    /// Everything written, as text (bytes escaped).
    pub fn written(&self) -> String {
        show(&self.0.borrow().written)
    }

    /// How often `needle` was written.
    pub fn count_written(&self, needle: &str) -> usize {
        let s = self.0.borrow();
        s.written
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    }

    fn poll_read(&self, buf: &mut [u8]) -> Poll {
        let mut guard = self.0.borrow_mut();
        let s = &mut *guard;
        loop {
            s.settle_front();
            let chunk = s.chunk;
            match s.steps.front_mut() {
                None | Some(Step::Expect(..)) => return Poll::Pending,
                Some(Step::Deaf(_)) => unreachable!(),
                Some(Step::Sleep(us, until)) => {
                    let t = *until.get_or_insert_with(|| Instant::now() + Duration::from_micros(*us));
                    if Instant::now() < t {
                        return Poll::Until(t);
                    }
                    s.steps.pop_front();
                }
                Some(Step::Out(bytes, pos)) => {
                    let n = chunk.min(buf.len()).min(bytes.len() - *pos);
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    if *pos == bytes.len() {
                        s.steps.pop_front();
                        s.settle_front();
                    }
                    if n == 0 {
                        continue;
                    }
                    s.reads += 1;
                    return Poll::Ready(n);
                }
            }
        }
    }
}

impl ErrorType for FakeUart {
    type Error = ErrorKind;
}

impl Read for FakeUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.poll_read(buf) {
                Poll::Ready(n) => return Ok(n),
                Poll::Until(t) => tokio::time::sleep_until(t).await,
                Poll::Pending => std::future::pending::<()>().await,
            }
        }
    }
}

impl Write for FakeUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let mut guard = self.0.borrow_mut();
        let s = &mut *guard;
        s.written.extend_from_slice(buf);
        s.settle_front();
        if s.deaf {
            s.swallowed.extend_from_slice(buf);
            return Ok(buf.len());
        }
        for &b in buf {
            let Some(Step::Expect(exp, n)) = s
                .steps
                .iter_mut()
                .find(|st| matches!(st, Step::Expect(e, n) if *n < e.len()))
            else {
                let written = show(&s.written);
                panic!(
                    "unexpected write {:?} (script has no more expected input)\nwritten: {written}",
                    show(buf)
                );
            };
            if exp[*n] != b {
                let (exp, n) = (exp.clone(), *n);
                let written = show(&s.written);
                panic!(
                    "driver wrote {:?} where the script expects {:?} (byte {n} of it)\nwritten: {written}",
                    show(buf),
                    show(&exp)
                );
            }
            *n += 1;
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

fn show_step(s: &Step) -> String {
    match s {
        Step::Out(b, p) => format!("out({:?} at {p})", show(b)),
        Step::Expect(b, n) => format!("expect({:?}, {n} matched)", show(b)),
        Step::Sleep(us, _) => format!("sleep({us} us)"),
        Step::Deaf(d) => format!("deaf({d})"),
    }
}

/// Bytes as text, with `\r`, `\n` and non-printables escaped.
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

pub type TestModem = Modem<FakeUart, TestClock>;

pub fn modem(uart: &FakeUart, dialect: Dialect) -> TestModem {
    modem_with(uart, dialect, |_| {})
}

/// A modem whose default configuration `tweak` adjusts.
pub fn modem_with(uart: &FakeUart, dialect: Dialect, tweak: impl FnOnce(&mut ModemConfig)) -> TestModem {
    let mut cfg = ModemConfig::new(dialect, "iot.1nce.net").unwrap();
    tweak(&mut cfg);
    Modem::new(uart.clone(), TestClock::new(), cfg)
}

/// A payload that contains everything a line parser could trip on.
pub fn nasty_payload(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = Vec::with_capacity(len);
    let poison: &[&[u8]] = &[
        b"\r\nOK\r\n",
        b"+CIPRXGET: 1,0\r\n",
        b"\r\nRDY\r\n",
        b"\r\n+CARECV: 5,",
        b"\r\nERROR\r\n",
        b"+IPCLOSE: 0,1\r\n",
        b"+CASTATE: 0,0\r\n",
        b">",
        b"\x00\xff\r",
    ];
    let mut i = 0usize;
    while p.len() < len {
        p.extend_from_slice(poison[i % poison.len()]);
        p.extend((0..=255u8).cycle().skip(i * 7).take(13));
        i += 1;
    }
    p.truncate(len);
    p
}

/// Echo-on sync after boot, the real bytes (`AT\r\r\nOK\r\n`, `ATE0\r\r\nOK\r\n`).
pub fn sync_echo_on() -> Script {
    Script::new()
        .cmd("AT", "AT\r\r\nOK\r\n")
        .cmd("ATE0", "ATE0\r\r\nOK\r\n")
}

/// Bring-up after sync up to the PDP context (`AT+CGDCONT`), both dialects.
pub fn bring_up_pre_attach(dialect: Dialect) -> Script {
    let model = match dialect {
        Dialect::Sim7600 => "SIMCOM_SIM7600G-H",
        _ => "SIM7080G",
    };
    Script::new()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", format!("\r\n{model}\r\n\r\nOK\r\n"))
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\r\n+CSQ: 23,99\r\n\r\nOK\r\n")
        .cmd("AT+COPS?", "\r\n+COPS: 0,0,\"Mint\",7\r\n\r\nOK\r\n")
        .ok("AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"")
}

/// Bring-up after sync, both dialects, ending attached.
pub fn bring_up_rest(dialect: Dialect) -> Script {
    let attach = match dialect {
        Dialect::Sim7600 => Script::new()
            .cmd("AT+NETOPEN", "\r\nOK\r\n")
            .sleep(300_000)
            .out("\r\n+NETOPEN: 0\r\n")
            .ok("AT+CIPRXGET=1"),
        _ => Script::new()
            .cmd("AT+CNACT=0,1", "\r\nOK\r\n")
            .sleep(500_000)
            .out("\r\n+APP PDP: 0,ACTIVE\r\n"),
    };
    bring_up_pre_attach(dialect).then(attach)
}

/// A modem already booted and answering: sync, bring-up.
pub fn up(dialect: Dialect) -> Script {
    sync_echo_on().then(bring_up_rest(dialect))
}

/// SIM7600 link 0 opening to example.com:80.
pub fn open_7600() -> Script {
    Script::new()
        .cmd("AT+CIPOPEN=0,\"TCP\",\"example.com\",80", "\r\nOK\r\n")
        .out("\r\n+CGEV: EPS PDN ACT 1\r\n")
        .sleep(150_000)
        .out("\r\n+CIPOPEN: 0,0\r\n")
}

/// SIM7080 connection 0 opening to example.com:80.
pub fn open_7080() -> Script {
    Script::new().cmd(
        "AT+CAOPEN=0,0,\"TCP\",\"example.com\",80",
        "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n",
    )
}

/// SIM7600 read reply carrying `data` with `rest` left.
pub fn ciprxget(data: &[u8], rest: usize) -> Vec<u8> {
    let mut v = format!("\r\n+CIPRXGET: 2,0,{},{rest}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\nOK\r\n");
    v
}

/// SIM7080 read reply carrying `data`.
pub fn carecv(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return b"\r\n+CARECV: 0\r\n\r\nOK\r\n".to_vec();
    }
    let mut v = format!("\r\n+CARECV: {},", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n\r\nOK\r\n");
    v
}

pub const NO_DATA_7600: &str = "\r\n+IP ERROR: No data\r\n\r\nERROR\r\n";
