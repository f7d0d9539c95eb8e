//! The device app: what runs after the bootloader, on the chip and on the virtual bench.
//!
//! It announces the boot, brings the modem up, does the start duties (self-test and confirm
//! a fresh update, or note a rollback, and report either), then waits for whichever comes
//! first: a console command or its next scheduled check ([`crate::ota::schedule`]). A field
//! device has nobody at its console, so everything the console can start the schedule
//! starts too; the console only adds a way in for the bench. It owns no hardware: the
//! console and the modem UART come in as `embedded-io-async` streams, the flash as
//! `NorFlash`, time as a [`Clock`]; the firmware glue and the bench supply them. Every event
//! goes out as one `@ota {json}` line ([`crate::wire::console`]).

mod console;
mod field;

use core::fmt;

use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::NorFlash;

/// The console's line reader, for the fuzz harness (`fuzz/`), which feeds it any bytes a
/// cable or a person can send; not an API.
#[doc(hidden)]
pub use self::console::{Console, Input};
use self::console::{MESSAGE_LEN, Sink, slot_name, state_name, text};
use crate::clock::Clock;
use crate::esp::boot::mark_valid;
use crate::esp::chip::Chip;
use crate::esp::otadata::OtaState;
use crate::http::{HttpClient, Validators};
use crate::modem::{Modem, ModemConfig};
use crate::ota::engine::DownloadConfig;
use crate::ota::policy::DeviceIdentity;
use crate::ota::schedule::{Permission, Schedule, UpdatePolicy, seed_from_id};
use crate::ota::update::{BootReport, Running, UpdateLayout, after_boot, self_test};
use crate::wire::console::{Command, Event, HELP};
use crate::wire::report::Outcome;

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

/// A release the schedule is about to install, as the app's hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub version: &'a str,
    /// Image bytes the download will fetch.
    pub size: u32,
    /// The app clock's time now (as [`Clock::now_us`]).
    pub now_us: u64,
}

/// The app's say in when an update happens: asked before every attempt the schedule
/// starts (battery low, a user at the device, its own server said "not yet"). An
/// `ota update` typed on the console is not asked: a person at the bench has decided.
pub trait UpdateHook {
    fn may_update(&mut self, offer: &Offer<'_>) -> Permission;
}

/// The hook of an app with no reason to wait: the reference firmware's.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysNow;

impl UpdateHook for AlwaysNow {
    fn may_update(&mut self, _: &Offer<'_>) -> Permission {
        Permission::Now
    }
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

/// The running app's state between commands and checks.
struct App<'a, 'c, Con, U, C, F, H> {
    console: Console<'c, Con>,
    http: HttpClient<Modem<U, C>>,
    modem_ok: bool,
    flash: &'a mut F,
    clock: C,
    cfg: &'a AppConfig<'a>,
    running: Running<'a>,
    identity: DeviceIdentity<'a>,
    schedule: Schedule,
    hook: &'a mut H,
    /// `ota defer`: no scheduled attempt before this time.
    defer_until: Option<u64>,
    /// Validators of the manifest last judged not for this device: the next check asks
    /// only whether it changed (`304`), which costs a few hundred bytes instead of two
    /// kilobytes. `None` after a verdict that could turn into an attempt.
    settled: Option<Validators>,
}

/// Runs the app until it wants the chip reset. `uart_rate` retunes the modem UART, which
/// the profile's `modem.fast_baud` needs (see [`Modem::with_uart_rate`]); `hook` decides
/// the moment of every scheduled update ([`UpdateHook`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<Con, U, C, F, H>(
    console: &mut Con,
    modem_uart: U,
    uart_rate: Option<fn(&mut U, u32) -> bool>,
    flash: &mut F,
    clock: C,
    cfg: &AppConfig<'_>,
    running: Running<'_>,
    hook: &mut H,
) -> Reboot
where
    Con: Read + Write,
    U: Read + Write,
    C: Clock + Clone,
    F: NorFlash,
    F::Error: fmt::Debug,
    H: UpdateHook,
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
    let modem_ok = modem_up(&mut console, &mut http).await;

    let (start, rolled_back) = {
        let test = async { modem_ok && self_test(&mut http, cfg.manifest_url).await };
        let mut sink = Sink {
            console: &mut console,
            manifest_url: cfg.manifest_url,
            rolled_back: None,
        };
        let start = after_boot(flash, &cfg.layout, &running, test, &mut sink).await;
        (start, sink.rolled_back)
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
        Err(ref e) => {
            console
                .log(format_args!("ota: start duties failed: {e}; updates may be refused"))
                .await
        }
    }

    let record = cfg
        .layout
        .journal
        .load(flash)
        .await
        .map(|j| j.schedule)
        .unwrap_or_default();
    let schedule = Schedule::new(cfg.update, record, seed_from_id(cfg.device_id), clock.now_us());
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
    let mut app = App {
        console,
        http,
        modem_ok,
        flash,
        clock,
        cfg,
        running,
        identity,
        schedule,
        hook,
        defer_until: None,
        settled: None,
    };

