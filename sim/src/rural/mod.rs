//! The rural case: an update over very poor cellular coverage, per seed.
//!
//! Each seed draws a radio of 1–20 kB/s, a round trip of 0.3–2 s, 1–5 % packet loss (its
//! effect through TCP, see [`link`]), a carrier NAT forgetting idle mappings after 30–300 s
//! (reset or silent drop), and coverage outages of 10 s to 10 min. Half the outages also
//! cost the modem its registration: it reports `+CEREG: 0,2` (or `0,0`) while searching,
//! loses the PDP context with the dialect's notice, refuses to open the packet network, and
//! registers again when coverage returns. The device runs the otactl engine as the
//! random-fault sweep does (modem driver, HTTP client, Range chunks, resume), in virtual
//! time, on a SIM7600 or a SIM7080 with its shipped profile.
//!
//! The ratio is measured against the best any receiver could do on the same link: the
//! image at the lower of the link's delivery rate (the radio's, or TCP's under the loss)
//! and the UART's byte rate, with the link carrying nothing during the outages that fall
//! inside. `raw_ratio` divides by the radio rate alone, without loss or outages.

pub mod link;

use std::sync::Arc;
use std::time::Duration;

use device_fw::http::HttpClient;
use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig};
use device_fw::ota::{DownloadReport, ImageTarget, OtaEvent, SlotWriter, download};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::flash::{FlashTiming, SimFlash};
use crate::modem::{Dialect as EmuDialect, ModemEmulatorConfig, ModemHandle, spawn_modem};
use crate::net::{NatConfig, NatExpiry, NetConfig, Network};
use crate::origin::{OriginBehaviour, spawn_origin};
use crate::scenario::{self, DEVICE_UART_RX_RING, FLASH_BYTES, IMAGE_PATH, ORIGIN_HOST, RunSpec, SLOT, Strategy};
use crate::time::{self, BenchClock};
use crate::uart::{retune, uart};
use link::{RuralLink, RuralLinkConfig};

/// One coverage outage, from the download's start.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Outage {
    pub start_s: f64,
    pub duration_s: f64,
    /// The `+CEREG` stat while deregistered (2 searching, 0 not searching); `None`: the
    /// modem stays registered.
    pub deregister: Option<u8>,
}

/// Everything a rural run depends on.
#[derive(Debug, Clone)]
pub struct RuralSpec {
    pub seed: u64,
    pub dialect: EmuDialect,
    pub image_bytes: usize,
    pub fast_baud: Option<u32>,
    pub link: RuralLinkConfig,
    pub nat: NatConfig,
    pub keep_alive: Duration,
    pub outages: Vec<Outage>,
    pub deadline: Duration,
    pub trace: bool,
}

/// Draws a seed's link, NAT and outages.
pub fn rural_spec(seed: u64) -> RuralSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x52_55_52_41_4c);
    let dialect = if rng.random_bool(0.5) {
        EmuDialect::Sim7600
    } else {
        EmuDialect::Sim7080
    };
    let image_bytes = rng.random_range(96 * 1024..400 * 1024);
    let link = RuralLinkConfig {
        bytes_per_sec: rng.random_range(1_000.0..20_000.0),
        rtt: Duration::from_millis(rng.random_range(300..2_000)),
        loss: rng.random_range(0.01..0.05),
        syn_give_up: Duration::from_secs(30),
    };
    let nat = NatConfig {
        idle_timeout: Some(Duration::from_secs(rng.random_range(30..=300))),
        on_expiry: if rng.random_bool(0.5) {
            NatExpiry::Reset
        } else {
            NatExpiry::Drop
        },
    };
    let keep_alive = Duration::from_secs(if rng.random_bool(0.5) { 5 } else { 75 });
    let fast_baud = rng.random_bool(0.5).then_some(921_600);
    // The first outage falls inside the transfer for sure; later ones every 1–15 min.
    let uart = f64::from(fast_baud.unwrap_or(115_200)) / 10.0;
    let ideal = image_bytes as f64 / link.goodput().min(uart);
    let mut start = rng.random_range(0.1..0.7) * ideal;
    let mut outages = Vec::new();
    while start < 6.0 * 3600.0 {
        // Log-uniform from 10 s to 10 min: short fades are commoner than long ones.
        let duration_s = (rng.random_range(10f64.ln()..600f64.ln())).exp();
        let deregister = rng.random_bool(0.5).then(|| if rng.random_bool(0.8) { 2 } else { 0 });
        outages.push(Outage {
            start_s: start,
            duration_s,
            deregister,
        });
        start += duration_s + rng.random_range(60.0..900.0);
    }
    RuralSpec {
        seed,
        dialect,
        image_bytes,
        fast_baud,
        link,
        nat,
        keep_alive,
        outages,
        deadline: Duration::from_secs(6 * 3600),
        trace: false,
    }
}

