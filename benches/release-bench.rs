//! What publishing costs over moving the bytes: `otactl release` of a 4 MiB image (the real
//! binary: profile, key, bucket read, image checks, hashing, signing, upload, conditional
//! manifest write) next to a plain copy of the same bytes, in the same run, to a `file://`
//! bucket (`std::fs::copy`) and to moto's S3 server on loopback (one S3 put of the same
//! size). The ratio is the figure; absolute times depend on the machine.
//!
//! `cargo bench -p otactl --bench release-bench [-- --runs N] [-- --json]`
//!
//! Without moto installed (`.ci/moto`) the S3 line says SKIP.

#[allow(dead_code)]
#[path = "../tests/support/moto.rs"]
mod moto;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use object_store::ObjectStore as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

/// With the descriptor, headers, checksum and hash: exactly 4 MiB.
const IMAGE_PAYLOAD: usize = 4 * 1024 * 1024 - 336;

fn otactl(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otactl"));
    cmd.current_dir(dir).env_remove("OTACTL_SIGNING_KEY");
    cmd
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times one `otactl release`; panics with its output if it fails.
fn timed_release(dir: &Path, bucket: &str, moto: Option<&moto::Moto>) -> Duration {
    let mut cmd = otactl(dir);
    cmd.args([
        "release",
        "--profile",
        "profile.toml",
        "--key",
        "keys/otactl.key",
        "--image",
        "app.bin",
        "--bucket",
        bucket,
        "--json",
    ]);
    if let Some(moto) = moto {
        moto::s3_env(&mut cmd, moto);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run otactl");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

struct Line {
    bucket: &'static str,
    release: Duration,
    plain: Duration,
    plain_what: &'static str,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5usize)
        .max(1);

    let dir = tempfile::tempdir().expect("temporary directory");
    let dir = dir.path();
    let keygen = otactl(dir)
        .args(["keygen", "--out", "keys/otactl"])
        .output()
        .expect("otactl keygen");
    assert!(keygen.status.success());
    // A 16 MB flash with 7 MiB OTA slots: room for the 4 MiB image.
    fs::write(
        dir.join("profile.toml"),
        "[device]\nproduct = \"field-logger\"\nchip = \"esp32c3\"\nboard = \"bench\"\n\n\
         [modem]\ndialect = \"sim7600\"\nbaud = 115200\napn = \"internet\"\n\n\
         [flash]\nsize = \"16MB\"\n\n\
         [slots]\nnvs = { offset = 0x9000, size = 0x4000 }\notadata = { offset = 0xD000, size = 0x2000 }\n\
         phy_init = { offset = 0xF000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x700000 }\n\
         ota_1 = { offset = 0x710000, size = 0x700000 }\notastate = { offset = 0xE10000, size = 0x4000 }\n\n\
         [release]\npublic_keys = [\"keys/otactl.pub\"]\n",
    )
    .unwrap();
    let payload: Vec<u8> = (0..IMAGE_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let image = build_test_image(CHIP_ESP32C3, "1.0.0", "bench", &payload);
    assert_eq!(image.len(), 4 * 1024 * 1024);
    fs::write(dir.join("app.bin"), &image).unwrap();

    let mut lines = Vec::new();

    // file://: a fresh bucket per run, so each run really publishes.
    let mut release = Vec::new();
    let mut copy = Vec::new();
    for run in 0..runs {
        release.push(timed_release(dir, &format!("file-{run}"), None));
        let started = Instant::now();
        fs::copy(dir.join("app.bin"), dir.join(format!("copy-{run}.bin"))).unwrap();
        copy.push(started.elapsed());
    }
    lines.push(Line {
        bucket: "file://",
        release: median(release),
        plain: median(copy),
        plain_what: "std::fs::copy",
    });

    let moto = moto::start("release-bench S3");
    if let Some(moto) = &moto {
        moto.create_bucket("bench");
        let store = AmazonS3Builder::new()
            .with_bucket_name("bench")
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_access_key_id(moto::ACCESS_KEY)
            .with_secret_access_key(moto::SECRET_KEY)
            .with_region(moto::REGION)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut release = Vec::new();
        let mut put = Vec::new();
        for run in 0..runs {
            release.push(timed_release(dir, &format!("s3://bench/run-{run}"), Some(moto)));
            let bytes = image.clone();
            let started = Instant::now();
            runtime
                .block_on(store.put(&ObjectPath::from(format!("plain/run-{run}.bin")), bytes.into()))
                .expect("S3 put");
            put.push(started.elapsed());
        }
        lines.push(Line {
            bucket: "s3 (moto, loopback)",
            release: median(release),
            plain: median(put),
            plain_what: "one S3 put",
        });
    }

    if json {
        for l in &lines {
            println!(
                "{{\"bucket\":\"{}\",\"image_bytes\":{},\"runs\":{runs},\"release_ms\":{:.1},\"plain_ms\":{:.1},\"plain\":\"{}\",\"ratio\":{:.2}}}",
                l.bucket,
                image.len(),
                ms(l.release),
                ms(l.plain),
                l.plain_what,
                ms(l.release) / ms(l.plain)
            );
        }
        return;
    }
    println!(
        "otactl release of a {} byte image, median of {runs} runs (the release includes starting otactl)",
        image.len()
    );
    println!(
        "{:<22} {:>12} {:>12}  {:<14} {:>7}",
        "bucket", "release ms", "plain ms", "plain", "ratio"
    );
    for l in &lines {
        println!(
            "{:<22} {:>12.1} {:>12.1}  {:<14} {:>7.2}",
            l.bucket,
            ms(l.release),
            ms(l.plain),
            l.plain_what,
            ms(l.release) / ms(l.plain)
        );
    }
    if moto.is_none() {
        // A benchmark run for CI must not print a table with its S3 row silently missing.
        assert!(
            !sim::required_tool::ci(),
            "moto_server is not installed and CI is set (.ci/moto)"
        );
        println!(
            "{:<22} SKIP: moto_server is not installed (.ci/moto)",
            "s3 (moto, loopback)"
        );
    }
}
