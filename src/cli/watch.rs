//! `otactl watch`: a bench device's console, an optional OTA trigger, and the outcome as an
//! exit code.
//!
//! The serial port is read on its own thread and handed over as bytes, so a device that
//! resets (and a USB-Serial-JTAG port that vanishes with it) is just "the reader stopped":
//! the main loop reopens the port by path, or by USB serial number if the path changed.

use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Args;
use device_fw::wire::console::{Command, Event, parse_event_line};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::watch::{Outcome, Phase, WatchSpec, Watcher};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Serial port of the device console (e.g. /dev/ttyACM0, or a symlink to one).
    #[arg(long)]
    pub port: PathBuf,
    /// Console baud rate (USB-Serial-JTAG consoles ignore it).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Send `ota update` once the console is open.
    #[arg(long)]
    pub trigger: bool,
    /// Manifest URL for the triggered update (default: the one the firmware was built with).
    #[arg(long, requires = "trigger")]
    pub manifest: Option<String>,
    /// Succeed only when the device confirms this version. Without --trigger, the watch
    /// follows a device that updates on its own schedule: checks that find nothing, holds
    /// and failed tries it will retry by itself do not end it.
    #[arg(long)]
    pub expect_version: Option<String>,
    /// Give up after this long (e.g. 90s, 10m).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How long a port that vanished (the device reset) may stay away.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub reopen_wait: Duration,
    /// One JSON object per event on stdout, and a final result object.
    #[arg(long)]
    pub json: bool,
    /// Keep the whole raw console in this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

enum FromPort {
    Bytes(Vec<u8>),
    Lost(String),
}

/// An open console: its reader thread's channel and a handle to write commands.
struct Link {
    rx: Receiver<FromPort>,
    writer: Box<dyn serialport::SerialPort>,
}

fn open(path: &Path, baud: u32) -> Result<Link, String> {
    let port = serialport::new(path.to_string_lossy(), baud)
        .timeout(Duration::from_millis(100))
        .open()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut reader = port
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", path.display()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    if tx.send(FromPort::Bytes(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(FromPort::Lost(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(Link { rx, writer: port })
}

/// The USB serial number behind a port path, to find the port again if it comes back
/// under another name.
fn usb_serial_of(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    serialport::available_ports().ok()?.into_iter().find_map(|p| {
        let same = std::fs::canonicalize(&p.port_name).ok()? == real;
        match p.port_type {
            serialport::SerialPortType::UsbPort(info) if same => info.serial_number,
            _ => None,
        }
    })
}

fn find_by_serial(serial: &str) -> Option<PathBuf> {
    serialport::available_ports()
        .ok()?
        .into_iter()
        .find_map(|p| match p.port_type {
            serialport::SerialPortType::UsbPort(info) if info.serial_number.as_deref() == Some(serial) => {
                Some(PathBuf::from(p.port_name))
            }
            _ => None,
        })
}

/// What esp-backtrace prints on a panic of firmware built without frame pointers (as
/// otactl-fw is): the PC, then the stack from SP as hex, thousands of characters on one line.
const STACK_DUMP: &str = "STACKDUMP: ";

/// One line about a stack dump, instead of the dump itself on the terminal.
fn stack_dump_note(dump: &str, log: Option<&Path>) -> String {
    let (pc, stack) = dump.split_once(' ').unwrap_or((dump, ""));
    let bytes = stack.trim().len() / 2;
    let kept = match log {
        Some(path) => format!("the whole line is in {}", path.display()),
        None => "add --log FILE to keep it".to_string(),
    };
    format!(
        "the device panicked (pc 0x{pc}) and printed a {bytes}-byte stack dump; {kept}. \
         `espflash monitor --elf <the firmware ELF>` on the port unwinds such dumps into a backtrace"
    )
}

/// Share of a line that is not text: high on a console read at the wrong baud.
fn garbled(line: &str) -> bool {
    let total = line.chars().count();
    let bad = line
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER || (c.is_control() && c != '\t' && c != '\x1b'))
        .count();
    total >= 8 && bad * 10 > total * 3
}

