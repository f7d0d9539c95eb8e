//! The device console: commands in, events out, over the USB-serial line a person or
//! `otactl watch` reads.
//!
//! - **Commands** are short text lines: `ota update [<manifest URL>]`, `ota check [<manifest
//!   URL>]`, `ota status`, `ota confirm`, `reboot`, `version`, `help`. Anything else gets one
//!   [`Event::CommandError`] line, never a crash.
//! - **Events** are single lines `@ota {json}`: the fixed [`EVENT_PREFIX`], then one JSON
//!   object whose `ev` field names the event. A person can read them; a program finds them
//!   among ordinary log lines, which pass through untouched.
//!
//! [`Event`] is generic over its string type so that one definition serves both sides: the
//! device builds `Event<&str>` and writes it without a heap; the host parses `Event<String>`.

mod command;

#[cfg(feature = "std")]
use serde::Deserialize;
use serde::Serialize;

pub use self::command::{Command, CommandError, DEFAULT_DEFER_MINUTES, HELP};
use super::json_out::JsonOut;

/// Marks an event line.
pub const EVENT_PREFIX: &str = "@ota ";
/// Longest command line the device accepts (without the line ending).
pub const MAX_COMMAND_LINE: usize = 256;
/// Longest event line the device writes, prefix and line ending included.
pub const MAX_EVENT_LINE: usize = 512;

/// One thing that happened on the device.
// Deserialising an internally tagged enum needs serde's `alloc`: only the host parses events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "std", derive(Deserialize))]
#[serde(tag = "ev", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event<S> {
    /// The app started: what runs, from which slot, in which otadata state.
    Boot {
        version: S,
        slot: S,
        state: S,
    },
    /// The modem answered and joined the packet network.
    /// `baud`: the UART rate the link runs at (0 in lines of earlier firmware).
    ModemUp {
        model: S,
        rssi: u8,
        operator: S,
        #[cfg_attr(feature = "std", serde(default))]
        baud: u32,
    },
    ModemFailed {
        message: S,
    },
    ManifestFetched {
        url: S,
        bytes: u32,
    },
    /// Signature good (trusted key number `key`) and the release is for this device.
    ManifestVerified {
        version: S,
        size: u32,
        key: u8,
    },
    /// The manifest or the release it describes was refused; `reason` is a stable code.
    ManifestRejected {
        reason: S,
        message: S,
    },
    /// A journaled download of this image is carried on from `offset`.
    Resuming {
        offset: u32,
    },
    Progress {
        offset: u64,
        total: u64,
        rate: u32,
        chunk: u32,
    },
    /// The connection died at `offset`. `quiet_ms`: it had carried no request for this long
    /// (so this network's NAT forgets an idle mapping within that time), `null` when the
    /// loss was of another kind. `nat_idle_ms`: the idle time the next chunks are sized for.
    /// The host reads a line without them (earlier firmware) as `null` and 0.
    ConnectionDropped {
        offset: u64,
        error: S,
        #[cfg_attr(feature = "std", serde(default))]
        quiet_ms: Option<u64>,
        #[cfg_attr(feature = "std", serde(default))]
        nat_idle_ms: u64,
    },
    Resumed {
        offset: u64,
    },
    /// Hash, image structure and app version of the written image are right.
    VerifyOk {
        version: S,
    },
    VerifyFailed {
        reason: S,
        message: S,
    },
    /// The next boot starts the new image.
    Activated {
        slot: S,
        version: S,
    },
    Rebooting {
        reason: S,
    },
    /// The updated app passed its self-test and marked itself valid.
    Confirmed {
        version: S,
    },
    /// The updated app failed its self-test and marked itself invalid.
    SelfTestFailed {
        message: S,
    },
    /// A version that never confirmed itself was rolled back from.
    RolledBack {
        failed_version: S,
    },
    /// An update stopped for a reason other than the release itself (network, flash).
    UpdateFailed {
        reason: S,
        message: S,
    },
    UpToDate {
        version: S,
    },
    Status {
        version: S,
        slot: S,
        state: S,
        failed_version: Option<S>,
        /// Bytes of an interrupted download the journal holds.
        resume_offset: Option<u32>,
    },
    /// `ota check`: what the channel offers and whether this device would take it.
    Check {
        running: S,
        available: S,
        update: bool,
        reason: Option<S>,
    },
    Version {
        version: S,
        project: S,
        chip: S,
    },
    /// A command line that is not a command.
    CommandError {
        message: S,
    },
    Help {
        commands: S,
    },
    /// When the device checks its channel next by itself (after boot and after each check).
    NextCheck {
        in_s: u64,
    },
    /// A scheduled check found the manifest as it was (`304 Not Modified`).
    ManifestUnchanged {
        url: S,
    },
    /// A release the device would take waits: `reason` is `backoff` (after failed
    /// attempts), `daily-limit` or `deferred` (the app said not now); `retry_in_s` when known.
    UpdateHeld {
        version: S,
        reason: S,
        retry_in_s: Option<u64>,
    },
    /// `ota defer`: scheduled updates wait this long (0: no longer deferred).
    Deferred {
        minutes: u32,
    },
    /// An outcome report went to the profile's `report_url` and was answered `status`.
    Reported {
        version: S,
        outcome: S,
        attempt: u32,
        status: u16,
    },
    /// An outcome report could not be delivered (it is not retried: reports are advice).
    ReportFailed {
        version: S,
        message: S,
    },
}

