//! What the app does with nobody at its console: scheduled checks, attempts under the
//! schedule's and the app's say, and an outcome report after each attempt.

use core::fmt;

use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::NorFlash;

use super::console::{MESSAGE_LEN, Sink, report_failure, text};
use super::{App, Offer, Reboot, UpdateHook};
use crate::clock::Clock;
use crate::http::{Url, Validators};
use crate::ota::engine::{DownloadConfig, DownloadError};
use crate::ota::schedule::{Hold, Permission};
use crate::ota::update::{Judged, ManifestBufs, Source, UpdateError, install, judge};
use crate::wire::console::Event;
use crate::wire::report::{self, MAX_REPORT, Outcome, Report};

/// Whether a failed attempt says something about the release (its signature, hash, image
/// or version did not pass) or only about this try (network, modem, flash).
fn outcome_of<E>(error: &UpdateError<E>) -> Outcome {
    match error {
        UpdateError::Manifest(_)
        | UpdateError::Rejected(_)
        | UpdateError::Image(_)
        | UpdateError::AppVersionMismatch
        | UpdateError::SecureVersionMismatch
        | UpdateError::Download(DownloadError::HashMismatch | DownloadError::SizeMismatch { .. }) => Outcome::Rejected,
        _ => Outcome::Failed,
    }
}

fn seconds_until(at_us: u64, now_us: u64) -> u64 {
    at_us.saturating_sub(now_us).div_ceil(1_000_000)
}

