//! Outcome reports: what a device says about each update attempt, with one small HTTP POST
//! to the profile's `report_url`.
//!
//! ```json
//! {"schema":1,"device":"3fa2c01d9e7b4410","product":"field-logger","channel":"stable",
//!  "version":"1.1.0","running":"1.1.0","outcome":"confirmed","reason":null,"attempt":3}
//! ```
//!
//! - `version`: the release the attempt was about; `running`: what the device runs now.
//! - `outcome`: `confirmed` (the release booted and passed its self-test), `rolled_back`
//!   (it booted and failed it, or never got that far: the old app runs again), `rejected`
//!   (the signed release or its image did not pass the device's checks: hash, structure,
//!   version) or `failed` (the attempt stopped for another reason: network, modem, flash).
//! - `reason`: the stable code the console event carries (`hash-mismatch`, …), `null` for
//!   `confirmed`.
//! - `attempt`: the device's attempt counter (kept in its journal), so a receiver keeps at
//!   most one report per device and attempt, whatever is retried or replayed.
//!
//! Reports are untrusted: they are not signed (a device holds no private key), so a receiver
//! bounds, validates and de-duplicates them, and they can only ever feed the rollout's halt
//! decision. Only the signed manifest makes a device install anything.

use serde::Serialize;

use super::console::LineTooLong;
use super::json_out::JsonOut;

/// The report schema this firmware writes.
pub const SCHEMA: u32 = 1;
/// Longest report body a device writes and a receiver accepts.
pub const MAX_REPORT: usize = 512;
/// `Content-Type` of a report.
pub const CONTENT_TYPE: &str = "application/vnd.otactl.report+json";

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "std", derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Confirmed,
    RolledBack,
    Rejected,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    /// Whether the outcome says something about the release itself (a bad network says
    /// nothing about it; a rollback or a rejected image does).
    pub fn judges_release(self) -> bool {
        !matches!(self, Outcome::Failed)
    }

    /// Whether the outcome counts against the release.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::RolledBack | Outcome::Rejected)
    }
}

/// One attempt's outcome. Generic over its string type like the console's events: the
/// device writes `Report<&str>` without a heap, the receiver parses `Report<String>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "std", derive(serde::Deserialize))]
#[cfg_attr(feature = "std", serde(deny_unknown_fields))]
pub struct Report<S> {
    pub schema: u32,
    pub device: S,
    pub product: S,
    pub channel: S,
    pub version: S,
    pub running: S,
    pub outcome: Outcome,
    pub reason: Option<S>,
    pub attempt: u32,
}

impl<S: AsRef<str>> Report<S> {
    /// Writes the JSON body into `out`; returns its length. Byte for byte what serde writes
    /// (a test holds it), so the device carries no serialiser.
    pub fn write_json(&self, out: &mut [u8]) -> Result<usize, LineTooLong> {
        let mut w = JsonOut::new(out);
        w.raw(b"{\"schema\":")?;
        w.unsigned(u64::from(self.schema))?;
        w.text("device", Some(self.device.as_ref()))?;
        w.text("product", Some(self.product.as_ref()))?;
        w.text("channel", Some(self.channel.as_ref()))?;
        w.text("version", Some(self.version.as_ref()))?;
        w.text("running", Some(self.running.as_ref()))?;
        w.text("outcome", Some(self.outcome.as_str()))?;
        w.text("reason", self.reason.as_ref().map(AsRef::as_ref))?;
        w.number("attempt", Some(u64::from(self.attempt)))?;
        w.raw(b"}")?;
        Ok(w.len())
    }
}

/// Why a receiver refuses a report body.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("report is {0} bytes, more than the {MAX_REPORT} a report may have")]
    TooLarge(usize),
    #[error("report is not a schema {SCHEMA} otactl report: {0}")]
    Shape(serde_json::Error),
    #[error("report schema {0} is not {SCHEMA}")]
    Schema(u32),
    #[error("report field `{0}` is empty, too long or has characters it may not have")]
    Field(&'static str),
    #[error("report outcome `confirmed` carries a reason, or another outcome carries none")]
    Reason,
}

