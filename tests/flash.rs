//! `otactl flash` against the ROM serial-loader emulator (`otactl sim rom`) on a real
//! pseudo-terminal, for the ESP32-C3 and the ESP32: what lands in the flash file (bootloader
//! at the chip's offset, the profile's partition table, erased otadata and journal, the app
//! in ota_0), then the virtual device booting that file; and every error path with its exit
//! code and the hint that goes with it.

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, CHIP_ESP32C3, ImageHeader, build_test_image};
use device_fw::esp::partition::{PartitionTable, TABLE_LEN, TABLE_OFFSET};
use device_fw::profile::Profile;
use device_fw::wire::console::{Event, parse_event_line};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use serde_json::Value;
use support::{Project, code, json, otactl, text};

/// The flags a pseudo-terminal needs: no DTR/RTS to reset with.
const EMULATOR_FLAGS: [&str; 4] = ["--before", "no-reset", "--after", "no-reset"];

/// The same, writing through the ROM loader instead of espflash's flasher stub.
const NO_STUB_FLAGS: [&str; 5] = ["--before", "no-reset", "--after", "no-reset", "--no-stub"];

/// `otactl sim rom` as a child process, stopped when dropped.
struct Emulator {
    child: Child,
    link: PathBuf,
    log: PathBuf,
}

