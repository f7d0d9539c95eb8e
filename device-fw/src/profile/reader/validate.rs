//! The rules a profile's values must meet beyond their types: names the manifest compares,
//! URLs the device's HTTP client takes, rates the UART runs at, spans the schedule can work
//! with, and a flash layout the bootloader and the OTA core agree on.

use std::time::Duration;

use super::error::{ProfileError, ProfileErrorKind};
use super::locate::Doc;
use super::tables::{
    BENCH_AFTER, BENCH_BEFORE, MAX_DEVICE_URL, MAX_GPIO, MAX_KEYS, PARTITION_TABLE_OFFSET, Profile, STANDARD_BAUDS,
    Span,
};

const SECTOR: u32 = 0x1000;
const FIRST_REGION: u32 = PARTITION_TABLE_OFFSET + SECTOR;
const APP_ALIGN: u32 = 0x10000;
const OTADATA_SIZE: u32 = 0x2000;
/// Shortest `update.check_every` other than 0 (off).
pub const MIN_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Shortest `update.retry_after`.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest span of `[update]`: a year is more than any fleet waits, and keeps the
/// schedule's microsecond sums far from overflow.
pub const MAX_UPDATE_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Product, board and channel names go into manifests: the manifest's rules apply.
pub(super) fn manifest_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Why `url` is not an `http://` URL the device's HTTP client takes (`http::Url`: scheme,
/// host characters, port), or `None`. `query_ok`: a base URL, which paths are appended
/// to, cannot carry a query.
pub fn device_url_problem(url: &str, query_ok: bool) -> Option<&'static str> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Some(if url.contains("://") {
            "devices speak plain http:// through the modem's socket (the signature, not the transport, guards the content)"
        } else {
            "it does not start with http://"
        });
    };
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Some("it contains a space, a control character or non-ASCII; percent-encode it");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.contains('#') {
        return Some("a fragment (#…) is never sent to a server; leave it out");
    }
    if tail.starts_with('?') {
        return Some("a query needs a path before it; write http://host/?query");
    }
    if !query_ok && tail.contains('?') {
        return Some("a base URL cannot carry a query: the channel's path is appended to it");
    }
    if authority.contains('@') {
        return Some("credentials in the URL (user@host) are not supported");
    }
    if authority.starts_with('[') {
        return Some("IPv6 literal hosts are not supported; use a host name");
    }
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
    if host.is_empty() {
        return Some("it has no host");
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Some("the host contains a character other than letters, digits, '-', '.' and '_'");
    }
    let port_ok = port.is_empty()
        || (port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && (1..=65535).contains(&port.parse::<u32>().unwrap_or(0)));
    if !port_ok {
        return Some("the port is not a number in 1..=65535");
    }
    None
}

