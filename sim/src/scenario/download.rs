//! One scenario's download, run as the device app runs it: attempts under the app's
//! [`Schedule`], each resuming from the last resume point the engine passed, whatever the
//! form being fetched (the image, its compressed form or a patch).

use std::time::Duration;

use device_fw::http::HttpClient;
use device_fw::ota::schedule::{Hold, Schedule, ScheduleRecord, UpdatePolicy};
use device_fw::ota::slot::hash_prefix;
use device_fw::ota::{
    Checkpoint, DownloadConfig, DownloadError, DownloadMode, DownloadReport, EventSink, ImageSink, ImageTarget, Mark,
    Slot, download,
};
use device_fw::socket::Socket;
use sha2::{Digest, Sha256};

use super::data_path_ram_bytes;
use crate::flash::SimFlash;
use crate::pipe::PipeControl;
use crate::time::{self, BenchClock};

/// How a download ended.
pub(super) struct Finished {
    pub outcome: &'static str,
    pub written: u64,
    pub error: Option<String>,
    pub report: Option<DownloadReport>,
    pub ram: Option<usize>,
    pub attempts: u32,
    /// UART bytes lost while the app waited between attempts and nothing read the UART.
    pub idle_uart_bytes_lost: u64,
}

/// The last resume point, kept in RAM as the journal keeps it in flash.
#[derive(Default)]
struct LastMark(Option<Mark>);

impl Checkpoint<SimFlash> for LastMark {
    async fn programmed(&mut self, _: &mut SimFlash, mark: Mark) -> Result<(), crate::flash::FlashError> {
        self.0 = Some(mark);
        Ok(())
    }
}

/// Runs the engine to its end or the deadline; also measures the data path's RAM.
///
/// The ranged engine (otactl) runs as the device app runs it: an attempt that ran out of
/// retries (the engine's own backoff, 12 tries without progress) is not the end, the app's
/// [`Schedule`] with the profile defaults (15 min after a failure, doubling, 4 attempts a
/// day) starts the next one, which resumes from the last resume point (`writer(Some(mark))`
/// makes the writer that carries on there), as `update()` resumes from the journal. The
/// result says how many attempts it took.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_download<S: Socket, W: ImageSink<Flash = SimFlash>>(
    http: &mut HttpClient<S>,
    mut writer: impl FnMut(Option<Mark>) -> W,
    slot: Slot,
    cfg: &DownloadConfig,
    target: &ImageTarget<'_>,
    events: &mut impl EventSink,
    deadline: Duration,
    uart: &PipeControl,
) -> Finished {
    let started = time::now();
    let now_us = || time::now().as_micros() as u64;
    let ranged = cfg.mode == DownloadMode::Ranged;
    let mut schedule = Schedule::new(UpdatePolicy::default(), ScheduleRecord::default(), 0, now_us());
    let mut end = Finished {
        outcome: "failed",
        written: 0,
        error: None,
        report: None,
        ram: None,
        attempts: 0,
        idle_uart_bytes_lost: 0,
    };
    let mut mark = LastMark::default();
    loop {
        match schedule.may_attempt(now_us()) {
            Ok(()) => {}
            Err(Hold::Backoff { until_us, .. } | Hold::DailyLimit { until_us, .. }) => {
                // Nothing reads the UART while the app waits: a notice the modem prints then
                // overflows the FIFO, as on the chip, and the next bring-up resyncs.
                let lost_before = uart.bytes_lost();
                time::sleep(Duration::from_micros(until_us.saturating_sub(now_us()))).await;
                end.idle_uart_bytes_lost += uart.bytes_lost() - lost_before;
                continue;
            }
            Err(Hold::Deferred { .. }) => unreachable!("the bench's app never defers"),
        }
        let mut hasher = Sha256::new();
        let mut sink = writer(mark.0);
        if let Some(m) = mark.0
            && let Err(e) = hash_prefix(sink.flash(), slot, u64::from(m.written), &mut hasher).await
        {
            end.error = Some(format!("{e:?}"));
            end.written = u64::from(m.written);
            return end;
        }
        end.attempts += 1;
        schedule.attempt_started(now_us());
        let fut = download(http, &mut sink, &BenchClock, cfg, target, hasher, events, &mut mark);
        end.ram = end
            .ram
            .or(ranged.then(|| data_path_ram_bytes(std::mem::size_of_val(&fut))));
        let left = deadline.saturating_sub(time::now() - started);
        let error = match time::timeout(left, fut).await {
            Ok(Ok(report)) => {
                end.outcome = "updated";
                end.written = report.bytes;
                end.report = Some(report);
                return end;
            }
            Ok(Err(DownloadError::RetriesExhausted { .. })) if ranged => {
                schedule.attempt_failed(now_us());
                continue;
            }
            Ok(Err(e)) => format!("{e:?}"),
            Err(_) => "deadline passed".into(),
        };
        end.error = Some(error);
        end.written = mark.0.map_or(0, |m| u64::from(m.written));
        return end;
    }
}

/// The raw image's writer at a resume point.
pub(super) fn raw_writer<const STAGE: usize>(
    flash: &SimFlash,
    slot: Slot,
) -> impl FnMut(Option<Mark>) -> device_fw::ota::SlotWriter<SimFlash, STAGE> + '_ {
    move |mark| device_fw::ota::SlotWriter::resume(flash.clone(), slot, mark.map_or(0, |m| m.written))
}
