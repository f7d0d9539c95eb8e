use device_fw::http::{Fetched, HttpClient, USER_AGENT, Url, Validators};
use device_fw::socket::SocketError;
use device_fw::wire::report::MAX_REPORT;

use super::conditional::{http_date, parse_http_date};
use super::*;
use crate::net::{Connection, NatConfig, NatExpiry, NetConfig, Network};
use crate::time;

async fn exchange(conn: &mut Connection, req: &str) -> Vec<u8> {
    conn.write(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the response is complete (headers + Content-Length).
    loop {
        let n = conn.read(&mut buf).await.unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(p) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..p]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if out.len() >= p + 4 + len {
                return out;
            }
        }
    }
}

fn setup() -> (Network, OriginHandle) {
    time::use_virtual_time();
    let net = Network::new(NetConfig::lte(NatConfig {
        idle_timeout: None,
        on_expiry: NatExpiry::Reset,
    }));
    let origin = spawn_origin(net.listen("origin", 80), OriginBehaviour::default());
    origin.put("/fw.bin", (0..=255u8).cycle().take(10_000).collect());
    (net, origin)
}

#[tokio::test(start_paused = true)]
async fn range_gives_206_with_content_range() {
    let (net, _o) = setup();
    let mut c = net.connect("origin", 80).await.unwrap();
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=100-199\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&r);
    assert!(text.starts_with("HTTP/1.1 206 Partial Content\r\n"));
    assert!(text.contains("Content-Range: bytes 100-199/10000\r\n"));
    let body = &r[r.len() - 100..];
    assert_eq!(body, &(100..200).map(|i| (i % 256) as u8).collect::<Vec<_>>()[..]);
    // Keep-alive: a second request on the same connection.
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=9990-\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&r).contains("Content-Range: bytes 9990-9999/10000\r\n"));
}

