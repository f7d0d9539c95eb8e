//! The virtual device on the real bench: the device core's app loop behind a
//! pseudo-terminal, so that a serial tool, `otactl watch` or a person talks to it as to a
//! board on a USB port, and it talks real TCP to an origin on this machine.
//!
//! Everything the device touches is emulated as on the virtual bench (modem, cellular link
//! and NAT, NOR flash, the ESP-IDF bootloader's slot choice), but time is tokio's real clock,
//! optionally sped up ([`crate::time::use_scaled_time`]), and the console and the origin are
//! real. What a real board does that a host tool must cope with is reproduced on purpose:
//!
//! - the ROM and second-stage bootloader print their plain log lines before the app's first
//!   `@ota boot` event;
//! - a reset of a native-USB chip (USB-Serial-JTAG) makes its port vanish and come back:
//!   with [`PtyDeviceConfig::reenumerate`] every reboot closes the pseudo-terminal, removes
//!   the link, and opens a new one under the same path;
//! - the console is a UART at a set rate: a host that opens the port at another rate reads
//!   garbage and its commands arrive as garbage;
//! - the flash can live in a file that every erase and program writes through, so killing
//!   the process and starting it again is a power cycle.
//!
//! Each boot runs on a fresh current-thread runtime that is dropped at the reset: the modem,
//! the network and every connection die with the chip, as they do on a board whose reset
//! also resets the modem, and no task of an old boot can outlive it.

use std::fmt::Write as _;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_fw::app::{AlwaysNow, AppConfig, Reboot, run as run_app};
use device_fw::esp::boot::BootError;
use device_fw::esp::chip::Chip;
use device_fw::esp::image::build_test_image;
use device_fw::esp::partition::{
    PartitionTable, SUBTYPE_DATA_NVS, SUBTYPE_DATA_OTA, SUBTYPE_DATA_PHY, TABLE_LEN, TABLE_OFFSET, TYPE_APP, TYPE_DATA,
};
use device_fw::ota::update::{Running, UpdateLayout};
use device_fw::profile::Profile;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use rustix::termios::tcgetattr;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::device::{DeviceSetup, boot};
use crate::flash::{FlashTiming, SimFlash};
use crate::modem::{Dialect as EmuDialect, ModemEmulatorConfig, spawn_modem};
use crate::net::{NatConfig, NatExpiry, NetConfig, NetEvent, Network, loopback_addrs};
use crate::pty::{LinkError, LinkGuard, Pty};
use crate::scenario::DEVICE_UART_RX_RING;
use crate::time::{self, BenchClock};
use crate::uart::{retune, uart};

/// How long the port is gone while a native-USB chip resets and enumerates again.
pub const REENUMERATE_GAP: Duration = Duration::from_millis(500);

/// How long console output may wait for a host that does not read before it is dropped, as
/// a UART with nobody listening loses it (wall time: the host is real).
const CONSOLE_STALL: Duration = Duration::from_millis(200);

/// Receives the device's notes for the person running it (stderr in `otactl sim device`).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// What the factory flashes into a blank chip's `ota_0`.
#[derive(Debug, Clone)]
pub enum FactoryImage {
    /// An ESP-IDF app image file's bytes.
    Image(Vec<u8>),
    /// A small valid app image for the profile's chip, built here, at this version.
    Test { version: String },
}

