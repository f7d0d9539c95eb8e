//! The HTTP Range client against a scripted socket: every status path, redirects,
//! keep-alive reuse and its stale-connection retry, truncation, header limits, conditional
//! GETs (304) and small POSTs.

use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use device_fw::http::{
    CLIENT_RAM, ContentRange, DRAIN_LIMIT, Fetched, HEAD_BUF_LEN, HttpClient, HttpError, MAX_ETAG_LEN, MAX_URL_LEN,
    ResponseHead, USER_AGENT, Url, VALIDATORS_RAM, Validators,
};
use device_fw::socket::{Socket, SocketError};
use embassy_futures::block_on;

// ---------------------------------------------------------------------------------------
// A scripted socket.

/// What one `read` hands out.
#[derive(Debug, Clone)]
enum Step {
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
struct Conn {
    responses: Vec<Vec<Step>>,
    /// `connect` fails with this instead of opening the connection.
    refuse: Option<SocketError>,
    /// `write_all` of request number `.0` (0-based) fails with `.1`.
    fail_write: Option<(usize, SocketError)>,
}

impl Conn {
    fn new(responses: Vec<Vec<Step>>) -> Self {
        Conn {
            responses,
            ..Conn::default()
        }
    }
}

#[derive(Debug, Default)]
struct FakeSocket {
    /// Scripts for the next connections, in order.
    script: VecDeque<Conn>,
    /// The open connection: its script, pending steps, and how many responses it released.
    open: Option<(Conn, VecDeque<Step>, usize)>,
    dead: bool,
    /// Every `connect` target.
    connects: Vec<(String, u16)>,
    /// Bytes written, one entry per connection.
    sent: Vec<Vec<u8>>,
    /// `write_all` calls that went through.
    writes: usize,
    closes: usize,
    reads: usize,
}

impl FakeSocket {
    fn new(conns: Vec<Conn>) -> Self {
        FakeSocket {
            script: conns.into(),
            ..FakeSocket::default()
        }
    }

    /// Requests sent on every connection, as text (head and body), in order.
    fn requests(&self) -> Vec<String> {
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

    fn request_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.lines().next().unwrap().to_owned())
            .collect()
    }

