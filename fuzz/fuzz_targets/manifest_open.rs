//! The manifest reader on plain bytes: `open` (envelope, base64, signature, payload) and
//! `decode_unverified`, trusting the harness's test key.
//!
//! Asserts: no panic; the fields of an accepted manifest borrow from the payload buffer;
//! an accepted manifest validates and writes back to a payload that parses to itself.
#![no_main]

use device_fw::wire::manifest::{self, MAX_PAYLOAD, Manifest, PayloadBuf};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::manifest_keys;

fuzz_target!(|data: &[u8]| {
    let keys = manifest_keys::trusted();
    let mut buf = PayloadBuf::default();
    let opened = manifest::open(data, &keys, &mut buf);
    if let Ok((m, key)) = opened {
        assert!(key < keys.len());
        manifest_keys::check_accepted(&m);
    }
    let mut buf = PayloadBuf::default();
    if let Ok(payload) = manifest::decode_unverified(data, &mut buf) {
        assert!(payload.len() <= MAX_PAYLOAD);
        if let Ok(m) = Manifest::parse(payload) {
            for field in [
                m.product, m.channel, m.version, m.chip, m.board, m.image, m.sha256, m.created,
            ] {
                assert!(
                    otactl_fuzz::within(payload, field.as_bytes()),
                    "field outside the payload"
                );
            }
            manifest_keys::check_accepted(&m);
        }
    }
    // The payload parser on its own, as the host's `otactl verify` also uses it.
    if let Ok(m) = Manifest::parse(data) {
        for field in [
            m.product, m.channel, m.version, m.chip, m.board, m.image, m.sha256, m.created,
        ] {
            assert!(otactl_fuzz::within(data, field.as_bytes()), "field outside the input");
        }
        manifest_keys::check_accepted(&m);
    }
});
