//! `otactl demo`: the whole product on the virtual bench, with no hardware, no account and no
//! network. A throwaway key signs two releases of a firmware into a temporary `file://`
//! bucket, `otactl serve` serves it, a virtual device running the first release sits behind
//! a NAT that forgets idle connections after a few seconds, and `watch` triggers the update
//! and follows it to the confirmed second release.
//!
//! The pieces run as the user would run them: `serve` and `sim device` are this same binary
//! in child processes, so what the demo shows is what the commands do.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use device_fw::esp::image::build_test_image;
use device_fw::profile::Profile;
use serde_json::json;

use crate::cli::keygen;
use crate::cli::watch::{Show, WatchArgs, follow};
use crate::keys::SigningKeySource;
use crate::release::{self, Progress, Report, Request, Source};
use crate::watch::Outcome;

/// The profile the demo runs on: the field setup (ESP32, SIM7600, a carrier NAT).
const DEFAULT_PROFILE: &str = include_str!("../../profiles/m5stack-core-sim7600.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print one JSON summary instead of the narrated run.
    #[arg(long)]
    json: bool,
    /// Seconds of idle after which the demo's carrier NAT forgets a connection (the profile
    /// believes 59 s, so the device meets a shorter NAT than it planned for).
    #[arg(long, default_value_t = 4)]
    nat_idle: u32,
    /// Device time runs this many times faster than the clock on the wall.
    #[arg(long, default_value_t = 10.0)]
    time_scale: f64,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Keep the demo's directory (keys, bucket, flash file, device and console logs) and
    /// print where it is.
    #[arg(long)]
    keep: bool,
    /// Everything over HTTPS: `otactl serve` with a certificate from a throwaway CA, the
    /// device trusting that CA, its modem doing the TLS.
    #[arg(long)]
    tls: bool,
    /// With --tls: give the device a CA that did not sign the server's certificate, to see
    /// what a fleet with the wrong trust anchor sees (refused, the running app untouched).
    #[arg(long, requires = "tls")]
    tls_wrong_ca: bool,
    /// The virtual device's modem: the field's SIM7600 (`AT+CCH*` for TLS), or a SIM7080
    /// (`AT+CA*`, its SSL on the same connection).
    #[arg(long, value_enum, default_value_t = DemoModem::Sim7600)]
    modem: DemoModem,
}

/// The modems the demo's device can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoModem {
    Sim7600,
    Sim7080,
}

impl DemoModem {
    fn dialect(self) -> &'static str {
        match self {
            DemoModem::Sim7600 => "sim7600",
            DemoModem::Sim7080 => "sim7080",
        }
    }
}

/// Child processes to stop on the way out, also on Ctrl-C.
#[derive(Clone, Default)]
struct Children(Arc<Mutex<Vec<Child>>>);

impl Children {
    fn add(&self, child: Child) {
        self.0.lock().expect("children lock").push(child);
    }

    fn stop_all(&self) {
        for mut child in self.0.lock().expect("children lock").drain(..) {
            // SIGTERM lets `sim device` remove its link and `serve` close its socket.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Narrator {
    json: bool,
}

impl Narrator {
    fn step(&self, text: &str) {
        if !self.json {
            println!("==> {text}");
        }
    }
}

/// Release progress is not worth narrating in a demo: the step lines say what happened.
struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: &'static str, _: String) {}
    fn warn(&mut self, _: String) {}
    fn build_started(&mut self, _: &str) {}
    fn build_unit(&mut self, _: &str, _: usize) {}
    fn build_finished(&mut self) {}
    fn upload_started(&mut self, _: &str, _: u64) {}
    fn upload_progress(&mut self, _: u64) {}
    fn upload_finished(&mut self) {}
}

fn fail(json: bool, message: String, kept: Option<&Path>) -> ExitCode {
    if json {
        let mut out = json!({ "outcome": "error", "error": message });
        if let Some(kept) = kept {
            out["kept"] = json!(kept.display().to_string());
        }
        println!("{out}");
    } else {
        eprintln!("demo failed: {message}");
    }
    ExitCode::FAILURE
}

pub fn run(args: DemoArgs) -> ExitCode {
    let started = Instant::now();
    let dir = match tempfile::Builder::new().prefix("otactl-demo-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return fail(args.json, format!("cannot make a temporary directory: {e}"), None);
        }
    };
    let children = Children::default();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let children = children.clone();
        let path = dir.path().to_owned();
        let keep = args.keep;
        let interrupted = interrupted.clone();
        // Ctrl-C: stop the children, remove the directory, exit as interrupted.
        let _ = ctrlc::set_handler(move || {
            interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
            children.stop_all();
            if !keep {
                let _ = std::fs::remove_dir_all(&path);
            }
            std::process::exit(130);
        });
    }
    let result = demo(&args, dir.path(), &children, started);
    // The children stopped by Ctrl-C end the demo with their own errors: the exit is the
    // handler's (130), not theirs, so this thread waits for it.
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    children.stop_all();
    // `--keep --json` names the directory in the one JSON line, where a script looks for it.
    let kept = args.keep.then(|| dir.keep());
    if let (Some(kept), false) = (&kept, args.json) {
        println!("kept the demo's files in {}", kept.display());
    }
    match result {
        Ok((outcome, mut summary)) => {
            if let Some(kept) = &kept {
                summary["kept"] = json!(kept.display().to_string());
            }
            if args.json {
                println!("{summary}");
            } else {
                println!(
                    "{} {} → {}: {} ({} NAT drop(s), {} resume(s)) in {:.1} s",
                    if outcome.is_success() { "✓" } else { "✗" },
                    summary["from"].as_str().unwrap_or("?"),
                    summary["to"].as_str().unwrap_or("?"),
                    summary["outcome"].as_str().unwrap_or("?"),
                    summary["nat_drops"],
                    summary["resumes"],
                    started.elapsed().as_secs_f64()
                );
            }
            if outcome.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(outcome.exit_code())
            }
        }
        Err(message) => fail(args.json, message, kept.as_deref()),
    }
}

