//! `otactl release` into a `file://` bucket, run as a person or a CI job runs it: the real
//! binary, keys from `otactl keygen`, images and ELFs made here, `otactl verify` on what
//! was published, and after every refusal a check that the bucket still holds only the
//! complete release it held before.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, CHIP_ESP32C3, build_test_image};
use support::{Project, Published, check_bucket, code, json, otactl, sha256_hex, text};

const PROFILE: &str = "c3";

fn image(version: &str, payload: &[u8]) -> Vec<u8> {
    build_test_image(CHIP_ESP32C3, version, "field-logger", payload)
}

fn setup() -> (Project, String) {
    let p = Project::new();
    let profile = p.profile(PROFILE, "esp32c3", "", "");
    (p, profile)
}

fn publish(p: &Project, profile: &str, version: &str, payload: &[u8]) -> Output {
    let file = p.write(&format!("fw/{version}-{}.bin", payload.len()), &image(version, payload));
    p.release(profile, &["--image", &file, "--bucket", "dist", "--json"])
}

fn manifest_bytes(p: &Project) -> Option<Vec<u8>> {
    fs::read(p.path().join("dist/stable/manifest.json")).ok()
}

fn holds(p: &Project) -> Vec<Published> {
    check_bucket(&p.path().join("dist"), &p.public_key())
}

fn versions(p: &Project) -> Vec<String> {
    holds(p).into_iter().map(|r| r.version).collect()
}

