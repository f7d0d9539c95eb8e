//! A fleet over virtual days: thousands of devices on the device's own schedule and release
//! decision, and the release side's rollout gate run by an operator job.
//!
//! What is the real code, not a copy of it:
//!
//! - each device's check times, jitter, backoff and attempts per day are
//!   [`device_fw::ota::schedule::Schedule`], with its `ScheduleRecord` encoded and decoded
//!   across every reboot as the journal keeps it;
//! - each decision to install is [`device_fw::ota::policy::check_manifest`] on a
//!   [`device_fw::wire::manifest::Manifest`] carrying the release's rollout, with the
//!   device's running version, failed-version memory and id;
//! - each outcome is a [`device_fw::wire::report::Report`] the device writes with
//!   `write_json` and the receiver reads back with `Report::parse`;
//! - the operator's hourly job halts with [`device_fw::fleet::must_halt`] and advances with
//!   [`device_fw::fleet::may_advance`] on [`device_fw::fleet::Outcomes`] tallies, the gate
//!   `otactl rollout` applies.
//!
//! What is modelled: the download's duration and requests (scaled from the engine's own
//! seed-cgnat run, measured in-process at the start: [`CostModel`]), network failures, the
//! time a reboot and a self-test take, and which boards fail the bad release's self-test.
//!
//! It is a discrete-event simulation: one priority queue of wake-ups ordered by virtual time
//! and insertion order, no runtime per device, so ten thousand devices over three days take
//! well under a second and a seed always gives the same run.

mod device;
mod operator;
mod summary;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use device_fw::esp::chip::Chip;
use device_fw::fleet::Thresholds;
use device_fw::ota::schedule::UpdatePolicy;
use device_fw::wire::rollout::device_id_from_hardware;
use serde::Serialize;

use crate::modem::Dialect;
use crate::scenario::{self, RunSpec, SEED_IMAGE_BYTES, Strategy};

use self::device::{Device, Rng64};
pub use self::operator::StageEvent;
use self::operator::{Channel, Operator};
use self::summary::Metrics;
pub use self::summary::Summary;

const S: u64 = 1_000_000;
const HOUR: u64 = 3600 * S;

/// The releases of the story, in publishing order: index 0 is what the fleet runs at t = 0.
pub const RELEASES: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];
/// Index of the good release rolled out first.
pub const GOOD: usize = 1;
/// Index of the release whose self-test fails on board revision B.
pub const BAD: usize = 2;
/// The stages an operator widens a rollout through, in percent of the fleet.
pub const STAGES: [u8; 4] = [1, 10, 50, 100];
/// Devices listed by id in every rollout (bench units, a customer's pilots): at most what a
/// manifest may list.
pub const PILOTS: usize = device_fw::wire::rollout::MAX_DEVICES;
/// Share of the fleet on board revision B, whose self-test fails on the bad release.
pub const BOARD_B_PERCENT: u64 = 30;
/// Share of the fleet in poor coverage, and how much more often their downloads fail.
pub const POOR_COVERAGE_PERCENT: u64 = 5;
pub const POOR_COVERAGE_FACTOR: f64 = 10.0;
/// The bad release is published on day 2 (or later, once the good one is at 100 %).
pub const BAD_RELEASE_AT_US: u64 = 24 * HOUR;

/// How far back a steady-state fleet's last boots are spread. Many check periods, so that
/// the checks' phases are uniform at t = 0: over a single period, the first check after a
/// boot (within `jitter`, not `check_every`) would leave a dip in the first half hour.
pub const BOOT_SPREAD_US: u64 = 7 * 24 * HOUR;

/// How the fleet's devices last booted before t = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Uniform over the week before t = 0 ([`BOOT_SPREAD_US`]): a field fleet in steady state.
    Spread,
    /// All at t = 0: the power came back fleet-wide.
    Sync,
}

impl Boot {
    fn describe(self) -> &'static str {
        match self {
            Boot::Spread => "spread: last boot uniform over the 7 days before t=0 (a field fleet in steady state)",
            Boot::Sync => "sync: every device booted at t=0 (a fleet-wide power return)",
        }
    }
}