/// How events and log lines reach the person or the program watching.
struct Display {
    json: bool,
    show: Show,
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Display {
    fn new(json: bool, show: Show) -> Self {
        let bar = (!json && show != Show::Nothing && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Display {
            json,
            show,
            bar,
            start: Instant::now(),
        }
    }

    fn t(&self) -> f64 {
        (self.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }

    /// A device log line (not in JSON mode: the raw console goes to --log).
    fn log(&self, line: &str) {
        if self.json || self.show != Show::All {
            return;
        }
        self.print(line);
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// A note from watch itself.
    fn note(&self, kind: &str, message: &str) {
        if self.show == Show::Nothing {
            return;
        }
        if self.json {
            println!("{}", json!({ "t": self.t(), "watch": kind, "message": message }));
        } else {
            match &self.bar {
                Some(bar) => bar.println(format!("otactl: {message}")),
                None => eprintln!("otactl: {message}"),
            }
        }
    }

    fn event(&self, event: &Event<String>, watcher: &Watcher) {
        if self.show == Show::Nothing {
            return;
        }
        if self.json {
            println!("{}", json!({ "t": self.t(), "event": event }));
            return;
        }
        if let Some(text) = describe(event) {
            self.print(&text);
        }
        let Some(bar) = &self.bar else { return };
        match (watcher.phase, watcher.progress) {
            (Phase::Downloading, Some((offset, total))) if total > 0 => {
                if bar.length() != Some(total) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_length(total);
                }
                bar.set_position(offset);
                bar.set_message(format!(
                    "downloading ({} drops, {} resumes)",
                    watcher.drops, watcher.resumes
                ));
            }
            (phase, _) => {
                if phase != Phase::Downloading {
                    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
                }
                bar.set_message(phase.as_str());
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One readable line per event, for people.
fn describe(event: &Event<String>) -> Option<String> {
    Some(match event {
        Event::Boot { version, slot, state } => format!("● booted {version} from {slot} ({state})"),
        Event::ModemUp {
            model,
            rssi,
            operator,
            baud: 0,
        } => format!("● modem {model} up, signal {rssi}/31, {operator}"),
        Event::ModemUp {
            model,
            rssi,
            operator,
            baud,
        } => format!("● modem {model} up at {baud} baud, signal {rssi}/31, {operator}"),
        Event::ModemFailed { message } => format!("✗ modem: {message}"),
        Event::ManifestVerified { version, size, key } => {
            format!("✓ manifest verified: {version}, {size} bytes, key {key}")
        }
        Event::ManifestRejected { reason, message } => format!("✗ release rejected ({reason}): {message}"),
        Event::Resuming { offset } => format!("● resuming the download at byte {offset}"),
        Event::ConnectionDropped {
            offset,
            error,
            quiet_ms,
            nat_idle_ms,
        } => match quiet_ms {
            Some(quiet) => format!(
                "● connection dropped at byte {offset} after {:.1} s without a request: {error}; chunks now sized for a {:.1} s NAT",
                *quiet as f64 / 1000.0,
                *nat_idle_ms as f64 / 1000.0
            ),
            None => format!("● connection dropped at byte {offset}: {error}"),
        },
        Event::Resumed { offset } => format!("● resumed at byte {offset}"),
        Event::VerifyOk { version } => format!("✓ image verified: {version}"),
        Event::VerifyFailed { reason, message } => format!("✗ image rejected ({reason}): {message}"),
        Event::Activated { slot, version } => format!("✓ {version} activated in {slot}"),
        Event::Rebooting { reason } => format!("● rebooting: {reason}"),
        Event::Confirmed { version } => format!("✓ {version} confirmed"),
        Event::SelfTestFailed { message } => format!("✗ self-test failed: {message}"),
        Event::RolledBack { failed_version } => format!("✗ rolled back from {failed_version}"),
        Event::UpdateFailed { reason, message } => format!("✗ update failed ({reason}): {message}"),
        Event::UpToDate { version } => format!("✓ up to date: {version}"),
        Event::CommandError { message } => format!("✗ device: {message}"),
        Event::NextCheck { in_s } => format!(
            "● next scheduled check in {}",
            humantime::format_duration(Duration::from_secs(*in_s))
        ),
        Event::ManifestUnchanged { .. } => "● manifest unchanged since the last check (304)".to_owned(),
        Event::Check {
            available,
            update: false,
            reason: Some(reason),
            ..
        } => format!("● {available} is not for this device now ({reason})"),
        Event::UpdateHeld {
            version,
            reason,
            retry_in_s,
        } => match retry_in_s {
            Some(s) => format!(
                "● {version} waits ({reason}), again in {}",
                humantime::format_duration(Duration::from_secs(*s))
            ),
            None => format!("● {version} waits ({reason})"),
        },
        Event::Deferred { minutes: 0 } => "● scheduled updates no longer deferred".to_owned(),
        Event::Deferred { minutes } => format!("● scheduled updates deferred for {minutes} min"),
        Event::Reported {
            version,
            outcome,
            attempt,
            status,
        } => format!("● reported {outcome} for {version} (attempt {attempt}, HTTP {status})"),
        Event::ReportFailed { version, message } => format!("● the report for {version} was not delivered: {message}"),
        _ => return None,
    })
}

/// What [`follow`] shows while it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Device log lines and events, as `otactl watch` does.
    All,
    /// Events only: the raw console is in the log file.
    Events,
    Nothing,
}

/// Follows the device at `args.port` to an outcome; for callers that report the result
/// themselves.
pub fn follow(args: &WatchArgs, show: Show) -> (Outcome, Watcher) {
    let display = Display::new(args.json, show);
    let mut watcher = Watcher::new(WatchSpec {
        triggered: args.trigger,
        expect_version: args.expect_version.clone(),
    });
    let outcome = watch(args, &display, &mut watcher);
    display.finish();
    (outcome, watcher)
}

pub fn run(args: WatchArgs) -> ExitCode {
    let started = Instant::now();
    let (outcome, watcher) = follow(&args, Show::All);
    let code = outcome.exit_code();
    let wall_s = started.elapsed().as_secs_f64();
    if args.json {
        let mut result = serde_json::to_value(&outcome).unwrap_or_default();
        if let Some(obj) = result.as_object_mut() {
            obj.insert("exit_code".into(), code.into());
            obj.insert("from".into(), json!(watcher.from));
            obj.insert("to".into(), json!(watcher.activated));
            obj.insert("drops".into(), watcher.drops.into());
            obj.insert("resumes".into(), watcher.resumes.into());
            obj.insert("shortest_quiet_drop_ms".into(), json!(watcher.shortest_quiet_drop_ms));
            obj.insert("nat_idle_ms".into(), json!(watcher.nat_idle_ms));
            obj.insert("wall_s".into(), json!((wall_s * 1000.0).round() / 1000.0));
        }
        println!("{}", json!({ "result": result }));
    } else {
        let line = match &outcome {
            Outcome::Confirmed { version } => format!("✓ device runs {version}, confirmed ({wall_s:.1} s)"),
            Outcome::UpToDate { version } => format!("✓ device is up to date at {version}"),
            Outcome::RolledBack { failed_version } => {
                format!("✗ {failed_version} did not confirm itself; the device rolled back")
            }
            Outcome::Rejected { reason, message } => format!("✗ rejected ({reason}): {message}"),
            Outcome::DownloadFailed { reason, message } => format!("✗ update failed ({reason}): {message}"),
            Outcome::TlsRefused { reason, message } => {
                format!(
                    "✗ TLS refused ({reason}): {message}; the device's CA certificates do not vouch for this server"
                )
            }
            Outcome::Timeout { phase } => {
                format!(
                    "✗ no outcome within {} (last phase: {phase})",
                    humantime::format_duration(args.timeout)
                )
            }
            Outcome::PortError { message } => format!("✗ {message}"),
        };
        if outcome.is_success() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    ExitCode::from(code)
}

fn watch(args: &WatchArgs, display: &Display, watcher: &mut Watcher) -> Outcome {
    let deadline = Instant::now() + args.timeout;
    let mut log = match &args.log {
        Some(path) => match File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                return Outcome::PortError {
                    message: format!("cannot write the log {}: {e}", path.display()),
                };
            }
        },
        None => None,
    };
    let mut link = match open(&args.port, args.baud) {
        Ok(link) => link,
        Err(message) => return Outcome::PortError { message },
    };
    let serial = usb_serial_of(&args.port);
    if args.trigger {
        let command = Command::Update {
            manifest_url: args.manifest.as_deref(),
        };
        if let Err(e) = link.writer.write_all(format!("{command}\r\n").as_bytes()) {
            return Outcome::PortError {
                message: format!("cannot send `{command}` to {}: {e}", args.port.display()),
            };
        }
        display.note("triggered", &format!("sent `{command}`"));
    }

    let mut pending: Vec<u8> = Vec::new();
    let (mut clean, mut noisy, mut warned) = (0u32, 0u32, false);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Outcome::Timeout {
                phase: watcher.phase.as_str(),
            };
        }
        match link.rx.recv_timeout((deadline - now).min(Duration::from_millis(250))) {
            Ok(FromPort::Bytes(bytes)) => {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&bytes);
                }
                pending.extend_from_slice(&bytes);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let raw: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&raw);
                    let line = line.trim_end_matches(['\r', '\n']);
                    if garbled(line) {
                        noisy += 1;
                    } else if !line.is_empty() {
                        clean += 1;
                    }
                    if !warned && noisy >= 3 && noisy > clean {
                        warned = true;
                        display.note(
                            "noise",
                            &format!(
                                "the console looks garbled: is --baud {} right? (UART consoles usually run at 115200)",
                                args.baud
                            ),
                        );
                    }
                    if let Some(dump) = line.trim_start().strip_prefix(STACK_DUMP) {
                        display.note("stack_dump", &stack_dump_note(dump, args.log.as_deref()));
                        continue;
                    }
                    match parse_event_line(line) {
                        None => display.log(line),
                        Some(Ok(event)) => {
                            let outcome = watcher.on_event(&event);
                            display.event(&event, watcher);
                            if let Some(outcome) = outcome {
                                return outcome;
                            }
                        }
                        Some(Err(e)) => display.note("unparsed", &format!("event line not understood ({e}): {line}")),
                    }
                }
                // A line that never ends (noise without newlines) must not grow forever.
                if pending.len() > 64 * 1024 {
                    pending.clear();
                }
            }
            Ok(FromPort::Lost(reason)) => {
                display.note(
                    "port_lost",
                    &format!("{} went away ({reason}); waiting for it", args.port.display()),
                );
                match reopen(args, serial.as_deref(), deadline) {
                    Ok(l) => {
                        link = l;
                        pending.clear();
                        display.note("port_reopened", &format!("{} is back", args.port.display()));
                    }
                    Err(message) => return Outcome::PortError { message },
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Outcome::PortError {
                    message: "the port reader stopped".into(),
                };
            }
        }
    }
}

/// Waits (bounded) for the port to come back, by path or by USB serial number.
fn reopen(args: &WatchArgs, serial: Option<&str>, deadline: Instant) -> Result<Link, String> {
    let until = (Instant::now() + args.reopen_wait).min(deadline);
    let mut last = String::new();
    while Instant::now() < until {
        if args.port.exists() {
            match open(&args.port, args.baud) {
                Ok(link) => return Ok(link),
                Err(e) => last = e,
            }
        } else if let Some(path) = serial.and_then(find_by_serial)
            && let Ok(link) = open(&path, args.baud)
        {
            return Ok(link);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not come back within {}{}",
        args.port.display(),
        humantime::format_duration(args.reopen_wait),
        if last.is_empty() {
            String::new()
        } else {
            format!(" (last error: {last})")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_told_from_text() {
        assert!(!garbled("I (312) boot: ESP-IDF v5.4 2nd stage bootloader"));
        assert!(garbled("\u{fffd}\u{fffd}x\u{fffd}\u{1}\u{2}\u{fffd}\u{fffd}ab"));
        assert!(!garbled("\u{fffd}"));
    }
}