    fn requests_on(&self, conn: usize) -> usize {
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

fn data(bytes: impl AsRef<[u8]>) -> Step {
    Step::Data(bytes.as_ref().to_vec())
}

/// A response with the given status line, headers and body, in one piece.
fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
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
fn in_pieces(bytes: &[u8], n: usize) -> Vec<Step> {
    bytes.chunks(n).map(data).collect()
}

fn ok_200(body: &[u8]) -> Vec<u8> {
    response("200 OK", &[&format!("Content-Length: {}", body.len())], body)
}

fn partial(start: u64, body: &[u8], total: u64) -> Vec<u8> {
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

fn client(conns: Vec<Conn>) -> HttpClient<FakeSocket> {
    HttpClient::new(FakeSocket::new(conns))
}

fn url(text: &str) -> Url<'_> {
    Url::parse(text).unwrap()
}

/// Reads the whole body with a reader buffer of `chunk` bytes.
fn read_all(c: &mut HttpClient<FakeSocket>, chunk: usize) -> Result<Vec<u8>, HttpError> {
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

fn body_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Requests.

#[test]
fn request_has_exact_line_and_headers() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(partial(100, b"abc", 1000))],
        vec![data(ok_200(b"x"))],
    ])]);
    block_on(c.get(&url("http://bucket.example:8080/fw/app.bin?v=2"), Some((100, None)))).unwrap();
    read_all(&mut c, 64).unwrap();
    block_on(c.get(&url("http://bucket.example:8080/fw/app.bin?v=2"), None)).unwrap();
    let requests = c.socket().requests();
    assert_eq!(
        requests[0],
        format!(
            "GET /fw/app.bin?v=2 HTTP/1.1\r\nHost: bucket.example:8080\r\nRange: bytes=100-\r\n\
             User-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    assert_eq!(
        requests[1],
        format!(
            "GET /fw/app.bin?v=2 HTTP/1.1\r\nHost: bucket.example:8080\r\nUser-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    assert_eq!(USER_AGENT, concat!("otactl-device/", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bounded_range_and_default_port() {
    let mut c = client(vec![Conn::new(vec![vec![data(partial(0, &body_of(4096), 9000))]])]);
    block_on(c.get(&url("http://h/a"), Some((0, Some(4095))))).unwrap();
    let req = &c.socket().requests()[0];
    assert!(req.contains("\r\nHost: h\r\n"), "{req}");
    assert!(req.contains("\r\nRange: bytes=0-4095\r\n"), "{req}");
    assert_eq!(c.socket().connects, vec![("h".to_owned(), 80)]);
}

#[test]
fn range_end_before_start_is_refused_without_io() {
    let mut c = client(vec![]);
    assert_eq!(
        block_on(c.get(&url("http://h/a"), Some((10, Some(9))))),
        Err(HttpError::InvalidRange)
    );
    assert!(c.socket().connects.is_empty());
}

// ---------------------------------------------------------------------------------------
// 200 and 206.

#[test]
fn ok_200_body_split_at_every_point() {
    let body = body_of(300);
    let whole = ok_200(&body);
    for cut in 1..whole.len() {
        let steps = vec![data(&whole[..cut]), data(&whole[cut..])];
        let mut c = client(vec![Conn::new(vec![steps])]);
        let head = block_on(c.get(&url("http://h/f"), None)).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(
            head,
            ResponseHead {
                status: 200,
                content_length: Some(300),
                content_range: None,
                keep_alive: true
            }
        );
        assert_eq!(read_all(&mut c, 37).unwrap(), body, "cut {cut}");
        assert_eq!(c.body_remaining(), Some(0));
    }
}

#[test]
fn head_and_body_byte_by_byte() {
    let body = body_of(50);
    let mut c = client(vec![Conn::new(vec![in_pieces(&partial(7, &body, 57), 1)])]);
    let head = block_on(c.get(&url("http://h/f"), Some((7, None)))).unwrap();
    assert_eq!(
        head.content_range,
        Some(ContentRange {
            start: 7,
            end: 56,
            total: Some(57)
        })
    );
    assert_eq!(read_all(&mut c, 1024).unwrap(), body);
}

#[test]
fn body_bytes_in_the_header_read_are_kept() {
    // Head and whole body in one read; the script has nothing after it, so any further
    // socket read would fail with Timeout: the body must come from the client's buffer.
    let body = body_of(200);
    let mut c = client(vec![Conn::new(vec![vec![data(ok_200(&body))]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    let reads = c.socket().reads;
    assert_eq!(c.body_remaining(), Some(200));
    assert_eq!(read_all(&mut c, 64).unwrap(), body);
    assert_eq!(c.socket().reads, reads, "body was served from the head buffer");
}

#[test]
fn part_of_body_in_header_read_then_rest_from_socket() {
    let body = body_of(3000);
    let whole = ok_200(&body);
    let mut c = client(vec![Conn::new(vec![vec![
        data(&whole[..whole.len() - 2500]),
        data(&whole[whole.len() - 2500..]),
    ]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    let mut buf = [0u8; 1000];
    let mut got = Vec::new();
    while let n @ 1.. = block_on(c.read_body(&mut buf)).unwrap() {
        got.extend_from_slice(&buf[..n]);
        assert_eq!(c.body_remaining(), Some(3000 - got.len() as u64));
    }
    assert_eq!(got, body);
}

#[test]
fn response_206_must_start_where_asked() {
    let mut c = client(vec![Conn::new(vec![vec![data(partial(0, b"abcd", 10))]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), Some((4, None)))),
        Err(HttpError::UnexpectedContentRange)
    );
    assert_eq!(
        c.socket().closes,
        1,
        "a mismatched response is not read on: the connection is dropped"
    );
}

#[test]
fn response_206_must_not_end_past_the_asked_end() {
    let mut c = client(vec![Conn::new(vec![vec![data(partial(4, b"abcdef", 10))]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), Some((4, Some(7))))),
        Err(HttpError::UnexpectedContentRange)
    );
}

#[test]
fn response_206_may_end_before_the_asked_end() {
    // Asked past the end of the object: the origin clips to the last byte.
    let mut c = client(vec![Conn::new(vec![vec![data(partial(8, b"ij", 10))]])]);
    let head = block_on(c.get(&url("http://h/f"), Some((8, Some(4095))))).unwrap();
    assert_eq!(head.content_length, Some(2));
    assert_eq!(read_all(&mut c, 16).unwrap(), b"ij");
}

#[test]
fn response_206_to_a_request_without_range_is_refused() {
    let mut c = client(vec![Conn::new(vec![vec![data(partial(0, b"ab", 10))]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), None)),
        Err(HttpError::UnexpectedContentRange)
    );
}

#[test]
fn response_206_without_or_with_bad_content_range() {
    for headers in [
        &["Content-Length: 2"][..],
        &["Content-Range: bytes 0-1", "Content-Length: 2"],
        &["Content-Range: bytes 3-1/10", "Content-Length: 2"],
        &["Content-Range: bytes 0-10/10", "Content-Length: 11"],
        &["Content-Range: bytes */10", "Content-Length: 2"],
        &["Content-Range: pages 0-1/10", "Content-Length: 2"],
    ] {
        let mut c = client(vec![Conn::new(vec![vec![data(response(
            "206 Partial Content",
            headers,
            b"ab",
        ))]])]);
        assert_eq!(
            block_on(c.get(&url("http://h/f"), Some((0, None)))),
            Err(HttpError::BadContentRange),
            "{headers:?}"
        );
    }
}

#[test]
fn response_206_length_mismatch_is_malformed() {
    let r = response(
        "206 Partial Content",
        &["Content-Range: bytes 0-9/100", "Content-Length: 9"],
        b"012345678",
    );
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    assert!(matches!(
        block_on(c.get(&url("http://h/f"), Some((0, None)))),
        Err(HttpError::Malformed(_))
    ));
}

#[test]
fn response_206_without_content_length_uses_the_range_length() {
    let r = response("206 Partial Content", &["Content-Range: bytes 5-9/*"], b"56789");
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    let head = block_on(c.get(&url("http://h/f"), Some((5, None)))).unwrap();
    assert_eq!(head.content_length, Some(5));
    assert_eq!(
        head.content_range,
        Some(ContentRange {
            start: 5,
            end: 9,
            total: None
        })
    );
    assert!(head.keep_alive);
    assert_eq!(read_all(&mut c, 3).unwrap(), b"56789");
}

#[test]
fn ok_200_to_a_range_request_is_returned_as_is() {
    let body = body_of(100);
    // Some origins even echo a Content-Range on a 200; it means nothing there.
    let r = response(
        "200 OK",
        &["Content-Length: 100", "Content-Range: bytes 50-99/100"],
        &body,
    );
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    let head = block_on(c.get(&url("http://h/f"), Some((50, None)))).unwrap();
    assert_eq!(
        head,
        ResponseHead {
            status: 200,
            content_length: Some(100),
            content_range: None,
            keep_alive: true
        }
    );
    assert_eq!(read_all(&mut c, 64).unwrap(), body, "the whole object, from byte 0");
}

#[test]
fn body_until_close_without_content_length() {
    let body = body_of(700);
    let mut steps = in_pieces(&response("200 OK", &[], &body), 100);
    steps.push(Step::Eof);
    let mut c = client(vec![Conn::new(vec![steps])]);
    let head = block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(head.content_length, None);
    assert!(!head.keep_alive);
    assert_eq!(c.body_remaining(), None);
    assert_eq!(read_all(&mut c, 64).unwrap(), body);
    assert_eq!(c.body_remaining(), Some(0));
}

#[test]
fn empty_200_body_completes_at_once() {
    let mut c = client(vec![Conn::new(vec![vec![data(ok_200(b""))], vec![data(ok_200(b"z"))]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(c.body_remaining(), Some(0));
    assert_eq!(read_all(&mut c, 8).unwrap(), b"");
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(c.socket().connects.len(), 1, "reused after an empty body");
}

#[test]
fn interim_100_continue_is_skipped() {
    let mut r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n".to_vec();
    r.extend(ok_200(b"hello"));
    let mut c = client(vec![Conn::new(vec![in_pieces(&r, 9)])]);
    assert_eq!(block_on(c.get(&url("http://h/f"), None)).unwrap().status, 200);
    assert_eq!(read_all(&mut c, 8).unwrap(), b"hello");
}

// ---------------------------------------------------------------------------------------
// Header parsing.

#[test]
fn header_names_in_any_case_and_folded_lines() {
    let r = b"HTTP/1.1 206 Partial Content\r\ncontent-RANGE:bytes 2-4/5\r\nX-Long: a\r\n b\r\n\tc\r\n\
              CONTENT-LENGTH:   3  \r\nconnection:\r\n  Keep-Alive, CLOSE\r\n\r\nxyz";
    let mut c = client(vec![Conn::new(vec![in_pieces(r, 5)])]);
    let head = block_on(c.get(&url("http://h/f"), Some((2, None)))).unwrap();
    assert_eq!(head.content_length, Some(3));
    assert_eq!(
        head.content_range,
        Some(ContentRange {
            start: 2,
            end: 4,
            total: Some(5)
        })
    );
    assert!(!head.keep_alive, "the folded Connection header says close");
    assert_eq!(read_all(&mut c, 8).unwrap(), b"xyz");
}

#[test]
fn folded_value_is_joined_before_it_is_parsed() {
    let r = b"HTTP/1.1 200 OK\r\nContent-Length:\r\n \t3\r\n\r\nabc";
    let mut c = client(vec![Conn::new(vec![in_pieces(r, 17)])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), None)).unwrap().content_length,
        Some(3)
    );
    assert_eq!(read_all(&mut c, 8).unwrap(), b"abc");
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let r = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok";
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"ok");
}

#[test]
fn many_headers_fit_although_the_buffer_is_small() {
    // An object store's head: well over the head buffer in all, each line short.
    let lines: Vec<String> = (0..60)
        .map(|i| format!("x-amz-meta-field-{i:02}: {}", "v".repeat(40)))
        .collect();
    let mut headers: Vec<&str> = lines.iter().map(String::as_str).collect();
    headers.push("Content-Length: 4");
    let r = response("200 OK", &headers, b"data");
    assert!(r.len() > 3 * HEAD_BUF_LEN);
    let mut c = client(vec![Conn::new(vec![in_pieces(&r, 700)])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"data");
}

#[test]
fn header_line_longer_than_the_buffer_is_too_large() {
    let long = format!("Set-Cookie: {}", "c".repeat(HEAD_BUF_LEN));
    let r = response("200 OK", &[&long, "Content-Length: 1"], b"x");
    let mut c = client(vec![Conn::new(vec![in_pieces(&r, 300)])]);
    let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
    assert_eq!(e, HttpError::HeaderTooLarge);
    assert!(!e.is_retryable());
}

#[test]
fn endless_head_is_too_large() {
    let lines: Vec<String> = (0..400).map(|i| format!("X-Filler-{i}: {}", "f".repeat(20))).collect();
    let headers: Vec<&str> = lines.iter().map(String::as_str).collect();
    let r = response("200 OK", &headers, b"");
    let mut c = client(vec![Conn::new(vec![in_pieces(&r, 512)])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), None)),
        Err(HttpError::HeaderTooLarge)
    );
}

#[test]
fn malformed_heads() {
    for (r, what) in [
        (&b"HTTP/2 200 OK\r\n\r\n"[..], "not HTTP/1.x"),
        (b"<html>hello</html>\r\n\r\n", "not HTTP at all"),
        (b"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", "header without colon"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "non-numeric length"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "conflicting lengths",
        ),
        (b"HTTP/1.1 200 OK\r\nContent Length: 1\r\n\r\n", "space in header name"),
    ] {
        let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
        let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
        assert!(matches!(e, HttpError::Malformed(_)), "{what}: {e:?}");
        assert!(!e.is_retryable(), "{what}");
    }
}

#[test]
fn chunked_transfer_encoding_is_refused_clearly() {
    let r = response("200 OK", &["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n");
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
    assert_eq!(e, HttpError::UnsupportedTransferEncoding);
    assert!(e.to_string().contains("chunked"), "{e}");
    assert!(!e.is_retryable());
}

// ---------------------------------------------------------------------------------------
// Error statuses.

#[test]
fn range_not_satisfiable_reports_the_total() {
    let r = response(
        "416 Range Not Satisfiable",
        &["Content-Range: bytes */1234", "Content-Length: 0"],
        b"",
    );
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    let e = block_on(c.get(&url("http://h/f"), Some((5000, None)))).unwrap_err();
    assert_eq!(e, HttpError::RangeNotSatisfiable { total: Some(1234) });
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("1234"), "{e}");

    let r = response("416 Range Not Satisfiable", &["Content-Length: 0"], b"");
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), Some((5000, None)))),
        Err(HttpError::RangeNotSatisfiable { total: None })
    );
}

#[test]
fn client_errors_stop_server_errors_retry() {
    for (status, expected, retry) in [
        ("400 Bad Request", HttpError::ClientError(400), false),
        ("403 Forbidden", HttpError::ClientError(403), false),
        ("404 Not Found", HttpError::ClientError(404), false),
        ("408 Request Timeout", HttpError::ClientError(408), true),
        ("429 Too Many Requests", HttpError::ClientError(429), true),
        ("500 Internal Server Error", HttpError::ServerError(500), true),
        ("503 Service Unavailable", HttpError::ServerError(503), true),
        ("204 No Content", HttpError::UnexpectedStatus(204), false),
        ("300 Multiple Choices", HttpError::UnexpectedStatus(300), false),
    ] {
        let r = response(status, &["Content-Length: 9"], b"not found");
        let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
        let e = block_on(c.get(&url("http://h/f"), Some((0, None)))).unwrap_err();
        assert_eq!(e, expected, "{status}");
        assert_eq!(e.is_retryable(), retry, "{status}");
    }
}

#[test]
fn small_error_body_is_drained_and_the_connection_reused() {
    let r404 = response("404 Not Found", &["Content-Length: 9"], b"not found");
    let mut c = client(vec![Conn::new(vec![in_pieces(&r404, 20), vec![data(ok_200(b"ok"))]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/missing"), None)),
        Err(HttpError::ClientError(404))
    );
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"ok");
    assert_eq!(c.socket().connects.len(), 1);
}

#[test]
fn large_error_body_costs_a_reconnect() {
    let r500 = response("500 Internal Server Error", &["Content-Length: 100000"], b"");
    let mut c = client(vec![
        Conn::new(vec![vec![data(r500)]]),
        Conn::new(vec![vec![data(ok_200(b"ok"))]]),
    ]);
    assert_eq!(
        block_on(c.get(&url("http://h/f"), None)),
        Err(HttpError::ServerError(500))
    );
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(c.socket().connects.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Redirects.

#[test]
fn absolute_redirect_to_another_host_reconnects_and_keeps_the_range() {
    let redirect = response(
        "302 Found",
        &["Location: http://cdn.example:8081/images/abc.bin", "Content-Length: 0"],
        b"",
    );
    let mut c = client(vec![
        Conn::new(vec![vec![data(redirect)]]),
        Conn::new(vec![vec![data(partial(10, b"0123456789", 20))]]),
    ]);
    let head = block_on(c.get(&url("http://origin.example/fw.bin"), Some((10, None)))).unwrap();
    assert_eq!(head.status, 206);
    assert_eq!(read_all(&mut c, 64).unwrap(), b"0123456789");
    let sock = c.socket();
    assert_eq!(
        sock.connects,
        vec![("origin.example".into(), 80), ("cdn.example".into(), 8081)]
    );
    let reqs = sock.requests();
    assert!(
        reqs[1].starts_with("GET /images/abc.bin HTTP/1.1\r\nHost: cdn.example:8081\r\nRange: bytes=10-\r\n"),
        "{}",
        reqs[1]
    );
    assert_eq!(c.effective_url(), Some("http://cdn.example:8081/images/abc.bin"));
}

#[test]
fn path_only_redirect_reuses_the_connection() {
    let redirect = response(
        "301 Moved Permanently",
        &["Location: /v2/fw.bin", "Content-Length: 11"],
        b"moved here!",
    );
    let mut c = client(vec![Conn::new(vec![
        vec![data(redirect)],
        vec![data(ok_200(b"image"))],
    ])]);
    block_on(c.get(&url("http://h:8000/v1/fw.bin"), None)).unwrap();
    assert_eq!(read_all(&mut c, 64).unwrap(), b"image");
    assert_eq!(c.socket().connects.len(), 1);
    assert_eq!(
        c.socket().request_lines(),
        ["GET /v1/fw.bin HTTP/1.1", "GET /v2/fw.bin HTTP/1.1"]
    );
    assert!(c.socket().requests()[1].contains("Host: h:8000\r\n"));
    assert_eq!(c.effective_url(), Some("http://h:8000/v2/fw.bin"));
}

#[test]
fn relative_redirect_resolves_against_the_directory() {
    for status in ["303 See Other", "307 Temporary Redirect", "308 Permanent Redirect"] {
        let redirect = response(status, &["location: abc.bin", "Content-Length: 0"], b"");
        let mut c = client(vec![Conn::new(vec![vec![data(redirect)], vec![data(ok_200(b"x"))]])]);
        block_on(c.get(&url("http://h/fw/latest?ch=beta"), None)).unwrap();
        assert_eq!(c.socket().request_lines()[1], "GET /fw/abc.bin HTTP/1.1", "{status}");
    }
}

#[test]
fn redirect_on_a_closing_connection_reconnects_to_the_same_host() {
    let redirect = response(
        "302 Found",
        &["Location: /b", "Connection: close", "Content-Length: 0"],
        b"",
    );
    let mut c = client(vec![
        Conn::new(vec![vec![data(redirect)]]),
        Conn::new(vec![vec![data(ok_200(b"x"))]]),
    ]);
    block_on(c.get(&url("http://h/a"), None)).unwrap();
    assert_eq!(c.socket().connects, vec![("h".into(), 80), ("h".into(), 80)]);
}

#[test]
fn five_redirects_are_followed_six_are_too_many() {
    let hop = |i: usize| response("302 Found", &[&format!("Location: /hop{i}"), "Content-Length: 0"], b"");
    let mut responses: Vec<Vec<Step>> = (1..=5).map(|i| vec![data(hop(i))]).collect();
    responses.push(vec![data(ok_200(b"end"))]);
    let mut c = client(vec![Conn::new(responses)]);
    block_on(c.get(&url("http://h/start"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"end");
    assert_eq!(c.effective_url(), Some("http://h/hop5"));

    let responses: Vec<Vec<Step>> = (1..=6).map(|i| vec![data(hop(i))]).collect();
    let mut c = client(vec![Conn::new(responses)]);
    let e = block_on(c.get(&url("http://h/start"), None)).unwrap_err();
    assert_eq!(e, HttpError::TooManyRedirects);
    assert!(!e.is_retryable());
    assert_eq!(c.socket().requests().len(), 6);
}

#[test]
fn redirect_without_location() {
    let mut c = client(vec![Conn::new(vec![vec![data(response(
        "302 Found",
        &["Content-Length: 0"],
        b"",
    ))]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/a"), None)),
        Err(HttpError::RedirectWithoutLocation)
    );
}

#[test]
fn redirect_to_https_is_unsupported_scheme() {
    let r = response(
        "301 Moved Permanently",
        &["Location: https://h/a", "Content-Length: 0"],
        b"",
    );
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    assert_eq!(
        block_on(c.get(&url("http://h/a"), None)),
        Err(HttpError::UnsupportedScheme)
    );
}

#[test]
fn redirect_target_too_long_for_the_url_buffer() {
    let location = format!("Location: /{}", "p".repeat(MAX_URL_LEN));
    let r = response("302 Found", &[&location, "Content-Length: 0"], b"");
    let mut c = client(vec![Conn::new(vec![vec![data(r)]])]);
    assert_eq!(block_on(c.get(&url("http://h/a"), None)), Err(HttpError::UrlTooLong));
}

// ---------------------------------------------------------------------------------------
// Keep-alive.

#[test]
fn keep_alive_reuses_the_connection_for_the_same_origin() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(partial(0, b"aaaa", 8))],
        vec![data(partial(4, b"bbbb", 8))],
    ])]);
    let u = url("http://h/f");
    block_on(c.get(&u, Some((0, Some(3))))).unwrap();
    assert_eq!(read_all(&mut c, 2).unwrap(), b"aaaa");
    block_on(c.get(&u, Some((4, Some(7))))).unwrap();
    assert_eq!(read_all(&mut c, 2).unwrap(), b"bbbb");
    assert_eq!(c.socket().connects.len(), 1);
    assert_eq!(c.socket().closes, 0);
    // Host names compare without case.
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200(b"1"))],
        vec![data(ok_200(b"2"))],
    ])]);
    block_on(c.get(&url("http://H.example/a"), None)).unwrap();
    read_all(&mut c, 8).unwrap();
    block_on(c.get(&url("http://h.EXAMPLE/b"), None)).unwrap();
    assert_eq!(c.socket().connects.len(), 1);
}

#[test]
fn no_reuse_after_connection_close_or_http10() {
    for (version, header) in [
        ("HTTP/1.1", "Connection: close"),
        ("HTTP/1.0", "X-Nothing: 1"),
        ("HTTP/1.0", "Connection: keep-alive"),
    ] {
        let r = format!("{version} 200 OK\r\n{header}\r\nContent-Length: 2\r\n\r\nok").into_bytes();
        let mut c = client(vec![Conn::new(vec![vec![data(&r)]]), Conn::new(vec![vec![data(&r)]])]);
        let head = block_on(c.get(&url("http://h/f"), None)).unwrap();
        assert!(!head.keep_alive, "{version} {header}");
        assert_eq!(read_all(&mut c, 8).unwrap(), b"ok");
        assert_eq!(
            c.socket().closes,
            1,
            "closed once the body is read ({version} {header})"
        );
        block_on(c.get(&url("http://h/f"), None)).unwrap();
        assert_eq!(c.socket().connects.len(), 2, "{version} {header}");
    }
}

#[test]
fn other_origin_means_a_new_connection() {
    let mut c = client(vec![
        Conn::new(vec![vec![data(ok_200(b"1"))]]),
        Conn::new(vec![vec![data(ok_200(b"2"))]]),
        Conn::new(vec![vec![data(ok_200(b"3"))]]),
    ]);
    for u in ["http://a/x", "http://b/x", "http://b:81/x"] {
        block_on(c.get(&url(u), None)).unwrap();
        read_all(&mut c, 8).unwrap();
    }
    assert_eq!(
        c.socket().connects,
        vec![("a".into(), 80), ("b".into(), 80), ("b".into(), 81)]
    );
}

#[test]
fn unread_body_means_a_new_connection() {
    let mut c = client(vec![
        Conn::new(vec![
            in_pieces(&ok_200(&body_of(5000)), 1000),
            vec![data(ok_200(b"never"))],
        ]),
        Conn::new(vec![vec![data(ok_200(b"fresh"))]]),
    ]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    let mut buf = [0; 100];
    block_on(c.read_body(&mut buf)).unwrap();
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"fresh");
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn stale_keep_alive_is_retried_once_on_a_fresh_connection() {
    for (name, stale) in [
        ("reset", Step::Fail(SocketError::Closed)),
        ("eof", Step::Eof),
        ("silent NAT drop", Step::Fail(SocketError::Timeout)),
    ] {
        let mut c = client(vec![
            Conn::new(vec![vec![data(partial(0, b"aaaa", 8))], vec![stale]]),
            Conn::new(vec![vec![data(partial(4, b"bbbb", 8))]]),
        ]);
        let u = url("http://h/f");
        block_on(c.get(&u, Some((0, None)))).unwrap();
        read_all(&mut c, 64).unwrap();
        let head = block_on(c.get(&u, Some((4, None)))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(head.content_range.unwrap().start, 4);
        assert_eq!(read_all(&mut c, 64).unwrap(), b"bbbb", "{name}");
        assert_eq!(c.socket().connects.len(), 2, "{name}");
        assert_eq!(
            c.socket().request_lines().len(),
            3,
            "{name}: the request was sent again"
        );
        assert!(c.socket().requests()[2].contains("Range: bytes=4-\r\n"));
    }
}

#[test]
fn stale_keep_alive_write_failure_is_retried() {
    let mut first = Conn::new(vec![vec![data(ok_200(b"1"))]]);
    first.fail_write = Some((1, SocketError::Closed));
    let mut c = client(vec![first, Conn::new(vec![vec![data(ok_200(b"2"))]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    read_all(&mut c, 8).unwrap();
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"2");
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn stale_retry_happens_only_once() {
    let mut c = client(vec![
        Conn::new(vec![vec![data(ok_200(b"1"))], vec![Step::Fail(SocketError::Closed)]]),
        Conn::new(vec![vec![Step::Fail(SocketError::Closed)]]),
        Conn::new(vec![vec![data(ok_200(b"never reached"))]]),
    ]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    read_all(&mut c, 8).unwrap();
    let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
    assert_eq!(e, HttpError::Socket(SocketError::Closed));
    assert!(e.is_retryable());
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn failure_after_response_bytes_on_a_reused_connection_is_not_retried() {
    let mut c = client(vec![
        Conn::new(vec![
            vec![data(ok_200(b"1"))],
            vec![data("HTTP/1.1 200 OK\r\nContent-Le"), Step::Fail(SocketError::Closed)],
        ]),
        Conn::new(vec![vec![data(ok_200(b"never reached"))]]),
    ]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    read_all(&mut c, 8).unwrap();
    assert_eq!(
        block_on(c.get(&url("http://h/f"), None)),
        Err(HttpError::Socket(SocketError::Closed))
    );
    assert_eq!(c.socket().connects.len(), 1);
}

#[test]
fn fresh_connection_closing_before_a_response_is_a_socket_error() {
    let mut c = client(vec![Conn::new(vec![vec![Step::Eof]]), Conn::new(vec![])]);
    let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
    assert_eq!(e, HttpError::Socket(SocketError::Closed));
    assert!(e.is_retryable());
    assert_eq!(c.socket().connects.len(), 1, "no retry on a connection that was fresh");
}

#[test]
fn connect_failure_is_retryable() {
    let refused = Conn {
        refuse: Some(SocketError::ConnectFailed(11)),
        ..Conn::default()
    };
    let mut c = client(vec![refused]);
    let e = block_on(c.get(&url("http://h/f"), None)).unwrap_err();
    assert_eq!(e, HttpError::Socket(SocketError::ConnectFailed(11)));
    assert!(e.is_retryable());
}

// ---------------------------------------------------------------------------------------
// Truncation.

#[test]
fn connection_ending_mid_body_is_truncation() {
    for (name, end) in [("eof", Step::Eof), ("reset", Step::Fail(SocketError::Closed))] {
        let whole = ok_200(&body_of(1000));
        let head_len = whole.len() - 1000;
        let mut c = client(vec![Conn::new(vec![vec![data(&whole[..head_len + 600]), end]])]);
        block_on(c.get(&url("http://h/f"), None)).unwrap();
        let e = read_all(&mut c, 256).unwrap_err();
        assert_eq!(
            e,
            HttpError::TruncatedBody {
                expected: 1000,
                received: 600
            },
            "{name}"
        );
        assert!(e.is_retryable());
        // It stays failed, and the next request opens a new connection.
        assert_eq!(block_on(c.read_body(&mut [0; 8])), Err(e));
        assert!(!c.socket().is_connected());
    }
}

#[test]
fn truncated_206_reports_the_range_length() {
    let whole = partial(1000, &body_of(500), 5000);
    let mut c = client(vec![Conn::new(vec![vec![
        data(&whole[..whole.len() - 100]),
        Step::Eof,
    ]])]);
    block_on(c.get(&url("http://h/f"), Some((1000, None)))).unwrap();
    assert_eq!(
        read_all(&mut c, 64),
        Err(HttpError::TruncatedBody {
            expected: 500,
            received: 400
        })
    );
}

#[test]
fn read_timeout_mid_body_is_a_socket_error_and_reading_can_go_on() {
    let whole = ok_200(b"0123456789");
    let split = whole.len() - 5;
    let mut c = client(vec![Conn::new(vec![vec![
        data(&whole[..split]),
        Step::Fail(SocketError::Timeout),
        data(&whole[split..]),
    ]])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    let mut buf = [0; 64];
    assert_eq!(block_on(c.read_body(&mut buf)), Ok(5));
    assert_eq!(
        block_on(c.read_body(&mut buf)),
        Err(HttpError::Socket(SocketError::Timeout))
    );
    assert_eq!(block_on(c.read_body(&mut buf)), Ok(5));
    assert_eq!(&buf[..5], b"56789");
    assert_eq!(block_on(c.read_body(&mut buf)), Ok(0));
}

#[test]
fn never_reads_past_the_body() {
    // The next response sits right behind this body on the same read path; a client that
    // asked the socket for more than the body would swallow it.
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200(&body_of(2000)))],
        vec![data(ok_200(b"second"))],
    ])]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 4096).unwrap().len(), 2000);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 4096).unwrap(), b"second");
    assert_eq!(c.socket().connects.len(), 1);
}

#[test]
fn bytes_beyond_content_length_are_not_body() {
    // A misbehaving origin sends more than it announced, in a later read.
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let mut c = client(vec![
        Conn::new(vec![vec![data(head), data("helloEXTRA")]]),
        Conn::new(vec![vec![data(ok_200(b"2"))]]),
    ]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 64).unwrap(), b"hello");
    // Also when the extra bytes come in the same read as the head: the connection is not
    // trusted for another request.
    let mut c = client(vec![
        Conn::new(vec![vec![data(
            ok_200(b"hello").into_iter().chain(*b"EXTRA").collect::<Vec<_>>(),
        )]]),
        Conn::new(vec![vec![data(ok_200(b"2"))]]),
    ]);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 64).unwrap(), b"hello");
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    assert_eq!(read_all(&mut c, 64).unwrap(), b"2");
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn cancelled_get_leaves_no_reusable_connection() {
    // The engine may drop a get() at a deadline; the response may still be on its way, so
    // the connection must not carry the next request.
    let mut c = client(vec![
        Conn::new(vec![
            vec![data(ok_200(b"1"))],
            vec![Step::Pending, data(ok_200(b"late"))],
        ]),
        Conn::new(vec![vec![data(ok_200(b"fresh"))]]),
    ]);
    let u = url("http://h/f");
    block_on(c.get(&u, None)).unwrap();
    read_all(&mut c, 8).unwrap();
    {
        let mut get = pin!(c.get(&u, None));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(get.as_mut().poll(&mut cx).is_pending());
    }
    block_on(c.get(&u, None)).unwrap();
    assert_eq!(read_all(&mut c, 8).unwrap(), b"fresh");
    assert_eq!(c.socket().connects.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Conditional GET.

const LAST_MODIFIED: &str = "Mon, 23 Nov 2026 21:14:07 GMT";

/// A 200 with `headers` (validators) and `body`.
fn ok_200_with(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let length = format!("Content-Length: {}", body.len());
    let mut all = headers.to_vec();
    all.push(&length);
    response("200 OK", &all, body)
}

fn not_modified(headers: &[&str]) -> Vec<u8> {
    response("304 Not Modified", headers, b"")
}

/// GETs `u` without a condition and reads the body; returns the validators it left.
fn fetch_whole(c: &mut HttpClient<FakeSocket>, u: &Url<'_>) -> Validators {
    match block_on(c.get_if_changed(u, &Validators::NONE)).unwrap() {
        Fetched::Changed(head) => assert_eq!(head.status, 200),
        Fetched::NotModified => panic!("an unconditional GET got a 304"),
    }
    read_all(c, 64).unwrap();
    c.validators().clone()
}

#[test]
fn etag_makes_the_next_check_a_304() {
    let etag = "\"9bb58f26192e4ba00f01e2e7b136bbd8\"";
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200_with(
            &[&format!("ETag: {etag}"), &format!("Last-Modified: {LAST_MODIFIED}")],
            b"{manifest}",
        ))],
        vec![data(not_modified(&[&format!("ETag: {etag}")]))],
    ])]);
    let u = url("http://h/fleet/stable/manifest.json");
    let known = fetch_whole(&mut c, &u);
    assert_eq!(known.etag(), Some(etag));
    assert_eq!(known.last_modified(), None, "the ETag alone decides");
    assert_eq!(block_on(c.get_if_changed(&u, &known)), Ok(Fetched::NotModified));
    let requests = c.socket().requests();
    assert!(!requests[0].contains("If-"), "{}", requests[0]);
    assert!(
        requests[1].contains(&format!("\r\nIf-None-Match: {etag}\r\n")),
        "{}",
        requests[1]
    );
    assert!(!requests[1].contains("If-Modified-Since"), "{}", requests[1]);
    assert_eq!(*c.validators(), known, "a 304 leaves them as they were");
    assert_eq!(c.body_remaining(), Some(0));
    assert_eq!(c.socket().connects.len(), 1);
    assert_eq!(c.socket().closes, 0, "a 304 keeps the connection");
}

