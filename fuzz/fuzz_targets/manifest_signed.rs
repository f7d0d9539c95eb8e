//! Structure-aware: arbitrary manifest payloads, hostile in content (any strings, numbers
//! of any type and size, duplicate, missing and unknown members, odd rollouts, raw JSON
//! tokens) but correctly signed with the harness's trusted key (sometimes next to a
//! stranger's signature).
//!
//! Asserts: a well-signed envelope is never refused for its envelope or signature; an
//! accepted manifest agrees with a second JSON parser (serde_json) on every field, so host
//! and device cannot read one manifest two ways; and the checks of `check_accepted`.
#![no_main]

use arbitrary::Arbitrary;
use device_fw::wire::manifest::{self, MAX_ENVELOPE, MAX_PAYLOAD, ManifestError, PayloadBuf};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::manifest_keys;

#[derive(Debug, Arbitrary)]
enum Value {
    Str(String),
    Num(u64),
    Neg(i64),
    Float(f64),
    Bool(bool),
    Null,
    /// Raw tokens, whatever they spell.
    Raw(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
    Rollout {
        percent: u32,
        state: u8,
        devices: Vec<String>,
    },
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Set(u8, Value),
    Remove(u8),
    Duplicate(u8),
    Add(String, Value),
    /// Leading and trailing white space of the whole payload.
    Pad(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    edits: Vec<Edit>,
    stranger_first: Option<bool>,
}

const KEYS: [&str; 12] = [
    "schema",
    "product",
    "channel",
    "version",
    "chip",
    "board",
    "image",
    "size",
    "sha256",
    "secure_version",
    "created",
    "rollout",
];

fn base() -> Vec<(String, String)> {
    let v = [
        "1",
        "\"field-logger\"",
        "\"stable\"",
        "\"1.4.2\"",
        "\"esp32\"",
        "\"m5stack-core\"",
        "\"../images/8f14e45fceea167a5a36dedd4bea2543a1b6c4d5e6f708192a3b4c5d6e7f8091.bin\"",
        "233040",
        "\"8f14e45fceea167a5a36dedd4bea2543a1b6c4d5e6f708192a3b4c5d6e7f8091\"",
        "0",
        "\"2026-11-24T04:00:00Z\"",
        "{\"percent\":25,\"state\":\"active\",\"devices\":[\"dev-0001\"]}",
    ];
    KEYS.iter()
        .zip(v)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(v: &Value, out: &mut String, depth: u32) {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match v {
        Value::Str(s) => out.push_str(&json(s)),
        Value::Num(n) => out.push_str(&n.to_string()),
        Value::Neg(n) => out.push_str(&n.to_string()),
        Value::Float(f) if f.is_finite() => out.push_str(&format!("{f:?}")),
        Value::Float(_) => out.push_str("1e999"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Raw(r) => out.push_str(r),
        Value::Arr(items) if depth < 8 => {
            out.push('[');
            for (i, item) in items.iter().take(20).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Obj(members) if depth < 8 => {
            out.push('{');
            for (i, (k, item)) in members.iter().take(20).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json(k));
                out.push(':');
                write(item, out, depth + 1);
            }
            out.push('}');
        }
        Value::Arr(_) | Value::Obj(_) => out.push_str("[]"),
        Value::Rollout {
            percent,
            state,
            devices,
        } => {
            let state = ["active", "paused", "halted", "ACTIVE", ""][usize::from(*state) % 5];
            out.push_str(&format!("{{\"percent\":{percent},\"state\":\"{state}\",\"devices\":["));
            for (i, d) in devices.iter().take(20).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json(d));
            }
            out.push_str("]}");
        }
    }
}

fuzz_target!(|input: Input| {
    let mut members = base();
    let mut pad = 0u8;
    for edit in input.edits.iter().take(32) {
        let pick = |i: &u8, len: usize| usize::from(*i) % len.max(1);
        match edit {
            Edit::Set(i, v) if !members.is_empty() => {
                let at = pick(i, members.len());
                let mut s = String::new();
                write(v, &mut s, 0);
                members[at].1 = s;
            }
            Edit::Remove(i) if !members.is_empty() => {
                let at = pick(i, members.len());
                members.remove(at);
            }
            Edit::Duplicate(i) if !members.is_empty() => {
                let at = pick(i, members.len());
                let m = members[at].clone();
                members.push(m);
            }
            Edit::Add(k, v) => {
                let mut s = String::new();
                write(v, &mut s, 0);
                members.push((k.clone(), s));
            }
            Edit::Pad(n) => pad = *n % 8,
            _ => {}
        }
    }
    let mut payload = " ".repeat(usize::from(pad / 2));
    payload.push('{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            payload.push(',');
        }
        payload.push_str(&serde_json::to_string(k).unwrap_or_default());
        payload.push(':');
        payload.push_str(v);
    }
    payload.push('}');
    payload.push_str(&"\n".repeat(usize::from(pad % 2)));
    if payload.len() > MAX_PAYLOAD {
        return;
    }

    let signer = manifest_keys::trusted_signer();
    let stranger = manifest_keys::stranger();
    let signers = match input.stranger_first {
        None => vec![&signer],
        Some(true) => vec![&stranger, &signer],
        Some(false) => vec![&signer, &stranger],
    };
    let mut envelope = [0u8; 2 * MAX_ENVELOPE];
    let n = match manifest::seal(payload.as_bytes(), &signers, &mut envelope) {
        Ok(n) => n,
        Err(ManifestError::TooLarge { .. } | ManifestError::BufferFull) => return,
        Err(e) => panic!("seal refused a payload within limits: {e}"),
    };
    let keys = manifest_keys::trusted();
    let mut buf = PayloadBuf::default();
    match manifest::open(&envelope[..n], &keys, &mut buf) {
        Ok((m, key)) => {
            assert_eq!(key, 0, "verified by a key that did not sign");
            manifest_keys::check_accepted(&m);
            let oracle: serde_json::Value = match serde_json::from_str(&payload) {
                Ok(v) => v,
                // Valid JSON (RFC 8259 sets no range) that serde_json will not hold, in a
                // member the device skips unread.
                Err(e) if e.to_string().starts_with("number out of range") => return,
                Err(e) => panic!("the device accepted a payload that is not JSON: {e}"),
            };
            let text = |k: &str| oracle.get(k).and_then(|v| v.as_str());
            let num = |k: &str| oracle.get(k).and_then(|v| v.as_u64());
            assert_eq!(text("product"), Some(m.product));
            assert_eq!(text("channel"), Some(m.channel));
            assert_eq!(text("version"), Some(m.version));
            assert_eq!(text("chip"), Some(m.chip));
            assert_eq!(text("board"), Some(m.board));
            assert_eq!(text("image"), Some(m.image));
            assert_eq!(text("sha256"), Some(m.sha256));
            assert_eq!(text("created"), Some(m.created));
            assert_eq!(num("schema"), Some(u64::from(m.schema)));
            assert_eq!(num("size"), Some(u64::from(m.size)));
            assert_eq!(num("secure_version"), Some(u64::from(m.secure_version)));
            match (oracle.get("rollout"), m.rollout) {
                (None, None) => {}
                (Some(r), Some(mr)) => {
                    assert_eq!(r.get("percent").and_then(|p| p.as_u64()), Some(u64::from(mr.percent)));
                    assert_eq!(r.get("state").and_then(|s| s.as_str()), Some(mr.state.as_str()));
                }
                (o, d) => panic!("rollout read differently: serde_json {o:?}, device {d:?}"),
            }
        }
        Err(
            e @ (ManifestError::TooLarge { .. }
            | ManifestError::Malformed(_)
            | ManifestError::WrongPayloadType
            | ManifestError::PayloadNotBase64
            | ManifestError::PayloadTooLarge
            | ManifestError::Unsigned
            | ManifestError::SignatureMalformed
            | ManifestError::UnknownKey
            | ManifestError::BadSignature),
        ) => panic!("a well-signed envelope was refused: {e}"),
        Err(_) => {}
    }
});
