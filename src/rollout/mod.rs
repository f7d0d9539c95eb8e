//! Staged rollouts, release side: the work behind `otactl rollout`, without its output
//! (that is `cli/rollout.rs`).
//!
//! A rollout is the signed `rollout` member of the channel's manifest
//! ([`device_fw::wire::rollout`]); every change is a rewrite of that manifest with the
//! guarantees of a release ([`crate::channel`]): verified before, re-signed with a key the
//! devices trust, the old one kept in the channel's history, a conditional write that a
//! racing job loses loudly. Whether a stage may widen or must stop is decided by
//! [`device_fw::fleet`], from the devices' outcome reports ([`crate::reports`]), the same
//! functions the fleet bench runs.

use std::path::{Path, PathBuf};

use device_fw::fleet::{self, AdvanceRefused, Outcomes, Stage, Tally, Thresholds};
use device_fw::wire::manifest::ManifestError;
use device_fw::wire::rollout::{self, MAX_DEVICES, RolloutState};
use miette::Diagnostic;

use crate::bucket::{Bucket, BucketError, Current, Kind, Location};
use crate::channel::{self, ChannelError, Expected, Facts, Held, Loaded, ReplaceError, RolloutSpec};
use crate::keys::SigningKeySource;
use crate::reports;

pub mod history;
mod status;

pub use status::{Status, status};

/// Exit status: a stage that is not judged yet (too few reports) for `advance`.
pub const EXIT_NOT_YET: u8 = 5;

/// Which channel, in which bucket, for which profile.
#[derive(Debug, Clone)]
pub struct Target {
    pub profile: PathBuf,
    pub channel: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    /// Where the reports are: a bucket URL, else the release bucket.
    pub reports: Option<String>,
}

/// What to change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Set the percentage (and, if given, the listed devices); the state stays.
    Set {
        percent: u8,
        devices: Option<Vec<String>>,
        force: bool,
    },
    Pause,
    Resume,
    Halt,
    /// Widen to `to` if the current stage's reports allow it.
    Advance {
        to: u8,
    },
    /// Halt if the reports say so.
    Check,
}

/// Thresholds given on the command line; the rest come from the profile's `[rollout]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gate {
    pub min_reports: Option<u32>,
    pub max_failure_rate: Option<f64>,
    pub halt_min_reports: Option<u32>,
}

impl Gate {
    pub fn thresholds(&self, profile: &device_fw::profile::Profile) -> Thresholds {
        let t = profile.rollout.thresholds();
        Thresholds {
            min_reports: self.min_reports.unwrap_or(t.min_reports),
            max_failure_rate: self.max_failure_rate.unwrap_or(t.max_failure_rate),
            halt_min_reports: self.halt_min_reports.unwrap_or(t.halt_min_reports),
        }
    }
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Set { .. } => "set",
            Change::Pause => "pause",
            Change::Resume => "resume",
            Change::Halt => "halt",
            Change::Advance { .. } => "advance",
            Change::Check => "check",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    pub key: SigningKeySource,
    pub dry_run: bool,
    pub gate: Gate,
    pub change: Change,
}

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest was rewritten.
    Changed,
    /// The manifest already said so; nothing written.
    Unchanged,
    /// Checked and signed; nothing written.
    DryRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::DryRun => "dry-run",
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the thresholds (or not enough judged reports to halt on).
    Healthy,
    /// Above them: the rollout was halted now (with `--dry-run`: would be).
    Halted,
    /// The rollout had been halted before.
    AlreadyHalted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Halted => "halted",
            Verdict::AlreadyHalted => "already-halted",
        }
    }

    /// `check`'s exit status for it.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Halted => 3,
            Verdict::AlreadyHalted => 4,
        }
    }
}

/// The reports a decision was made on.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The current stage and its tally (advance).
    pub stage: Option<(Stage, Tally)>,
    /// Every device that reported on the version, all stages (check).
    pub total: Tally,
    pub thresholds: Thresholds,
    pub reports_bucket: String,
    pub reports_read: usize,
    pub reports_skipped: usize,
}

