//! What a profile error says: the error type, and the schema knowledge its help text draws
//! on (the keys of each table, what each key takes, the closest known key to a typo).

use std::fmt;

use super::names::{ChipName, DialectName};
use super::tables::{
    BENCH_AFTER, BENCH_BEFORE, DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS, DEFAULT_CHANNEL, DEFAULT_CHUNK_MAX,
    DEFAULT_CHUNK_MIN, DEFAULT_HALT_MIN_REPORTS, DEFAULT_MAX_ATTEMPTS_PER_DAY, DEFAULT_MAX_FAILURE_RATE,
    DEFAULT_MIN_REPORTS, DEFAULT_NAT_IDLE_TIMEOUT_S, DEFAULT_RETRIES, DEFAULT_SAFETY_FACTOR, MAX_DEVICE_URL, MAX_GPIO,
    STANDARD_BAUDS,
};

/// What kind of problem a [`ProfileError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileErrorKind {
    /// The file could not be read.
    Read,
    /// The text is not valid TOML.
    Syntax,
    /// A key or table the schema does not have.
    UnknownKey,
    /// A value of the wrong TOML type (string where an integer belongs, …).
    WrongType,
    /// A value of the right type that is not allowed.
    BadValue,
    /// A required key is absent.
    MissingKey,
    /// Flash regions that are misaligned, overlap, or do not fit the flash.
    Layout,
}

/// A profile that cannot be used: where, which key, why, and what to do.
///
/// `Display` gives it all on one line: `file:line:column: reason; help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub(super) Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Details {
    pub(super) origin: String,
    pub(super) kind: ProfileErrorKind,
    pub(super) key: Option<String>,
    pub(super) line: Option<usize>,
    pub(super) column: Option<usize>,
    pub(super) reason: String,
    pub(super) help: String,
}

impl ProfileError {
    /// The file (or whatever `origin` was given to `Profile::parse`).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    pub fn kind(&self) -> ProfileErrorKind {
        self.0.kind
    }

    /// Dotted key path (`modem.baud`, `slots.ota_1`); `None` for read and syntax errors.
    pub fn key(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// 1-based line in the file, when the problem is at a place in it.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// 1-based column (in characters), with [`ProfileError::line`].
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// What is wrong, naming the key and the value.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    /// What to do about it.
    pub fn help(&self) -> &str {
        &self.0.help
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        f.write_str(&d.origin)?;
        if let (Some(line), Some(column)) = (d.line, d.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}; {}", d.reason, d.help)
    }
}

impl std::error::Error for ProfileError {}

/// Keys of each table, for "unknown key" help.
pub(super) fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "device", "modem", "network", "download", "flash", "slots", "release", "pins", "build", "bench", "update",
            "rollout",
        ],
        "device" => &["product", "chip", "board"],
        "release" => &[
            "channel",
            "device_url",
            "public_keys",
            "ca_certs",
            "bucket",
            "report_url",
        ],
        "update" => &[
            "check_every",
            "jitter",
            "retry_after",
            "retry_max",
            "max_attempts_per_day",
        ],
        "rollout" => &["min_reports", "max_failure_rate", "halt_min_reports"],
        "pins" => &[
            "modem_tx",
            "modem_rx",
            "modem_pwrkey",
            "modem_reset",
            "modem_rts",
            "modem_cts",
        ],
        "modem" => &["dialect", "baud", "fast_baud", "apn", "rts_cts"],
        "network" => &["nat_idle_timeout_s", "safety_factor"],
        "download" => &[
            "chunk_min",
            "chunk_max",
            "retries",
            "backoff_initial_ms",
            "backoff_max_ms",
        ],
        "flash" => &["size", "mode", "freq"],
        "build" => &["target", "package", "bin", "features"],
        "bench" => &["usb_vid", "usb_pid", "usb_serial", "before", "after"],
        "slots" => &["nvs", "otadata", "phy_init", "ota_0", "ota_1", "otastate"],
        t if t.starts_with("slots.") => &["offset", "size"],
        _ => &[],
    }
}

