//! The release side: the channel's manifest as the origin serves it, and the operator's
//! hourly job, which does what `otactl rollout check` and `otactl rollout advance` do.
//!
//! Every hour the job reads the reports received so far and, for the release on the
//! channel: halts it if [`must_halt`] says so over all its reports, else widens it to the
//! next stage when [`may_advance`] passes for the current stage's band `[previous %,
//! current %)`, the listed pilots counting in every stage as they do for the tool. Each
//! change re-signs the manifest, so every device fetches it in full once more; unchanged,
//! it is a `304`.

use device_fw::esp::chip::Chip;
use device_fw::fleet::{Outcomes, Stage, Thresholds, may_advance, must_halt};
use device_fw::wire::manifest::Manifest;
use device_fw::wire::report::Report;
use device_fw::wire::rollout::{DeviceList, Rollout, RolloutState, cohort_bucket, in_percent};
use serde::Serialize;

use super::{BAD, BAD_RELEASE_AT_US, GOOD, RELEASES, STAGES, World};

/// The manifest the origin serves on the fleet's channel.
#[derive(Debug)]
pub(super) struct Channel {
    /// The release the manifest names.
    pub(super) current: usize,
    /// `None`: no rollout member (the release every device already runs at t = 0).
    rollout: Option<(u8, RolloutState)>,
    /// Bumped on every change: a device that saw this generation gets a `304`.
    pub(super) generation: u32,
    image_bytes: u32,
    pilots: Vec<String>,
    /// The pilots as the manifest's JSON array, as a device reads it from a payload.
    pilots_json: String,
}

impl Channel {
    pub(super) fn new(pilots: &[String], image_bytes: u32) -> Self {
        Channel {
            current: 0,
            rollout: None,
            generation: 0,
            image_bytes,
            pilots: pilots.to_vec(),
            pilots_json: serde_json::to_string(pilots).expect("ids serialise"),
        }
    }

    pub(super) fn manifest<'a>(
        &'a self,
        product: &'a str,
        channel: &'a str,
        chip: Chip,
        board: &'a str,
    ) -> Manifest<'a> {
        Manifest {
            schema: 1,
            product,
            channel,
            version: RELEASES[self.current],
            chip: chip.as_str(),
            board,
            image: "../images/app.bin",
            size: self.image_bytes,
            sha256: "0000000000000000000000000000000000000000000000000000000000000000",
            secure_version: 1,
            created: "2026-12-01T00:00:00Z",
            rollout: self.rollout.map(|(percent, state)| Rollout {
                percent,
                state,
                devices: DeviceList::Json(&self.pilots_json),
            }),
            compressed: None,
            delta: None,
        }
    }

    /// Whether the channel's rollout of `release` admits `id` right now, recomputed from the
    /// cohort bucket and the listed ids: the bench's check on every install.
    pub(super) fn audit_admits(&self, product: &str, id: &str, release: usize) -> bool {
        if release != self.current {
            return false;
        }
        match self.rollout {
            None => true,
            Some((percent, state)) => {
                state == RolloutState::Active
                    && (self.pilots.iter().any(|p| p == id) || in_percent(cohort_bucket(product, id), percent))
            }
        }
    }

    fn set(&mut self, release: usize, percent: u8, state: RolloutState) {
        self.current = release;
        self.rollout = Some((percent, state));
        self.generation += 1;
    }
}

/// A change of the channel's rollout, as `otactl rollout status` would list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEvent {
    pub release: &'static str,
    pub percent: u8,
    pub state: &'static str,
    pub at_s: f64,
    /// Judged reports behind the decision (the stage's for an advance, all for a halt).
    pub judged: u32,
    pub failures: u32,
}

#[derive(Debug)]
pub(super) struct Operator {
    pub(super) thresholds: Thresholds,
    outcomes: Vec<Outcomes>,
    pub(super) stages: Vec<StageEvent>,
    pub(super) halted: Option<(u8, u64)>,
    pub(super) good_full_at: Option<u64>,
    pub(super) bad_published_at: Option<u64>,
}

impl Operator {
    pub(super) fn new(thresholds: Thresholds) -> Self {
        Operator {
            thresholds,
            outcomes: vec![Outcomes::default(); RELEASES.len()],
            stages: Vec::new(),
            halted: None,
            good_full_at: None,
            bad_published_at: None,
        }
    }

    /// A parsed report reaches the bucket the job reads; only this product's and channel's
    /// count, as in `Outcomes::collect`.
    pub(super) fn receive(&mut self, r: &Report<String>, product: &str, channel: &str) {
        if r.product != product || r.channel != channel {
            return;
        }
        if let Some(i) = RELEASES.iter().position(|v| *v == r.version) {
            self.outcomes[i].add(&r.device, r.attempt, r.outcome);
        }
    }

    fn log(&mut self, release: usize, percent: u8, state: RolloutState, now: u64, judged: u32, failures: u32) {
        self.stages.push(StageEvent {
            release: RELEASES[release],
            percent,
            state: state.as_str(),
            at_s: now as f64 / 1e6,
            judged,
            failures,
        });
    }
}

fn previous_stage(percent: u8) -> u8 {
    STAGES.iter().copied().take_while(|&p| p < percent).last().unwrap_or(0)
}

fn next_stage(percent: u8) -> Option<u8> {
    STAGES.iter().copied().find(|&p| p > percent)
}

impl World {
    /// The hourly job.
    pub(super) fn operator_run(&mut self, now: u64) {
        let (ch, op) = (&mut self.channel, &mut self.operator);
        let th = op.thresholds;
        if ch.current == 0 {
            ch.set(GOOD, STAGES[0], RolloutState::Active);
            op.log(GOOD, STAGES[0], RolloutState::Active, now, 0, 0);
            return;
        }
        if let Some((percent, RolloutState::Active)) = ch.rollout {
            let release = ch.current;
            let total = op.outcomes[release].total();
            if must_halt(&total, &th) {
                ch.set(release, percent, RolloutState::Halted);
                op.halted = Some((percent, now));
                op.log(
                    release,
                    percent,
                    RolloutState::Halted,
                    now,
                    total.judged(),
                    total.failures(),
                );
                return;
            }
            if let Some(next) = next_stage(percent) {
                let stage = Stage {
                    from_percent: previous_stage(percent),
                    to_percent: percent,
                };
                let listed: Vec<&str> = self.pilots.iter().map(String::as_str).collect();
                let tally = op.outcomes[release].tally(&self.target.product, stage, &listed);
                if may_advance(stage, &tally, &th).is_ok() {
                    ch.set(release, next, RolloutState::Active);
                    op.log(
                        release,
                        next,
                        RolloutState::Active,
                        now,
                        tally.judged(),
                        tally.failures(),
                    );
                    if release == GOOD && next == 100 {
                        op.good_full_at = Some(now);
                    }
                }
            }
        }
        let good_done = ch.current == GOOD && ch.rollout == Some((100, RolloutState::Active));
        if good_done && now >= BAD_RELEASE_AT_US {
            ch.set(BAD, STAGES[0], RolloutState::Active);
            op.bad_published_at = Some(now);
            op.log(BAD, STAGES[0], RolloutState::Active, now, 0, 0);
        }
    }
}
