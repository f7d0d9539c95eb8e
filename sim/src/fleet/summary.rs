//! What a fleet run measured: counters kept while it runs, and the summary line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use device_fw::fleet::Thresholds;
use device_fw::wire::rollout::{cohort_bucket, in_percent};
use serde::Serialize;

use super::{
    BAD, BOARD_B_PERCENT, CostModel, FleetConfig, GOOD, POOR_COVERAGE_FACTOR, POOR_COVERAGE_PERCENT, RELEASES, S,
    STAGES, StageEvent, World,
};

/// Counters kept while the fleet runs.
#[derive(Debug)]
pub(super) struct Metrics {
    /// Requests at the origin (manifest checks and image Range requests) per second of
    /// virtual time.
    bins: Vec<u32>,
    pub(super) checks: u64,
    pub(super) retries: u64,
    pub(super) manifest_full: u64,
    pub(super) manifest_unchanged: u64,
    pub(super) attempts: u64,
    pub(super) download_failures: u64,
    pub(super) backoff_holds: u64,
    pub(super) daily_limit_holds: u64,
    pub(super) rollbacks: u64,
    pub(super) confirmed: u64,
    pub(super) reports: u64,
    pub(super) image_bytes: u64,
    pub(super) rejections: BTreeMap<&'static str, u64>,
    active: u32,
    peak_active: u32,
    outside_cohort: u64,
}

impl Metrics {
    pub(super) fn new(end_us: u64) -> Self {
        Metrics {
            bins: vec![0; end_us.div_ceil(S) as usize],
            checks: 0,
            retries: 0,
            manifest_full: 0,
            manifest_unchanged: 0,
            attempts: 0,
            download_failures: 0,
            backoff_holds: 0,
            daily_limit_holds: 0,
            rollbacks: 0,
            confirmed: 0,
            reports: 0,
            image_bytes: 0,
            rejections: BTreeMap::new(),
            active: 0,
            peak_active: 0,
            outside_cohort: 0,
        }
    }

    /// One request at the origin at virtual time `at` (those after the run's end are not
    /// counted: the mean is over the run).
    pub(super) fn request(&mut self, at: u64) {
        if let Some(bin) = self.bins.get_mut((at / S) as usize) {
            *bin += 1;
        }
    }

    pub(super) fn download_started(&mut self) {
        self.active += 1;
        self.peak_active = self.peak_active.max(self.active);
    }

    pub(super) fn download_ended(&mut self) {
        self.active -= 1;
    }

    /// An activation; `admitted`: the bench's own check of the rollout at the decision.
    pub(super) fn installed(&mut self, admitted: bool) {
        if !admitted {
            self.outside_cohort += 1;
        }
    }
}

/// The network failure model, as the summary states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkModel {
    /// Share of download attempts that fail, fleet-wide average (percent).
    pub fail_percent: f64,
    /// Share of devices in poor coverage (percent), whose downloads fail this many times as
    /// often as the others'.
    pub poor_coverage_percent: u64,
    pub poor_coverage_factor: f64,
}