impl<S: AsRef<str>> Event<S> {
    /// Writes `@ota {json}\r\n` into `out`; returns the line's length.
    ///
    /// Written by hand rather than through serde so that the device carries no serialiser;
    /// the JSON is byte for byte what serde writes for this enum (a test holds every
    /// variant to it), which is what the host parses.
    pub fn write_line(&self, out: &mut [u8]) -> Result<usize, LineTooLong> {
        let mut w = JsonOut::new(out);
        w.raw(EVENT_PREFIX.as_bytes())?;
        w.raw(b"{\"ev\":\"")?;
        fn s<S: AsRef<str>>(v: &S) -> Option<&str> {
            Some(v.as_ref())
        }
        match self {
            Event::Boot { version, slot, state } => {
                w.tag("boot")?;
                w.text("version", s(version))?;
                w.text("slot", s(slot))?;
                w.text("state", s(state))?;
            }
            Event::ModemUp {
                model,
                rssi,
                operator,
                baud,
            } => {
                w.tag("modem_up")?;
                w.text("model", s(model))?;
                w.number("rssi", Some(u64::from(*rssi)))?;
                w.text("operator", s(operator))?;
                w.number("baud", Some(u64::from(*baud)))?;
            }
            Event::ModemFailed { message } => {
                w.tag("modem_failed")?;
                w.text("message", s(message))?;
            }
            Event::ManifestFetched { url, bytes } => {
                w.tag("manifest_fetched")?;
                w.text("url", s(url))?;
                w.number("bytes", Some(u64::from(*bytes)))?;
            }
            Event::ManifestVerified { version, size, key } => {
                w.tag("manifest_verified")?;
                w.text("version", s(version))?;
                w.number("size", Some(u64::from(*size)))?;
                w.number("key", Some(u64::from(*key)))?;
            }
            Event::ManifestRejected { reason, message } => {
                w.tag("manifest_rejected")?;
                w.text("reason", s(reason))?;
                w.text("message", s(message))?;
            }
            Event::Resuming { offset } => {
                w.tag("resuming")?;
                w.number("offset", Some(u64::from(*offset)))?;
            }
            Event::Progress {
                offset,
                total,
                rate,
                chunk,
            } => {
                w.tag("progress")?;
                w.number("offset", Some(*offset))?;
                w.number("total", Some(*total))?;
                w.number("rate", Some(u64::from(*rate)))?;
                w.number("chunk", Some(u64::from(*chunk)))?;
            }
            Event::ConnectionDropped {
                offset,
                error,
                quiet_ms,
                nat_idle_ms,
            } => {
                w.tag("connection_dropped")?;
                w.number("offset", Some(*offset))?;
                w.text("error", s(error))?;
                w.number("quiet_ms", *quiet_ms)?;
                w.number("nat_idle_ms", Some(*nat_idle_ms))?;
            }
            Event::Resumed { offset } => {
                w.tag("resumed")?;
                w.number("offset", Some(*offset))?;
            }
            Event::VerifyOk { version } => {
                w.tag("verify_ok")?;
                w.text("version", s(version))?;
            }
            Event::VerifyFailed { reason, message } => {
                w.tag("verify_failed")?;
                w.text("reason", s(reason))?;
                w.text("message", s(message))?;
            }
            Event::Activated { slot, version } => {
                w.tag("activated")?;
                w.text("slot", s(slot))?;
                w.text("version", s(version))?;
            }
            Event::Rebooting { reason } => {
                w.tag("rebooting")?;
                w.text("reason", s(reason))?;
            }
            Event::Confirmed { version } => {
                w.tag("confirmed")?;
                w.text("version", s(version))?;
            }
            Event::SelfTestFailed { message } => {
                w.tag("self_test_failed")?;
                w.text("message", s(message))?;
            }
            Event::RolledBack { failed_version } => {
                w.tag("rolled_back")?;
                w.text("failed_version", s(failed_version))?;
            }
            Event::UpdateFailed { reason, message } => {
                w.tag("update_failed")?;
                w.text("reason", s(reason))?;
                w.text("message", s(message))?;
            }
            Event::UpToDate { version } => {
                w.tag("up_to_date")?;
                w.text("version", s(version))?;
            }
            Event::Status {
                version,
                slot,
                state,
                failed_version,
                resume_offset,
            } => {
                w.tag("status")?;
                w.text("version", s(version))?;
                w.text("slot", s(slot))?;
                w.text("state", s(state))?;
                w.text("failed_version", failed_version.as_ref().map(AsRef::as_ref))?;
                w.number("resume_offset", resume_offset.map(u64::from))?;
            }
            Event::Check {
                running,
                available,
                update,
                reason,
            } => {
                w.tag("check")?;
                w.text("running", s(running))?;
                w.text("available", s(available))?;
                w.boolean("update", *update)?;
                w.text("reason", reason.as_ref().map(AsRef::as_ref))?;
            }
            Event::Version { version, project, chip } => {
                w.tag("version")?;
                w.text("version", s(version))?;
                w.text("project", s(project))?;
                w.text("chip", s(chip))?;
            }
            Event::CommandError { message } => {
                w.tag("command_error")?;
                w.text("message", s(message))?;
            }
            Event::Help { commands } => {
                w.tag("help")?;
                w.text("commands", s(commands))?;
            }
            Event::NextCheck { in_s } => {
                w.tag("next_check")?;
                w.number("in_s", Some(*in_s))?;
            }
            Event::ManifestUnchanged { url } => {
                w.tag("manifest_unchanged")?;
                w.text("url", s(url))?;
            }
            Event::UpdateHeld {
                version,
                reason,
                retry_in_s,
            } => {
                w.tag("update_held")?;
                w.text("version", s(version))?;
                w.text("reason", s(reason))?;
                w.number("retry_in_s", *retry_in_s)?;
            }
            Event::Deferred { minutes } => {
                w.tag("deferred")?;
                w.number("minutes", Some(u64::from(*minutes)))?;
            }
            Event::Reported {
                version,
                outcome,
                attempt,
                status,
            } => {
                w.tag("reported")?;
                w.text("version", s(version))?;
                w.text("outcome", s(outcome))?;
                w.number("attempt", Some(u64::from(*attempt)))?;
                w.number("status", Some(u64::from(*status)))?;
            }
            Event::ReportFailed { version, message } => {
                w.tag("report_failed")?;
                w.text("version", s(version))?;
                w.text("message", s(message))?;
            }
        }
        w.raw(b"}\r\n")?;
        Ok(w.len())
    }
}

