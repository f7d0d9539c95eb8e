//! The HTTP client's conditional GETs against a scripted socket: the validators a 200 leaves,
//! the 304 of an unchanged object, and the connection after it.

#[path = "http_support.rs"]
mod support;

use device_fw::http::{Fetched, HttpClient, HttpError, MAX_ETAG_LEN, Url, Validators};
use device_fw::socket::SocketError;
use embassy_futures::block_on;
use support::*;

// ---------------------------------------------------------------------------------------
// Conditional GET.

/// A 200 with `headers` (validators) and `body`.
fn ok_200_with(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let length = format!("Content-Length: {}", body.len());
    let mut all = headers.to_vec();
    all.push(&length);
    response("200 OK", &all, body)
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
