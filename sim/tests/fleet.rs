//! The fleet bench on a small fleet: what a staged rollout promises, checked on the summary
//! (the rollout gate and the device's policy are the real ones; see `sim::fleet`).

use sim::fleet::{self, Boot, FleetConfig, Summary};

/// 500 devices over 3 days. Its 1 % stage holds about 21 devices (about 5 by bucket, 16
/// listed), on some seeds fewer than the default gate's 20 judged reports, which it would
/// then never reach: the operator lowers the gate as `otactl rollout advance --min-reports`
/// allows.
fn small(seed: u64) -> FleetConfig {
    FleetConfig {
        devices: 500,
        days: 3,
        seed,
        min_reports: Some(10),
        ..FleetConfig::default()
    }
}

fn without_wall_time(s: &Summary) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("summary serialises");
    v.as_object_mut().expect("an object").remove("wall_s");
    v
}

#[test]
fn the_good_release_reaches_the_fleet_and_the_bad_one_halts_at_its_first_stage() {
    let s = fleet::run(&small(1));
    assert_eq!(s.outside_cohort_updates, 0, "{s:#?}");
    let full = s.stages.iter().find(|e| e.release == "1.1.0" && e.percent == 100);
    assert!(full.is_some_and(|e| e.state == "active"), "{:?}", s.stages);
    assert!(s.updated >= s.devices * 95 / 100, "most devices updated: {s:#?}");
    assert!(s.bad_release_published_at_s.is_some(), "{s:#?}");
    assert_eq!(s.halted_at_percent, Some(1), "{:?}", s.stages);
    assert!(
        !s.stages.iter().any(|e| e.release == "1.2.0" && e.percent > 1),
        "the bad release never widened: {:?}",
        s.stages
    );
    assert!(s.bad_release_installs > 0, "the canaries took it: {s:#?}");
    assert!(s.bad_release_installs <= s.first_stage_devices, "{s:#?}");
    assert_eq!(
        s.repeat_installs, 0,
        "a failed version is never installed again: {s:#?}"
    );
    assert!(
        s.rolled_back > 0 && s.rejections.contains_key("previously-failed"),
        "{s:#?}"
    );
    // Network failures were retried after backoff, and devices in poor coverage ran out of
    // attempts for the day.
    assert!(
        s.download_failures > 0 && s.retries > 0 && s.daily_limit_holds > 0,
        "{s:#?}"
    );
    assert!(s.manifest_unchanged > s.manifest_full, "most checks are 304s: {s:#?}");
    assert!(s.cost_model.source.contains("seed-cgnat"), "{:?}", s.cost_model);
    assert_eq!(s.unchanged_check_bytes, None);
    assert!(s.gate_held());
}

#[test]
fn a_seed_always_gives_the_same_run() {
    let (a, b) = (fleet::run(&small(3)), fleet::run(&small(3)));
    assert_eq!(without_wall_time(&a), without_wall_time(&b));
    let other = fleet::run(&small(4));
    assert_ne!(without_wall_time(&a), without_wall_time(&other));
}

#[test]
fn without_jitter_a_fleet_wide_power_return_checks_in_one_second() {
    let synced = fleet::run(&FleetConfig {
        boot: Boot::Sync,
        jitter_us: Some(0),
        ..small(1)
    });
    assert!(synced.peak_requests_per_s >= 500, "{synced:#?}");
    assert_eq!(synced.outside_cohort_updates, 0);
    let jittered = fleet::run(&FleetConfig {
        boot: Boot::Sync,
        ..small(1)
    });
    assert!(
        jittered.peak_requests_per_s * 10 < synced.peak_requests_per_s,
        "{} vs {}",
        jittered.peak_requests_per_s,
        synced.peak_requests_per_s
    );
}
