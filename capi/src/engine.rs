//! The engine: settings, flash layout and what runs, found once at `otactl_init`, and one
//! async function per C call. Each call brings the modem up itself, so a call needs nothing
//! from an earlier one but the engine, and the modem may be powered off between calls.

use core::cell::{Cell, RefCell};
use core::fmt::Write as _;

use device_fw::esp::boot::{BootTarget, read_otadata};
use device_fw::esp::image::{APP_DESC_LEN, APP_DESC_MAGIC, APP_DESC_OFFSET, AppDesc};
use device_fw::esp::otadata::{OtaState, active_entry};
use device_fw::esp::partition::{PartitionTable, TABLE_LEN};
use device_fw::http::HttpClient;
use device_fw::modem::Modem;
use device_fw::ota::engine::DownloadConfig;
use device_fw::ota::policy::DeviceIdentity;
use device_fw::ota::update::{
    Activated, BootReport, ManifestBufs, Running, Source, UpdateError, UpdateLayout, after_boot, judge, self_test,
    update,
};
use embedded_storage_async::nor_flash::ReadNorFlash;

use crate::config::Settings;
use crate::events::{self, Sink};
use crate::io::{CallbackClock, CallbackError, Flash, Io, Uart, set_uart_baud};
use crate::status::Status;

/// Longest last-error text, NUL included.
pub const ERROR_TEXT_BYTES: usize = 192;

/// Longest failure text kept before it is copied to the last-error buffer.
const FAILURE_TEXT_BYTES: usize = 160;

/// Why a call failed: its code and, in words, the details the code cannot carry.
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub text: heapless::String<FAILURE_TEXT_BYTES>,
}

impl Failure {
    pub fn new(status: Status, args: core::fmt::Arguments<'_>) -> Self {
        let mut text = heapless::String::new();
        // Cut when longer than the buffer: the code still says what happened.
        let _ = text.write_fmt(args);
        Failure { status, text }
    }

    fn update(e: &UpdateError<CallbackError>) -> Self {
        Failure::new(Status::from_update_error(e), format_args!("{e}"))
    }
}

/// What the bootloader started.
#[derive(Debug)]
pub struct RunningApp {
    pub target: BootTarget,
    pub state: Cell<OtaState>,
    pub version: heapless::String<31>,
    pub secure_version: u32,
}

/// Everything an `otactl_*` call needs, in the caller's state memory.
#[derive(Debug)]
pub struct Engine {
    pub io: Io,
    pub settings: Settings,
    pub layout: UpdateLayout,
    pub running: RunningApp,
    /// Set while a call runs, so that a call from inside a callback is refused instead of
    /// reusing the memory the running call's future lives in.
    pub busy: Cell<bool>,
    /// NUL-terminated text of the last failure.
    pub last_error: RefCell<[u8; ERROR_TEXT_BYTES]>,
}

/// A release the check found.
#[derive(Debug)]
pub struct Offer {
    /// `Ok` when this device would install it; else the policy's reason.
    pub verdict: Result<(), Status>,
    pub version: heapless::String<31>,
    pub size: u32,
}

impl Engine {
    /// Reads the partition table, finds the running app and its otadata state.
    pub async fn start(io: Io, settings: Settings) -> Result<Engine, Failure> {
        let mut flash = Flash {
            io: &io,
            capacity: settings.flash_size,
        };
        let flash_failed = |e: CallbackError| Failure::new(Status::Flash, format_args!("flash read failed ({})", e.0));
        let mut raw = [0u8; TABLE_LEN];
        flash
            .read(settings.table_offset, &mut raw)
            .await
            .map_err(flash_failed)?;
        let (table, _) = PartitionTable::parse(&raw).map_err(|e| {
            Failure::new(
                Status::PartitionTable,
                format_args!("partition table at {:#x}: {e}", settings.table_offset),
            )
        })?;
        let layout = UpdateLayout::from_table(&table, settings.chip)
            .map_err(|e| Failure::new(Status::Layout, format_args!("{e}")))?;
        let at = settings.running_app_offset;
        let boot = &layout.boot;
        let (target, slot) = match boot.factory.filter(|f| f.offset == at) {
            Some(f) => (BootTarget::Factory, f),
            None => match boot.ota.iter().position(|s| s.offset == at) {
                Some(i) => (BootTarget::Ota(i), boot.ota[i]),
                None => {
                    return Err(Failure::new(
                        Status::NotAnAppSlot,
                        format_args!("running_app_offset {at:#x} is not the start of an OTA slot or the factory app"),
                    ));
                }
            },
        };
        let mut desc = AppDesc { raw: [0; APP_DESC_LEN] };
        flash
            .read(slot.offset + APP_DESC_OFFSET as u32, &mut desc.raw)
            .await
            .map_err(flash_failed)?;
        let version = match desc.version() {
            Some(v) if desc.raw[..4] == APP_DESC_MAGIC.to_le_bytes() && !v.is_empty() => v,
            _ => {
                return Err(Failure::new(
                    Status::RunningAppUnreadable,
                    format_args!("no app descriptor at {:#x}", slot.offset + APP_DESC_OFFSET as u32),
                ));
            }
        };
        let entries = read_otadata(&mut flash, boot.otadata).await.map_err(flash_failed)?;
        // As the firmware reads it: the active entry's state when it selects the running
        // slot; an app started by a fallback has no entry speaking for it.
        let count = boot.ota.len();
        let state = match (target, active_entry(&entries)) {
            (BootTarget::Ota(i), Some(a)) if entries[a].seq.wrapping_sub(1) as usize % count == i => entries[a].state,
            _ => OtaState::Undefined,
        };
        let running = RunningApp {
            target,
            state: Cell::new(state),
            // Both hold at most 31 bytes: the descriptor's field is 32 with its NUL.
            version: heapless::String::try_from(version).unwrap_or_default(),
            secure_version: desc.secure_version(),
        };
        Ok(Engine {
            io,
            settings,
            layout,
            running,
            busy: Cell::new(false),
            last_error: RefCell::new([0; ERROR_TEXT_BYTES]),
        })
    }