/// The summary line of a fleet run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub seed: u64,
    pub devices: usize,
    pub days: u32,
    pub virtual_s: f64,
    /// Wall time of the run, the cost model's calibration included.
    pub wall_s: f64,
    /// Devices on the good release at the end.
    pub updated: usize,
    /// Devices installed a release while its rollout did not admit them, recomputed by the
    /// bench from the cohort bucket and the listed ids at each decision: must be 0.
    pub outside_cohort_updates: u64,
    /// Devices that installed the bad release before its halt took effect.
    pub bad_release_installs: usize,
    /// Devices admitted by a 1 % stage (its bucket band plus the listed pilots).
    pub first_stage_devices: usize,
    /// Devices that installed one release more than once (a failed version is never retried).
    pub repeat_installs: usize,
    pub halted_at_percent: Option<u8>,
    pub halted_at_s: Option<f64>,
    pub good_release_full_at_s: Option<f64>,
    pub bad_release_published_at_s: Option<f64>,
    pub peak_concurrent_downloads: u32,
    /// Requests at the origin (manifest checks and image Range requests), max over 1 s bins.
    pub peak_requests_per_s: u32,
    /// Start of the busiest second (the first, on a tie).
    pub peak_requests_at_s: f64,
    pub mean_requests_per_s: f64,
    pub peak_to_mean: f64,
    /// The 1 s peak that requests arriving independently at random (Poisson) with the same
    /// mean would show over as many bins: the floor no jitter can go under.
    pub poisson_peak_requests_per_s: u32,
    pub peak_requests_per_min: u32,
    pub peak_minute_at_s: f64,
    pub mean_requests_per_min: f64,
    pub peak_to_mean_per_min: f64,
    pub requests: u64,
    pub stages: Vec<StageEvent>,
    pub running: BTreeMap<&'static str, usize>,
    pub rolled_back: usize,
    pub boot: &'static str,
    pub check_every_s: f64,
    pub jitter_s: f64,
    pub cost_model: CostModel,
    pub network: NetworkModel,
    pub board_b_percent: u64,
    pub thresholds: Thresholds,
    pub checks: u64,
    pub retries: u64,
    pub manifest_full: u64,
    pub manifest_unchanged: u64,
    /// Bytes one unchanged check (`If-None-Match` → `304`) costs over the air: TCP payload
    /// measured, plus the IP and TCP headers of its segments (`None`: not measured).
    pub unchanged_check_bytes: Option<u64>,
    /// The measurement behind it: payload and IP bytes of an unchanged and of a full check.
    pub check_cost: Option<crate::check_cost::CheckCost>,
    pub unchanged_checks_bytes_total: Option<u64>,
    pub attempts: u64,
    pub download_failures: u64,
    pub backoff_holds: u64,
    pub daily_limit_holds: u64,
    pub confirmed: u64,
    pub reports: u64,
    pub image_bytes_served: u64,
    /// Checks whose manifest the device's policy turned down, by rejection code.
    pub rejections: BTreeMap<&'static str, u64>,
}

/// The peak a Poisson process of mean `mean` per bin shows over `bins` bins: the median of
/// the largest bin, i.e. the largest count that at least ln 2 bins are expected to reach.
fn poisson_peak(mean: f64, bins: usize) -> u32 {
    if mean <= 0.0 || bins == 0 {
        return 0;
    }
    let top = (mean + 20.0 * mean.sqrt() + 40.0) as usize;
    let mut p = (-mean).exp();
    let mut terms = Vec::with_capacity(top);
    for k in 0..top {
        terms.push(p);
        p *= mean / (k + 1) as f64;
    }
    let mut tail = 0.0;
    for k in (0..top).rev() {
        tail += terms[k];
        if tail * bins as f64 >= std::f64::consts::LN_2 {
            return k as u32;
        }
    }
    0
}

/// The first busiest bin and its count.
fn busiest(bins: &[u32]) -> (usize, u32) {
    bins.iter()
        .copied()
        .enumerate()
        .fold((0, 0), |best, (i, n)| if n > best.1 { (i, n) } else { best })
}

