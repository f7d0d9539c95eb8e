//! `otactl demo`: the README's first command, end to end, and its clean-up on Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn demo_dirs(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("otactl-demo-"))
        })
        .collect()
}

/// Runs `otactl demo --json` with `more` arguments and TMPDIR at `tmp`, which must succeed;
/// returns its one JSON line (a script parses stdout whole, so nothing else may be on it).
fn demo_json(more: &[&str], tmp: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_otactl"))
        .args(["demo", "--json"])
        .args(more)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_demo_updates_a_virtual_device_through_a_nat_drop_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = demo_json(&[], tmp.path());
    assert_eq!(summary["outcome"], "confirmed", "{summary}");
    assert_eq!(
        (summary["from"].as_str(), summary["to"].as_str()),
        (Some("1.0.0"), Some("1.1.0"))
    );
    assert!(summary["nat_drops"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["resumes"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["wall_s"].as_f64().unwrap() > 0.0);
    assert!(summary.get("kept").is_none(), "{summary}");
    assert!(demo_dirs(tmp.path()).is_empty(), "the demo's files were left behind");
}

#[test]
fn ctrl_c_stops_the_demo_and_leaves_nothing_behind() {
    // Its own temporary directory, so the other test's demo cannot be mistaken for this one.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_otactl"))
        .args(["demo", "--json", "--time-scale", "1"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the demo's directory exists and its device is up, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dir = loop {
        if let Some(d) = demo_dirs(tmp.path()).into_iter().find(|d| d.join("ttyACM0").exists()) {
            break d;
        }
        assert!(Instant::now() < deadline, "the demo's device never came up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn demo_keep_json_names_the_directory_it_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = demo_json(&["--keep"], tmp.path());
    let kept = summary["kept"]
        .as_str()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no `kept`: {summary}"));
    assert_eq!(demo_dirs(tmp.path()), vec![kept.clone()]);
    assert!(kept.join("bucket").is_dir(), "{} has no bucket", kept.display());
    assert!(kept.join("keys/demo.pub").is_file());
}

#[test]
fn the_demo_over_https_updates_through_the_modems_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = demo_json(&["--tls"], tmp.path());
    assert_eq!(summary["outcome"], "confirmed", "{summary}");
    assert_eq!(summary["tls"], true, "{summary}");
    assert_eq!(
        (summary["from"].as_str(), summary["to"].as_str()),
        (Some("1.0.0"), Some("1.1.0"))
    );
    assert!(
        summary["resumes"].as_u64().unwrap() >= 1,
        "resume works over TLS: {summary}"
    );
}

#[test]
fn the_demo_over_https_on_a_sim7080_updates_through_its_ssl() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = demo_json(&["--tls", "--modem", "sim7080"], tmp.path());
    assert_eq!(summary["outcome"], "confirmed", "{summary}");
    assert_eq!(
        (summary["tls"].as_bool(), summary["modem"].as_str()),
        (Some(true), Some("sim7080"))
    );
    assert_eq!(
        (summary["from"].as_str(), summary["to"].as_str()),
        (Some("1.0.0"), Some("1.1.0"))
    );
    assert!(
        summary["resumes"].as_u64().unwrap() >= 1,
        "resume works over the SIM7080's TLS: {summary}"
    );
}

#[test]
fn a_device_trusting_another_ca_refuses_the_server_and_keeps_running_its_app() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_otactl"))
        .args(["demo", "--json", "--keep", "--tls", "--tls-wrong-ca"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "watch's TLS exit code: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(summary["outcome"], "tls_refused", "{summary}");
    assert_eq!(summary["from"], "1.0.0", "{summary}");
    assert!(summary["to"].is_null(), "nothing was activated: {summary}");
    let kept = std::path::PathBuf::from(summary["kept"].as_str().unwrap());
    let console = std::fs::read_to_string(kept.join("console.log")).unwrap();
    assert!(console.contains("tls-handshake-failed"), "{console}");
    assert!(
        !console.contains("chunk") && !console.contains("activated"),
        "no image byte was fetched or written: {console}"
    );
}