    pub fn set_last_error(&self, text: &str) {
        let mut buf = self.last_error.borrow_mut();
        let n = text.len().min(ERROR_TEXT_BYTES - 1);
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        buf[n] = 0;
    }

    fn flash(&self) -> Flash<'_> {
        Flash {
            io: &self.io,
            capacity: self.settings.flash_size,
        }
    }

    fn identity(&self) -> DeviceIdentity<'_> {
        let s = &self.settings;
        DeviceIdentity {
            product: &s.product,
            channel: &s.channel,
            chip: s.chip,
            board: &s.board,
            running_version: &self.running.version,
            secure_version: self.running.secure_version,
            failed_version: None,
            slot_size: 0,
            device_id: &s.device_id,
        }
    }

    fn http(&self) -> HttpClient<Modem<Uart<'_>, CallbackClock<'_>>> {
        let mut modem = Modem::new(Uart(&self.io), CallbackClock(&self.io), self.settings.modem.clone());
        if self.settings.modem.fast_baud.is_some() && self.io.has_set_baud() {
            modem = modem.with_uart_rate(set_uart_baud);
        }
        HttpClient::new(modem)
    }

    /// Brings the modem up; the engine's settings for the rate it runs at.
    async fn modem_up(
        &self,
        http: &mut HttpClient<Modem<Uart<'_>, CallbackClock<'_>>>,
    ) -> Result<DownloadConfig, Failure> {
        let info = http
            .socket()
            .bring_up()
            .await
            .map_err(|e| Failure::new(Status::Modem, format_args!("{e}")))?;
        events::modem_up(&self.io, &info);
        let mut download = self.settings.download;
        download.uart_bytes_per_sec = info.baud / 10;
        Ok(download)
    }
}

/// `otactl_check`: fetch and judge the manifest; touches no flash but the journal's read.
pub async fn check(engine: &Engine) -> Result<Offer, Failure> {
    let mut http = engine.http();
    let download = engine.modem_up(&mut http).await?;
    let mut flash = engine.flash();
    let mut bufs = ManifestBufs::default();
    let source = Source {
        manifest_url: &engine.settings.manifest_url,
        keys: &engine.settings.keys,
        known: None,
    };
    let judged = judge(
        &mut http,
        &mut flash,
        &CallbackClock(&engine.io),
        &download,
        &engine.layout,
        &engine.identity(),
        engine.running.target,
        source,
        &mut bufs,
        &mut Sink(&engine.io),
    )
    .await;
    http.close().await;
    match judged {
        Ok(Some(judged)) => Ok(Offer {
            verdict: judged.verdict.map_err(|r| Status::from_core_code(r.code())),
            version: heapless::String::try_from(judged.manifest.version).unwrap_or_default(),
            size: judged.manifest.size,
        }),
        Ok(None) => Err(Failure::new(
            Status::ManifestUnreachable,
            format_args!("the origin answered 304 to an unconditional request"),
        )),
        Err(e) => Err(Failure::update(&e)),
    }
}

/// `otactl_update`: one whole update; on success otadata selects the new slot.
pub async fn install(engine: &Engine) -> Result<Activated, Failure> {
    let mut http = engine.http();
    let download = engine.modem_up(&mut http).await?;
    let mut flash = engine.flash();
    let result = update(
        &mut http,
        &mut flash,
        &CallbackClock(&engine.io),
        &download,
        &engine.layout,
        &engine.identity(),
        engine.running.target,
        &engine.settings.keys,
        &engine.settings.manifest_url,
        &mut Sink(&engine.io),
    )
    .await;
    http.close().await;
    result.map_err(|e| Failure::update(&e))
}

/// `otactl_after_boot`: confirm (or refuse) a fresh update after its self-test, and record a
/// version that was rolled back from. The modem is only brought up for a self-test.
pub async fn start_duties(engine: &Engine) -> Result<BootReport, Failure> {
    let mut http = engine.http();
    let running = Running {
        target: engine.running.target,
        state: engine.running.state.get(),
        version: &engine.running.version,
        secure_version: engine.running.secure_version,
    };
    let url: &str = &engine.settings.manifest_url;
    let test = async {
        match engine.modem_up(&mut http).await {
            Ok(_) => self_test(&mut http, url).await,
            Err(f) => {
                engine.set_last_error(&f.text);
                false
            }
        }
    };
    let mut flash = engine.flash();
    let report = after_boot(&mut flash, &engine.layout, &running, test, &mut Sink(&engine.io))
        .await
        .map_err(|e| Failure::update(&e))?;
    if report == BootReport::Confirmed {
        engine.running.state.set(OtaState::Valid);
    }
    Ok(report)
}