#[test]
fn last_modified_alone_makes_the_next_check_a_304() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200_with(&[&format!("Last-Modified: {LAST_MODIFIED}")], b"{}"))],
        vec![data(not_modified(&[]))],
    ])]);
    let u = url("http://h/m.json");
    let known = fetch_whole(&mut c, &u);
    assert_eq!((known.etag(), known.last_modified()), (None, Some(LAST_MODIFIED)));
    assert_eq!(block_on(c.get_if_changed(&u, &known)), Ok(Fetched::NotModified));
    let request = &c.socket().requests()[1];
    assert!(
        request.contains(&format!("\r\nIf-Modified-Since: {LAST_MODIFIED}\r\n")),
        "{request}"
    );
    assert!(!request.contains("If-None-Match"), "{request}");
}

#[test]
fn changed_object_replaces_the_validators() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200_with(&["ETag: \"v1\""], b"one"))],
        vec![data(ok_200_with(&["ETag: \"v2\""], b"two"))],
        // A range of the image: a 206 is not the object the validators are kept for.
        vec![data(response(
            "206 Partial Content",
            &["ETag: \"image\"", "Content-Range: bytes 0-1/10", "Content-Length: 2"],
            b"ab",
        ))],
        vec![data(ok_200(b"three"))],
    ])]);
    let u = url("http://h/m.json");
    let v1 = fetch_whole(&mut c, &u);
    match block_on(c.get_if_changed(&u, &v1)).unwrap() {
        Fetched::Changed(head) => assert_eq!(head.content_length, Some(3)),
        Fetched::NotModified => panic!("the object changed"),
    }
    assert_eq!(read_all(&mut c, 64).unwrap(), b"two");
    let v2 = c.validators().clone();
    assert_eq!(v2.etag(), Some("\"v2\""));
    assert_ne!(v1, v2);
    block_on(c.get(&url("http://h/fw.bin"), Some((0, None)))).unwrap();
    read_all(&mut c, 64).unwrap();
    assert_eq!(*c.validators(), v2, "a 206 does not touch them");
    // A 200 without validators leaves none: the next request is unconditional.
    block_on(c.get(&u, None)).unwrap();
    assert!(c.validators().is_empty());
    assert_eq!(c.socket().connects.len(), 1);
}