fn demo(
    args: &DemoArgs,
    dir: &Path,
    children: &Children,
    started: Instant,
) -> Result<(Outcome, serde_json::Value), String> {
    let say = Narrator { json: args.json };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;

    say.step("a throwaway release key");
    let pair = keygen::generate(&dir.join("keys/demo")).map_err(|e| format!("{e:?}"))?;

    let tls = if args.tls {
        say.step(if args.tls_wrong_ca {
            "a throwaway CA, a server certificate for 127.0.0.1, and another CA for the device"
        } else {
            "a throwaway CA and a server certificate for 127.0.0.1 (the device trusts the CA)"
        });
        Some(tls_files(dir, args.tls_wrong_ca)?)
    } else {
        None
    };

    // The embedded profile, trusting the throwaway key and publishing to the temp bucket.
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).map_err(|e| e.to_string())?;
    let profile_text = DEFAULT_PROFILE
        .replace(
            "dialect = \"sim7600\"",
            &format!("dialect = \"{}\"", args.modem.dialect()),
        )
        .replace(
            "public_keys = [\"../keys/otactl.pub\"]",
            "public_keys = [\"keys/demo.pub\"]",
        )
        .replace(
            "device_url = \"http://ota.example.com/fleet\"",
            &match &tls {
                Some(tls) => format!(
                    "device_url = \"https://127.0.0.1/\"\nca_certs = [\"tls/{}\"]\nbucket = \"file://./bucket\"",
                    tls.device_ca_name
                ),
                None => "device_url = \"http://127.0.0.1/\"\nbucket = \"file://./bucket\"".to_owned(),
            },
        );
    let profile_path = dir.join("profile.toml");
    std::fs::write(&profile_path, &profile_text).map_err(|e| e.to_string())?;
    let profile = Profile::load(&profile_path).map_err(|e| e.to_string())?;

    say.step("two firmware releases, 1.0.0 and 1.1.0 (ESP-IDF app images for the profile's chip)");
    let chip = profile.device.chip.image_chip_id();
    let mut images = Vec::new();
    for (version, seed) in [("1.0.0", 1u8), ("1.1.0", 2u8)] {
        // Incompressible (xorshift): the compressed form is then no shorter than the raw
        // one, so the demo's 4 s NAT still cuts the download and the resume shows.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
        let payload: Vec<u8> = (0..60 * 1024u32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let image = build_test_image(chip, version, &profile.device.product, &payload);
        let path = dir.join(format!("app-{version}.bin"));
        std::fs::write(&path, &image).map_err(|e| e.to_string())?;
        images.push((version, path));
    }
    for (version, path) in &images {
        let request = Request {
            profile: profile_path.clone(),
            version: Some((*version).to_owned()),
            channel: None,
            bucket: None,
            endpoint: None,
            source: Source::Image(path.clone()),
            key: SigningKeySource::File(pair.private_path.clone()),
            allow_downgrade: false,
            dry_run: false,
            capture_build_output: true,
        };
        let mut report = Report::default();
        release::release(&request, &mut Quiet, &mut report).map_err(|e| format!("release {version}: {e}"))?;
        say.step(&format!("released {version} to {}", bucket.display()));
    }

    say.step(if args.tls {
        "serving the bucket on loopback over HTTPS (otactl serve --tls-cert --tls-key)"
    } else {
        "serving the bucket on loopback (otactl serve)"
    });
    let mut serve = Command::new(&exe);
    serve
        .args(["serve", "--addr", "127.0.0.1:0", "--bucket"])
        .arg(format!("file://{}", bucket.display()));
    if let Some(tls) = &tls {
        serve.arg("--tls-cert").arg(&tls.cert).arg("--tls-key").arg(&tls.key);
    }
    let mut serve = serve
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start otactl serve: {e}"))?;
    let first = serve.stdout.take().map(|out| {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        line
    });
    children.add(serve);
    let base = first
        .as_deref()
        .and_then(|l| l.split(" on ").nth(1))
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .ok_or("otactl serve did not say where it listens")?;

    say.step(&format!(
        "a virtual device running 1.0.0 behind a NAT that forgets idle connections after {} s \
         (the profile believes 59 s), time ×{}",
        args.nat_idle, args.time_scale
    ));
    let link = dir.join("ttyACM0");
    let device_log = std::fs::File::create(dir.join("device.log")).map_err(|e| e.to_string())?;
    let device = Command::new(&exe)
        .args(["sim", "device", "--link"])
        .arg(&link)
        .arg("--profile")
        .arg(&profile_path)
        .arg("--flash")
        .arg(dir.join("flash.bin"))
        .arg("--image")
        .arg(&images[0].1)
        .args(["--bucket-url", &base])
        .args(["--nat-idle", &args.nat_idle.to_string()])
        .args(["--time-scale", &args.time_scale.to_string()])
        .stdout(Stdio::null())
        .stderr(device_log)
        .spawn()
        .map_err(|e| format!("cannot start otactl sim device: {e}"))?;
    children.add(device);
    let appear = Instant::now() + Duration::from_secs(20);
    while !link.exists() {
        if Instant::now() > appear {
            return Err(format!(
                "the virtual device's console did not appear; see {}",
                dir.join("device.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    say.step("triggering the update over the console and watching it (otactl watch)");
    let watch = WatchArgs {
        port: link,
        baud: 115_200,
        trigger: true,
        manifest: None,
        expect_version: Some("1.1.0".into()),
        timeout: args.timeout.saturating_sub(started.elapsed()),
        reopen_wait: Duration::from_secs(30),
        json: false,
        log: Some(dir.join("console.log")),
    };
    let show = if args.json { Show::Nothing } else { Show::Events };
    let (outcome, watcher) = follow(&watch, show);
    // The network emulator's own account of the NAT, from the device's log.
    let nat_drops = std::fs::read_to_string(dir.join("device.log"))
        .map(|log| log.matches("the NAT forgot").count())
        .unwrap_or(0);
    let summary = json!({
        "outcome": serde_json::to_value(&outcome).ok().and_then(|v| v["outcome"].as_str().map(str::to_owned)),
        "from": watcher.from,
        "to": match &outcome {
            Outcome::Confirmed { version } | Outcome::UpToDate { version } => Some(version.clone()),
            _ => watcher.activated.clone(),
        },
        "tls": args.tls,
        "modem": args.modem.dialect(),
        "nat_drops": nat_drops,
        "connection_drops": watcher.drops,
        "resumes": watcher.resumes,
        "wall_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        "exit_code": outcome.exit_code(),
    });
    Ok((outcome, summary))
}

/// The demo's TLS files, under `<dir>/tls`.
struct TlsFiles {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    /// What the device's profile trusts (`ca_certs`, under `tls/`): the server's CA, or
    /// (`wrong_ca`) another one.
    device_ca_name: &'static str,
}

fn tls_files(dir: &Path, wrong_ca: bool) -> Result<TlsFiles, String> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).map_err(|e| e.to_string())?;
    let ca = sim::tls::TestCa::new("otactl demo CA");
    let server = ca.issue(&["127.0.0.1", "localhost"], sim::tls::Validity::Current);
    let files = TlsFiles {
        cert: tls.join("server.pem"),
        key: tls.join("server.key"),
        device_ca_name: if wrong_ca { "other-ca.pem" } else { "ca.pem" },
    };
    let write = |path: &Path, text: &str| std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
    write(&tls.join("ca.pem"), &ca.cert_pem)?;
    write(&files.cert, &server.chain_pem)?;
    write(&files.key, &server.key_pem)?;
    if wrong_ca {
        write(
            &tls.join(files.device_ca_name),
            &sim::tls::TestCa::new("another CA").cert_pem,
        )?;
    }
    Ok(files)
}
