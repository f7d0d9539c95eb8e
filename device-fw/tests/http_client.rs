//! The HTTP Range client against a scripted socket: the requests it writes (ranges, ports,
//! conditions, POST bodies), its accessors, and the RAM it takes. Status paths, redirects,
//! keep-alive, truncation, conditional GETs and POSTs have files of their own (`http_*`).

#[path = "http_support.rs"]
mod support;

use device_fw::http::{
    CLIENT_RAM, Fetched, HEAD_BUF_LEN, HttpClient, HttpError, MAX_URL_LEN, USER_AGENT, VALIDATORS_RAM, Validators,
};
use device_fw::socket::{Socket, SocketError};
use embassy_futures::block_on;
use support::*;

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
// Requests of conditional GETs and POSTs.

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
