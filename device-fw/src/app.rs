//! The device app: what runs after the bootloader, on the chip and on the virtual bench.
//!
//! It announces the boot, brings the modem up, does the start duties (self-test and confirm
//! a fresh update, or note a rollback), then serves console commands until something asks
//! for a reset. It owns no hardware: the console and the modem UART come in as
//! `embedded-io-async` streams, the flash as `NorFlash`, time as a [`Clock`]; the firmware
//! glue and the bench supply them. Every event goes out as one `@ota {json}` line
//! ([`crate::wire::console`]).

use core::fmt::{self, Write as _};

use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::NorFlash;

use crate::clock::Clock;
use crate::esp::boot::{BootTarget, mark_valid};
use crate::esp::chip::Chip;
use crate::esp::otadata::OtaState;
use crate::http::HttpClient;
use crate::modem::{Modem, ModemConfig};
use crate::ota::engine::{DownloadConfig, DownloadError, OtaEvent};
use crate::ota::policy::{DeviceIdentity, Rejection};
use crate::ota::schedule::UpdatePolicy;
use crate::ota::update::{
    BootReport, ManifestBufs, Running, UpdateError, UpdateEvent, UpdateLayout, UpdateSink, after_boot, judge,
    self_test, update,
};
use crate::wire::console::{Command, Event, HELP, MAX_COMMAND_LINE, MAX_EVENT_LINE};

/// What the app needs to know about itself and its fleet (from the profile, at build time).
#[derive(Debug, Clone)]
pub struct AppConfig<'a> {
    pub product: &'a str,
    pub channel: &'a str,
    pub board: &'a str,
    pub chip: Chip,
    /// The app's project name (as in its app descriptor).
    pub project: &'a str,
    /// `<device_url>/<channel>/manifest.json`, used when a command names no URL.
    pub manifest_url: &'a str,
    /// Trusted release keys: the current one and, during a rotation, its successor.
    pub keys: &'a [[u8; 32]],
    pub download: DownloadConfig,
    pub layout: UpdateLayout,
    pub modem: ModemConfig,
    /// The device's stable id ([`crate::wire::rollout::device_id_from_hardware`]): its
    /// rollout cohort, its check times' seed and the id its reports carry.
    pub device_id: &'a str,
    /// When to check and attempt by itself (the profile's `[update]`).
    pub update: UpdatePolicy,
    /// Where outcome reports go (`[release] report_url`); `None`: not reported.
    pub report_url: Option<&'a str>,
}

/// Why the app wants the chip reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// An update was activated: boot it.
    Activated,
    /// This app failed its self-test and marked itself invalid: boot the previous one.
    SelfTestFailed,
    /// Asked for on the console.
    Requested,
}

/// Longest free-text message in an event.
const MESSAGE_LEN: usize = 200;

/// Formats into a fixed buffer, cutting at the end (messages are for people; codes carry
/// the meaning).
struct Text<const N: usize>(heapless::String<N>);

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn text<const N: usize>(args: fmt::Arguments<'_>) -> heapless::String<N> {
    let mut t = Text(heapless::String::new());
    let _ = t.write_fmt(args);
    t.0
}

fn slot_name(target: BootTarget) -> heapless::String<8> {
    match target {
        BootTarget::Factory => text(format_args!("factory")),
        BootTarget::Ota(n) => text(format_args!("ota_{n}")),
    }
}

fn state_name(state: OtaState) -> &'static str {
    match state {
        OtaState::New => "new",
        OtaState::PendingVerify => "pending_verify",
        OtaState::Valid => "valid",
        OtaState::Invalid => "invalid",
        OtaState::Aborted => "aborted",
        OtaState::Undefined => "undefined",
        OtaState::Unknown(_) => "unknown",
    }
}

/// The console: command lines in, event lines out, through fixed buffers.
struct Console<'c, Con> {
    io: &'c mut Con,
    line: [u8; MAX_COMMAND_LINE + 2],
    len: usize,
    /// Bytes read past the end of the last line.
    pending: [u8; 64],
    pending_at: usize,
    pending_len: usize,
    /// The current line overflowed: drop bytes until its end.
    overflow: bool,
    out: [u8; MAX_EVENT_LINE],
}

/// What the console read.
enum Input {
    Line(usize),
    TooLong,
    Closed,
}

