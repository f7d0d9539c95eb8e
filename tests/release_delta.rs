//! Delta updates from the CLI: `otactl release` publishes a patch from the channel's
//! previous release beside the new one (and says why when it cannot), and
//! `otactl image diff` makes one by hand; what either writes rebuilds the new image with
//! the device's own decoder.

mod support;

use std::fs;

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use device_fw::ota::patch::apply;
use support::{Project, code, json, otactl, sha256_hex, text};

/// Firmware-like bytes that do not compress: a patch is the only way to send fewer.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn image(version: &str, payload: &[u8]) -> Vec<u8> {
    build_test_image(CHIP_ESP32C3, version, "field-logger", payload)
}

/// 1.0.0 and a 1.1.0 that changes a few hundred bytes of it.
fn two_versions() -> (Vec<u8>, Vec<u8>) {
    let old = payload(80 * 1024, 7);
    let mut new = old.clone();
    new.splice(30_000..30_000, payload(300, 9));
    new[60_000] ^= 0x40;
    (image("1.0.0", &old), image("1.1.0", &new))
}

#[test]
fn a_release_publishes_a_patch_from_the_previous_one_that_rebuilds_it() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let (v1, v2) = two_versions();
    let first = p.write("fw/1.0.0.bin", &v1);
    let out = p.release(&profile, &["--image", &first, "--bucket", "dist", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // A channel's first release has nothing to patch from.
    assert!(json(&out)["objects"]["delta"]["key"].is_null(), "{}", text(&out));

    let second = p.write("fw/1.1.0.bin", &v2);
    let out = p.release(&profile, &["--image", &second, "--bucket", "dist", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    let key = j["objects"]["delta"]["key"].as_str().expect("a patch").to_owned();
    assert_eq!(
        key,
        format!("images/{}.from-{}.otd", sha256_hex(&v2), &sha256_hex(&v1)[..16])
    );
    assert_eq!(j["objects"]["delta"]["upload"], "uploaded");
    assert_eq!(j["objects"]["delta"]["base_version"], "1.0.0");
    let patch = fs::read(p.path().join("dist").join(&key)).unwrap();
    assert_eq!(j["sizes"]["delta"], patch.len());
    assert!(patch.len() * 10 < v2.len(), "{} of {}", patch.len(), v2.len());
    assert_eq!(apply(&v1, &patch).unwrap(), v2);

    let payload = support::manifest_payload(&fs::read(p.path().join("dist/stable/manifest.json")).unwrap());
    assert_eq!(payload["delta"]["image"], format!("../{key}"));
    assert_eq!(payload["delta"]["size"], patch.len());
    assert_eq!(payload["delta"]["base_sha256"], sha256_hex(&v1));
    assert_eq!(payload["delta"]["base_size"], v1.len());
    // The other forms stay listed for devices that run something else.
    assert!(payload["lzma"]["image"].is_string());
    let verified = p.verify("dist/stable/manifest.json");
    assert_eq!(code(&verified), 0, "{}", text(&verified));
    // The bucket holds complete releases only, the patch among them rebuilding its image.
    let held = support::check_bucket(&p.path().join("dist"), &p.public_key());
    assert_eq!(held.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["1.1.0"]);
}

#[test]
fn without_the_previous_image_the_release_goes_out_without_a_patch_and_says_why() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let (v1, v2) = two_versions();
    let first = p.write("fw/1.0.0.bin", &v1);
    assert_eq!(code(&p.release(&profile, &["--image", &first, "--bucket", "dist"])), 0);
    fs::remove_file(p.path().join(format!("dist/images/{}.bin", sha256_hex(&v1)))).unwrap();
    let second = p.write("fw/1.1.0.bin", &v2);
    let out = p.release(&profile, &["--image", &second, "--bucket", "dist", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let skipped = json(&out)["objects"]["delta"]["skipped"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        skipped.starts_with("no patch from 1.0.0") && skipped.contains("no longer in the bucket"),
        "{}",
        text(&out)
    );
    let payload = support::manifest_payload(&fs::read(p.path().join("dist/stable/manifest.json")).unwrap());
    assert!(payload.get("delta").is_none(), "{payload}");
    assert_eq!(payload["version"], "1.1.0");
}

#[test]
fn image_diff_writes_a_patch_the_device_applies_and_refuses_what_is_not_an_image() {
    let p = Project::new();
    let (v1, v2) = two_versions();
    let (from, to) = (p.write("old.bin", &v1), p.write("new.bin", &v2));
    let out = otactl(p.path())
        .args([
            "image", "diff", "--from", &from, "--to", &to, "--out", "new.otd", "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    let patch = fs::read(p.path().join("new.otd")).unwrap();
    assert_eq!(j["patch"]["size"], patch.len());
    assert_eq!(j["to"]["size"], v2.len());
    assert!(j["ratio_to_raw"].as_f64().unwrap() < 0.1, "{j}");
    assert_eq!(apply(&v1, &patch).unwrap(), v2);

    // Not an app image: exit 1, nothing written.
    let elf_like = p.write("notes.txt", b"not firmware");
    let out = otactl(p.path())
        .args(["image", "diff", "--from", &elf_like, "--to", &to, "--out", "x.otd"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("is not an ESP-IDF app image"), "{}", text(&out));
    assert!(!p.path().join("x.otd").exists());

    // --out naming an input: exit 2, the input untouched.
    let out = otactl(p.path())
        .args(["image", "diff", "--from", &from, "--to", &to, "--out", &to])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert_eq!(fs::read(p.path().join(&to)).unwrap(), v2);
}

#[test]
fn the_same_release_run_again_restores_a_missing_patch() {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let (v1, v2) = two_versions();
    let (first, second) = (p.write("fw/1.0.0.bin", &v1), p.write("fw/1.1.0.bin", &v2));
    assert_eq!(code(&p.release(&profile, &["--image", &first, "--bucket", "dist"])), 0);
    let out = p.release(&profile, &["--image", &second, "--bucket", "dist", "--json"]);
    let key = json(&out)["objects"]["delta"]["key"].as_str().unwrap().to_owned();
    let path = p.path().join("dist").join(&key);
    let patch = fs::read(&path).unwrap();

    // Present: nothing to do.
    let out = p.release(&profile, &["--image", &second, "--bucket", "dist", "--json"]);
    assert_eq!(json(&out)["outcome"], "unchanged", "{}", text(&out));
    assert_eq!(json(&out)["objects"]["delta"]["upload"], "present");

    // Gone: a dry run says it would put it back, a real run does, byte for byte.
    fs::remove_file(&path).unwrap();
    let out = p.release(
        &profile,
        &["--image", &second, "--bucket", "dist", "--json", "--dry-run"],
    );
    assert_eq!(
        json(&out)["objects"]["delta"]["upload"],
        "would-upload",
        "{}",
        text(&out)
    );
    assert!(!path.exists());
    let out = p.release(&profile, &["--image", &second, "--bucket", "dist", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["outcome"], "unchanged");
    assert_eq!(json(&out)["objects"]["delta"]["upload"], "uploaded");
    assert_eq!(fs::read(&path).unwrap(), patch);
}