impl Emulator {
    fn start(dir: &Path, name: &str, chip: &str, extra: &[&str]) -> Emulator {
        let link = dir.join(format!("tty-{name}"));
        let log = dir.join(format!("rom-{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_otactl"))
            .args(["sim", "rom", "--chip", chip, "--link"])
            .arg(&link)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&link).is_err() {
            assert!(Instant::now() < deadline, "no emulator at {}", link.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Emulator { child, link, log }
    }

    fn port(&self) -> &str {
        self.link.to_str().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log says `what` within a few seconds. A reset asked for at the end of
    /// flashing gets no answer, so the flasher may exit before the emulator has handled it.
    fn logs_soon(&self, what: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log().contains(what) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flash(p: &Project, profile: &str, port: &str, image: &str, extra: &[&str]) -> Output {
    otactl(p.path())
        .args([
            "flash",
            "--profile",
            profile,
            "--port",
            port,
            "--image",
            image,
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// A chip-sized flash file whose otadata selects ota_1 and whose journal holds bytes, as a
/// board that ran another firmware would: a fresh flash must clear both.
fn used_flash(path: &Path, profile: &Profile) {
    let mut bytes = vec![0xFFu8; profile.flash.size.bytes() as usize];
    for region in [profile.slots.otadata, profile.slots.otastate] {
        bytes[region.offset as usize..region.offset as usize + 64].fill(0x00);
    }
    std::fs::write(path, bytes).unwrap();
}

fn app_image(chip_id: u16, version: &str, size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    build_test_image(chip_id, version, "field-logger", &payload)
}

/// Reads the virtual device's console until its `@ota` boot event.
fn boot_event(link: &Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut port = loop {
        if let Ok(port) = serialport::new(link.to_str().unwrap(), 115_200)
            .timeout(Duration::from_millis(100))
            .open_native()
        {
            break port;
        }
        assert!(Instant::now() < deadline, "no console at {}", link.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut pending = Vec::new();
    let mut seen = String::new();
    loop {
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw).into_owned();
            seen.push_str(&line);
            if let Some(Ok(Event::Boot { version, slot, .. })) = parse_event_line(&line) {
                return (version, slot);
            }
        }
        assert!(Instant::now() < deadline, "no boot event; console:\n{seen}");
        let mut buf = [0u8; 512];
        match port.read(&mut buf) {
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("console: {e}; seen:\n{seen}"),
        }
    }
}

/// Flashes `chip` over a used flash file (through espflash's flasher stub, or with `--no-stub`
/// through the ROM loader), checks every region of the file (the bootloader at `boot_at`),
/// then boots the file on the virtual device. With `bench_resets`, the reset modes come from
/// the profile's `[bench]` rather than from flags.
fn end_to_end(chip: &str, chip_id: u16, boot_at: usize, bench_resets: bool, stub: bool) {
    let p = Project::new();
    let bench = if bench_resets {
        "[bench]\nbefore = \"no-reset\"\nafter = \"no-reset\"\n"
    } else {
        ""
    };
    let profile_file = p.profile(chip, chip, "", bench);
    let profile = Profile::load(&p.path().join(&profile_file)).unwrap();
    let flash_file = p.path().join("flash.bin");
    used_flash(&flash_file, &profile);
    let image = app_image(chip_id, "1.4.2", 48 * 1024);
    p.write("app.bin", &image);

    let rom = Emulator::start(p.path(), chip, chip, &["--flash", flash_file.to_str().unwrap()]);
    let flags: &[&str] = match (bench_resets, stub) {
        (true, true) => &[],
        (true, false) => &["--no-stub"],
        (false, true) => &EMULATOR_FLAGS,
        (false, false) => &NO_STUB_FLAGS,
    };
    let out = flash(&p, &profile_file, rom.port(), "app.bin", flags);
    assert_eq!(code(&out), 0, "{}\nemulator:\n{}", text(&out), rom.log());
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["stub"], stub);
    let log = rom.log();
    // The stub was uploaded and answered as such, then the reset after flashing brought the
    // ROM back; without it, nothing was uploaded.
    assert_eq!(log.contains("answering as the flasher stub"), stub, "{log}");
    if stub {
        assert!(rom.logs_soon("the stub is gone"), "{}", rom.log());
    } else {
        assert!(!log.contains("the stub is gone"), "{log}");
    }
    assert_eq!(report["chip"], chip);
    assert_eq!(report["verified"], true);
    assert_eq!(report["baud"], 921_600);
    assert_eq!(report["bootloader"], "bundled");
    assert_eq!(report["app"]["version"], "1.4.2");
    let segments: Vec<(String, u64, u64)> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["verified"], true, "{s}");
            assert!(s["seconds"].as_f64().unwrap() >= 0.0);
            // otactl compresses itself only for the ROM; the stub path leaves it to espflash.
            assert_eq!(s["sent"].is_null(), stub, "{s}");
            (
                s["name"].as_str().unwrap().to_owned(),
                s["address"].as_u64().unwrap(),
                s["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let names: Vec<(&str, u64)> = segments.iter().map(|(n, a, _)| (n.as_str(), *a)).collect();
    assert_eq!(
        names,
        [
            ("bootloader", boot_at as u64),
            ("partition-table", 0x8000),
            ("otadata", 0xD000),
            ("ota_0", 0x10000),
            ("otastate", 0x3D_0000)
        ]
    );
    assert!(report["total_s"].as_f64().unwrap() > 0.0);
    // The note about the bundled bootloader and rollback.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE"),
        "{}",
        text(&out)
    );
    drop(rom);

    let chip_bytes = std::fs::read(&flash_file).unwrap();
    assert_eq!(chip_bytes.len(), 4 << 20);
    let boot_len = segments[0].2 as usize;
    let header = ImageHeader::parse(&chip_bytes[boot_at..]).unwrap();
    assert_eq!(header.chip_id, chip_id, "bootloader at {boot_at:#x}");
    assert!(chip_bytes[boot_at..boot_at + boot_len].iter().any(|&b| b != 0xFF));
    let at = TABLE_OFFSET as usize;
    let (table, _) = PartitionTable::parse(&chip_bytes[at..at + TABLE_LEN]).unwrap();
    assert_eq!(
        table.to_bytes().unwrap(),
        profile.partition_table().unwrap().to_bytes().unwrap(),
        "the table at 0x8000 is the profile's"
    );
    for region in [profile.slots.otadata, profile.slots.otastate] {
        let bytes = &chip_bytes[region.offset as usize..region.end() as usize];
        assert!(bytes.iter().all(|&b| b == 0xFF), "{region} is erased");
    }
    let ota_0 = profile.slots.ota_0.offset as usize;
    assert_eq!(
        &chip_bytes[ota_0..ota_0 + image.len()],
        &image[..],
        "the app is in ota_0"
    );

    // What was flashed is what the virtual device boots.
    let link = p.path().join(format!("console-{chip}"));
    let mut device = Command::new(env!("CARGO_BIN_EXE_otactl"))
        .current_dir(p.path())
        .args([
            "sim",
            "device",
            "--profile",
            &profile_file,
            "--time-scale",
            "20",
            "--link",
        ])
        .arg(&link)
        .arg("--flash")
        .arg(&flash_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let booted = boot_event(&link);
    let _ = device.kill();
    let _ = device.wait();
    assert_eq!(booted, ("1.4.2".to_owned(), "ota_0".to_owned()));
}

#[test]
fn an_esp32c3_is_flashed_through_the_stub_and_the_virtual_device_boots_it() {
    end_to_end("esp32c3", CHIP_ESP32C3, 0x0, false, true);
}

#[test]
fn an_esp32_is_flashed_through_the_stub_and_the_virtual_device_boots_it() {
    end_to_end("esp32", CHIP_ESP32, 0x1000, true, true);
}

#[test]
fn an_esp32c3_is_flashed_through_the_rom_loader_and_the_virtual_device_boots_it() {
    end_to_end("esp32c3", CHIP_ESP32C3, 0x0, false, false);
}

#[test]
fn an_esp32_is_flashed_through_the_rom_loader_and_the_virtual_device_boots_it() {
    end_to_end("esp32", CHIP_ESP32, 0x1000, true, false);
}

/// Two runs on one emulator, stub then ROM then stub: the reset after each run returns the
/// chip to the ROM loader at 115200, so the next tool connects as to a freshly reset board.
#[test]
fn the_emulator_goes_back_to_the_rom_after_each_stub_run() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "2.0.0", 20_000));
    let rom = Emulator::start(p.path(), "c3", "esp32c3", &[]);
    for flags in [&EMULATOR_FLAGS[..], &NO_STUB_FLAGS[..], &EMULATOR_FLAGS[..]] {
        let out = flash(&p, &profile, rom.port(), "app.bin", flags);
        assert_eq!(code(&out), 0, "{flags:?}: {}\nemulator:\n{}", text(&out), rom.log());
        assert_eq!(json(&out)["verified"], true);
    }
    let log = rom.log();
    assert_eq!(log.matches("answering as the flasher stub").count(), 2, "{log}");
}

fn error(out: &Output) -> (String, String) {
    let v: Value = json(out);
    assert_eq!(v["ok"], false, "{v}");
    (
        v["error"].as_str().unwrap_or_default().to_owned(),
        v["help"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_profile_for_another_chip_is_refused_before_anything_is_written() {
    let p = Project::new();
    let profile = p.profile("esp32", "esp32", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32, "1.0.0", 4096));
    let flash_file = p.path().join("flash.bin");
    let rom = Emulator::start(p.path(), "c3", "esp32c3", &["--flash", flash_file.to_str().unwrap()]);
    let out = flash(&p, &profile, rom.port(), "app.bin", &NO_STUB_FLAGS);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let (message, help) = error(&out);
    assert!(
        message.contains("is esp32c3") && message.contains("is for esp32"),
        "{message}"
    );
    assert!(help.contains("nothing was written"), "{help}");
    drop(rom);
    let bytes = std::fs::read(&flash_file).unwrap();
    assert!(bytes.iter().all(|&b| b == 0xFF), "the chip stays blank");
}

#[test]
fn an_image_larger_than_ota_0_is_refused_before_the_port_is_opened() {
    let p = Project::new();
    let slots = "[slots]\nnvs = { offset = 0x9000, size = 0x4000 }\notadata = { offset = 0xD000, size = 0x2000 }\n\
                 phy_init = { offset = 0xF000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x10000 }\n\
                 ota_1 = { offset = 0x20000, size = 0x10000 }\notastate = { offset = 0x30000, size = 0x4000 }\n";
    let profile = p.profile("small", "esp32c3", "", slots);
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 100 * 1024));
    // No emulator at all: the image is judged first.
    let out = flash(&p, &profile, "/nonexistent/tty", "app.bin", &EMULATOR_FLAGS);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let (message, _) = error(&out);
    assert!(message.contains("ota_0") && message.contains("65536"), "{message}");
}

#[test]
fn a_port_that_does_not_exist_is_a_port_error() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 4096));
    let out = flash(&p, &profile, "/dev/ttyNOSUCHPORT7", "app.bin", &EMULATOR_FLAGS);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (message, _) = error(&out);
    assert!(message.contains("/dev/ttyNOSUCHPORT7 does not exist"), "{message}");

    // Without --json the error is miette's report, with its help.
    let out = otactl(p.path())
        .args([
            "flash",
            "--profile",
            &profile,
            "--port",
            "/dev/ttyNOSUCHPORT7",
            "--image",
            "app.bin",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
}

#[test]
fn a_port_another_program_holds_is_reported_busy() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 4096));
    let rom = Emulator::start(p.path(), "c3", "esp32c3", &[]);
    // serialport opens exclusively (TIOCEXCL and an exclusive flock), as a serial monitor does.
    let holder = serialport::new(rom.port(), 115_200).open_native().unwrap();
    let out = flash(&p, &profile, rom.port(), "app.bin", &EMULATOR_FLAGS);
    drop(holder);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (message, help) = error(&out);
    assert!(message.contains("in use by another program"), "{message}");
    assert!(help.contains("fuser"), "{help}");
}

