//! The download loop: Range chunks into the slot, resumed after every failure.
//!
//! One pass per HTTP response: request the next chunk from the accepted offset, stream the
//! body into the slot block by block, measure the drain rate, and go again. The flash work
//! of a block and the next UART read are joined, but on the chip the join runs them one
//! after the other: esp-storage is synchronous, so the block's programs (and erases) finish
//! before the next read command is sent. Every read takes the modem's whole reply, up to its
//! final `OK`, so while the CPU is held only an unsolicited notice can arrive (a line of a
//! few dozen bytes, which the UART's 128-byte receive FIFO holds; a reply arriving during a
//! 45 ms erase would overflow it in 11 ms at 115200 baud). The bench's flash holds the
//! device the same way.
//!
//! A connection that dies, a NAT that forgot us, a 5xx, a modem that rebooted: each ends
//! the pass, and the next pass resumes with `Range: bytes=<accepted>-`. A server that ignores Range is read from the start and the
//! bytes already written are skipped.

use embassy_futures::join::join;
use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

use super::lzma::LzmaError;
use super::patch::PatchError;
use super::planner::{ChunkPlanner, ChunkPolicy};
use super::slot::{SECTOR, SlotError, SlotWriter};
use crate::clock::Clock;
use crate::http::{HttpClient, HttpError, Target};
use crate::socket::{Socket, SocketError};
use crate::wire::compressed::CompressedError;

/// The largest block one modem read returns (SIM7600 `CIPRXGET`, SIM7080 `CARECV`): the
/// size of each of the engine's two receive buffers.
pub const BLOCK: usize = 1460;

/// How to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadMode {
    /// Range chunks sized by the planner, resumed after failures: the otactl engine.
    Ranged,
    /// One GET for the whole image, no resume: a model of Arduino `HTTPUpdate`/TinyGSM, kept
    /// so the bench can show the field failure side by side.
    SingleGet,
}

/// Engine settings (from the profile).
#[derive(Debug, Clone, Copy)]
pub struct DownloadConfig {
    pub mode: DownloadMode,
    pub policy: ChunkPolicy,
    /// UART bytes per second (baud / 10): the first drain-rate guess is derived from it.
    pub uart_bytes_per_sec: u32,
    /// Consecutive attempts without progress before giving up.
    pub retries: u8,
    pub backoff_initial_us: u64,
    pub backoff_max_us: u64,
    /// Join a block's flash programs with the next UART read (two receive buffers). With
    /// the chip's blocking flash driver the programs still run first; the join only pays off
    /// with a flash that does not hold the CPU.
    pub overlap_flash: bool,
    /// Whether a sector erase (and a journal write, which may erase) may be joined with the
    /// next read, as a flash that does not hold the CPU would allow when RTS/CTS can hold the
    /// modem back. An erase masks interrupts for ~45 ms while the UART's 128-byte FIFO fills
    /// in 11 ms at 115200 baud, so without flow control erases always come first, before the
    /// read command leaves (the modem holds its data until asked). On the chip's blocking
    /// driver both settings run the same order and take the same time.
    pub erase_while_receiving: bool,
}

impl DownloadConfig {
    /// The engine settings for a profile's values. One formula for the bench
    /// (`Profile::download_config`) and the firmware build (its build script), so both
    /// run the engine alike.
    #[allow(clippy::too_many_arguments)]
    pub const fn for_profile(
        nat_idle_timeout_s: u32,
        safety_permille: u32,
        chunk_min: u32,
        chunk_max: u32,
        baud: u32,
        retries: u8,
        backoff_initial_ms: u32,
        backoff_max_ms: u32,
        flow_control: bool,
    ) -> Self {
        DownloadConfig {
            mode: DownloadMode::Ranged,
            policy: ChunkPolicy {
                nat_idle_us: nat_idle_timeout_s as u64 * 1_000_000,
                safety_permille,
                min_chunk: chunk_min,
                max_chunk: chunk_max,
                unpaced: false,
            },
            uart_bytes_per_sec: baud / 10,
            retries,
            backoff_initial_us: backoff_initial_ms as u64 * 1000,
            backoff_max_us: backoff_max_ms as u64 * 1000,
            overlap_flash: true,
            erase_while_receiving: flow_control,
        }
    }
}

