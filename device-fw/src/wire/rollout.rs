//! Staged rollouts: which devices may take a release, as signed data every device decides on
//! by itself.
//!
//! A manifest may carry a `rollout` member:
//!
//! ```json
//! "rollout":{"percent":5,"state":"active","devices":["3fa2c01d9e7b4410"]}
//! ```
//!
//! - `percent` (0 to 100): the share of the fleet that may install this release. A device
//!   is in when its [`cohort_bucket`] (0 to 9,999, from its stable id and the product) is
//!   below `percent × 100`. The bucket never changes, so raising 5 % to 25 % keeps the first
//!   5 % in, and a device's answer never flips between two checks of the same manifest.
//! - `devices` (optional, at most [`MAX_DEVICES`]): ids that are in whatever the percentage
//!   (bench units, a customer's pilot devices).
//! - `state`: `active`, `paused` (no device starts it, a fleet operator is looking) or
//!   `halted` (stopped for good, the release failed in the field). Paused and halted admit
//!   nobody, listed devices included.
//!
//! A manifest without `rollout` is for every device, as before. Firmware older than this
//! member ignores it (unknown members are skipped, see [`super::manifest`]) and takes the
//! release whatever the percentage: a fleet that still runs such firmware gets no staging
//! on those devices, which `otactl rollout status` cannot see either. That is why the member
//! did not bump the schema: a schema 2 would make those devices refuse every manifest and
//! never update again.
//!
//! No server decides membership, so a static bucket behind a CDN serves a rollout to a
//! million devices as well as to ten, and the decision is as trustworthy as the signature.

use core::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::json::{JsonError, Reader, required, set_once};

/// Explicit device ids a manifest may list.
pub const MAX_DEVICES: usize = 16;
/// Longest device id, in bytes.
pub const DEVICE_ID_MAX: usize = 32;
/// Buckets a fleet is divided into: a percentage admits `percent × 100` of them.
pub const BUCKETS: u16 = 10_000;

/// Whether a rollout admits anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "std", derive(serde::Deserialize))]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    Active,
    /// No device starts this release until it is resumed.
    Paused,
    /// No device starts this release, ever; publish a fixed version instead.
    Halted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::Halted => "halted",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [RolloutState::Active, RolloutState::Paused, RolloutState::Halted]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// The explicit device ids of a rollout: as read from a payload (its JSON array text,
/// checked when it was read) or as the host builds one. Either way it stays `Copy`, like
/// the manifest that holds it, and needs no heap.
#[derive(Debug, Clone, Copy)]
pub enum DeviceList<'a> {
    /// The JSON text of an array of plain strings, already checked by [`read`].
    Json(&'a str),
    Ids(&'a [&'a str]),
}

impl Default for DeviceList<'_> {
    fn default() -> Self {
        DeviceList::Ids(&[])
    }
}

impl<'a> DeviceList<'a> {
    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (json, ids) = match *self {
            DeviceList::Json(text) => (Some(text), [].iter()),
            DeviceList::Ids(ids) => (None, ids.iter()),
        };
        let mut reader = json.map(|t| Reader::new(t.as_bytes()));
        let mut opened = false;
        let from_json = core::iter::from_fn(move || {
            let r = reader.as_mut()?;
            if !opened {
                opened = true;
                r.begin_array().ok()?;
            }
            if r.next_element().ok()? { r.string().ok() } else { None }
        });
        from_json.chain(ids.copied())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.iter().any(|d| d == id)
    }
}

impl PartialEq for DeviceList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for DeviceList<'_> {}

impl Serialize for DeviceList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(id)?;
        }
        seq.end()
    }
}

/// Who may take a release. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rollout<'a> {
    pub percent: u8,
    pub state: RolloutState,
    #[serde(skip_serializing_if = "DeviceList::is_empty")]
    pub devices: DeviceList<'a>,
}

/// Why a rollout does not admit this device (each is also a policy rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAdmitted {
    #[error("this device is outside the release's rollout ({percent} % of the fleet); it will come with a later stage")]
    OutsideCohort { percent: u8 },
    #[error("the release's rollout is paused")]
    Paused,
    #[error("the release's rollout was halted; a fixed version will be published")]
    Halted,
}

/// Why a `rollout` member is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    #[error("rollout percent {0} is above 100")]
    PercentTooHigh(u32),
    #[error("rollout state is not active, paused or halted")]
    UnknownState,
    #[error("rollout lists more than {MAX_DEVICES} device ids")]
    TooManyDevices,
    #[error(
        "a rollout device id is empty, longer than {DEVICE_ID_MAX} bytes or has characters other than a-z 0-9 . _ -"
    )]
    BadDeviceId,
}