/// What a key takes, and how to write it.
pub(super) fn expectation(key: &str) -> (&'static str, String) {
    let bauds = STANDARD_BAUDS.map(|b| b.to_string()).join(", ");
    let span = |what: &str, default: &str| {
        format!("write a duration such as \"6h\", \"30m\" or \"90s\"; {what} (default \"{default}\")")
    };
    let (what, help): (&str, String) = match key {
        "device" | "modem" | "network" | "download" | "flash" | "slots" | "release" | "pins" | "build" | "bench" | "update" | "rollout" => ("a table", format!("write it as a [{key}] section")),
        "bench.usb_vid" | "bench.usb_pid" => ("a USB id", "write it in hex, e.g. usb_vid = 0x303a, usb_pid = 0x1001".into()),
        "bench.usb_serial" => ("a string", "the serial number `otactl flash` lists for the port".into()),
        "bench.before" => ("a reset mode", format!("use one of {}", BENCH_BEFORE.join(", "))),
        "bench.after" => ("a reset mode", format!("use one of {}", BENCH_AFTER.join(", "))),
        "flash.mode" => ("a flash mode", "use one of \"qio\", \"qout\", \"dio\", \"dout\" (default \"dio\")".into()),
        "flash.freq" => ("a flash frequency", "use one of \"20m\", \"26m\", \"40m\", \"80m\" (default \"40m\")".into()),
        "release.bucket" => ("a bucket URL", "use file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix".into()),
        k if k.starts_with("build.") => ("a string (features: a list of strings)", "e.g. target = \"riscv32imc-unknown-none-elf\", features = [\"esp32c3\"]".into()),
        "device.product" => ("a product name", "use 1 to 32 lowercase letters, digits, '-', '_' or '.', e.g. product = \"field-logger\"".into()),
        "release.channel" => ("a channel name", format!("use 1 to 32 lowercase letters, digits, '-', '_' or '.' (default \"{DEFAULT_CHANNEL}\")")),
        "release.device_url" => ("an http:// or https:// URL", format!("give the bucket's base URL as devices reach it, e.g. device_url = \"http://ota.example.com/fleet\", or https:// with release.ca_certs naming the server's CA (the modem does the TLS); the manifest URL it gives must stay within {MAX_DEVICE_URL} bytes")),
        "release.report_url" => ("an http:// URL", format!("give the URL devices POST outcome reports to, up to {MAX_DEVICE_URL} bytes, e.g. report_url = \"http://ota.example.com:8080/reports\" (`otactl serve` receives them), or leave it out for no reports")),
        "release.ca_certs" => ("a list of CA certificate files", "list the PEM files of the CAs that sign your bucket's HTTPS certificate, relative to the profile, e.g. ca_certs = [\"../keys/fleet-ca.pem\"]; needed for an https:// device_url; the modem does the TLS (sim7600: its AT+CCH* SSL client, sim7080: SSL on its AT+CA* connection) and stores the bundle as one file of at most 10240 bytes".into()),
        "release.public_keys" => ("a list of key files", format!("list 1 to {} SPKI PEM files made by `otactl keygen`, relative to the profile, e.g. public_keys = [\"../keys/otactl.pub\"]", super::tables::MAX_KEYS)),
        k if k.starts_with("pins.") => ("a GPIO number", format!("use 0 to {MAX_GPIO}, each pin once")),
        "device.chip" => ("a chip name", format!("use one of {}", ChipName::choices())),
        "device.board" => ("a board name", "use 1 to 32 lowercase letters, digits, '-', '_' or '.', e.g. board = \"m5stack-core\"".into()),
        "modem.dialect" => ("a modem dialect", format!("use {}", DialectName::choices())),
        "modem.baud" => ("an integer UART rate", format!("use one of {bauds}")),
        "modem.fast_baud" => ("an integer UART rate above modem.baud", format!("use one of {bauds} above modem.baud, or leave it out to stay at modem.baud")),
        "modem.apn" => ("a string", "use the APN your SIM provider gives, 1 to 63 printable ASCII characters without '\"', e.g. apn = \"internet\"".into()),
        "modem.rts_cts" => ("true or false", "set true only if RTS and CTS are wired between the chip and the modem".into()),
        "network.nat_idle_timeout_s" => ("an integer number of seconds", format!("use 2 to 7440; {DEFAULT_NAT_IDLE_TIMEOUT_S} if the carrier's NAT timeout is not known")),
        "network.safety_factor" => ("a number", format!("use 0.1 to 0.9 (default {DEFAULT_SAFETY_FACTOR})")),
        "download.chunk_min" => ("an integer number of bytes", format!("use 256 or more (default {DEFAULT_CHUNK_MIN})")),
        "download.chunk_max" => ("an integer number of bytes", format!("use chunk_min to 16777216 (default {DEFAULT_CHUNK_MAX})")),
        "download.retries" => ("an integer", format!("use 0 to 255 (default {DEFAULT_RETRIES})")),
        "download.backoff_initial_ms" => ("an integer number of milliseconds", format!("use 1 or more (default {DEFAULT_BACKOFF_INITIAL_MS})")),
        "download.backoff_max_ms" => ("an integer number of milliseconds", format!("use backoff_initial_ms or more (default {DEFAULT_BACKOFF_MAX_MS})")),
        "update.check_every" => ("a duration", span("\"0s\" turns scheduled checks off, else 10 s to 365 days", "6h")),
        "update.jitter" => ("a duration", span("0 up to update.check_every", "30m")),
        "update.retry_after" => ("a duration", span("1 s to 365 days", "15m")),
        "update.retry_max" => ("a duration", span("update.retry_after to 365 days", "24h")),
        "update.max_attempts_per_day" => ("an integer", format!("use 0 (no limit) to 255 (default {DEFAULT_MAX_ATTEMPTS_PER_DAY})")),
        "rollout.min_reports" => ("an integer number of reports", format!("use 0 or more (default {DEFAULT_MIN_REPORTS})")),
        "rollout.max_failure_rate" => ("a number", format!("use a share from 0 to 1, e.g. 0.05 for 5 % (default {DEFAULT_MAX_FAILURE_RATE})")),
        "rollout.halt_min_reports" => ("an integer number of reports", format!("use 0 or more (default {DEFAULT_HALT_MIN_REPORTS})")),
        "flash.size" => ("a flash size", "use one of \"2MB\", \"4MB\", \"8MB\", \"16MB\"".into()),
        k if k.starts_with("slots.") && (k.ends_with(".offset") || k.ends_with(".size")) => {
            ("an integer number of bytes", "write it in hex, e.g. offset = 0x10000, size = 0x1E0000".into())
        }
        k if k.starts_with("slots.") => ("a table", "write it as { offset = 0x…, size = 0x… }".into()),
        _ => ("a value", "see the schema in device-fw/src/profile/mod.rs".into()),
    };
    (what, help)
}

/// The closest known key, if one is close enough to be a typo.
pub(super) fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .copied()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
