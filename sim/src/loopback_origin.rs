//! A small real HTTP/1.1 origin on 127.0.0.1, for tests of the real bench: the virtual
//! device on a pseudo-terminal fetches releases from it over real TCP.
//!
//! It serves bytes by path with what the device relies on (Range with 206 and 416,
//! Content-Length, keep-alive) and records every request, so a test can see where a
//! download resumed. An optional rate limit (wall time) slows bodies down, so a test can
//! stop a device in the middle of one. Plain threads, no runtime: it must not share the
//! device's clock.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the origin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    /// The `Range` header as sent.
    pub range: Option<String>,
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    files: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    requests: Mutex<Vec<Request>>,
    /// Body bytes per second; `None` for as fast as the socket takes them.
    rate: Mutex<Option<u64>>,
    stop: AtomicBool,
}

/// A running origin; stops when dropped.
#[derive(Debug)]
pub struct LoopbackOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Keep-alive connections idle this long are closed, as a web server does.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

impl LoopbackOrigin {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub fn start() -> io::Result<LoopbackOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("loopback-origin".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(LoopbackOrigin {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `bytes` at `path` (replacing what was there).
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.shared
            .files
            .lock()
            .expect("origin lock")
            .insert(path.to_owned(), Arc::new(bytes));
    }

    /// Limits body bytes per second (wall time); `None` lifts the limit.
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        *self.shared.rate.lock().expect("origin lock") = bytes_per_sec;
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("origin lock").clone()
    }
}

impl Drop for LoopbackOrigin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("loopback-origin-conn".into())
                    .spawn(move || {
                        let _ = serve(stream, &shared);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Answers requests on one connection until the client closes it, asks to, or idles.
fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let mut pending = Vec::new();
    loop {
        let Some(head_len) = read_head(&mut stream, &mut pending, shared)? else {
            return Ok(());
        };
        let head: Vec<u8> = pending.drain(..head_len).collect();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        let method = req.method.unwrap_or("").to_owned();
        let path = req.path.unwrap_or("/").to_owned();
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let range = header("range");
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let file = shared.files.lock().expect("origin lock").get(&path).cloned();
        let (status, head_out, body): (u16, String, &[u8]) = match (&file, method.as_str()) {
            (_, m) if m != "GET" && m != "HEAD" => (405, "Allow: GET, HEAD\r\nContent-Length: 0\r\n".into(), &[]),
            (None, _) => (404, "Content-Length: 0\r\n".into(), &[]),
            (Some(bytes), _) => match range.as_deref().map(|r| parse_range(r, bytes.len())) {
                None => (200, format!("Content-Length: {}\r\n", bytes.len()), &bytes[..]),
                Some(Some((start, end))) => (
                    206,
                    format!(
                        "Content-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n",
                        end - 1,
                        bytes.len(),
                        end - start
                    ),
                    &bytes[start..end],
                ),
                Some(None) => (
                    416,
                    format!("Content-Range: bytes */{}\r\nContent-Length: 0\r\n", bytes.len()),
                    &[],
                ),
            },
        };
        shared
            .requests
            .lock()
            .expect("origin lock")
            .push(Request { path, range, status });
        let reason = match status {
            200 => "OK",
            206 => "Partial Content",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Range Not Satisfiable",
        };
        let connection = if close { "close" } else { "keep-alive" };
        stream.write_all(
            format!("HTTP/1.1 {status} {reason}\r\n{head_out}Accept-Ranges: bytes\r\nConnection: {connection}\r\n\r\n")
                .as_bytes(),
        )?;
        if method == "GET" {
            send_body(&mut stream, body, shared)?;
        }
        if close {
            return Ok(());
        }
    }
}

/// Reads until a whole request head is in `pending`; `None` when the connection ends.
fn read_head(stream: &mut TcpStream, pending: &mut Vec<u8>, shared: &Shared) -> io::Result<Option<usize>> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut idle = Duration::ZERO;
    loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if pending.len() > 16 * 1024 || shared.stop.load(Ordering::Relaxed) || idle >= KEEP_ALIVE {
            return Ok(None);
        }
        let mut buf = [0u8; 2048];
        match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                idle = Duration::ZERO;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                idle += Duration::from_millis(100);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes `body`, paced to the rate limit when there is one.
fn send_body(stream: &mut TcpStream, body: &[u8], shared: &Shared) -> io::Result<()> {
    const SLICE: Duration = Duration::from_millis(20);
    let mut at = 0;
    while at < body.len() {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let rate = *shared.rate.lock().expect("origin lock");
        let n = match rate {
            Some(rate) => ((rate as f64 * SLICE.as_secs_f64()) as usize).max(1),
            None => 64 * 1024,
        }
        .min(body.len() - at);
        stream.write_all(&body[at..at + n])?;
        at += n;
        if rate.is_some() {
            std::thread::sleep(SLICE);
        }
    }
    Ok(())
}

/// `bytes=a-b` / `bytes=a-` / `bytes=-n` → the half-open range served; `None` when it
/// cannot be satisfied (416).
fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: usize = n.parse().ok()?;
            (len.saturating_sub(n), len)
        }
        (a, "") => (a.parse().ok()?, len),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.saturating_add(1).min(len)),
    };
    (start < end && start < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(origin: &LoopbackOrigin, path: &str, range: Option<&str>) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(origin.addr()).unwrap();
        let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{range}Connection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (String::from_utf8(out[..split].to_vec()).unwrap(), out[split..].to_vec())
    }

    #[test]
    fn serves_whole_files_ranges_and_refusals() {
        let origin = LoopbackOrigin::start().unwrap();
        origin.put("/a.bin", (0..100u8).collect());
        let (head, body) = get(&origin, "/a.bin", None);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body.len(), 100);
        let (head, body) = get(&origin, "/a.bin", Some("bytes=90-"));
        assert!(head.contains("Content-Range: bytes 90-99/100"), "{head}");
        assert_eq!(body, (90..100u8).collect::<Vec<_>>());
        let (head, body) = get(&origin, "/a.bin", Some("bytes=10-19"));
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert_eq!(body, (10..20u8).collect::<Vec<_>>());
        let (head, _) = get(&origin, "/a.bin", Some("bytes=100-"));
        assert!(head.starts_with("HTTP/1.1 416"), "{head}");
        let (head, _) = get(&origin, "/nothing", None);
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let ranges: Vec<_> = origin.requests().into_iter().map(|r| r.range).collect();
        assert_eq!(ranges[1].as_deref(), Some("bytes=90-"));
    }
}