#[test]
fn over_long_etag_is_not_kept_and_the_date_does_not_stand_in() {
    let fits = format!("\"{}\"", "e".repeat(MAX_ETAG_LEN - 2));
    let too_long = format!("\"{}\"", "e".repeat(MAX_ETAG_LEN - 1));
    let lm = format!("Last-Modified: {LAST_MODIFIED}");
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200_with(&[&format!("ETag: {fits}"), &lm], b"a"))],
        vec![data(ok_200_with(&[&lm, &format!("ETag: {too_long}")], b"b"))],
        vec![data(ok_200(b"c"))],
    ])]);
    let u = url("http://h/m.json");
    assert_eq!(fetch_whole(&mut c, &u).etag(), Some(fits.as_str()));
    let known = fetch_whole(&mut c, &u);
    assert!(known.is_empty(), "{known:?}");
    assert_eq!(fetch_whole(&mut c, &u), Validators::NONE);
    let requests = c.socket().requests();
    assert!(!requests[2].contains("If-"), "unconditional: {}", requests[2]);
}

#[test]
fn not_modified_on_keep_alive_then_a_range_get_on_the_same_connection() {
    // A 304 may carry the Content-Length of the object it stands for; it still has no body.
    let mut c = client(vec![Conn::new(vec![
        vec![data(ok_200_with(&["ETag: \"m1\""], b"{manifest}"))],
        vec![data(not_modified(&["ETag: \"m1\"", "Content-Length: 1234"]))],
        vec![data(partial(0, b"imag", 1000))],
    ])]);
    let m = url("http://h/fleet/stable/manifest.json");
    let known = fetch_whole(&mut c, &m);
    assert_eq!(block_on(c.get_if_changed(&m, &known)), Ok(Fetched::NotModified));
    let head = block_on(c.get(&url("http://h/fw/app.bin"), Some((0, Some(3))))).unwrap();
    assert_eq!(head.status, 206);
    assert_eq!(read_all(&mut c, 64).unwrap(), b"imag");
    assert_eq!(c.socket().connects.len(), 1);
    assert_eq!(c.socket().closes, 0);
    assert_eq!(
        c.socket().request_lines(),
        [
            "GET /fleet/stable/manifest.json HTTP/1.1",
            "GET /fleet/stable/manifest.json HTTP/1.1",
            "GET /fw/app.bin HTTP/1.1"
        ]
    );
}

