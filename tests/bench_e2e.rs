//! The bench end to end, as an engineer runs it: `otactl release` into a `file://` bucket,
//! `otactl serve`, `otactl sim device` on a pseudo-terminal, and `otactl watch --trigger`,
//! all real processes. The outcomes `watch` must tell apart: confirmed, rejected, and a
//! rollback when the new app cannot pass its self-test. And a device nobody touches: it
//! finds a staged release on its own schedule, waits outside the rollout, takes it once the
//! rollout is raised, confirms and reports, and `otactl rollout status` counts the report.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, build_test_image};

const PROFILE: &str = include_str!("../profiles/m5stack-core-sim7600.toml");

fn otactl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otactl"))
}

/// Children stopped (SIGTERM, then SIGKILL) when the test ends, however it ends.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        std::thread::sleep(Duration::from_millis(200));
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Bench {
    dir: tempfile::TempDir,
    profile: PathBuf,
    key: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = otactl()
            .args(["keygen", "--out"])
            .arg(dir.path().join("keys/k"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = PROFILE
            .replace(
                "public_keys = [\"../keys/otactl.pub\"]",
                "public_keys = [\"keys/k.pub\"]",
            )
            .replace(
                "device_url = \"http://ota.example.com/fleet\"",
                "device_url = \"http://127.0.0.1/\"",
            );
        let profile = dir.path().join("profile.toml");
        std::fs::write(&profile, text).unwrap();
        let key = dir.path().join("keys/k.key");
        Bench { dir, profile, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn image(&self, version: &str, seed: u8) -> PathBuf {
        // Incompressible (xorshift), so that the compressed form is as long as the raw one
        // and the 4 s NAT still cuts the download.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
        let payload: Vec<u8> = (0..40 * 1024u32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let path = self.path(&format!("app-{version}.bin"));
        std::fs::write(&path, build_test_image(CHIP_ESP32, version, "field-logger", &payload)).unwrap();
        path
    }

    fn release(&self, image: &Path, channel: &str) {
        self.release_with(image, channel, &[]);
    }

    fn release_with(&self, image: &Path, channel: &str, extra: &[&str]) {
        let out = otactl()
            .args(["release", "--json", "--profile"])
            .arg(&self.profile)
            .arg("--image")
            .arg(image)
            .args(["--channel", channel, "--bucket"])
            .arg(format!("file://{}", self.path("bucket").display()))
            .arg("--key")
            .arg(&self.key)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `otactl rollout <args>` on the stable channel; returns its JSON.
    fn rollout(&self, args: &[&str]) -> serde_json::Value {
        let mut command = otactl();
        command
            .arg("rollout")
            .args(args)
            .arg("--profile")
            .arg(&self.profile)
            .arg("--bucket")
            .arg(format!("file://{}", self.path("bucket").display()))
            .arg("--json");
        if args[0] != "status" {
            command.arg("--key").arg(&self.key);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "rollout {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `otactl serve` on a free loopback port; returns the child and the base URL.
    fn serve(&self) -> (Child, String) {
        let mut child = otactl()
            .args(["serve", "--addr", "127.0.0.1:0", "--bucket"])
            .arg(format!("file://{}", self.path("bucket").display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split(" on ")
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches('/')
            .to_owned();
        (child, base)
    }

    /// The virtual device running `factory` behind a 4 s NAT, time ×10; returns its link.
    fn device(&self, factory: &Path, base: &str) -> (Child, PathBuf) {
        self.device_with(factory, base, &[])
    }

    fn device_with(&self, factory: &Path, base: &str, extra: &[&str]) -> (Child, PathBuf) {
        let link = self.path("ttyACM0");
        let child = otactl()
            .args(["sim", "device", "--link"])
            .arg(&link)
            .arg("--profile")
            .arg(&self.profile)
            .arg("--flash")
            .arg(self.path("flash.bin"))
            .arg("--image")
            .arg(factory)
            .args(["--bucket-url", base, "--nat-idle", "4", "--time-scale", "10"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("device.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !link.exists() {
            assert!(Instant::now() < deadline, "the device's console never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        (child, link)
    }
}

fn watch(link: &Path, extra: &[&str]) -> Child {
    otactl()
        .arg("watch")
        .arg("--port")
        .arg(link)
        .args(["--trigger", "--json", "--timeout", "60s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads watch's JSON lines until the result; `on_line` sees each one as it comes.
fn result_of(child: &mut Child, mut on_line: impl FnMut(&str)) -> (serde_json::Value, String) {
    let mut all = String::new();
    let mut result = serde_json::Value::Null;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        on_line(&line);
        all.push_str(&line);
        all.push('\n');
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v.get("result").is_some()
        {
            result = v["result"].clone();
        }
    }
    let _ = child.wait();
    (result, all)
}

#[test]
fn a_release_is_watched_to_its_confirm_through_a_nat_drop_and_a_reset() {
    let bench = Bench::new();
    let (v1, v2) = (bench.image("1.0.0", 1), bench.image("1.1.0", 2));
    bench.release(&v2, "stable");
    let (serve, base) = bench.serve();
    let (device, link) = bench.device(&v1, &base);
    let _running = Running(vec![serve, device]);
    let mut w = watch(&link, &["--expect-version", "1.1.0"]);
    let (result, all) = result_of(&mut w, |_| {});
    assert_eq!(result["outcome"], "confirmed", "{all}");
    assert_eq!(result["exit_code"], 0);
    assert!(
        result["drops"].as_u64().unwrap() >= 1,
        "the 4 s NAT must cut a chunk: {all}"
    );
    for note in ["\"port_lost\"", "\"port_reopened\""] {
        assert!(all.contains(note), "{note} missing: {all}");
    }
}

#[test]
fn a_manifest_from_another_channel_is_rejected_with_its_exit_code() {
    let bench = Bench::new();
    let (v1, v2) = (bench.image("1.0.0", 1), bench.image("1.1.0", 2));
    // Published to beta, served to a device that follows stable: a replay.
    bench.release(&v2, "beta");
    let (serve, base) = bench.serve();
    let (device, link) = bench.device(&v1, &base);
    let _running = Running(vec![serve, device]);
    let url = format!("{base}/beta/manifest.json");
    let mut w = watch(&link, &["--manifest", &url]);
    let (result, all) = result_of(&mut w, |_| {});
    assert_eq!(result["outcome"], "rejected", "{all}");
    assert_eq!(result["reason"], "wrong-channel", "{all}");
    assert_eq!(result["exit_code"], 4);
}

#[test]
fn an_app_whose_self_test_fails_is_rolled_back_with_its_exit_code() {
    let bench = Bench::new();
    let (v1, v2) = (bench.image("1.0.0", 1), bench.image("1.1.0", 2));
    bench.release(&v2, "stable");
    let (mut serve, base) = bench.serve();
    let (device, link) = bench.device(&v1, &base);
    let _running = Running(vec![device]);
    let mut w = watch(&link, &[]);
    // The origin goes away once the new version is activated: its self-test cannot reach
    // it, so it marks itself invalid and the bootloader goes back to 1.0.0.
    let (result, all) = result_of(&mut w, |line| {
        if line.contains("\"ev\":\"activated\"") {
            let _ = serve.kill();
            let _ = serve.wait();
        }
    });
    assert_eq!(result["outcome"], "rolled_back", "{all}");
    assert_eq!(result["failed_version"], "1.1.0");
    assert_eq!(result["exit_code"], 3);
}

#[test]
fn a_device_nobody_touches_takes_a_raised_rollout_confirms_and_reports() {
    let bench = Bench::new();
    let (v1, v2) = (bench.image("1.0.0", 1), bench.image("1.1.0", 2));
    // Half the fleet may take 1.1.0; the bench device's cohort bucket (8,793 of 10,000) is
    // in the other half.
    bench.release_with(&v2, "stable", &["--rollout", "50%"]);
    let (serve, base) = bench.serve();
    let reports = format!("{base}/reports");
    // A check every 30 s of device time: every 3 s of wall time at ×10.
    let (device, link) = bench.device_with(
        &v1,
        &base,
        &["--check-every", "30s", "--jitter", "0s", "--report-url", &reports],
    );
    let _running = Running(vec![serve, device]);
    let mut w = otactl()
        .arg("watch")
        .arg("--port")
        .arg(&link)
        .args(["--expect-version", "1.1.0", "--json", "--timeout", "90s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut raised = false;
    let (result, all) = result_of(&mut w, |line| {
        // The device says it is outside the rollout: raise it, as an operator would.
        if !raised && line.contains("outside-cohort") {
            raised = true;
            bench.rollout(&["set", "--percent", "100"]);
        }
    });
    assert!(raised, "the device never judged the staged release: {all}");
    assert_eq!(result["outcome"], "confirmed", "{all}");
    assert_eq!(result["exit_code"], 0);
    assert!(!all.contains("\"triggered\""), "nothing was sent to the console: {all}");

    // The confirm's report reaches the receiver, and the rollout's status counts it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = bench.rollout(&["status"]);
        let versions = status["versions"].as_array().cloned().unwrap_or_default();
        let confirmed: u64 = versions
            .iter()
            .filter(|v| v["version"] == "1.1.0")
            .flat_map(|v| v["stages"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s["confirmed"].as_u64())
            .sum();
        if confirmed == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no confirmed report counted: {status:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
