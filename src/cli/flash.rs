//! `otactl flash`: a bench device flashed for OTA (bootloader, the profile's partition table,
//! erased otadata, the app in `ota_0`), verified, and reset into the app. The work is in
//! `crate::flash`; this is the command line, the progress display and the report.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{ArgGroup, Args, ValueEnum};
use device_fw::profile::Profile;
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment as EspSegment;
use espflash::target::ProgressCallbacks;
use indicatif::{ProgressBar, ProgressStyle};
use miette::Diagnostic as _;
use serde_json::{Value, json};

use crate::flash::plan::{self, App, Bootloader, Segment};
use crate::flash::port::{self, ROM_BAUD};
use crate::flash::write::{self, Prepared};
use crate::flash::{FlashError, chain};

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("app").required(true).args(["elf", "image"])))]
pub struct FlashArgs {
    /// Device profile: the chip to expect, the flash settings, and the partition layout
    /// written at 0x8000.
    #[arg(long, value_name = "PROFILE")]
    profile: PathBuf,

    /// Serial port of the board [default: the only ESP32 USB serial bridge connected].
    #[arg(long, value_name = "PORT")]
    port: Option<String>,

    /// Baud rate of the transfer; otactl connects at 115200, then switches.
    #[arg(long, value_name = "N", default_value_t = 921_600,
          value_parser = clap::value_parser!(u32).range(9600..=5_000_000))]
    baud: u32,

    /// The firmware ELF, made into an app image as `otactl image` makes it.
    #[arg(long, value_name = "FILE")]
    elf: Option<PathBuf>,

    /// A ready ESP-IDF app image (.bin), flashed as it is.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,

    /// Second-stage bootloader to write [default: espflash's bundled ESP-IDF bootloader,
    /// built without app rollback].
    #[arg(long, value_name = "FILE")]
    bootloader: Option<PathBuf>,

    /// Erase otadata so the bootloader starts the app in ota_0. Always done: a kept
    /// selection could start the other slot's old app; the flag lets scripts say so.
    #[arg(long)]
    erase_otadata: bool,

    /// Skip the MD5 read-back of every written region.
    #[arg(long)]
    no_verify: bool,

    /// Write through the chip's ROM loader instead of espflash's RAM stub (compressed by
    /// otactl, as `esptool --no-stub write-flash -z`).
    #[arg(long)]
    no_stub: bool,

    /// How to bring the chip into download mode, as espflash spells it [default: the
    /// profile's bench.before, else default-reset].
    #[arg(long, value_enum, value_name = "MODE")]
    before: Option<Before>,

    /// What to do once written, as espflash spells it [default: the profile's bench.after,
    /// else hard-reset].
    #[arg(long, value_enum, value_name = "MODE")]
    after: Option<After>,

    /// Print one JSON object (summary or error) on stdout.
    #[arg(long)]
    json: bool,
}

/// espflash's `--before` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Before {
    /// DTR/RTS pulse the auto-reset circuit into download mode (the USB-Serial-JTAG
    /// sequence on an Espressif USB port).
    DefaultReset,
    /// The chip is already in download mode: just SYNC.
    NoReset,
    /// A loader is already talking: neither reset nor SYNC.
    NoResetNoSync,
    /// The USB-Serial-JTAG sequence, whatever the port.
    UsbReset,
}

/// espflash's `--after` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum After {
    /// Pulse RTS (EN): the chip boots the app.
    HardReset,
    /// Stay in the ROM loader.
    NoReset,
    /// Stay in the stub.
    NoResetNoStub,
    /// Reset through the RTC watchdog (USB-Serial-JTAG and USB-OTG ports).
    WatchdogReset,
}

impl FlashArgs {
    fn before(&self) -> Before {
        self.before.unwrap_or(Before::DefaultReset)
    }

    fn after(&self) -> After {
        self.after.unwrap_or(After::HardReset)
    }

