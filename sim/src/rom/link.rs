//! The loader on a byte stream: SLIP in, SLIP out, optionally at the UART's pace.
//!
//! With pacing, bytes take the time 8N1 at the current rate gives them (10 bits each) in
//! both directions, and the rate follows CHANGE_BAUDRATE, so a host tool's transfer time
//! against the emulator is the time it would take against a chip. Without it the stream
//! runs as fast as the host can talk, for tests.
//!
//! The line keeps receiving while the chip works: the flasher stub acknowledges a block and
//! then writes it while the host sends the next, so a paced transfer through the stub costs
//! the larger of line time and flash time per block, not their sum (the ROM answers only
//! once it has written, so there the host waits).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chip::MAX_STUB_FRAME;
use super::loader::{ReadFlash, RomLoader};
use super::slip;
use crate::time;

/// How the loader's UART behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkConfig {
    /// Deliver and accept bytes no faster than the current baud rate.
    pub pacing: bool,
    /// A reply the host does not take within this long is dropped, as bytes sent on a UART
    /// nobody listens to are lost (`None`: wait for ever).
    pub stall: Option<Duration>,
}

/// Nanoseconds one 8N1 byte takes at `baud`.
fn byte_ns(baud: u32) -> u64 {
    10 * 1_000_000_000 / u64::from(baud.max(1))
}

/// About a millisecond of bytes at `baud`: the unit the line is paced in, which keeps
/// within tokio's timer resolution without bunching a transfer into large bursts.
fn chunk(baud: u32) -> usize {
    (baud as usize / 10 / 1000).clamp(16, 4096)
}

/// How late a timer may wake us without the lateness being charged to the line: tokio
/// rounds every sleep up to its next millisecond tick, and a transfer paced in ~1 ms pieces
/// would otherwise run half again as slow as the baud rate.
const TIMER_SLACK_NS: u64 = 2_000_000;

/// One direction of the line: when it is free again, in bench nanoseconds.
#[derive(Debug, Default)]
struct Line {
    free_ns: u64,
}

impl Line {
    /// Reserves the line for `n` bytes; returns when the last of them is through.
    /// `contiguous` bytes follow the previous ones without a gap (the rest of one frame),
    /// so they start where those ended even if we woke up a little late; other bytes
    /// start no earlier than now.
    fn take(&mut self, n: usize, baud: u32, contiguous: bool) -> u64 {
        let now = time::now_ns();
        let earliest = if contiguous {
            now.saturating_sub(TIMER_SLACK_NS)
        } else {
            now
        };
        self.free_ns = self.free_ns.max(earliest) + n as u64 * byte_ns(baud);
        self.free_ns
    }
}

/// The receiving side: bytes paced in at the line rate, decoded into frames.
struct Inbox<R> {
    rx: R,
    decoder: slip::Decoder,
    frames: VecDeque<Result<Vec<u8>, slip::FrameError>>,
    line: Line,
    buf: Vec<u8>,
    /// When the bytes read so far have all arrived on the line, in bench nanoseconds.
    due_ns: u64,
    eof: bool,
    pacing: bool,
}

impl<R: AsyncRead + Unpin> Inbox<R> {
    /// Takes what the host sent into the decoder; the line is charged for it.
    fn arrived(&mut self, n: usize, baud: u32) {
        if n == 0 {
            self.eof = true;
            return;
        }
        if self.pacing {
            // The rest of a frame a host is sending follows its start without a gap; a new
            // frame starts no earlier than now.
            self.due_ns = self.line.take(n, baud, self.decoder.in_frame());
        }
        for &b in &self.buf[..n] {
            if let Some(frame) = self.decoder.push(b) {
                self.frames.push_back(frame);
            }
        }
    }

    fn want(&self, baud: u32) -> usize {
        if self.pacing { chunk(baud) } else { self.buf.len() }
    }

    /// The next frame, once its bytes have arrived; `None` once the host has hung up.
    async fn next(&mut self, baud: u32) -> io::Result<Option<Result<Vec<u8>, slip::FrameError>>> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                if self.pacing && self.due_ns > time::now_ns() {
                    time::sleep_until_ns(self.due_ns).await;
                }
                return Ok(Some(frame));
            }
            if self.eof {
                return Ok(None);
            }
            let want = self.want(baud);
            let n = self.rx.read(&mut self.buf[..want]).await?;
            self.arrived(n, baud);
            if self.pacing && self.due_ns > time::now_ns() {
                time::sleep_until_ns(self.due_ns).await;
            }
        }
    }

    /// Runs `work` while the line keeps receiving: the chip's CPU is busy, its UART is not.
    async fn overlap(&mut self, work: impl Future<Output = ()>, baud: u32) -> io::Result<()> {
        let mut work = std::pin::pin!(work);
        loop {
            let now = time::now_ns();
            let pacing_wait = self.pacing && self.due_ns > now;
            let want = self.want(baud);
            tokio::select! {
                biased;
                () = &mut work => return Ok(()),
                () = time::sleep_until_ns(self.due_ns), if pacing_wait => {}
                r = self.rx.read(&mut self.buf[..want]), if !pacing_wait && !self.eof => {
                    self.arrived(r?, baud);
                }
            }
        }
    }
}

