//! `otactl rollout`: widen, pause, halt and judge a staged rollout from a laptop or CI.
//!
//! The work is in [`crate::rollout`]; this is its face: a few lines for a person, one JSON
//! object with `--json`, and the exit status:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done, or nothing to change; `check`: within the thresholds |
//! | 1 | refused: lowering without `--force`, a halted or paused rollout, a failure rate above the threshold (`advance`), a manifest that does not verify, a lost race |
//! | 2 | otactl could not do it: arguments, profile, keys, bucket, reports |
//! | 3 | `check`: the failure rate is above the threshold and the rollout was halted now (`--dry-run`: would be) |
//! | 4 | `check`: the rollout was halted already |
//! | 5 | `advance`: the stage has too few judged reports yet; try again later |

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use device_fw::fleet::{AdvanceRefused, Stage, Tally, Thresholds};
use miette::Diagnostic as _;
use serde_json::{Value, json};

use crate::channel::RolloutSpec;
use crate::keys::SigningKeySource;
use crate::rollout::{self, Change, Gate, Outcome, Report, RolloutError, Status, Target, Verdict};

pub use crate::rollout::parse_percent;

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Set the share of the fleet that may take the channel's release (5 or 5%).
    ///
    /// Lowering it is refused without --force: devices that already installed the release
    /// keep it. --device (repeatable) lists bench or pilot units that are in whatever the
    /// percentage; it replaces the list.
    #[command(visible_alias = "start", visible_alias = "raise")]
    Set(SetArgs),
    /// No device starts the release until `resume`.
    Pause(ChangeArgs),
    /// Undo a pause. A halted rollout never resumes: publish a fixed version.
    Resume(ChangeArgs),
    /// Stop the release for good: no device starts it again.
    Halt(ChangeArgs),
    /// Widen the rollout if the current stage has enough judged reports and a failure rate
    /// within the threshold; refuses with the reason otherwise (exit 5: too few reports yet,
    /// 1: failing).
    Advance(AdvanceArgs),
    /// For cron or CI: halt the rollout by itself when its reports fail above the threshold
    /// (exit 3), 4 if it was halted already, 0 when it is within the thresholds.
    Check(CheckArgs),
    /// What each version and stage of the channel's rollout reported.
    Status(StatusArgs),
}

/// Which channel, and how to print.
#[derive(Debug, Args)]
pub struct Where {
    #[command(flatten)]
    channel: super::ChannelArgs,

    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// How a change is signed and whether it is written.
#[derive(Debug, Args)]
pub struct Signing {
    /// The Ed25519 private key to sign with [default: the OTACTL_SIGNING_KEY variable].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Read, check and sign, but write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Where the outcome reports are.
#[derive(Debug, Args)]
pub struct ReportsAt {
    /// Bucket URL holding the reports (`otactl serve --reports`) [default: the release
    /// bucket, as `otactl serve` stores them].
    #[arg(long, value_name = "URL")]
    reports: Option<String>,
}

/// What a stage is judged by [defaults: the profile's [rollout]].
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Judged reports (confirmed, rolled back, rejected) a stage needs to advance.
    #[arg(long, value_name = "N")]
    min_reports: Option<u32>,

    /// Highest failure rate allowed: 5% or 0.05.
    #[arg(long, value_name = "RATE", value_parser = rollout::parse_rate)]
    max_failure_rate: Option<f64>,

    /// Judged reports a halt needs at least.
    #[arg(long, value_name = "N")]
    halt_min_reports: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    signing: Signing,

    /// The share of the fleet: 0 to 100, as 5 or 5%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    percent: u8,

    /// A device id that is in whatever the percentage (repeatable; replaces the list).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,

    /// Empty the device list.
    #[arg(long, conflicts_with = "devices")]
    clear_devices: bool,

    /// Lower the percentage, or drop listed devices, even though devices that installed
    /// the release keep it.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    signing: Signing,
}

/// A change decided on the reports.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    signing: Signing,
    #[command(flatten)]
    reports: ReportsAt,
    #[command(flatten)]
    gate: GateArgs,
}

#[derive(Debug, Args)]
pub struct AdvanceArgs {
    #[command(flatten)]
    judged: CheckArgs,

