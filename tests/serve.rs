//! `otactl serve` on a loopback port, as a bench device (or `otactl verify`) reaches it:
//! Range requests, conditional GETs, requests that try to leave the bucket, and outcome
//! reports POSTed to /reports (stored once, bounded, never served back).

mod support;

use std::fs;
use std::time::Duration;

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use device_fw::wire::report::{self, Outcome};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::RETRY_AFTER;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use support::reports::{self as reports, body, report as device_report};
use support::server::Server;
use support::{Project, code, otactl, text};

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

fn post(http: &Client, server: &Server, body: Vec<u8>, content_type: &str) -> (StatusCode, String) {
    let response = http
        .post(format!("{}/reports", server.base))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status();
    (status, response.text().unwrap())
}

#[test]
fn a_report_is_stored_once_and_never_served() {
    let (p, _) = published();
    let server = Server::start(&p, "dist");
    let http = client();
    let root = p.path().join("dist");
    let first = device_report("3fa2c01d9e7b4410", "1.0.0", Outcome::Confirmed, 1);
    let (status, text) = post(&http, &server, body(&first), "application/json");
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert!(text.len() < 32, "a tiny answer: {text}");
    let stored = reports::path(&root, &first);
    assert!(stored.ends_with("reports/field-logger/stable/1.0.0/3fa2c01d9e7b4410.1.json"));
    let kept = fs::read(&stored).unwrap();
    assert_eq!(device_fw::wire::report::Report::parse(&kept).unwrap(), first);

    // The same attempt again, even with another outcome, writes nothing.
    let replay = device_report("3fa2c01d9e7b4410", "1.0.0", Outcome::RolledBack, 1);
    let (status, _) = post(&http, &server, body(&replay), report::CONTENT_TYPE);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fs::read(&stored).unwrap(), kept);
    // A later attempt is a new report.
    let second = device_report("3fa2c01d9e7b4410", "1.0.0", Outcome::RolledBack, 2);
    let (status, _) = post(&http, &server, body(&second), "application/json; charset=utf-8");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(reports::path(&root, &second).is_file());

    // Device ids are not public: nothing under reports/ is served, whatever the spelling.
    for target in [
        "/reports/field-logger/stable/1.0.0/3fa2c01d9e7b4410.1.json",
        "/reports/",
        "/reports/field-logger/",
        "/%72eports/field-logger/stable/1.0.0/3fa2c01d9e7b4410.1.json",
        "//reports/field-logger/stable/1.0.0/3fa2c01d9e7b4410.1.json",
    ] {
        let (status, response) = server.raw(target);
        assert_eq!(status, 404, "{target}");
        assert!(!response.contains("3fa2c01d9e7b4410"), "{target} leaked a report");
    }
    // /reports itself only takes POST.
    assert_eq!(server.raw("/reports").0, 405);
}