impl RuralSpec {
    /// The UART's byte rate during the download.
    pub fn uart_bytes_per_sec(&self) -> f64 {
        f64::from(self.fast_baud.unwrap_or(115_200)) / 10.0
    }

    /// The earliest an ideal receiver could hold the image: at the lower of the link's
    /// delivery rate and the UART's, nothing during outages.
    pub fn link_limit_s(&self) -> f64 {
        let rate = self.link.goodput().min(self.uart_bytes_per_sec());
        let mut left = self.image_bytes as f64 / rate;
        let mut t = 0.0;
        for o in &self.outages {
            let up = (o.start_s - t).max(0.0);
            if up >= left {
                break;
            }
            left -= up;
            t = o.start_s + o.duration_s;
        }
        t + left
    }

    /// The image at the radio's rate (or the UART's if lower), ignoring loss and outages.
    pub fn raw_limit_s(&self) -> f64 {
        self.image_bytes as f64 / self.link.bytes_per_sec.min(self.uart_bytes_per_sec())
    }
}

/// One seed's result.
#[derive(Debug, Clone, Serialize)]
pub struct RuralResult {
    pub scenario: &'static str,
    pub seed: u64,
    pub dialect: EmuDialect,
    pub outcome: &'static str,
    pub slot_matches: bool,
    pub image_bytes: u64,
    pub baud: u32,
    pub link_bytes_per_sec: f64,
    pub goodput_bytes_per_sec: f64,
    pub rtt_s: f64,
    pub loss: f64,
    pub nat_timeout_s: u64,
    pub nat_expiry: NatExpiry,
    pub virtual_s: f64,
    pub link_limit_s: f64,
    pub ratio: f64,
    pub raw_ratio: f64,
    /// Virtual time outside outages ÷ the image at the link's delivery rate (or the UART's):
    /// how well the engine uses the link while there is one.
    pub up_ratio: f64,
    /// Bytes the radio delivered to the modem ÷ image bytes.
    pub airtime_overhead: f64,
    /// Outages that began before the run ended, their total length inside the run, and how
    /// many cost the registration.
    pub outages: u32,
    pub outage_s: f64,
    pub deregistrations: u64,
    pub reattaches: u64,
    pub nat_drops: u64,
    pub resumes: u32,
    pub requests: u32,
    pub modem_recoveries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs one seed on a fresh paused runtime.
pub fn run(spec: &RuralSpec) -> RuralResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    rt.block_on(run_in_runtime(spec))
}

/// The profile's engine settings for this seed's modem, as the random-fault sweep uses.
fn engine_spec(spec: &RuralSpec) -> RunSpec {
    let profile = scenario::profile_for(spec.dialect);
    RunSpec {
        scenario: "rural".into(),
        dialect: spec.dialect,
        image_bytes: spec.image_bytes,
        image_seed: spec.seed,
        nat: spec.nat,
        profile_nat_idle: profile.nat_idle_timeout(),
        fast_baud: spec.fast_baud,
        flow_control: false,
        ..RunSpec::seed(Strategy::Otactl)
    }
}

