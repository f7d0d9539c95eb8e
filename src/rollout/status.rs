//! `otactl rollout status`: per version and per stage, what the devices reported.
//!
//! Each device's stage is recomputed from its id ([`device_fw::wire::rollout::cohort_bucket`]
//! through [`Outcomes::tally`]); nothing a report claims about its place in the rollout is
//! used. Per device only its latest attempt counts.

use device_fw::fleet::{self, AdvanceRefused, Outcomes, Stage, Tally, Thresholds};

use super::history::{Step, Timeline};
use super::{Gate, Report, RolloutError, Target, open, reports_bucket};
use crate::channel::{self, Facts};
use crate::reports;

/// One stage of a version and what its devices reported.
#[derive(Debug, Clone, Copy)]
pub struct StageStatus {
    pub stage: Stage,
    pub tally: Tally,
}

/// One version on the channel: its manifests, its stages, its reports.
#[derive(Debug, Clone)]
pub struct VersionStatus {
    pub version: String,
    pub current: bool,
    pub steps: Vec<Step>,
    pub stages: Vec<StageStatus>,
    /// Every reporting device, whatever its stage.
    pub total: Tally,
    /// The current version: whether it may widen past its stage now.
    pub advance: Option<Result<(), AdvanceRefused>>,
    /// Whether `otactl rollout check` would halt it.
    pub must_halt: bool,
}

/// The channel's rollout as the bucket and the reports tell it.
#[derive(Debug, Clone)]
pub struct Status {
    pub product: String,
    pub channel: String,
    pub bucket: String,
    pub reports_bucket: String,
    pub current: Facts,
    pub thresholds: Thresholds,
    /// Newest first: the current version, then the earlier ones.
    pub versions: Vec<VersionStatus>,
    pub reports_read: usize,
    /// Reports and history entries not counted, and why.
    pub skipped: Vec<(String, String)>,
}

/// Reads the channel's manifest, its history and the reports.
pub fn status(target: &Target, gate: &Gate) -> Result<Status, RolloutError> {
    let runtime = channel::runtime()?;
    let mut report = Report::default();
    let o = open(target, &runtime, &mut report)?;
    let thresholds = gate.thresholds(&o.loaded.profile);
    let product = o.facts.product.clone();
    let history = o.history(&runtime)?;
    let bucket = reports_bucket(target, &o.bucket)?;
    let loaded = runtime.block_on(reports::load(&bucket, &product, &o.channel, None))?;

    let mut timelines: Vec<Timeline> = history.timelines.clone();
    // Versions with reports but no manifest in the history (published before it was kept).
    for version in loaded.by_version.keys() {
        if history.of(version).is_none() {
            timelines.insert(
                0,
                Timeline {
                    version: version.clone(),
                    current: false,
                    steps: Vec::new(),
                },
            );
        }
    }
    let mut versions = Vec::new();
    for t in timelines.iter().rev() {
        let got = loaded.by_version.get(&t.version).map(Vec::as_slice).unwrap_or_default();
        let outcomes = Outcomes::collect(got, &product, &o.channel, &t.version);
        let listed = t.listed();
        let stages: Vec<StageStatus> = t
            .stages()
            .into_iter()
            .map(|stage| StageStatus {
                stage,
                tally: outcomes.tally(&product, stage, &listed),
            })
            .collect();
        let total = outcomes.total();
        let advance = match (t.current, stages.last()) {
            (true, Some(last)) if last.stage.to_percent < 100 => {
                Some(fleet::may_advance(last.stage, &last.tally, &thresholds))
            }
            _ => None,
        };
        versions.push(VersionStatus {
            version: t.version.clone(),
            current: t.current,
            steps: t.steps.clone(),
            stages,
            total,
            advance,
            must_halt: fleet::must_halt(&total, &thresholds),
        });
    }
    let mut skipped = history.skipped;
    skipped.extend(loaded.skipped.iter().cloned());
    Ok(Status {
        product,
        channel: o.channel,
        bucket: o.bucket.url().to_owned(),
        reports_bucket: bucket.url().to_owned(),
        current: o.facts,
        thresholds,
        versions,
        reports_read: loaded.read(),
        skipped,
    })
}
