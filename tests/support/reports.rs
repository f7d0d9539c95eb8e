//! Outcome reports as devices send them, and device ids that land in a given stage.

use std::fs;
use std::path::{Path, PathBuf};

use device_fw::fleet::Stage;
use device_fw::wire::report::{Outcome, Report, SCHEMA};
use device_fw::wire::rollout::cohort_bucket;

pub const PRODUCT: &str = "field-logger";

/// A report of `device`'s `attempt` at `version` on `stable`.
pub fn report(device: &str, version: &str, outcome: Outcome, attempt: u32) -> Report<String> {
    let reason = match outcome {
        Outcome::Confirmed => None,
        Outcome::RolledBack => Some("self-test-failed".to_owned()),
        Outcome::Rejected => Some("hash-mismatch".to_owned()),
        Outcome::Failed => Some("download-gave-up".to_owned()),
    };
    Report {
        schema: SCHEMA,
        device: device.to_owned(),
        product: PRODUCT.to_owned(),
        channel: "stable".to_owned(),
        version: version.to_owned(),
        running: if outcome == Outcome::Confirmed {
            version
        } else {
            "1.0.0"
        }
        .to_owned(),
        outcome,
        reason,
        attempt,
    }
}

pub fn body(r: &Report<String>) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

/// `n` device ids whose cohort bucket is in `from..to` percent of the fleet, starting the
/// search at `tag` so that two calls can ask for different devices.
pub fn ids_in(from: u8, to: u8, n: usize, tag: &str) -> Vec<String> {
    let stage = Stage {
        from_percent: from,
        to_percent: to,
    };
    (0u32..)
        .map(|i| format!("{tag}-{i:05}"))
        .filter(|id| stage.contains_bucket(cohort_bucket(PRODUCT, id)))
        .take(n)
        .collect()
}

/// Where `otactl serve` files a report in the bucket at `root`.
pub fn path(root: &Path, r: &Report<String>) -> PathBuf {
    root.join(format!(
        "reports/{}/{}/{}/{}.{}.json",
        r.product, r.channel, r.version, r.device, r.attempt
    ))
}

/// Files a report into the bucket at `root` as `otactl serve` does.
pub fn file(root: &Path, r: &Report<String>) {
    let path = path(root, r);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body(r)).unwrap();
}