#[tokio::test(start_paused = true)]
async fn unsatisfiable_range_is_416_and_ignored_range_is_200() {
    let (net, o) = setup();
    let mut c = net.connect("origin", 80).await.unwrap();
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=10000-\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&r).contains("416 Range Not Satisfiable\r\n"));
    assert!(String::from_utf8_lossy(&r).contains("Content-Range: bytes */10000\r\n"));
    o.set_behaviour(|b| b.ignore_range_next = 1);
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=5-9\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(r.len() > 10_000);
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=5-9\r\n\r\n",
    )
    .await;
    assert!(
        String::from_utf8_lossy(&r).starts_with("HTTP/1.1 206"),
        "the transient fault is over"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_paces_the_body() {
    let (net, o) = setup();
    o.set_behaviour(|b| b.rate_limit = Some(2048));
    let mut c = net.connect("origin", 80).await.unwrap();
    let t0 = time::now();
    let r = exchange(&mut c, "GET /fw.bin HTTP/1.1\r\nHost: origin\r\n\r\n").await;
    assert!(r.len() > 10_000);
    let secs = (time::now() - t0).as_secs_f64();
    assert!((4.0..5.5).contains(&secs), "10000 bytes at 2 KiB/s took {secs} s");
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connection_is_closed() {
    let (net, _o) = setup();
    let mut c = net.connect("origin", 80).await.unwrap();
    let t0 = time::now();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).await.unwrap(), 0, "FIN after the keep-alive timeout");
    assert!(time::now() - t0 >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn fail_next_and_redirect() {
    let (net, o) = setup();
    o.set_behaviour(|b| {
        b.fail_next = 1;
        b.redirects.insert("/old.bin".into(), "/fw.bin".into());
    });
    let mut c = net.connect("origin", 80).await.unwrap();
    let r = exchange(&mut c, "GET /fw.bin HTTP/1.1\r\nHost: origin\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 503"));
    let r = exchange(&mut c, "GET /old.bin HTTP/1.1\r\nHost: origin\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&r).contains("Location: /fw.bin\r\n"));
    assert_eq!(o.stats().errors_5xx, 1);
}

/// The value of header `name` in a response's head.
fn header(response: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let head = text.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn status(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn http_dates_round_trip() {
    assert_eq!(http_date(FIRST_MODIFIED), "Mon, 23 Nov 2026 21:14:07 GMT");
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    for secs in [0, 784_111_777, 951_782_400, FIRST_MODIFIED, 4_102_444_799] {
        assert_eq!(parse_http_date(&http_date(secs)), Some(secs));
    }
    for bad in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn conditional_gets_are_answered_304_like_otactl_serve() {
    let (net, o) = setup();
    let mut c = net.connect("origin", 80).await.unwrap();
    let get = |extra: &str| format!("GET /fw.bin HTTP/1.1\r\nHost: origin\r\n{extra}\r\n");
    let r = exchange(&mut c, &get("")).await;
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    let etag = header(&r, "etag").unwrap();
    let date = header(&r, "last-modified").unwrap();
    assert_eq!(Some(&etag), o.etag("/fw.bin").as_ref());
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    assert_eq!(date, "Mon, 23 Nov 2026 21:14:07 GMT");

    let earlier = http_date(FIRST_MODIFIED - 1);
    for (condition, expect_304) in [
        (format!("If-None-Match: {etag}\r\n"), true),
        (format!("If-None-Match: \"other\", W/{etag}\r\n"), true),
        ("If-None-Match: *\r\n".to_string(), true),
        // If-None-Match decides; the date beside it is not looked at.
        (
            format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {date}\r\n"),
            false,
        ),
        (format!("If-Modified-Since: {date}\r\n"), true),
        (
            format!("If-Modified-Since: {}\r\n", http_date(FIRST_MODIFIED + 3600)),
            true,
        ),
        (format!("If-Modified-Since: {earlier}\r\n"), false),
        ("If-Modified-Since: yesterday\r\n".to_string(), false),
        // Conditions come before Range.
        (format!("If-None-Match: {etag}\r\nRange: bytes=0-9\r\n"), true),
    ] {
        // All on the one connection: a 304 keeps it.
        let r = exchange(&mut c, &get(&condition)).await;
        if expect_304 {
            assert_eq!(status(&r), "HTTP/1.1 304 Not Modified", "{condition}");
            assert!(r.ends_with(b"\r\n\r\n"), "{condition}: a 304 has no body");
            assert_eq!(header(&r, "etag").as_ref(), Some(&etag), "{condition}");
            assert_eq!(header(&r, "content-length"), None, "{condition}");
        } else {
            assert_eq!(status(&r), "HTTP/1.1 200 OK", "{condition}");
            assert_eq!(
                r.len() - r.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
                10_000
            );
        }
    }
    assert_eq!(o.stats().not_modified, 6);

    // A new version: the old validators no longer match, and a stale If-Range gets the
    // whole object rather than a piece of the new one.
    o.put("/fw.bin", vec![7; 2000]);
    let r = exchange(&mut c, &get(&format!("If-None-Match: {etag}\r\n"))).await;
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    let new_etag = header(&r, "etag").unwrap();
    assert_ne!(new_etag, etag);
    assert_eq!(new_etag, format!("\"7d0-{:x}\"", (FIRST_MODIFIED + 1) * 1_000_000));
    assert_eq!(header(&r, "last-modified").unwrap(), http_date(FIRST_MODIFIED + 1));
    let r = exchange(&mut c, &get(&format!("If-Modified-Since: {date}\r\n"))).await;
    assert_eq!(status(&r), "HTTP/1.1 200 OK", "a second later than the old date");
    let r = exchange(&mut c, &get(&format!("If-Range: {etag}\r\nRange: bytes=0-9\r\n"))).await;
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    let r = exchange(&mut c, &get(&format!("If-Range: {new_etag}\r\nRange: bytes=0-9\r\n"))).await;
    assert_eq!(status(&r), "HTTP/1.1 206 Partial Content");
    // Missing objects stay 404 whatever the condition.
    let r = exchange(
        &mut c,
        "GET /nothing HTTP/1.1\r\nHost: origin\r\nIf-None-Match: *\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "HTTP/1.1 404 Not Found");
}

#[tokio::test(start_paused = true)]
async fn reports_are_recorded_and_answered_202() {
    let (net, o) = setup();
    let mut c = net.connect("origin", 80).await.unwrap();
    let report = br#"{"schema":1,"device":"3fa2c01d9e7b4410","attempt":3}"#;
    let head = format!(
        "POST /reports HTTP/1.1\r\nHost: origin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        report.len()
    );
    // The body may come in a later segment than the head.
    c.write(head.as_bytes()).await.unwrap();
    time::sleep(Duration::from_millis(100)).await;
    let r = exchange(&mut c, std::str::from_utf8(report).unwrap()).await;
    assert_eq!(status(&r), "HTTP/1.1 202 Accepted");
    assert_eq!(o.reports(), vec![report.to_vec()]);
    // The connection goes on: a GET, a POST elsewhere, a second report.
    let r = exchange(
        &mut c,
        "GET /fw.bin HTTP/1.1\r\nHost: origin\r\nRange: bytes=0-0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "HTTP/1.1 206 Partial Content");
    let r = exchange(
        &mut c,
        "POST /fw.bin HTTP/1.1\r\nHost: origin\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(status(&r), "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&r, "allow").as_deref(), Some("GET, HEAD"));
    o.set_behaviour(|b| b.report_path = "/v1/reports".into());
    let r = exchange(
        &mut c,
        "POST /v1/reports HTTP/1.1\r\nHost: origin\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    assert_eq!(status(&r), "HTTP/1.1 202 Accepted");
    assert_eq!(o.reports(), vec![report.to_vec(), b"ok".to_vec()]);
    assert_eq!(o.stats().reports, 2);

    // Bodies it cannot delimit or will not hold end the connection.
    let big = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: origin\r\nContent-Length: {}\r\n\r\n",
        MAX_REPORT + 1
    );
    let r = exchange(&mut c, &big).await;
    assert_eq!(status(&r), "HTTP/1.1 413 Content Too Large");
    let mut c = net.connect("origin", 80).await.unwrap();
    let r = exchange(
        &mut c,
        "POST /v1/reports HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "HTTP/1.1 411 Length Required");
    assert_eq!(o.reports().len(), 2);
}

/// The device's socket over a bench connection, counting the bytes each way.
#[derive(Debug)]
struct BenchSocket {
    net: Network,
    conn: Option<Connection>,
    connects: usize,
    sent: usize,
    received: usize,
}

impl device_fw::socket::Socket for BenchSocket {
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        self.connects += 1;
        let conn = self.net.connect(host, port).await;
        self.conn = Some(conn.map_err(|_| SocketError::ConnectFailed(0))?);
        Ok(())
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        let conn = self.conn.as_ref().ok_or(SocketError::NotConnected)?;
        conn.write(data).await.map_err(|_| SocketError::Closed)?;
        self.sent += data.len();
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        let conn = self.conn.as_mut().ok_or(SocketError::NotConnected)?;
        let n = conn.read(buf).await.map_err(|_| SocketError::Closed)?;
        self.received += n;
        Ok(n)
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.shutdown();
        }
    }

    fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_open)
    }
}

#[tokio::test(start_paused = true)]
async fn device_client_checks_unchanged_and_reports() {
    // The bench's names, and a manifest as long as a signed one is (664 bytes).
    let (host, path) = (crate::scenario::ORIGIN_HOST, crate::device::MANIFEST_PATH);
    time::use_virtual_time();
    let net = Network::new(NetConfig::lte(NatConfig {
        idle_timeout: None,
        on_expiry: NatExpiry::Reset,
    }));
    let o = spawn_origin(net.listen(host, 80), OriginBehaviour::default());
    let manifest = vec![b'm'; 664];
    o.put(path, manifest.clone());
    let socket = BenchSocket {
        net,
        conn: None,
        connects: 0,
        sent: 0,
        received: 0,
    };
    let mut http = HttpClient::new(socket);
    let text = format!("http://{host}{path}");
    let u = Url::parse(&text).unwrap();
    let Fetched::Changed(head) = http.get_if_changed(&u, &Validators::NONE).await.unwrap() else {
        panic!("an unconditional GET got a 304");
    };
    assert_eq!(head.content_length, Some(manifest.len() as u64));
    let mut body = [0u8; 1024];
    let mut len = 0;
    while let n @ 1.. = http.read_body(&mut body[len..]).await.unwrap() {
        len += n;
    }
    assert_eq!(&body[..len], &manifest[..]);
    let known = http.validators().clone();
    let full_fetch = http.socket().sent + http.socket().received;
    let etag = o.etag(path).unwrap();
    assert_eq!(known.etag(), Some(etag.as_str()));

    // One unchanged check, on the kept-alive connection.
    let (sent, received) = (http.socket().sent, http.socket().received);
    assert_eq!(http.get_if_changed(&u, &known).await, Ok(Fetched::NotModified));
    let request = http.socket().sent - sent;
    let response = http.socket().received - received;
    // What our code sends: 80 bytes of syntax and header names, then the path (27), the
    // host (15), the ETag (19) and the User-Agent: 160 bytes with `otactl-device/0.1.0`.
    // The response is this origin's Apache-like 304 head, 181 bytes. The HTTP client's
    // module docs quote both.
    let bound = 80 + path.len() + host.len() + etag.len() + USER_AGENT.len();
    assert!(request <= bound, "request {request} bytes, more than {bound}");
    assert!(response <= 181 + etag.len() - 19, "304 head {response} bytes");
    assert!(3 * (request + response) < full_fetch, "a fetch is {full_fetch} bytes");
    assert_eq!(o.stats().not_modified, 1);

    // A new release: the same check fetches it.
    o.put(path, vec![b'n'; 700]);
    assert!(matches!(http.get_if_changed(&u, &known).await, Ok(Fetched::Changed(_))));
    while http.read_body(&mut body).await.unwrap() > 0 {}
    assert_ne!(*http.validators(), known);

    // The outcome report, on the same connection.
    let report = br#"{"schema":1,"device":"3fa2c01d9e7b4410","outcome":"confirmed","attempt":3}"#;
    let text = format!("http://{host}/reports");
    let reports = Url::parse(&text).unwrap();
    let status = http.post(&reports, device_fw::wire::report::CONTENT_TYPE, report).await;
    assert_eq!(status, Ok(202));
    assert_eq!(o.reports(), vec![report.to_vec()]);
    assert_eq!(http.socket().connects, 1);
}