/// The image to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ImageTarget<'a> {
    pub url: &'a str,
    /// Size from the signed manifest; `None` takes the server's word (baseline model only).
    pub size: Option<u64>,
    /// SHA-256 from the signed manifest, checked once every byte is written.
    pub sha256: Option<[u8; 32]>,
}

/// Something worth telling the console, as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtaEvent {
    /// A request for `[offset, offset + len)` went out.
    ChunkRequested { offset: u64, len: u64 },
    /// Bytes accepted so far, the total, the drain rate measured on the last chunk.
    Progress {
        written: u64,
        total: u64,
        rate_bps: u32,
        chunk: u32,
    },
    /// The connection ended before the chunk did. `quiet_us` is how long it had carried no
    /// request of ours when it died (`None` when the loss was not a quiet connection ending,
    /// such as a 5xx or a lost modem); `nat_idle_us` is the idle time the next chunks are
    /// sized for, after learning from this loss. Fleets collect the pair to learn each
    /// carrier's real NAT timeout.
    ConnectionLost {
        offset: u64,
        error: HttpError,
        quiet_us: Option<u64>,
        nat_idle_us: u64,
    },
    /// The next request resumes from `offset`.
    Resumed { offset: u64 },
    /// The server answered a Range request with the whole file; `skip` bytes are discarded.
    RangeIgnored { skip: u64 },
    /// The modem or its packet network was brought up again.
    ModemRecovered,
    /// Waiting before retrying after a failure without progress.
    Backoff { us: u64 },
}

/// A resume point: the image's first `written` bytes are programmed, their SHA-256 is
/// `prefix_sha256`, and the fetched file continues at byte `fetched` (the same number for the
/// raw image; a segment boundary of the compressed form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub written: u32,
    pub prefix_sha256: [u8; 32],
    pub fetched: u32,
}

/// Makes progress durable: called after the image's programmed bytes reach a sector
/// boundary, with the SHA-256 of exactly those bytes, so that after a power cut the
/// download resumes there once the prefix re-hashes to the same value. Called between modem
/// reads, never during one: a journal write may erase.
pub trait Checkpoint<F: NorFlash> {
    async fn programmed(&mut self, flash: &mut F, mark: Mark) -> Result<(), F::Error>;
}

/// No journal: progress lives in RAM only.
impl<F: NorFlash> Checkpoint<F> for () {
    async fn programmed(&mut self, _: &mut F, _: Mark) -> Result<(), F::Error> {
        Ok(())
    }
}

/// Flash error type of a sink.
pub type SinkError<W> = <<W as ImageSink>::Flash as embedded_storage_async::nor_flash::ErrorType>::Error;

/// Where fetched bytes go: into the slot as they are ([`SlotWriter`]), or through a decoder
/// ([`InflatingWriter`](super::inflating::InflatingWriter)). The engine asks for the file
/// from [`fetched`](Self::fetched) on and hashes what the sink says is image.
pub trait ImageSink {
    type Flash: NorFlash;
    /// Bytes of the fetched file taken so far: where the next request starts.
    fn fetched(&self) -> u64;
    /// The fetched file's size from the signed manifest.
    fn expect_fetched_len(&mut self, len: u64);
    /// Erases now what taking `data` would erase (see
    /// [`DownloadConfig::erase_while_receiving`]).
    async fn erase_ahead(&mut self, data: &[u8]) -> Result<(), DownloadError<SinkError<Self>>>;
    /// Takes `data`, hashing the image bytes it yields into `hasher`; returns the last
    /// resume point it passed, if any.
    async fn take(&mut self, data: &[u8], hasher: &mut Sha256) -> Result<Option<Mark>, DownloadError<SinkError<Self>>>;
    /// Programs what is left; returns the image length.
    async fn finish(&mut self) -> Result<u64, DownloadError<SinkError<Self>>>;
    fn flash(&mut self) -> &mut Self::Flash;
}

impl<F: NorFlash, const STAGE: usize> ImageSink for SlotWriter<F, STAGE> {
    type Flash = F;

    fn fetched(&self) -> u64 {
        self.accepted()
    }

    fn expect_fetched_len(&mut self, len: u64) {
        self.expect_image_len(len);
    }

    async fn erase_ahead(&mut self, data: &[u8]) -> Result<(), DownloadError<F::Error>> {
        Ok(SlotWriter::erase_ahead(self, data.len()).await?)
    }

