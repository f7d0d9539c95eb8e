//! Outcome reports as bucket objects: where `otactl serve` stores each one it accepts, and
//! how `otactl rollout` reads them back.
//!
//! ```text
//! reports/<product>/<channel>/<version>/<device>.<attempt>.json
//! ```
//!
//! One object per device and attempt, written only if absent, so a retried or replayed
//! report changes nothing and one device never counts twice for one attempt. The body is
//! the report as [`Report`] serialises it (what [`Report::parse`] accepted, re-encoded), so
//! every stored object is a well-formed report. A version's reports are one flat folder:
//! one listing request per 1,000 reports, whatever the store.
//!
//! Device ids are not public (they are a stable identity of a unit in the field), so the
//! reports must not be readable where the bucket is served: `otactl serve` refuses any GET
//! under `reports/`, and a cloud bucket served to devices should keep them in another
//! bucket or a prefix without public read (`--reports`).
//!
//! Reading does not trust the objects either: each is parsed again, and one whose place
//! does not match its content (another device, attempt or version than its key says) is
//! skipped, so a hand-written object cannot count for a device it is not filed under.

use std::collections::BTreeMap;
use std::sync::Arc;

use device_fw::wire::report::{MAX_REPORT, Report};
use tokio::sync::Semaphore;

use crate::bucket::{Bucket, BucketError};
use crate::channel::check_name;

/// The folder of the reports, in the bucket that holds them.
pub const FOLDER: &str = "reports";
/// Reports read at once.
const READ_CONCURRENCY: usize = 16;

/// Where the report of `device`'s `attempt` about `product`/`channel`/`version` is kept.
pub fn key(product: &str, channel: &str, version: &str, device: &str, attempt: u32) -> String {
    format!("{FOLDER}/{product}/{channel}/{version}/{device}.{attempt}.json")
}

/// Why a report cannot be filed, though it parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("report field `{0}` starts with '.', which cannot name a folder or file")]
    Dotted(&'static str),
    #[error("report field `{field}` is not a name: {reason}")]
    Name { field: &'static str, reason: String },
}

/// The key of `report`, once each part is known to be a plain name (a report that parsed
/// has the characters, but `.`-led parts would be hidden files or `..`).
pub fn key_of(report: &Report<String>) -> Result<String, FileError> {
    for (field, value) in [("product", &report.product), ("channel", &report.channel)] {
        check_name(value).map_err(|reason| FileError::Name { field, reason })?;
    }
    for (field, value) in [("version", &report.version), ("device", &report.device)] {
        if value.starts_with('.') {
            return Err(FileError::Dotted(field));
        }
    }
    Ok(key(
        &report.product,
        &report.channel,
        &report.version,
        &report.device,
        report.attempt,
    ))
}

/// Whether a report was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// This device's report of this attempt was there already; nothing was written.
    Duplicate,
}

/// Stores `report` (already parsed) unless its device's report of that attempt is there.
pub async fn store(bucket: &Bucket, key: &str, report: &Report<String>) -> Result<Stored, BucketError> {
    // Serialising a parsed report cannot fail: plain strings and numbers.
    let body = serde_json::to_vec(report).unwrap_or_default();
    Ok(if bucket.put_if_absent(key, &body, "application/json").await? {
        Stored::Created
    } else {
        Stored::Duplicate
    })
}

/// The reports of one product and channel, by version.
#[derive(Debug, Default)]
pub struct Loaded {
    pub by_version: BTreeMap<String, Vec<Report<String>>>,
    /// Objects that were not counted, and why.
    pub skipped: Vec<(String, String)>,
}

impl Loaded {
    pub fn read(&self) -> usize {
        self.by_version.values().map(Vec::len).sum()
    }
}