/// Runs `loader` on `rx`/`tx` until the host end closes (`rx` at end of file).
pub async fn serve<R, W>(loader: &mut RomLoader, rx: R, mut tx: W, cfg: LinkConfig) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Sized for the stub's receive buffer; the ROM refuses frames past its own.
    let mut inbox = Inbox {
        rx,
        decoder: slip::Decoder::new(MAX_STUB_FRAME),
        frames: VecDeque::new(),
        line: Line::default(),
        buf: vec![0u8; 4096],
        due_ns: 0,
        eof: false,
        pacing: cfg.pacing,
    };
    let mut tx_line = Line::default();
    while let Some(frame) = inbox.next(loader.baud()).await? {
        // Replies go out at the rate in force when the command arrived; CHANGE_BAUDRATE
        // switches only after its own reply.
        let baud = loader.baud();
        let handled = loader.handle(frame).await;
        let mut wire = Vec::new();
        for reply in &handled.replies {
            slip::encode_into(reply, &mut wire);
        }
        wire.extend_from_slice(&handled.text);
        send(&mut tx, &wire, baud, &mut tx_line, cfg).await?;
        if handled.baud.is_some() {
            // The host switches too and throws away what it had buffered.
            inbox.line = Line::default();
        }
        if loader.has_work() {
            let baud = loader.baud();
            inbox.overlap(loader.after_reply(), baud).await?;
        }
        if let Some(read) = handled.read_flash {
            read_flash(loader, &mut inbox, &mut tx, read, &mut tx_line, cfg).await?;
        }
    }
    Ok(())
}

/// The stub's READ_FLASH after its reply: data frames of `packet` bytes, never more than
/// `in_flight` unacknowledged (each acknowledgement a 4-byte frame with the bytes the host
/// has), then the MD5 of what was sent as a 16-byte frame. Any other frame from the host
/// ends the data early, as on the stub.
async fn read_flash<R, W>(
    loader: &mut RomLoader,
    inbox: &mut Inbox<R>,
    tx: &mut W,
    read: ReadFlash,
    tx_line: &mut Line,
    cfg: LinkConfig,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let baud = loader.baud();
    let mut md5 = Md5::new();
    let (mut sent, mut acked, mut frames_sent, mut frames_acked) = (0u32, 0u32, 0u32, 0u32);
    while sent < read.len || acked < read.len {
        if sent < read.len && frames_sent - frames_acked < read.in_flight {
            let n = (read.len - sent).min(read.packet);
            let Ok(data) = loader.read_flash_packet(read.offset + sent, n).await else {
                // The stub gives up without its digest; the host times out.
                return Ok(());
            };
            md5.update(&data);
            send(tx, &slip::encode(&data), baud, tx_line, cfg).await?;
            sent += n;
            frames_sent += 1;
            continue;
        }
        match inbox.next(baud).await? {
            None => return Ok(()),
            Some(Ok(ack)) if ack.len() == 4 => {
                acked = u32::from_le_bytes([ack[0], ack[1], ack[2], ack[3]]);
                frames_acked += 1;
            }
            Some(_) => break,
        }
    }
    send(tx, &slip::encode(&md5.finalize()), baud, tx_line, cfg).await
}

async fn send<W: AsyncWrite + Unpin>(
    tx: &mut W,
    wire: &[u8],
    baud: u32,
    line: &mut Line,
    cfg: LinkConfig,
) -> io::Result<()> {
    let step = if cfg.pacing { chunk(baud) } else { wire.len().max(1) };
    for (i, piece) in wire.chunks(step).enumerate() {
        if cfg.pacing {
            time::sleep_until_ns(line.take(piece.len(), baud, i > 0)).await;
        }
        let write = async {
            tx.write_all(piece).await?;
            tx.flush().await
        };
        match cfg.stall {
            None => write.await?,
            Some(stall) => match tokio::time::timeout(stall, write).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
        }
    }
    Ok(())
}