fn refused(out: &Output, exit: i32, needle: &str) {
    assert_eq!(code(out), exit, "{}", text(out));
    let j = json(out);
    assert_eq!(j["ok"], false);
    let error = j["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "error `{error}` should mention `{needle}`");
    // Said once: an error that quotes its cause must not get the cause appended again.
    assert_eq!(error.matches(needle).count(), 1, "`{needle}` repeated in `{error}`");
    assert_eq!(j["exit_code"], exit);
}

#[test]
fn a_release_is_published_and_verifies() {
    let (p, profile) = setup();
    let img = image("1.0.0", b"first firmware");
    let file = p.write("fw/app.bin", &img);
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    let sha = sha256_hex(&img);
    let root = fs::canonicalize(p.path()).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["outcome"], "published");
    assert_eq!(j["version"], "1.0.0");
    assert_eq!(j["channel"], "stable");
    assert_eq!(j["chip"], "esp32c3");
    assert_eq!(j["source"], "image");
    assert_eq!(j["sha256"], sha.as_str());
    assert_eq!(j["sizes"]["image"], img.len());
    assert!(j["sizes"]["manifest"].as_u64().unwrap() > 100);
    assert_eq!(j["bucket"], format!("file://{}/dist", root.display()));
    let image_key = format!("images/{sha}.bin");
    assert_eq!(j["objects"]["image"]["key"], image_key.as_str());
    assert_eq!(j["objects"]["image"]["upload"], "uploaded");
    assert_eq!(
        j["objects"]["image"]["device_url"],
        format!("http://ota.test/fleet/{image_key}")
    );
    // The compressed form beside it, listed in the manifest; it decodes to the image.
    let packed_key = format!("images/{sha}.otz2");
    assert_eq!(j["objects"]["compressed"]["key"], packed_key.as_str());
    assert_eq!(j["objects"]["compressed"]["upload"], "uploaded");
    let packed = fs::read(p.path().join("dist").join(&packed_key)).unwrap();
    assert_eq!(j["sizes"]["compressed"], packed.len());
    assert_eq!(packed, device_fw::wire::compressed::compress(&img).unwrap());
    let payload = support::manifest_payload(&manifest_bytes(&p).unwrap());
    assert_eq!(payload["lzma"]["image"], format!("../{packed_key}"));
    assert_eq!(payload["lzma"]["size"], packed.len());
    assert_eq!(payload["image"], format!("../{image_key}"));
    assert_eq!(payload["size"], img.len());
    assert_eq!(j["objects"]["manifest"]["key"], "stable/manifest.json");
    assert_eq!(j["objects"]["manifest"]["write"], "created");
    assert_eq!(
        j["objects"]["manifest"]["url"],
        format!("file://{}/dist/stable/manifest.json", root.display())
    );
    assert_eq!(
        j["objects"]["manifest"]["device_url"],
        "http://ota.test/fleet/stable/manifest.json"
    );
    assert!(j["previous"].is_null());

    let verified = p.verify("dist/stable/manifest.json");
    assert_eq!(code(&verified), 0, "{}", text(&verified));
    assert_eq!(
        holds(&p),
        [Published {
            channel: "stable".into(),
            version: "1.0.0".into(),
            sha256: sha
        }]
    );

    // Nothing of the private key ever reaches the output.
    let key = fs::read_to_string(p.path().join("keys/otactl.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(!text(&out).contains(body));

    // The absolute URL form, and the bucket from the profile relative to the profile.
    let abs = format!("file://{}/other", root.display());
    let out = p.release(&profile, &["--image", &file, "--bucket", &abs]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(p.path().join("other/stable/manifest.json").is_file());
    let with_bucket = p.profile("c3-bucket", "esp32c3", "bucket = \"file://../from-profile\"", "");
    let out = p.release(&with_bucket, &["--image", &file]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(p.path().join("from-profile/stable/manifest.json").is_file());
}

#[test]
fn the_signing_key_can_come_from_the_environment() {
    let (p, profile) = setup();
    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    let pem = fs::read_to_string(p.path().join("keys/otactl.key")).unwrap();
    // As some CI systems store a secret: on one line, with `\n` escapes.
    let one_line = pem.trim_end().replace('\n', "\\n");
    let out = otactl(p.path())
        .args(["release", "--profile", &profile, "--image", &file, "--bucket", "dist"])
        .env("OTACTL_SIGNING_KEY", one_line)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn the_same_release_again_is_a_no_op() {
    let (p, profile) = setup();
    let first = publish(&p, &profile, "1.0.0", b"same");
    assert_eq!(code(&first), 0, "{}", text(&first));
    let before = manifest_bytes(&p).unwrap();
    let again = publish(&p, &profile, "1.0.0", b"same");
    assert_eq!(code(&again), 0, "{}", text(&again));
    let j = json(&again);
    assert_eq!(j["outcome"], "unchanged");
    assert_eq!(j["objects"]["image"]["upload"], "present");
    assert_eq!(j["objects"]["manifest"]["write"], "unchanged");
    assert_eq!(manifest_bytes(&p).unwrap(), before, "the manifest is not rewritten");

    // An image lost from the bucket is put back; the manifest stays.
    let sha = j["sha256"].as_str().unwrap().to_owned();
    fs::remove_file(p.path().join(format!("dist/images/{sha}.bin"))).unwrap();
    let repaired = publish(&p, &profile, "1.0.0", b"same");
    assert_eq!(code(&repaired), 0, "{}", text(&repaired));
    assert_eq!(json(&repaired)["objects"]["image"]["upload"], "uploaded");
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn a_lower_version_is_refused_unless_allowed() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.1.0", b"a")), 0);
    let newer = publish(&p, &profile, "1.2.0", b"b");
    assert_eq!(code(&newer), 0, "{}", text(&newer));
    let j = json(&newer);
    assert_eq!(j["objects"]["manifest"]["write"], "replaced");
    assert_eq!(j["previous"]["version"], "1.1.0");
    assert_eq!(j["previous"]["verified"], true);
    let before = manifest_bytes(&p).unwrap();

    refused(&publish(&p, &profile, "1.1.5", b"c"), 1, "not newer");
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    // The same version with another image: devices that have 1.2.0 would never take it.
    refused(&publish(&p, &profile, "1.2.0", b"other"), 1, "another image");
    refused(&publish(&p, &profile, "1.2.0-rc.1", b"d"), 1, "not newer");
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    assert_eq!(versions(&p), ["1.2.0"]);

    let file = p.write("fw/old.bin", &image("1.1.5", b"c"));
    let allowed = p.release(&profile, &["--image", &file, "--bucket", "dist", "--allow-downgrade"]);
    assert_eq!(code(&allowed), 0, "{}", text(&allowed));
    assert_eq!(versions(&p), ["1.1.5"]);
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
}

#[test]
fn the_version_must_be_the_images() {
    let (p, profile) = setup();
    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist", "--version", "1.0.1"]);
    refused(&out, 1, "--version 1.0.1 does not match the image");
    assert!(manifest_bytes(&p).is_none(), "nothing is published");
    assert!(!p.path().join("dist/images").exists(), "not even the image");

    // Tags are often `v1.0.0`.
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist", "--version", "v1.0.0"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(versions(&p), ["1.0.0"]);

    let not_semver = p.write("fw/bad.bin", &image("nightly", b"x"));
    refused(
        &p.release(&profile, &["--image", &not_semver, "--bucket", "dist"]),
        1,
        "app version `nightly` is not semver",
    );
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn an_image_for_another_chip_is_refused() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", b"a")), 0);
    let before = manifest_bytes(&p).unwrap();
    let esp32 = p.write(
        "fw/esp32.bin",
        &build_test_image(CHIP_ESP32, "2.0.0", "field-logger", b"a"),
    );
    let out = p.release(&profile, &["--image", &esp32, "--bucket", "dist"]);
    refused(
        &out,
        1,
        "the image is for esp32 (chip id 0), but the profile's device is esp32c3",
    );
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn broken_images_and_elfs_are_refused() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", b"a")), 0);
    let before = manifest_bytes(&p).unwrap();
    let garbage = p.write("fw/garbage.bin", b"this is not an image");
    refused(
        &p.release(&profile, &["--image", &garbage, "--bucket", "dist"]),
        1,
        "not an image a device would boot",
    );
    let mut cut = image("2.0.0", &[7; 4000]);
    cut.truncate(1000);
    let cut = p.write("fw/cut.bin", &cut);
    refused(
        &p.release(&profile, &["--image", &cut, "--bucket", "dist"]),
        1,
        "truncated",
    );
    let no_desc = p.write("fw/no-desc.elf", &support::elf::c3_firmware("2.0.0", false));
    refused(
        &p.release(&profile, &["--elf", &no_desc, "--bucket", "dist"]),
        1,
        "app descriptor",
    );
    // Larger than the profile's OTA slot (0x1E0000 for a 4 MB flash).
    let big = p.write("fw/big.bin", &image("2.0.0", &vec![0x5A; 0x1E_0000]));
    refused(
        &p.release(&profile, &["--image", &big, "--bucket", "dist"]),
        1,
        "OTA slot",
    );
    let missing = p.release(&profile, &["--image", "fw/none.bin", "--bucket", "dist"]);
    refused(&missing, 2, "cannot read the image");
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn an_elf_becomes_the_released_image() {
    let (p, profile) = setup();
    let elf = p.write("fw/firmware.elf", &support::elf::c3_firmware("1.3.0", true));
    let out = p.release(&profile, &["--elf", &elf, "--bucket", "dist", "--version", "1.3.0"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["source"], "elf");
    assert_eq!(j["project"], "c3-logger");
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
    assert_eq!(versions(&p), ["1.3.0"]);
}

#[test]
fn key_problems_stop_before_the_bucket_is_touched() {
    let (p, profile) = setup();
    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    let release = |key: Option<&str>| {
        let mut cmd = otactl(p.path());
        cmd.args(["release", "--profile", &profile, "--image", &file, "--bucket", "dist"]);
        if let Some(key) = key {
            cmd.args(["--key", key]);
        }
        cmd.output().unwrap()
    };
    refused(&release(None), 2, "OTACTL_SIGNING_KEY is not set");
    refused(&release(Some("keys/otactl.pub")), 2, "a public key");
    refused(&release(Some("keys/missing.key")), 2, "cannot read key file");
    p.write(
        "keys/rsa.key",
        b"-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK==\n-----END RSA PRIVATE KEY-----\n",
    );
    refused(&release(Some("keys/rsa.key")), 2, "not an Ed25519 key");
    let other = otactl(p.path())
        .args(["keygen", "--out", "keys/other"])
        .output()
        .unwrap();
    assert!(other.status.success());
    refused(
        &release(Some("keys/other.key")),
        2,
        "is not one the profile's devices trust",
    );
    assert!(!p.path().join("dist").exists(), "the bucket was not even created");

    // A profile that trusts no key cannot be released to.
    let no_keys = "profiles/no-keys.toml";
    let text_without = fs::read_to_string(p.path().join(&profile))
        .unwrap()
        .replace("public_keys = [\"../keys/otactl.pub\"]", "");
    p.write(no_keys, text_without.as_bytes());
    refused(
        &p.release(no_keys, &["--image", &file, "--bucket", "dist"]),
        2,
        "lists no [release] public_keys",
    );

    // A public key the profile names but that is not there.
    let missing_pub = "profiles/missing-pub.toml";
    let text_missing = fs::read_to_string(p.path().join(&profile))
        .unwrap()
        .replace("../keys/otactl.pub", "../keys/gone.pub");
    p.write(missing_pub, text_missing.as_bytes());
    refused(
        &p.release(missing_pub, &["--image", &file, "--bucket", "dist"]),
        2,
        "cannot read key file",
    );
    assert!(!p.path().join("dist").exists());
}

#[test]
fn a_manifest_that_does_not_verify_is_not_replaced() {
    let (p, profile) = setup();
    p.write("dist/stable/manifest.json", b"{\"not\": \"a manifest\"}");
    let out = publish(&p, &profile, "1.0.0", b"x");
    refused(&out, 1, "does not verify with the profile's public keys");
    assert_eq!(manifest_bytes(&p).unwrap(), b"{\"not\": \"a manifest\"}");

    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist", "--allow-downgrade"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["previous"]["verified"], false);
    assert_eq!(versions(&p), ["1.0.0"]);
}

#[test]
fn a_dry_run_writes_nothing() {
    let (p, profile) = setup();
    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["outcome"], "dry-run");
    assert_eq!(j["objects"]["image"]["upload"], "would-upload");
    assert_eq!(j["objects"]["manifest"]["write"], "would-create");
    assert!(!p.path().join("dist").exists());

    assert_eq!(code(&publish(&p, &profile, "1.0.0", b"x")), 0);
    let before = manifest_bytes(&p).unwrap();
    let next = p.write("fw/next.bin", &image("1.1.0", b"y"));
    let out = p.release(&profile, &["--image", &next, "--bucket", "dist", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["objects"]["manifest"]["write"], "would-replace");
    assert_eq!(manifest_bytes(&p).unwrap(), before);
    // The raw image and its compressed form.
    assert_eq!(fs::read_dir(p.path().join("dist/images")).unwrap().count(), 2);
}

#[test]
fn the_firmware_is_built_for_the_profile() {
    let (p, profile) = setup();
    let elf = p.write("fw/built.elf", &support::elf::c3_firmware("1.4.0", true));
    let elf = p.path().join(elf);
    let cargo = p.path().join("fake-cargo");
    // Stands in for cargo: records how it was called and reports the ELF as cargo's JSON
    // messages do (a real firmware build needs the chip's toolchain and minutes).
    fs::write(
        &cargo,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > args.txt\nprintf '%s' \"$OTACTL_PROFILE\" > profile.txt\n\
             echo '{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"heapless\",\"kind\":[\"lib\"]}}}}'\n\
             echo '{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"otactl-fw\",\"kind\":[\"bin\"]}},\"executable\":\"{}\"}}'\n\
             echo '{{\"reason\":\"build-finished\",\"success\":true}}'\n",
            elf.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    let out = p
        .release_cmd(&profile, &["--bucket", "dist", "--json"])
        .env("CARGO", &cargo)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let args = fs::read_to_string(p.path().join("args.txt")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "build",
            "--profile",
            "firmware",
            "-p",
            "device-fw",
            "--bin",
            "otactl-fw",
            "--target",
            "riscv32imc-unknown-none-elf",
            "--features",
            "esp32c3",
            "--message-format=json-render-diagnostics"
        ]
    );
    let profile_env = fs::read_to_string(p.path().join("profile.txt")).unwrap();
    assert_eq!(
        Path::new(&profile_env),
        fs::canonicalize(p.path().join(&profile)).unwrap()
    );
    let j = json(&out);
    assert_eq!(j["source"], "build");
    assert_eq!(j["elf"], elf.display().to_string());
    assert_eq!(versions(&p), ["1.4.0"]);

    // A failing build: exit 2, cargo's own errors shown.
    fs::write(
        &cargo,
        "#!/bin/sh\necho 'error[E0425]: cannot find value `x` in this scope' >&2\nexit 101\n",
    )
    .unwrap();
    let out = p
        .release_cmd(&profile, &["--bucket", "dist", "--json"])
        .env("CARGO", &cargo)
        .output()
        .unwrap();
    refused(&out, 2, "the firmware build failed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0425"));
    assert_eq!(versions(&p), ["1.4.0"]);
}

/// Starts two releases that hold right before their manifest write (see `test_hold` in
/// src/release.rs), so both have read the same manifest, then lets both go at once.
fn race(p: &Project, profile: &str, versions: [&str; 2], extra: &[&str]) -> [Output; 2] {
    let go = p.path().join("go");
    let children: Vec<_> = versions
        .iter()
        .map(|v| {
            let file = p.write(&format!("fw/race-{v}.bin"), &image(v, v.as_bytes()));
            let mut args = vec!["--image", file.as_str(), "--bucket", "dist", "--json"];
            args.extend_from_slice(extra);
            p.release_cmd(profile, &args)
                .env("OTACTL_TEST_HOLD", &go)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = || {
        fs::read_dir(p.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".ready"))
            .count()
    };
    while ready() < 2 {
        assert!(
            Instant::now() < deadline,
            "the releases never got to their manifest write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::write(&go, b"").unwrap();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for f in fs::read_dir(p.path()).unwrap() {
        let path = f.unwrap().path();
        if path.to_string_lossy().ends_with(".ready") || path == go {
            fs::remove_file(path).unwrap();
        }
    }
    outputs.try_into().unwrap()
}

fn one_wins(outputs: &[Output; 2], versions: [&str; 2]) -> String {
    let winners: Vec<usize> = (0..2).filter(|&i| code(&outputs[i]) == 0).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one release wins:\n{}\n{}",
        text(&outputs[0]),
        text(&outputs[1])
    );
    let (winner, loser) = (winners[0], 1 - winners[0]);
    refused(&outputs[loser], 1, "lost a race on channel stable");
    let j = json(&outputs[loser]);
    assert!(
        j["help"]
            .as_str()
            .unwrap()
            .contains("nothing of this release is visible")
    );
    versions[winner].to_owned()
}

#[test]
fn two_releases_racing_on_a_channel_one_wins() {
    let (p, profile) = setup();
    // An empty channel: both create.
    let outputs = race(&p, &profile, ["1.0.0", "1.0.1"], &[]);
    let winner = one_wins(&outputs, ["1.0.0", "1.0.1"]);
    assert_eq!(versions(&p), [winner.as_str()]);
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);

    // A channel with a release: both replace it.
    let outputs = race(&p, &profile, ["2.0.0", "2.1.0"], &[]);
    let winner = one_wins(&outputs, ["2.0.0", "2.1.0"]);
    assert_eq!(versions(&p), [winner.as_str()]);
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);

    // The same release twice at once: both get what they asked for.
    let outputs = race(&p, &profile, ["3.0.0", "3.0.0"], &[]);
    for out in &outputs {
        assert_eq!(code(out), 0, "{}", text(out));
    }
    let outcomes: Vec<_> = outputs.iter().map(|o| json(o)["outcome"].clone()).collect();
    assert!(outcomes.contains(&"published".into()) && outcomes.contains(&"unchanged".into()));
    assert_eq!(versions(&p), ["3.0.0"]);
}

#[test]
fn bucket_problems_are_exit_2() {
    let (p, profile) = setup();
    let file = p.write("fw/app.bin", &image("1.0.0", b"x"));
    refused(
        &p.release(&profile, &["--image", &file, "--bucket", "ftp://host/x"]),
        2,
        "not a bucket URL",
    );
    refused(&p.release(&profile, &["--image", &file]), 2, "no bucket to publish to");
    refused(
        &p.release(
            &profile,
            &["--image", &file, "--bucket", "dist", "--endpoint", "http://127.0.0.1:1"],
        ),
        2,
        "--endpoint applies to s3://",
    );
    // A loopback S3 endpoint without credentials: refused before any request, so nothing
    // falls back to a cloud metadata address.
    refused(
        &p.release(
            &profile,
            &[
                "--image",
                &file,
                "--bucket",
                "s3://ota/fleet",
                "--endpoint",
                "http://127.0.0.1:1",
            ],
        ),
        2,
        "no credentials",
    );
    // Unreachable: a closed loopback port, with credentials.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let out = p
        .release_cmd(
            &profile,
            &[
                "--image",
                &file,
                "--bucket",
                "s3://ota/fleet",
                "--endpoint",
                &format!("http://{closed}"),
            ],
        )
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    refused(&out, 2, "cannot read stable/manifest.json in s3://ota/fleet");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(!p.path().join("dist").exists());
}

#[test]
fn a_terminal_gets_a_step_list_and_scripts_get_json() {
    let (p, profile) = setup();
    let out = publish(&p, &profile, "1.0.0", b"x");
    assert_eq!(code(&out), 0);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object, nothing else on stdout");

    // On a terminal (util-linux `script` gives it one): the step list and a summary.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        sim::required_tool::missing("terminal output", "util-linux `script`", "apt install util-linux");
        return;
    }
    let file = p.write("fw/next.bin", &image("1.1.0", b"y"));
    let command = format!(
        "{} release --profile {profile} --key keys/otactl.key --image {file} --bucket dist",
        env!("CARGO_BIN_EXE_otactl")
    );
    let out = std::process::Command::new("script")
        .current_dir(p.path())
        .args(["-qec", &command, "/dev/null"])
        .env("NO_PROXY", "*")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(code(&out), 0, "{screen}");
    for line in [
        "✓ profile",
        "✓ key      keys/otactl.key",
        "channel stable holds 1.0.0",
        "✓ image    field-logger 1.1.0",
        "✓ upload   images/",
        "✓ publish  stable/manifest.json (replaces 1.0.0, conditional write)",
        "released field-logger 1.1.0 for esp32c3 (test-board) on channel stable",
        "devices   http://ota.test/fleet/stable/manifest.json",
    ] {
        assert!(screen.contains(line), "`{line}` missing from:\n{screen}");
    }
    assert!(!screen.contains('{'), "no JSON on a terminal:\n{screen}");
}

#[test]
fn a_large_image_goes_up_in_parts() {
    let p = Project::new();
    // A 16 MB flash with 7 MiB OTA slots holds a 6 MiB image.
    let slots = "[slots]\nnvs = { offset = 0x9000, size = 0x4000 }\notadata = { offset = 0xD000, size = 0x2000 }\n\
                 phy_init = { offset = 0xF000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x700000 }\n\
                 ota_1 = { offset = 0x710000, size = 0x700000 }\notastate = { offset = 0xE10000, size = 0x4000 }\n";
    let profile = p.profile_with_flash("big", "esp32c3", "16MB", "", slots);
    let payload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let out = publish(&p, &profile, "1.0.0", &payload);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["objects"]["image"]["upload"], "uploaded-multipart");
    assert_eq!(versions(&p), ["1.0.0"]);
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
}
