//! Calibration that is not circular: fit the modem model on one published figure, then
//! predict the others with the bench and compare.
//!
//! The bench's one free modem parameter is the per-command latency (everything else in a
//! read cycle, the UART time of command and reply and the flash work, follows from the
//! baud and the flash timings). One figure fixes it, so exactly one is used: the seed
//! device's 129,867 bytes in 58.87 s, the most precise figure there is (a logged count
//! and a logged duration). The fit runs the bench itself, so whatever the chip model does
//! (flash stalls, UART behaviour) is inside the fitted value, and every prediction is a
//! fresh run of the same model with the figure's own read size, image and network.
//!
//! Figures the bench cannot replay keep their row with `predicted_s: null` and the reason.

pub mod figures;

use std::time::Duration;

use serde::Serialize;

pub use figures::{FIGURES, Figure, Replay};

use crate::net::NatExpiry;
use crate::scenario::{self, RunSpec, Strategy};

/// Largest prediction error, in percent, the calibration accepts for an unfitted figure.
pub const TOLERANCE_PERCENT: f64 = 25.0;

/// One printed row: a published figure next to what the bench predicts for it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub id: &'static str,
    pub source: &'static str,
    pub what: &'static str,
    pub conditions: &'static str,
    pub observed_s: f64,
    pub predicted_s: Option<f64>,
    pub error_percent: Option<f64>,
    pub used_for_fit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Row {
    /// An unfitted figure predicted within [`TOLERANCE_PERCENT`].
    pub fn predicted_within_tolerance(&self) -> bool {
        !self.used_for_fit && self.error_percent.is_some_and(|e| e.abs() <= TOLERANCE_PERCENT)
    }
}

/// The fitted model.
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    pub scenario: &'static str,
    /// The figures the fit used.
    pub fitted_on: Vec<&'static str>,
    /// The modem's per-command latency that makes the bench match them, milliseconds.
    pub command_latency_ms: f64,
    /// The emulator's default for comparison (derived by hand from the same figure).
    pub default_command_latency_ms: f64,
    /// Unfitted figures the bench replayed, and how many of them fell within tolerance.
    pub predicted: usize,
    pub within_tolerance: usize,
    pub not_predictable: usize,
}

/// The bench run that replays a figure with a given per-command latency.
pub fn replay_spec(replay: &Replay, latency: Duration) -> RunSpec {
    let mut spec = RunSpec::seed(Strategy::Naive);
    spec.scenario = "calibration".into();
    spec.image_bytes = replay.bytes;
    spec.read_block = Some(replay.read_block);
    spec.baud = replay.baud;
    spec.nat.idle_timeout = replay.nat_idle_s.map(Duration::from_secs);
    spec.nat.on_expiry = NatExpiry::Reset;
    spec.command_latency = Some(latency);
    spec
}

/// Seconds the bench takes for a figure's run, or why it has none.
fn bench_seconds(replay: &Replay, latency: Duration) -> Result<f64, String> {
    let r = scenario::run(&replay_spec(replay, latency));
    if r.outcome == "updated" && r.slot_matches {
        Ok(r.virtual_s)
    } else {
        Err(format!(
            "the bench run did not finish: {} after {:.2} s, {} of {} bytes ({})",
            r.outcome,
            r.virtual_s,
            r.bytes_written,
            r.image_bytes,
            r.error.as_deref().unwrap_or("slot differs")
        ))
    }
}

