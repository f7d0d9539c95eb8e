//! Following a device through an update from its console events, to one outcome.
//!
//! This is the judgement only, fed one event at a time, so that it can be tested without a
//! port and reused by `otactl demo`; `cli/watch.rs` does the serial I/O and the display.

use device_fw::wire::console::Event;
use serde::Serialize;

/// What the watch waits for.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// `ota update` was sent: a reply to it is expected.
    pub triggered: bool,
    /// The version the device must end up running, confirmed.
    pub expect_version: Option<String>,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The device booted and confirmed `version`.
    Confirmed { version: String },
    /// Nothing newer to install; the device runs `version`.
    UpToDate { version: String },
    /// The new version did not confirm itself; the device went back.
    RolledBack { failed_version: String },
    /// The device refused the release (signature, target, version, image checks).
    Rejected { reason: String, message: String },
    /// The download or the network failed (the release itself may be fine).
    DownloadFailed { reason: String, message: String },
    /// The server's certificate was refused or TLS could not be set up (`tls-*` reasons):
    /// the device will not try again until its trust anchors or the server change.
    TlsRefused { reason: String, message: String },
    /// No outcome before the deadline.
    Timeout { phase: &'static str },
    /// The port could not be opened, or did not come back after a reset.
    PortError { message: String },
}

impl Outcome {
    /// Exit codes, documented in README ("Watching a device").
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Confirmed { .. } | Outcome::UpToDate { .. } => 0,
            Outcome::RolledBack { .. } => 3,
            Outcome::Rejected { .. } => 4,
            Outcome::DownloadFailed { .. } => 5,
            Outcome::Timeout { .. } => 6,
            Outcome::PortError { .. } => 7,
            // Each certificate refusal the modem can name apart has its own code; an
            // unknown CA and any other failed handshake are one to both modems.
            Outcome::TlsRefused { reason, .. } => match reason.as_str() {
                "tls-wrong-host" => 9,
                "tls-cert-expired" => 10,
                _ => 8,
            },
        }
    }

    pub fn is_success(&self) -> bool {
        self.exit_code() == 0
    }
}

/// Where the device stands, as the events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Waiting,
    Manifest,
    Downloading,
    Verifying,
    Rebooting,
    SelfTest,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting for the device",
            Phase::Manifest => "checking the release",
            Phase::Downloading => "downloading",
            Phase::Verifying => "verifying",
            Phase::Rebooting => "rebooting",
            Phase::SelfTest => "self-test",
            Phase::Done => "done",
        }
    }
}

/// The running judgement.
#[derive(Debug, Clone)]
pub struct Watcher {
    spec: WatchSpec,
    pub phase: Phase,
    /// The version the device ran when the watch began.
    pub from: Option<String>,
    /// The version an update activated.
    pub activated: Option<String>,
    /// Bytes accepted and image size, from the last progress event.
    pub progress: Option<(u64, u64)>,
    pub rate: u32,
    pub drops: u32,
    pub resumes: u32,
    /// The shortest quiet spell (no request of the device's) after which a connection
    /// died: this carrier's NAT forgets an idle mapping within that time.
    pub shortest_quiet_drop_ms: Option<u64>,
    /// The idle time the device sizes its chunks for, as it last reported after a drop.
    pub nat_idle_ms: Option<u64>,
}

impl Watcher {
    pub fn new(spec: WatchSpec) -> Self {
        Watcher {
            spec,
            phase: Phase::Waiting,
            from: None,
            activated: None,
            progress: None,
            rate: 0,
            drops: 0,
            resumes: 0,
            shortest_quiet_drop_ms: None,
            nat_idle_ms: None,
        }
    }

    fn expected(&self, version: &str) -> bool {
        self.spec.expect_version.as_deref().is_none_or(|v| v == version)
    }