/// Everything learned, filled in as the change goes.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcome: Option<Outcome>,
    pub product: Option<String>,
    pub channel: Option<String>,
    pub bucket: Option<String>,
    pub version: Option<String>,
    pub key_id: Option<String>,
    /// The rollout before and after (everyone, for a manifest without the member).
    pub before: Option<RolloutSpec>,
    pub after: Option<RolloutSpec>,
    /// The channel's manifest, and what was done to it.
    pub manifest: channel::Objects,
    pub judgement: Option<Judgement>,
    pub verdict: Option<Verdict>,
    pub warnings: Vec<String>,
}

/// Why a rollout command did not do what it was asked. [`RolloutError::exit_code`]: 1
/// refused, 2 otactl could not do it, [`EXIT_NOT_YET`] a stage not judged yet.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum RolloutError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Channel(#[from] ChannelError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Bucket(#[from] BucketError),

    #[error("channel {channel} has no release in {bucket}")]
    #[diagnostic(
        code(otactl::rollout::no_release),
        help("publish one first (`otactl release --rollout 5%`), or check --bucket and --channel")
    )]
    NoRelease { channel: String, bucket: String },

    #[error("channel {channel}'s manifest does not verify with the profile's public keys: {problem}")]
    #[diagnostic(
        code(otactl::rollout::unverified),
        help(
            "otactl changes only a manifest it can trust; check it with `otactl verify`, and publish a release over it with `otactl release --allow-downgrade`"
        )
    )]
    Unverified { channel: String, problem: String },

    #[error("channel {channel} holds a release for {holds}; this profile is for {ours}")]
    #[diagnostic(
        code(otactl::rollout::other_product),
        help("use the profile of the devices that follow this channel")
    )]
    OtherProduct {
        channel: String,
        holds: String,
        ours: String,
    },

    #[error("the rollout of {version} on channel {channel} is halted; a halted rollout never resumes")]
    #[diagnostic(
        code(otactl::rollout::halted),
        help("publish a fixed version with `otactl release --rollout …`; its rollout starts from its own percentage")
    )]
    Halted { channel: String, version: String },

    #[error("the rollout of {version} on channel {channel} is paused")]
    #[diagnostic(
        code(otactl::rollout::paused),
        help("`otactl rollout resume` first, once the pause's reason is dealt with")
    )]
    Paused { channel: String, version: String },

    #[error("lowering the rollout from {from} % to {to} % would not take the release back from devices that have it")]
    #[diagnostic(
        code(otactl::rollout::lowering),
        help(
            "devices in the higher band keep what they installed; a lower percentage only stops new ones. Pass --force if that is what is wanted, or `otactl rollout pause` / `halt` to stop every new install"
        )
    )]
    Lowering { from: u8, to: u8 },

    #[error("the new device list drops {dropped}, listed now")]
    #[diagnostic(
        code(otactl::rollout::drops_devices),
        help(
            "a listed device that installed the release keeps it; pass --force to drop it from the list anyway, or list it again"
        )
    )]
    DropsDevices { dropped: String },

    #[error("`{id}` is not a device id")]
    #[diagnostic(
        code(otactl::rollout::device_id),
        help("device ids are 1 to 32 bytes of a-z, 0-9, '.', '_' and '-', as devices report them")
    )]
    BadDevice { id: String },

    #[error("{count} devices listed; a manifest lists at most {MAX_DEVICES}")]
    #[diagnostic(
        code(otactl::rollout::too_many_devices),
        help("list bench and pilot units only; the percentage is for the fleet")
    )]
    TooManyDevices { count: usize },

    #[error("the rollout is at {current} %; advancing to {to} % would not widen it")]
    #[diagnostic(
        code(otactl::rollout::not_wider),
        help("advance to a percentage above the current one (`otactl rollout set --force` lowers)")
    )]
    NotWider { current: u8, to: u8 },

    #[error("the rollout may not advance: {0}")]
    #[diagnostic(code(otactl::rollout::advance_refused))]
    Refused(AdvanceRefused),

    #[error("the rollout would not be a valid manifest: {0}")]
    #[diagnostic(code(otactl::rollout::manifest), help("devices would reject it"))]
    Manifest(ManifestError),

    #[error("lost a race on channel {channel}: {detail}{now}")]
    #[diagnostic(
        code(otactl::rollout::lost_race),
        help(
            "a release or another rollout change was written to the channel while this one ran; this change was not applied and devices never saw it. Look at `otactl rollout status`, then run it again if it still makes sense"
        )
    )]
    LostRace {
        channel: String,
        detail: String,
        now: String,
    },
}