/// One virtual device.
#[derive(Clone)]
pub struct PtyDeviceConfig {
    /// Where the console appears: a symlink to the pseudo-terminal's device.
    pub link: PathBuf,
    pub profile: Profile,
    /// Trusted release keys (at most two), as the firmware build compiles them in.
    pub keys: Vec<[u8; 32]>,
    /// The bucket's base URL as the device reaches it (`<base>/<channel>/manifest.json`).
    pub bucket_url: String,
    /// The carrier NAT between the modem and the origin (`idle_timeout: None`: public IP).
    pub nat: NatConfig,
    /// The console UART's rate; a host opening the port at another rate reads garbage.
    pub console_baud: u32,
    /// Bench seconds per wall second (1 = real time).
    pub time_scale: f64,
    /// The file the flash lives in; `None` for a chip that dies with the process.
    pub flash_file: Option<PathBuf>,
    /// Flashed when the chip is blank (no flash file yet, or none given).
    pub factory: FactoryImage,
    /// Every reset removes the port and brings a new one up under the same path.
    pub reenumerate: bool,
    pub log: Option<Log>,
    /// The device's stable id (the firmware derives it from the chip's MAC): its rollout
    /// cohort and the id its reports carry.
    pub device_id: String,
    /// The CA certificate (PEM) the device trusts for `https://`; `None`: plain HTTP only.
    pub ca_cert: Option<&'static [u8]>,
}

impl std::fmt::Debug for PtyDeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyDeviceConfig")
            .field("link", &self.link)
            .field("bucket_url", &self.bucket_url)
            .field("nat", &self.nat)
            .field("console_baud", &self.console_baud)
            .field("time_scale", &self.time_scale)
            .field("flash_file", &self.flash_file)
            .field("reenumerate", &self.reenumerate)
            .finish_non_exhaustive()
    }
}

impl PtyDeviceConfig {
    /// The profile's device with its defaults: NAT and console rate from the profile, the
    /// bucket the profile names, real time, an in-memory chip with a 0.1.0 test app, and a
    /// port that re-enumerates on reset.
    pub fn new(link: impl Into<PathBuf>, profile: Profile, keys: Vec<[u8; 32]>) -> Self {
        PtyDeviceConfig {
            link: link.into(),
            bucket_url: profile.release.device_url.clone().unwrap_or_default(),
            nat: NatConfig {
                idle_timeout: Some(profile.nat_idle_timeout()),
                on_expiry: NatExpiry::Reset,
            },
            console_baud: 115_200,
            time_scale: 1.0,
            flash_file: None,
            factory: FactoryImage::Test {
                version: "0.1.0".into(),
            },
            reenumerate: true,
            log: None,
            device_id: crate::device::BENCH_DEVICE_ID.to_owned(),
            ca_cert: None,
            profile,
            keys,
        }
    }

    /// `<bucket>/<channel>/manifest.json`: what `ota update` fetches when given no URL.
    pub fn manifest_url(&self) -> String {
        format!(
            "{}/{}/manifest.json",
            self.bucket_url.trim_end_matches('/'),
            self.profile.release.channel
        )
    }

    fn note(&self, text: &str) {
        if let Some(log) = &self.log {
            log(text);
        }
    }
}

/// Why the virtual device could not run.
#[derive(Debug, thiserror::Error)]
pub enum PtyDeviceError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("cannot open a pseudo-terminal: {0}")]
    Pty(io::Error),
    #[error("flash file {}", path.display())]
    FlashFile { path: PathBuf, source: io::Error },
    #[error("the flash holds no usable partition table at {TABLE_OFFSET:#x}: {0}")]
    PartitionTable(String),
    #[error("the profile's layout cannot carry updates: {0}")]
    Layout(String),
    #[error("the device config is unusable: {0}")]
    Config(String),
    #[error(
        "the bootloader found no bootable app; flash an image (delete the flash file to start from the factory image)"
    )]
    NoBootableApp,
    #[error("boot failed: {0}")]
    Boot(String),
    #[error("cannot start the device's runtime: {0}")]
    Runtime(io::Error),
}

/// Asks a running device to stop (power off), from any thread.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the device is asked to stop.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps `d` of wall time unless stopped first; `false` when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.is_stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
        !self.is_stopped()
    }
}

/// Stops `stop` on Ctrl-C, SIGTERM or SIGHUP (a closed terminal), so that the device
/// removes its link on the way out. A second signal exits at once.
pub fn stop_on_signals(stop: Stop) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut signals = rt.block_on(async {
        Ok::<_, io::Error>([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ])
    })?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async move {
            let [int, term, hup] = &mut signals;
            for round in 0.. {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                if round > 0 {
                    std::process::exit(130);
                }
                stop.stop();
            }
        })
    })?;
    Ok(())
}

