//! Should this device install this (signed) release? Everything decided before the first
//! flash write.
//!
//! The signature says who published a manifest; these checks say whether it is meant for
//! this device and moves it forward: same product, channel, chip and board, a newer
//! version, no lower anti-rollback counter, not a version that already failed here, and
//! an image that fits the slot. Each answer is its own [`Rejection`].

use core::cmp::Ordering;

use crate::esp::chip::Chip;
use crate::wire::manifest::Manifest;
use crate::wire::rollout::NotAdmitted;
use crate::wire::semver::Version;

/// What the device is and runs, for judging a manifest.
#[derive(Debug, Clone, Copy)]
pub struct DeviceIdentity<'a> {
    pub product: &'a str,
    /// The channel the device follows; manifests name theirs, so one channel's release
    /// cannot be replayed from another's URL.
    pub channel: &'a str,
    pub chip: Chip,
    pub board: &'a str,
    /// The running app descriptor's version.
    pub running_version: &'a str,
    /// The running app descriptor's `secure_version` (the eFuse counter on chips that burn it).
    pub secure_version: u32,
    /// A version that was installed here and rolled back; not retried until a newer one.
    pub failed_version: Option<&'a str>,
    /// Size of the slot the image would go to.
    pub slot_size: u32,
    /// The device's stable id ([`crate::wire::rollout`]): decides its rollout cohort.
    pub device_id: &'a str,
}

/// Why a correctly signed manifest is not for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("release is for another product; check the bucket URL the device is given")]
    WrongProduct,
    #[error("manifest belongs to another channel; it was served from the wrong URL")]
    WrongChannel,
    #[error("release is built for another chip")]
    WrongChip,
    #[error("release is built for another board")]
    WrongBoard,
    #[error("release is not newer than the running version")]
    NotNewer,
    #[error("release has a lower secure_version than the device runs (anti-rollback)")]
    SecureVersionTooLow,
    #[error("this version was installed before and rolled back; publish a newer version with the fix")]
    PreviouslyFailed,
    #[error("image ({size} bytes) does not fit the OTA slot ({slot} bytes)")]
    TooLarge { size: u32, slot: u32 },
    #[error(transparent)]
    NotAdmitted(#[from] NotAdmitted),
}

impl Rejection {
    /// Stable short name for console events and benchmarks.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::WrongProduct => "wrong-product",
            Rejection::WrongChannel => "wrong-channel",
            Rejection::WrongChip => "wrong-chip",
            Rejection::WrongBoard => "wrong-board",
            Rejection::NotNewer => "not-newer",
            Rejection::SecureVersionTooLow => "secure-version-too-low",
            Rejection::PreviouslyFailed => "previously-failed",
            Rejection::TooLarge { .. } => "image-too-large",
            Rejection::NotAdmitted(NotAdmitted::OutsideCohort { .. }) => "outside-cohort",
            Rejection::NotAdmitted(NotAdmitted::Paused) => "rollout-paused",
            Rejection::NotAdmitted(NotAdmitted::Halted) => "rollout-halted",
        }
    }
}