    /// The percentage to widen to (5 or 5%).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    to: u8,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    reports: ReportsAt,
    #[command(flatten)]
    gate: GateArgs,
}

fn target(at: &Where, reports: Option<&ReportsAt>) -> Target {
    let c = &at.channel;
    Target {
        profile: c.profile.clone(),
        channel: c.channel.clone(),
        bucket: c.bucket.clone(),
        endpoint: c.endpoint.clone(),
        reports: reports.and_then(|r| r.reports.clone()),
    }
}

fn gate(g: &GateArgs) -> Gate {
    Gate {
        min_reports: g.min_reports,
        max_failure_rate: g.max_failure_rate,
        halt_min_reports: g.halt_min_reports,
    }
}

pub fn run(cmd: RolloutCommand) -> ExitCode {
    let (at, signing, reports, gate_args, change) = match &cmd {
        RolloutCommand::Status(args) => return show_status(args),
        RolloutCommand::Set(a) => {
            let devices = if a.clear_devices {
                Some(Vec::new())
            } else {
                (!a.devices.is_empty()).then(|| a.devices.clone())
            };
            let change = Change::Set {
                percent: a.percent,
                devices,
                force: a.force,
            };
            (&a.at, &a.signing, None, None, change)
        }
        RolloutCommand::Pause(a) => (&a.at, &a.signing, None, None, Change::Pause),
        RolloutCommand::Resume(a) => (&a.at, &a.signing, None, None, Change::Resume),
        RolloutCommand::Halt(a) => (&a.at, &a.signing, None, None, Change::Halt),
        RolloutCommand::Advance(AdvanceArgs { judged: a, to }) => (
            &a.at,
            &a.signing,
            Some(&a.reports),
            Some(&a.gate),
            Change::Advance { to: *to },
        ),
        RolloutCommand::Check(a) => (&a.at, &a.signing, Some(&a.reports), Some(&a.gate), Change::Check),
    };
    let request = rollout::Request {
        target: target(at, reports),
        key: signing
            .key
            .clone()
            .map_or(SigningKeySource::Env, SigningKeySource::File),
        dry_run: signing.dry_run,
        gate: gate_args.map(gate).unwrap_or_default(),
        change,
    };
    let mut report = Report::default();
    let result = rollout::change(&request, &mut report);
    for warning in &report.warnings {
        eprintln!("{warning}");
    }
    let exit = match &result {
        Ok(_) => report.verdict.map_or(0, Verdict::exit_code),
        Err(e) => e.exit_code(),
    };
    if at.json {
        println!("{}", change_json(&request, &report, result.as_ref().err(), exit));
        return ExitCode::from(exit);
    }
    match result {
        Ok(outcome) => print_change(&request, &report, outcome),
        Err(e) => {
            if let Some(j) = &report.judgement
                && let Some((stage, tally)) = j.stage
            {
                println!("{}", stage_line(stage, &tally, &j.thresholds));
            }
            eprintln!("{:?}", miette::Report::new(e));
        }
    }
    ExitCode::from(exit)
}

fn spec(r: &RolloutSpec) -> String {
    let mut text = format!("{} % {}", r.percent, r.state.as_str());
    if !r.devices.is_empty() {
        text.push_str(&format!(" + {}", r.devices.join(", ")));
    }
    text
}