impl RolloutError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RolloutError::Channel(_)
            | RolloutError::Bucket(_)
            | RolloutError::BadDevice { .. }
            | RolloutError::TooManyDevices { .. } => 2,
            RolloutError::Refused(AdvanceRefused::TooFewReports { .. }) => EXIT_NOT_YET,
            _ => 1,
        }
    }
}

/// `5`, `5%` or `5 %`: a whole percentage, 0 to 100.
pub fn parse_percent(text: &str) -> Result<u8, String> {
    let number = text.trim().trim_end_matches('%').trim_end();
    match number.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("`{text}` is not a whole percentage from 0 to 100 (5 or 5%)")),
    }
}

/// `5%` (a percentage, fractions allowed) or `0.05` (a fraction of 1).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a failure rate: write 5% or 0.05");
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim_end().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => {
            let v = t.parse::<f64>().map_err(|_| bad())?;
            if v > 1.0 {
                return Err(format!("`{text}` is above 1: write {t}% for a percentage"));
            }
            v
        }
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(bad());
    }
    Ok(value)
}

/// A channel's manifest, read and verified.
struct Opened {
    loaded: Loaded,
    channel: String,
    bucket: Bucket,
    /// The profile's public keys, and the same as raw bytes.
    trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
    trusted: Vec<[u8; 32]>,
    current: Current,
    held: Held,
    facts: Facts,
}

impl Opened {
    /// The channel's history, with the current manifest last.
    fn history(&self, runtime: &tokio::runtime::Runtime) -> Result<history::History, BucketError> {
        runtime.block_on(history::read(
            &self.bucket,
            &self.channel,
            &self.trusted,
            Some((&self.facts, &self.current.bytes)),
        ))
    }
}

/// Reads the channel's manifest and insists that it verifies and is for the profile.
fn open(target: &Target, runtime: &tokio::runtime::Runtime, report: &mut Report) -> Result<Opened, RolloutError> {
    let loaded = channel::load_profile(&target.profile)?;
    let channel = loaded.channel(target.channel.as_deref())?;
    report.product = Some(loaded.profile.device.product.clone());
    report.channel = Some(channel.clone());
    let trusted_keys = loaded.trusted_keys()?;
    let trusted = channel::raw_keys(&trusted_keys);
    let bucket = loaded.bucket(target.bucket.as_deref(), target.endpoint.as_deref(), false)?;
    report.bucket = Some(bucket.url().to_owned());
    let key = channel::manifest_key(&channel);
    report.manifest = channel::Objects::at(&bucket, &channel);
    let Some(current) = runtime.block_on(bucket.read_manifest(&key))? else {
        return Err(RolloutError::NoRelease {
            channel,
            bucket: bucket.url().to_owned(),
        });
    };
    let held = channel::inspect(&current.bytes, &trusted);
    let facts = match (&held.facts, held.verified) {
        (Some(f), true) => f.clone(),
        _ => {
            return Err(RolloutError::Unverified {
                channel,
                problem: held.problem.clone().unwrap_or_default(),
            });
        }
    };
    let device = &loaded.profile.device;
    let ours = (device.product.as_str(), device.chip.as_str(), device.board.as_str());
    let holds = (facts.product.as_str(), facts.chip.as_str(), facts.board.as_str());
    if ours != holds {
        let show = |(p, c, b): (&str, &str, &str)| format!("{p} on {c} ({b})");
        return Err(RolloutError::OtherProduct {
            channel,
            holds: show(holds),
            ours: show(ours),
        });
    }
    report.version = Some(facts.version.clone());
    report.before = Some(facts.effective_rollout());
    Ok(Opened {
        loaded,
        channel,
        bucket,
        trusted_keys,
        trusted,
        current,
        held,
        facts,
    })
}

