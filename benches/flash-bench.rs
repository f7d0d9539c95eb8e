//! How fast `otactl flash` writes a bench device next to Espressif's esptool, the tool it
//! must not be slower than, in both modes side by side: through the flasher stub (each
//! tool's default: the stub uploaded, then compressed 16 KiB blocks the stub writes while
//! the next arrives) and through the ROM loader (`otactl flash --no-stub`, `esptool
//! --no-stub write-flash -z`). All four write the same regions (bootloader, partition table,
//! otadata, a 1 MiB app in ota_0, the journal), verified by MD5, at 921600 baud, each into a
//! fresh `otactl sim rom --baud-pacing` (bytes take their 8N1 time at the current rate,
//! erases and page programs take a W25Q32's time). Runs rotate through the four, the order
//! shifting every round; each time is the tool's whole process, start-up included. The
//! ratios otactl ÷ esptool of the medians, per mode, are the figures (goal ≤ 1.0).
//!
//! `cargo bench -p otactl --bench flash-bench [-- --rounds N] [-- --chip esp32] [-- --json]`
//!
//! Without esptool (`.ci/esptool` installs it) the esptool runs say SKIP; with `CI` set the
//! bench fails instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, CHIP_ESP32C3, build_test_image};
use serde_json::Value;

/// With the descriptor, headers, checksum and hash: exactly 1 MiB.
const IMAGE_PAYLOAD: usize = 1024 * 1024 - 336;
const BAUD: &str = "921600";

/// A payload that deflates about as firmware does (an esp-hal or ESP-IDF app image deflates
/// to roughly 55–65 %): instruction-like words from a small vocabulary, some hot, mixed with
/// random immediates and zero padding. Deterministic.
fn firmware_like(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let vocab: Vec<[u8; 4]> = (0..400).map(|_| (next() as u32).to_le_bytes()).collect();
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        let r = next();
        if r % 10 < 6 {
            let hot = [8, 40, 400][(r >> 8) as usize % 3];
            out.extend_from_slice(&vocab[(r >> 16) as usize % hot]);
        } else {
            let word = (next() as u32).to_le_bytes();
            out.extend_from_slice(&word[..if r & 0x100 == 0 { 2 } else { 4 }]);
            if r & 0x200 == 0 {
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
    out.truncate(len);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Otactl,
    Esptool,
}

/// One tool in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    tool: Tool,
    stub: bool,
}

impl Run {
    const ALL: [Run; 4] = [
        Run {
            tool: Tool::Otactl,
            stub: true,
        },
        Run {
            tool: Tool::Esptool,
            stub: true,
        },
        Run {
            tool: Tool::Otactl,
            stub: false,
        },
        Run {
            tool: Tool::Esptool,
            stub: false,
        },
    ];

    fn name(self) -> String {
        format!(
            "{}{}",
            format!("{:?}", self.tool).to_lowercase(),
            if self.stub { "" } else { " --no-stub" }
        )
    }
}

/// esptool as `.ci/esptool` leaves it: the script on PATH, else the package.
fn esptool() -> Option<Vec<String>> {
    for cmd in [vec!["esptool"], vec!["python3", "-m", "esptool"]] {
        let ok = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(cmd.into_iter().map(String::from).collect());
        }
    }
    None
}

/// `otactl sim rom --baud-pacing` on a fresh flash file; killed when dropped.
struct Emulator {
    child: Child,
    link: PathBuf,
}

/// The flash file of run `run`: the chip as the tool left it.
fn flash_file(dir: &Path, run: &str) -> PathBuf {
    dir.join(format!("flash-{run}.bin"))
}

