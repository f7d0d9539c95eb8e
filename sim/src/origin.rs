//! An HTTP/1.1 origin on the bench network, serving files with Range semantics and, on
//! demand, the misbehaviours a device meets in the field: a server that ignores Range,
//! 5xx bursts, a keep-alive timeout, redirects and Apache `mod_ratelimit` throttling.
//!
//! Like `otactl serve`, every object has a strong, quoted `ETag` (here Apache's
//! `FileETag MTime Size` form, `"<size hex>-<mtime µs hex>"`) and a `Last-Modified` date,
//! both new with each [`OriginHandle::put`], and a GET with a matching `If-None-Match` (weak
//! comparison, `*`) or, without one, an `If-Modified-Since` not older than the object is
//! answered `304 Not Modified`. It also takes the devices' outcome reports: a POST to
//! [`OriginBehaviour::report_path`] is recorded for [`OriginHandle::reports`] and answered
//! `202 Accepted`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use device_fw::wire::report::MAX_REPORT;

use crate::net::{Connection, Listener};
use crate::time;

/// Switchable misbehaviour; change it while the origin runs through [`OriginHandle`].
#[derive(Debug, Clone)]
pub struct OriginBehaviour {
    /// Answer every Range request with 200 and the whole file.
    pub ignore_range: bool,
    /// Ignore Range for this many more requests (a transient misconfiguration).
    pub ignore_range_next: u32,
    /// Answer this many more requests with 503.
    pub fail_next: u32,
    /// Send bodies no faster than this (bytes per second), like Apache `mod_ratelimit`.
    pub rate_limit: Option<u32>,
    /// Close an idle kept-alive connection after this long (Apache's default is 5 s).
    pub keep_alive_timeout: Duration,
    /// Path → Location answered with 302.
    pub redirects: HashMap<String, String>,
    /// Where devices POST their outcome reports; a POST anywhere else is 405.
    pub report_path: String,
}

impl Default for OriginBehaviour {
    fn default() -> Self {
        OriginBehaviour {
            ignore_range: false,
            ignore_range_next: 0,
            fail_next: 0,
            rate_limit: None,
            keep_alive_timeout: Duration::from_secs(5),
            redirects: HashMap::new(),
            report_path: "/reports".into(),
        }
    }
}

/// What the origin saw and sent.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct OriginStats {
    pub requests: u64,
    pub range_requests: u64,
    pub partial_responses: u64,
    pub full_responses: u64,
    /// 304s to conditional GETs.
    pub not_modified: u64,
    /// POSTs to the report path, recorded.
    pub reports: u64,
    pub errors_5xx: u64,
    pub body_bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    range_requests: AtomicU64,
    partial: AtomicU64,
    full: AtomicU64,
    not_modified: AtomicU64,
    reports: AtomicU64,
    errors_5xx: AtomicU64,
    body_bytes: AtomicU64,
}

/// One stored object and its validators.
#[derive(Debug, Clone)]
struct Object {
    data: Arc<Vec<u8>>,
    /// Strong, quoted.
    etag: String,
    /// Seconds since the Unix epoch (HTTP dates have no finer resolution).
    modified: u64,
}

#[derive(Debug, Default)]
struct Store {
    objects: HashMap<String, Object>,
    /// Puts so far: each one is a second later than the one before, so that every version
    /// has its own `Last-Modified` and `ETag`.
    puts: u64,
}

#[derive(Debug)]
struct OriginShared {
    store: Mutex<Store>,
    behaviour: Mutex<OriginBehaviour>,
    reports: Mutex<Vec<Vec<u8>>>,
    counters: Counters,
}

/// Controls a running origin.
#[derive(Debug, Clone)]
pub struct OriginHandle {
    shared: Arc<OriginShared>,
}

/// `Last-Modified` of the first object put: Mon, 23 Nov 2026 21:14:07 GMT.
const FIRST_MODIFIED: u64 = 1_795_468_447;

