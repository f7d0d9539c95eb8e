//! The calibration scenario: the modem model fitted on one published figure predicts the
//! other published figures. Virtual time, so every number is the same on every run: a
//! change to the chip or modem model that moves a prediction out of tolerance fails here.

use std::collections::HashSet;

use sim::calibration::{self, FIGURES, TOLERANCE_PERCENT};

#[test]
fn the_figure_table_is_well_formed() {
    let mut ids = HashSet::new();
    for f in FIGURES {
        assert!(ids.insert(f.id), "duplicate figure id {}", f.id);
        assert!(f.source.starts_with("https://"), "{}: the source is a URL", f.id);
        assert!(f.observed_s > 0.0, "{}", f.id);
        if let Err(why) = f.replay {
            assert!(!why.is_empty(), "{}: an unreplayable figure says why", f.id);
            assert!(!f.fit, "{}: the fit needs a replay", f.id);
        }
    }
    let fitted: Vec<_> = FIGURES.iter().filter(|f| f.fit).map(|f| f.id).collect();
    assert_eq!(fitted, ["seed-partial"], "one figure fixes the one free parameter");
}

#[test]
fn the_model_fitted_on_one_figure_predicts_the_others_within_tolerance() {
    let (fit, rows) = calibration::run().expect("the fit converges");
    assert_eq!(rows.len(), FIGURES.len(), "one row per figure");

    let fitted: Vec<_> = rows.iter().filter(|r| r.used_for_fit).collect();
    assert_eq!(fitted.len(), 1);
    let e = fitted[0].error_percent.expect("the fitted figure is replayed");
    assert!(e.abs() < 0.1, "the fit reproduces its own figure: {e:+.3} %");
    assert!(fit.command_latency_ms > 0.0, "{fit:?}");

    let predicted: Vec<_> = rows
        .iter()
        .filter(|r| !r.used_for_fit && r.predicted_s.is_some())
        .collect();
    assert!(
        predicted.len() >= 3,
        "at least three unfitted figures are predicted: {rows:#?}"
    );
    for r in &predicted {
        let e = r.error_percent.expect("a prediction has an error");
        assert!(
            e.abs() <= TOLERANCE_PERCENT,
            "{}: predicted {:.2} s against {:.2} s observed ({e:+.1} %)",
            r.id,
            r.predicted_s.unwrap_or_default(),
            r.observed_s
        );
    }
    for r in rows.iter().filter(|r| r.predicted_s.is_none()) {
        assert!(r.why.as_deref().is_some_and(|w| !w.is_empty()), "{}: says why", r.id);
        assert!(r.error_percent.is_none(), "{}", r.id);
    }
    assert!(fit.passes(), "{fit:?}");
}