impl Profile {
    /// Every rule a value must meet beyond its TOML type, in the order a person reads the
    /// file; the first broken one is reported.
    pub(super) fn validate(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        for (key, name) in [
            ("device.product", &self.device.product),
            ("device.board", &self.device.board),
            ("release.channel", &self.release.channel),
        ] {
            if !manifest_name_ok(name) {
                return Err(doc.bad_value(key, format!("{key} = {name:?} is not a usable name")));
            }
        }
        self.validate_device_urls(doc)?;
        if let Some(bucket) = &self.release.bucket
            && !["file://", "s3://", "gs://", "az://"]
                .iter()
                .any(|p| bucket.starts_with(p))
        {
            return Err(doc.bad_value(
                "release.bucket",
                format!("release.bucket = {bucket:?} is not a bucket URL otactl knows"),
            ));
        }
        if self.release.public_keys.len() > MAX_KEYS {
            return Err(doc.bad_value(
                "release.public_keys",
                format!(
                    "release.public_keys names {} keys; a device holds at most {}",
                    self.release.public_keys.len(),
                    MAX_KEYS
                ),
            ));
        }
        let pins = self.pins.named();
        for (i, (name, pin)) in pins.iter().enumerate() {
            let Some(pin) = pin else { continue };
            if *pin > MAX_GPIO {
                return Err(doc.bad_value(
                    &format!("pins.{name}"),
                    format!("pins.{name} = {pin} is not a GPIO number (0..={MAX_GPIO})"),
                ));
            }
            if let Some((other, _)) = pins[..i].iter().find(|(_, p)| *p == Some(*pin)) {
                return Err(doc.bad_value(
                    &format!("pins.{name}"),
                    format!("pins.{name} = {pin} is also pins.{other}"),
                ));
            }
        }
        for (key, value, allowed) in [
            ("bench.before", &self.bench.before, &BENCH_BEFORE),
            ("bench.after", &self.bench.after, &BENCH_AFTER),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                return Err(doc.bad_value(key, format!("{key} = {v:?} is not a reset mode espflash knows")));
            }
        }
        if self.bench.usb_vid.is_some() != self.bench.usb_pid.is_some() {
            return Err(doc.bad_value(
                "bench.usb_pid",
                "bench.usb_vid and bench.usb_pid go together: give both or neither".into(),
            ));
        }
        if self.modem.rts_cts && (self.pins.modem_rts.is_none() || self.pins.modem_cts.is_none()) {
            return Err(doc.bad_value(
                "modem.rts_cts",
                "modem.rts_cts = true but pins.modem_rts and pins.modem_cts are not both set".into(),
            ));
        }

        if !STANDARD_BAUDS.contains(&self.modem.baud) {
            return Err(doc.bad_value(
                "modem.baud",
                format!("modem.baud = {} is not a standard UART rate", self.modem.baud),
            ));
        }
        if let Some(fast) = self.modem.fast_baud {
            if !STANDARD_BAUDS.contains(&fast) {
                return Err(doc.bad_value(
                    "modem.fast_baud",
                    format!("modem.fast_baud = {fast} is not a standard UART rate"),
                ));
            }
            if fast <= self.modem.baud {
                return Err(doc.bad_value(
                    "modem.fast_baud",
                    format!("modem.fast_baud = {fast} is not above modem.baud = {}", self.modem.baud),
                ));
            }
        }
        let apn = &self.modem.apn;
        if apn.is_empty() || apn.len() > 63 {
            return Err(doc.bad_value(
                "modem.apn",
                format!("modem.apn has {} characters, not 1 to 63", apn.chars().count()),
            ));
        }
        if let Some(c) = apn.chars().find(|&c| !(' '..='~').contains(&c) || c == '"') {
            return Err(doc.bad_value(
                "modem.apn",
                format!("modem.apn contains {c:?}, which cannot go into AT+CGDCONT"),
            ));
        }

        let net = &self.network;
        if !(2..=7440).contains(&net.nat_idle_timeout_s) {
            return Err(doc.bad_value(
                "network.nat_idle_timeout_s",
                format!(
                    "network.nat_idle_timeout_s = {} is outside 2..=7440 s",
                    net.nat_idle_timeout_s
                ),
            ));
        }
        if !(0.1..=0.9).contains(&net.safety_factor) {
            return Err(doc.bad_value(
                "network.safety_factor",
                format!("network.safety_factor = {} is outside 0.1..=0.9", net.safety_factor),
            ));
        }

        let dl = &self.download;
        if dl.chunk_min < 256 {
            return Err(doc.bad_value(
                "download.chunk_min",
                format!("download.chunk_min = {} is below 256 bytes", dl.chunk_min),
            ));
        }
        if dl.chunk_max < dl.chunk_min || dl.chunk_max > 16 << 20 {
            return Err(doc.bad_value(
                "download.chunk_max",
                format!(
                    "download.chunk_max = {} is not within chunk_min ({})..=16 MiB",
                    dl.chunk_max, dl.chunk_min
                ),
            ));
        }
        if dl.backoff_initial_ms == 0 {
            return Err(doc.bad_value(
                "download.backoff_initial_ms",
                "download.backoff_initial_ms = 0 would retry without pause".into(),
            ));
        }
        if dl.backoff_max_ms < dl.backoff_initial_ms {
            return Err(doc.bad_value(
                "download.backoff_max_ms",
                format!(
                    "download.backoff_max_ms = {} is below download.backoff_initial_ms = {}",
                    dl.backoff_max_ms, dl.backoff_initial_ms
                ),
            ));
        }

