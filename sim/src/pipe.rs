//! One direction of a byte stream with a rate, a latency and a receive buffer, in tokio time.
//!
//! The UART between ESP32 and modem and both directions of a TCP connection through the
//! cellular network are all this one mechanism: bytes leave the sender at `rate`, arrive
//! `latency` later, and wait in the receiver's buffer (`capacity` bytes; a full buffer
//! stalls the sender, as TCP flow control does). Readers are woken in batches (a UART RX
//! FIFO threshold, a TCP segment) so a long transfer costs few wake-ups, which keeps
//! virtual-time scenarios fast; the end of every write is delivered without waiting for a
//! batch to fill, as a UART RX idle timeout does.
//!
//! A receiver without flow control ([`lossy_pipe`]) is a UART without
//! RTS/CTS: the sender never waits, and a byte that arrives while the receive FIFO holds
//! `capacity` unread bytes is lost and counted, as the chip's FIFO drops it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::time;

/// How a pipe moves bytes.
#[derive(Debug, Clone, Copy)]
pub struct PipeConfig {
    /// Bytes per second on the wire; `None` delivers a write at once (after `latency`).
    pub bytes_per_sec: Option<f64>,
    /// One-way delay added to every byte.
    pub latency: Duration,
    /// Readers are woken when this many new bytes have arrived (or a write has ended).
    pub batch: usize,
    /// Bytes written but not yet read; a writer waits while the buffer is full.
    pub capacity: usize,
    /// Whether `write` returns only once the last byte has left the sender (a UART driver
    /// that blocks until transmitted) or at once (a TCP send buffer).
    pub blocking_write: bool,
}

impl PipeConfig {
    /// A UART at `baud`, 8N1 (10 bits a byte), with a receive ring of `rx_buffer` bytes.
    pub fn uart(baud: u32, rx_buffer: usize) -> Self {
        PipeConfig {
            bytes_per_sec: Some(f64::from(baud) / 10.0),
            latency: Duration::ZERO,
            batch: 64,
            capacity: rx_buffer,
            blocking_write: true,
        }
    }
}

/// Why a pipe operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PipeError {
    /// The stream was aborted (TCP RST, a NAT that resets); unread data is gone.
    #[error("connection reset")]
    Reset,
    /// The writer end was already closed.
    #[error("pipe closed")]
    Closed,
}

/// Where the stream stands, as its reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeState {
    Open,
    /// The writer closed; bytes still unread remain readable, then EOF.
    Closed,
    Reset,
}

#[derive(Debug)]
struct Segment {
    data: Vec<u8>,
    read: usize,
    /// Arrival of `data[0]` at the reader, in ns since the pipe's epoch.
    first_arrival_ns: u64,
    byte_ns: f64,
    /// The sender's line rate when it was written (`None`: not a rate-bound line).
    sent_at: Option<f64>,
}

impl Segment {
    fn arrival_ns(&self, index: usize) -> u64 {
        self.first_arrival_ns + (index as f64 * self.byte_ns) as u64
    }

    fn arrived_by(&self, now_ns: u64) -> usize {
        if now_ns < self.first_arrival_ns {
            return 0;
        }
        if self.byte_ns == 0.0 {
            return self.data.len();
        }
        let mut n = (((now_ns - self.first_arrival_ns) as f64 / self.byte_ns) as usize + 1).min(self.data.len());
        // Agree with `arrival_ns` to the nanosecond: with a rate whose byte time is not a
        // whole number of ns, float rounding could otherwise hold back a byte whose arrival
        // time has come, and a reader woken for it would wait again at once, for ever.
        while n < self.data.len() && self.arrival_ns(n) <= now_ns {
            n += 1;
        }
        while n > 0 && self.arrival_ns(n - 1) > now_ns {
            n -= 1;
        }
        n
    }
}

