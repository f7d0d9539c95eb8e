//! The name a CA certificate is stored under on the modem, for both dialects' TLS stacks.
//!
//! The name carries the start of the PEM's SHA-256 (`otaca-<hex>.pem`): finding the name on
//! the modem proves it holds these exact bytes, so a normal boot asks and writes nothing,
//! and a changed CA gets a new name (and a write).

use core::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Name prefix of the CA files this driver owns on the modem.
pub(super) const CA_PREFIX: &str = "otaca-";

pub(super) type CaName = heapless::String<32>;

/// `otaca-<first hash_bytes bytes of the SHA-256, hex>.pem` (at most 13 bytes of hash).
pub(super) fn ca_name(pem: &[u8], hash_bytes: usize) -> CaName {
    let digest = Sha256::digest(pem);
    let mut name = CaName::new();
    let _ = name.push_str(CA_PREFIX);
    for b in &digest[..hash_bytes.min(13)] {
        let _ = write!(name, "{b:02x}");
    }
    let _ = name.push_str(".pem");
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_name_carries_the_hash_and_changes_with_the_bytes() {
        let a = ca_name(b"-----BEGIN CERTIFICATE-----\nA\n", 8);
        let b = ca_name(b"-----BEGIN CERTIFICATE-----\nB\n", 8);
        assert!(a.starts_with(CA_PREFIX) && a.ends_with(".pem") && a.len() == 26, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, ca_name(b"-----BEGIN CERTIFICATE-----\nA\n", 8));
        let short = ca_name(b"-----BEGIN CERTIFICATE-----\nA\n", 5);
        assert_eq!(short.len(), 20, "{short}");
        assert!(a.starts_with(short.trim_end_matches(".pem")), "{a} {short}");
    }
}