impl<'c, Con: Read + Write> Console<'c, Con> {
    fn new(io: &'c mut Con) -> Self {
        Console {
            io,
            line: [0; MAX_COMMAND_LINE + 2],
            len: 0,
            pending: [0; 64],
            pending_at: 0,
            pending_len: 0,
            overflow: false,
            out: [0; MAX_EVENT_LINE],
        }
    }

    async fn emit(&mut self, event: &Event<&str>) {
        // Cannot fail: every event is built within MESSAGE_LEN-bounded strings.
        if let Ok(n) = event.write_line(&mut self.out) {
            let _ = self.io.write_all(&self.out[..n]).await;
            let _ = self.io.flush().await;
        }
    }

    /// A plain log line, for people.
    async fn log(&mut self, args: fmt::Arguments<'_>) {
        let line: heapless::String<MESSAGE_LEN> = text(args);
        let _ = self.io.write_all(line.as_bytes()).await;
        let _ = self.io.write_all(b"\r\n").await;
        let _ = self.io.flush().await;
    }

    /// Reads up to the next line ending.
    async fn read_line(&mut self) -> Input {
        loop {
            while self.pending_at < self.pending_len {
                let b = self.pending[self.pending_at];
                self.pending_at += 1;
                if b == b'\n' || b == b'\r' {
                    let n = self.len;
                    self.len = 0;
                    if core::mem::take(&mut self.overflow) {
                        return Input::TooLong;
                    }
                    if n > 0 {
                        return Input::Line(n);
                    }
                } else if self.len < self.line.len() {
                    self.line[self.len] = b;
                    self.len += 1;
                } else {
                    self.overflow = true;
                }
            }
            match self.io.read(&mut self.pending).await {
                Ok(0) | Err(_) => return Input::Closed,
                Ok(n) => {
                    self.pending_at = 0;
                    self.pending_len = n;
                }
            }
        }
    }
}

/// Turns the update's progress into console events.
struct Sink<'a, 'c, Con> {
    console: &'a mut Console<'c, Con>,
    manifest_url: &'a str,
}

impl<Con: Read + Write> UpdateSink for Sink<'_, '_, Con> {
    async fn event(&mut self, event: UpdateEvent<'_>) {
        let c = &mut *self.console;
        match event {
            UpdateEvent::ManifestFetched { bytes } => {
                c.emit(&Event::ManifestFetched {
                    url: self.manifest_url,
                    bytes: bytes as u32,
                })
                .await
            }
            UpdateEvent::ManifestAccepted { version, size, key } => {
                c.emit(&Event::ManifestVerified {
                    version,
                    size,
                    key: key as u8,
                })
                .await
            }
            UpdateEvent::Resuming { offset } => c.emit(&Event::Resuming { offset }).await,
            UpdateEvent::Download(d) => match d {
                OtaEvent::Progress {
                    written,
                    total,
                    rate_bps,
                    chunk,
                } => {
                    c.emit(&Event::Progress {
                        offset: written,
                        total,
                        rate: rate_bps,
                        chunk,
                    })
                    .await
                }
                OtaEvent::ConnectionLost {
                    offset,
                    error,
                    quiet_us,
                    nat_idle_us,
                } => {
                    let error: heapless::String<MESSAGE_LEN> = text(format_args!("{error}"));
                    c.emit(&Event::ConnectionDropped {
                        offset,
                        error: &error,
                        quiet_ms: quiet_us.map(|us| us / 1000),
                        nat_idle_ms: nat_idle_us / 1000,
                    })
                    .await
                }
                OtaEvent::Resumed { offset } => c.emit(&Event::Resumed { offset }).await,
                OtaEvent::RangeIgnored { skip } => {
                    c.log(format_args!("ota: server ignored Range, skipping {skip} bytes"))
                        .await
                }
                OtaEvent::ModemRecovered => c.log(format_args!("ota: modem brought up again")).await,
                OtaEvent::Backoff { us } => {
                    c.log(format_args!("ota: no progress, retrying in {} ms", us / 1000))
                        .await
                }
                _ => {}
            },
            UpdateEvent::ImageVerified { version } => c.emit(&Event::VerifyOk { version }).await,
            UpdateEvent::Activated { slot, version } => {
                let slot = slot_name(BootTarget::Ota(slot));
                c.emit(&Event::Activated { slot: &slot, version }).await
            }
            UpdateEvent::Confirmed { version } => c.emit(&Event::Confirmed { version }).await,
            UpdateEvent::SelfTestFailed => {
                c.emit(&Event::SelfTestFailed {
                    message: "the modem or the origin did not answer",
                })
                .await
            }
            UpdateEvent::RolledBack { failed_version } => c.emit(&Event::RolledBack { failed_version }).await,
        }
    }
}

