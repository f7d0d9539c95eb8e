//! Whole-bench scenarios: an origin, a cellular network with its NAT, a modem emulator on a
//! paced UART, NOR flash, and the device core running one update strategy, all in virtual
//! time. The benchmark binary and the integration tests both run these.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use device_fw::http::HttpClient;
use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig};
use device_fw::ota::inflating::FormWriter;
use device_fw::ota::{DownloadConfig, DownloadMode, ImageTarget, InflatingWriter, OtaEvent, Slot, SlotWriter};
use device_fw::profile::Profile;
use device_fw::wire::{compressed, delta};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::flash::{FlashTiming, SimFlash};
use crate::modem::{Dialect as EmuDialect, ModemEmulatorConfig, ModemHandle, spawn_modem};
use crate::net::{NatConfig, NatExpiry, NetConfig, Network};
use crate::origin::{OriginBehaviour, OriginHandle, spawn_origin, spawn_tls_origin};
use crate::time::{self, BenchClock};
use crate::uart::{UartEnd, chip_uart, retune};

mod download;
mod random_faults;
mod shipped;
use download::{raw_writer, run_download};
use random_faults::inject_random_faults;
pub use random_faults::random_fault_spec;
pub use shipped::{app_image, cpu_model_json};

/// The origin's host name on the bench network.
pub const ORIGIN_HOST: &str = "ota.example.com";
pub const IMAGE_PATH: &str = "/fw/app.bin";
/// The flow-controlled receive buffer of the benches that do not yet model the chip's UART
/// (the app-level device and the pseudo-terminal device). The timed scenarios here use the
/// chip's own: its 128-byte FIFO ([`crate::uart::chip_uart`]), which is all the firmware's
/// esp-hal driver has.
pub const DEVICE_UART_RX_RING: usize = 2048;
/// The seed field case's image.
pub const SEED_IMAGE_BYTES: usize = 233_040;
/// The image sizes seed-cgnat runs: the field's image, 1 MiB, and the largest app slot of a
/// 4 MB two-OTA layout (1,856 KiB), where the modem's buffer holds only part of the image and
/// a naive drain outlasts the NAT whatever its read size.
pub const SEED_SIZES: [usize; 3] = [SEED_IMAGE_BYTES, 1 << 20, 1_900_544];

/// How the device updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// TinyGSM + `Update`: one GET, 64-byte `CIPRXGET` reads, sector-buffered flash writes,
    /// no resume.
    Naive,
    /// otactl's engine: Range chunks paced against the NAT, 1460-byte reads, resume.
    Otactl,
}

/// Faults injected while the update runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    None,
    /// Seeded random transient faults of every kind.
    Random {
        seed: u64,
    },
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub scenario: String,
    pub strategy: Strategy,
    pub dialect: EmuDialect,
    pub image_bytes: usize,
    pub image_seed: u64,
    pub baud: u32,
    pub nat: NatConfig,
    /// What the device's profile believes the NAT timeout is.
    pub profile_nat_idle: Duration,
    pub origin: OriginBehaviour,
    pub modem_rx_buffer: usize,
    /// RTS/CTS wired between chip and modem: a full UART receive FIFO holds the modem
    /// instead of losing its bytes.
    pub flow_control: bool,
    /// The profile's `modem.fast_baud`: bring-up raises the UART to it with `AT+IPR`.
    pub fast_baud: Option<u32>,
    /// NAT-paced Range chunks (the engine's default). `false` is the `otactl-no-pacing`
    /// control: resume from the written offset, but ask for the whole rest each time.
    pub pacing: bool,
    pub faults: Faults,
    /// Give up (outcome "failed") after this much virtual time.
    pub deadline: Duration,
    /// Print the engine's events with their virtual time to stderr.
    pub trace: bool,
    /// Bytes the device asks per `CIPRXGET=2` / `CARECV` read. `None`: 64 for the naive
    /// strategy (TinyGSM's default receive FIFO), the dialect's largest for otactl. The
    /// calibration replays published sketches whose FIFO size set this.
    pub read_block: Option<usize>,
    /// The modem's per-command latency. `None`: the emulator's default. The calibration
    /// fits it on one published figure, then predicts the others with the fitted value.
    pub command_latency: Option<Duration>,
    /// `https://`: the origin terminates TLS and the device trusts a CA (SIM7600 `CCH*`).
    pub tls: Option<TlsSpec>,
    /// The image itself (a real firmware's bytes); `None`: `image_bytes` random bytes from
    /// `image_seed`.
    pub image: Option<Arc<[u8]>>,
    /// Which form of the image the device fetches (otactl only).
    pub form: SeedForm,
}