    /// Takes one event; returns the outcome once there is one.
    pub fn on_event(&mut self, event: &Event<String>) -> Option<Outcome> {
        // A device that updates on its own schedule finds nothing, is held or fails a try
        // and retries by itself: only a confirm or a rollback ends a watch that follows it.
        let follows_schedule = !self.spec.triggered && self.spec.expect_version.is_some();
        if follows_schedule
            && matches!(
                event,
                Event::UpToDate { .. }
                    | Event::UpdateFailed { .. }
                    | Event::ManifestRejected { .. }
                    | Event::VerifyFailed { .. }
            )
        {
            return None;
        }
        let outcome = match event {
            Event::Boot { version, state, .. } => {
                if self.from.is_none() {
                    self.from = Some(version.clone());
                }
                match &self.activated {
                    // The bootloader went back to the old slot: the new app never confirmed.
                    Some(new) if new != version => Some(Outcome::RolledBack {
                        failed_version: new.clone(),
                    }),
                    Some(_) => {
                        self.phase = Phase::SelfTest;
                        None
                    }
                    None if !self.spec.triggered
                        && self.spec.expect_version.as_deref() == Some(version.as_str())
                        && state == "valid" =>
                    {
                        Some(Outcome::Confirmed {
                            version: version.clone(),
                        })
                    }
                    None => None,
                }
            }
            Event::ManifestFetched { .. } | Event::ManifestVerified { .. } => {
                self.phase = Phase::Manifest;
                None
            }
            Event::Resuming { offset } => {
                self.phase = Phase::Downloading;
                self.progress = Some((u64::from(*offset), self.progress.map_or(0, |p| p.1)));
                None
            }
            Event::Progress {
                offset, total, rate, ..
            } => {
                self.phase = Phase::Downloading;
                self.progress = Some((*offset, *total));
                self.rate = *rate;
                None
            }
            Event::ConnectionDropped {
                quiet_ms, nat_idle_ms, ..
            } => {
                self.drops += 1;
                if let Some(quiet) = *quiet_ms {
                    self.shortest_quiet_drop_ms = Some(self.shortest_quiet_drop_ms.map_or(quiet, |q| q.min(quiet)));
                }
                if *nat_idle_ms > 0 {
                    self.nat_idle_ms = Some(*nat_idle_ms);
                }
                None
            }
            Event::Resumed { .. } => {
                self.resumes += 1;
                None
            }
            Event::VerifyOk { .. } => {
                self.phase = Phase::Verifying;
                None
            }
            Event::Activated { version, .. } => {
                self.activated = Some(version.clone());
                self.phase = Phase::Rebooting;
                None
            }
            Event::Rebooting { .. } => {
                self.phase = Phase::Rebooting;
                None
            }
            Event::Confirmed { version } if self.expected(version) => Some(Outcome::Confirmed {
                version: version.clone(),
            }),
            Event::Confirmed { version } => Some(Outcome::Rejected {
                reason: "unexpected-version".into(),
                message: format!(
                    "the device confirmed {version}, not the expected {}",
                    self.spec.expect_version.as_deref().unwrap_or("")
                ),
            }),
            Event::SelfTestFailed { .. } => Some(Outcome::RolledBack {
                failed_version: self.activated.clone().unwrap_or_default(),
            }),
            Event::RolledBack { failed_version } => Some(Outcome::RolledBack {
                failed_version: failed_version.clone(),
            }),
            Event::ManifestRejected { reason, message } | Event::VerifyFailed { reason, message } => {
                Some(Outcome::Rejected {
                    reason: reason.clone(),
                    message: message.clone(),
                })
            }
            Event::UpdateFailed { reason, message } if reason.starts_with("tls-") => Some(Outcome::TlsRefused {
                reason: reason.clone(),
                message: message.clone(),
            }),
            Event::UpdateFailed { reason, message } => Some(Outcome::DownloadFailed {
                reason: reason.clone(),
                message: message.clone(),
            }),
            Event::UpToDate { version } if self.expected(version) => Some(Outcome::UpToDate {
                version: version.clone(),
            }),
            Event::UpToDate { version } => Some(Outcome::Rejected {
                reason: "not-newer".into(),
                message: format!(
                    "the device runs {version} and refuses the release as not newer; expected {}",
                    self.spec.expect_version.as_deref().unwrap_or("")
                ),
            }),
            _ => None,
        };
        if outcome.is_some() {
            self.phase = Phase::Done;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn each_tls_refusal_the_modem_names_has_its_own_exit_code() {
        let refused = |reason: &str| Outcome::TlsRefused {
            reason: reason.into(),
            message: String::new(),
        };
        assert_eq!(refused("tls-handshake-failed").exit_code(), 8);
        assert_eq!(refused("tls-setup-refused").exit_code(), 8);
        assert_eq!(refused("tls-wrong-host").exit_code(), 9);
        assert_eq!(refused("tls-cert-expired").exit_code(), 10);
    }

    fn boot(version: &str, state: &str) -> Event<String> {
        Event::Boot {
            version: s(version),
            slot: s("ota_0"),
            state: s(state),
        }
    }

    fn triggered(expect: Option<&str>) -> Watcher {
        Watcher::new(WatchSpec {
            triggered: true,
            expect_version: expect.map(s),
        })
    }

    #[test]
    fn following_a_scheduled_device_waits_through_what_it_retries_by_itself() {
        let mut w = Watcher::new(WatchSpec {
            triggered: false,
            expect_version: Some(s("1.1.0")),
        });
        let script = [
            boot("1.0.0", "valid"),
            Event::NextCheck { in_s: 2 },
            Event::UpToDate { version: s("1.0.0") },
            Event::ManifestRejected {
                reason: s("outside-cohort"),
                message: s("not yet"),
            },
            Event::UpdateFailed {
                reason: s("download-gave-up"),
                message: s("no signal"),
            },
            Event::Activated {
                slot: s("ota_1"),
                version: s("1.1.0"),
            },
            boot("1.1.0", "pending_verify"),
        ];
        for e in &script {
            assert_eq!(w.on_event(e), None, "{e:?}");
        }
        assert_eq!(
            w.on_event(&Event::Confirmed { version: s("1.1.0") }),
            Some(Outcome::Confirmed { version: s("1.1.0") })
        );
        // A triggered watch still ends at the device's answer.
        let mut t = triggered(Some("1.1.0"));
        assert!(matches!(
            t.on_event(&Event::UpToDate { version: s("1.0.0") }),
            Some(Outcome::Rejected { .. })
        ));
    }

    #[test]
    fn an_update_ends_confirmed() {
        let mut w = triggered(Some("1.1.0"));
        let script = [
            boot("1.0.0", "valid"),
            Event::ManifestVerified {
                version: s("1.1.0"),
                size: 10,
                key: 0,
            },
            Event::Progress {
                offset: 5,
                total: 10,
                rate: 100,
                chunk: 5,
            },
            Event::ConnectionDropped {
                offset: 5,
                error: s("closed"),
                quiet_ms: Some(40_000),
                nat_idle_ms: 36_000,
            },
            Event::ConnectionDropped {
                offset: 5,
                error: s("HTTP 503"),
                quiet_ms: None,
                nat_idle_ms: 36_000,
            },
            Event::Resumed { offset: 5 },
            Event::VerifyOk { version: s("1.1.0") },
            Event::Activated {
                slot: s("ota_1"),
                version: s("1.1.0"),
            },
            Event::Rebooting {
                reason: s("update activated"),
            },
            boot("1.1.0", "pending_verify"),
        ];
        for e in &script {
            assert_eq!(w.on_event(e), None, "{e:?}");
        }
        assert_eq!((w.drops, w.resumes, w.phase), (2, 1, Phase::SelfTest));
        assert_eq!((w.shortest_quiet_drop_ms, w.nat_idle_ms), (Some(40_000), Some(36_000)));
        let out = w.on_event(&Event::Confirmed { version: s("1.1.0") }).unwrap();
        assert_eq!(out.exit_code(), 0);
        assert_eq!(w.from.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn each_failure_has_its_exit_code() {
        let mut w = triggered(None);
        w.on_event(&Event::Activated {
            slot: s("ota_1"),
            version: s("1.1.0"),
        });
        // The bootloader brought the old version back.
        assert_eq!(w.on_event(&boot("1.0.0", "valid")).unwrap().exit_code(), 3);

        let mut w = triggered(None);
        let out = w.on_event(&Event::SelfTestFailed { message: s("x") }).unwrap();
        assert_eq!(out.exit_code(), 3);

        for e in [
            Event::ManifestRejected {
                reason: s("bad-signature"),
                message: s("m"),
            },
            Event::VerifyFailed {
                reason: s("hash-mismatch"),
                message: s("m"),
            },
        ] {
            assert_eq!(triggered(None).on_event(&e).unwrap().exit_code(), 4);
        }
        let e = Event::UpdateFailed {
            reason: s("download-gave-up"),
            message: s("m"),
        };
        assert_eq!(triggered(None).on_event(&e).unwrap().exit_code(), 5);
        // Up to date is a success only if that is the version wanted.
        let e = Event::UpToDate { version: s("1.0.0") };
        assert_eq!(triggered(None).on_event(&e).unwrap().exit_code(), 0);
        assert_eq!(triggered(Some("1.1.0")).on_event(&e).unwrap().exit_code(), 4);
        assert_eq!(
            triggered(Some("2.0.0"))
                .on_event(&Event::Confirmed { version: s("1.1.0") })
                .unwrap()
                .exit_code(),
            4
        );
        assert_eq!(Outcome::Timeout { phase: "x" }.exit_code(), 6);
        assert_eq!(Outcome::PortError { message: s("x") }.exit_code(), 7);
    }

    #[test]
    fn watching_without_trigger_accepts_a_device_already_there() {
        let mut w = Watcher::new(WatchSpec {
            triggered: false,
            expect_version: Some(s("1.1.0")),
        });
        assert_eq!(w.on_event(&boot("1.1.0", "pending_verify")), None);
        assert_eq!(w.on_event(&boot("1.1.0", "valid")).unwrap().exit_code(), 0);
    }
}
