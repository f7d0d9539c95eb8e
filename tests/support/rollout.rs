//! The rollout tests' project: a profile with `[rollout]` thresholds, staged releases,
//! `otactl rollout` runs, and what the bucket holds after each.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use device_fw::wire::manifest::{PayloadBuf, open};
use device_fw::wire::report::Outcome;
use serde_json::Value;

use super::reports::{self, report};
use super::{Project, code, json, otactl, text};

pub const PROFILE: &str = "c3";

/// A project whose profile judges stages on 5 reports (and halts on 5), 10 % failing.
pub fn setup() -> (Project, String) {
    let p = Project::new();
    let profile = p.profile(
        PROFILE,
        "esp32c3",
        "",
        "[rollout]\nmin_reports = 5\nmax_failure_rate = 0.1\nhalt_min_reports = 5\n",
    );
    (p, profile)
}

pub fn publish(p: &Project, profile: &str, version: &str, extra: &[&str]) -> Output {
    let img = build_test_image(CHIP_ESP32C3, version, "field-logger", version.as_bytes());
    let file = p.write(&format!("fw/{version}.bin"), &img);
    let mut args = vec!["--image", file.as_str(), "--bucket", "dist", "--json"];
    args.extend_from_slice(extra);
    p.release(profile, &args)
}

pub fn rollout_cmd(p: &Project, profile: &str, sub: &str, args: &[&str]) -> Command {
    let mut cmd = otactl(p.path());
    cmd.args(["rollout", sub, "--profile", profile, "--bucket", "dist", "--json"]);
    if sub != "status" {
        cmd.args(["--key", "keys/otactl.key"]);
    }
    cmd.args(args);
    cmd
}

pub fn rollout(p: &Project, profile: &str, sub: &str, args: &[&str]) -> Output {
    rollout_cmd(p, profile, sub, args).output().unwrap()
}

pub fn ok(out: &Output) -> Value {
    assert_eq!(code(out), 0, "{}", text(out));
    let j = json(out);
    assert_eq!(j["ok"], true, "{j}");
    j
}

pub fn refused(out: &Output, exit: i32, needle: &str) -> Value {
    assert_eq!(code(out), exit, "{}", text(out));
    let j = json(out);
    assert_eq!(j["ok"], false);
    assert_eq!(j["exit_code"], exit);
    let error = j["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "error `{error}` should mention `{needle}`");
    j
}

/// The channel's manifest, verified with the project's key: version and rollout member.
pub fn current(p: &Project) -> (String, Option<(u8, String, Vec<String>)>) {
    let envelope = fs::read(p.path().join("dist/stable/manifest.json")).unwrap();
    let mut buf = PayloadBuf::default();
    let (m, _) = open(&envelope, &[p.public_key()], &mut buf).expect("the manifest verifies");
    let rollout = m.rollout.map(|r| {
        (
            r.percent,
            r.state.as_str().to_owned(),
            r.devices.iter().map(str::to_owned).collect(),
        )
    });
    (m.version.to_owned(), rollout)
}

pub fn percent_state(p: &Project) -> (u8, String) {
    let (_, r) = current(p);
    let (percent, state, _) = r.expect("a rollout member");
    (percent, state)
}

pub fn history(p: &Project) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(p.path().join("dist/stable/history"))
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file of the bucket with its bytes.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Files `n` reports with `outcome` from devices in the `from..to` % band.
pub fn file_reports(
    p: &Project,
    version: &str,
    from: u8,
    to: u8,
    n: usize,
    tag: &str,
    outcome: Outcome,
) -> Vec<String> {
    let ids = reports::ids_in(from, to, n, tag);
    for id in &ids {
        reports::file(&p.path().join("dist"), &report(id, version, outcome, 1));
    }
    ids
}