/// One fleet run's inputs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub devices: usize,
    pub days: u32,
    pub seed: u64,
    /// Overrides the profile's `[update] jitter` (µs).
    pub jitter_us: Option<u64>,
    pub boot: Boot,
    /// Share of download attempts that fail on the network, fleet-wide average (percent).
    pub net_fail_percent: f64,
    /// Overrides the profile's `[rollout] min_reports` (`otactl rollout advance --min-reports`):
    /// a small fleet's first stage holds fewer devices than the default asks for.
    pub min_reports: Option<u32>,
    /// What a check costs on the wire, measured with the device's HTTP client against the
    /// bench origin ([`crate::check_cost`]); carried into the summary as measured, never
    /// estimated here. `None`: not measured for this run.
    pub check_cost: Option<crate::check_cost::CheckCost>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            devices: 10_000,
            days: 3,
            seed: 1,
            jitter_us: None,
            boot: Boot::Spread,
            net_fail_percent: 5.0,
            min_reports: None,
            check_cost: None,
        }
    }
}

/// Per-device download cost, from the engine's own seed-cgnat figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostModel {
    pub source: &'static str,
    pub image_bytes: u32,
    /// Virtual seconds the engine took for the whole image.
    pub download_s: f64,
    /// HTTP requests the engine made for the whole image.
    pub requests: u32,
    /// Activation to the new app running (modelled, not measured).
    pub reboot_s: f64,
    /// The new app's self-test before it confirms or rolls back (modelled, not measured).
    pub self_test_s: f64,
}

impl CostModel {
    /// Runs the otactl strategy of the seed-cgnat scenario once (virtual time, tens of
    /// milliseconds) and takes its duration and request count for the 233,040-byte image.
    pub fn from_seed_scenario() -> Self {
        let r = scenario::run(&RunSpec::seed(Strategy::Otactl));
        assert!(
            r.outcome == "updated" && r.bytes_written == SEED_IMAGE_BYTES as u64,
            "the seed scenario must update to calibrate the fleet: {r:?}"
        );
        CostModel {
            source: "seed-cgnat, strategy otactl: measured in-process at start (sim::scenario, virtual time)",
            image_bytes: SEED_IMAGE_BYTES as u32,
            download_s: r.virtual_s,
            requests: r.requests.unwrap_or(1).max(1),
            reboot_s: 5.0,
            self_test_s: 10.0,
        }
    }

    /// Virtual time to fetch and write `bytes` of the image: the seed run's rate.
    fn download_us(&self, bytes: u32) -> u64 {
        (self.download_s * 1e6 * f64::from(bytes) / f64::from(self.image_bytes)).round() as u64
    }

    /// Range requests for `bytes` of the image, at the seed run's bytes per request.
    fn requests_for(&self, bytes: u32) -> u32 {
        (u64::from(self.requests) * u64::from(bytes)).div_ceil(u64::from(self.image_bytes)) as u32
    }

    fn reboot_us(&self) -> u64 {
        (self.reboot_s * 1e6) as u64
    }

    fn self_test_us(&self) -> u64 {
        (self.self_test_s * 1e6) as u64
    }
}

/// What the device is, from the field profile (ESP32 + SIM7600), as the fleet's manifests
/// name it.
#[derive(Debug, Clone)]
struct Target {
    product: String,
    channel: String,
    chip: Chip,
    board: String,
    slot_size: u32,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// A scheduled check or a retry after backoff.
    Wake(usize),
    DownloadEnd(usize),
    /// The new app booted and ran its self-test.
    Booted(usize),
    /// The old app is back after a failed self-test.
    RolledBack(usize),
    Operator,
}

#[derive(Debug)]
struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// Earliest first (the heap is a max-heap); ties in insertion order, so a run never
    /// depends on how the heap breaks them.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Everything one run holds.