/// An event did not fit the line buffer (a bug: every event fits [`MAX_EVENT_LINE`] with
/// the string limits the device uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event does not fit one console line")]
pub struct LineTooLong;

/// Parses one console line on the host: `None` for an ordinary log line.
#[cfg(feature = "std")]
pub fn parse_event_line(line: &str) -> Option<Result<Event<std::string::String>, serde_json::Error>> {
    let line = line.trim_end_matches(['\r', '\n']);
    // Log lines may carry colour codes or a timestamp before the event.
    let at = line.find(EVENT_PREFIX)?;
    Some(serde_json::from_str(&line[at + EVENT_PREFIX.len()..]))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;

    #[test]
    #[cfg(feature = "std")]
    fn events_are_one_prefixed_json_line_the_host_parses_back() {
        let events: [Event<&str>; 6] = [
            Event::Boot {
                version: "1.0.0",
                slot: "ota_0",
                state: "valid",
            },
            Event::Progress {
                offset: 4096,
                total: 233_040,
                rate: 11_400,
                chunk: 65_536,
            },
            Event::ManifestRejected {
                reason: "bad-signature",
                message: "manifest \"signature\" does not verify",
            },
            Event::Status {
                version: "1.0.0",
                slot: "ota_0",
                state: "valid",
                failed_version: None,
                resume_offset: Some(8192),
            },
            Event::SelfTestFailed {
                message: "origin\nunreachable",
            },
            Event::CommandError {
                message: "unknown command",
            },
        ];
        for e in events {
            let mut buf = [0u8; MAX_EVENT_LINE];
            let n = e.write_line(&mut buf).unwrap();
            let line = core::str::from_utf8(&buf[..n]).unwrap();
            assert!(line.starts_with("@ota {\"ev\":"), "{line}");
            assert!(line.ends_with("}\r\n"));
            assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
            let back = parse_event_line(line).unwrap().unwrap();
            assert_eq!(std::format!("{back:?}"), std::format!("{e:?}"));
        }
        assert!(parse_event_line("I (312) boot: ESP-IDF v5.4").is_none());
        assert!(parse_event_line("\x1b[0;32m@ota {\"ev\":\"up_to_date\",\"version\":\"1\"}").is_some());
        assert!(parse_event_line("@ota {\"ev\":\"no_such_event\"}").unwrap().is_err());
    }

    /// Every variant, with strings that need escaping, written by hand and by serde_json:
    /// the same bytes. (`write_line`'s match is exhaustive, so a new variant cannot be
    /// forgotten there; add it here too.)
    #[test]
    #[cfg(feature = "std")]
    fn the_hand_written_json_is_what_serde_writes() {
        let odd = "q\"b\\s/n\nr\rt\tb\u{8}f\u{c}c\u{1}\u{1f}é€😀";
        let all: [Event<&str>; 33] = [
            Event::NextCheck { in_s: 21_600 },
            Event::ManifestUnchanged { url: odd },
            Event::UpdateHeld {
                version: "1.1.0",
                reason: "backoff",
                retry_in_s: Some(900),
            },
            Event::UpdateHeld {
                version: odd,
                reason: "deferred",
                retry_in_s: None,
            },
            Event::Deferred { minutes: 60 },
            Event::Reported {
                version: "1.1.0",
                outcome: "confirmed",
                attempt: u32::MAX,
                status: 202,
            },
            Event::ReportFailed {
                version: "1.1.0",
                message: odd,
            },
            Event::Boot {
                version: "1.0.0",
                slot: "ota_0",
                state: odd,
            },
            Event::ModemUp {
                model: "SIM7600E-H",
                rssi: 31,
                operator: odd,
                baud: 921_600,
            },
            Event::ModemFailed { message: odd },
            Event::ManifestFetched {
                url: "http://h/x.json",
                bytes: u32::MAX,
            },
            Event::ManifestVerified {
                version: "2.0.0",
                size: 0,
                key: 255,
            },
            Event::ManifestRejected {
                reason: "bad-signature",
                message: odd,
            },
            Event::Resuming { offset: 4096 },
            Event::Progress {
                offset: u64::MAX,
                total: 10,
                rate: 7,
                chunk: 1,
            },
            Event::ConnectionDropped {
                offset: 9,
                error: odd,
                quiet_ms: Some(61_250),
                nat_idle_ms: u64::MAX,
            },
            Event::ConnectionDropped {
                offset: 0,
                error: odd,
                quiet_ms: None,
                nat_idle_ms: 0,
            },
            Event::Resumed { offset: 0 },
            Event::VerifyOk { version: odd },
            Event::VerifyFailed {
                reason: "hash",
                message: odd,
            },
            Event::Activated {
                slot: "ota_1",
                version: odd,
            },
            Event::Rebooting { reason: odd },
            Event::Confirmed { version: odd },
            Event::SelfTestFailed { message: odd },
            Event::RolledBack { failed_version: odd },
            Event::UpdateFailed {
                reason: "flash",
                message: odd,
            },
            Event::UpToDate { version: odd },
            Event::Status {
                version: "1",
                slot: "s",
                state: "v",
                failed_version: Some(odd),
                resume_offset: Some(7),
            },
            Event::Status {
                version: "1",
                slot: "s",
                state: "v",
                failed_version: None,
                resume_offset: None,
            },
            Event::Check {
                running: "1",
                available: "2",
                update: true,
                reason: None,
            },
            Event::Check {
                running: "1",
                available: "2",
                update: false,
                reason: Some(odd),
            },
            Event::Version {
                version: "1",
                project: "device-fw",
                chip: "esp32c3",
            },
            Event::CommandError { message: odd },
        ];
        for e in all.iter().chain([Event::Help { commands: HELP }].iter()) {
            let mut buf = [0u8; MAX_EVENT_LINE];
            let n = e.write_line(&mut buf).unwrap();
            let want = std::format!("{EVENT_PREFIX}{}\r\n", serde_json::to_string(e).unwrap());
            assert_eq!(core::str::from_utf8(&buf[..n]).unwrap(), want);
        }
    }

    #[test]
    fn a_line_that_does_not_fit_is_an_error() {
        let long = "x".repeat(600);
        let e = Event::CommandError { message: long.as_str() };
        let mut buf = [0u8; MAX_EVENT_LINE];
        assert_eq!(e.write_line(&mut buf), Err(LineTooLong));
        let _ = ToString::to_string(&LineTooLong);
    }
}
