//! `otactl release`: build, sign and publish a release to a bucket, from a laptop or a CI job.
//!
//! The work is in [`crate::release`]; this is its face: a step list with progress bars on a
//! terminal, one JSON object for scripts (with `--json`, or whenever stdout is not a
//! terminal), and the exit status.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::Diagnostic as _;
use serde_json::{Value, json};

use crate::keys::SigningKeySource;
use crate::release::{self, Outcome, Progress, Report, Request, Source};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").args(["elf", "image"])))]
pub struct ReleaseArgs {
    #[command(flatten)]
    at: super::ChannelArgs,

    /// The version expected in the image's app descriptor (a leading `v`, as in tags, is
    /// dropped). The descriptor's version is what is released; this only checks it.
    #[arg(long, value_name = "X.Y.Z")]
    version: Option<String>,

    /// Release this firmware ELF instead of building the profile's firmware.
    #[arg(long, value_name = "FILE")]
    elf: Option<PathBuf>,

    /// Release this ready ESP-IDF app image (.bin) as it is.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,

    /// The Ed25519 private key to sign with [default: the OTACTL_SIGNING_KEY variable].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Publish even if the channel holds a newer or equal version, or a manifest that does
    /// not verify with the profile's keys.
    #[arg(long)]
    allow_downgrade: bool,

    /// Publish the release staged: only this share of the fleet (`5` or `5%`, 0 to 100) may
    /// take it, by each device's cohort; widen it with `otactl rollout`. Without it, every
    /// device may.
    #[arg(long, value_name = "PERCENT", value_parser = super::rollout::parse_percent)]
    rollout: Option<u8>,

    /// Do everything (build, checks, signing, bucket reads) but write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON object instead of the step list (the default when stdout is not a
    /// terminal).
    #[arg(long)]
    json: bool,
}

/// Progress drawn on a terminal: one line per finished step, a spinner for the build, a
/// bar for the upload.
#[derive(Debug)]
struct Terminal {
    bar: Option<ProgressBar>,
}

impl Terminal {
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }
}

impl Progress for Terminal {
    fn step(&mut self, name: &'static str, detail: String) {
        self.line(format!("  ✓ {name:<8} {detail}"));
    }

    fn warn(&mut self, text: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn build_started(&mut self, command: &str) {
        println!("  … build    {command}");
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} build    {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message("starting cargo");
        self.bar = Some(bar);
    }

    fn build_unit(&mut self, name: &str, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{done} crates compiled ({name})"));
        }
    }

    fn build_finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn upload_started(&mut self, key: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} upload   [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(key.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
    }

    fn upload_progress(&mut self, sent: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(sent);
        }
    }

    fn upload_finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Progress for scripts: nothing on stdout but the final JSON; warnings on stderr.
#[derive(Debug)]
struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: &'static str, _: String) {}
    fn warn(&mut self, text: String) {
        eprintln!("{text}");
    }
    fn build_started(&mut self, _: &str) {}
    fn build_unit(&mut self, _: &str, _: usize) {}
    fn build_finished(&mut self) {}
    fn upload_started(&mut self, _: &str, _: u64) {}
    fn upload_progress(&mut self, _: u64) {}
    fn upload_finished(&mut self) {}
}