async fn run_in_runtime(spec: &RuralSpec) -> RuralResult {
    time::use_virtual_time();
    let run_spec = engine_spec(spec);
    let image = scenario::image(spec.image_bytes, spec.seed);
    let sha: [u8; 32] = Sha256::digest(&image).into();

    let mut net_cfg = NetConfig::lte(spec.nat);
    net_cfg.downlink_bytes_per_sec = spec.link.goodput();
    net_cfg.uplink_bytes_per_sec = spec.link.bytes_per_sec;
    net_cfg.latency = spec.link.rtt / 2;
    net_cfg.modem_rx_buffer = run_spec.modem_rx_buffer;
    let net = Network::new(net_cfg);
    let radio = RuralLink::new(spec.link, spec.seed);
    net.set_shaper(Arc::new(radio.clone()));
    let origin = spawn_origin(
        net.listen(ORIGIN_HOST, 80),
        OriginBehaviour {
            keep_alive_timeout: spec.keep_alive,
            ..OriginBehaviour::default()
        },
    );
    origin.put(IMAGE_PATH, image.clone());
    let (device_uart, modem_uart) = uart(run_spec.baud, DEVICE_UART_RX_RING, 1024);
    let mut modem_emu = ModemEmulatorConfig::new(spec.dialect);
    modem_emu.rx_buffer = run_spec.modem_rx_buffer;
    let modem_handle = spawn_modem(modem_emu, modem_uart, net.clone());
    let flash = SimFlash::new(FLASH_BYTES, FlashTiming::ESP32_TYPICAL);

    let dialect = match spec.dialect {
        EmuDialect::Sim7600 => DeviceDialect::Sim7600,
        EmuDialect::Sim7080 => DeviceDialect::Sim7080,
    };
    let mut modem_cfg = ModemConfig::new(dialect, "m2m.example").expect("apn");
    modem_cfg.baud = run_spec.baud;
    modem_cfg.fast_baud = spec.fast_baud;
    let mut modem = Modem::new(device_uart, BenchClock, modem_cfg).with_uart_rate(retune);
    let mut result = RuralResult::new(spec);
    match time::timeout(Duration::from_secs(120), modem.bring_up()).await {
        Ok(Ok(_)) => {}
        other => {
            result.error = Some(format!("modem bring-up failed: {other:?}"));
            return result;
        }
    }

    let start = time::now();
    let weather = tokio::spawn(coverage(
        spec.outages.clone(),
        radio.clone(),
        modem_handle.clone(),
        spec.trace,
    ));
    let mut http = HttpClient::new(modem);
    let mut cfg = scenario::otactl_config(&run_spec);
    cfg.uart_bytes_per_sec = http.socket().baud() / 10;
    let url = format!("http://{ORIGIN_HOST}{IMAGE_PATH}");
    let target = ImageTarget {
        url: &url,
        size: Some(image.len() as u64),
        sha256: Some(sha),
    };
    let trace = spec.trace;
    let mut events = |e: OtaEvent| {
        if trace {
            eprintln!("[{:>9.3} s] {e:?}", time::now().as_secs_f64());
        }
    };
    let mut slot: SlotWriter<_, 256> = SlotWriter::new(flash.clone(), SLOT);
    let mut no_journal = ();
    let fut = download(
        &mut http,
        &mut slot,
        &BenchClock,
        &cfg,
        &target,
        Sha256::new(),
        &mut events,
        &mut no_journal,
    );
    let outcome: Result<Result<DownloadReport, String>, _> =
        time::timeout(spec.deadline, async { fut.await.map_err(|e| format!("{e:?}")) }).await;
    let virtual_s = (time::now() - start).as_secs_f64();
    weather.abort();
    match outcome {
        Ok(Ok(report)) => {
            result.outcome = "updated";
            result.resumes = report.resumes;
            result.requests = report.requests;
            result.modem_recoveries = report.modem_recoveries;
        }
        Ok(Err(e)) => result.error = Some(e),
        Err(_) => result.error = Some("deadline passed".into()),
    }
    let began: Vec<&Outage> = spec.outages.iter().filter(|o| o.start_s < virtual_s).collect();
    let modem_stats = modem_handle.stats();
    let outage_s: f64 = began.iter().map(|o| o.duration_s.min(virtual_s - o.start_s)).sum();
    let up_limit_s = spec.image_bytes as f64 / spec.link.goodput().min(spec.uart_bytes_per_sec());
    RuralResult {
        slot_matches: flash.snapshot(SLOT.offset as usize, image.len()) == image,
        virtual_s,
        ratio: virtual_s / result.link_limit_s,
        raw_ratio: virtual_s / spec.raw_limit_s(),
        airtime_overhead: radio.downlink_bytes() as f64 / image.len() as f64,
        outages: began.len() as u32,
        outage_s,
        up_ratio: (virtual_s - outage_s) / up_limit_s,
        deregistrations: modem_stats.deregistrations,
        reattaches: modem_stats.reattaches,
        nat_drops: net.stats().nat_expiries,
        ..result
    }
}