impl Rollout<'_> {
    /// Everyone, now: what a manifest without `rollout` means.
    pub const FULL: Rollout<'static> = Rollout {
        percent: 100,
        state: RolloutState::Active,
        devices: DeviceList::Ids(&[]),
    };

    /// Whether the device `device_id` of `product` may take the release.
    pub fn admits(&self, product: &str, device_id: &str) -> Result<(), NotAdmitted> {
        match self.state {
            RolloutState::Paused => return Err(NotAdmitted::Paused),
            RolloutState::Halted => return Err(NotAdmitted::Halted),
            RolloutState::Active => {}
        }
        if self.devices.contains(device_id) || in_percent(cohort_bucket(product, device_id), self.percent) {
            Ok(())
        } else {
            Err(NotAdmitted::OutsideCohort { percent: self.percent })
        }
    }

    pub fn validate(&self) -> Result<(), RolloutError> {
        if self.percent > 100 {
            return Err(RolloutError::PercentTooHigh(u32::from(self.percent)));
        }
        let mut n = 0;
        for id in self.devices.iter() {
            n += 1;
            if n > MAX_DEVICES {
                return Err(RolloutError::TooManyDevices);
            }
            if !device_id_ok(id) {
                return Err(RolloutError::BadDeviceId);
            }
        }
        Ok(())
    }
}

/// Whether a bucket falls within a percentage of the fleet.
pub fn in_percent(bucket: u16, percent: u8) -> bool {
    u32::from(bucket) < u32::from(percent.min(100)) * u32::from(BUCKETS / 100)
}

/// A device id: 1 to [`DEVICE_ID_MAX`] bytes of `a-z 0-9 . _ -` (as product names).
pub fn device_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= DEVICE_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// A device's place in its fleet's rollout order, 0 to [`BUCKETS`] − 1: the first four bytes
/// of SHA-256(`"otactl-cohort\0" product "\0" device_id`) modulo [`BUCKETS`].
///
/// The product is in the hash so that two products do not share their canaries; the same
/// device id always lands in the same bucket, on the device and in `otactl rollout status`,
/// which recomputes it instead of trusting what a report claims.
pub fn cohort_bucket(product: &str, device_id: &str) -> u16 {
    let mut h = Sha256::new();
    h.update(b"otactl-cohort\0");
    h.update(product.as_bytes());
    h.update([0]);
    h.update(device_id.as_bytes());
    let d = h.finalize();
    (u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % u32::from(BUCKETS)) as u16
}

