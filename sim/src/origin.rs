//! An HTTP/1.1 origin on the bench network, serving files with Range semantics and, on
//! demand, the misbehaviours a device meets in the field: a server that ignores Range,
//! 5xx bursts, a keep-alive timeout, redirects and Apache `mod_ratelimit` throttling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    pub errors_5xx: u64,
    pub body_bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    range_requests: AtomicU64,
    partial: AtomicU64,
    full: AtomicU64,
    errors_5xx: AtomicU64,
    body_bytes: AtomicU64,
}

#[derive(Debug)]
struct OriginShared {
    files: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    behaviour: Mutex<OriginBehaviour>,
    counters: Counters,
}

/// Controls a running origin.
#[derive(Debug, Clone)]
pub struct OriginHandle {
    shared: Arc<OriginShared>,
}

impl OriginHandle {
    pub fn put(&self, path: &str, data: Vec<u8>) {
        self.shared
            .files
            .lock()
            .expect("origin lock")
            .insert(path.to_string(), Arc::new(data));
    }

    pub fn set_behaviour(&self, f: impl FnOnce(&mut OriginBehaviour)) {
        f(&mut self.shared.behaviour.lock().expect("origin lock"));
    }

    pub fn stats(&self) -> OriginStats {
        let c = &self.shared.counters;
        OriginStats {
            requests: c.requests.load(Ordering::Relaxed),
            range_requests: c.range_requests.load(Ordering::Relaxed),
            partial_responses: c.partial.load(Ordering::Relaxed),
            full_responses: c.full.load(Ordering::Relaxed),
            errors_5xx: c.errors_5xx.load(Ordering::Relaxed),
            body_bytes_sent: c.body_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Serves connections from `listener` until the network goes away.
pub fn spawn_origin(mut listener: Listener, behaviour: OriginBehaviour) -> OriginHandle {
    let shared = Arc::new(OriginShared {
        files: Mutex::new(HashMap::new()),
        behaviour: Mutex::new(behaviour),
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
    path: String,
    range: Option<String>,
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
            Parse::Done(
                Request {
                    path: req.path.unwrap_or("/").to_string(),
                    range: header("range"),
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

const SERVER_HEADERS: &str = "Date: Tue, 24 Nov 2026 03:00:00 GMT\r\nServer: Apache/2.4.62 (Debian)\r\nLast-Modified: Mon, 23 Nov 2026 21:14:07 GMT\r\nETag: \"38e50-5f1c2a9d3b1c0\"\r\nAccept-Ranges: bytes\r\n";

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
            let ka = shared.behaviour.lock().expect("origin lock").keep_alive_timeout;
            match time::timeout(ka, conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
                Err(_) => {
                    conn.shutdown();
                    return;
                }
            }
        };
        pending.drain(..used);
        if respond(&conn, &req, &shared).await.is_err() {
            return;
        }
        if req.close {
            conn.shutdown();
            return;
        }
    }
}

async fn respond(conn: &Connection, req: &Request, shared: &OriginShared) -> Result<(), crate::pipe::PipeError> {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    if req.range.is_some() {
        c.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let conn_header = if req.close { "close" } else { "keep-alive" };
    let (fail, ignore_range, rate, redirect) = {
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
    let file = shared.files.lock().expect("origin lock").get(&req.path).cloned();
    let Some(file) = file else {
        let head =
            format!("HTTP/1.1 404 Not Found\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: {conn_header}\r\n\r\n");
        return conn.write(head.as_bytes()).await;
    };
    let len = file.len() as u64;
    let range = if ignore_range {
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
        "HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Length: {}\r\n{content_range}Keep-Alive: timeout=5, max=100\r\nConnection: {conn_header}\r\nContent-Type: application/octet-stream\r\n\r\n",
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
}