pub(super) fn summarize(w: &World, cfg: &FleetConfig, wall_s: f64) -> Summary {
    let m = &w.metrics;
    let product = &w.target.product;
    let mut running = BTreeMap::new();
    for d in &w.devices {
        *running.entry(RELEASES[d.running]).or_default() += 1;
    }
    let first_stage_devices = w
        .devices
        .iter()
        .filter(|d| w.pilots.contains(&d.id) || in_percent(cohort_bucket(product, &d.id), STAGES[0]))
        .count();
    let requests: u64 = m.bins.iter().map(|&b| u64::from(b)).sum();
    let seconds = m.bins.len().max(1);
    let mean = requests as f64 / seconds as f64;
    let (peak_at, peak) = busiest(&m.bins);
    let minutes: Vec<u32> = m.bins.chunks(60).map(|c| c.iter().sum()).collect();
    let mean_min = requests as f64 / (seconds as f64 / 60.0);
    let (peak_min_at, peak_min) = busiest(&minutes);
    let ratio = |peak: u32, mean: f64| if mean > 0.0 { f64::from(peak) / mean } else { 0.0 };
    let op = &w.operator;
    let at_s = |us: u64| us as f64 / 1e6;
    Summary {
        scenario: "fleet",
        seed: cfg.seed,
        devices: w.devices.len(),
        days: cfg.days,
        virtual_s: at_s(w.end_us),
        wall_s,
        updated: w.devices.iter().filter(|d| d.running == GOOD).count(),
        outside_cohort_updates: m.outside_cohort,
        bad_release_installs: w.devices.iter().filter(|d| d.installs[BAD] > 0).count(),
        first_stage_devices,
        repeat_installs: w.devices.iter().filter(|d| d.installs.iter().any(|&n| n > 1)).count(),
        halted_at_percent: op.halted.map(|(p, _)| p),
        halted_at_s: op.halted.map(|(_, t)| at_s(t)),
        good_release_full_at_s: op.good_full_at.map(at_s),
        bad_release_published_at_s: op.bad_published_at.map(at_s),
        peak_concurrent_downloads: m.peak_active,
        peak_requests_per_s: peak,
        peak_requests_at_s: peak_at as f64,
        mean_requests_per_s: mean,
        peak_to_mean: ratio(peak, mean),
        poisson_peak_requests_per_s: poisson_peak(mean, seconds),
        peak_requests_per_min: peak_min,
        peak_minute_at_s: (peak_min_at * 60) as f64,
        mean_requests_per_min: mean_min,
        peak_to_mean_per_min: ratio(peak_min, mean_min),
        requests,
        stages: op.stages.clone(),
        running,
        rolled_back: w.devices.iter().filter(|d| d.failed.is_some()).count(),
        boot: cfg.boot.describe(),
        check_every_s: at_s(w.policy.check_every_us),
        jitter_s: at_s(w.policy.jitter_us),
        cost_model: w.cost.clone(),
        network: NetworkModel {
            fail_percent: cfg.net_fail_percent,
            poor_coverage_percent: POOR_COVERAGE_PERCENT,
            poor_coverage_factor: POOR_COVERAGE_FACTOR,
        },
        board_b_percent: BOARD_B_PERCENT,
        thresholds: op.thresholds,
        checks: m.checks,
        retries: m.retries,
        manifest_full: m.manifest_full,
        manifest_unchanged: m.manifest_unchanged,
        unchanged_check_bytes: cfg.check_cost.map(|c| c.unchanged_ip_bytes),
        check_cost: cfg.check_cost,
        unchanged_checks_bytes_total: cfg.check_cost.map(|c| c.unchanged_ip_bytes * m.manifest_unchanged),
        attempts: m.attempts,
        download_failures: m.download_failures,
        backoff_holds: m.backoff_holds,
        daily_limit_holds: m.daily_limit_holds,
        confirmed: m.confirmed,
        reports: m.reports,
        image_bytes_served: m.image_bytes,
        rejections: m.rejections.clone(),
    }
}

impl Summary {
    /// The rollout's promises held: nobody outside a rollout installed, no failed version
    /// was installed twice, the good release reached everyone's stage, and the bad one (if
    /// it was published) stopped at its first stage.
    pub fn gate_held(&self) -> bool {
        self.outside_cohort_updates == 0
            && self.repeat_installs == 0
            && self.good_release_full_at_s.is_some()
            && (self.bad_release_published_at_s.is_none() || self.halted_at_percent == Some(STAGES[0]))
    }