#[derive(Debug)]
struct Inner {
    segments: VecDeque<Segment>,
    state: PipeState,
    /// ns since epoch when the sender's line is free again.
    line_free_ns: u64,
    /// Bytes written and not yet read.
    buffered: usize,
    /// Latest arrival of any byte written so far (ns since epoch); the NAT watches this.
    last_arrival_ns: u64,
    /// Writes after this are swallowed (a NAT that forgot the mapping and drops silently).
    blackholed: bool,
    /// The sender's line rate now (a UART can be retuned: `AT+IPR`).
    tx_rate: Option<f64>,
    /// The rate the receiver samples at. Bytes sent at another rate arrive as garbage, as
    /// on a UART whose ends disagree about the baud.
    rx_rate: Option<f64>,
    /// With `drop_when_full`: the bytes that arrived and were kept, unread (the FIFO).
    /// Arrivals move here from `segments` whenever the pipe is looked at; the FIFO only
    /// grows between two reads, so settling late gives the same losses as settling at
    /// every byte.
    fifo: VecDeque<u8>,
    /// Bytes that arrived at a full FIFO and were dropped.
    lost: u64,
}

impl Inner {
    /// Moves every byte arrived by `now_ns` into the FIFO, dropping those that find it full.
    fn settle(&mut self, now_ns: u64, capacity: usize) {
        let rx_rate = self.rx_rate;
        while let Some(seg) = self.segments.front_mut() {
            let arrived = seg.arrived_by(now_ns);
            if arrived > seg.read {
                let room = capacity.saturating_sub(self.fifo.len());
                let keep = (arrived - seg.read).min(room);
                let start = self.fifo.len();
                self.fifo.extend(&seg.data[seg.read..seg.read + keep]);
                if seg.sent_at != rx_rate {
                    garble(self.fifo.make_contiguous()[start..].as_mut());
                }
                let dropped = arrived - seg.read - keep;
                self.lost += dropped as u64;
                self.buffered -= dropped;
                seg.read = arrived;
            }
            if seg.read < seg.data.len() {
                break;
            }
            self.segments.pop_front();
        }
    }
}