impl OriginHandle {
    /// Stores (or replaces) the object at `path`: a new version, with a new `ETag` and a
    /// later `Last-Modified`.
    pub fn put(&self, path: &str, data: Vec<u8>) {
        let mut store = self.shared.store.lock().expect("origin lock");
        let modified = FIRST_MODIFIED + store.puts;
        store.puts += 1;
        let etag = format!("\"{:x}-{:x}\"", data.len(), modified * 1_000_000);
        store.objects.insert(
            path.to_string(),
            Object {
                data: Arc::new(data),
                etag,
                modified,
            },
        );
    }

    /// The `ETag` the object at `path` is served with.
    pub fn etag(&self, path: &str) -> Option<String> {
        let store = self.shared.store.lock().expect("origin lock");
        store.objects.get(path).map(|o| o.etag.clone())
    }

    pub fn set_behaviour(&self, f: impl FnOnce(&mut OriginBehaviour)) {
        f(&mut self.shared.behaviour.lock().expect("origin lock"));
    }

    /// The bodies POSTed to the report path so far, in order.
    pub fn reports(&self) -> Vec<Vec<u8>> {
        self.shared.reports.lock().expect("origin lock").clone()
    }

    pub fn stats(&self) -> OriginStats {
        let c = &self.shared.counters;
        OriginStats {
            requests: c.requests.load(Ordering::Relaxed),
            range_requests: c.range_requests.load(Ordering::Relaxed),
            partial_responses: c.partial.load(Ordering::Relaxed),
            full_responses: c.full.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            reports: c.reports.load(Ordering::Relaxed),
            errors_5xx: c.errors_5xx.load(Ordering::Relaxed),
            body_bytes_sent: c.body_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Serves connections from `listener` until the network goes away.
pub fn spawn_origin(mut listener: Listener, behaviour: OriginBehaviour) -> OriginHandle {
    let shared = Arc::new(OriginShared {
        store: Mutex::new(Store::default()),
        behaviour: Mutex::new(behaviour),
        reports: Mutex::new(Vec::new()),
        counters: Counters::default(),
    });
    let handle = OriginHandle { shared: shared.clone() };
    tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            tokio::spawn(serve_connection(conn, shared.clone()));
        }
    });
    handle
}

/// A parsed request: just what the origin acts on.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    range: Option<String>,
    if_range: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    /// Body length from `Content-Length`; `Err` when the body's length is not known from
    /// it (a `Transfer-Encoding`, or a number that is not one).
    body_len: Result<usize, ()>,
    close: bool,
}

enum Parse {
    Done(Request, usize),
    Partial,
    Bad,
}