    /// The summary as a readable table.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} s ({:.2} h)", v / 3600.0));
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "  {k:<28} {v}");
        };
        row("devices", self.devices.to_string());
        row("virtual time", format!("{:.0} s ({} days)", self.virtual_s, self.days));
        row("wall time", format!("{:.2} s", self.wall_s));
        row("boot", self.boot.to_owned());
        row(
            "schedule",
            format!("check every {:.0} s, jitter {:.0} s", self.check_every_s, self.jitter_s),
        );
        row(
            "cost model",
            format!(
                "{:.2} s, {} request(s) per {} B image ({})",
                self.cost_model.download_s,
                self.cost_model.requests,
                self.cost_model.image_bytes,
                self.cost_model.source
            ),
        );
        row(
            "updated",
            format!(
                "{} ({:.1} %)",
                self.updated,
                100.0 * self.updated as f64 / self.devices.max(1) as f64
            ),
        );
        row("running at the end", format!("{:?}", self.running));
        row("outside_cohort_updates", self.outside_cohort_updates.to_string());
        row(
            "bad_release_installs",
            format!(
                "{} (first stage: {} devices)",
                self.bad_release_installs, self.first_stage_devices
            ),
        );
        row("repeat_installs", self.repeat_installs.to_string());
        row(
            "halted",
            match (self.halted_at_percent, self.halted_at_s) {
                (Some(p), Some(t)) => format!("at {p} % after {t:.0} s"),
                _ => "-".to_owned(),
            },
        );
        row("good release at 100 %", opt(self.good_release_full_at_s));
        row("bad release published", opt(self.bad_release_published_at_s));
        row("peak concurrent downloads", self.peak_concurrent_downloads.to_string());
        row(
            "origin requests per s",
            format!(
                "peak {} at {:.0} s, mean {:.3} (x{:.1}; Poisson floor {})",
                self.peak_requests_per_s,
                self.peak_requests_at_s,
                self.mean_requests_per_s,
                self.peak_to_mean,
                self.poisson_peak_requests_per_s
            ),
        );
        row(
            "origin requests per min",
            format!(
                "peak {} at {:.0} s, mean {:.1} (x{:.2})",
                self.peak_requests_per_min,
                self.peak_minute_at_s,
                self.mean_requests_per_min,
                self.peak_to_mean_per_min
            ),
        );
        row(
            "checks",
            format!(
                "{} scheduled, {} retries; manifest {} full, {} unchanged (304)",
                self.checks, self.retries, self.manifest_full, self.manifest_unchanged
            ),
        );
        if let Some(c) = &self.check_cost {
            row(
                "unchanged check",
                format!(
                    "{} B over the air ({} B of HTTP + TCP/IP headers), against {} B for a full manifest fetch",
                    c.unchanged_ip_bytes, c.unchanged_payload_bytes, c.full_ip_bytes
                ),
            );
        }
        row(
            "attempts",
            format!(
                "{}: {} network failures, {} confirmed; holds: {} backoff, {} daily limit",
                self.attempts, self.download_failures, self.confirmed, self.backoff_holds, self.daily_limit_holds
            ),
        );
        row("rejections", format!("{:?}", self.rejections));
        let _ = writeln!(out, "  stages:");
        for s in &self.stages {
            let _ = writeln!(
                out,
                "    {:>9.0} s  {} {:>3} % {:<7} ({} judged, {} failures)",
                s.at_s, s.release, s.percent, s.state, s.judged, s.failures
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::poisson_peak;

    #[test]
    fn the_poisson_peak_grows_slowly_with_the_bins() {
        assert_eq!(poisson_peak(0.0, 100), 0);
        // Mean 1 per bin: over 10 bins the top is about 3, over 10^5 bins about 8.
        assert_eq!(poisson_peak(1.0, 10), 3);
        assert_eq!(poisson_peak(1.0, 100_000), 8);
    }
}