pub fn run(args: ReleaseArgs) -> ExitCode {
    let json = args.json || !std::io::stdout().is_terminal();
    let source = match (&args.elf, &args.image) {
        (Some(elf), _) => Source::Elf(elf.clone()),
        (None, Some(image)) => Source::Image(image.clone()),
        (None, None) => Source::Build,
    };
    let request = Request {
        profile: args.at.profile.clone(),
        version: args
            .version
            .as_deref()
            .map(|v| v.strip_prefix('v').unwrap_or(v).to_owned()),
        channel: args.at.channel.clone(),
        bucket: args.at.bucket.clone(),
        endpoint: args.at.endpoint.clone(),
        source,
        key: args.key.clone().map_or(SigningKeySource::Env, SigningKeySource::File),
        allow_downgrade: args.allow_downgrade,
        dry_run: args.dry_run,
        capture_build_output: !json,
    };
    let started = Instant::now();
    let mut report = Report::default();
    let result = if json {
        release::release_staged(&request, args.rollout, &mut Quiet, &mut report)
    } else {
        let mut terminal = Terminal { bar: None };
        let result = release::release_staged(&request, args.rollout, &mut terminal, &mut report);
        terminal.build_finished();
        result
    };
    let elapsed = started.elapsed();
    if json {
        println!("{}", to_json(&report, result.as_ref().err(), elapsed));
    }
    match result {
        Ok(outcome) => {
            if !json {
                print_summary(&report, outcome, elapsed);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = e.exit_code();
            if !json {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(code)
        }
    }
}

fn print_summary(r: &Report, outcome: Outcome, elapsed: Duration) {
    let what = format!(
        "{} {} for {} ({})",
        r.product.as_deref().unwrap_or_default(),
        r.version.as_deref().unwrap_or_default(),
        r.chip.as_deref().unwrap_or_default(),
        r.board.as_deref().unwrap_or_default()
    );
    let channel = r.channel.as_deref().unwrap_or_default();
    match outcome {
        Outcome::Published => println!("released {what} on channel {channel} in {:.2} s", elapsed.as_secs_f64()),
        Outcome::Unchanged => println!("unchanged: channel {channel} already holds {what} with this image"),
        Outcome::DryRun => println!(
            "dry run: would publish {what} on channel {channel} (image {}, manifest {})",
            r.image_upload.unwrap_or_default(),
            r.manifest.write.unwrap_or_default()
        ),
    }
    for (label, value) in [
        ("manifest", &r.manifest.url),
        ("image", &r.image_url),
        ("devices", &r.device_manifest_url),
        ("previous", &r.manifest.history_url),
    ] {
        if let Some(value) = value {
            println!("  {label:<9} {value}");
        }
    }
}

fn to_json(r: &Report, error: Option<&release::ReleaseError>, elapsed: Duration) -> Value {
    let previous = r.previous.as_ref().map(|p| {
        let facts = p.facts.as_ref();
        json!({
            "version": facts.map(|f| &f.version),
            "sha256": facts.map(|f| &f.sha256),
            "secure_version": facts.map(|f| f.secure_version),
            "rollout": facts.and_then(|f| f.rollout.as_ref()),
            "verified": p.verified,
            "problem": p.problem,
        })
    });
    let mut manifest = r.manifest.manifest_json();
    manifest["device_url"] = json!(r.device_manifest_url);
    let mut out = json!({
        "ok": error.is_none(),
        "outcome": r.outcome.map(Outcome::as_str),
        "product": r.product,
        "chip": r.chip,
        "board": r.board,
        "channel": r.channel,
        "bucket": r.bucket,
        "version": r.version,
        "secure_version": r.secure_version,
        "project": r.project,
        "sha256": r.sha256,
        "sizes": {
            "image": r.image_size,
            "compressed": r.compressed_size,
            "delta": r.delta_size,
            "manifest": r.manifest_size,
        },
        "source": r.source,
        "elf": r.elf.as_ref().map(|p| p.display().to_string()),
        "key_id": r.key_id,
        "created": r.created,
        "objects": {
            "image": {
                "key": r.image_key,
                "url": r.image_url,
                "device_url": r.device_image_url,
                "upload": r.image_upload,
            },
            "compressed": {
                "key": r.compressed_key,
                "size": r.compressed_size,
                "upload": r.compressed_upload,
            },
            "delta": {
                "key": r.delta_key,
                "size": r.delta_size,
                "upload": r.delta_upload,
                "base_version": r.delta_base,
                "skipped": r.delta_skipped,
            },
            "manifest": manifest,
            "history": r.manifest.history_json(),
        },
        "rollout": r.rollout.map(|percent| json!({"percent": percent, "state": "active"})),
        "previous": previous,
        "elapsed_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
    });
    if let Some(e) = error {
        out["error"] = json!(super::chain(e));
        out["help"] = json!(e.help().map(|h| h.to_string()));
        out["code"] = json!(e.code().map(|c| c.to_string()));
        out["exit_code"] = json!(e.exit_code());
    }
    out
}