    /// The flags, with what they leave open taken from the profile's `[bench]`.
    fn with_profile(&self, profile: &Profile) -> FlashArgs {
        let bench = &profile.bench;
        FlashArgs {
            before: self
                .before
                .or_else(|| bench.before.as_deref().and_then(|t| Before::from_str(t, true).ok())),
            after: self
                .after
                .or_else(|| bench.after.as_deref().and_then(|t| After::from_str(t, true).ok())),
            ..self.clone()
        }
    }
}

impl Before {
    fn espflash(self) -> ResetBeforeOperation {
        match self {
            Before::DefaultReset => ResetBeforeOperation::DefaultReset,
            Before::NoReset => ResetBeforeOperation::NoReset,
            Before::NoResetNoSync => ResetBeforeOperation::NoResetNoSync,
            Before::UsbReset => ResetBeforeOperation::UsbReset,
        }
    }
}

impl After {
    fn espflash(self) -> ResetAfterOperation {
        match self {
            After::HardReset => ResetAfterOperation::HardReset,
            After::NoReset => ResetAfterOperation::NoReset,
            After::NoResetNoStub => ResetAfterOperation::NoResetNoStub,
            After::WatchdogReset => ResetAfterOperation::WatchdogReset,
        }
    }
}

fn name_of(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// One written region, for the report.
#[derive(Debug, Clone)]
struct Written {
    name: &'static str,
    addr: u32,
    size: usize,
    /// Bytes on the line (compressed), where otactl compressed them.
    sent: Option<usize>,
    erased: bool,
    seconds: f64,
    verified: bool,
}

/// What the run learned, whether or not it finished; both outputs are built from it.
#[derive(Debug, Default)]
struct Report {
    port: Option<String>,
    port_from: Option<String>,
    chip: Option<String>,
    revision: Option<String>,
    mac: Option<String>,
    crystal: Option<String>,
    device_flash: Option<String>,
    baud: Option<u32>,
    stub: bool,
    bootloader: Option<String>,
    app: Option<App>,
    written: Vec<Written>,
    verified: bool,
    after: Option<String>,
    connect_s: Option<f64>,
    total_s: f64,
}

pub fn run(args: FlashArgs) -> ExitCode {
    let started = Instant::now();
    let mut report = Report {
        stub: !args.no_stub,
        ..Report::default()
    };
    let result = flash(&args, &mut report, started);
    report.total_s = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", to_json(&args, &report, result.as_ref().err()));
    } else if result.is_ok() {
        print_summary(&report);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if !args.json {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(code)
        }
    }
}

fn note(text: impl AsRef<str>) {
    eprintln!("{}", text.as_ref());
}