#[test]
fn not_modified_with_connection_close_reconnects_next_time() {
    let known = Validators::from_etag("\"x\"").unwrap();
    let mut c = client(vec![
        Conn::new(vec![vec![data(not_modified(&["Connection: close"]))]]),
        Conn::new(vec![vec![data(not_modified(&[]))]]),
    ]);
    let u = url("http://h/m.json");
    assert_eq!(block_on(c.get_if_changed(&u, &known)), Ok(Fetched::NotModified));
    assert_eq!(c.socket().closes, 1);
    assert_eq!(block_on(c.get_if_changed(&u, &known)), Ok(Fetched::NotModified));
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn a_304_is_an_answer_only_to_a_conditional_request() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(not_modified(&[]))],
        vec![data(not_modified(&[]))],
        vec![data(ok_200(b"ok"))],
    ])]);
    let u = url("http://h/m.json");
    let e = block_on(c.get(&u, None)).unwrap_err();
    assert_eq!(e, HttpError::UnexpectedStatus(304));
    assert!(!e.is_retryable());
    assert_eq!(
        block_on(c.get_if_changed(&u, &Validators::NONE)),
        Err(HttpError::UnexpectedStatus(304)),
        "no validators: the request was unconditional"
    );
    block_on(c.get(&u, None)).unwrap();
    assert_eq!(c.socket().connects.len(), 1, "the bodiless 304s kept the connection");
}

