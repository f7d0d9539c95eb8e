//! The release side of a staged rollout: what a stage's outcome reports say, and whether the
//! rollout may advance or must halt.
//!
//! One definition for `otactl rollout` (which reads the reports from a bucket) and for the
//! fleet bench (which makes them in virtual time), so the bench's halts are the tool's.
//!
//! A stage is the band of cohort buckets a percentage added: going from 1 % to 10 % opens
//! buckets 100 to 999, and advancing past 10 % is judged on the devices in that band (plus
//! explicitly listed ones), not on the 1 % canaries whose reports are already in. Buckets
//! are recomputed from each report's device id ([`cohort_bucket`]), never taken from the
//! report. Per device only the report of its latest attempt counts, so one device cannot
//! weigh more than one vote by repeating itself.
//!
//! The failure rate is over the outcomes that judge the release: rolled back and rejected
//! count against it, confirmed for it; `failed` (the network, the modem) is shown but not
//! counted, since a bad signal says nothing about the firmware.

use std::collections::BTreeMap;
use std::fmt;

use crate::wire::report::{Outcome, Report};
use crate::wire::rollout::{BUCKETS, cohort_bucket};

/// The band of buckets a stage covers: `[from_percent, to_percent)` of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub from_percent: u8,
    pub to_percent: u8,
}

impl Stage {
    pub fn contains_bucket(&self, bucket: u16) -> bool {
        let per = u32::from(BUCKETS / 100);
        let b = u32::from(bucket);
        b >= u32::from(self.from_percent) * per && b < u32::from(self.to_percent.min(100)) * per
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{} %", self.from_percent, self.to_percent)
    }
}

/// What the reports of one version say, over one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Devices with at least one report.
    pub reported: u32,
    pub confirmed: u32,
    pub rolled_back: u32,
    pub rejected: u32,
    pub failed: u32,
}

impl Tally {
    /// Devices whose latest outcome judges the release (confirmed, rolled back, rejected).
    pub fn judged(&self) -> u32 {
        self.confirmed + self.rolled_back + self.rejected
    }

    pub fn failures(&self) -> u32 {
        self.rolled_back + self.rejected
    }

    /// Failures over judged outcomes; 0 with none judged.
    pub fn failure_rate(&self) -> f64 {
        match self.judged() {
            0 => 0.0,
            n => f64::from(self.failures()) / f64::from(n),
        }
    }

    fn add(&mut self, outcome: Outcome) {
        self.reported += 1;
        match outcome {
            Outcome::Confirmed => self.confirmed += 1,
            Outcome::RolledBack => self.rolled_back += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// The latest outcome of each device for one version: what a tally counts.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// device id → (attempt, outcome)
    latest: BTreeMap<String, (u32, Outcome)>,
}

impl Outcomes {
    /// Collects the reports about `product`/`channel`/`version`; others are ignored.
    pub fn collect<'r>(
        reports: impl IntoIterator<Item = &'r Report<String>>,
        product: &str,
        channel: &str,
        version: &str,
    ) -> Self {
        let mut out = Outcomes::default();
        for r in reports {
            if r.product == product && r.channel == channel && r.version == version {
                out.add(&r.device, r.attempt, r.outcome);
            }
        }
        out
    }

    /// Records one report; a later attempt of the same device replaces an earlier one.
    pub fn add(&mut self, device: &str, attempt: u32, outcome: Outcome) {
        match self.latest.get_mut(device) {
            Some(seen) if seen.0 > attempt => {}
            Some(seen) => *seen = (attempt, outcome),
            None => {
                self.latest.insert(device.to_owned(), (attempt, outcome));
            }
        }
    }

    /// The tally of the devices in `stage`, and of those in `listed` wherever they are.
    pub fn tally(&self, product: &str, stage: Stage, listed: &[&str]) -> Tally {
        let mut t = Tally::default();
        for (device, &(_, outcome)) in &self.latest {
            if listed.contains(&device.as_str()) || stage.contains_bucket(cohort_bucket(product, device)) {
                t.add(outcome);
            }
        }
        t
    }

    /// The tally of every reporting device.
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for &(_, outcome) in self.latest.values() {
            t.add(outcome);
        }
        t
    }
}

/// When a stage is good enough to widen, and bad enough to stop.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Thresholds {
    /// Judged outcomes a stage needs before the rollout may advance past it.
    pub min_reports: u32,
    /// Highest failure rate (0 to 1) at which a rollout may advance; above it, it halts.
    pub max_failure_rate: f64,
    /// Judged outcomes a halt needs at least, so that one early rollback of two does not
    /// stop a release (a 50 % rate on two devices is noise).
    pub halt_min_reports: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_reports: 20,
            max_failure_rate: 0.05,
            halt_min_reports: 5,
        }
    }
}