fn parse_request(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || req.version == Some(0);
            let body_len = match (header("transfer-encoding"), header("content-length")) {
                (Some(_), _) => Err(()),
                (None, Some(n)) => n.trim().parse().map_err(|_| ()),
                (None, None) => Ok(0),
            };
            Parse::Done(
                Request {
                    method: req.method.unwrap_or("GET").to_string(),
                    path: req.path.unwrap_or("/").to_string(),
                    range: header("range"),
                    if_range: header("if-range"),
                    if_none_match: header("if-none-match"),
                    if_modified_since: header("if-modified-since"),
                    body_len,
                    close,
                },
                n,
            )
        }
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(_) => Parse::Bad,
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against a file of `len` bytes. `None` for forms the
/// origin does not serve partially (several ranges, other units): those get the whole file.
/// `Some(Err(()))` when unsatisfiable.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (a, "") => (a.parse().ok()?, len.saturating_sub(1)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, b.min(len.saturating_sub(1)))
        }
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2), as `otactl serve` does:
/// `W/"x"` matches `"x"`, and `*` matches any object.
fn none_match(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Whether a conditional GET is answered 304 (RFC 9110 §13.2.2): `If-None-Match` decides
/// when present; otherwise an `If-Modified-Since` not older than the object. A date that is
/// not an IMF-fixdate is ignored, as an invalid one must be.
fn not_modified(req: &Request, object: &Object) -> bool {
    match (&req.if_none_match, &req.if_modified_since) {
        (Some(tags), _) => none_match(tags, &object.etag),
        (None, Some(date)) => parse_http_date(date).is_some_and(|since| object.modified <= since),
        (None, None) => false,
    }
}

const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the Unix epoch.
fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days, the inverse of the above.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAY_NAMES[days.rem_euclid(7) as usize],
        MONTH_NAMES[month as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form every HTTP/1.1
/// sender writes and the one this origin sends.
fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.trim().split(' ');
    let (_, day, month, year, clock, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = MONTH_NAMES.iter().position(|m| *m == month)? as u32 + 1;
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = clock.split(':').map(|f| f.parse::<u64>().ok().filter(|_| f.len() == 2));
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// What every response carries, as Apache sends it.
const SERVER_HEADERS: &str = "Date: Tue, 24 Nov 2026 03:00:00 GMT\r\nServer: Apache/2.4.62 (Debian)\r\n";

/// Reads more of the request into `pending`; `false` when the connection is over (closed,
/// or idle past the keep-alive timeout, which closes it).
async fn read_more(conn: &mut Connection, buf: &mut [u8], pending: &mut Vec<u8>, shared: &OriginShared) -> bool {
    let ka = shared.behaviour.lock().expect("origin lock").keep_alive_timeout;
    match time::timeout(ka, conn.read(buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(n)) => {
            pending.extend_from_slice(&buf[..n]);
            true
        }
        Err(_) => {
            conn.shutdown();
            false
        }
    }
}

async fn serve_connection(mut conn: Connection, shared: Arc<OriginShared>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let (req, used) = loop {
            match parse_request(&pending) {
                Parse::Done(req, n) => break (req, n),
                Parse::Bad => {
                    let _ = conn
                        .write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    conn.shutdown();
                    return;
                }
                Parse::Partial => {}
            }
            if !read_more(&mut conn, &mut buf, &mut pending, &shared).await {
                return;
            }
        };
        // A body this origin cannot delimit or will not hold ends the connection: what
        // follows it could not be told from the next request.
        let refusal = match req.body_len {
            Err(()) => Some("411 Length Required"),
            Ok(n) if n > MAX_REPORT => Some("413 Content Too Large"),
            Ok(_) => None,
        };
        if let Some(status) = refusal {
            let head = format!("HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = conn.write(head.as_bytes()).await;
            conn.shutdown();
            return;
        }
        let end = used + req.body_len.unwrap_or(0);
        while pending.len() < end {
            if !read_more(&mut conn, &mut buf, &mut pending, &shared).await {
                return;
            }
        }
        let body: Vec<u8> = pending.drain(..end).skip(used).collect();
        if respond(&conn, &req, body, &shared).await.is_err() {
            return;
        }
        if req.close {
            conn.shutdown();
            return;
        }
    }
}

async fn respond(
    conn: &Connection,
    req: &Request,
    body: Vec<u8>,
    shared: &OriginShared,
) -> Result<(), crate::pipe::PipeError> {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    if req.range.is_some() {
        c.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let conn_header = if req.close { "close" } else { "keep-alive" };
    let (fail, ignore_range, rate, redirect, report_path) = {
        let mut b = shared.behaviour.lock().expect("origin lock");
        let fail = b.fail_next > 0;
        b.fail_next = b.fail_next.saturating_sub(1);
        let transient = b.ignore_range_next > 0 && req.range.is_some();
        if transient {
            b.ignore_range_next -= 1;
        }
        (
            fail,
            b.ignore_range || transient,
            b.rate_limit,
            b.redirects.get(&req.path).cloned(),
            b.report_path.clone(),
        )
    };
    if fail {
        c.errors_5xx.fetch_add(1, Ordering::Relaxed);
        let body = "Service Unavailable\n";
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\n{SERVER_HEADERS}Content-Length: {}\r\nConnection: {conn_header}\r\n\r\n{body}",
            body.len()
        );
        return conn.write(head.as_bytes()).await;
    }
    if let Some(location) = redirect {
        let head = format!(
            "HTTP/1.1 302 Found\r\n{SERVER_HEADERS}Location: {location}\r\nContent-Length: 0\r\nConnection: {conn_header}\r\n\r\n"
        );
        return conn.write(head.as_bytes()).await;
    }
    if req.method == "POST" {
        let status = if req.path == report_path {
            c.reports.fetch_add(1, Ordering::Relaxed);
            shared.reports.lock().expect("origin lock").push(body);
            "202 Accepted"
        } else {
            "405 Method Not Allowed\r\nAllow: GET, HEAD"
        };
        let head =
            format!("HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: {conn_header}\r\n\r\n");
        return conn.write(head.as_bytes()).await;
    }
    let object = shared
        .store
        .lock()
        .expect("origin lock")
        .objects
        .get(&req.path)
        .cloned();
    let Some(object) = object else {
        let head =
            format!("HTTP/1.1 404 Not Found\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: {conn_header}\r\n\r\n");
        return conn.write(head.as_bytes()).await;
    };
    // Conditions come before Range (RFC 9110 §13.2.2); a 304 has no body, and Apache sends
    // only the ETag of the two validators with it.
    if not_modified(req, &object) {
        c.not_modified.fetch_add(1, Ordering::Relaxed);
        let head = format!(
            "HTTP/1.1 304 Not Modified\r\n{SERVER_HEADERS}ETag: {}\r\nKeep-Alive: timeout=5, max=100\r\nConnection: {conn_header}\r\n\r\n",
            object.etag
        );
        return conn.write(head.as_bytes()).await;
    }
    let validators = format!(
        "Last-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
        http_date(object.modified),
        object.etag
    );
    let file = &object.data;
    let len = file.len() as u64;
    // A Range under an If-Range that is not this version would splice two versions of the
    // object together: the whole object instead.
    let stale_range = req.if_range.as_deref().is_some_and(|v| v.trim() != object.etag);
    let range = if ignore_range || stale_range {
        None
    } else {
        req.range.as_deref().and_then(|r| parse_range(r, len))
    };
    let (status, start, end) = match range {
        Some(Ok((a, b))) => ("206 Partial Content", a, b),
        Some(Err(())) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\n{SERVER_HEADERS}Content-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: {conn_header}\r\n\r\n"
            );
            return conn.write(head.as_bytes()).await;
        }
        None => ("200 OK", 0, len.saturating_sub(1)),
    };
    let body = if len == 0 {
        &file[..0]
    } else {
        &file[start as usize..=end as usize]
    };
    let content_range = if range.is_some() {
        format!("Content-Range: bytes {start}-{end}/{len}\r\n")
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n{SERVER_HEADERS}{validators}Content-Length: {}\r\n{content_range}Keep-Alive: timeout=5, max=100\r\nConnection: {conn_header}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    );
    if range.is_some() { &c.partial } else { &c.full }.fetch_add(1, Ordering::Relaxed);
    conn.write(head.as_bytes()).await?;
    match rate {
        None => conn.write(body).await?,
        Some(rate) => {
            // mod_ratelimit sends in small bursts, eight a second.
            let piece = (rate as usize / 8).max(1);
            for part in body.chunks(piece) {
                conn.write(part).await?;
                time::sleep(Duration::from_millis(125)).await;
            }
        }
    }
    c.body_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use device_fw::http::{Fetched, HttpClient, USER_AGENT, Url, Validators};
    use device_fw::socket::SocketError;

    use super::*;
    use crate::net::{NatConfig, NatExpiry, NetConfig, Network};

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
}
