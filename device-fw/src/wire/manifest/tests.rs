extern crate std;

use std::borrow::ToOwned;
use std::string::String;
use std::vec::Vec;

use ed25519_dalek::SigningKey;

use super::*;
use crate::wire::rollout;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn sample() -> Manifest<'static> {
    Manifest {
        schema: 1,
        product: "field-logger",
        channel: "stable",
        version: "1.4.2",
        chip: "esp32",
        board: "m5stack-core",
        image: "../images/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.bin",
        size: 233_040,
        sha256: SHA,
        secure_version: 0,
        created: "2026-11-24T04:00:00Z",
        rollout: None,
        compressed: None,
        delta: None,
    }
}

fn sealed(m: &Manifest<'_>, keys: &[&SigningKey]) -> Vec<u8> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = m.encode(&mut payload).unwrap();
    let mut out = [0u8; MAX_ENVELOPE];
    let len = seal(&payload[..n], keys, &mut out).unwrap();
    out[..len].to_vec()
}

fn reseal_payload(payload: &str, keys: &[&SigningKey]) -> Vec<u8> {
    let mut out = [0u8; MAX_ENVELOPE];
    let len = seal(payload.as_bytes(), keys, &mut out).unwrap();
    out[..len].to_vec()
}

#[test]
fn round_trip_with_either_rotation_key() {
    let (old, new) = (key(1), key(2));
    let env = sealed(&sample(), &[&old]);
    let mut buf = PayloadBuf::default();
    let (m, index) = open(&env, &[pk(&old), pk(&new)], &mut buf).unwrap();
    assert_eq!((m, index), (sample(), 0));
    // A release signed with the successor only is accepted by a device holding both.
    let env = sealed(&sample(), &[&new]);
    assert_eq!(open(&env, &[pk(&old), pk(&new)], &mut buf).unwrap().1, 1);
    // A release signed by both is accepted by a device holding either.
    let env = sealed(&sample(), &[&old, &new]);
    assert_eq!(open(&env, &[pk(&new)], &mut buf).unwrap().1, 0);
    assert_eq!(open(&env, &[pk(&old)], &mut buf).unwrap().1, 0);
}

