//! `otactl release` into a real S3-compatible server on loopback (moto), read back through
//! the S3 API, fetched through a presigned URL with a Range header, and raced.
//!
//! Every request goes to 127.0.0.1: the S3 client gets static keys, so object_store never
//! falls back to a cloud metadata address. Without moto installed the tests print SKIP, and
//! fail when `CI` is set (`.ci/moto` installs it).

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use device_fw::wire::manifest::{PayloadBuf, open};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer as _;
use object_store::{Attribute, ObjectStore as _};
use reqwest::StatusCode;
use reqwest::header::RANGE;
use support::moto::{self, Moto};
use support::{Project, code, json, otactl, sha256_hex, text};

const BUCKET: &str = "ota";

fn image(version: &str, payload: &[u8]) -> Vec<u8> {
    build_test_image(CHIP_ESP32C3, version, "field-logger", payload)
}

fn store(moto: &Moto) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_access_key_id(moto::ACCESS_KEY)
        .with_secret_access_key(moto::SECRET_KEY)
        .with_region(moto::REGION)
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(moto: &Moto, key: &str) -> Option<(Vec<u8>, object_store::Attributes)> {
    runtime().block_on(async {
        match store(moto).get(&ObjectPath::from(key)).await {
            Ok(r) => {
                let attributes = r.attributes.clone();
                Some((r.bytes().await.unwrap().to_vec(), attributes))
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{key}: {e}"),
        }
    })
}

fn release(p: &Project, moto: &Moto, profile: &str, args: &[&str]) -> Output {
    let mut cmd = p.release_cmd(profile, args);
    moto::s3_env(&mut cmd, moto);
    cmd.output().unwrap()
}

fn publish(p: &Project, moto: &Moto, profile: &str, version: &str, payload: &[u8], prefix: &str) -> Output {
    let file = p.write(&format!("fw/{version}.bin"), &image(version, payload));
    let bucket = format!("s3://{BUCKET}/{prefix}");
    release(p, moto, profile, &["--image", &file, "--bucket", &bucket, "--json"])
}

/// The channel's release as a device would check it: the manifest verified with the
/// project's key, and its image there with the signed hash.
fn holds(p: &Project, moto: &Moto, prefix: &str, channel: &str) -> String {
    let (envelope, _) = get(moto, &format!("{prefix}/{channel}/manifest.json")).expect("a manifest");
    let mut buf = PayloadBuf::default();
    let (m, _) = open(&envelope, &[p.public_key()], &mut buf).unwrap();
    let image_key = format!("{prefix}/{}", m.image.trim_start_matches("../"));
    let (bytes, _) = get(moto, &image_key).expect("the image the manifest names");
    assert_eq!(sha256_hex(&bytes), m.sha256);
    m.version.to_owned()
}

#[test]
fn a_release_in_s3_reads_back_and_serves_ranges() {
    let Some(moto) = moto::start("a_release_in_s3_reads_back_and_serves_ranges") else {
        return;
    };
    moto.create_bucket(BUCKET);
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let img = image("1.0.0", &payload);
    let file = p.write("fw/app.bin", &img);

    // The endpoint from --endpoint rather than AWS_ENDPOINT_URL.
    let mut cmd = p.release_cmd(
        &profile,
        &[
            "--image",
            &file,
            "--bucket",
            "s3://ota/fleet",
            "--endpoint",
            &moto.endpoint(),
            "--json",
        ],
    );
    moto::s3_env(&mut cmd, &moto);
    let out = cmd
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ALLOW_HTTP")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    let sha = sha256_hex(&img);
    assert_eq!(j["outcome"], "published");
    assert_eq!(j["bucket"], "s3://ota/fleet");
    assert_eq!(j["objects"]["manifest"]["url"], "s3://ota/fleet/stable/manifest.json");
    assert_eq!(j["objects"]["image"]["url"], format!("s3://ota/fleet/images/{sha}.bin"));
    assert!(
        !text(&out).contains(moto::SECRET_KEY),
        "the secret key reached the output"
    );

    // Back through the S3 API.
    assert_eq!(holds(&p, &moto, "fleet", "stable"), "1.0.0");
    let (manifest, attributes) = get(&moto, "fleet/stable/manifest.json").unwrap();
    assert_eq!(
        attributes.get(&Attribute::ContentType).map(|v| v.as_ref()),
        Some("application/json")
    );
    assert_eq!(
        attributes.get(&Attribute::CacheControl).map(|v| v.as_ref()),
        Some("no-cache")
    );
    let (stored, _) = get(&moto, &format!("fleet/images/{sha}.bin")).unwrap();
    assert_eq!(stored, img);

    // Presigned URLs, as a device or a CDN given signed links fetches them: the image with a
    // Range, then the whole release checked the way a device will.
    let sign = |key: &str| {
        runtime()
            .block_on(store(&moto).signed_url(reqwest::Method::GET, &ObjectPath::from(key), Duration::from_secs(300)))
            .unwrap()
            .to_string()
    };
    let image_url = sign(&format!("fleet/images/{sha}.bin"));
    let http = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    let part = http.get(&image_url).header(RANGE, "bytes=100-199").send().unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().unwrap(), img[100..200]);
    let verified = otactl(p.path())
        .args([
            "verify",
            &sign("fleet/stable/manifest.json"),
            "--image",
            &image_url,
            "--key",
            "keys/otactl.pub",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&verified), 0, "{}", text(&verified));

    // Again: a no-op. Lower: refused, the manifest untouched.
    let again = publish(&p, &moto, &profile, "1.0.0", &payload, "fleet");
    assert_eq!(code(&again), 0, "{}", text(&again));
    assert_eq!(json(&again)["outcome"], "unchanged");
    assert_eq!(get(&moto, "fleet/stable/manifest.json").unwrap().0, manifest);
    let lower = publish(&p, &moto, &profile, "0.9.0", b"old", "fleet");
    assert_eq!(code(&lower), 1, "{}", text(&lower));
    assert!(json(&lower)["error"].as_str().unwrap().contains("not newer"));
    assert_eq!(get(&moto, "fleet/stable/manifest.json").unwrap().0, manifest);

    // A large image goes up in parts; a 16 MB flash with 7 MiB slots holds it.
    let slots = "[slots]\nnvs = { offset = 0x9000, size = 0x4000 }\notadata = { offset = 0xD000, size = 0x2000 }\n\
                 phy_init = { offset = 0xF000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x700000 }\n\
                 ota_1 = { offset = 0x710000, size = 0x700000 }\notastate = { offset = 0xE10000, size = 0x4000 }\n";
    let big_profile = p.profile_with_flash("c3-big", "esp32c3", "16MB", "", slots);
    let big_payload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = publish(&p, &moto, &big_profile, "1.1.0", &big_payload, "fleet");
    assert_eq!(code(&big), 0, "{}", text(&big));
    assert_eq!(json(&big)["objects"]["image"]["upload"], "uploaded-multipart");
    assert_eq!(holds(&p, &moto, "fleet", "stable"), "1.1.0");
}