/// The form of the release a scenario's device fetches: the image, its compressed form, or
/// a patch from `base`, which the device then runs (in [`BASE_SLOT`]).
#[derive(Debug, Clone, Default)]
pub enum SeedForm {
    #[default]
    Raw,
    Compressed,
    Delta {
        base: Arc<[u8]>,
    },
}

/// What TLS added to a run, from the modem's side of the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TlsCost {
    /// Sessions set up: one per connection (the first, and one after each drop).
    pub handshakes: u64,
    /// Bytes the modem received beyond the plaintext: the handshakes (certificate chain
    /// included) and every record's header and tag. Part of `airtime_overhead`.
    pub overhead_bytes: u64,
}

impl TlsCost {
    fn of(spec: &RunSpec, modem: &ModemHandle) -> Option<TlsCost> {
        let stats = modem.stats();
        spec.tls.as_ref().map(|_| TlsCost {
            handshakes: stats.tls_handshakes,
            overhead_bytes: stats.tls_overhead_bytes,
        })
    }
}

/// An `https://` run: what the origin serves and what the device trusts.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// The origin's certificate and key (rustls).
    pub server: Arc<rustls::ServerConfig>,
    /// The CA certificate (PEM) the device's profile carries; the modem checks the
    /// server's chain against it alone.
    pub device_ca: &'static [u8],
}

impl TlsSpec {
    /// A fresh throwaway CA, a certificate for the bench origin's host, the device trusting
    /// that CA.
    pub fn trusted() -> TlsSpec {
        let ca = crate::tls::TestCa::new("otactl bench CA");
        let server = ca.issue(&[ORIGIN_HOST], crate::tls::Validity::Current);
        TlsSpec {
            server: server.server_config(),
            device_ca: Box::leak(ca.cert_pem.into_bytes().into_boxed_slice()),
        }
    }
}

impl RunSpec {
    /// The seed field case: 233,040-byte image, SIM7600 at 115200 baud, an LTE link that
    /// delivers the image in under a second into a modem buffer larger than the image, a NAT
    /// that resets mappings idle for 59 s, ESP32 flash timings.
    pub fn seed(strategy: Strategy) -> Self {
        RunSpec {
            scenario: "seed-cgnat".into(),
            strategy,
            dialect: EmuDialect::Sim7600,
            image_bytes: SEED_IMAGE_BYTES,
            image_seed: 1,
            baud: 115_200,
            nat: NatConfig {
                idle_timeout: Some(Duration::from_secs(59)),
                on_expiry: NatExpiry::Reset,
            },
            profile_nat_idle: Duration::from_secs(59),
            // The origin keeps an idle connection open longer than the NAT does (nginx's
            // default keepalive_timeout is 75 s), so the mapping, not the server, ends it.
            origin: OriginBehaviour {
                keep_alive_timeout: Duration::from_secs(75),
                ..OriginBehaviour::default()
            },
            modem_rx_buffer: 512 * 1024,
            flow_control: false,
            fast_baud: None,
            pacing: true,
            faults: Faults::None,
            deadline: Duration::from_secs(3600),
            trace: false,
            read_block: None,
            command_latency: None,
            tls: None,
            image: None,
            form: SeedForm::Raw,
        }
    }
}