        self.validate_update(doc)?;
        self.validate_rollout(doc)?;
        self.validate_slots(doc)
    }

    /// `release.device_url` and `release.report_url`: URLs the device's HTTP client takes,
    /// short enough for the buffers the device keeps them in.
    fn validate_device_urls(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        if let Some(url) = &self.release.device_url {
            // `https://` is the same URL through the modem's TLS: the same rules after the
            // scheme, and trust anchors to check the server against.
            let https = url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
            let plain = if https {
                format!("http://{}", &url[8..])
            } else {
                url.clone()
            };
            if https && self.release.ca_certs.is_empty() {
                return Err(doc.bad_value(
                    "release.device_url",
                    format!(
                        "release.device_url = {url:?} is https:// but release.ca_certs names no CA certificate for the modem to check the server against"
                    ),
                ));
            }
            if let Some(why) = device_url_problem(&plain, false) {
                return Err(doc.bad_value(
                    "release.device_url",
                    format!("release.device_url = {url:?} is not a URL a device can fetch: {why}"),
                ));
            }
            let manifest = self.manifest_url().unwrap_or_default();
            if manifest.len() > MAX_DEVICE_URL {
                return Err(doc.error(
                    ProfileErrorKind::BadValue,
                    "release.device_url",
                    None,
                    format!(
                        "release.device_url gives a manifest URL of {} bytes ({manifest}), more than the {MAX_DEVICE_URL} a device keeps",
                        manifest.len()
                    ),
                    "use a shorter base URL (or channel name)".into(),
                ));
            }
        }
        if let Some(url) = &self.release.report_url {
            if let Some(why) = device_url_problem(url, true) {
                return Err(doc.bad_value(
                    "release.report_url",
                    format!("release.report_url = {url:?} is not a URL a device can post to: {why}"),
                ));
            }
            if url.len() > MAX_DEVICE_URL {
                return Err(doc.bad_value(
                    "release.report_url",
                    format!(
                        "release.report_url is {} bytes, more than the {MAX_DEVICE_URL} a device keeps",
                        url.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `[update]`: spans the device's schedule can work with. Its arithmetic is in
    /// microseconds from boot, so every span is bounded well below overflow.
    fn validate_update(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        let u = &self.update;
        let show = |s: Span| humantime::format_duration(s.0).to_string();
        let too_long = |key: &str, s: Span| {
            (s.0 > MAX_UPDATE_SPAN)
                .then(|| doc.bad_value(key, format!("{key} = \"{}\" is longer than 365 days", show(s))))
        };
        for (key, span) in [
            ("update.check_every", u.check_every),
            ("update.jitter", u.jitter),
            ("update.retry_after", u.retry_after),
            ("update.retry_max", u.retry_max),
        ] {
            if let Some(e) = too_long(key, span) {
                return Err(e);
            }
        }
        if !u.check_every.0.is_zero() && u.check_every.0 < MIN_CHECK_EVERY {
            return Err(doc.bad_value(
                "update.check_every",
                format!(
                    "update.check_every = \"{}\" is below 10 s: checks that often would keep the modem busy",
                    show(u.check_every)
                ),
            ));
        }
        if !u.check_every.0.is_zero() && u.jitter.0 > u.check_every.0 {
            return Err(doc.bad_value(
                "update.jitter",
                format!(
                    "update.jitter = \"{}\" is longer than update.check_every = \"{}\"",
                    show(u.jitter),
                    show(u.check_every)
                ),
            ));
        }
        if u.retry_after.0 < MIN_RETRY_AFTER {
            return Err(doc.bad_value(
                "update.retry_after",
                format!(
                    "update.retry_after = \"{}\" is below 1 s: a failing update would retry without pause",
                    show(u.retry_after)
                ),
            ));
        }
        if u.retry_max.0 < u.retry_after.0 {
            return Err(doc.bad_value(
                "update.retry_max",
                format!(
                    "update.retry_max = \"{}\" is below update.retry_after = \"{}\"",
                    show(u.retry_max),
                    show(u.retry_after)
                ),
            ));
        }
        Ok(())
    }

    /// `[rollout]`: thresholds `otactl rollout` can judge by.
    fn validate_rollout(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        let rate = self.rollout.max_failure_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(doc.bad_value(
                "rollout.max_failure_rate",
                format!("rollout.max_failure_rate = {rate} is outside 0..=1"),
            ));
        }
        Ok(())
    }

    fn validate_slots(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        let flash = self.flash.size;
        let regions = self.slots.named();
        for (name, region, is_app) in regions {
            let key = |field: &str| format!("slots.{name}{field}");
            if region.size == 0 || region.size % SECTOR != 0 {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.{name}.size = {:#X} is not a non-zero multiple of 4 KiB (0x1000)",
                        region.size
                    ),
                    "flash is erased in 4 KiB sectors: round the size to a multiple of 0x1000".into(),
                ));
            }
            let align = if is_app { APP_ALIGN } else { SECTOR };
            if region.offset % align != 0 {
                return Err(doc.layout(
                    &key(".offset"),
                    format!(
                        "slots.{name}.offset = {:#X} is not aligned to {}",
                        region.offset,
                        if is_app {
                            "64 KiB (0x10000), as app slots must be"
                        } else {
                            "4 KiB (0x1000)"
                        }
                    ),
                    format!("move it to {:#X}", region.offset.next_multiple_of(align)),
                ));
            }
            if region.offset < FIRST_REGION {
                return Err(doc.layout(
                    &key(".offset"),
                    format!(
                        "slots.{name}.offset = {:#X} lies below {FIRST_REGION:#X}, where the bootloader and \
                         the partition table live",
                        region.offset
                    ),
                    format!("start regions at {FIRST_REGION:#X} or later"),
                ));
            }
            if region.end() > u64::from(flash.bytes()) {
                return Err(doc.layout(
                    &key(""),
                    format!(
                        "slots.{name} ({region}) ends past the end of the {flash} flash ({:#X})",
                        flash.bytes()
                    ),
                    "shrink or move the region, or set flash.size to the chip's real size".into(),
                ));
            }
            if name == "otadata" && region.size != OTADATA_SIZE {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.otadata.size = {:#X}, but the ESP-IDF bootloader expects 0x2000",
                        region.size
                    ),
                    "set slots.otadata.size = 0x2000 (two 4 KiB sectors)".into(),
                ));
            }
            if name == "otastate" && region.size < 2 * 0x1000 {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.otastate.size = {:#X} is less than two 4 KiB sectors",
                        region.size
                    ),
                    "set slots.otastate.size = 0x4000 (the journal needs a spare sector to move into)".into(),
                ));
            }
            if is_app && region.size < APP_ALIGN {
                return Err(doc.layout(
                    &key(".size"),
                    format!("slots.{name}.size = {:#X} is smaller than 64 KiB", region.size),
                    "an app slot must hold the whole app image: make it at least 0x10000".into(),
                ));
            }
        }
        for (i, (name, region, _)) in regions.iter().enumerate() {
            for (other, other_region, _) in &regions[..i] {
                let (a, b) = (region.range(), other_region.range());
                if a.start < b.end && b.start < a.end {
                    return Err(doc.layout(
                        &format!("slots.{name}"),
                        format!("slots.{name} ({region}) overlaps slots.{other} ({other_region})"),
                        format!(
                            "make the regions disjoint: move slots.{name} to {:#X} or later, or shrink slots.{other}",
                            b.end
                                .next_multiple_of(if name.starts_with("ota_") { 0x10000 } else { 0x1000 })
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