/// The id a device derives from a hardware identity that never changes (the chip's factory
/// MAC in eFuse): 16 lowercase hex digits of SHA-256(`"otactl-device\0" product "\0" hw`).
/// Hashed so that reports and manifests do not carry the MAC itself.
pub fn device_id_from_hardware(product: &str, hardware_id: &[u8]) -> heapless::String<16> {
    let mut h = Sha256::new();
    h.update(b"otactl-device\0");
    h.update(product.as_bytes());
    h.update([0]);
    h.update(hardware_id);
    let d = h.finalize();
    let mut id = heapless::String::new();
    for b in &d[..8] {
        // 16 hex digits fit the 16-byte string.
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// Reads a `rollout` object (the reader stands at its value).
pub(crate) fn read<'a>(r: &mut Reader<'a>) -> Result<Result<Rollout<'a>, RolloutError>, JsonError> {
    let (mut percent, mut state, mut devices) = (None, None, None);
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        match key {
            "percent" => set_once(&mut percent, "rollout.percent", r.u32()?)?,
            "state" => set_once(&mut state, "rollout.state", r.string()?)?,
            "devices" => {
                let start = r.position();
                r.begin_array()?;
                let mut n = 0usize;
                while r.next_element()? {
                    r.string()?;
                    n += 1;
                    if n > MAX_DEVICES {
                        return Err(JsonError::TooMany {
                            field: "rollout.devices",
                            max: MAX_DEVICES,
                        });
                    }
                }
                let raw = &r.text()[start..r.position()];
                // Only plain strings were read, so the slice is UTF-8.
                let raw = core::str::from_utf8(raw).map_err(|_| JsonError::StringNotPlain { at: start })?;
                set_once(&mut devices, "rollout.devices", DeviceList::Json(raw.trim_start()))?
            }
            _ => r.skip_value()?,
        }
    }
    let percent = required(percent, "rollout.percent")?;
    let state = required(state, "rollout.state")?;
    let Ok(percent) = u8::try_from(percent) else {
        return Ok(Err(RolloutError::PercentTooHigh(percent)));
    };
    let Some(state) = RolloutState::from_name(state) else {
        return Ok(Err(RolloutError::UnknownState));
    };
    let rollout = Rollout {
        percent,
        state,
        devices: devices.unwrap_or_default(),
    };
    Ok(rollout.validate().map(|()| rollout))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;

    use super::*;

    #[test]
    fn buckets_are_spread_and_stable() {
        let mut counts = [0u32; 10];
        for n in 0..10_000 {
            let id = format!("{n:016x}");
            let b = cohort_bucket("field-logger", &id);
            assert_eq!(b, cohort_bucket("field-logger", &id));
            assert!(b < BUCKETS);
            counts[usize::from(b / 1000)] += 1;
        }
        // Each tenth of the bucket range holds about a tenth of the fleet.
        for c in counts {
            assert!((900..1100).contains(&c), "{counts:?}");
        }
        // Another product orders the same ids differently.
        let same = (0..100)
            .filter(|n| {
                let id = format!("{n:016x}");
                cohort_bucket("a", &id) == cohort_bucket("b", &id)
            })
            .count();
        assert!(same < 3);
    }

    #[test]
    fn raising_the_percentage_keeps_everyone_who_was_in() {
        let ids: std::vec::Vec<_> = (0..2000).map(|n| format!("dev-{n}")).collect();
        let admitted = |p: u8| {
            let r = Rollout {
                percent: p,
                ..Rollout::FULL
            };
            ids.iter()
                .filter(|id| r.admits("p", id).is_ok())
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (five, twenty_five, all) = (admitted(5), admitted(25), admitted(100));
        assert!(five.is_subset(&twenty_five) && twenty_five.is_subset(&all));
        assert_eq!(all.len(), ids.len());
        assert!((60..140).contains(&five.len()), "{}", five.len());
        assert!(admitted(0).is_empty());
    }

    #[test]
    fn listed_devices_are_in_and_paused_or_halted_admit_nobody() {
        let listed = ["bench-1"];
        let r = Rollout {
            percent: 0,
            state: RolloutState::Active,
            devices: DeviceList::Ids(&listed),
        };
        assert_eq!(r.admits("p", "bench-1"), Ok(()));
        assert_eq!(r.admits("p", "other"), Err(NotAdmitted::OutsideCohort { percent: 0 }));
        for (state, want) in [
            (RolloutState::Paused, NotAdmitted::Paused),
            (RolloutState::Halted, NotAdmitted::Halted),
        ] {
            let r = Rollout { state, ..r };
            assert_eq!(r.admits("p", "bench-1"), Err(want));
            assert_eq!(Rollout { percent: 100, ..r }.admits("p", "x"), Err(want));
        }
    }

    #[test]
    fn reads_back_what_serde_writes() {
        let ids = ["a1", "b-2"];
        let r = Rollout {
            percent: 25,
            state: RolloutState::Paused,
            devices: DeviceList::Ids(&ids),
        };
        let json = serde_json_core::to_string::<_, 256>(&r).unwrap();
        assert_eq!(json, r#"{"percent":25,"state":"paused","devices":["a1","b-2"]}"#);
        let back = read(&mut Reader::new(json.as_bytes())).unwrap().unwrap();
        assert_eq!(back, r);
        assert_eq!(back.devices.iter().collect::<std::vec::Vec<_>>(), ids);
        let none = serde_json_core::to_string::<_, 256>(&Rollout::FULL).unwrap();
        assert_eq!(none, r#"{"percent":100,"state":"active"}"#);
    }

    #[test]
    fn bad_members_are_errors() {
        let cases = [
            (r#"{"percent":101,"state":"active"}"#, RolloutError::PercentTooHigh(101)),
            (r#"{"percent":300,"state":"active"}"#, RolloutError::PercentTooHigh(300)),
            (r#"{"percent":5,"state":"stopped"}"#, RolloutError::UnknownState),
            (
                r#"{"percent":5,"state":"active","devices":["A"]}"#,
                RolloutError::BadDeviceId,
            ),
            (
                r#"{"percent":5,"state":"active","devices":[""]}"#,
                RolloutError::BadDeviceId,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(read(&mut Reader::new(json.as_bytes())).unwrap(), Err(want), "{json}");
        }
        let many = format!(
            r#"{{"percent":5,"state":"active","devices":[{}]}}"#,
            (0..17)
                .map(|n| format!("\"d{n}\""))
                .collect::<std::vec::Vec<_>>()
                .join(",")
        );
        assert!(read(&mut Reader::new(many.as_bytes())).is_err());
        assert!(read(&mut Reader::new(br#"{"state":"active"}"#)).is_err());
        assert!(read(&mut Reader::new(br#"{"percent":-1,"state":"active"}"#)).is_err());
    }

    #[test]
    fn hardware_ids_become_stable_hex_ids() {
        let a = device_id_from_hardware("field-logger", &[0x24, 0x6f, 0x28, 1, 2, 3]);
        assert_eq!(a.len(), 16);
        assert!(device_id_ok(&a));
        assert_eq!(a, device_id_from_hardware("field-logger", &[0x24, 0x6f, 0x28, 1, 2, 3]));
        assert_ne!(a, device_id_from_hardware("field-logger", &[0x24, 0x6f, 0x28, 1, 2, 4]));
    }
}
