//! Semantic versions, compared as semver.org §11 orders them, without a heap.
//!
//! The device decides "is this release newer than what I run?" from two strings: the
//! signed manifest's `version` and the running app descriptor's. Build metadata (`+…`) is
//! kept but never ordered, as the spec says.

use core::cmp::Ordering;
use core::fmt;

/// A parsed `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, borrowing its identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated pre-release identifiers, empty for a release.
    pub pre: &'a str,
    /// Build metadata, empty when absent; ignored by ordering.
    pub build: &'a str,
}

/// Why a version string is not semver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    #[error("expected MAJOR.MINOR.PATCH, e.g. 1.4.2")]
    NotThreeNumbers,
    #[error("a version number has a leading zero or is too large")]
    BadNumber,
    #[error("a pre-release or build identifier is empty or has characters other than [0-9A-Za-z-]")]
    BadIdentifier,
    #[error("a numeric pre-release identifier has a leading zero")]
    LeadingZero,
}

fn number(text: &str) -> Result<u64, VersionError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError::NotThreeNumbers);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(VersionError::BadNumber);
    }
    text.parse().map_err(|_| VersionError::BadNumber)
}

fn identifiers(text: &str, numeric_leading_zero_ok: bool) -> Result<(), VersionError> {
    for id in text.split('.') {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(VersionError::BadIdentifier);
        }
        if !numeric_leading_zero_ok && id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError::LeadingZero);
        }
    }
    Ok(())
}

impl<'a> Version<'a> {
    pub fn parse(text: &'a str) -> Result<Self, VersionError> {
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => {
                identifiers(build, true)?;
                (rest, build)
            }
            None => (text, ""),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => {
                identifiers(pre, false)?;
                (core, pre)
            }
            None => (rest, ""),
        };
        let mut parts = core.split('.');
        let mut next = || parts.next().ok_or(VersionError::NotThreeNumbers).and_then(number);
        let (major, minor, patch) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(VersionError::NotThreeNumbers);
        }
        Ok(Version {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }

    /// Precedence (§11): numbers first, then a release ranks above its pre-releases, then
    /// pre-release identifiers left to right (numeric < alphanumeric, numerics by value).
    pub fn precedence(&self, other: &Version<'_>) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre(self.pre, other.pre),
            })
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut a_ids = a.split('.');
    let mut b_ids = b.split('.');
    loop {
        match (a_ids.next(), b_ids.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (numeric(x), numeric(y)) {
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Numeric identifiers have no leading zeros (checked at parse), so length then bytes
/// orders them by value without an integer that could overflow.
fn numeric(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn spec_example_order() {
        // semver.org §11.4's example chain, strictly increasing.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "10.0.0",
        ];
        for pair in chain.windows(2) {
            let (a, b) = (Version::parse(pair[0]).unwrap(), Version::parse(pair[1]).unwrap());
            assert_eq!(a.precedence(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(b.precedence(&a), Ordering::Greater);
        }
    }

    #[test]
    fn build_metadata_is_ignored() {
        let a = Version::parse("1.2.3+abc").unwrap();
        let b = Version::parse("1.2.3+def.1").unwrap();
        assert_eq!(a.precedence(&b), Ordering::Equal);
        assert_eq!(a.build, "abc");
    }

    #[test]
    fn rejects_non_semver() {
        for bad in [
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.x",
            "",
            "v1.2.3",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3-01",
            "1.2.3+",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Version::parse("1.2.3-0a").unwrap().pre, "0a");
        assert_eq!(Version::parse("1.2.3+001").unwrap().build, "001");
    }

    #[test]
    fn display_round_trips() {
        for v in ["1.2.3", "0.0.1-rc.1", "4.5.6-x.7+build.9"] {
            assert_eq!(std::format!("{}", Version::parse(v).unwrap()), v);
        }
    }
}