fn pct(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

fn stage_line(stage: Stage, t: &Tally, th: &Thresholds) -> String {
    format!(
        "stage {stage}: {} judged of {} reporting ({} confirmed, {} rolled back, {} rejected, {} failed), failure rate {} (max {}, needs {} judged)",
        t.judged(),
        t.reported,
        t.confirmed,
        t.rolled_back,
        t.rejected,
        t.failed,
        pct(t.failure_rate()),
        pct(th.max_failure_rate),
        th.min_reports
    )
}

fn print_change(req: &rollout::Request, r: &Report, outcome: Outcome) {
    let channel = r.channel.as_deref().unwrap_or_default();
    let version = r.version.as_deref().unwrap_or_default();
    let before = r.before.as_ref().map(spec).unwrap_or_default();
    let after = r.after.as_ref().map(spec).unwrap_or_default();
    if let Some(j) = &r.judgement {
        if let Some((stage, tally)) = j.stage {
            println!("{}", stage_line(stage, &tally, &j.thresholds));
        }
        if let Change::Check = req.change {
            let t = &j.total;
            println!(
                "{version}: {} judged of {} reporting, failure rate {} (halts above {} with at least {} judged); {} reports read from {}",
                t.judged(),
                t.reported,
                pct(t.failure_rate()),
                pct(j.thresholds.max_failure_rate),
                j.thresholds.halt_min_reports,
                j.reports_read,
                j.reports_bucket
            );
        }
    }
    match (r.verdict, outcome) {
        (Some(Verdict::Healthy), _) => println!("healthy: the rollout of {version} on {channel} stays at {after}"),
        (Some(Verdict::AlreadyHalted), _) => {
            println!("already halted: the rollout of {version} on {channel} is {after}")
        }
        (Some(Verdict::Halted), Outcome::DryRun) => {
            println!("would HALT the rollout of {version} on {channel} ({before}); dry run, nothing written");
        }
        (Some(Verdict::Halted), _) => println!("HALTED the rollout of {version} on {channel} (was {before})"),
        (None, Outcome::Unchanged) => println!("unchanged: the rollout of {version} on {channel} is already {after}"),
        (None, Outcome::DryRun) => println!(
            "dry run: would change the rollout of {version} on {channel} from {before} to {after}; nothing written"
        ),
        (None, Outcome::Changed) => println!("{version} on {channel}: rollout {before} → {after}"),
    }
    if outcome == Outcome::Changed {
        if let Some(url) = &r.manifest.url {
            println!("  manifest  {url} (conditional write)");
        }
        if let Some(url) = &r.manifest.history_url {
            println!("  previous  {url}");
        }
    }
}

fn tally_json(t: &Tally) -> Value {
    json!({
        "reported": t.reported,
        "confirmed": t.confirmed,
        "rolled_back": t.rolled_back,
        "rejected": t.rejected,
        "failed": t.failed,
        "judged": t.judged(),
        "failure_rate": t.failure_rate(),
    })
}

fn stage_json(stage: Stage, t: &Tally) -> Value {
    let mut v = tally_json(t);
    v["from_percent"] = json!(stage.from_percent);
    v["to_percent"] = json!(stage.to_percent);
    v
}

fn error_json(out: &mut Value, e: &RolloutError, exit: u8) {
    out["error"] = json!(super::chain(e));
    out["help"] = json!(e.help().map(|h| h.to_string()));
    out["code"] = json!(e.code().map(|c| c.to_string()));
    out["exit_code"] = json!(exit);
}

fn change_json(req: &rollout::Request, r: &Report, error: Option<&RolloutError>, exit: u8) -> Value {
    let judgement = r.judgement.as_ref().map(|j| {
        json!({
            "stage": j.stage.map(|(s, t)| stage_json(s, &t)),
            "total": tally_json(&j.total),
            "thresholds": j.thresholds,
            "reports": {"bucket": j.reports_bucket, "read": j.reports_read, "skipped": j.reports_skipped},
        })
    });
    let mut out = json!({
        "ok": error.is_none(),
        "command": req.change.name(),
        "outcome": r.outcome.map(Outcome::as_str),
        "verdict": r.verdict.map(Verdict::as_str),
        "product": r.product,
        "channel": r.channel,
        "bucket": r.bucket,
        "version": r.version,
        "key_id": r.key_id,
        "rollout": {"before": r.before, "after": r.after},
        "objects": {
            "manifest": r.manifest.manifest_json(),
            "history": r.manifest.history_json(),
        },
        "judgement": judgement,
        "exit_code": exit,
    });
    if let Some(e) = error {
        error_json(&mut out, e, exit);
        if let RolloutError::Refused(refused) = e {
            out["refused"] = json!(match refused {
                AdvanceRefused::TooFewReports { .. } => "too-few-reports",
                AdvanceRefused::FailureRateTooHigh { .. } => "failure-rate",
                _ => "other",
            });
        }
    }
    out
}

fn show_status(args: &StatusArgs) -> ExitCode {
    match rollout::status(&target(&args.at, Some(&args.reports)), &gate(&args.gate)) {
        Ok(status) => {
            if args.at.json {
                println!("{}", status_json(&status));
            } else {
                print_status(&status);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let exit = e.exit_code();
            if args.at.json {
                let mut out = json!({"ok": false});
                error_json(&mut out, &e, exit);
                println!("{out}");
            } else {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(exit)
        }
    }
}

fn print_status(s: &Status) {
    let current = s.current.effective_rollout();
    let member = if s.current.rollout.is_some() {
        ""
    } else {
        " (no rollout member: every device)"
    };
    println!(
        "channel {} in {}: {} {}, rollout {}{member}",
        s.channel,
        s.bucket,
        s.product,
        s.current.version,
        spec(&current)
    );
    println!(
        "reports: {} read from {}{}",
        s.reports_read,
        s.reports_bucket,
        match s.skipped.len() {
            0 => String::new(),
            n => format!(", {n} objects skipped"),
        }
    );
    let th = &s.thresholds;
    println!(
        "thresholds: a stage advances with {} judged reports and at most {} failing; halts above {} on {} judged",
        th.min_reports,
        pct(th.max_failure_rate),
        pct(th.max_failure_rate),
        th.halt_min_reports
    );
    for v in &s.versions {
        println!();
        println!("{}{}", v.version, if v.current { " (current)" } else { "" });
        println!(
            "  {:<10} {:>8} {:>9} {:>11} {:>8} {:>6} {:>8}",
            "stage", "reported", "confirmed", "rolled back", "rejected", "failed", "failing"
        );
        let row = |name: String, t: &Tally| {
            println!(
                "  {name:<10} {:>8} {:>9} {:>11} {:>8} {:>6} {:>8}",
                t.reported,
                t.confirmed,
                t.rolled_back,
                t.rejected,
                t.failed,
                pct(t.failure_rate())
            );
        };
        for st in &v.stages {
            row(st.stage.to_string(), &st.tally);
        }
        row("all".into(), &v.total);
        match &v.advance {
            Some(Ok(())) => println!("  advance: allowed"),
            Some(Err(why)) => println!("  advance: not yet: {why}"),
            None => {}
        }
        if v.must_halt {
            println!("  check: above the failure threshold; `otactl rollout check` halts it");
        }
        let steps: Vec<String> = v
            .steps
            .iter()
            .map(|step| match &step.until {
                Some(until) => format!("{} until {until}", spec(&step.rollout)),
                None => format!("{} now", spec(&step.rollout)),
            })
            .collect();
        if !steps.is_empty() {
            println!("  manifests: {}", steps.join("; "));
        }
    }
    for (key, why) in &s.skipped {
        eprintln!("skipped {key}: {why}");
    }
}

fn status_json(s: &Status) -> Value {
    let versions: Vec<Value> = s
        .versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "current": v.current,
                "manifests": v.steps.iter().map(|step| json!({
                    "percent": step.rollout.percent,
                    "state": step.rollout.state,
                    "devices": step.rollout.devices,
                    "until": step.until,
                    "key": step.key,
                })).collect::<Vec<_>>(),
                "stages": v.stages.iter().map(|st| stage_json(st.stage, &st.tally)).collect::<Vec<_>>(),
                "total": tally_json(&v.total),
                "advance": v.advance.as_ref().map(|a| json!({
                    "allowed": a.is_ok(),
                    "reason": a.as_ref().err().map(ToString::to_string),
                })),
                "must_halt": v.must_halt,
            })
        })
        .collect();
    json!({
        "ok": true,
        "product": s.product,
        "channel": s.channel,
        "bucket": s.bucket,
        "current": {
            "version": s.current.version,
            "created": s.current.created,
            "rollout": s.current.rollout,
        },
        "thresholds": s.thresholds,
        "versions": versions,
        "reports": {
            "bucket": s.reports_bucket,
            "read": s.reports_read,
            "skipped": s.skipped.iter().map(|(key, why)| json!({"key": key, "reason": why})).collect::<Vec<_>>(),
        },
    })
}