#[derive(Debug)]
struct Shared {
    cfg: PipeConfig,
    /// Nothing holds the sender back: bytes arriving at a full buffer are lost (a UART
    /// without RTS/CTS) instead of stalling the sender (RTS/CTS, TCP).
    drop_when_full: bool,
    inner: Mutex<Inner>,
    readable: Notify,
    writable: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("pipe lock poisoned")
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

/// The sending end.
#[derive(Debug, Clone)]
pub struct PipeWriter {
    shared: Arc<Shared>,
}

/// The receiving end.
#[derive(Debug)]
pub struct PipeReader {
    shared: Arc<Shared>,
}

/// A handle that can watch and abort a pipe from outside (the NAT, fault injection).
#[derive(Debug, Clone)]
pub struct PipeControl {
    shared: Arc<Shared>,
}

/// Makes a pipe.
pub fn pipe(cfg: PipeConfig) -> (PipeWriter, PipeReader) {
    make(cfg, false)
}

/// Makes a pipe whose sender is never held back: a byte that arrives while `capacity`
/// bytes wait unread is lost and counted ([`PipeControl::bytes_lost`]), as a UART receive
/// FIFO without RTS/CTS drops it.
pub fn lossy_pipe(cfg: PipeConfig) -> (PipeWriter, PipeReader) {
    make(cfg, true)
}

fn make(cfg: PipeConfig, drop_when_full: bool) -> (PipeWriter, PipeReader) {
    assert!(
        cfg.batch > 0 && cfg.capacity > 0,
        "pipe batch and capacity must be positive"
    );
    let shared = Arc::new(Shared {
        cfg,
        drop_when_full,
        inner: Mutex::new(Inner {
            segments: VecDeque::new(),
            state: PipeState::Open,
            line_free_ns: 0,
            buffered: 0,
            last_arrival_ns: 0,
            blackholed: false,
            tx_rate: cfg.bytes_per_sec,
            rx_rate: cfg.bytes_per_sec,
            fifo: VecDeque::new(),
            lost: 0,
        }),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (PipeWriter { shared: shared.clone() }, PipeReader { shared })
}

impl PipeWriter {
    /// Sends `data`, waiting for buffer space as flow control requires.
    pub async fn write(&self, mut data: &[u8]) -> Result<(), PipeError> {
        let s = &*self.shared;
        while !data.is_empty() {
            let wrote_until_ns = loop {
                let space_wait = s.writable.notified();
                {
                    let mut inner = s.lock();
                    match inner.state {
                        PipeState::Reset => return Err(PipeError::Reset),
                        PipeState::Closed => return Err(PipeError::Closed),
                        PipeState::Open => {}
                    }
                    if inner.blackholed {
                        return Ok(());
                    }
                    let space = if s.drop_when_full {
                        data.len()
                    } else {
                        s.cfg.capacity.saturating_sub(inner.buffered)
                    };
                    if space > 0 {
                        let n = space.min(data.len());
                        let until = Self::enqueue(s, &mut inner, &data[..n]);
                        data = &data[n..];
                        break until;
                    }
                }
                space_wait.await;
            };
            s.readable.notify_one();
            if s.cfg.blocking_write {
                time::sleep_until_ns(wrote_until_ns).await;
            }
        }
        Ok(())
    }

    fn enqueue(s: &Shared, inner: &mut Inner, data: &[u8]) -> u64 {
        let now = s.now_ns();
        let byte_ns = inner.tx_rate.map_or(0.0, |r| 1e9 / r);
        let start = now.max(inner.line_free_ns);
        let latency = s.cfg.latency.as_nanos() as u64;
        let seg = Segment {
            data: data.to_vec(),
            read: 0,
            first_arrival_ns: start + byte_ns as u64 + latency,
            byte_ns,
            sent_at: inner.tx_rate,
        };
        inner.line_free_ns = start + (data.len() as f64 * byte_ns) as u64;
        inner.last_arrival_ns = seg.arrival_ns(data.len() - 1);
        inner.buffered += data.len();
        inner.segments.push_back(seg);
        inner.line_free_ns
    }

    /// Retunes the sender to `bytes_per_sec` (a UART's baud / 10) from the next write on.
    pub fn set_rate(&self, bytes_per_sec: f64) {
        self.shared.lock().tx_rate = Some(bytes_per_sec);
    }

    /// Closes the stream (FIN): what was written stays readable, then the reader sees EOF.
    pub fn close(&self) {
        let mut inner = self.shared.lock();
        if inner.state == PipeState::Open {
            inner.state = PipeState::Closed;
        }
        drop(inner);
        self.shared.readable.notify_one();
    }

    pub fn control(&self) -> PipeControl {
        PipeControl {
            shared: self.shared.clone(),
        }
    }
}

impl PipeControl {
    /// Aborts the stream (RST): unread data is thrown away, both ends see `Reset`.
    pub fn reset(&self) {
        let mut inner = self.shared.lock();
        inner.state = PipeState::Reset;
        inner.segments.clear();
        inner.fifo.clear();
        inner.buffered = 0;
        drop(inner);
        self.shared.readable.notify_one();
        self.shared.writable.notify_waiters();
        self.shared.writable.notify_one();
    }

    /// Swallows every later write (a silently dropping NAT); data already sent still arrives.
    pub fn blackhole(&self) {
        self.shared.lock().blackholed = true;
    }

    /// Whether later writes are swallowed (see [`PipeControl::blackhole`]).
    pub fn is_blackholed(&self) -> bool {
        self.shared.lock().blackholed
    }

    /// When (bench ns) the last byte written so far reaches (reached) the reader.
    pub fn last_arrival_ns(&self) -> u64 {
        self.shared.lock().last_arrival_ns
    }

    pub fn state(&self) -> PipeState {
        self.shared.lock().state
    }

    /// Bytes that arrived at a full receive buffer and were lost (only without flow control).
    pub fn bytes_lost(&self) -> u64 {
        let now = self.shared.now_ns();
        let mut inner = self.shared.lock();
        if self.shared.drop_when_full {
            inner.settle(now, self.shared.cfg.capacity);
        }
        inner.lost
    }
}

impl PipeReader {
    /// Bytes arrived and not yet read.
    pub fn available(&self) -> usize {
        let now = self.shared.now_ns();
        let mut inner = self.shared.lock();
        if self.shared.drop_when_full {
            inner.settle(now, self.shared.cfg.capacity);
            return inner.fifo.len();
        }
        inner
            .segments
            .iter()
            .map(|seg| seg.arrived_by(now).saturating_sub(seg.read))
            .sum()
    }

    /// Reads bytes that have arrived, never waiting. `Ok(0)` means none right now;
    /// use [`PipeReader::state`] to tell an open stream from a closed one.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        let s = &*self.shared;
        let now = s.now_ns();
        let mut inner = s.lock();
        if inner.state == PipeState::Reset {
            return Err(PipeError::Reset);
        }
        if s.drop_when_full {
            inner.settle(now, s.cfg.capacity);
            let n = inner.fifo.len().min(buf.len());
            for (b, byte) in buf.iter_mut().zip(inner.fifo.drain(..n)) {
                *b = byte;
            }
            inner.buffered -= n;
            return Ok(n);
        }
        let rx_rate = inner.rx_rate;
        let mut n = 0;
        while n < buf.len() {
            let Some(seg) = inner.segments.front_mut() else { break };
            let arrived = seg.arrived_by(now);
            if arrived <= seg.read {
                break;
            }
            let take = (arrived - seg.read).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&seg.data[seg.read..seg.read + take]);
            if seg.sent_at != rx_rate {
                garble(&mut buf[n..n + take]);
            }
            seg.read += take;
            n += take;
            if seg.read == seg.data.len() {
                inner.segments.pop_front();
            }
        }
        inner.buffered -= n;
        drop(inner);
        if n > 0 {
            s.writable.notify_one();
        }
        Ok(n)
    }

    /// Retunes the receiver to `bytes_per_sec` (a UART's baud / 10): bytes sent at another
    /// rate, from now on read, are garbage.
    pub fn set_rate(&self, bytes_per_sec: f64) {
        self.shared.lock().rx_rate = Some(bytes_per_sec);
    }

    /// Reads at least one byte, waiting for it. `Ok(0)` is end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.wait().await? {
                return Ok(0);
            }
        }
    }

    /// Waits until a byte can be read. `Ok(false)` is end of stream.
    pub async fn readable(&self) -> Result<bool, PipeError> {
        loop {
            if self.available() > 0 {
                return Ok(true);
            }
            if !self.wait().await? {
                return Ok(false);
            }
        }
    }

    /// Sleeps until more data may be readable. `Ok(false)` at end of stream.
    async fn wait(&self) -> Result<bool, PipeError> {
        let s = &*self.shared;
        let notified = s.readable.notified();
        let wake_ns = {
            let inner = s.lock();
            match inner.state {
                PipeState::Reset => return Err(PipeError::Reset),
                PipeState::Closed if inner.segments.is_empty() => return Ok(false),
                _ => {}
            }
            inner.segments.front().map(|seg| {
                let batch_end = (seg.read + s.cfg.batch).min(seg.data.len()) - 1;
                seg.arrival_ns(batch_end)
            })
        };
        match wake_ns {
            Some(ns) => {
                tokio::select! {
                    _ = notified => {}
                    _ = time::sleep_until_ns(ns) => {}
                }
            }
            None => notified.await,
        }
        Ok(true)
    }

    pub fn state(&self) -> PipeState {
        self.shared.lock().state
    }

    pub fn control(&self) -> PipeControl {
        PipeControl {
            shared: self.shared.clone(),
        }
    }
}

