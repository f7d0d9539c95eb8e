//! The HTTP client's 200 and 206 responses against a scripted socket: bodies in any split,
//! a 206 held to the range asked, and bodies cut short, followed by more bytes than
//! announced, or left behind by a cancelled `get`.

#[path = "http_support.rs"]
mod support;

use std::pin::pin;
use std::task::{Context, Waker};

use device_fw::http::{ContentRange, HttpError, ResponseHead};
use device_fw::socket::{Socket, SocketError};
use embassy_futures::block_on;
use support::*;

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