#[test]
fn conditional_get_follows_redirects_with_its_condition() {
    let known = Validators::from_etag("\"m7\"").unwrap();
    let mut c = client(vec![Conn::new(vec![
        vec![data(response(
            "302 Found",
            &["Location: /v2/manifest.json", "Content-Length: 0"],
            b"",
        ))],
        vec![data(not_modified(&["ETag: \"m7\""]))],
    ])]);
    assert_eq!(
        block_on(c.get_if_changed(&url("http://h/manifest.json"), &known)),
        Ok(Fetched::NotModified)
    );
    let requests = c.socket().requests();
    assert!(
        requests[1].starts_with("GET /v2/manifest.json HTTP/1.1\r\n"),
        "{}",
        requests[1]
    );
    assert!(requests[1].contains("\r\nIf-None-Match: \"m7\"\r\n"), "{}", requests[1]);
    assert_eq!(c.effective_url(), Some("http://h/v2/manifest.json"));
}

#[test]
fn a_refused_200_leaves_no_validators() {
    let mut c = client(vec![
        Conn::new(vec![
            vec![data(ok_200_with(&["ETag: \"v1\""], b"one"))],
            vec![data(response(
                "200 OK",
                &["ETag: \"v2\"", "Transfer-Encoding: chunked"],
                b"3\r\ntwo\r\n0\r\n\r\n",
            ))],
        ]),
        Conn::new(vec![vec![
            data("HTTP/1.1 200 OK\r\nETag: \"v3\"\r\nContent-Le"),
            Step::Fail(SocketError::Closed),
        ]]),
    ]);
    let u = url("http://h/m.json");
    let v1 = fetch_whole(&mut c, &u);
    assert_eq!(
        block_on(c.get_if_changed(&u, &v1)),
        Err(HttpError::UnsupportedTransferEncoding)
    );
    assert!(c.validators().is_empty(), "{:?}", c.validators());
    assert_eq!(
        block_on(c.get_if_changed(&u, &v1)),
        Err(HttpError::Socket(SocketError::Closed))
    );
    assert!(c.validators().is_empty(), "a head cut short names no version");
}