#[derive(Debug)]
struct World {
    policy: UpdatePolicy,
    cost: CostModel,
    target: Target,
    end_us: u64,
    devices: Vec<Device>,
    /// Pilot ids, listed in every rollout.
    pilots: Vec<String>,
    channel: Channel,
    operator: Operator,
    metrics: Metrics,
    queue: BinaryHeap<Queued>,
    seq: u64,
}

impl World {
    fn push(&mut self, at: u64, ev: Ev) {
        if at < self.end_us {
            self.seq += 1;
            self.queue.push(Queued { at, seq: self.seq, ev });
        }
    }
}

/// Runs the fleet, calibrating the cost model first.
pub fn run(cfg: &FleetConfig) -> Summary {
    let wall = Instant::now();
    let cost = CostModel::from_seed_scenario();
    run_with_cost(cfg, cost, wall)
}

/// Runs the fleet with a given cost model; `wall` is when the run's wall time started.
pub fn run_with_cost(cfg: &FleetConfig, cost: CostModel, wall: Instant) -> Summary {
    let profile = scenario::profile_for(Dialect::Sim7600);
    let mut policy = profile.update_policy();
    if let Some(j) = cfg.jitter_us {
        policy.jitter_us = j;
    }
    let mut thresholds: Thresholds = profile.rollout.thresholds();
    if let Some(n) = cfg.min_reports {
        thresholds.min_reports = n;
    }
    let target = Target {
        product: profile.device.product.clone(),
        channel: profile.release.channel.clone(),
        chip: profile.device.chip,
        board: profile.device.board.clone(),
        slot_size: profile.slots.ota_1.size,
    };
    let end_us = u64::from(cfg.days) * 24 * HOUR;
    let mut fleet_rng = Rng64::new(cfg.seed ^ 0xF1EE_7000);
    // XOR with a per-seed mask is a bijection, so every device gets its own MAC and id.
    let mask = fleet_rng.next() as u32;
    let base_fail =
        cfg.net_fail_percent / 100.0 / (1.0 - POOR_COVERAGE_PERCENT as f64 / 100.0 * (1.0 - POOR_COVERAGE_FACTOR));
    let devices: Vec<Device> = (0..cfg.devices)
        .map(|i| {
            let n = (i as u32 ^ mask).to_be_bytes();
            let mac = [0x24, 0x6f, n[0], n[1], n[2], n[3]];
            let id = device_id_from_hardware(&target.product, &mac).as_str().to_owned();
            let mut rng = Rng64::new(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64);
            let poor = rng.below(100) < POOR_COVERAGE_PERCENT;
            let fail_rate = if poor {
                base_fail * POOR_COVERAGE_FACTOR
            } else {
                base_fail
            }
            .min(0.95);
            let boot_at = match cfg.boot {
                Boot::Spread => -(rng.below(BOOT_SPREAD_US) as i64),
                Boot::Sync => 0,
            };
            Device::new(id, fail_rate, rng, boot_at, policy)
        })
        .collect();
    let pilots: Vec<String> = devices.iter().take(PILOTS).map(|d| d.id.clone()).collect();
    let mut w = World {
        policy,
        channel: Channel::new(&pilots, cost.image_bytes),
        cost,
        operator: Operator::new(thresholds),
        target,
        end_us,
        devices,
        pilots,
        metrics: Metrics::new(end_us),
        queue: BinaryHeap::new(),
        seq: 0,
    };
    // The operator's job runs first at t = 0 (it publishes the good release), then hourly.
    w.push(0, Ev::Operator);
    for i in 0..w.devices.len() {
        w.schedule_wake(i);
    }
    while let Some(Queued { at, ev, .. }) = w.queue.pop() {
        match ev {
            Ev::Wake(i) => w.on_wake(i, at),
            Ev::DownloadEnd(i) => w.on_download_end(i, at),
            Ev::Booted(i) => w.on_booted(i, at),
            Ev::RolledBack(i) => w.on_rolled_back(i, at),
            Ev::Operator => {
                w.operator_run(at);
                w.push(at + HOUR, Ev::Operator);
            }
        }
    }
    summary::summarize(&w, cfg, wall.elapsed().as_secs_f64())
}
