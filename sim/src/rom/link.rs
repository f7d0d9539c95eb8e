//! The loader on a byte stream: SLIP in, SLIP out, optionally at the UART's pace.
//!
//! With pacing, bytes take the time 8N1 at the current rate gives them (10 bits each) in
//! both directions, and the rate follows CHANGE_BAUDRATE, so a host tool's transfer time
//! against the emulator is the time it would take against a chip. Without it the stream
//! runs as fast as the host can talk, for tests.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chip::MAX_FRAME;
use super::loader::RomLoader;
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

/// Runs `loader` on `rx`/`tx` until the host end closes (`rx` at end of file).
pub async fn serve<R, W>(loader: &mut RomLoader, mut rx: R, mut tx: W, cfg: LinkConfig) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut decoder = slip::Decoder::new(MAX_FRAME);
    let mut rx_line = Line::default();
    let mut tx_line = Line::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let want = if cfg.pacing { chunk(loader.baud()) } else { buf.len() };
        // The rest of a frame a host is sending follows its start without a gap; a new
        // frame starts no earlier than now.
        let contiguous = decoder.in_frame();
        let n = rx.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(());
        }
        if cfg.pacing {
            time::sleep_until_ns(rx_line.take(n, loader.baud(), contiguous)).await;
        }
        for &b in &buf[..n] {
            let Some(frame) = decoder.push(b) else { continue };
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
                rx_line = Line::default();
            }
        }
    }
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