/// Reads the reports about `product` on `channel`: of `version` only, or of every version.
pub async fn load(bucket: &Bucket, product: &str, channel: &str, version: Option<&str>) -> Result<Loaded, BucketError> {
    let base = format!("{FOLDER}/{product}/{channel}");
    let versions = match version {
        Some(v) => vec![v.to_owned()],
        None => bucket.list(&base).await?.folders,
    };
    let mut loaded = Loaded::default();
    let limit = Arc::new(Semaphore::new(READ_CONCURRENCY));
    for version in versions {
        let folder = format!("{base}/{version}");
        let listing = bucket.list(&folder).await?;
        let mut reads = tokio::task::JoinSet::new();
        for (name, size) in listing.objects {
            let rel = format!("{folder}/{name}");
            if size > MAX_REPORT as u64 {
                loaded
                    .skipped
                    .push((rel, format!("{size} bytes, more than a report may have")));
                continue;
            }
            let (bucket, limit) = (bucket.clone(), limit.clone());
            reads.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let read = bucket.read_small(&rel, MAX_REPORT as u64).await;
                (rel, name, read)
            });
        }
        let mut reports = Vec::new();
        while let Some(done) = reads.join_next().await {
            let Ok((rel, name, read)) = done else { continue };
            let Some(current) = read? else { continue };
            match check(&current.bytes, product, channel, &version, &name) {
                Ok(report) => reports.push(report),
                Err(why) => loaded.skipped.push((rel, why)),
            }
        }
        // Listing order, whatever order the reads finished in.
        reports.sort_by(|a, b| (&a.device, a.attempt).cmp(&(&b.device, b.attempt)));
        if !reports.is_empty() {
            loaded.by_version.insert(version, reports);
        }
    }
    loaded.skipped.sort();
    Ok(loaded)
}

/// Parses a stored report and checks that it is filed where it belongs.
fn check(bytes: &[u8], product: &str, channel: &str, version: &str, name: &str) -> Result<Report<String>, String> {
    let report = Report::parse(bytes).map_err(|e| e.to_string())?;
    let expected = key(
        &report.product,
        &report.channel,
        &report.version,
        &report.device,
        report.attempt,
    );
    let filed = format!("{FOLDER}/{product}/{channel}/{version}/{name}");
    if expected != filed {
        return Err(format!(
            "its content is a report for {expected}, not for where it is filed"
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use device_fw::wire::report::{Outcome, SCHEMA};

    use super::*;

    fn report(device: &str, attempt: u32) -> Report<String> {
        Report {
            schema: SCHEMA,
            device: device.into(),
            product: "field-logger".into(),
            channel: "stable".into(),
            version: "1.1.0".into(),
            running: "1.1.0".into(),
            outcome: Outcome::Confirmed,
            reason: None,
            attempt,
        }
    }

    #[test]
    fn keys_and_what_cannot_be_filed() {
        assert_eq!(
            key_of(&report("3fa2c01d9e7b4410", 3)).unwrap(),
            "reports/field-logger/stable/1.1.0/3fa2c01d9e7b4410.3.json"
        );
        assert_eq!(key_of(&report("..", 1)), Err(FileError::Dotted("device")));
        let dotted = Report {
            channel: "..".into(),
            ..report("d", 1)
        };
        assert!(key_of(&dotted).is_err());
    }

    #[test]
    fn a_report_filed_elsewhere_is_not_counted() {
        let body = serde_json::to_vec(&report("dev-1", 2)).unwrap();
        assert!(check(&body, "field-logger", "stable", "1.1.0", "dev-1.2.json").is_ok());
        for name in ["dev-2.2.json", "dev-1.3.json", "dev-1.2.json.bak"] {
            assert!(check(&body, "field-logger", "stable", "1.1.0", name).is_err(), "{name}");
        }
        assert!(check(&body, "field-logger", "stable", "1.2.0", "dev-1.2.json").is_err());
        assert!(check(b"{}", "field-logger", "stable", "1.1.0", "dev-1.2.json").is_err());
    }
}
