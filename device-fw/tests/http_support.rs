//! Test support for the HTTP client tests: a scripted socket that releases each response
//! only once its request was sent whole, as a server would, and helpers that build
//! responses. Included by the `http_*` client tests with `#[path = "http_support.rs"] mod
//! support;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use device_fw::http::{HttpClient, HttpError, Url};
use device_fw::socket::{Socket, SocketError};
use embassy_futures::block_on;

// ---------------------------------------------------------------------------------------
// A scripted socket.

/// What one `read` hands out.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes, given out over as many reads as the reader's buffer needs.
    Data(Vec<u8>),
    /// The peer closed: this and every later read returns `Ok(0)`.
    Eof,
    /// The read fails (and the connection is dead afterwards unless it is a timeout).
    Fail(SocketError),
    /// The read is not ready at its first poll (the modem is still busy).
    Pending,
}

/// A future that is pending once, then ready.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The server side of one connection: response `i` is released only once the client has
/// sent request `i` whole (its head and the body its `Content-Length` announces), as a
/// real server would.
#[derive(Debug, Default, Clone)]
pub struct Conn {
    pub responses: Vec<Vec<Step>>,
    /// `connect` fails with this instead of opening the connection.
    pub refuse: Option<SocketError>,
    /// `write_all` of request number `.0` (0-based) fails with `.1`.
    pub fail_write: Option<(usize, SocketError)>,
}

impl Conn {
    pub fn new(responses: Vec<Vec<Step>>) -> Self {
        Conn {
            responses,
            ..Conn::default()
        }
    }
}

#[derive(Debug, Default)]
pub struct FakeSocket {
    /// Scripts for the next connections, in order.
    pub script: VecDeque<Conn>,
    /// The open connection: its script, pending steps, and how many responses it released.
    open: Option<(Conn, VecDeque<Step>, usize)>,
    dead: bool,
    /// Every `connect` target.
    pub connects: Vec<(String, u16)>,
    /// Bytes written, one entry per connection.
    pub sent: Vec<Vec<u8>>,
    /// `write_all` calls that went through.
    pub writes: usize,
    pub closes: usize,
    pub reads: usize,
}

impl FakeSocket {
    pub fn new(conns: Vec<Conn>) -> Self {
        FakeSocket {
            script: conns.into(),
            ..FakeSocket::default()
        }
    }

    /// Requests sent on every connection, as text (head and body), in order.
    pub fn requests(&self) -> Vec<String> {
        self.sent
            .iter()
            .flat_map(|bytes| {
                let mut at = 0;
                split_requests(bytes)
                    .into_iter()
                    .map(|end| {
                        let text = String::from_utf8_lossy(&bytes[at..end]).into_owned();
                        at = end;
                        text
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn request_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.lines().next().unwrap().to_owned())
            .collect()
    }

    pub fn requests_on(&self, conn: usize) -> usize {
        split_requests(&self.sent[conn]).len()
    }
}

/// Where each complete request in `bytes` ends: after its head's blank line and as many body
/// bytes as its `Content-Length` says.
fn split_requests(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(blank) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[at..at + blank]).to_ascii_lowercase();
        let body: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.parse().unwrap());
        let end = at + blank + 4 + body;
        if end > bytes.len() {
            break;
        }
        ends.push(end);
        at = end;
    }
    ends
}

impl Socket for FakeSocket {
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        self.open = None;
        self.connects.push((host.to_owned(), port));
        let conn = self
            .script
            .pop_front()
            .expect("the client opened more connections than scripted");
        if let Some(e) = conn.refuse {
            return Err(e);
        }
        self.sent.push(Vec::new());
        self.open = Some((conn, VecDeque::new(), 0));
        self.dead = false;
        Ok(())
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        let Some((conn, _, _)) = self.open.as_ref() else {
            return Err(SocketError::NotConnected);
        };
        let index = self.sent.len() - 1;
        if let Some((n, e)) = conn.fail_write
            && self.requests_on(index) == n
        {
            self.dead = true;
            return Err(e);
        }
        if self.dead {
            return Err(SocketError::Closed);
        }
        self.sent[index].extend_from_slice(data);
        self.writes += 1;
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.reads += 1;
        let requests = self.sent.last().map_or(0, |s| split_requests(s).len());
        let Some((conn, pending, released)) = self.open.as_mut() else {
            return Err(SocketError::NotConnected);
        };
        while pending.is_empty() && *released < requests && *released < conn.responses.len() {
            pending.extend(conn.responses[*released].iter().cloned());
            *released += 1;
        }
        if matches!(pending.front(), Some(Step::Pending)) {
            pending.pop_front();
            YieldOnce::default().await;
        }
        match pending.pop_front() {
            Some(Step::Pending) => unreachable!("two Pending steps in a row"),
            // Nothing more: the server is waiting for a request (or has nothing to say).
            None => Err(SocketError::Timeout),
            Some(Step::Data(mut data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    pending.push_front(Step::Data(data.split_off(n)));
                }
                Ok(n)
            }
            Some(Step::Eof) => {
                pending.push_front(Step::Eof);
                self.dead = true;
                Ok(0)
            }
            Some(Step::Fail(e)) => {
                if e != SocketError::Timeout {
                    pending.clear();
                    pending.push_front(Step::Fail(SocketError::Closed));
                    self.dead = true;
                }
                Err(e)
            }
        }
    }

    async fn close(&mut self) {
        self.closes += 1;
        self.open = None;
    }

    fn is_connected(&self) -> bool {
        self.open.is_some() && !self.dead
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

pub fn data(bytes: impl AsRef<[u8]>) -> Step {
    Step::Data(bytes.as_ref().to_vec())
}

/// A response with the given status line, headers and body, in one piece.
pub fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// `response` cut into reads of `n` bytes.
pub fn in_pieces(bytes: &[u8], n: usize) -> Vec<Step> {
    bytes.chunks(n).map(data).collect()
}

pub fn ok_200(body: &[u8]) -> Vec<u8> {
    response("200 OK", &[&format!("Content-Length: {}", body.len())], body)
}

pub fn partial(start: u64, body: &[u8], total: u64) -> Vec<u8> {
    let end = start + body.len() as u64 - 1;
    response(
        "206 Partial Content",
        &[
            &format!("Content-Range: bytes {start}-{end}/{total}"),
            &format!("Content-Length: {}", body.len()),
        ],
        body,
    )
}

pub fn client(conns: Vec<Conn>) -> HttpClient<FakeSocket> {
    HttpClient::new(FakeSocket::new(conns))
}

pub fn url(text: &str) -> Url<'_> {
    Url::parse(text).unwrap()
}

/// Reads the whole body with a reader buffer of `chunk` bytes.
pub fn read_all(c: &mut HttpClient<FakeSocket>, chunk: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        let n = block_on(c.read_body(&mut buf))?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub fn body_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Shared by the conditional-GET and POST tests and by the request-bytes test.

pub const LAST_MODIFIED: &str = "Mon, 23 Nov 2026 21:14:07 GMT";

pub fn not_modified(headers: &[&str]) -> Vec<u8> {
    response("304 Not Modified", headers, b"")
}

pub const REPORT: &[u8] = br#"{"schema":1,"device":"3fa2c01d9e7b4410","outcome":"confirmed","attempt":3}"#;
pub const REPORT_TYPE: &str = "application/vnd.otactl.report+json";