/// The event that reports a failed update, by where it failed.
async fn report_failure<Con: Read + Write, E: fmt::Debug>(
    console: &mut Console<'_, Con>,
    error: &UpdateError<E>,
    running_version: &str,
) {
    let reason = error.code();
    let message: heapless::String<MESSAGE_LEN> = text(format_args!("{error}"));
    let message = message.as_str();
    let event = match error {
        UpdateError::Rejected(Rejection::NotNewer) => Event::UpToDate {
            version: running_version,
        },
        UpdateError::Manifest(_) | UpdateError::Rejected(_) | UpdateError::ImageUrl(_) => {
            Event::ManifestRejected { reason, message }
        }
        UpdateError::Download(DownloadError::HashMismatch | DownloadError::SizeMismatch { .. })
        | UpdateError::Image(_)
        | UpdateError::AppVersionMismatch
        | UpdateError::SecureVersionMismatch => Event::VerifyFailed { reason, message },
        _ => Event::UpdateFailed { reason, message },
    };
    console.emit(&event).await;
}

/// Brings the modem up and says how it went.
async fn modem_up<Con, U, C>(console: &mut Console<'_, Con>, http: &mut HttpClient<Modem<U, C>>) -> bool
where
    Con: Read + Write,
    U: Read + Write,
    C: Clock,
{
    match http.socket().bring_up().await {
        Ok(info) => {
            if info.fast_baud_refused {
                console
                    .log(format_args!(
                        "modem: stays at {} baud: it refused the profile's fast_baud or did not answer at it",
                        info.baud
                    ))
                    .await;
            }
            console
                .emit(&Event::ModemUp {
                    model: &info.model,
                    rssi: info.rssi,
                    operator: &info.operator,
                    baud: info.baud,
                })
                .await;
            true
        }
        Err(e) => {
            let message: heapless::String<MESSAGE_LEN> = text(format_args!("{e}"));
            console.emit(&Event::ModemFailed { message: &message }).await;
            false
        }
    }
}

/// Runs the app until it wants the chip reset. `uart_rate` retunes the modem UART, which
/// the profile's `modem.fast_baud` needs (see [`Modem::with_uart_rate`]).
pub async fn run<Con, U, C, F>(
    console: &mut Con,
    modem_uart: U,
    uart_rate: Option<fn(&mut U, u32) -> bool>,
    flash: &mut F,
    clock: C,
    cfg: &AppConfig<'_>,
    running: Running<'_>,
) -> Reboot
where
    Con: Read + Write,
    U: Read + Write,
    C: Clock + Clone,
    F: NorFlash,
    F::Error: fmt::Debug,
{
    let mut console = Console::new(console);
    let slot = slot_name(running.target);
    console
        .emit(&Event::Boot {
            version: running.version,
            slot: &slot,
            state: state_name(running.state),
        })
        .await;

    let mut modem = Modem::new(modem_uart, clock.clone(), cfg.modem.clone());
    if let Some(set) = uart_rate {
        modem = modem.with_uart_rate(set);
    }
    let mut http = HttpClient::new(modem);
    let mut modem_ok = modem_up(&mut console, &mut http).await;

    let start = {
        let test = async { modem_ok && self_test(&mut http, cfg.manifest_url).await };
        let mut sink = Sink {
            console: &mut console,
            manifest_url: cfg.manifest_url,
        };
        after_boot(flash, &cfg.layout, &running, test, &mut sink).await
    };
    let mut running = running;
    match start {
        Ok(BootReport::RollbackRequested) => {
            console
                .emit(&Event::Rebooting {
                    reason: "self-test failed",
                })
                .await;
            return Reboot::SelfTestFailed;
        }
        Ok(BootReport::Confirmed) => running.state = OtaState::Valid,
        Ok(BootReport::Steady) => {}
        Err(e) => {
            console
                .log(format_args!("ota: start duties failed: {e}; updates may be refused"))
                .await
        }
    }

    let identity = DeviceIdentity {
        product: cfg.product,
        channel: cfg.channel,
        chip: cfg.chip,
        board: cfg.board,
        running_version: running.version,
        secure_version: running.secure_version,
        failed_version: None,
        slot_size: 0,
        device_id: cfg.device_id,
    };

    loop {
        let n = match console.read_line().await {
            Input::Line(n) => n,
            Input::TooLong => {
                let message: heapless::String<MESSAGE_LEN> =
                    text(format_args!("{}", crate::wire::console::CommandError::TooLong));
                console.emit(&Event::CommandError { message: &message }).await;
                continue;
            }
            // No console (unplugged): nothing more will come; keep the device as it is.
            Input::Closed => core::future::pending::<usize>().await,
        };
        let line = console.line;
        let command = match Command::parse(&line[..n]) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                let message: heapless::String<MESSAGE_LEN> = text(format_args!("{e}"));
                console.emit(&Event::CommandError { message: &message }).await;
                continue;
            }
        };
        match command {
            Command::Update { manifest_url } | Command::Check { manifest_url } => {
                let url = manifest_url.unwrap_or(cfg.manifest_url);
                if !modem_ok {
                    modem_ok = modem_up(&mut console, &mut http).await;
                    if !modem_ok {
                        console
                            .emit(&Event::UpdateFailed {
                                reason: "modem-unavailable",
                                message: "the modem did not come up; check its power, SIM and antenna",
                            })
                            .await;
                        continue;
                    }
                }
                let mut sink = Sink {
                    console: &mut console,
                    manifest_url: url,
                };
                // The first drain-rate guess follows the rate the link runs at now.
                let mut download = cfg.download;
                download.uart_bytes_per_sec = http.socket().baud() / 10;
                if matches!(command, Command::Update { .. }) {
                    let result = update(
                        &mut http,
                        flash,
                        &clock,
                        &download,
                        &cfg.layout,
                        &identity,
                        running.target,
                        cfg.keys,
                        url,
                        &mut sink,
                    )
                    .await;
                    match result {
                        Ok(_) => {
                            console
                                .emit(&Event::Rebooting {
                                    reason: "update activated",
                                })
                                .await;
                            return Reboot::Activated;
                        }
                        Err(e) => report_failure(&mut console, &e, running.version).await,
                    }
                } else {
                    let mut bufs = ManifestBufs::default();
                    let judged = judge(
                        &mut http,
                        flash,
                        &clock,
                        &download,
                        &cfg.layout,
                        &identity,
                        running.target,
                        cfg.keys,
                        url,
                        &mut bufs,
                        &mut sink,
                    )
                    .await;
                    http.close().await;
                    match judged {
                        Ok(j) => {
                            let reason = j.verdict.err().map(|r| r.code());
                            console
                                .emit(&Event::Check {
                                    running: running.version,
                                    available: j.manifest.version,
                                    update: reason.is_none(),
                                    reason,
                                })
                                .await
                        }
                        Err(e) => report_failure(&mut console, &e, running.version).await,
                    }
                }
            }
            Command::Status => {
                let journal = cfg.layout.journal.load(flash).await.ok();
                let failed = journal.as_ref().and_then(|j| j.failed_version.clone());
                let resume = journal.and_then(|j| j.progress).map(|p| p.written);
                console
                    .emit(&Event::Status {
                        version: running.version,
                        slot: &slot,
                        state: state_name(running.state),
                        failed_version: failed.as_deref(),
                        resume_offset: resume,
                    })
                    .await
            }
            Command::Confirm => match mark_valid(flash, cfg.layout.boot.otadata).await {
                Ok(_) => {
                    running.state = OtaState::Valid;
                    console
                        .emit(&Event::Confirmed {
                            version: running.version,
                        })
                        .await
                }
                Err(e) => {
                    let message: heapless::String<MESSAGE_LEN> = text(format_args!("otadata write failed: {e:?}"));
                    console
                        .emit(&Event::UpdateFailed {
                            reason: "flash-failed",
                            message: &message,
                        })
                        .await
                }
            },
            Command::Reboot => {
                console.emit(&Event::Rebooting { reason: "requested" }).await;
                return Reboot::Requested;
            }
            Command::Version => {
                console
                    .emit(&Event::Version {
                        version: running.version,
                        project: cfg.project,
                        chip: cfg.chip.as_str(),
                    })
                    .await
            }
            Command::Help => console.emit(&Event::Help { commands: HELP }).await,
            Command::Defer { minutes } => console.emit(&Event::Deferred { minutes }).await,
        }
    }
}