fn flash(args: &FlashArgs, report: &mut Report, started: Instant) -> Result<(), FlashError> {
    // Everything that needs no device first: a bad file must not cost a board a reset.
    let profile = Profile::load(&args.profile).map_err(|e| FlashError::Profile(e.to_string()))?;
    let resolved = args.with_profile(&profile);
    let args = &resolved;
    let chip = profile.device.chip;
    let target = plan::espflash_chip(chip)?;
    let flash_settings = plan::flash_settings(&profile)?;
    let app = match (&args.elf, &args.image) {
        (Some(elf), _) => plan::app_from_elf(elf, &profile)?,
        (None, Some(image)) => plan::app_from_image(image, &profile)?,
        (None, None) => unreachable!("clap requires --elf or --image"),
    };
    report.app = Some(app.clone());
    let bootloader_file = match &args.bootloader {
        Some(path) => Some(plan::bootloader_from_file(path, chip)?),
        None => None,
    };
    let use_stub = !args.no_stub;
    // The bootloader's segment is replaced once it is known (the bundled one depends on the
    // crystal the device reports); the rest is compressed while the connection comes up.
    let placeholder = Bootloader {
        bytes: Vec::new(),
        file: None,
    };
    let mut segments = plan::segments(&profile, bootloader_file.as_ref().unwrap_or(&placeholder), &app)?;
    let others: Vec<Segment> = segments.iter().filter(|s| s.name != "bootloader").cloned().collect();
    let compressing =
        std::thread::spawn(move || others.iter().map(|s| Prepared::new(s, !use_stub)).collect::<Vec<_>>());

    let (port_name, from) = match &args.port {
        Some(p) => (p.clone(), "--port".to_owned()),
        None => {
            let wanted = port::Wanted {
                vid_pid: profile.bench.usb_vid.zip(profile.bench.usb_pid),
                serial: profile.bench.usb_serial.clone(),
            };
            let c = port::choose(&serialport::available_ports().unwrap_or_default(), &wanted)?;
            (c.port.clone(), format!("the only ESP32 USB bridge: {}", c.describe()))
        }
    };
    report.port = Some(port_name.clone());
    report.port_from = Some(from.clone());
    if args.port.is_none() {
        note(format!("port {port_name} ({from})"));
    }
    let opened = port::open(&port_name)?;
    check_lines(args, &port_name, &opened)?;

    let info = port::usb_info(std::path::Path::new(&port_name));
    let connection = Connection::new(
        opened.port,
        info,
        args.after().espflash(),
        args.before().espflash(),
        ROM_BAUD,
    );
    let expected = (args.before() == Before::NoResetNoSync).then_some(target);
    let mut flasher = Flasher::connect(connection, use_stub, !args.no_verify, false, expected, Some(args.baud))
        .map_err(|e| connect_error(&e, args, &port_name, opened.pty))?;
    report.connect_s = Some(started.elapsed().as_secs_f64());
    report.baud = flasher.connection().baud().ok();
    let found = flasher.chip();
    report.chip = Some(found.to_string());
    if found != target {
        return Err(FlashError::WrongChip {
            port: port_name,
            found: found.to_string(),
            expected: chip,
            profile: args.profile.display().to_string(),
        });
    }
    let device = flasher
        .device_info()
        .map_err(|e| write::link_error("reading the device's eFuses", &e))?;
    report.revision = device.revision.map(|(major, minor)| format!("v{major}.{minor}"));
    report.mac = device.mac_address.clone();
    report.crystal = Some(device.crystal_frequency.to_string());
    report.device_flash = Some(device.flash_size.to_string());
    note(format!(
        "connected to {found}{} on {port_name} at {} baud{}: {} flash, {} crystal{}",
        report.revision.as_deref().map_or(String::new(), |r| format!(" {r}")),
        report.baud.unwrap_or(args.baud),
        if use_stub { " (stub)" } else { " (ROM loader)" },
        device.flash_size,
        device.crystal_frequency,
        report.mac.as_deref().map_or(String::new(), |m| format!(", MAC {m}"))
    ));
    if device.flash_size.size() < profile.flash.size.bytes() {
        return Err(FlashError::FlashTooSmall {
            device: device.flash_size.to_string(),
            needs: format!(
                "{} (the profile's [flash] size; its last partition ends at {:#x})",
                profile.flash.size,
                plan::table_end(&profile)
            ),
        });
    }

    let bootloader = match bootloader_file {
        Some(b) => b,
        None => {
            let b = plan::bundled_bootloader(chip, device.crystal_frequency, flash_settings)?;
            note(format!(
                "note: writing espflash's bundled ESP-IDF bootloader for {chip}. It is built without \
                 CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: a new app that crashes before it confirms keeps \
                 booting instead of rolling back. Build the bootloader with app rollback and pass it with \
                 --bootloader (README: \"Activation, confirm, rollback\")."
            ));
            b
        }
    };
    report.bootloader = Some(bootloader.file.clone().unwrap_or_else(|| "bundled".into()));
    if let Some(seg) = segments.iter_mut().find(|s| s.name == "bootloader") {
        seg.data = bootloader.bytes.clone();
    }
    let boot = segments
        .iter()
        .find(|s| s.name == "bootloader")
        .map(|s| Prepared::new(s, !use_stub))
        .expect("the plan has a bootloader");
    let mut prepared = compressing.join().expect("the compressing thread panicked");
    prepared.push(boot);
    prepared.sort_by_key(|p| p.addr);

    let mut progress = Progress::new(&segments);
    if use_stub {
        let esp: Vec<EspSegment<'_>> = prepared.iter().map(|p| EspSegment::new(p.addr, &p.data)).collect();
        let result = flasher.write_bins_to_flash(&esp, &mut progress);
        report.written = progress.done(&prepared, false);
        if let Err(e) = result {
            return Err(match e {
                espflash::Error::VerifyFailed => {
                    let seg = progress.current_name();
                    let p = prepared.iter().find(|p| p.name == seg);
                    FlashError::VerifyFailed {
                        segment: seg.to_owned(),
                        addr: p.map_or(0, |p| p.addr),
                        expected: p.map_or_else(String::new, |p| crate::flash::hex(&p.md5)),
                        found: "different".into(),
                    }
                }
                e => write::link_error(&format!("writing {}", progress.current_name()), &e),
            });
        }
    } else {
        flasher
            .disable_watchdog()
            .map_err(|e| write::link_error("attaching the SPI flash", &e))?;
        for p in &prepared {
            let result = write::write_rom(flasher.connection(), target, p, !args.no_verify, &mut progress);
            report.written = progress.done(&prepared, true);
            result?;
        }
        flasher
            .connection()
            .reset_after(false, target)
            .map_err(|e| write::link_error("resetting the chip", &e))?;
    }
    report.verified = !args.no_verify;
    report.after = Some(name_of(args.after()));
    Ok(())
}

