//! `otactl keygen` and `otactl verify`, run as a user runs them: the real binary, in a
//! temporary directory, with releases built here and, for URLs, a loopback HTTP server.

use std::collections::HashMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use device_fw::esp::image::{APP_DESC_OFFSET, CHIP_ESP32, CHIP_ESP32C3, build_test_image, reseal_test_image};
use device_fw::wire::manifest::{MAX_ENVELOPE, MAX_PAYLOAD, Manifest, key_id, seal, write_hex};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

fn otactl(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otactl"));
    cmd.current_dir(dir).args(args);
    // The URL tests talk to 127.0.0.1 only; a proxy from the environment must not route
    // them anywhere else.
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "*").env("no_proxy", "*");
    cmd.output().expect("run otactl")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// Runs `otactl keygen --out <prefix>` in `dir` and loads the private key back.
fn keygen(dir: &Path, prefix: &str) -> SigningKey {
    let out = otactl(dir, &["keygen", "--out", prefix]);
    assert!(out.status.success(), "{}", text(&out));
    let pem = fs::read_to_string(dir.join(format!("{prefix}.key"))).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = [0u8; 64];
    write_hex(&Sha256::digest(bytes), &mut hex).to_owned()
}

/// What a release states; `image` and the sha256/size are filled from the image unless set.
#[derive(Clone)]
struct Spec {
    version: &'static str,
    chip: &'static str,
    /// Overrides the manifest's sha256 and size (the image they were made for).
    made_for: Option<Vec<u8>>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            version: "1.4.2",
            chip: "esp32",
            made_for: None,
        }
    }
}

fn good_image() -> Vec<u8> {
    build_test_image(CHIP_ESP32, "1.4.2", "field-logger", b"the firmware")
}

fn envelope(spec: &Spec, image: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let stated = spec.made_for.as_deref().unwrap_or(image);
    let sha = sha256_hex(stated);
    let image_ref = format!("../images/{sha}.bin");
    let manifest = Manifest {
        schema: 1,
        product: "field-logger",
        channel: "stable",
        version: spec.version,
        chip: spec.chip,
        board: "m5stack-core",
        image: &image_ref,
        size: stated.len() as u32,
        sha256: &sha,
        secure_version: 0,
        created: "2026-11-24T04:00:00Z",
        rollout: None,
        compressed: None,
        delta: None,
    };
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = manifest.encode(&mut payload).unwrap();
    let mut out = [0u8; MAX_ENVELOPE];
    let len = seal(&payload[..n], keys, &mut out).unwrap();
    out[..len].to_vec()
}

/// Lays a release out as `otactl release` publishes it: `<root>/stable/manifest.json` and the
/// image at `<root>/images/<sha256 the manifest states>.bin`. Returns the manifest path.
fn publish(root: &Path, spec: &Spec, image: &[u8], keys: &[&SigningKey]) -> PathBuf {
    let stated = spec.made_for.as_deref().unwrap_or(image);
    fs::create_dir_all(root.join("stable")).unwrap();
    fs::create_dir_all(root.join("images")).unwrap();
    fs::write(root.join(format!("images/{}.bin", sha256_hex(stated))), image).unwrap();
    let manifest = root.join("stable/manifest.json");
    fs::write(&manifest, envelope(spec, image, keys)).unwrap();
    manifest
}

struct Bench {
    dir: TempDir,
    key: SigningKey,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path(), "keys/otactl");
        Bench { dir, key }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn verify(&self, args: &[&str]) -> Output {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        otactl(self.path(), &all)
    }

    /// Publishes under `dist/` signed with `keys` and verifies it with keys/otactl.pub as JSON.
    fn verify_release(&self, spec: &Spec, image: &[u8], keys: &[&SigningKey]) -> (Output, Value) {
        publish(&self.path().join("dist"), spec, image, keys);
        let out = self.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub", "--json"]);
        let v = json(&out);
        (out, v)
    }

    /// A release that must be rejected with exit 1 at `check`; returns the error text.
    fn rejected(&self, spec: &Spec, image: &[u8], keys: &[&SigningKey], check: &str) -> String {
        let (out, v) = self.verify_release(spec, image, keys);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert_eq!(v["ok"], false);
        assert_eq!(v["exit_code"], 1);
        let last = v["checks"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["check"].as_str(), last["ok"].as_bool()),
            (Some(check), Some(false)),
            "{v}"
        );
        v["error"].as_str().unwrap().to_owned()
    }
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = otactl(dir.path(), &["keygen", "--out", "ci/keys/fleet.v2"]);
    assert!(out.status.success(), "{}", text(&out));
    let private = dir.path().join("ci/keys/fleet.v2.key");
    let public = dir.path().join("ci/keys/fleet.v2.pub");
    let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");

    let private_pem = fs::read_to_string(&private).unwrap();
    let public_pem = fs::read_to_string(&public).unwrap();
    assert!(
        private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{private_pem}"
    );
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{public_pem}");

    let key = SigningKey::from_pkcs8_pem(&private_pem).unwrap();
    let mut hex = [0u8; 16];
    let id = write_hex(&key_id(key.verifying_key().as_bytes()), &mut hex);
    let shown = text(&out);
    assert!(shown.contains(id), "{shown}");
    assert!(
        shown.contains("ci/keys/fleet.v2.key") && shown.contains("ci/keys/fleet.v2.pub"),
        "{shown}"
    );
    for line in private_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "keygen printed the private key");
    }

    // Two runs never make the same key.
    let other = keygen(dir.path(), "other");
    assert_ne!(other.to_bytes(), key.to_bytes());
}

