//! The HTTP client's POSTs against a scripted socket: the answer's status, the connection
//! after it, when a POST is sent a second time, and the `Content-Type` check.

#[path = "http_support.rs"]
mod support;

use device_fw::http::{DRAIN_LIMIT, HttpError};
use device_fw::socket::SocketError;
use embassy_futures::block_on;
use support::*;

// ---------------------------------------------------------------------------------------
// POST.

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