/// A reset through DTR/RTS needs the lines; a pseudo-terminal (the ROM emulator) and some
/// adapters have none, and a flash that cannot reset would either never connect or leave
/// a written chip in the loader without saying so.
fn check_lines(args: &FlashArgs, port: &str, opened: &port::Opened) -> Result<(), FlashError> {
    if opened.modem_lines {
        return Ok(());
    }
    let before = matches!(args.before(), Before::DefaultReset | Before::UsbReset);
    let after = args.after() == After::HardReset;
    if !before && !after {
        return Ok(());
    }
    let what = match (before, after) {
        (true, true) => format!(
            "reset the chip into download mode (--before {}) or into the app afterwards (--after {})",
            name_of(args.before()),
            name_of(args.after())
        ),
        (true, false) => format!(
            "reset the chip into download mode (--before {})",
            name_of(args.before())
        ),
        _ => format!(
            "reset the chip into the app afterwards (--after {})",
            name_of(args.after())
        ),
    };
    let help = if opened.pty {
        format!(
            "{port} is a pseudo-terminal: the ROM emulator (`otactl sim rom`) is always in download mode, so pass --before no-reset --after no-reset (with or without --no-stub)"
        )
    } else {
        "put the chip into download mode by hand (hold BOOT, press and release RESET, release BOOT) and pass --before no-reset --after no-reset; press RESET afterwards to start the app".to_owned()
    };
    Err(FlashError::NoModemLines {
        port: port.to_owned(),
        what,
        help,
    })
}