    /// Writes and hashes `data`, split at sector boundaries so that the hash at each
    /// boundary covers exactly the bytes programmed, which is what a checkpoint records.
    async fn take(&mut self, mut data: &[u8], hasher: &mut Sha256) -> Result<Option<Mark>, DownloadError<F::Error>> {
        let mut mark = None;
        while !data.is_empty() {
            let to_boundary = SECTOR as u64 - self.accepted() % SECTOR as u64;
            let take = data.len().min(to_boundary as usize);
            self.write(&data[..take]).await?;
            hasher.update(&data[..take]);
            data = &data[take..];
            if self.accepted().is_multiple_of(SECTOR as u64) {
                // STAGE divides SECTOR, so nothing is staged here: all accepted bytes are
                // programmed.
                mark = Some(Mark {
                    written: self.programmed(),
                    prefix_sha256: hasher.clone().finalize().into(),
                    fetched: self.programmed(),
                });
            }
        }
        Ok(mark)
    }

    async fn finish(&mut self) -> Result<u64, DownloadError<F::Error>> {
        Ok(SlotWriter::finish(self).await?)
    }

    fn flash(&mut self) -> &mut F {
        SlotWriter::flash(self)
    }
}

/// Receives [`OtaEvent`]s. Async, so that a console can write each one out as it happens.
pub trait EventSink {
    async fn event(&mut self, event: OtaEvent);
}

impl EventSink for () {
    async fn event(&mut self, _: OtaEvent) {}
}

impl<F: FnMut(OtaEvent)> EventSink for F {
    async fn event(&mut self, event: OtaEvent) {
        self(event)
    }
}

/// What a finished download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadReport {
    pub bytes: u64,
    pub sha256: [u8; 32],
    pub requests: u32,
    pub resumes: u32,
    pub connection_losses: u32,
    pub modem_recoveries: u32,
    pub range_ignored: u32,
}

/// Why a download stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError<E> {
    #[error("image URL is invalid: {0}")]
    BadUrl(HttpError),
    #[error("the server refused the image request: {0}")]
    Refused(HttpError),
    #[error("gave up after {attempts} attempts without progress at byte {offset}; last error: {last}")]
    RetriesExhausted { attempts: u8, offset: u64, last: HttpError },
    /// Baseline only: the single GET died and there is no resume.
    #[error("download aborted at byte {offset} of {total}: {error}")]
    Aborted { offset: u64, total: u64, error: HttpError },
    #[error(
        "server says the image has {server} bytes, the manifest says {manifest}; the release changed under the device"
    )]
    SizeMismatch { manifest: u64, server: u64 },
    #[error("server did not say how long the image is (no Content-Length or Content-Range)")]
    UnknownSize,
    #[error("image SHA-256 does not match the signed manifest; the slot will not be activated")]
    HashMismatch,
    #[error(transparent)]
    Slot(#[from] SlotError<E>),
    #[error("{0}; the download starts over")]
    Compressed(CompressedError),
    #[error("compressed image does not decode: {0}; the download starts over")]
    Lzma(LzmaError<E>),
    #[error("patch does not apply: {0}; the download starts over")]
    Patch(PatchError<E>),
}

/// Two receive buffers: one is drained into flash while the other fills from the modem.
type Buffers = [[u8; BLOCK]; 2];

struct Progress {
    hasher: Sha256,
    skip: u64,
    /// A resume point was passed: to journal.
    checkpoint_due: Option<Mark>,
}

/// How one response pass ended.
enum PassEnd {
    /// The body ended where the server said it would.
    Complete,
    Broken(HttpError),
}