/// One run's result, as the benchmark prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// `https://` runs: what TLS cost through the modem.
    pub tls: Option<TlsCost>,
    pub scenario: String,
    pub strategy: String,
    pub outcome: &'static str,
    pub virtual_s: f64,
    pub bytes_written: u64,
    pub image_bytes: u64,
    pub uart_limit_s: f64,
    pub ratio: f64,
    pub baud: u32,
    pub nat_drops: u64,
    /// Bytes the modem received (read by the device or thrown away with a dropped socket,
    /// HTTP heads included) ÷ image bytes: what the update cost in airtime.
    pub airtime_overhead: f64,
    /// Range requests the engine sent (otactl rows): how much the chunking did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    /// Resumes and HTTP requests of a download that finished (a failed one does not report).
    pub resumes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
    /// Attempts the device app made (each after the schedule's backoff); 1 when the first
    /// one finished.
    pub attempts: u32,
    /// Transient faults injected during the run.
    pub faults: u64,
    /// Modem bytes that reached the chip's UART while its receive FIFO was full and were
    /// lost (only possible without RTS/CTS) while the engine was at work. It must keep this
    /// at 0.
    pub uart_bytes_lost: u64,
    /// The same while the app waited between attempts, when nothing reads the UART: the
    /// modem's notices of that time, which the chip loses too, and harmlessly.
    pub idle_uart_bytes_lost: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The slot holds exactly the image (checked against the bench's copy, not the device's
    /// own hash).
    pub slot_matches: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_path_ram_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Deterministic image bytes (not compressible, like firmware).
pub fn image(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// The OTA slot the bench writes: `ota_1` of the default 4 MB layout.
pub const SLOT: Slot = Slot {
    offset: 0x1F_0000,
    size: 0x1E_0000,
};
pub const FLASH_BYTES: usize = 4 * 1024 * 1024;
/// The running app's slot: a patch's base.
pub const BASE_SLOT: Slot = Slot {
    offset: 0x1_0000,
    size: 0x1E_0000,
};

/// Runs one scenario on a fresh paused runtime.
pub fn run(spec: &RunSpec) -> RunResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    rt.block_on(run_in_runtime(spec))
}

struct World {
    net: Network,
    origin: OriginHandle,
    modem: ModemHandle,
    flash: SimFlash,
    device_uart: UartEnd,
}

fn build_world(spec: &RunSpec, image: &[u8]) -> World {
    let mut net_cfg = NetConfig::lte(spec.nat);
    net_cfg.modem_rx_buffer = spec.modem_rx_buffer;
    let net = Network::new(net_cfg);
    let origin = match &spec.tls {
        Some(tls) => spawn_tls_origin(net.listen(ORIGIN_HOST, 443), spec.origin.clone(), tls.server.clone()),
        None => spawn_origin(net.listen(ORIGIN_HOST, 80), spec.origin.clone()),
    };
    origin.put(IMAGE_PATH, image.to_vec());
    // The chip's FIFO, lossy unless RTS/CTS are wired; the device stalls during flash work.
    let (device_uart, modem_uart) = chip_uart(spec.baud, spec.flow_control, 1024);
    let mut modem_cfg = ModemEmulatorConfig::new(spec.dialect);
    modem_cfg.rx_buffer = spec.modem_rx_buffer;
    if let Some(latency) = spec.command_latency {
        modem_cfg.command_latency = latency;
    }
    let modem = spawn_modem(modem_cfg, modem_uart, net.clone());
    let flash = SimFlash::new(FLASH_BYTES, FlashTiming::ESP32_TYPICAL);
    World {
        net,
        origin,
        modem,
        device_uart: device_uart.stalled_by(flash.cpu()),
        flash,
    }
}

fn device_dialect(d: EmuDialect) -> DeviceDialect {
    match d {
        EmuDialect::Sim7600 => DeviceDialect::Sim7600,
        EmuDialect::Sim7080 => DeviceDialect::Sim7080,
    }
}

/// The field profile (ESP32 + SIM7600) and the Cat-M profile (ESP32-C3 + SIM7080), as
/// shipped in `profiles/`.
pub fn profile_for(dialect: EmuDialect) -> Profile {
    let (name, text) = match dialect {
        EmuDialect::Sim7600 => (
            "m5stack-core-sim7600.toml",
            include_str!("../../profiles/m5stack-core-sim7600.toml"),
        ),
        EmuDialect::Sim7080 => (
            "esp32c3-sim7080.toml",
            include_str!("../../profiles/esp32c3-sim7080.toml"),
        ),
    };
    Profile::parse(text, name).expect("shipped profiles are valid")
}

/// Engine settings the otactl strategy uses: the profile's, with the NAT timeout the
/// device believes in.
pub fn otactl_config(spec: &RunSpec) -> DownloadConfig {
    let mut cfg = profile_for(spec.dialect).download_config();
    cfg.policy.nat_idle_us = spec.profile_nat_idle.as_micros() as u64;
    cfg.uart_bytes_per_sec = spec.baud / 10;
    cfg.erase_while_receiving = spec.flow_control;
    cfg.policy.unpaced = !spec.pacing;
    cfg
}

/// The device's modem driver settings for `spec`.
fn device_modem_config(spec: &RunSpec) -> ModemConfig {
    let mut modem_cfg = ModemConfig::new(device_dialect(spec.dialect), "m2m.example").expect("apn");
    if spec.strategy == Strategy::Naive {
        modem_cfg.read_block = 64;
    }
    if let Some(n) = spec.read_block {
        modem_cfg.read_block = n;
    }
    modem_cfg.baud = spec.baud;
    modem_cfg.fast_baud = spec.fast_baud;
    modem_cfg.ca_cert = spec.tls.as_ref().map(|t| t.device_ca);
    modem_cfg
}

async fn run_in_runtime(spec: &RunSpec) -> RunResult {
    time::use_virtual_time();
    if shipped::applies(spec) {
        return shipped::run(spec).await;
    }
    let image = match &spec.image {
        Some(bytes) => bytes.to_vec(),
        None => image(spec.image_bytes, spec.image_seed),
    };
    let sha: [u8; 32] = Sha256::digest(&image).into();
    // What the origin serves at the image's URL: the file of the form the device fetches.
    let served = match &spec.form {
        SeedForm::Raw => image.clone(),
        SeedForm::Compressed => compressed::compress(&image).expect("bench images compress"),
        SeedForm::Delta { base } => delta::diff(base, &image).expect("bench images patch"),
    };
    let world = build_world(spec, &served);
    if let SeedForm::Delta { base } = &spec.form {
        world.flash.load(BASE_SLOT.offset as usize, base);
    }
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{ORIGIN_HOST}{IMAGE_PATH}");

    let modem_cfg = device_modem_config(spec);
    let uart_rx = world.device_uart.rx_control();
    let mut modem = Modem::new(world.device_uart, BenchClock, modem_cfg).with_uart_rate(retune);
    let bring_up = time::timeout(Duration::from_secs(120), modem.bring_up()).await;
    if !matches!(bring_up, Ok(Ok(_))) {
        return failed(spec, format!("modem bring-up failed: {bring_up:?}"));
    }

    let injected = Arc::new(AtomicU64::new(0));
    let faults = match spec.faults {
        Faults::Random { seed } => Some(tokio::spawn(inject_random_faults(
            seed,
            world.net.clone(),
            world.modem.clone(),
            world.origin.clone(),
            injected.clone(),
            spec.trace,
        ))),
        Faults::None => None,
    };

    let start = time::now();
    let mut http = HttpClient::new(modem);
    let trace = spec.trace;
    let chunks = std::cell::Cell::new(0u32);
    let mut events = |e: OtaEvent| {
        if matches!(e, OtaEvent::ChunkRequested { .. }) {
            chunks.set(chunks.get() + 1);
        }
        if trace {
            eprintln!("[{:>9.3} s] {e:?}", time::now().as_secs_f64());
        }
    };
    let target = ImageTarget {
        url: &url,
        size: Some(served.len() as u64),
        sha256: Some(sha),
    };
    let end = match spec.strategy {
        Strategy::Naive => {
            let cfg = DownloadConfig {
                mode: DownloadMode::SingleGet,
                overlap_flash: false,
                ..otactl_config(spec)
            };
            let target = ImageTarget { size: None, ..target };
            let writer = raw_writer::<4096>(&world.flash, SLOT);
            run_download(
                &mut http,
                writer,
                SLOT,
                &cfg,
                &target,
                &mut events,
                spec.deadline,
                &uart_rx,
            )
            .await
        }
        Strategy::Otactl => {
            // The first drain-rate guess follows the rate bring-up settled on, as in the app.
            let mut cfg = otactl_config(spec);
            cfg.uart_bytes_per_sec = http.socket().baud() / 10;
            // One writer type for every form, as in the firmware's update.
            let raw_size = image.len() as u32;
            let flash = &world.flash;
            let writer = |mark: Option<device_fw::ota::Mark>| -> FormWriter<SimFlash> {
                let (written, fetched) = mark.map_or((0, 0), |m| (m.written, m.fetched));
                match &spec.form {
                    SeedForm::Raw => FormWriter::Raw(SlotWriter::resume(flash.clone(), SLOT, written)),
                    SeedForm::Compressed => {
                        FormWriter::Compressed(InflatingWriter::resume(flash.clone(), SLOT, raw_size, written, fetched))
                    }
                    SeedForm::Delta { base } => FormWriter::Compressed(InflatingWriter::resume_delta(
                        flash.clone(),
                        SLOT,
                        BASE_SLOT,
                        delta::Header {
                            raw_size,
                            base_size: base.len() as u32,
                            base_sha256: Sha256::digest(base).into(),
                        },
                        written,
                        fetched,
                    )),
                }
            };
            run_download(
                &mut http,
                writer,
                SLOT,
                &cfg,
                &target,
                &mut events,
                spec.deadline,
                &uart_rx,
            )
            .await
        }
    };
    let virtual_s = (time::now() - start).as_secs_f64();
    if let Some(f) = faults {
        f.abort();
    }
    RunResult {
        outcome: end.outcome,
        virtual_s,
        bytes_written: end.written,
        ratio: virtual_s / spec.uart_limit_s(),
        nat_drops: world.net.stats().nat_expiries,
        airtime_overhead: modem_received(&world.modem) as f64 / image.len() as f64,
        tls: TlsCost::of(spec, &world.modem),
        chunks: (spec.strategy == Strategy::Otactl).then(|| chunks.get()),
        resumes: end.report.map_or(0, |r| r.resumes),
        requests: end.report.map(|r| r.requests),
        faults: injected.load(Ordering::Relaxed),
        uart_bytes_lost: uart_rx.bytes_lost() - end.idle_uart_bytes_lost,
        idle_uart_bytes_lost: end.idle_uart_bytes_lost,
        error: end.error,
        slot_matches: world.flash.snapshot(SLOT.offset as usize, image.len()) == image,
        data_path_ram_bytes: end.ram,
        attempts: end.attempts,
        ..RunResult::new(spec)
    }
}

impl RunSpec {
    /// The physical limit of this image over this UART: `bytes × 10 / baud` (8N1), at the
    /// rate the download runs at.
    pub fn uart_limit_s(&self) -> f64 {
        self.image_bytes as f64 * 10.0 / f64::from(self.download_baud())
    }

    /// The UART rate of the download: the fast rate when the profile sets one.
    pub fn download_baud(&self) -> u32 {
        self.fast_baud.unwrap_or(self.baud)
    }
}

impl RunResult {
    /// The result of a run of `spec` before anything happened: failed, nothing written.
    fn new(spec: &RunSpec) -> Self {
        RunResult {
            tls: None,
            scenario: spec.scenario.clone(),
            strategy: strategy_name(spec),
            outcome: "failed",
            virtual_s: 0.0,
            bytes_written: 0,
            image_bytes: spec.image_bytes as u64,
            uart_limit_s: spec.uart_limit_s(),
            ratio: 0.0,
            baud: spec.download_baud(),
            nat_drops: 0,
            airtime_overhead: 0.0,
            chunks: None,
            resumes: 0,
            requests: None,
            faults: 0,
            uart_bytes_lost: 0,
            idle_uart_bytes_lost: 0,
            error: None,
            slot_matches: false,
            data_path_ram_bytes: None,
            attempts: 0,
            seed: match spec.faults {
                Faults::Random { seed } => Some(seed),
                Faults::None => None,
            },
        }
    }
}

/// Payload bytes that reached the modem's socket buffers: those the device read and those
/// thrown away unread (a reset, a close with data pending).
fn modem_received(modem: &ModemHandle) -> u64 {
    let stats = modem.stats();
    stats.bytes_read + stats.discarded_bytes + stats.tls_overhead_bytes
}

fn strategy_name(spec: &RunSpec) -> String {
    // TinyGSM's receive buffer, when raised from its default of 64 bytes.
    let rx = match spec.read_block {
        Some(n) if n != 64 => format!("-rx{n}"),
        _ => String::new(),
    };
    match (spec.strategy, spec.nat.idle_timeout, spec.origin.rate_limit) {
        (Strategy::Naive, _, Some(_)) => format!("ratelimit{rx}"),
        (Strategy::Naive, None, None) => format!("naive-no-nat{rx}"),
        (Strategy::Naive, Some(_), None) => format!("naive{rx}"),
        (Strategy::Otactl, _, _) => {
            let mut name = String::from("otactl");
            if spec.dialect == EmuDialect::Sim7080 && spec.scenario == "seed-cgnat" {
                name += "-sim7080";
            }
            if !spec.pacing {
                name += "-no-pacing";
            }
            if let Some(fast) = spec.fast_baud {
                name += &format!("-{fast}");
            }
            if spec.flow_control {
                name += "-rtscts";
            }
            if spec.tls.is_some() {
                name += "-tls";
            }
            match spec.form {
                SeedForm::Raw => {}
                SeedForm::Compressed => name += "-compressed",
                SeedForm::Delta { .. } => name += "-delta",
            }
            name
        }
    }
}

fn failed(spec: &RunSpec, error: String) -> RunResult {
    RunResult {
        error: Some(error),
        ..RunResult::new(spec)
    }
}

/// RAM the device's data path holds while downloading: the engine's state machine (its two
/// receive buffers, hash state, planner), the HTTP client with the modem driver inside,
/// the slot writer's page stage. All fixed sizes; no heap. The UART's receive FIFO is the
/// peripheral's own memory, so it is not counted.
pub(crate) fn data_path_ram_bytes(engine_future_bytes: usize) -> usize {
    use device_fw::clock::Clock;
    /// Zero-sized stand-ins: on the chip the UART driver and flash driver are ZST handles
    /// to peripherals too, so the driver structs are measured without the bench's plumbing.
    #[derive(Debug, Clone, Copy)]
    struct ChipClock;
    impl Clock for ChipClock {
        fn now_us(&self) -> u64 {
            0
        }
        async fn sleep_us(&self, _: u64) {}
    }
    engine_future_bytes
        + std::mem::size_of::<HttpClient<Modem<ChipUart, ChipClock>>>()
        + std::mem::size_of::<SlotWriter<ChipFlash, 256>>()
}

#[derive(Debug)]
struct ChipUart;
impl embedded_io_async::ErrorType for ChipUart {
    type Error = core::convert::Infallible;
}
impl embedded_io_async::Read for ChipUart {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(0)
    }
}
impl embedded_io_async::Write for ChipUart {
    async fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
        Ok(b.len())
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[derive(Debug)]
struct ChipFlash;
impl embedded_storage_async::nor_flash::ErrorType for ChipFlash {
    type Error = embedded_storage_async::nor_flash::NorFlashErrorKind;
}
impl embedded_storage_async::nor_flash::ReadNorFlash for ChipFlash {
    const READ_SIZE: usize = 4;
    async fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), Self::Error> {
        Ok(())
    }
    fn capacity(&self) -> usize {
        FLASH_BYTES
    }
}
impl embedded_storage_async::nor_flash::NorFlash for ChipFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    async fn erase(&mut self, _: u32, _: u32) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn write(&mut self, _: u32, _: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}