impl RuralResult {
    fn new(spec: &RuralSpec) -> Self {
        RuralResult {
            scenario: "rural",
            seed: spec.seed,
            dialect: spec.dialect,
            outcome: "failed",
            slot_matches: false,
            image_bytes: spec.image_bytes as u64,
            baud: spec.fast_baud.unwrap_or(115_200),
            link_bytes_per_sec: spec.link.bytes_per_sec,
            goodput_bytes_per_sec: spec.link.goodput(),
            rtt_s: spec.link.rtt.as_secs_f64(),
            loss: spec.link.loss,
            nat_timeout_s: spec.nat.idle_timeout.map_or(0, |d| d.as_secs()),
            nat_expiry: spec.nat.on_expiry,
            virtual_s: 0.0,
            link_limit_s: spec.link_limit_s(),
            ratio: 0.0,
            raw_ratio: 0.0,
            up_ratio: 0.0,
            airtime_overhead: 0.0,
            outages: 0,
            outage_s: 0.0,
            deregistrations: 0,
            reattaches: 0,
            nat_drops: 0,
            resumes: 0,
            requests: 0,
            modem_recoveries: 0,
            error: None,
        }
    }
}

/// Plays the outage schedule: coverage goes, the modem may deregister; coverage returns,
/// the modem registers again.
async fn coverage(outages: Vec<Outage>, radio: Arc<RuralLink>, modem: ModemHandle, trace: bool) {
    let t0 = time::now();
    for o in outages {
        let at = t0 + Duration::from_secs_f64(o.start_s);
        time::sleep(at.saturating_sub(time::now())).await;
        if trace {
            eprintln!(
                "[{:>9.3} s] outage for {:.1} s{}",
                time::now().as_secs_f64(),
                o.duration_s,
                if o.deregister.is_some() { ", deregistered" } else { "" }
            );
        }
        radio.set_outage(true);
        if let Some(stat) = o.deregister {
            modem.deregister(stat);
        }
        time::sleep(Duration::from_secs_f64(o.duration_s)).await;
        radio.set_outage(false);
        if o.deregister.is_some() {
            modem.reattach();
        }
    }
}

/// The sweep's summary line.
#[derive(Debug, Clone, Serialize)]
pub struct RuralSummary {
    pub scenario: &'static str,
    pub seeds: usize,
    pub updated: usize,
    pub corrupt: usize,
    pub failed_seeds: Vec<u64>,
    /// Median of virtual time ÷ the link limit (see the module notes).
    pub median_ratio_to_link_limit: f64,
    pub p90_ratio_to_link_limit: f64,
    /// Median of the time outside outages ÷ the image at the link's delivery rate.
    pub median_up_ratio: f64,
    /// Median of virtual time ÷ (image ÷ the radio rate or the UART's, if lower).
    pub median_raw_ratio: f64,
    /// All bytes the radios delivered ÷ all image bytes.
    pub airtime_overhead: f64,
    pub max_airtime_overhead: f64,
    pub outages: u64,
    pub deregistrations: u64,
    pub nat_drops: u64,
    pub resumes: u64,
    pub virtual_s: f64,
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

pub fn summarise(results: &[RuralResult]) -> RuralSummary {
    let ok = |r: &&RuralResult| r.outcome == "updated" && r.slot_matches;
    let updated: Vec<&RuralResult> = results.iter().filter(ok).collect();
    let ratios: Vec<f64> = updated.iter().map(|r| r.ratio).collect();
    let air: f64 = results.iter().map(|r| r.airtime_overhead * r.image_bytes as f64).sum();
    let image: f64 = results.iter().map(|r| r.image_bytes as f64).sum();
    RuralSummary {
        scenario: "rural",
        seeds: results.len(),
        updated: updated.len(),
        corrupt: results
            .iter()
            .filter(|r| r.outcome == "updated" && !r.slot_matches)
            .count(),
        failed_seeds: results.iter().filter(|r| !ok(r)).map(|r| r.seed).collect(),
        median_ratio_to_link_limit: quantile(ratios.clone(), 0.5),
        p90_ratio_to_link_limit: quantile(ratios, 0.9),
        median_up_ratio: quantile(updated.iter().map(|r| r.up_ratio).collect(), 0.5),
        median_raw_ratio: quantile(updated.iter().map(|r| r.raw_ratio).collect(), 0.5),
        airtime_overhead: if image > 0.0 { air / image } else { 0.0 },
        max_airtime_overhead: results.iter().map(|r| r.airtime_overhead).fold(0.0, f64::max),
        outages: results.iter().map(|r| u64::from(r.outages)).sum(),
        deregistrations: results.iter().map(|r| r.deregistrations).sum(),
        nat_drops: results.iter().map(|r| r.nat_drops).sum(),
        resumes: results.iter().map(|r| u64::from(r.resumes)).sum(),
        virtual_s: results.iter().map(|r| r.virtual_s).sum(),
    }
}