/// Starts a release that stops right before its manifest write until `go` exists.
fn held(p: &Project, moto: &Moto, profile: &str, version: &str, channel: &str, go: &std::path::Path) -> Child {
    let file = p.write(&format!("fw/{version}.bin"), &image(version, version.as_bytes()));
    let mut cmd = p.release_cmd(
        profile,
        &[
            "--image",
            &file,
            "--bucket",
            "s3://ota/race",
            "--channel",
            channel,
            "--json",
        ],
    );
    moto::s3_env(&mut cmd, moto);
    cmd.env("OTACTL_TEST_HOLD", go)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ready(p: &Project, go: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let prefix = go.file_name().unwrap().to_string_lossy().into_owned();
    loop {
        let ready = fs::read_dir(p.path()).unwrap().filter_map(Result::ok).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with(".ready")
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the release never reached its manifest write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn racing_releases_on_s3_one_wins() {
    let Some(moto) = moto::start("racing_releases_on_s3_one_wins") else {
        return;
    };
    moto.create_bucket(BUCKET);
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let first = publish(&p, &moto, &profile, "1.0.0", b"base", "race");
    assert_eq!(code(&first), 0, "{}", text(&first));

    for (channel, versions) in [("stable", ["1.1.0", "1.2.0"]), ("beta", ["2.0.0", "2.0.1"])] {
        // Both read the channel (a release on stable, nothing on beta) before either writes.
        // Then one writes and the other only after it: moto checks a condition and stores
        // the object in two steps, so two writes landing in the same instant could both
        // pass there, which S3 itself never lets happen. What is tested is otactl's part:
        // a write conditioned on what it read fails once someone else has written.
        let go: Vec<PathBuf> = (0..2).map(|i| p.path().join(format!("go-{channel}-{i}"))).collect();
        let a = held(&p, &moto, &profile, versions[0], channel, &go[0]);
        let b = held(&p, &moto, &profile, versions[1], channel, &go[1]);
        wait_ready(&p, &go[0]);
        wait_ready(&p, &go[1]);
        fs::write(&go[0], b"").unwrap();
        let a = a.wait_with_output().unwrap();
        fs::write(&go[1], b"").unwrap();
        let b = b.wait_with_output().unwrap();
        assert_eq!(code(&a), 0, "{}", text(&a));
        assert_eq!(code(&b), 1, "{}", text(&b));
        let lost = json(&b);
        let error = lost["error"].as_str().unwrap();
        assert!(error.contains(&format!("lost a race on channel {channel}")), "{error}");
        assert!(error.contains(&format!("it now holds {}", versions[0])), "{error}");
        assert_eq!(holds(&p, &moto, "race", channel), versions[0]);
    }
}

#[test]
fn a_bucket_that_refuses_the_credentials_is_a_clear_error_and_nothing_is_written() {
    let Some(moto) = moto::start_denying("a_bucket_that_refuses_the_credentials", 1) else {
        return;
    };
    moto.create_bucket(BUCKET);
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let file = p.write("fw/app.bin", &image("1.0.0", b"the firmware"));
    let mut cmd = p.release_cmd(&profile, &["--image", &file, "--bucket", "s3://ota/fleet", "--json"]);
    moto::s3_env(&mut cmd, &moto);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["ok"], false);
    assert!(j["help"].as_str().unwrap().contains("credentials were refused"), "{j}");
    assert!(
        !text(&out).contains(moto::SECRET_KEY),
        "the secret key reached the output"
    );
}