    // The outcome of the last attempt, now that this boot knows it.
    if matches!(start, Ok(BootReport::Confirmed)) {
        app.attempt_ended(true).await;
        app.report(running.version, Outcome::Confirmed, None).await;
        // The release it runs is what the channel said a moment ago: the next check can
        // wait a whole period, which spares the origin a request per update.
        app.schedule.check_started(app.clock.now_us());
    }
    if let Some(failed) = rolled_back {
        app.attempt_ended(false).await;
        app.report(&failed, Outcome::RolledBack, Some("not-confirmed")).await;
    }
    app.announce_next_check().await;

    loop {
        let line = match app.schedule.next_check_at() {
            None => app.console.read_line().await,
            Some(at) => {
                let wait = at.saturating_sub(app.clock.now_us());
                match select(app.console.read_line(), app.clock.sleep_us(wait)).await {
                    Either::First(input) => input,
                    Either::Second(()) => {
                        if let Some(reboot) = app.scheduled_check().await {
                            return reboot;
                        }
                        continue;
                    }
                }
            }
        };
        let n = match line {
            Input::Line(n) => n,
            Input::TooLong => {
                let message: heapless::String<MESSAGE_LEN> =
                    text(format_args!("{}", crate::wire::console::CommandError::TooLong));
                app.console.emit(&Event::CommandError { message: &message }).await;
                continue;
            }
            // No console (unplugged): only the schedule goes on.
            Input::Closed => match app.schedule.next_check_at() {
                Some(at) => {
                    app.clock.sleep_us(at.saturating_sub(app.clock.now_us())).await;
                    if let Some(reboot) = app.scheduled_check().await {
                        return reboot;
                    }
                    continue;
                }
                None => core::future::pending::<usize>().await,
            },
        };
        let line = app.console.line;
        let command = match Command::parse(&line[..n]) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                let message: heapless::String<MESSAGE_LEN> = text(format_args!("{e}"));
                app.console.emit(&Event::CommandError { message: &message }).await;
                continue;
            }
        };
        if let Some(reboot) = app.command(command).await {
            return reboot;
        }
    }
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
    /// Runs one console command; `Some` when the chip must reset.
    async fn command(&mut self, command: Command<'_>) -> Option<Reboot> {
        match command {
            Command::Update { manifest_url } => {
                let url = manifest_url.unwrap_or(self.cfg.manifest_url);
                if self.ensure_modem().await {
                    return self.attempt(url).await;
                }
            }
            Command::Check { manifest_url } => {
                let url = manifest_url.unwrap_or(self.cfg.manifest_url);
                if self.ensure_modem().await {
                    self.check_only(url).await;
                }
            }
            Command::Status => {
                let journal = self.cfg.layout.journal.load(self.flash).await.ok();
                let failed = journal.as_ref().and_then(|j| j.failed_version.clone());
                let resume = journal.and_then(|j| j.progress).map(|p| p.written);
                let slot = slot_name(self.running.target);
                self.console
                    .emit(&Event::Status {
                        version: self.running.version,
                        slot: &slot,
                        state: state_name(self.running.state),
                        failed_version: failed.as_deref(),
                        resume_offset: resume,
                    })
                    .await;
                self.announce_next_check().await;
            }
            Command::Confirm => match mark_valid(self.flash, self.cfg.layout.boot.otadata).await {
                Ok(_) => {
                    self.running.state = OtaState::Valid;
                    self.console
                        .emit(&Event::Confirmed {
                            version: self.running.version,
                        })
                        .await
                }
                Err(e) => {
                    let message: heapless::String<MESSAGE_LEN> = text(format_args!("otadata write failed: {e:?}"));
                    self.console
                        .emit(&Event::UpdateFailed {
                            reason: "flash-failed",
                            message: &message,
                        })
                        .await
                }
            },
            Command::Defer { minutes } => {
                self.defer_until = (minutes > 0).then(|| self.clock.now_us() + u64::from(minutes) * 60 * 1_000_000);
                self.console.emit(&Event::Deferred { minutes }).await;
            }
            Command::Reboot => {
                self.console.emit(&Event::Rebooting { reason: "requested" }).await;
                return Some(Reboot::Requested);
            }
            Command::Version => {
                self.console
                    .emit(&Event::Version {
                        version: self.running.version,
                        project: self.cfg.project,
                        chip: self.cfg.chip.as_str(),
                    })
                    .await
            }
            Command::Help => self.console.emit(&Event::Help { commands: HELP }).await,
        }
        None
    }

    /// Brings the modem up if it is not; says so when it cannot.
    async fn ensure_modem(&mut self) -> bool {
        if !self.modem_ok {
            self.modem_ok = modem_up(&mut self.console, &mut self.http).await;
            if !self.modem_ok {
                self.console
                    .emit(&Event::UpdateFailed {
                        reason: "modem-unavailable",
                        message: "the modem did not come up; check its power, SIM and antenna",
                    })
                    .await;
            }
        }
        self.modem_ok
    }
}