/// What a UART receiver makes of bytes sent at another baud: framing errors and bytes that
/// are not the ones sent. Here: never printable ASCII, so no line of text survives.
fn garble(bytes: &mut [u8]) {
    for b in bytes {
        *b = 0x80 | (*b ^ 0x5a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn uart_delivers_at_baud() {
        time::use_virtual_time();
        let (tx, mut rx) = pipe(PipeConfig::uart(115_200, 4096));
        let t0 = time::now();
        let data = vec![0x55u8; 11_520];
        let writer = tokio::spawn(async move { tx.write(&data).await });
        let mut got = 0;
        let mut buf = [0u8; 512];
        while got < 11_520 {
            got += rx.read(&mut buf).await.unwrap();
        }
        writer.await.unwrap().unwrap();
        let secs = (time::now() - t0).as_secs_f64();
        assert!((secs - 1.0).abs() < 0.0001, "11520 bytes at 115200 baud took {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retuned_uart_is_garbage_until_both_ends_agree_then_runs_at_the_new_rate() {
        time::use_virtual_time();
        let (tx, mut rx) = pipe(PipeConfig::uart(115_200, 4096));
        tx.set_rate(92_160.0);
        tx.write(b"OK\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        let n = rx.read(&mut buf).await.unwrap();
        assert_eq!(n, 4);
        assert!(buf[..n].iter().all(|b| !b.is_ascii()), "{:?}", &buf[..n]);

        rx.set_rate(92_160.0);
        let t0 = time::now();
        let data = vec![b'x'; 92_160];
        let writer = tokio::spawn(async move { tx.write(&data).await });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 92_160 {
            let n = rx.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap().unwrap();
        assert!(got.iter().all(|&b| b == b'x'));
        let secs = (time::now() - t0).as_secs_f64();
        assert!((secs - 1.0).abs() < 0.0001, "92160 bytes at 921600 baud took {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn reset_discards_unread_and_close_keeps_it() {
        let cfg = PipeConfig {
            bytes_per_sec: None,
            latency: Duration::ZERO,
            batch: 64,
            capacity: 1 << 20,
            blocking_write: false,
        };
        let (tx, mut rx) = pipe(cfg);
        tx.write(b"hello").await.unwrap();
        tx.close();
        let mut buf = [0u8; 16];
        assert_eq!(rx.read(&mut buf).await.unwrap(), 5);
        assert_eq!(rx.read(&mut buf).await.unwrap(), 0);

        let (tx, mut rx) = pipe(cfg);
        tx.write(b"lost").await.unwrap();
        tx.control().reset();
        assert_eq!(rx.read(&mut buf).await, Err(PipeError::Reset));
        assert_eq!(tx.write(b"x").await, Err(PipeError::Reset));
    }

    #[tokio::test(start_paused = true)]
    async fn full_buffer_stalls_writer_until_read() {
        let cfg = PipeConfig {
            bytes_per_sec: None,
            latency: Duration::ZERO,
            batch: 64,
            capacity: 8,
            blocking_write: false,
        };
        let (tx, mut rx) = pipe(cfg);
        let writer = tokio::spawn(async move { tx.write(&[7u8; 20]).await });
        time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rx.available(), 8, "only the buffer's worth may be in flight");
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        while got.len() < 20 {
            let n = rx.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap().unwrap();
        assert_eq!(got, vec![7u8; 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lossy_fifo_keeps_the_first_bytes_and_counts_the_rest() {
        time::use_virtual_time();
        let (tx, mut rx) = lossy_pipe(PipeConfig::uart(115_200, 128));
        tx.write(&(0..=255u8).collect::<Vec<_>>()).await.unwrap();
        assert_eq!(rx.available(), 128);
        assert_eq!(rx.control().bytes_lost(), 128);
        let mut buf = [0u8; 256];
        assert_eq!(rx.read(&mut buf).await.unwrap(), 128);
        assert_eq!(buf[..128], (0..128u8).collect::<Vec<_>>()[..]);
        tx.write(b"OK").await.unwrap();
        assert_eq!(rx.read(&mut buf).await.unwrap(), 2);
        assert_eq!(&buf[..2], b"OK");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_arrival() {
        let cfg = PipeConfig {
            bytes_per_sec: None,
            latency: Duration::from_millis(40),
            batch: 64,
            capacity: 1024,
            blocking_write: false,
        };
        let (tx, mut rx) = pipe(cfg);
        let t0 = time::now();
        tx.write(b"abc").await.unwrap();
        assert_eq!(rx.available(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(rx.read(&mut buf).await.unwrap(), 3);
        assert_eq!(time::now() - t0, Duration::from_millis(40));
    }
}