#[cfg(feature = "std")]
impl Report<std::string::String> {
    /// Parses and checks a report body as a receiver must: size, shape, every field's form
    /// (the same limits a manifest has), so that what is stored is always well-formed.
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        use super::manifest::limits;
        if body.len() > MAX_REPORT {
            return Err(ReportError::TooLarge(body.len()));
        }
        let r: Self = serde_json::from_slice(body).map_err(ReportError::Shape)?;
        if r.schema != SCHEMA {
            return Err(ReportError::Schema(r.schema));
        }
        let name = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-');
        let version = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+');
        let check = |field, value: &str, max: usize, ok: fn(u8) -> bool| {
            if value.is_empty() || value.len() > max || !value.bytes().all(ok) {
                Err(ReportError::Field(field))
            } else {
                Ok(())
            }
        };
        if !super::rollout::device_id_ok(&r.device) {
            return Err(ReportError::Field("device"));
        }
        check("product", &r.product, limits::PRODUCT, name)?;
        check("channel", &r.channel, limits::CHANNEL, name)?;
        check("version", &r.version, limits::VERSION, version)?;
        check("running", &r.running, limits::VERSION, version)?;
        super::semver::Version::parse(&r.version).map_err(|_| ReportError::Field("version"))?;
        match (&r.reason, r.outcome) {
            (None, Outcome::Confirmed) => {}
            (Some(reason), o) if o != Outcome::Confirmed => check("reason", reason, 48, name)?,
            _ => return Err(ReportError::Reason),
        }
        Ok(r)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn sample(outcome: Outcome, reason: Option<&'static str>) -> Report<&'static str> {
        Report {
            schema: SCHEMA,
            device: "3fa2c01d9e7b4410",
            product: "field-logger",
            channel: "stable",
            version: "1.1.0",
            running: "1.0.0",
            outcome,
            reason,
            attempt: 4_000_000_000,
        }
    }

    #[test]
    fn the_hand_written_json_is_what_serde_writes_and_the_receiver_reads() {
        for (o, reason) in [
            (Outcome::Confirmed, None),
            (Outcome::RolledBack, Some("self-test-failed")),
            (Outcome::Rejected, Some("hash-mismatch")),
            (Outcome::Failed, Some("download-gave-up")),
        ] {
            let r = sample(o, reason);
            let mut buf = [0u8; MAX_REPORT];
            let n = r.write_json(&mut buf).unwrap();
            assert_eq!(
                core::str::from_utf8(&buf[..n]).unwrap(),
                serde_json::to_string(&r).unwrap()
            );
            let back = Report::parse(&buf[..n]).unwrap();
            assert_eq!(back.outcome, o);
            assert_eq!(back.reason.as_deref(), reason);
            assert_eq!(back.attempt, 4_000_000_000);
        }
        assert_eq!(
            sample(Outcome::Confirmed, None).write_json(&mut [0u8; 40]),
            Err(LineTooLong)
        );
    }

    #[test]
    fn the_receiver_refuses_what_is_not_a_report() {
        let good = serde_json::to_string(&sample(Outcome::Failed, Some("x"))).unwrap();
        let cases = [
            good.replace("3fa2c01d9e7b4410", "../../etc"),
            good.replace("\"stable\"", "\"Stable\""),
            good.replace("\"1.1.0\"", "\"1.1\""),
            good.replace("\"failed\"", "\"exploded\""),
            good.replace("\"schema\":1", "\"schema\":2"),
            good.replace("\"reason\":\"x\"", "\"reason\":null"),
            good.replace("\"attempt\":4000000000", "\"attempt\":-1"),
            good.replace("}", ",\"extra\":1}"),
            good.replace(
                "\"outcome\":\"failed\",\"reason\":\"x\"",
                "\"outcome\":\"confirmed\",\"reason\":\"x\"",
            ),
            format!("{good}{}", " ".repeat(MAX_REPORT)),
            "[]".into(),
        ];
        for body in cases {
            assert!(Report::parse(body.as_bytes()).is_err(), "{body}");
        }
        assert!(Report::parse(good.as_bytes()).is_ok());
    }
}