/// The bucket the reports are in: `--reports`, else the release bucket.
fn reports_bucket(target: &Target, release: &Bucket) -> Result<Bucket, RolloutError> {
    let Some(text) = &target.reports else {
        return Ok(release.clone());
    };
    let location = Location::parse(text, Path::new("."))?;
    let endpoint = match location.kind {
        Kind::S3 { .. } | Kind::Azure { .. } => target.endpoint.as_deref(),
        _ => None,
    };
    Ok(Bucket::open(&location, endpoint, false)?)
}

/// The outcomes reported on `version`, and what was read.
fn outcomes(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    o: &Opened,
) -> Result<(Outcomes, String, usize, usize), RolloutError> {
    let bucket = reports_bucket(target, &o.bucket)?;
    let version = &o.facts.version;
    let loaded = runtime.block_on(reports::load(&bucket, &o.facts.product, &o.channel, Some(version)))?;
    let reports = loaded.by_version.get(version).map(Vec::as_slice).unwrap_or_default();
    let outcomes = Outcomes::collect(reports, &o.facts.product, &o.channel, version);
    Ok((outcomes, bucket.url().to_owned(), reports.len(), loaded.skipped.len()))
}

/// The new device list: the given one checked, or the current one.
fn devices(given: Option<&Vec<String>>, now: &[String], force: bool) -> Result<Vec<String>, RolloutError> {
    let Some(given) = given else {
        return Ok(now.to_vec());
    };
    let mut list: Vec<String> = Vec::new();
    for id in given {
        if !rollout::device_id_ok(id) {
            return Err(RolloutError::BadDevice { id: id.clone() });
        }
        if !list.contains(id) {
            list.push(id.clone());
        }
    }
    if list.len() > MAX_DEVICES {
        return Err(RolloutError::TooManyDevices { count: list.len() });
    }
    let dropped: Vec<&str> = now.iter().filter(|d| !list.contains(d)).map(String::as_str).collect();
    if !dropped.is_empty() && !force {
        return Err(RolloutError::DropsDevices {
            dropped: dropped.join(", "),
        });
    }
    Ok(list)
}

/// `advance --to`: the rollout widened, if the current stage allows it.
fn advance(
    runtime: &tokio::runtime::Runtime,
    req: &Request,
    o: &Opened,
    to: u8,
    report: &mut Report,
) -> Result<RolloutSpec, RolloutError> {
    let before = o.facts.effective_rollout();
    if to <= before.percent {
        return Err(RolloutError::NotWider {
            current: before.percent,
            to,
        });
    }
    let thresholds = req.gate.thresholds(&o.loaded.profile);
    let (outcomes, reports_bucket, read, skipped) = outcomes(runtime, &req.target, o)?;
    let history = o.history(runtime)?;
    let timeline = history.of(&o.facts.version);
    let stage = timeline.and_then(|t| t.stages().last().copied()).unwrap_or(Stage {
        from_percent: 0,
        to_percent: before.percent,
    });
    let listed = timeline.map(history::Timeline::listed).unwrap_or_default();
    let tally = outcomes.tally(&o.facts.product, stage, &listed);
    report.judgement = Some(Judgement {
        stage: Some((stage, tally)),
        total: outcomes.total(),
        thresholds,
        reports_bucket,
        reports_read: read,
        reports_skipped: skipped,
    });
    fleet::may_advance(stage, &tally, &thresholds).map_err(RolloutError::Refused)?;
    Ok(RolloutSpec { percent: to, ..before })
}

