//! Whether a release may replace what the channel holds: newer, same product, a
//! manifest that verifies; the same release again is a no-op.

use std::cmp::Ordering;

use device_fw::wire::semver::Version;

use super::ReleaseError;
use crate::channel::Held;

/// What to do about the channel's current release.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Publish,
    Unchanged,
}

pub(super) fn decide(
    previous: Option<&Held>,
    ours: (&str, &str, &str),
    version: &str,
    sha256: &str,
    secure_version: u32,
    channel: &str,
    allow_downgrade: bool,
) -> Result<Decision, ReleaseError> {
    let Some(held) = previous else {
        return Ok(Decision::Publish);
    };
    let prev = match &held.facts {
        Some(facts) if held.verified => facts,
        _ if allow_downgrade => return Ok(Decision::Publish),
        _ => {
            return Err(ReleaseError::CurrentUnverified {
                channel: channel.to_owned(),
                problem: held.problem.clone().unwrap_or_default(),
            });
        }
    };
    let holds = (prev.product.as_str(), prev.chip.as_str(), prev.board.as_str());
    if holds != ours {
        let show = |(p, c, b): (&str, &str, &str)| format!("{p} on {c} ({b})");
        return Err(ReleaseError::OtherProduct {
            channel: channel.to_owned(),
            holds: show(holds),
            ours: show(ours),
        });
    }
    let current = prev.version.as_str();
    let same_image = prev.sha256 == sha256;
    if current == version && same_image {
        return Ok(Decision::Unchanged);
    }
    if allow_downgrade {
        return Ok(Decision::Publish);
    }
    // Both parsed before: a verified manifest's version is semver, and so is ours.
    let order = match (Version::parse(version), Version::parse(current)) {
        (Ok(new), Ok(old)) => new.precedence(&old),
        _ => Ordering::Less,
    };
    if order != Ordering::Greater {
        let detail = if order == Ordering::Equal {
            format!(
                " (the same version with another image, sha256 {}…; devices that have it would never take this one)",
                prev.sha256.get(..12).unwrap_or_default()
            )
        } else {
            String::new()
        };
        return Err(ReleaseError::Downgrade {
            channel: channel.to_owned(),
            current: current.to_owned(),
            version: version.to_owned(),
            detail,
        });
    }
    if secure_version < prev.secure_version {
        return Err(ReleaseError::SecureVersionDown {
            channel: channel.to_owned(),
            current: prev.secure_version,
            image: secure_version,
        });
    }
    Ok(Decision::Publish)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel;

    fn prev(version: &str, sha: &str, secure: u32) -> Held {
        Held {
            verified: true,
            problem: None,
            facts: Some(channel::Facts {
                product: "p".into(),
                channel: "stable".into(),
                version: version.into(),
                chip: "esp32".into(),
                board: "b".into(),
                image: format!("../images/{sha}.bin"),
                size: 1,
                sha256: sha.into(),
                secure_version: secure,
                created: "2026-11-24T04:00:00Z".into(),
                rollout: None,
                compressed: None,
                delta: None,
            }),
        }
    }

    const OURS: (&str, &str, &str) = ("p", "esp32", "b");

    fn run(
        previous: Option<&Held>,
        version: &str,
        sha: &str,
        secure: u32,
        allow: bool,
    ) -> Result<Decision, ReleaseError> {
        decide(previous, OURS, version, sha, secure, "stable", allow)
    }

    #[test]
    fn decisions() {
        assert_eq!(run(None, "1.0.0", "a", 0, false).unwrap(), Decision::Publish);
        let p = prev("1.2.0", "a", 1);
        assert_eq!(run(Some(&p), "1.2.0", "a", 1, false).unwrap(), Decision::Unchanged);
        assert_eq!(run(Some(&p), "1.3.0", "b", 1, false).unwrap(), Decision::Publish);
        assert!(matches!(
            run(Some(&p), "1.1.0", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert!(matches!(
            run(Some(&p), "1.2.0", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert!(matches!(
            run(Some(&p), "1.2.0-rc.1", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert_eq!(run(Some(&p), "1.1.0", "b", 1, true).unwrap(), Decision::Publish);
        assert!(matches!(
            run(Some(&p), "1.3.0", "b", 0, false),
            Err(ReleaseError::SecureVersionDown { .. })
        ));
        let unverified = Held {
            verified: false,
            problem: Some("bad".into()),
            ..Held::default()
        };
        assert!(matches!(
            run(Some(&unverified), "9.0.0", "b", 0, false),
            Err(ReleaseError::CurrentUnverified { .. })
        ));
        assert_eq!(
            run(Some(&unverified), "0.1.0", "b", 0, true).unwrap(),
            Decision::Publish
        );
        let mut other = prev("1.0.0", "a", 0);
        if let Some(f) = &mut other.facts {
            f.board = "other".into();
        }
        assert!(matches!(
            run(Some(&other), "2.0.0", "b", 0, true),
            Err(ReleaseError::OtherProduct { .. })
        ));
    }
}
