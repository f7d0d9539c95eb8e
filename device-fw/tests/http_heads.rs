//! The HTTP client's response heads against a scripted socket: header parsing and its
//! limits, and the error statuses (what is retryable, what is drained).

#[path = "http_support.rs"]
mod support;

use device_fw::http::{ContentRange, HEAD_BUF_LEN, HttpError};
use embassy_futures::block_on;
use support::*;

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