// ---------------------------------------------------------------------------------------
// POST.

const REPORT: &[u8] = br#"{"schema":1,"device":"3fa2c01d9e7b4410","outcome":"confirmed","attempt":3}"#;
const REPORT_TYPE: &str = "application/vnd.otactl.report+json";

#[test]
fn post_returns_each_2xx_and_keeps_the_connection() {
    let mut c = client(vec![Conn::new(vec![
        vec![data(response("201 Created", &["Content-Length: 7"], b"created"))],
        vec![data(response("202 Accepted", &["Content-Length: 0"], b""))],
        in_pieces(&response("204 No Content", &[], b""), 5),
        vec![data(ok_200(b"after"))],
    ])]);
    let u = url("http://h/reports");
    for expected in [201, 202, 204] {
        assert_eq!(block_on(c.post(&u, REPORT_TYPE, REPORT)), Ok(expected));
        assert_eq!(c.body_remaining(), Some(0));
    }
    block_on(c.get(&url("http://h/m.json"), None)).unwrap();
    assert_eq!(read_all(&mut c, 64).unwrap(), b"after");
    assert_eq!(c.socket().connects.len(), 1);
    assert_eq!(c.socket().closes, 0);
    assert!(c.validators().is_empty(), "a POST's response is no version of anything");
}

#[test]
fn post_with_a_long_or_open_ended_answer_costs_a_reconnect() {
    let long = response(
        "200 OK",
        &[&format!("Content-Length: {}", DRAIN_LIMIT + 1)],
        &body_of(DRAIN_LIMIT as usize + 1),
    );
    let mut c = client(vec![
        Conn::new(vec![vec![data(long)]]),
        Conn::new(vec![vec![
            data(response("202 Accepted", &[], b"until close")),
            Step::Eof,
        ]]),
        Conn::new(vec![vec![data(ok_200(b"x"))]]),
    ]);
    let u = url("http://h/reports");
    assert_eq!(block_on(c.post(&u, REPORT_TYPE, REPORT)), Ok(200));
    assert_eq!(block_on(c.post(&u, REPORT_TYPE, REPORT)), Ok(202));
    block_on(c.get(&u, None)).unwrap();
    assert_eq!(c.socket().connects.len(), 3);
}

#[test]
fn post_error_statuses() {
    for (status, expected, retry) in [
        ("400 Bad Request", HttpError::ClientError(400), false),
        ("413 Content Too Large", HttpError::ClientError(413), false),
        ("429 Too Many Requests", HttpError::ClientError(429), true),
        ("500 Internal Server Error", HttpError::ServerError(500), true),
        ("503 Service Unavailable", HttpError::ServerError(503), true),
        ("302 Found", HttpError::RedirectNotFollowed(302), false),
        ("307 Temporary Redirect", HttpError::RedirectNotFollowed(307), false),
        ("304 Not Modified", HttpError::UnexpectedStatus(304), false),
    ] {
        // A 304 has no body whatever its Content-Length says (RFC 9112 §6.3).
        let body: &[u8] = if status.starts_with("304") { b"" } else { b"oops" };
        let r = response(
            status,
            &["Location: http://elsewhere/reports", "Content-Length: 4"],
            body,
        );
        let mut c = client(vec![Conn::new(vec![vec![data(r)], vec![data(ok_200(b"next"))]])]);
        let e = block_on(c.post(&url("http://h/reports"), REPORT_TYPE, REPORT)).unwrap_err();
        assert_eq!(e, expected, "{status}");
        assert_eq!(e.is_retryable(), retry, "{status}");
        assert_eq!(c.effective_url(), Some("http://h/reports"), "{status}: not followed");
        // The short error body was drained: the connection carries the next request.
        block_on(c.get(&url("http://h/m.json"), None)).unwrap();
        assert_eq!(c.socket().connects.len(), 1, "{status}");
    }
    assert!(HttpError::RedirectNotFollowed(302).to_string().contains("302"));
}

#[test]
fn post_on_a_stale_keep_alive_connection_is_sent_again() {
    for (name, stale) in [
        ("reset", Step::Fail(SocketError::Closed)),
        ("eof", Step::Eof),
        ("silent NAT drop", Step::Fail(SocketError::Timeout)),
    ] {
        let mut c = client(vec![
            Conn::new(vec![vec![data(ok_200(b"{}"))], vec![stale]]),
            Conn::new(vec![vec![data(response("202 Accepted", &["Content-Length: 0"], b""))]]),
        ]);
        block_on(c.get(&url("http://h/m.json"), None)).unwrap();
        read_all(&mut c, 64).unwrap();
        assert_eq!(
            block_on(c.post(&url("http://h/reports"), REPORT_TYPE, REPORT)),
            Ok(202),
            "{name}"
        );
        assert_eq!(c.socket().connects.len(), 2, "{name}");
        // The receiver may have had the first copy: it de-duplicates by device and attempt.
        let requests = c.socket().requests();
        assert_eq!(requests.len(), 3, "{name}");
        assert_eq!(requests[1], requests[2], "{name}: the same report, whole, again");
        assert!(requests[2].ends_with(std::str::from_utf8(REPORT).unwrap()), "{name}");
    }
    // A write that fails on the reused connection: sent again too.
    let mut first = Conn::new(vec![vec![data(ok_200(b"{}"))]]);
    first.fail_write = Some((1, SocketError::Closed));
    let mut c = client(vec![
        first,
        Conn::new(vec![vec![data(response("204 No Content", &[], b""))]]),
    ]);
    block_on(c.get(&url("http://h/m.json"), None)).unwrap();
    read_all(&mut c, 64).unwrap();
    assert_eq!(block_on(c.post(&url("http://h/reports"), REPORT_TYPE, REPORT)), Ok(204));
    assert_eq!(c.socket().connects.len(), 2);
}