/// Fits the per-command latency on the figures marked `fit`: the run's time is linear in
/// the latency (each command pays it once), so two runs give the line and a secant step
/// removes what rounding leaves.
pub fn fit_latency(figures: &[Figure]) -> Result<Duration, String> {
    let targets: Vec<(&Replay, f64)> = figures
        .iter()
        .filter(|f| f.fit)
        .filter_map(|f| f.replay.as_ref().ok().map(|r| (r, f.observed_s)))
        .collect();
    // Sum of the fitted figures' seconds at a latency: one equation, one unknown.
    let total = |latency_s: f64| -> Result<f64, String> {
        let latency = Duration::from_secs_f64(latency_s.max(0.0));
        targets.iter().map(|(r, _)| bench_seconds(r, latency)).sum()
    };
    if targets.is_empty() {
        return Err("no figure is marked for the fit".into());
    }
    let observed: f64 = targets.iter().map(|(_, s)| s).sum();
    let (mut x0, mut x1) = (0.0, 0.020);
    let (mut y0, mut y1) = (total(x0)?, total(x1)?);
    for _ in 0..4 {
        if (y1 - observed).abs() < 1e-4 || (y1 - y0).abs() < 1e-12 {
            break;
        }
        let x2 = x1 + (observed - y1) * (x1 - x0) / (y1 - y0);
        if x2 < 0.0 {
            return Err(format!(
                "the bench takes {y0:.2} s for the fitted figures with no command latency at all, more than the observed {observed:.2} s"
            ));
        }
        (x0, y0) = (x1, y1);
        x1 = x2;
        y1 = total(x1)?;
    }
    Ok(Duration::from_secs_f64(x1))
}

/// Fits the model, then predicts every figure with it.
pub fn run() -> Result<(Fit, Vec<Row>), String> {
    let latency = fit_latency(FIGURES)?;
    let rows: Vec<Row> = FIGURES.iter().map(|f| row(f, latency)).collect();
    let fit = Fit {
        scenario: "calibration",
        fitted_on: FIGURES.iter().filter(|f| f.fit).map(|f| f.id).collect(),
        command_latency_ms: latency.as_secs_f64() * 1e3,
        default_command_latency_ms: crate::modem::default_command_latency().as_secs_f64() * 1e3,
        predicted: rows
            .iter()
            .filter(|r| !r.used_for_fit && r.predicted_s.is_some())
            .count(),
        within_tolerance: rows.iter().filter(|r| r.predicted_within_tolerance()).count(),
        not_predictable: rows.iter().filter(|r| r.predicted_s.is_none()).count(),
    };
    Ok((fit, rows))
}

fn row(f: &Figure, latency: Duration) -> Row {
    let (predicted_s, why) = match &f.replay {
        Ok(replay) => match bench_seconds(replay, latency) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        },
        Err(why) => (None, Some((*why).to_string())),
    };
    Row {
        scenario: "calibration",
        id: f.id,
        source: f.source,
        what: f.what,
        conditions: f.conditions,
        observed_s: f.observed_s,
        predicted_s,
        error_percent: predicted_s.map(|p| (p - f.observed_s) / f.observed_s * 100.0),
        used_for_fit: f.fit,
        why,
    }
}

/// Runs the calibration and prints it (one JSON object per row, then the fit), for the
/// benchmark binary. True when at least three unfitted figures were predicted and every
/// predicted one is within tolerance.
pub fn print(json: bool) -> bool {
    let (fit, rows) = match run() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("calibration: the fit failed: {e}");
            return false;
        }
    };
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).expect("row serialises"));
        }
        println!("{}", serde_json::to_string(&fit).expect("fit serialises"));
    } else {
        println!(
            "{:<24} {:>10} {:>11} {:>8}  fit  why",
            "figure", "observed_s", "predicted_s", "error_%"
        );
        for r in &rows {
            println!(
                "{:<24} {:>10.2} {:>11} {:>8}  {:<4} {}",
                r.id,
                r.observed_s,
                r.predicted_s.map_or("-".into(), |p| format!("{p:.2}")),
                r.error_percent.map_or("-".into(), |e| format!("{e:+.1}")),
                if r.used_for_fit { "yes" } else { "no" },
                r.why.as_deref().unwrap_or("")
            );
        }
        println!(
            "fitted on {:?}: command latency {:.2} ms (emulator default {:.2} ms); {} of {} predicted figures within ±{TOLERANCE_PERCENT} %, {} not predictable",
            fit.fitted_on,
            fit.command_latency_ms,
            fit.default_command_latency_ms,
            fit.within_tolerance,
            fit.predicted,
            fit.not_predictable
        );
    }
    fit.passes()
}

impl Fit {
    /// At least three unfitted figures predicted, every one within tolerance.
    pub fn passes(&self) -> bool {
        self.predicted >= 3 && self.within_tolerance == self.predicted
    }
}