/// Why a rollout may not advance.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvanceRefused {
    #[error(
        "stage {stage} has {judged} judged reports, fewer than the {needed} it needs; wait for more devices to report (or lower --min-reports)"
    )]
    TooFewReports { stage: Stage, judged: u32, needed: u32 },
    #[error(
        "stage {stage} fails on {:.1} % of its devices ({failures} of {judged}), above the {:.1} % allowed; halt it with `otactl rollout halt`",
        rate * 100.0, max * 100.0
    )]
    FailureRateTooHigh {
        stage: Stage,
        failures: u32,
        judged: u32,
        rate: f64,
        max: f64,
    },
}

/// Whether a rollout whose current stage has `tally` may widen.
pub fn may_advance(stage: Stage, tally: &Tally, t: &Thresholds) -> Result<(), AdvanceRefused> {
    let judged = tally.judged();
    if tally.failure_rate() > t.max_failure_rate && judged > 0 {
        return Err(AdvanceRefused::FailureRateTooHigh {
            stage,
            failures: tally.failures(),
            judged,
            rate: tally.failure_rate(),
            max: t.max_failure_rate,
        });
    }
    if judged < t.min_reports {
        return Err(AdvanceRefused::TooFewReports {
            stage,
            judged,
            needed: t.min_reports,
        });
    }
    Ok(())
}

/// Whether a rollout must halt: its failure rate over everything reported so far for the
/// version (all stages) is above the threshold, on at least `halt_min_reports` outcomes.
/// Judged over all stages, because a halt must not wait for a fresh stage to fill up.
pub fn must_halt(total: &Tally, t: &Thresholds) -> bool {
    total.judged() >= t.halt_min_reports && total.failure_rate() > t.max_failure_rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_in(stage: Stage, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("d{i}"))
            .filter(|id| stage.contains_bucket(cohort_bucket("p", id)))
            .take(n)
            .collect()
    }

    #[test]
    fn a_stage_is_judged_on_its_own_band_and_latest_attempts() {
        let first = Stage {
            from_percent: 0,
            to_percent: 10,
        };
        let second = Stage {
            from_percent: 10,
            to_percent: 50,
        };
        let mut o = Outcomes::default();
        for id in ids_in(first, 30) {
            o.add(&id, 1, Outcome::Confirmed);
        }
        let late = ids_in(second, 3);
        for id in &late {
            o.add(id, 1, Outcome::Failed);
            o.add(id, 2, Outcome::RolledBack);
            // An older attempt arriving late does not undo the newer one.
            o.add(id, 1, Outcome::Confirmed);
        }
        let t1 = o.tally("p", first, &[]);
        assert_eq!((t1.reported, t1.confirmed), (30, 30));
        let t2 = o.tally("p", second, &[]);
        assert_eq!((t2.reported, t2.rolled_back, t2.failed), (3, 3, 0));
        // A listed device counts in whichever stage it is listed for.
        let t = o.tally("p", second, &[late[0].as_str(), "d-unknown"]);
        assert_eq!(t.reported, 3);
        let listed_first = o.tally("p", first, &[late[0].as_str()]);
        assert_eq!(listed_first.reported, 31);
        assert_eq!(o.total().reported, 33);
    }

    #[test]
    fn advance_needs_enough_reports_and_a_low_failure_rate() {
        let stage = Stage {
            from_percent: 1,
            to_percent: 10,
        };
        let t = Thresholds::default();
        let good = Tally {
            reported: 25,
            confirmed: 25,
            ..Tally::default()
        };
        assert_eq!(may_advance(stage, &good, &t), Ok(()));
        let few = Tally {
            reported: 12,
            confirmed: 10,
            failed: 2,
            ..Tally::default()
        };
        assert!(matches!(
            may_advance(stage, &few, &t),
            Err(AdvanceRefused::TooFewReports {
                judged: 10,
                needed: 20,
                ..
            })
        ));
        let bad = Tally {
            reported: 30,
            confirmed: 27,
            rolled_back: 3,
            ..Tally::default()
        };
        let e = may_advance(stage, &bad, &t).unwrap_err();
        assert!(e.to_string().contains("10.0 %"), "{e}");
        assert!(must_halt(&bad, &t));
        // Two rollbacks of three is noise until there are enough outcomes.
        let early = Tally {
            reported: 3,
            confirmed: 1,
            rolled_back: 2,
            ..Tally::default()
        };
        assert!(!must_halt(&early, &t));
        assert!(!must_halt(&good, &t));
        // Network failures say nothing about the release.
        let offline = Tally {
            reported: 40,
            confirmed: 20,
            failed: 20,
            ..Tally::default()
        };
        assert_eq!(offline.failure_rate(), 0.0);
    }
}