/// What a failed connection means, by what espflash saw.
fn connect_error(e: &espflash::Error, args: &FlashArgs, port: &str, pty: bool) -> FlashError {
    let text = chain(e);
    let lower = text.to_ascii_lowercase();
    let emulator = if pty {
        " For `otactl sim rom`, check that it is running on this link (its log says `ROM loader on …`) and pass --before no-reset --after no-reset."
    } else {
        ""
    };
    let wiring = "Check that the adapter's TX goes to the chip's RX and RX to TX, with GND shared, and that the cable carries data.";
    if lower.contains("failed to connect to the device") {
        let first = match args.before() {
            Before::NoReset => {
                "With --before no-reset the chip must already be in download mode: hold BOOT (GPIO0 on the ESP32, GPIO9 on the ESP32-C3/C6) while pressing RESET, then run again."
            }
            _ => {
                "The reset did not bring the chip into download mode: hold BOOT (GPIO0 on the ESP32, GPIO9 on the ESP32-C3/C6) while otactl connects, or put it in download mode by hand and pass --before no-reset."
            }
        };
        return FlashError::NoResponse {
            port: port.to_owned(),
            help: format!("{first} {wiring}{emulator}"),
        };
    }
    if lower.contains("wrong boot mode") {
        return FlashError::NoResponse {
            port: port.to_owned(),
            help: format!(
                "the chip booted normally instead of into its ROM loader ({text}): hold BOOT (GPIO0 on the ESP32, GPIO9 on the ESP32-C3/C6) while it resets; a board without an auto-reset circuit needs --before no-reset and BOOT+RESET by hand"
            ),
        };
    }
    if lower.contains("no sync reply") {
        return FlashError::NoResponse {
            port: port.to_owned(),
            help: format!(
                "the chip is in download mode (its boot message arrived) but does not hear otactl: the adapter's TX to the chip's RX is broken. {wiring}"
            ),
        };
    }
    if !args.no_stub && (lower.contains("stub") || lower.contains("timeout") || lower.contains("timed out")) {
        return FlashError::StubNotStarted { port: port.to_owned() };
    }
    FlashError::Link {
        phase: "connecting".into(),
        reason: text,
        help: e.help().map(|h| h.to_string()),
    }
}

/// espflash's progress callbacks as a bar per segment on a terminal, plain lines otherwise;
/// also the clock for each segment's time in the report.
struct Progress {
    names: Vec<(u32, &'static str, usize, bool)>,
    bars: bool,
    bar: Option<ProgressBar>,
    current: Option<(u32, Instant, bool)>,
    times: Vec<(u32, f64, bool)>,
}

impl Progress {
    fn new(segments: &[Segment]) -> Progress {
        Progress {
            names: segments
                .iter()
                .map(|s| (s.addr, s.name, s.data.len(), s.erased))
                .collect(),
            bars: std::io::stderr().is_terminal(),
            bar: None,
            current: None,
            times: Vec::new(),
        }
    }

    fn name_at(&self, addr: u32) -> (&'static str, usize) {
        self.names
            .iter()
            .find(|n| n.0 == addr)
            .map_or(("region", 0), |n| (n.1, n.2))
    }

    fn erased_at(&self, addr: u32) -> bool {
        self.names.iter().any(|n| n.0 == addr && n.3)
    }

    fn current_name(&self) -> &'static str {
        self.current.map_or("region", |(addr, ..)| self.name_at(addr).0)
    }

    /// The segments finished so far, in the order written.
    fn done(&self, prepared: &[Prepared], compressed: bool) -> Vec<Written> {
        self.times
            .iter()
            .filter_map(|&(addr, seconds, verified)| {
                let p = prepared.iter().find(|p| p.addr == addr)?;
                let (name, size) = self.name_at(addr);
                Some(Written {
                    name,
                    addr,
                    size,
                    sent: compressed.then_some(p.compressed.len()),
                    erased: self.erased_at(addr),
                    seconds,
                    verified,
                })
            })
            .collect()
    }
}