/// Checks, in order: product, channel, chip, board, version, secure_version, failed
/// version, rollout (cohort, paused, halted), size.
///
/// A running version that is not semver (a hand-built image, say) does not block an update:
/// anti-rollback still holds through `secure_version`.
pub fn check_manifest(m: &Manifest<'_>, device: &DeviceIdentity<'_>) -> Result<(), Rejection> {
    if m.product != device.product {
        return Err(Rejection::WrongProduct);
    }
    if m.channel != device.channel {
        return Err(Rejection::WrongChannel);
    }
    if Chip::from_name(m.chip) != Some(device.chip) {
        return Err(Rejection::WrongChip);
    }
    if m.board != device.board {
        return Err(Rejection::WrongBoard);
    }
    let offered = Version::parse(m.version).map_err(|_| Rejection::NotNewer)?;
    if let Ok(running) = Version::parse(device.running_version)
        && offered.precedence(&running) != Ordering::Greater
    {
        return Err(Rejection::NotNewer);
    }
    if m.secure_version < device.secure_version {
        return Err(Rejection::SecureVersionTooLow);
    }
    if let Some(failed) = device.failed_version
        && Version::parse(failed).is_ok_and(|f| f.precedence(&offered) == Ordering::Equal)
    {
        return Err(Rejection::PreviouslyFailed);
    }
    m.rollout().admits(device.product, device.device_id)?;
    if m.size > device.slot_size {
        return Err(Rejection::TooLarge {
            size: m.size,
            slot: device.slot_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest<'static> {
        Manifest {
            schema: 1,
            product: "logger",
            channel: "stable",
            version: "1.1.0",
            chip: "esp32c3",
            board: "devkit",
            image: "x.bin",
            size: 1000,
            sha256: "00",
            secure_version: 2,
            created: "2026-11-24T00:00:00Z",
            rollout: None,
            compressed: None,
            delta: None,
        }
    }

    fn device() -> DeviceIdentity<'static> {
        DeviceIdentity {
            product: "logger",
            channel: "stable",
            chip: Chip::Esp32c3,
            board: "devkit",
            running_version: "1.0.0",
            secure_version: 2,
            failed_version: None,
            slot_size: 4096,
            device_id: "bench-1",
        }
    }

    #[test]
    fn each_check_has_its_rejection() {
        assert_eq!(check_manifest(&manifest(), &device()), Ok(()));
        let m = manifest();
        let cases = [
            (Manifest { product: "other", ..m }, device(), Rejection::WrongProduct),
            (Manifest { channel: "beta", ..m }, device(), Rejection::WrongChannel),
            (Manifest { chip: "esp32", ..m }, device(), Rejection::WrongChip),
            (Manifest { board: "other", ..m }, device(), Rejection::WrongBoard),
            (Manifest { version: "1.0.0", ..m }, device(), Rejection::NotNewer),
            (Manifest { version: "0.9.9", ..m }, device(), Rejection::NotNewer),
            (
                Manifest {
                    version: "1.1.0-rc.1",
                    ..m
                },
                DeviceIdentity {
                    running_version: "1.1.0",
                    ..device()
                },
                Rejection::NotNewer,
            ),
            (
                Manifest { secure_version: 1, ..m },
                device(),
                Rejection::SecureVersionTooLow,
            ),
            (
                m,
                DeviceIdentity {
                    failed_version: Some("1.1.0"),
                    ..device()
                },
                Rejection::PreviouslyFailed,
            ),
            (
                Manifest { size: 4097, ..m },
                device(),
                Rejection::TooLarge { size: 4097, slot: 4096 },
            ),
        ];
        for (m, d, want) in cases {
            assert_eq!(check_manifest(&m, &d), Err(want), "{m:?}");
        }
    }

    #[test]
    fn the_rollout_is_judged_after_the_version() {
        use crate::wire::rollout::{DeviceList, Rollout, RolloutState};
        let listed = ["bench-1"];
        let staged = |percent, state| Manifest {
            rollout: Some(Rollout {
                percent,
                state,
                devices: DeviceList::Ids(&listed),
            }),
            ..manifest()
        };
        let elsewhere = DeviceIdentity {
            device_id: "not-listed",
            ..device()
        };
        assert_eq!(check_manifest(&staged(0, RolloutState::Active), &device()), Ok(()));
        assert_eq!(
            check_manifest(&staged(0, RolloutState::Active), &elsewhere),
            Err(Rejection::NotAdmitted(NotAdmitted::OutsideCohort { percent: 0 }))
        );
        assert_eq!(check_manifest(&staged(100, RolloutState::Active), &elsewhere), Ok(()));
        assert_eq!(
            check_manifest(&staged(100, RolloutState::Halted), &device()).map_err(|r| r.code()),
            Err("rollout-halted")
        );
        // A device that already runs the release hears "not newer", not "outside".
        let running = DeviceIdentity {
            running_version: "1.1.0",
            ..elsewhere
        };
        assert_eq!(
            check_manifest(&staged(0, RolloutState::Paused), &running),
            Err(Rejection::NotNewer)
        );
    }

    #[test]
    fn a_newer_version_than_the_failed_one_is_accepted() {
        let d = DeviceIdentity {
            failed_version: Some("1.1.0"),
            ..device()
        };
        let m = Manifest {
            version: "1.1.1",
            ..manifest()
        };
        assert_eq!(check_manifest(&m, &d), Ok(()));
        // A running version that is not semver does not block an update.
        let d = DeviceIdentity {
            running_version: "dev-build",
            ..device()
        };
        assert_eq!(check_manifest(&manifest(), &d), Ok(()));
    }
}