#[test]
fn post_is_not_sent_again_once_the_answer_began_or_on_a_fresh_connection() {
    let mut c = client(vec![
        Conn::new(vec![
            vec![data(ok_200(b"{}"))],
            vec![data("HTTP/1.1 202 Acc"), Step::Fail(SocketError::Closed)],
        ]),
        Conn::new(vec![vec![data(response("202 Accepted", &["Content-Length: 0"], b""))]]),
    ]);
    block_on(c.get(&url("http://h/m.json"), None)).unwrap();
    read_all(&mut c, 64).unwrap();
    let e = block_on(c.post(&url("http://h/reports"), REPORT_TYPE, REPORT)).unwrap_err();
    assert_eq!(e, HttpError::Socket(SocketError::Closed));
    assert!(e.is_retryable());
    assert_eq!(c.socket().connects.len(), 1);

    let mut c = client(vec![Conn::new(vec![vec![Step::Eof]]), Conn::new(vec![])]);
    assert_eq!(
        block_on(c.post(&url("http://h/reports"), REPORT_TYPE, REPORT)),
        Err(HttpError::Socket(SocketError::Closed))
    );
    assert_eq!(c.socket().connects.len(), 1, "a fresh connection is not retried");
}

#[test]
fn post_checks_its_content_type_before_any_io() {
    let mut c = client(vec![]);
    for bad in ["", "text/plain\r\nX-Injected: 1", "caf\u{e9}/x", &"t".repeat(129)] {
        assert_eq!(
            block_on(c.post(&url("http://h/reports"), bad, b"x")),
            Err(HttpError::BadContentType),
            "{bad:?}"
        );
    }
    assert!(c.socket().connects.is_empty());
}

#[test]
fn request_bytes_of_conditional_gets_and_posts() {
    let long_body = body_of(HEAD_BUF_LEN);
    let mut c = client(vec![Conn::new(vec![
        vec![data(not_modified(&[]))],
        vec![data(not_modified(&[]))],
        vec![data(response("202 Accepted", &["Content-Length: 0"], b""))],
        vec![data(response("202 Accepted", &["Content-Length: 0"], b""))],
    ])]);
    let etag = Validators::from_etag("\"38e50-5f1c2a9d3b1c0\"").unwrap();
    let date = Validators::from_last_modified(LAST_MODIFIED).unwrap();
    let m = url("http://ota.example.com/fleet/stable/manifest.json");
    let r = url("http://ota.example.com:8080/reports");
    assert_eq!(block_on(c.get_if_changed(&m, &etag)), Ok(Fetched::NotModified));
    assert_eq!(block_on(c.get_if_changed(&m, &date)), Ok(Fetched::NotModified));
    let writes = c.socket().writes;
    // The reports URL is on another port: a second connection.
    c.socket().script.push_back(Conn::new(vec![
        vec![data(response("202 Accepted", &["Content-Length: 0"], b""))],
        vec![data(response("202 Accepted", &["Content-Length: 0"], b""))],
    ]));
    assert_eq!(block_on(c.post(&r, REPORT_TYPE, REPORT)), Ok(202));
    assert_eq!(c.socket().writes, writes + 1, "head and a small body go in one write");
    assert_eq!(block_on(c.post(&r, "application/octet-stream", &long_body)), Ok(202));
    assert_eq!(
        c.socket().writes,
        writes + 3,
        "a body that does not fit follows the head"
    );
    let requests = c.socket().requests();
    assert_eq!(
        requests[0],
        format!(
            "GET /fleet/stable/manifest.json HTTP/1.1\r\nHost: ota.example.com\r\n\
             If-None-Match: \"38e50-5f1c2a9d3b1c0\"\r\nUser-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    assert_eq!(
        requests[1],
        format!(
            "GET /fleet/stable/manifest.json HTTP/1.1\r\nHost: ota.example.com\r\n\
             If-Modified-Since: {LAST_MODIFIED}\r\nUser-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    assert_eq!(
        requests[2],
        format!(
            "POST /reports HTTP/1.1\r\nHost: ota.example.com:8080\r\nContent-Type: {REPORT_TYPE}\r\n\
             Content-Length: {}\r\nUser-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n{}",
            REPORT.len(),
            std::str::from_utf8(REPORT).unwrap()
        )
    );
    let sent = &c.socket().sent[1];
    assert!(sent.ends_with(&long_body));
    assert!(requests[3].contains(&format!("\r\nContent-Length: {}\r\n", HEAD_BUF_LEN)));
    // What an unchanged check sends is fixed by this code: 80 bytes of syntax and header
    // names, then the path, the host, the ETag and the User-Agent (the module docs give the
    // figure against the bench origin).
    let variable = m.path.len() + m.host.len() + etag.etag().unwrap().len() + USER_AGENT.len();
    assert!(requests[0].len() <= 80 + variable, "{} bytes", requests[0].len());
}

// ---------------------------------------------------------------------------------------
// Misc API.

#[test]
fn close_and_into_socket() {
    let mut c = client(vec![
        Conn::new(vec![vec![data(ok_200(b"abc"))]]),
        Conn::new(vec![vec![data(ok_200(b"d"))]]),
    ]);
    assert_eq!(c.effective_url(), None);
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    block_on(c.close());
    assert_eq!(c.body_remaining(), Some(0));
    assert_eq!(block_on(c.read_body(&mut [0; 8])), Ok(0));
    block_on(c.get(&url("http://h/f"), None)).unwrap();
    let sock = c.into_socket();
    assert_eq!(sock.connects.len(), 2);
}

/// A socket with no state, to measure the client alone.
#[derive(Debug)]
struct NullSocket;

impl Socket for NullSocket {
    async fn connect(&mut self, _: &str, _: u16) -> Result<(), SocketError> {
        Ok(())
    }
    async fn write_all(&mut self, _: &[u8]) -> Result<(), SocketError> {
        Ok(())
    }
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, SocketError> {
        Ok(0)
    }
    async fn close(&mut self) {}
    fn is_connected(&self) -> bool {
        false
    }
}

#[test]
fn ram_stays_within_the_documented_bound() {
    let size = size_of::<HttpClient<NullSocket>>();
    assert!(
        size <= CLIENT_RAM,
        "HttpClient is {size} bytes, documented bound {CLIENT_RAM}"
    );
    assert!(size >= HEAD_BUF_LEN + MAX_URL_LEN + VALIDATORS_RAM);
    assert_eq!(HEAD_BUF_LEN, 1024);
    assert_eq!(
        size_of::<Validators>(),
        VALIDATORS_RAM,
        "two buffers and two length bytes"
    );
    // The futures hold no buffers of their own.
    let mut c = HttpClient::new(NullSocket);
    let u = url("http://h/f");
    let get = size_of_val(&c.get(&u, None));
    assert!(get < 768, "get() future is {get} bytes");
    let known = Validators::NONE;
    let conditional = size_of_val(&c.get_if_changed(&u, &known));
    assert!(conditional < 768, "get_if_changed() future is {conditional} bytes");
    let post = size_of_val(&c.post(&u, "text/plain", b"report"));
    assert!(post < 768, "post() future is {post} bytes");
    let mut buf = [0u8; 16];
    let read = size_of_val(&c.read_body(&mut buf));
    assert!(read < 128, "read_body() future is {read} bytes");
}