/// A trusted release key from an SPKI PEM file (what `otactl keygen` writes).
pub fn load_public_key(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    VerifyingKey::from_public_key_pem(&text)
        .map(|k| k.to_bytes())
        .map_err(|e| format!("{}: not an Ed25519 public key in SPKI PEM ({e})", path.display()))
}

/// The modem the profile names, as the emulator speaks it.
fn emulator_dialect(profile: &Profile) -> EmuDialect {
    match profile.modem.dialect {
        device_fw::modem::Dialect::Sim7080 => EmuDialect::Sim7080,
        _ => EmuDialect::Sim7600,
    }
}

/// Checks that `url` is `http://` to a host on this machine; the error says why not.
pub fn check_loopback_url(url: &str) -> Result<(), String> {
    let parsed = device_fw::http::Target::parse(url).map_err(|e| format!("{url}: {e}"))?;
    loopback_addrs(parsed.url.host, parsed.url.port)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs the device until `stop`: boot, app, reboot, … The link is removed on the way out,
/// whatever the way.
pub fn run(cfg: &PtyDeviceConfig, stop: &Stop) -> Result<(), PtyDeviceError> {
    if cfg.keys.is_empty() || cfg.keys.len() > 2 {
        return Err(PtyDeviceError::Config(format!(
            "{} release keys given; the firmware holds one or two",
            cfg.keys.len()
        )));
    }
    if !(1.0..=time::MAX_TIME_SCALE).contains(&cfg.time_scale) {
        return Err(PtyDeviceError::Config(format!(
            "time scale {} is outside 1..={}",
            cfg.time_scale,
            time::MAX_TIME_SCALE
        )));
    }
    let (flash, setup) = prepare_flash(cfg)?;
    let mut port = Some(Port::open(&cfg.link, cfg.console_baud)?);
    cfg.note(&format!(
        "console on {} -> {} ({} baud)",
        cfg.link.display(),
        port.as_ref().map_or(Path::new(""), |p| p.pty.path.as_path()).display(),
        cfg.console_baud
    ));
    let mut reset = ResetCause::PowerOn;
    loop {
        if stop.is_stopped() {
            return Ok(());
        }
        let current = match port.take() {
            Some(p) => p,
            None => {
                let p = Port::open(&cfg.link, cfg.console_baud)?;
                cfg.note(&format!(
                    "port back: {} -> {}",
                    cfg.link.display(),
                    p.pty.path.display()
                ));
                p
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PtyDeviceError::Runtime)?;
        let outcome = rt.block_on(one_boot(cfg, &setup, flash.clone(), &current, reset, stop));
        drop(rt);
        let reboot = match outcome? {
            None => return Ok(()),
            Some(reboot) => reboot,
        };
        reset = ResetCause::Software;
        if cfg.reenumerate {
            current.drain(stop);
            drop(current);
            cfg.note(&format!(
                "reset ({reboot:?}): port gone for {} ms",
                REENUMERATE_GAP.as_millis()
            ));
            if !stop.sleep(REENUMERATE_GAP) {
                return Ok(());
            }
        } else {
            cfg.note(&format!("reset ({reboot:?})"));
            port = Some(current);
        }
    }
}

/// Loads the chip (or flashes a blank one) and reads its partition table as the bootloader
/// does.
fn prepare_flash(cfg: &PtyDeviceConfig) -> Result<(SimFlash, DeviceSetup), PtyDeviceError> {
    let size = cfg.profile.flash.size.bytes() as usize;
    let file_err = |path: &Path, source: io::Error| PtyDeviceError::FlashFile {
        path: path.to_owned(),
        source,
    };
    let existing = match &cfg.flash_file {
        Some(path) => SimFlash::open_file(path, size, FlashTiming::ESP32_TYPICAL).map_err(|e| file_err(path, e))?,
        None => None,
    };
    let flash = match existing {
        Some(flash) => {
            cfg.note(&format!(
                "flash: {} (kept from the last run)",
                cfg.flash_file.as_deref().unwrap_or(Path::new("")).display()
            ));
            flash
        }
        None => {
            let flash = factory_flash(cfg, size)?;
            if let Some(path) = &cfg.flash_file {
                flash.persist_to(path).map_err(|e| file_err(path, e))?;
                cfg.note(&format!("flash: {} (factory-flashed)", path.display()));
            }
            flash
        }
    };
    let (table, _) = PartitionTable::parse(&flash.snapshot(TABLE_OFFSET as usize, TABLE_LEN))
        .map_err(|e| PtyDeviceError::PartitionTable(format!("{e:?}")))?;
    let layout = UpdateLayout::from_table(&table, cfg.profile.device.chip)
        .map_err(|e| PtyDeviceError::Layout(format!("{e:?}")))?;
    let setup = DeviceSetup {
        profile: cfg.profile.clone(),
        keys: cfg.keys.clone(),
        table,
        layout,
        device_id: cfg.device_id.clone(),
        ca_cert: cfg.ca_cert,
    };
    Ok((flash, setup))
}

/// A blank chip with the profile's partition table and the factory app in `ota_0`,
/// otadata erased: what `otactl flash` leaves.
fn factory_flash(cfg: &PtyDeviceConfig, size: usize) -> Result<SimFlash, PtyDeviceError> {
    let table = cfg
        .profile
        .partition_table()
        .map_err(|e| PtyDeviceError::Layout(e.to_string()))?;
    let app = match &cfg.factory {
        FactoryImage::Image(bytes) => bytes.clone(),
        FactoryImage::Test { version } => {
            if version.is_empty() || version.len() > 31 {
                return Err(PtyDeviceError::Config(format!(
                    "factory version {version:?} must be 1 to 31 bytes"
                )));
            }
            let project = &cfg.profile.device.product[..cfg.profile.device.product.len().min(31)];
            let payload: Vec<u8> = (0..16 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
            build_test_image(cfg.profile.device.chip.image_chip_id(), version, project, &payload)
        }
    };
    let slot = cfg.profile.slots.ota_0;
    if app.len() > slot.size as usize {
        return Err(PtyDeviceError::Config(format!(
            "the factory image ({} bytes) does not fit ota_0 ({} bytes)",
            app.len(),
            slot.size
        )));
    }
    let flash = SimFlash::new(size, FlashTiming::ESP32_TYPICAL);
    flash.load(
        TABLE_OFFSET as usize,
        &table.to_bytes().map_err(|e| PtyDeviceError::Layout(format!("{e:?}")))?,
    );
    flash.load(slot.offset as usize, &app);
    Ok(flash)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetCause {
    PowerOn,
    Software,
}

/// One boot, from the ROM's first line to the app asking for a reset (`Some`) or the device
/// being stopped (`None`).
async fn one_boot(
    cfg: &PtyDeviceConfig,
    setup: &DeviceSetup,
    mut flash: SimFlash,
    port: &Port,
    reset: ResetCause,
    stop: &Stop,
) -> Result<Option<Reboot>, PtyDeviceError> {
    time::use_scaled_time(cfg.time_scale);
    let mut console = port.console(cfg.console_baud).map_err(PtyDeviceError::Pty)?;
    let life = async {
        let chip = setup.profile.device.chip;
        console.lines(&rom_lines(chip, reset, &setup.profile)).await;
        let mut lines = vec![
            idf_line("boot", "ESP-IDF v5.4 2nd stage bootloader"),
            idf_line("boot", "compile time Jan  1 2026 00:00:00"),
        ];
        lines.extend(partition_lines(&setup.table));
        console.lines(&lines).await;
        let view = match boot(&mut flash, setup).await {
            Ok(Some(view)) => view,
            Ok(None) => return Err(PtyDeviceError::Boot("the flash lost power during boot".into())),
            Err(BootError::NoBootableApp) => {
                console
                    .lines(&[idf_err("boot", "No bootable app partitions in the partition table")])
                    .await;
                return Err(PtyDeviceError::NoBootableApp);
            }
            Err(e) => return Err(PtyDeviceError::Boot(e.to_string())),
        };
        console
            .lines(&[
                idf_line(
                    "boot",
                    &format!("Loaded app from partition at offset {:#x}", view.booted.slot.offset),
                ),
                idf_line("boot", "Disabling RNG early entropy source..."),
            ])
            .await;
        cfg.note(&format!(
            "booted {} from {:?} ({:?})",
            view.version, view.booted.target, view.booted.state
        ));

        let net = Network::new(NetConfig::lte(cfg.nat));
        net.bridge_to_loopback();
        if let Some(log) = cfg.log.clone() {
            net.observe(Arc::new(move |event: &NetEvent| log(&describe(event))));
        }
        let profile = &setup.profile;
        // Not the chip's UART (`chip_uart`, the 128-byte FIFO, the flash holding the CPU):
        // on tokio's real clock a task wakes at a 1 ms tick at the earliest, which at
        // `--time-scale K` is K ms of device time, and 115200 baud brings 11.5 × K bytes in
        // that time. Without RTS/CTS (every shipped profile) the FIFO overflows past K ≈ 11:
        // thousands of bytes lost per 96 KiB update at K = 20, and still hundreds when a
        // parked read's buffer counts as FIFO room, since every write, stall and wait
        // between two reads costs a tick too; with RTS/CTS the modem would be held to 128
        // bytes a tick. So this device receives into a 2 KiB flow-controlled ring and its
        // flash does not stall the UART end: it loses no byte at any K and keeps the line
        // rate, but modem bytes may arrive while flash work runs, where the chip's FIFO
        // would overflow. The FIFO and the stall are checked in virtual time, where bench
        // time is exact (`cargo test -p sim --test chip_model`).
        let (device_uart, modem_uart) = uart(profile.modem.baud, DEVICE_UART_RX_RING, 1024);
        spawn_modem(ModemEmulatorConfig::new(emulator_dialect(profile)), modem_uart, net);

        let manifest_url = cfg.manifest_url();
        let mut modem = profile
            .modem_config()
            .map_err(|e| PtyDeviceError::Config(format!("modem.apn: {e:?}")))?;
        modem.ca_cert = setup.ca_cert;
        let project = view
            .booted
            .image
            .app_desc
            .project_name()
            .unwrap_or(&profile.device.product)
            .to_owned();
        let app_cfg = AppConfig {
            product: &profile.device.product,
            channel: &profile.release.channel,
            board: &profile.device.board,
            chip: profile.device.chip,
            project: &project,
            manifest_url: &manifest_url,
            keys: &setup.keys,
            download: profile.download_config(),
            layout: setup.layout.clone(),
            modem,
            device_id: &setup.device_id,
            update: profile.update_policy(),
            report_url: profile.release.report_url.as_deref(),
        };
        let running = Running::from_booted(&view.booted);
        Ok(run_app(
            &mut console,
            device_uart,
            Some(retune),
            &mut flash,
            BenchClock,
            &app_cfg,
            running,
            &mut AlwaysNow,
        )
        .await)
    };
    tokio::select! {
        reboot = life => reboot.map(Some),
        _ = stop.wait() => Ok(None),
    }
}

fn describe(event: &NetEvent) -> String {
    match event {
        NetEvent::Bridged { peer } => format!("net: modem connected to {peer} (real TCP)"),
        NetEvent::Refused { peer, reason } => format!("net: connection to {peer} refused: {reason}"),
        NetEvent::NatExpired { peer, idle, how } => format!(
            "net: the NAT forgot the idle mapping to {peer} after {} s ({})",
            idle.as_secs_f64(),
            match how {
                NatExpiry::Reset => "reset both ends",
                NatExpiry::Drop => "later packets dropped",
            }
        ),
    }
}

/// `I (<ms>) <tag>: <text>`, ESP-IDF's log format, with the bench's milliseconds since boot.
fn idf_line(tag: &str, text: &str) -> String {
    format!("I ({}) {tag}: {text}", time::now().as_millis())
}

fn idf_err(tag: &str, text: &str) -> String {
    format!("E ({}) {tag}: {text}", time::now().as_millis())
}

/// What the mask ROM prints before the second-stage bootloader runs.
fn rom_lines(chip: Chip, reset: ResetCause, profile: &Profile) -> Vec<String> {
    let mode = profile.flash.mode.as_str().to_ascii_uppercase();
    match chip {
        Chip::Esp32 => {
            let rst = match reset {
                ResetCause::PowerOn => "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
                ResetCause::Software => "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
            };
            vec![
                "ets Jul 29 2019 12:21:46".into(),
                String::new(),
                rst.into(),
                "configsip: 0, SPIWP:0xee".into(),
                "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00".into(),
                format!("mode:{mode}, clock div:2"),
                "load:0x3fff0030,len:7104".into(),
                "load:0x40078000,len:15576".into(),
                "load:0x40080400,len:4".into(),
                "load:0x40080404,len:3876".into(),
                "entry 0x4008064c".into(),
            ]
        }
        _ => {
            let (rom, build) = match chip {
                Chip::Esp32s3 => ("esp32s3-20210327", "Mar 27 2021"),
                Chip::Esp32c6 => ("esp32c6-20220919", "Sep 19 2022"),
                _ => ("esp32c3-api1-20210207", "Feb  7 2021"),
            };
            let rst = match reset {
                ResetCause::PowerOn => "rst:0x1 (POWERON),boot:0xc (SPI_FAST_FLASH_BOOT)",
                ResetCause::Software => "rst:0xc (RTC_SW_CPU_RST),boot:0xc (SPI_FAST_FLASH_BOOT)",
            };
            vec![
                format!("ESP-ROM:{rom}"),
                format!("Build:{build}"),
                rst.into(),
                "SPIWP:0xee".into(),
                format!("mode:{mode}, clock div:1"),
                "load:0x3fcd5820,len:0x1714".into(),
                "load:0x403cc710,len:0x968".into(),
                "load:0x403ce710,len:0x2f9c".into(),
                "entry 0x403cc710".into(),
            ]
        }
    }
}

/// The bootloader's partition table listing.
fn partition_lines(table: &PartitionTable) -> Vec<String> {
    let mut lines = vec![
        idf_line("boot", "Partition Table:"),
        idf_line("boot", "## Label            Usage          Type ST Offset   Length"),
    ];
    for (i, e) in table.entries().iter().enumerate() {
        let usage = match (e.kind, e.subtype) {
            (TYPE_APP, 0x00) => "factory app",
            (TYPE_APP, 0x10..=0x1F) => "OTA app",
            (TYPE_APP, 0x20) => "test app",
            (TYPE_DATA, SUBTYPE_DATA_OTA) => "OTA data",
            (TYPE_DATA, SUBTYPE_DATA_PHY) => "RF data",
            (TYPE_DATA, SUBTYPE_DATA_NVS) => "WiFi data",
            _ => "Unknown data",
        };
        let mut row = String::new();
        let _ = write!(
            row,
            "{i:2} {:<16} {usage:<16} {:02x} {:02x} {:08x} {:08x}",
            e.label_str().unwrap_or("?"),
            e.kind,
            e.subtype,
            e.offset,
            e.size
        );
        lines.push(idf_line("boot", &row));
    }
    lines.push(idf_line("boot", "End of partition table"));
    lines
}

/// A pseudo-terminal pair; we keep the host side (the slave) open ourselves so that its
/// settings and unread output survive a host tool closing and reopening the port, and so
/// The console port: a pseudo-terminal and the link that names it.
#[derive(Debug)]
struct Port {
    pty: Pty,
    _link: LinkGuard,
}

impl Port {
    fn open(link: &Path, baud: u32) -> Result<Port, PtyDeviceError> {
        let pty = Pty::open(baud).map_err(PtyDeviceError::Pty)?;
        let link = LinkGuard::create(link, &pty.path)?;
        Ok(Port { pty, _link: link })
    }

    /// The app's console on this port, registered with the current runtime.
    ///
    /// tokio's pipe ends take any pollable descriptor without `unsafe` (its `AsyncFd` now
    /// needs it), and a pty master polls like a pipe; each end gets its own duplicate.
    fn console(&self, baud: u32) -> io::Result<PtyConsole> {
        Ok(PtyConsole {
            rx: pipe::Receiver::from_owned_fd_unchecked(self.pty.master.try_clone()?)?,
            tx: pipe::Sender::from_owned_fd_unchecked(self.pty.master.try_clone()?)?,
            slave: self.pty.slave.clone(),
            baud,
            line_free_ns: 0,
            dropped: 0,
        })
    }

    /// Gives the host a moment to read what the device wrote before the port goes away
    /// (the `rebooting` event, above all), for as long as it keeps reading.
    fn drain(&self, stop: &Stop) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = u64::MAX;
        let mut last_progress = Instant::now();
        while Instant::now() < deadline && !stop.is_stopped() {
            let pending = rustix::io::ioctl_fionread(&*self.pty.slave).unwrap_or(0);
            if pending == 0 {
                return;
            }
            if pending < last {
                last = pending;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > CONSOLE_STALL {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The device's console on the pty master: `embedded-io-async` as the app takes it, paced
/// at the console's rate in bench time.
#[derive(Debug)]
pub struct PtyConsole {
    rx: pipe::Receiver,
    tx: pipe::Sender,
    slave: Arc<OwnedFd>,
    baud: u32,
    /// Bench ns when the console's TX line is free again.
    line_free_ns: u64,
    /// Bytes thrown away because the host did not read them.
    dropped: u64,
}

/// What a UART receiver makes of bytes sent at another rate: never text, never a line end.
fn garble(b: u8) -> u8 {
    0x80 | (b.rotate_left(3) ^ 0x5A)
}

impl PtyConsole {
    /// Whether the host's end runs at another rate than the device's UART.
    fn mismatched(&self) -> bool {
        tcgetattr(&*self.slave).is_ok_and(|t| t.output_speed() != self.baud)
    }

    /// Plain log lines.
    async fn lines(&mut self, lines: &[String]) {
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        let _ = embedded_io_async::Write::write_all(self, text.as_bytes()).await;
    }

    /// Writes what the pty takes within [`CONSOLE_STALL`]; the rest is lost.
    async fn put(&mut self, data: &[u8]) {
        let mut at = 0;
        let deadline = tokio::time::Instant::now() + CONSOLE_STALL;
        while at < data.len() {
            let Ok(Ok(())) = tokio::time::timeout_at(deadline, self.tx.writable()).await else {
                break;
            };
            match self.tx.try_write(&data[at..]) {
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
        }
        self.dropped += (data.len() - at) as u64;
    }
}

impl embedded_io_async::ErrorType for PtyConsole {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for PtyConsole {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.rx
                .readable()
                .await
                .map_err(|_| embedded_io_async::ErrorKind::Other)?;
            match self.rx.try_read(buf) {
                Ok(0) => continue,
                Ok(n) => {
                    if self.mismatched() {
                        buf[..n].iter_mut().for_each(|b| *b = garble(*b));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // No host end open (cannot happen while we hold one): wait for one.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => return Err(embedded_io_async::ErrorKind::Other),
            }
        }
    }
}

impl embedded_io_async::Write for PtyConsole {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let now = time::now_ns();
        let wire_ns = buf.len() as u64 * 10 * 1_000_000_000 / u64::from(self.baud.max(1));
        self.line_free_ns = self.line_free_ns.max(now) + wire_ns;
        if self.mismatched() {
            let garbled: Vec<u8> = buf.iter().map(|&b| garble(b)).collect();
            self.put(&garbled).await;
        } else {
            self.put(buf).await;
        }
        // A UART driver returns once the bytes are on the wire.
        time::sleep_until_ns(self.line_free_ns).await;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rustix::termios::{OptionalActions, tcsetattr};

    use super::*;

    #[test]
    fn garbage_is_never_text_or_a_line_end() {
        for b in 0..=255u8 {
            let g = garble(b);
            assert!(g >= 0x80, "{b:#x} -> {g:#x}");
        }
    }

    #[test]
    fn the_profile_table_matches_the_built_in_layout() {
        let profile = crate::scenario::profile_for(EmuDialect::Sim7600);
        assert_eq!(
            profile.partition_table().unwrap().to_bytes().unwrap(),
            PartitionTable::otactl_two_ota().to_bytes().unwrap()
        );
    }

    #[test]
    fn only_loopback_urls_pass() {
        assert!(check_loopback_url("http://127.0.0.1:8080/fleet").is_ok());
        assert!(check_loopback_url("http://localhost/fleet").is_ok());
        let err = check_loopback_url("http://ota.example.com/fleet").unwrap_err();
        assert!(err.contains("refused to dial ota.example.com:80"), "{err}");
        assert!(check_loopback_url("http://10.0.0.1/fleet").is_err());
        assert!(check_loopback_url("https://127.0.0.1/fleet").is_ok());
        assert!(check_loopback_url("ftp://127.0.0.1/fleet").is_err());
    }

    #[test]
    fn a_regular_file_is_never_replaced_by_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttyV0");
        std::fs::write(&path, b"precious").unwrap();
        let err = LinkGuard::create(&path, Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, LinkError::NotSymlink(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");

        let link = dir.path().join("ttyV1");
        std::os::unix::fs::symlink("/nonexistent/pts/9", &link).unwrap();
        let guard = LinkGuard::create(&link, Path::new("/dev/null")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/dev/null"));
        drop(guard);
        assert!(std::fs::symlink_metadata(&link).is_err(), "the link is removed on drop");
    }

    #[test]
    fn a_host_at_another_rate_reads_garbage_and_sends_garbage() {
        use embedded_io_async::{Read as _, Write as _};
        use std::io::{Read as _, Write as _};
        let pty = Pty::open(115_200).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = Port {
            _link: LinkGuard::create(&dir.path().join("tty"), &pty.path).unwrap(),
            pty,
        };
        let mut host = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&port.pty.path)
            .unwrap();
        let set_host_rate = |host: &std::fs::File, baud: u32| {
            let mut t = tcgetattr(host).unwrap();
            t.set_speed(baud).unwrap();
            tcsetattr(host, OptionalActions::Now, &t).unwrap();
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            time::use_real_time();
            let mut console = port.console(115_200).unwrap();
            let mut buf = [0u8; 64];

            console.write_all(b"@ota hello\r\n").await.unwrap();
            let n = host.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"@ota hello\r\n");
            host.write_all(b"version\r\n").unwrap();
            let n = console.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"version\r\n");

            set_host_rate(&host, 9600);
            console.write_all(b"@ota hello\r\n").await.unwrap();
            let n = host.read(&mut buf).unwrap();
            assert_eq!(n, 12);
            assert!(buf[..n].iter().all(|&b| b >= 0x80), "{:?}", &buf[..n]);
            host.write_all(b"version\r\n").unwrap();
            let n = console.read(&mut buf).await.unwrap();
            assert!(buf[..n].iter().all(|&b| b >= 0x80), "{:?}", &buf[..n]);
        });
    }
}