impl Emulator {
    fn start(dir: &Path, name: &str, chip: &str) -> Emulator {
        let link = dir.join(format!("tty-{name}"));
        let child = Command::new(env!("CARGO_BIN_EXE_otactl"))
            .args(["sim", "rom", "--chip", chip, "--baud-pacing", "--link"])
            .arg(&link)
            .arg("--flash")
            .arg(flash_file(dir, name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start otactl sim rom");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&link).is_err() {
            assert!(Instant::now() < deadline, "the emulator did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Emulator { child, link }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A region both tools write, as the first otactl run wrote it.
struct Region {
    name: String,
    addr: u32,
    file: PathBuf,
    bytes: Vec<u8>,
}

fn run(cmd: &mut Command) -> (Duration, String) {
    let started = Instant::now();
    let out = cmd.output().expect("run the flasher");
    let took = started.elapsed();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let rounds = value("--rounds").and_then(|n| n.parse().ok()).unwrap_or(3usize).max(1);
    let chip = value("--chip").map_or("esp32c3", String::as_str);
    let chip_id = match chip {
        "esp32c3" => CHIP_ESP32C3,
        "esp32" => CHIP_ESP32,
        other => panic!("--chip {other}: the emulator is esp32c3 or esp32"),
    };

    let dir = tempfile::tempdir().expect("temporary directory");
    let dir = dir.path();
    std::fs::write(
        dir.join("profile.toml"),
        format!(
            "[device]\nproduct = \"field-logger\"\nchip = \"{chip}\"\nboard = \"bench\"\n\n\
             [modem]\ndialect = \"sim7600\"\nbaud = 115200\napn = \"internet\"\n\n\
             [flash]\nsize = \"4MB\"\n"
        ),
    )
    .unwrap();
    let image = build_test_image(chip_id, "1.0.0", "bench", &firmware_like(IMAGE_PAYLOAD));
    assert_eq!(image.len(), 1024 * 1024);
    std::fs::write(dir.join("app.bin"), &image).unwrap();
    let deflated = miniz_oxide::deflate::compress_to_vec_zlib(&image, 9).len() as f64 / image.len() as f64;

    let esptool = esptool();
    if esptool.is_none() {
        sim::required_tool::missing("flash-bench", "esptool", ".ci/esptool installs it");
    }
    let mut regions: Vec<Region> = Vec::new();
    let mut times: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        for k in 0..Run::ALL.len() {
            let i = (k + round) % Run::ALL.len();
            let run_kind = Run::ALL[i];
            let name = format!("{round}-{i}");
            let mode: &[&str] = if run_kind.stub { &[] } else { &["--no-stub"] };
            let took = match run_kind.tool {
                Tool::Otactl => {
                    let rom = Emulator::start(dir, &name, chip);
                    let (took, stdout) = run(Command::new(env!("CARGO_BIN_EXE_otactl"))
                        .current_dir(dir)
                        .args([
                            "flash",
                            "--profile",
                            "profile.toml",
                            "--image",
                            "app.bin",
                            "--baud",
                            BAUD,
                        ])
                        .args(["--before", "no-reset", "--after", "no-reset", "--json"])
                        .args(mode)
                        .arg("--port")
                        .arg(&rom.link));
                    drop(rom);
                    if regions.is_empty() {
                        regions = extract(dir, &stdout, &name);
                        let app = regions.iter().find(|r| r.name == "ota_0").expect("an ota_0 region");
                        assert!(app.bytes == image, "ota_0 holds the image");
                    }
                    check(dir, &name, &regions);
                    took
                }
                Tool::Esptool => {
                    let Some(esptool) = &esptool else { continue };
                    // The regions come from the first otactl run of the round order.
                    if regions.is_empty() {
                        continue;
                    }
                    let rom = Emulator::start(dir, &name, chip);
                    let mut cmd = Command::new(&esptool[0]);
                    cmd.args(&esptool[1..])
                        .args([
                            "--chip", chip, "--baud", BAUD, "--before", "no-reset", "--after", "no-reset",
                        ])
                        .args(mode)
                        .arg("--port")
                        .arg(&rom.link)
                        .args(["write-flash", "-z"]);
                    for r in &regions {
                        cmd.arg(format!("{:#x}", r.addr)).arg(&r.file);
                    }
                    let (took, _) = run(&mut cmd);
                    drop(rom);
                    check(dir, &name, &regions);
                    took
                }
            };
            times[i].push(took.as_secs_f64());
            if !json {
                println!(
                    "round {}  {:<18} {:>7.2} s",
                    round + 1,
                    run_kind.name(),
                    took.as_secs_f64()
                );
            }
        }
    }

    let written: usize = regions.iter().map(|r| r.bytes.len()).sum();
    let medians: Vec<Option<f64>> = times
        .iter()
        .map(|t| (!t.is_empty()).then(|| median(t.clone())))
        .collect();
    let ratio = |otactl: usize, esp: usize| medians[otactl].zip(medians[esp]).map(|(o, e)| o / e);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "chip": chip,
                "baud": 921_600,
                "image_bytes": image.len(),
                "image_deflated": deflated,
                "bytes_written": written,
                "regions": regions.iter().map(|r| &r.name).collect::<Vec<_>>(),
                "rounds": rounds,
                "stub": {
                    "otactl_s": times[0],
                    "esptool_s": times[1],
                    "otactl_median_s": medians[0],
                    "esptool_median_s": medians[1],
                    "ratio": ratio(0, 1),
                },
                "no_stub": {
                    "otactl_s": times[2],
                    "esptool_s": times[3],
                    "otactl_median_s": medians[2],
                    "esptool_median_s": medians[3],
                    "ratio": ratio(2, 3),
                },
            })
        );
        return;
    }
    println!(
        "{chip}, paced ROM emulator at {BAUD} baud, compressed, verified: {} regions ({}), {written} bytes, \
         a {} byte app that deflates to {:.1} %",
        regions.len(),
        regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
        image.len(),
        deflated * 100.0
    );
    for (mode, o, e) in [("stub", 0, 1), ("--no-stub", 2, 3)] {
        let otactl = medians[o].unwrap_or(f64::NAN);
        match (medians[e], ratio(o, e)) {
            (Some(esp), Some(r)) => println!(
                "{mode:>9}, median of {rounds}: otactl flash {otactl:.2} s, esptool write-flash {esp:.2} s, ratio otactl / esptool {r:.3} (goal <= 1.0)"
            ),
            _ => println!(
                "{mode:>9}, median of {rounds}: otactl flash {otactl:.2} s; esptool SKIP: not installed (.ci/esptool)"
            ),
        }
    }
}

/// The regions the first otactl run wrote (from its JSON report and the flash file it left),
/// saved as files for esptool.
fn extract(dir: &Path, report: &str, run: &str) -> Vec<Region> {
    let report: Value = serde_json::from_str(report).expect("otactl flash --json");
    let chip = std::fs::read(flash_file(dir, run)).unwrap();
    report["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_owned();
            let addr = s["address"].as_u64().unwrap() as u32;
            let size = s["size"].as_u64().unwrap() as usize;
            let bytes = chip[addr as usize..addr as usize + size].to_vec();
            let file = dir.join(format!("{name}.bin"));
            std::fs::write(&file, &bytes).unwrap();
            Region {
                name,
                addr,
                file,
                bytes,
            }
        })
        .collect()
}

/// Both tools must leave the same bytes where they wrote.
fn check(dir: &Path, run: &str, regions: &[Region]) {
    let chip = std::fs::read(flash_file(dir, run)).unwrap();
    for r in regions {
        let at = r.addr as usize;
        assert!(
            chip[at..at + r.bytes.len()] == r.bytes[..],
            "run {run}: {} at {:#x} differs",
            r.name,
            r.addr
        );
    }
}