impl ProgressCallbacks for Progress {
    fn init(&mut self, addr: u32, total: usize) {
        let (name, size) = self.name_at(addr);
        self.current = Some((addr, Instant::now(), false));
        if self.bars {
            let bar = ProgressBar::new(total as u64).with_prefix(name).with_style(
                ProgressStyle::with_template("{prefix:>15} {msg:>10} [{bar:30}] {percent:>3}%")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{addr:#x}"));
            self.bar = Some(bar);
        } else {
            note(format!("writing {name} at {addr:#x} ({size} bytes)"));
        }
    }

    fn update(&mut self, current: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(current as u64);
        }
    }

    fn verifying(&mut self) {
        if let Some(c) = &mut self.current {
            c.2 = true;
        }
        if let Some(bar) = &self.bar {
            bar.set_message("verifying");
        }
    }

    fn finish(&mut self, _skipped: bool) {
        let Some((addr, since, verified)) = self.current else {
            return;
        };
        let seconds = since.elapsed().as_secs_f64();
        self.times.push((addr, seconds, verified));
        let (name, _) = self.name_at(addr);
        let how = if verified { "verified" } else { "written" };
        match self.bar.take() {
            Some(bar) => bar.finish_with_message(how),
            None => note(format!("  {name}: {how} in {seconds:.2} s")),
        }
    }
}

fn after_text(after: &str) -> &'static str {
    match after {
        "hard-reset" => "reset: the app starts from ota_0",
        "watchdog-reset" => "reset by the watchdog: the app starts from ota_0",
        _ => "left in the loader: reset the board to start the app from ota_0",
    }
}

fn print_summary(r: &Report) {
    let bytes: usize = r.written.iter().map(|w| w.size).sum();
    println!(
        "flashed {} on {} at {} baud: {} regions, {bytes} bytes in {:.2} s (connected in {:.2} s)",
        r.chip.as_deref().unwrap_or("?"),
        r.port.as_deref().unwrap_or("?"),
        r.baud.unwrap_or(0),
        r.written.len(),
        r.total_s,
        r.connect_s.unwrap_or(0.0)
    );
    for w in &r.written {
        let what = match (w.erased, w.sent) {
            (true, _) => "erased".to_owned(),
            (false, Some(sent)) => format!("{sent} sent compressed"),
            (false, None) => String::new(),
        };
        println!(
            "  {:#08x}  {:<15} {:>9} bytes  {:>6.2} s  {:<8}  {what}",
            w.addr,
            w.name,
            w.size,
            w.seconds,
            if w.verified { "verified" } else { "" }
        );
    }
    if let Some(app) = &r.app {
        println!(
            "app {} {} in ota_0 (sha256 {}), bootloader {}",
            app.project,
            app.version,
            app.sha256,
            r.bootloader.as_deref().unwrap_or("?")
        );
    }
    if let Some(after) = &r.after {
        println!("{}", after_text(after));
    }
}

fn to_json(args: &FlashArgs, r: &Report, error: Option<&FlashError>) -> Value {
    let mut out = json!({
        "ok": error.is_none(),
        "profile": args.profile.display().to_string(),
        "port": r.port,
        "port_from": r.port_from,
        "chip": r.chip,
        "revision": r.revision,
        "mac": r.mac,
        "crystal": r.crystal,
        "device_flash_size": r.device_flash,
        "baud": r.baud,
        "stub": r.stub,
        "before": name_of(args.before()),
        "after": name_of(args.after()),
        "bootloader": r.bootloader,
        "segments": r.written.iter().map(|w| json!({
            "name": w.name,
            "address": w.addr,
            "size": w.size,
            "sent": w.sent,
            "erased": w.erased,
            "seconds": w.seconds,
            "verified": w.verified,
        })).collect::<Vec<_>>(),
        "verified": error.is_none() && r.verified,
        "connect_s": r.connect_s,
        "total_s": r.total_s,
    });
    if let Some(app) = &r.app {
        out["app"] = json!({
            "project": app.project,
            "version": app.version,
            "secure_version": app.secure_version,
            "size": app.bytes.len(),
            "sha256": app.sha256,
        });
    }
    if let Some(e) = error {
        out["error"] = json!(e.to_string());
        out["help"] = json!(e.help().map(|h| h.to_string()));
        out["exit_code"] = json!(e.exit_code());
    }
    out
}