#[test]
fn bad_reports_are_refused_and_nothing_is_stored() {
    let (p, _) = published();
    let server = Server::start(&p, "dist");
    let http = client();
    let good = body(&device_report("dev-1", "1.0.0", Outcome::Confirmed, 1));
    let good_text = String::from_utf8(good.clone()).unwrap();
    let edit = |from: &str, to: &str| good_text.replace(from, to).into_bytes();
    const JSON: &str = "application/json";
    let cases: Vec<(Vec<u8>, &str, StatusCode)> = vec![
        (b"{not json".to_vec(), JSON, StatusCode::BAD_REQUEST),
        (b"[]".to_vec(), JSON, StatusCode::BAD_REQUEST),
        (edit("dev-1", "../../etc"), JSON, StatusCode::BAD_REQUEST),
        (edit("dev-1", ".."), JSON, StatusCode::BAD_REQUEST),
        (edit("\"stable\"", "\"..\""), JSON, StatusCode::BAD_REQUEST),
        (edit("}", ",\"extra\":1}"), JSON, StatusCode::BAD_REQUEST),
        (good.clone(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            format!("{good_text}{}", " ".repeat(report::MAX_REPORT)).into_bytes(),
            JSON,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // Well-formed, but about releases this bucket never published.
        (edit("\"1.0.0\"", "\"9.9.9\""), JSON, StatusCode::UNPROCESSABLE_ENTITY),
        (edit("\"stable\"", "\"beta\""), JSON, StatusCode::UNPROCESSABLE_ENTITY),
        (
            edit("field-logger", "other-product"),
            JSON,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (body, content_type, want) in cases {
        let (status, answer) = post(&http, &server, body.clone(), content_type);
        assert_eq!(status, want, "{}: {answer}", String::from_utf8_lossy(&body));
        assert!(answer.len() < 200, "a small text answer: {answer}");
    }
    // Oversized without a Content-Length (chunked): cut off at the limit all the same.
    let big = vec![b' '; 2 * report::MAX_REPORT];
    let response = http
        .post(format!("{}/reports", server.base))
        .header(CONTENT_TYPE, "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(big)))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        !p.path().join("dist/reports").exists(),
        "a refused report writes nothing"
    );
}

#[test]
fn floods_are_refused_per_source_and_in_all() {
    let (p, _) = published();
    let server = Server::start_with(
        &p,
        "dist",
        &["--reports-per-source", "3", "--reports-per-minute", "5"],
        |_| {},
    );
    let from = |ip: &str| {
        Client::builder()
            .no_proxy()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let one = from("127.0.0.1");
    let send = |http: &Client, n: u32| {
        let r = device_report(&format!("dev-{n}"), "1.0.0", Outcome::Confirmed, 1);
        http.post(format!("{}/reports", server.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body(&r))
            .send()
            .unwrap()
    };
    for n in 0..3 {
        assert_eq!(send(&one, n).status(), StatusCode::ACCEPTED);
    }
    let flooded = send(&one, 3);
    assert_eq!(flooded.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = flooded.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((19..=20).contains(&wait), "Retry-After {wait}");
    // Another source has its own budget, until the total of 5 a minute is spent.
    let other = from("127.0.0.2");
    assert_eq!(send(&other, 10).status(), StatusCode::ACCEPTED);
    assert_eq!(send(&other, 11).status(), StatusCode::ACCEPTED);
    assert_eq!(send(&other, 12).status(), StatusCode::TOO_MANY_REQUESTS);
    let stored = fs::read_dir(p.path().join("dist/reports/field-logger/stable/1.0.0"))
        .unwrap()
        .count();
    assert_eq!(stored, 5, "only the accepted reports are stored");
}

#[test]
fn reports_can_go_elsewhere_or_nowhere() {
    let (p, _) = published();
    let server = Server::start_with(&p, "dist", &["--reports", "file:collected"], |_| {});
    let http = client();
    let r = device_report("dev-1", "1.0.0", Outcome::Confirmed, 1);
    assert_eq!(
        post(&http, &server, body(&r), "application/json").0,
        StatusCode::ACCEPTED
    );
    assert!(reports::path(&p.path().join("collected"), &r).is_file());
    assert!(!p.path().join("dist/reports").exists());
    drop(server);

    // A folder inside the served one would be served: refused.
    let out = otactl(p.path())
        .args([
            "serve",
            "--bucket",
            "dist",
            "--reports",
            "dist/private",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("inside the served directory"), "{}", text(&out));

    let server = Server::start_with(&p, "dist", &["--no-reports"], |_| {});
    assert_eq!(
        post(&http, &server, body(&r), "application/json").0,
        StatusCode::NOT_FOUND
    );
}

/// A throwaway CA and a certificate it issued for 127.0.0.1 and localhost, as PEM files in
/// the project; returns the CA's PEM.
fn tls_files(p: &Project) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    p.write("tls/server.pem", leaf.pem().as_bytes());
    p.write("tls/server.key", leaf_key.serialize_pem().as_bytes());
    ca.pem()
}

#[test]
fn https_serves_the_same_bucket_with_ranges_and_reports() {
    let (p, img) = published();
    let ca = tls_files(&p);
    let server = Server::start_with(
        &p,
        "dist",
        &["--tls-cert", "tls/server.pem", "--tls-key", "tls/server.key"],
        |_| {},
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let trusting = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let image_url = format!("{}/images/{}.bin", server.base, support::sha256_hex(&img));
    let part = trusting.get(&image_url).header(RANGE, "bytes=4000-").send().unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().unwrap(), img[4000..]);
    let manifest = trusting
        .get(format!("{}/stable/manifest.json", server.base))
        .send()
        .unwrap();
    let etag = manifest.headers()[ETAG].to_str().unwrap().to_owned();
    let again = trusting
        .get(format!("{}/stable/manifest.json", server.base))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // The report receiver is behind TLS too, and sees the client's address for its limits.
    let confirmed = device_report("3fa2c01d9e7b4410", "1.0.0", Outcome::Confirmed, 1);
    let (status, text) = post(&trusting, &server, body(&confirmed), "application/json");
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert!(reports::path(&p.path().join("dist"), &confirmed).is_file());

    // A client without the CA refuses the server, and plain HTTP gets no answer.
    let distrusting = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(distrusting.get(&image_url).send().is_err());
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(client().get(format!("{plain}/stable/manifest.json")).send().is_err());
}

#[test]
fn a_bad_certificate_or_key_is_an_error_at_start() {
    let (p, _) = published();
    tls_files(&p);
    let other = rcgen::KeyPair::generate().unwrap();
    p.write("tls/other.key", other.serialize_pem().as_bytes());
    p.write("tls/garbage.pem", b"not a certificate\n");
    let serve = |cert: &str, key: &str| {
        otactl(p.path())
            .args([
                "serve",
                "--bucket",
                "dist",
                "--addr",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ])
            .output()
            .unwrap()
    };
    for (cert, key, needle) in [
        (
            "tls/missing.pem",
            "tls/server.key",
            "--tls-cert tls/missing.pem: cannot read it",
        ),
        (
            "tls/garbage.pem",
            "tls/server.key",
            "--tls-cert tls/garbage.pem: holds no CERTIFICATE block",
        ),
        (
            "tls/server.pem",
            "tls/missing.key",
            "--tls-key tls/missing.key: cannot read it",
        ),
        (
            "tls/server.pem",
            "tls/other.key",
            "does not go with --tls-cert tls/server.pem",
        ),
    ] {
        let out = serve(cert, key);
        assert_eq!(code(&out), 2, "{}", text(&out));
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
}