#[test]
fn keygen_refuses_to_overwrite_either_file() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "keys/otactl");
    let private = dir.path().join("keys/otactl.key");
    let public = dir.path().join("keys/otactl.pub");
    let before = (fs::read(&private).unwrap(), fs::read(&public).unwrap());

    let out = otactl(dir.path(), &["keygen"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("keys/otactl.key already exists"), "{}", text(&out));
    assert_eq!((fs::read(&private).unwrap(), fs::read(&public).unwrap()), before);

    // Only the public half left over: still refused, and no private key appears beside it.
    fs::remove_file(&private).unwrap();
    let out = otactl(dir.path(), &["keygen", "--out", "keys/otactl"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("keys/otactl.pub already exists"), "{}", text(&out));
    assert!(!private.exists());
    assert_eq!(fs::read(&public).unwrap(), before.1);
}

#[test]
fn verify_accepts_a_good_release() {
    let bench = Bench::new();
    let image = good_image();
    publish(&bench.path().join("dist"), &Spec::default(), &image, &[&bench.key]);

    let out = bench.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for line in [
        "✓ signature  verified by keys/otactl.pub",
        "✓ size",
        "✓ sha256",
        "✓ app image",
        "✓ chip       image is for esp32",
        "✓ version    app descriptor says 1.4.2",
        "verified: field-logger 1.4.2 for esp32 (m5stack-core) on channel stable",
    ] {
        assert!(shown.contains(line), "missing {line:?} in\n{shown}");
    }
    assert!(!shown.contains("UNVERIFIED"), "{shown}");

    let out = bench.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["signature_verified"], true);
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["release"]["version"], "1.4.2");
    assert_eq!(v["release"]["chip"], "esp32");
    assert_eq!(v["release"]["size"], image.len());
    assert_eq!(v["release"]["sha256"], sha256_hex(&image));
    assert_eq!(v["key"]["file"], "keys/otactl.pub");
    assert_eq!(v["image"], format!("dist/images/{}.bin", sha256_hex(&image)));
    let checks: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["ok"], true, "{c}");
            c["check"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        checks,
        [
            "signature",
            "size",
            "sha256",
            "app image",
            "chip",
            "version",
            "secure_version"
        ]
    );

    // --image checks another copy of the image (a CI artifact before upload).
    fs::write(bench.path().join("build.bin"), &image).unwrap();
    let out = bench.verify(&[
        "dist/stable/manifest.json",
        "--key",
        "keys/otactl.pub",
        "--image",
        "build.bin",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn verify_rejects_each_kind_of_bad_release_with_its_own_reason() {
    let bench = Bench::new();
    let stranger = keygen(bench.path(), "keys/stranger");
    let good = good_image();
    let mut messages = Vec::new();

    // Signed by a key the devices do not trust; what it claims is still shown, as unverified.
    let (out, v) = bench.verify_release(&Spec::default(), &good, &[&stranger]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("not signed by any of the given keys"), "{error}");
    assert_eq!(v["signature_verified"], false);
    assert_eq!(v["release"]["version"], "1.4.2");
    let mut hex = [0u8; 16];
    let stranger_id = write_hex(&key_id(stranger.verifying_key().as_bytes()), &mut hex);
    assert!(v["help"].as_str().unwrap().contains(stranger_id), "{v}");
    let human = bench.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub"]);
    assert_eq!(human.status.code(), Some(1));
    assert!(text(&human).contains("UNVERIFIED"), "{}", text(&human));
    assert!(
        text(&human).contains("✗ signature  not signed by any of the given keys"),
        "{}",
        text(&human)
    );
    messages.push(error.to_owned());

    // A payload swapped for another (version 9.9.9) under the original signature.
    let manifest = publish(&bench.path().join("dist"), &Spec::default(), &good, &[&bench.key]);
    let original = fs::read_to_string(&manifest).unwrap();
    let other = String::from_utf8(envelope(
        &Spec {
            version: "9.9.9",
            ..Spec::default()
        },
        &good,
        &[&bench.key],
    ))
    .unwrap();
    let payload_of = |t: &str| {
        t.split("\"payload\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    fs::write(&manifest, original.replace(&payload_of(&original), &payload_of(&other))).unwrap();
    let out = bench.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("altered after signing"), "{error}");
    assert_eq!(
        (v["signature_verified"].as_bool(), v["release"]["version"].as_str()),
        (Some(false), Some("9.9.9"))
    );
    messages.push(error.to_owned());

    // Another image of the same size under the manifest's name.
    let imposter = build_test_image(CHIP_ESP32, "1.4.2", "field-logger", b"THE FIRMWARE");
    assert_eq!(imposter.len(), good.len());
    let spec = Spec {
        made_for: Some(good.clone()),
        ..Spec::default()
    };
    let error = bench.rejected(&spec, &imposter, &[&bench.key], "sha256");
    assert!(
        error.contains(&format!("manifest says {}", sha256_hex(&good))),
        "{error}"
    );
    messages.push(error);

    // A truncated upload.
    let error = bench.rejected(&spec, &good[..good.len() - 16], &[&bench.key], "size");
    assert!(
        error.contains(&format!(
            "image is {} bytes, the manifest says {}",
            good.len() - 16,
            good.len()
        )),
        "{error}"
    );
    messages.push(error);

    // A manifest made for another build: the image says 1.4.1.
    let old = build_test_image(CHIP_ESP32, "1.4.1", "field-logger", b"the firmware");
    let error = bench.rejected(&Spec::default(), &old, &[&bench.key], "version");
    assert!(
        error.contains("app descriptor says 1.4.1, the manifest says 1.4.2"),
        "{error}"
    );
    messages.push(error);

    // An ESP32-C3 build in an ESP32 release.
    let c3 = build_test_image(CHIP_ESP32C3, "1.4.2", "field-logger", b"the firmware");
    let error = bench.rejected(&Spec::default(), &c3, &[&bench.key], "chip");
    assert!(
        error.contains("built for esp32c3 (chip id 5), the manifest says esp32"),
        "{error}"
    );
    messages.push(error);

    // An image built with anti-rollback counter 3 under a manifest that says 0.
    let mut counted = good.clone();
    counted[APP_DESC_OFFSET + 4..APP_DESC_OFFSET + 8].copy_from_slice(&3u32.to_le_bytes());
    reseal_test_image(&mut counted);
    let error = bench.rejected(&Spec::default(), &counted, &[&bench.key], "secure_version");
    assert!(error.contains("app descriptor says 3, the manifest says 0"), "{error}");
    messages.push(error);

    // Not an app image at all (a bootloader, say), though hash and size match.
    let mut not_app = good.clone();
    not_app[0] = 0x7F;
    let error = bench.rejected(&Spec::default(), &not_app, &[&bench.key], "app image");
    assert!(error.contains("not an ESP app image"), "{error}");
    messages.push(error);

    for (i, a) in messages.iter().enumerate() {
        for b in &messages[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn verify_accepts_the_successor_key_during_a_rotation() {
    let bench = Bench::new();
    let next = keygen(bench.path(), "keys/next");
    let image = good_image();
    publish(&bench.path().join("dist"), &Spec::default(), &image, &[&next]);

    let out = bench.verify(&[
        "dist/stable/manifest.json",
        "--key",
        "keys/otactl.pub",
        "--key",
        "keys/next.pub",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["key"]["file"], "keys/next.pub");

    // The old key alone no longer covers it.
    let out = bench.verify(&["dist/stable/manifest.json", "--key", "keys/otactl.pub"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // A device holds two keys; a third is a mistake, not a rotation.
    let out = bench.verify(&[
        "dist/stable/manifest.json",
        "--key",
        "keys/otactl.pub",
        "--key",
        "keys/next.pub",
        "--key",
        "keys/next.pub",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("at most 2 keys"), "{}", text(&out));
}

#[test]
fn verify_exit_2_when_it_cannot_look() {
    let bench = Bench::new();
    let code = |args: &[&str]| {
        let out = bench.verify(args);
        (out.status.code(), text(&out))
    };

    let (status, shown) = code(&["missing.json", "--key", "keys/otactl.pub"]);
    assert_eq!(status, Some(2), "{shown}");
    assert!(shown.contains("cannot read manifest missing.json"), "{shown}");

    let (status, shown) = code(&["missing.json", "--key", "keys/missing.pub"]);
    assert_eq!(status, Some(2), "{shown}");
    assert!(shown.contains("keys/missing.pub"), "{shown}");

    // Nothing listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/stable/manifest.json");
    let (status, shown) = code(&[&url, "--key", "keys/otactl.pub"]);
    assert_eq!(status, Some(2), "{shown}");
    assert!(shown.contains("cannot fetch manifest"), "{shown}");

    let (status, shown) = code(&["ftp://example/manifest.json", "--key", "keys/otactl.pub"]);
    assert_eq!(status, Some(2), "{shown}");

    // The manifest is fine but the image it names is missing.
    publish(
        &bench.path().join("dist"),
        &Spec::default(),
        &good_image(),
        &[&bench.key],
    );
    fs::remove_dir_all(bench.path().join("dist/images")).unwrap();
    let (status, shown) = code(&["dist/stable/manifest.json", "--key", "keys/otactl.pub", "--json"]);
    assert_eq!(status, Some(2), "{shown}");
    assert!(shown.contains("cannot read image dist/images/"), "{shown}");

    // Larger than any manifest a device reads: not a release (exit 1), and never read whole.
    fs::write(bench.path().join("big.json"), vec![b' '; MAX_ENVELOPE + 1]).unwrap();
    let (status, shown) = code(&["big.json", "--key", "keys/otactl.pub"]);
    assert_eq!(status, Some(1), "{shown}");
    assert!(shown.contains("more than the 2048 bytes"), "{shown}");
}

/// Serves `files` (and 302s for `redirects`) on 127.0.0.1 until `requests` were answered or
/// 20 s passed, so a failing test never leaves it running. Returns the base URL.
fn serve(
    files: HashMap<String, Vec<u8>>,
    redirects: HashMap<String, String>,
    requests: usize,
) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let files = Arc::new(files);
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.len() < requests && Instant::now() < deadline {
            let (mut stream, _) = match listener.accept() {
                Ok(conn) => conn,
                Err(_) => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, extra, body) = match (files.get(&path), redirects.get(&path)) {
                (Some(body), _) => ("200 OK", String::new(), body.clone()),
                (None, Some(to)) => ("302 Found", format!("Location: {to}\r\n"), Vec::new()),
                (None, None) => ("404 Not Found", String::new(), b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
            seen.push(path);
        }
        seen
    });
    (base, handle)
}

#[test]
fn verify_over_http_resolves_the_image_against_the_manifest_url() {
    let bench = Bench::new();
    let image = good_image();
    let sha = sha256_hex(&image);
    let files = HashMap::from([
        (
            "/fleet/stable/manifest.json".to_owned(),
            envelope(&Spec::default(), &image, &[&bench.key]),
        ),
        (format!("/fleet/images/{sha}.bin"), image.clone()),
    ]);
    let (base, server) = serve(files.clone(), HashMap::new(), 2);
    let url = format!("{base}/fleet/stable/manifest.json");

    let out = bench.verify(&[&url, "--key", "keys/otactl.pub", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["image"], format!("{base}/fleet/images/{sha}.bin"));
    assert_eq!(
        server.join().unwrap(),
        [
            "/fleet/stable/manifest.json".to_owned(),
            format!("/fleet/images/{sha}.bin")
        ]
    );

    // Behind a redirect, the image resolves against where the manifest really is.
    let redirects = HashMap::from([("/latest".to_owned(), "/fleet/stable/manifest.json".to_owned())]);
    let (base, server) = serve(files, redirects, 3);
    let out = bench.verify(&[&format!("{base}/latest"), "--key", "keys/otactl.pub"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("✓ version"), "{}", text(&out));
    assert_eq!(server.join().unwrap().len(), 3);

    // A 404 is the server's answer, not the release's fault: exit 2.
    let (base, server) = serve(HashMap::new(), HashMap::new(), 1);
    let out = bench.verify(&[&format!("{base}/nothing.json"), "--key", "keys/otactl.pub", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        json(&out)["error"].as_str().unwrap().contains("HTTP 404"),
        "{}",
        text(&out)
    );
    server.join().unwrap();
}