/// Downloads `target` into the slot behind `slot`, from wherever the writer stands
/// (0, or a resumed offset whose prefix the caller has hashed into `hasher`).
#[allow(clippy::too_many_arguments)]
pub async fn download<S, W, C, E, K>(
    http: &mut HttpClient<S>,
    slot: &mut W,
    clock: &C,
    cfg: &DownloadConfig,
    target: &ImageTarget<'_>,
    hasher: Sha256,
    events: &mut E,
    checkpoint: &mut K,
) -> Result<DownloadReport, DownloadError<SinkError<W>>>
where
    S: Socket,
    W: ImageSink,
    C: Clock,
    E: EventSink,
    K: Checkpoint<W::Flash>,
{
    let url = Target::parse(target.url).map_err(DownloadError::BadUrl)?;
    let mut planner = ChunkPlanner::new(cfg.policy, cfg.uart_bytes_per_sec / 10 * 8);
    let mut total = target.size;
    // Only the signed size may widen an erase: a server's Content-Length could be anything.
    if let Some(size) = target.size {
        slot.expect_fetched_len(size);
    }
    let mut report = DownloadReport {
        bytes: 0,
        sha256: [0; 32],
        requests: 0,
        resumes: 0,
        connection_losses: 0,
        modem_recoveries: 0,
        range_ignored: 0,
    };
    let mut progress = Progress {
        hasher,
        skip: 0,
        checkpoint_due: None,
    };
    let mut bufs: Buffers = [[0; BLOCK]; 2];
    let mut failures: u8 = 0;
    let mut backoff_us = cfg.backoff_initial_us;
    let mut last_request_us: Option<u64> = None;

    loop {
        let offset = slot.fetched();
        if let Some(total) = total
            && offset >= total
        {
            break;
        }
        let remaining = total.map_or(u64::MAX, |t| t - offset);
        let range = match cfg.mode {
            DownloadMode::Ranged => {
                let len = u64::from(planner.next_chunk(remaining));
                events.event(OtaEvent::ChunkRequested { offset, len }).await;
                Some((offset, Some(offset + len - 1)))
            }
            DownloadMode::SingleGet => None,
        };
        let requested_at = clock.now_us();
        let previous_request = last_request_us.replace(requested_at);
        report.requests += 1;
        let before = offset;

        let end = match http.get(&url, range).await {
            Ok(head) => {
                match check_head(&head, offset, range.is_some(), &mut total) {
                    Err(e) => return Err(e),
                    Ok(skip) => {
                        if skip > 0 {
                            report.range_ignored += 1;
                            events.event(OtaEvent::RangeIgnored { skip }).await;
                        }
                        progress.skip = skip;
                    }
                }
                let started = clock.now_us();
                let end = stream_body(http, slot, &mut progress, &mut bufs, cfg, checkpoint).await?;
                let moved = slot.fetched() - before;
                planner.record_drain(moved, clock.now_us().saturating_sub(started));
                if let Some(total) = total {
                    events
                        .event(OtaEvent::Progress {
                            written: slot.fetched(),
                            total,
                            rate_bps: planner.drain_bps(),
                            chunk: planner.next_chunk(u64::MAX),
                        })
                        .await;
                }
                end
            }
            Err(HttpError::RangeNotSatisfiable { total: server_total }) => {
                // The image is shorter than what we hold: it changed under us.
                return Err(DownloadError::SizeMismatch {
                    manifest: total.unwrap_or(0),
                    server: server_total.unwrap_or(0),
                });
            }
            Err(e) if !e.is_retryable() => {
                return Err(match e {
                    // A certificate does not fix itself: refused, so that no schedule
                    // tries again as it would after a network that gave out.
                    HttpError::Socket(SocketError::Tls(_)) => DownloadError::Refused(e),
                    HttpError::Socket(_) => DownloadError::RetriesExhausted {
                        attempts: failures,
                        offset,
                        last: e,
                    },
                    _ => DownloadError::Refused(e),
                });
            }
            Err(e) => PassEnd::Broken(e),
        };

        let error = match end {
            PassEnd::Complete => {
                planner.record_success();
                failures = 0;
                backoff_us = cfg.backoff_initial_us;
                continue;
            }
            PassEnd::Broken(e) => e,
        };

        // The pass broke: learn from it, recover what needs recovering, then resume.
        let offset = slot.fetched();
        report.connection_losses += 1;
        // The connection ended under us (a close notice mid-body reads as a truncated body):
        // a NAT that forgot the mapping looks exactly like this.
        let quiet_us = if matches!(
            error,
            HttpError::Socket(SocketError::Closed | SocketError::Timeout) | HttpError::TruncatedBody { .. }
        ) {
            // Quiet since our last request; for a request that got no answer at all on a
            // reused connection, the quiet spell was the drain before it.
            if offset == before {
                previous_request.map(|p| requested_at - p)
            } else {
                Some(clock.now_us() - requested_at)
            }
        } else {
            None
        };
        if let Some(quiet) = quiet_us {
            planner.record_drop(quiet);
        }
        events
            .event(OtaEvent::ConnectionLost {
                offset,
                error,
                quiet_us,
                nat_idle_us: planner.idle_limit_us(),
            })
            .await;
        if cfg.mode == DownloadMode::SingleGet {
            return Err(DownloadError::Aborted {
                offset,
                total: total.unwrap_or(0),
                error,
            });
        }
        http.close().await;
        if matches!(
            error,
            HttpError::Socket(SocketError::ModemLost | SocketError::NetworkDown)
        ) && http.socket().recover().await.is_ok()
        {
            report.modem_recoveries += 1;
            events.event(OtaEvent::ModemRecovered).await;
        }
        if offset > before {
            failures = 0;
            backoff_us = cfg.backoff_initial_us;
        } else {
            failures += 1;
            if failures > cfg.retries {
                return Err(DownloadError::RetriesExhausted {
                    attempts: failures,
                    offset,
                    last: error,
                });
            }
            events.event(OtaEvent::Backoff { us: backoff_us }).await;
            if !http.socket().listen(backoff_us).await {
                clock.sleep_us(backoff_us).await;
            }
            backoff_us = (backoff_us * 2).min(cfg.backoff_max_us);
        }
        report.resumes += 1;
        events.event(OtaEvent::Resumed { offset }).await;
    }

    report.bytes = slot.finish().await?;
    report.sha256 = progress.hasher.finalize().into();
    if let Some(expected) = target.sha256
        && expected != report.sha256
    {
        return Err(DownloadError::HashMismatch);
    }
    Ok(report)
}