/// `check`: the rollout halted, if its reports say so; as it is otherwise.
fn check(
    runtime: &tokio::runtime::Runtime,
    req: &Request,
    o: &Opened,
    report: &mut Report,
) -> Result<RolloutSpec, RolloutError> {
    let before = o.facts.effective_rollout();
    let thresholds = req.gate.thresholds(&o.loaded.profile);
    let (outcomes, reports_bucket, read, skipped) = outcomes(runtime, &req.target, o)?;
    let total = outcomes.total();
    report.judgement = Some(Judgement {
        stage: None,
        total,
        thresholds,
        reports_bucket,
        reports_read: read,
        reports_skipped: skipped,
    });
    let verdict = if before.state == RolloutState::Halted {
        Verdict::AlreadyHalted
    } else if fleet::must_halt(&total, &thresholds) {
        Verdict::Halted
    } else {
        Verdict::Healthy
    };
    report.verdict = Some(verdict);
    Ok(match verdict {
        Verdict::Halted => RolloutSpec {
            state: RolloutState::Halted,
            ..before
        },
        _ => before,
    })
}

/// Applies `req.change` to the channel's rollout.
pub fn change(req: &Request, report: &mut Report) -> Result<Outcome, RolloutError> {
    let runtime = channel::runtime()?;
    let o = open(&req.target, &runtime, report)?;
    // The key before anything is decided: a scheduled check must fail on a missing secret
    // at once, not on the day it has to halt a rollout.
    let channel::Signer {
        key: signing,
        key_id,
        warnings,
    } = channel::signer(&req.key, &o.trusted_keys)?;
    report.key_id = Some(key_id);
    report
        .warnings
        .extend(warnings.into_iter().map(|w| format!("{:?}", miette::Report::new(w))));
    let before = o.facts.effective_rollout();
    let (channel, version) = (o.channel.clone(), o.facts.version.clone());
    let halted = || RolloutError::Halted {
        channel: channel.clone(),
        version: version.clone(),
    };
    let with_state = |state| RolloutSpec {
        state,
        ..before.clone()
    };
    let after = match &req.change {
        Change::Set { .. } | Change::Resume | Change::Advance { .. } if before.state == RolloutState::Halted => {
            return Err(halted());
        }
        Change::Pause if before.state == RolloutState::Halted => return Err(halted()),
        Change::Set {
            percent,
            devices: given,
            force,
        } => {
            if *percent < before.percent && !force {
                return Err(RolloutError::Lowering {
                    from: before.percent,
                    to: *percent,
                });
            }
            RolloutSpec {
                percent: *percent,
                state: before.state,
                devices: devices(given.as_ref(), &before.devices, *force)?,
            }
        }
        Change::Pause => with_state(RolloutState::Paused),
        Change::Resume => with_state(RolloutState::Active),
        Change::Halt => with_state(RolloutState::Halted),
        Change::Advance { to } => {
            if before.state == RolloutState::Paused {
                return Err(RolloutError::Paused { channel, version });
            }
            advance(&runtime, req, &o, *to, report)?
        }
        Change::Check => check(&runtime, req, &o, report)?,
    };
    report.after = Some(after.clone());
    if after == before {
        report.manifest.write = Some("unchanged");
        report.outcome = Some(Outcome::Unchanged);
        return Ok(Outcome::Unchanged);
    }
    let facts = Facts {
        rollout: Some(after),
        ..o.facts.clone()
    };
    let ids = facts.device_ids();
    let envelope = channel::seal(&facts.manifest(&ids), &signing, &o.trusted).map_err(RolloutError::Manifest)?;
    if req.dry_run {
        report.manifest.write = Some("would-replace");
        report.outcome = Some(Outcome::DryRun);
        return Ok(Outcome::DryRun);
    }
    let expected = Some(Expected {
        current: &o.current,
        held: &o.held,
    });
    match runtime.block_on(channel::replace(&o.bucket, &o.channel, &envelope, expected, &o.trusted)) {
        Ok(written) => {
            report.manifest.written(&o.bucket, &written);
            report.outcome = Some(Outcome::Changed);
            Ok(Outcome::Changed)
        }
        Err(ReplaceError::Bucket(e)) => Err(e.into()),
        Err(ReplaceError::Conflict { detail, now }) => {
            let now = match now.as_ref().and_then(|h| h.facts.as_ref()) {
                Some(f) => {
                    let r = f.effective_rollout();
                    format!("; it now holds {} at {} % ({})", f.version, r.percent, r.state.as_str())
                }
                None => String::new(),
            };
            Err(RolloutError::LostRace { channel, detail, now })
        }
    }
}
