//! `otactl serve` on a loopback port, as a bench device (or `otactl verify`) reaches it:
//! Range requests, conditional GETs, and requests that try to leave the bucket.

mod support;

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use support::{Project, code, otactl, text};

/// A running `otactl serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(p: &Project, bucket: &str) -> Server {
        let mut child = otactl(p.path())
            .args(["serve", "--bucket", bucket, "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{first}`"))
            .trim_end_matches('/')
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server { child, base }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The request line sent byte for byte: an HTTP client would normalise `..` away.
    fn raw(&self, target: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in `{response}`"));
        (status, response)
    }
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A project with release 1.0.0 published into `dist/`; returns the image.
fn published() -> (Project, Vec<u8>) {
    let p = Project::new();
    let profile = p.profile("c3", "esp32c3", "", "");
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 13) as u8).collect();
    let img = build_test_image(CHIP_ESP32C3, "1.0.0", "field-logger", &payload);
    let file = p.write("fw/app.bin", &img);
    let out = p.release(&profile, &["--image", &file, "--bucket", "dist"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    (p, img)
}

#[test]
fn ranges_and_conditional_gets() {
    let (p, img) = published();
    let server = Server::start(&p, "dist");
    let http = client();
    let image_url = format!("{}/images/{}.bin", server.base, support::sha256_hex(&img));

    let manifest = http
        .get(format!("{}/stable/manifest.json", server.base))
        .send()
        .unwrap();
    assert_eq!(manifest.status(), StatusCode::OK);
    assert_eq!(manifest.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(manifest.headers()[CACHE_CONTROL], "no-cache");

    let part = http.get(&image_url).header(RANGE, "bytes=100-199").send().unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 100-199/{}", img.len())
    );
    assert_eq!(part.bytes().unwrap(), img[100..200]);
    // The device's resume form: from an offset to the end.
    let rest = http.get(&image_url).header(RANGE, "bytes=4000-").send().unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest.bytes().unwrap(), img[4000..]);

    let full = http.get(&image_url).send().unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    let etag = full.headers()[ETAG].to_str().unwrap().to_owned();
    let modified = full.headers()[LAST_MODIFIED].to_str().unwrap().to_owned();
    assert_eq!(full.bytes().unwrap(), img);

    let status = |headers: &[(reqwest::header::HeaderName, &str)]| {
        let mut request = http.get(&image_url);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        request.send().unwrap().status()
    };
    assert_eq!(status(&[(IF_NONE_MATCH, &etag)]), StatusCode::NOT_MODIFIED);
    assert_eq!(
        status(&[(IF_NONE_MATCH, &format!("\"x\", W/{etag}"))]),
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(status(&[(IF_MODIFIED_SINCE, &modified)]), StatusCode::NOT_MODIFIED);
    // If-None-Match decides when both are sent.
    assert_eq!(
        status(&[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, &modified)]),
        StatusCode::OK
    );
    // A range of another version of the file is never spliced in.
    assert_eq!(
        status(&[(RANGE, "bytes=0-9"), (IF_RANGE, &etag)]),
        StatusCode::PARTIAL_CONTENT
    );
    assert_eq!(status(&[(RANGE, "bytes=0-9"), (IF_RANGE, "\"old\"")]), StatusCode::OK);
    assert_eq!(
        http.get(format!("{}/images/missing.bin", server.base))
            .send()
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // What a device checks, fetched from this origin.
    let verified = otactl(p.path())
        .args([
            "verify",
            &format!("{}/stable/manifest.json", server.base),
            "--key",
            "keys/otactl.pub",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&verified), 0, "{}", text(&verified));
}

#[test]
fn nothing_outside_the_bucket_is_served() {
    let (p, _) = published();
    fs::write(p.path().join("secret.txt"), "TOP-SECRET").unwrap();
    fs::write(p.path().join("dist/stable/.manifest.json.lock"), "").unwrap();
    std::os::unix::fs::symlink(p.path().join("secret.txt"), p.path().join("dist/link.txt")).unwrap();
    let server = Server::start(&p, "dist");
    assert_eq!(server.raw("/stable/manifest.json").0, 200);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/stable/../../secret.txt",
        "/stable/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/images/..%2f..%2fsecret.txt",
        "/stable/.manifest.json.lock",
        "/link.txt",
    ] {
        let (status, response) = server.raw(target);
        assert!(matches!(status, 400 | 404), "{target}: {status}");
        assert!(!response.contains("TOP-SECRET"), "{target} leaked the file");
    }
}

#[test]
fn only_local_directories_are_served() {
    let p = Project::new();
    let out = otactl(p.path())
        .args(["serve", "--bucket", "s3://ota/fleet"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("otactl::serve::not_local"), "{}", text(&out));
    let out = otactl(p.path())
        .args(["serve", "--bucket", "missing"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("otactl::serve::missing"), "{}", text(&out));
}

#[test]
fn ctrl_c_stops_it() {
    let (p, _) = published();
    let mut server = Server::start(&p, "dist");
    let pid = server.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still serving after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
