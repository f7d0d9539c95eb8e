//! The HTTP client's connections against a scripted socket: redirects, keep-alive reuse and
//! the one retry of a stale kept-alive connection.

#[path = "http_support.rs"]
mod support;

use device_fw::http::{HttpError, MAX_URL_LEN};
use device_fw::socket::SocketError;
use embassy_futures::block_on;
use support::*;

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