impl<Con, U, C, F, H> App<'_, '_, Con, U, C, F, H>
where
    Con: Read + Write,
    U: Read + Write,
    C: Clock + Clone,
    F: NorFlash,
    F::Error: fmt::Debug,
    H: UpdateHook,
{
    /// The engine's settings for the link as it runs now (the first drain-rate guess
    /// follows the UART rate).
    fn download_config(&mut self) -> DownloadConfig {
        let mut download = self.cfg.download;
        download.uart_bytes_per_sec = self.http.socket().baud() / 10;
        download
    }

    /// Fetches and judges the manifest at `url` (conditionally, with `known`), its events
    /// on the console.
    async fn judge<'b>(
        &mut self,
        url: &str,
        known: Option<&Validators>,
        bufs: &'b mut ManifestBufs,
    ) -> Result<Option<Judged<'b>>, UpdateError<F::Error>> {
        let download = self.download_config();
        let source = Source {
            manifest_url: url,
            keys: self.cfg.keys,
            known,
        };
        let mut sink = Sink {
            console: &mut self.console,
            manifest_url: url,
            rolled_back: None,
        };
        judge(
            &mut self.http,
            self.flash,
            &self.clock,
            &download,
            &self.cfg.layout,
            &self.identity,
            self.running.target,
            source,
            bufs,
            &mut sink,
        )
        .await
    }

    pub(super) async fn announce_next_check(&mut self) {
        if let Some(at) = self.schedule.next_check_at() {
            let in_s = seconds_until(at, self.clock.now_us());
            self.console.emit(&Event::NextCheck { in_s }).await;
        }
    }

    /// A check the schedule started: the manifest (conditional when the last one was
    /// settled), and an attempt when the release is for this device and nothing holds it.
    pub(super) async fn scheduled_check(&mut self) -> Option<Reboot> {
        self.schedule.check_started(self.clock.now_us());
        let reboot = if self.ensure_modem().await {
            self.check_and_attempt().await
        } else {
            None
        };
        self.announce_next_check().await;
        reboot
    }

    async fn check_and_attempt(&mut self) -> Option<Reboot> {
        let url = self.cfg.manifest_url;
        let known = self.settled.clone();
        let mut bufs = ManifestBufs::default();
        let judged = self.judge(url, known.as_ref(), &mut bufs).await;
        let judged = match judged {
            Ok(Some(judged)) => judged,
            // Unchanged since it was settled: the sink said so.
            Ok(None) => {
                self.http.close().await;
                return None;
            }
            Err(e) => {
                self.http.close().await;
                report_failure(&mut self.console, &e, self.running.version).await;
                return None;
            }
        };
        if let Err(rejection) = judged.verdict {
            // Not for this device, and it stays so until the manifest changes.
            self.settled = Some(self.http.validators().clone());
            self.http.close().await;
            let reason = rejection.code();
            self.console
                .emit(&Event::Check {
                    running: self.running.version,
                    available: judged.manifest.version,
                    update: false,
                    reason: Some(reason),
                })
                .await;
            return None;
        }
        self.settled = None;
        if let Some(hold) = self.hold(&judged) {
            self.http.close().await;
            let now = self.clock.now_us();
            let retry_in_s = match hold {
                Hold::Backoff { until_us, .. } | Hold::DailyLimit { until_us, .. } => {
                    Some(seconds_until(until_us, now))
                }
                Hold::Deferred { until_us } => until_us.map(|t| seconds_until(t, now)),
            };
            self.console
                .emit(&Event::UpdateHeld {
                    version: judged.manifest.version,
                    reason: hold.code(),
                    retry_in_s,
                })
                .await;
            return None;
        }
        self.install_judged(url, &judged).await
    }

    /// What keeps a scheduled attempt from starting now: the schedule (backoff, the day's
    /// limit), `ota defer`, then the app's hook.
    fn hold(&mut self, judged: &Judged<'_>) -> Option<Hold> {
        let now = self.clock.now_us();
        if let Err(hold) = self.schedule.may_attempt(now) {
            return Some(hold);
        }
        if let Some(until_us) = self.defer_until.filter(|&t| t > now) {
            return Some(Hold::Deferred {
                until_us: Some(until_us),
            });
        }
        let offer = Offer {
            version: judged.manifest.version,
            size: judged.manifest.size,
            now_us: now,
        };
        match self.hook.may_update(&offer) {
            Permission::Now => None,
            Permission::Later { retry_at_us } => Some(Hold::Deferred { until_us: retry_at_us }),
        }
    }

    /// `ota update`: judge and install now, whatever the schedule says (a person decided).
    pub(super) async fn attempt(&mut self, url: &str) -> Option<Reboot> {
        let mut bufs = ManifestBufs::default();
        let judged = self.judge(url, None, &mut bufs).await;
        let judged = match judged {
            Ok(Some(judged)) if judged.verdict.is_ok() => judged,
            Ok(Some(judged)) => {
                self.http.close().await;
                if let Err(r) = judged.verdict {
                    let e = UpdateError::<F::Error>::Rejected(r);
                    report_failure(&mut self.console, &e, self.running.version).await;
                }
                return None;
            }
            Ok(None) => return None,
            Err(e) => {
                self.http.close().await;
                report_failure(&mut self.console, &e, self.running.version).await;
                return None;
            }
        };
        self.install_judged(url, &judged).await
    }

    /// `ota check`: what the channel offers and whether this device would take it.
    pub(super) async fn check_only(&mut self, url: &str) {
        let mut bufs = ManifestBufs::default();
        let judged = self.judge(url, None, &mut bufs).await;
        self.http.close().await;
        match judged {
            Ok(Some(j)) => {
                let reason = j.verdict.err().map(|r| r.code());
                self.console
                    .emit(&Event::Check {
                        running: self.running.version,
                        available: j.manifest.version,
                        update: reason.is_none(),
                        reason,
                    })
                    .await
            }
            Ok(None) => {}
            Err(e) => report_failure(&mut self.console, &e, self.running.version).await,
        }
    }

    /// One attempt at a release that passed every check: counted in the journal before the
    /// first byte is fetched, so that a crash during it still counts against the next try.
    async fn install_judged(&mut self, url: &str, judged: &Judged<'_>) -> Option<Reboot> {
        let (_, record) = self.schedule.attempt_started(self.clock.now_us());
        if let Err(e) = self.cfg.layout.journal.save_schedule(self.flash, &record).await {
            self.console
                .log(format_args!("ota: could not save the attempt count: {e}"))
                .await;
        }
        let download = self.download_config();
        let mut sink = Sink {
            console: &mut self.console,
            manifest_url: url,
            rolled_back: None,
        };
        let result = install(
            &mut self.http,
            self.flash,
            &self.clock,
            &download,
            &self.cfg.layout,
            url,
            judged,
            &mut sink,
        )
        .await;
        self.http.close().await;
        match result {
            Ok(_) => {
                self.console
                    .emit(&Event::Rebooting {
                        reason: "update activated",
                    })
                    .await;
                Some(Reboot::Activated)
            }
            Err(e) => {
                report_failure(&mut self.console, &e, self.running.version).await;
                self.attempt_ended(false).await;
                self.report(judged.manifest.version, outcome_of(&e), Some(e.code()))
                    .await;
                None
            }
        }
    }

    /// Folds an attempt's end into the schedule (backoff, or a clean slate) and saves it.
    pub(super) async fn attempt_ended(&mut self, succeeded: bool) {
        let now = self.clock.now_us();
        let record = if succeeded {
            self.schedule.attempt_succeeded(now)
        } else {
            self.schedule.attempt_failed(now)
        };
        if let Err(e) = self.cfg.layout.journal.save_schedule(self.flash, &record).await {
            self.console
                .log(format_args!("ota: could not save the schedule: {e}"))
                .await;
        }
    }

    /// POSTs the outcome of the last attempt to the profile's `report_url`, once: a report
    /// is advice for the fleet's operator, never worth a retry loop on a paid link.
    pub(super) async fn report(&mut self, version: &str, outcome: Outcome, reason: Option<&str>) {
        let Some(url) = self.cfg.report_url else {
            return;
        };
        if !self.modem_ok {
            return;
        }
        let attempt = self.schedule.record().attempts;
        let body = Report {
            schema: report::SCHEMA,
            device: self.cfg.device_id,
            product: self.cfg.product,
            channel: self.cfg.channel,
            version,
            running: self.running.version,
            outcome,
            reason,
            attempt,
        };
        let mut buf = [0u8; MAX_REPORT];
        let sent = match (body.write_json(&mut buf), Url::parse(url)) {
            (Ok(n), Ok(target)) => self.http.post(&target, report::CONTENT_TYPE, &buf[..n]).await,
            (Err(_), _) => return,
            (_, Err(e)) => Err(e),
        };
        self.http.close().await;
        match sent {
            Ok(status) => {
                self.console
                    .emit(&Event::Reported {
                        version,
                        outcome: outcome.as_str(),
                        attempt,
                        status,
                    })
                    .await
            }
            Err(e) => {
                let message: heapless::String<MESSAGE_LEN> = text(format_args!("{e}"));
                self.console
                    .emit(&Event::ReportFailed {
                        version,
                        message: &message,
                    })
                    .await
            }
        }
    }
}
