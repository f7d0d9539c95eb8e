//! The harness's signing keys and the checks every accepted manifest must pass.

use device_fw::esp::chip::Chip;
use device_fw::ota::policy::{DeviceIdentity, check_manifest};
use device_fw::wire::manifest::{MAX_PAYLOAD, Manifest, ManifestError};
use ed25519_dalek::SigningKey;
use std::sync::OnceLock;

// The keys are derived once: deriving one costs a scalar multiplication (the device's
// dalek has no precomputed tables), which made up much of an input's time.

/// The key the harness signs with and the device trusts. Fixed, so that a crash found
/// once reproduces on every machine.
pub fn trusted_signer() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[7u8; 32])).clone()
}

/// A well-formed key the device does not trust.
pub fn stranger() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[9u8; 32])).clone()
}

/// Trusted public keys: the signer's and a successor that signs nothing here.
pub fn trusted() -> [[u8; 32]; 2] {
    static KEYS: OnceLock<[[u8; 32]; 2]> = OnceLock::new();
    *KEYS.get_or_init(|| {
        [
            trusted_signer().verifying_key().to_bytes(),
            SigningKey::from_bytes(&[8u8; 32]).verifying_key().to_bytes(),
        ]
    })
}

/// What holds for every manifest the device accepts.
pub fn check_accepted(m: &Manifest<'_>) {
    m.validate().expect("an accepted manifest validates");
    m.sha256_bytes().expect("an accepted manifest has a hash");
    m.semver().expect("an accepted manifest has a version");
    // The host writes what the device reads: the written form parses to the same manifest.
    let mut out = [0u8; 2 * MAX_PAYLOAD];
    match m.encode(&mut out) {
        Ok(n) => {
            let again = Manifest::parse(&out[..n]).expect("a written manifest parses");
            assert_eq!(&again, m, "written and parsed manifests differ");
        }
        // Only possible for a payload whose own spelling was shorter than ours.
        Err(ManifestError::PayloadTooLarge | ManifestError::BufferFull) => {}
        Err(e) => panic!("accepted manifest does not encode: {e}"),
    }
    // The policy judges any accepted manifest without trouble.
    let device = DeviceIdentity {
        product: "field-logger",
        channel: "stable",
        chip: Chip::Esp32,
        board: "m5stack-core",
        running_version: "1.0.0",
        secure_version: 1,
        failed_version: Some("1.4.2"),
        slot_size: 0x1E_0000,
        device_id: "dev-0001",
    };
    let _ = check_manifest(m, &device);
}