#[test]
fn a_port_where_nothing_answers_gets_the_download_mode_hint() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 4096));
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let silent = ptsname_r(&master).unwrap();
    let out = flash(&p, &profile, &silent, "app.bin", &EMULATOR_FLAGS);
    drop(master);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (message, help) = error(&out);
    assert!(message.contains("no answer from a ROM loader"), "{message}");
    assert!(help.contains("download mode") && help.contains("hold BOOT"), "{help}");
    assert!(help.contains("TX goes to the chip's RX"), "{help}");
}

#[test]
fn forgetting_the_emulator_flags_says_which_ones() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 4096));
    let rom = Emulator::start(p.path(), "c3", "esp32c3", &[]);

    // The defaults reset with DTR/RTS, which a pseudo-terminal does not have.
    let out = flash(&p, &profile, rom.port(), "app.bin", &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (message, help) = error(&out);
    assert!(message.contains("has no DTR/RTS lines"), "{message}");
    assert!(help.contains("--before no-reset --after no-reset"), "{help}");
    assert!(!help.contains("runs no"), "the stub works on the emulator: {help}");
    // Only the reset after: the same, naming that flag.
    let out = flash(&p, &profile, rom.port(), "app.bin", &["--before", "no-reset"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (message, _) = error(&out);
    assert!(message.contains("into the app afterwards"), "{message}");
}

#[test]
fn a_flash_smaller_than_the_profile_is_refused() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    p.write("app.bin", &app_image(CHIP_ESP32C3, "1.0.0", 4096));
    let rom = Emulator::start(p.path(), "c3", "esp32c3", &["--flash-size", "2MB"]);
    let out = flash(&p, &profile, rom.port(), "app.bin", &EMULATOR_FLAGS);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let (message, _) = error(&out);
    assert!(
        message.contains("flash is 2MB") && message.contains("needs 4MB"),
        "{message}"
    );
}