/// Checks a response head against what was asked; returns how many body bytes to skip.
fn check_head<E>(
    head: &crate::http::ResponseHead,
    offset: u64,
    ranged: bool,
    total: &mut Option<u64>,
) -> Result<u64, DownloadError<E>> {
    let server_total = match (head.status, head.content_range) {
        (206, Some(cr)) => cr.total,
        _ => head.content_length,
    };
    match (*total, server_total) {
        (Some(manifest), Some(server)) if manifest != server => {
            return Err(DownloadError::SizeMismatch { manifest, server });
        }
        (None, Some(server)) => *total = Some(server),
        (None, None) => return Err(DownloadError::UnknownSize),
        _ => {}
    }
    // A 200 carries the file from byte 0, whatever was asked.
    Ok(if head.status == 200 && (ranged || offset > 0) {
        offset
    } else {
        0
    })
}

/// Streams the current response body into the slot, double-buffered.
async fn stream_body<S, W, K>(
    http: &mut HttpClient<S>,
    slot: &mut W,
    progress: &mut Progress,
    bufs: &mut Buffers,
    cfg: &DownloadConfig,
    checkpoint: &mut K,
) -> Result<PassEnd, DownloadError<SinkError<W>>>
where
    S: Socket,
    W: ImageSink,
    K: Checkpoint<W::Flash>,
{
    let [a, b] = bufs;
    let (mut fill, mut drain) = (a, b);
    let mut pending = 0..0;
    loop {
        let read = if pending.is_empty() {
            http.read_body(fill).await
        } else if cfg.overlap_flash {
            if !cfg.erase_while_receiving {
                // Erase now, while no modem byte is on its way.
                slot.erase_ahead(&drain[pending.clone()]).await?;
            }
            // The flash work first: on the chip it completes within its first poll, before
            // the read sends its command, so the modem never answers into a held CPU.
            let (written, read) = join(accept(slot, progress, &drain[pending.clone()]), http.read_body(fill)).await;
            written?;
            read
        } else {
            accept(slot, progress, &drain[pending.clone()]).await?;
            http.read_body(fill).await
        };
        if let Some(mark) = progress.checkpoint_due.take() {
            checkpoint
                .programmed(slot.flash(), mark)
                .await
                .map_err(|e| DownloadError::Slot(SlotError::Flash(e)))?;
        }
        match read {
            Ok(0) => return Ok(PassEnd::Complete),
            Ok(n) => {
                let skip = progress.skip.min(n as u64) as usize;
                progress.skip -= skip as u64;
                pending = skip..n;
                core::mem::swap(&mut fill, &mut drain);
            }
            Err(e) => return Ok(PassEnd::Broken(e)),
        }
    }
}

/// Takes `data` into the sink, keeping the last resume point it passed.
async fn accept<W: ImageSink>(
    slot: &mut W,
    progress: &mut Progress,
    data: &[u8],
) -> Result<(), DownloadError<SinkError<W>>> {
    if let Some(mark) = slot.take(data, &mut progress.hasher).await? {
        progress.checkpoint_due = Some(mark);
    }
    Ok(())
}