#[test]
fn unknown_key_and_tampering_are_distinct() {
    let (k, stranger) = (key(1), key(9));
    let env = sealed(&sample(), &[&stranger]);
    let mut buf = PayloadBuf::default();
    assert_eq!(open(&env, &[pk(&k)], &mut buf), Err(ManifestError::UnknownKey));

    // Swap the payload for another one, keeping the signature: the key id still matches.
    let text = String::from_utf8(sealed(&sample(), &[&k])).unwrap();
    let other = Manifest {
        version: "9.9.9",
        ..sample()
    };
    let other_text = String::from_utf8(sealed(&other, &[&k])).unwrap();
    let payload_of = |t: &str| {
        t.split("\"payload\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let forged = text.replace(&payload_of(&text), &payload_of(&other_text));
    assert_eq!(
        open(forged.as_bytes(), &[pk(&k)], &mut buf),
        Err(ManifestError::BadSignature)
    );
}

#[test]
fn envelope_errors() {
    let k = key(1);
    let env = sealed(&sample(), &[&k]);
    let mut buf = PayloadBuf::default();
    let keys = [pk(&k)];
    // Truncated anywhere: malformed, never accepted.
    for cut in [1, 10, env.len() / 2, env.len() - 1] {
        assert!(matches!(
            open(&env[..cut], &keys, &mut buf),
            Err(ManifestError::Malformed(_))
        ));
    }
    let text = String::from_utf8(env.clone()).unwrap();
    let retyped = text.replace(PAYLOAD_TYPE, "application/json");
    assert_eq!(
        open(retyped.as_bytes(), &keys, &mut buf),
        Err(ManifestError::WrongPayloadType)
    );
    let unsigned = std::format!("{}[]}}", &text[..text.find("[{").unwrap()]);
    assert_eq!(open(unsigned.as_bytes(), &keys, &mut buf), Err(ManifestError::Unsigned));
    let big = [b' '; MAX_ENVELOPE + 1];
    assert_eq!(
        open(&big, &keys, &mut buf),
        Err(ManifestError::TooLarge { len: MAX_ENVELOPE + 1 })
    );
    let trailing = std::format!("{text}x");
    assert!(matches!(
        open(trailing.as_bytes(), &keys, &mut buf),
        Err(ManifestError::Malformed(_))
    ));
}

#[test]
fn field_limits_and_forms() {
    let long = "a".repeat(33);
    let cases: [(Manifest<'_>, ManifestError); 7] = [
        (
            Manifest {
                product: &long,
                ..sample()
            },
            ManifestError::FieldTooLong {
                field: "product",
                max: 32,
            },
        ),
        (
            Manifest { board: "", ..sample() },
            ManifestError::FieldInvalid { field: "board" },
        ),
        (
            Manifest {
                chip: "ESP32",
                ..sample()
            },
            ManifestError::FieldInvalid { field: "chip" },
        ),
        (
            Manifest {
                version: "1.2",
                ..sample()
            },
            ManifestError::BadVersion(VersionError::NotThreeNumbers),
        ),
        (
            Manifest {
                sha256: "ABC",
                ..sample()
            },
            ManifestError::BadSha256,
        ),
        (Manifest { size: 0, ..sample() }, ManifestError::ZeroSize),
        (
            Manifest {
                created: "2026-13-01T00:00:00Z",
                ..sample()
            },
            ManifestError::BadCreated,
        ),
    ];
    let mut out = [0u8; MAX_PAYLOAD];
    for (m, err) in cases {
        assert_eq!(m.encode(&mut out), Err(err.clone()));
        // The device gets the same answer from a payload someone signed anyway.
        let json = serde_json_core::to_string::<_, 1024>(&m).unwrap();
        let k = key(3);
        let env = reseal_payload(&json, &[&k]);
        assert_eq!(open(&env, &[pk(&k)], &mut PayloadBuf::default()), Err(err));
    }
}

#[test]
fn schema_missing_fields_and_unknown_fields() {
    let k = key(4);
    let keys = [pk(&k)];
    let mut buf = PayloadBuf::default();
    let newer = r#"{"schema":2,"product":"p"}"#;
    assert_eq!(
        open(&reseal_payload(newer, &[&k]), &keys, &mut buf),
        Err(ManifestError::UnsupportedSchema { found: 2 })
    );
    let missing = r#"{"schema":1,"product":"p","channel":"c"}"#;
    match open(&reseal_payload(missing, &[&k]), &keys, &mut buf) {
        Err(ManifestError::PayloadMalformed(e)) => {
            assert!(std::format!("{e}").contains("version"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // A later field this firmware does not know is skipped.
    let json = serde_json_core::to_string::<_, 1024>(&sample()).unwrap();
    let extended = std::format!(
        "{},\"sparse\":{{\"from\":10,\"tags\":[\"a\"]}}}}",
        &json[..json.len() - 1]
    );
    assert_eq!(
        open(&reseal_payload(&extended, &[&k]), &keys, &mut buf).unwrap().0,
        sample()
    );
    // A patch member reads back as written, and a later member inside it is skipped.
    let with_patch = Manifest {
        delta: Some(Patch {
            image: "../images/ab.from-cd.otd",
            size: 9_000,
            base_sha256: "cd00000000000000000000000000000000000000000000000000000000000000",
            base_size: 300_000,
        }),
        ..sample()
    };
    let json = serde_json_core::to_string::<_, 1024>(&with_patch).unwrap();
    let json = json.replace("\"base_size\":300000", "\"base_size\":300000,\"window\":[1]");
    assert_eq!(
        open(&reseal_payload(&json, &[&k]), &keys, &mut buf).unwrap().0,
        with_patch
    );
    let json = serde_json_core::to_string::<_, 1024>(&sample()).unwrap();
    // A duplicated field is not a second opinion.
    let dup = std::format!("{},\"version\":\"9.0.0\"}}", &json[..json.len() - 1]);
    assert!(matches!(
        open(&reseal_payload(&dup, &[&k]), &keys, &mut buf),
        Err(ManifestError::PayloadMalformed(_))
    ));
}

#[test]
fn rollout_is_signed_and_read_back() {
    let k = key(7);
    let keys = [pk(&k)];
    let ids = ["bench-1"];
    let staged = Manifest {
        rollout: Some(Rollout {
            percent: 5,
            state: rollout::RolloutState::Active,
            devices: rollout::DeviceList::Ids(&ids),
        }),
        ..sample()
    };
    let mut buf = PayloadBuf::default();
    let (m, _) = open(&sealed(&staged, &[&k]), &keys, &mut buf).unwrap();
    assert_eq!(m, staged);
    assert_eq!(m.rollout().percent, 5);
    assert!(m.rollout().devices.contains("bench-1"));
    // No member: everyone.
    assert_eq!(sample().rollout(), Rollout::FULL);
    // A bad member signed anyway is refused with its reason.
    let json = serde_json_core::to_string::<_, 1024>(&sample()).unwrap();
    let bad = std::format!(
        "{},\"rollout\":{{\"percent\":120,\"state\":\"active\"}}}}",
        &json[..json.len() - 1]
    );
    assert_eq!(
        open(&reseal_payload(&bad, &[&k]), &keys, &mut buf),
        Err(ManifestError::Rollout(RolloutError::PercentTooHigh(120)))
    );
    let bad = Manifest {
        rollout: Some(Rollout {
            percent: 101,
            ..Rollout::FULL
        }),
        ..sample()
    };
    assert_eq!(
        bad.encode(&mut [0u8; MAX_PAYLOAD]),
        Err(ManifestError::Rollout(RolloutError::PercentTooHigh(101)))
    );
}

#[test]
fn payload_json_errors_say_what_and_where() {
    let k = key(6);
    let keys = [pk(&k)];
    let mut buf = PayloadBuf::default();
    let json = serde_json_core::to_string::<_, 1024>(&sample()).unwrap();
    let open_payload = |payload: &str, buf: &mut PayloadBuf| {
        let env = reseal_payload(payload, &[&k]);
        match open(&env, &keys, buf) {
            Err(ManifestError::PayloadMalformed(e)) => e,
            other => panic!("{payload}: {other:?}"),
        }
    };
    // A number where a string belongs, at the byte where it starts.
    let retyped = json.replace("\"chip\":\"esp32\"", "\"chip\":32");
    let at = retyped.find(":32").unwrap() + 1;
    assert_eq!(
        open_payload(&retyped, &mut buf),
        JsonError::Expected {
            expected: "a string",
            at
        }
    );
    // An escape could spell a different text than the bytes a person reviews.
    let escaped = json.replace("\"board\":\"m5stack-core\"", "\"board\":\"m5stack\\u002dcore\"");
    assert!(matches!(
        open_payload(&escaped, &mut buf),
        JsonError::StringNotPlain { .. }
    ));
    // A size that does not fit the device's counters.
    let huge = json.replace("\"size\":233040", "\"size\":4294967296");
    assert!(matches!(open_payload(&huge, &mut buf), JsonError::NotU32 { .. }));
    // The message names the problem for the console.
    let e = ManifestError::PayloadMalformed(open_payload(&retyped, &mut buf));
    assert!(std::format!("{e}").contains("expected a string at byte"), "{e}");
}

#[test]
fn payload_limit() {
    let k = key(5);
    let mut out = [0u8; MAX_ENVELOPE * 2];
    assert_eq!(
        seal(&[b' '; MAX_PAYLOAD + 1], &[&k], &mut out),
        Err(ManifestError::PayloadTooLarge)
    );
    assert_eq!(PAYLOAD_BUF_LEN, 1088);
    assert_eq!(core::mem::size_of::<PayloadBuf>(), PAYLOAD_BUF_LEN);
}

#[test]
fn key_id_is_sha256_prefix() {
    let k = pk(&key(1));
    assert_eq!(key_id(&k)[..], Sha256::digest(k)[..8]);
    let mut hex = [0u8; 16];
    assert_eq!(parse_hex::<8>(write_hex(&key_id(&k), &mut hex)), Some(key_id(&k)));
}
