//! The device's HTTP client (head parser, body framing, redirects, conditional GET, POST)
//! against a peer that sends the fuzz bytes, split into fuzz-chosen read sizes.
//!
//! Input: `mode` (1 byte), range start (4), range length (2), number of split sizes (1),
//! the sizes, caller buffer size (2), then the stream.
//!
//! Asserts: no panic; the body is never longer than announced (nor than a 206's range)
//! and a body reported complete is exactly as long; a 206 starts where it was asked; every
//! body read fits the caller's buffer; the body bytes are a run of the stream (none
//! invented, reordered or repeated); kept validators fit their limits; the socket is never
//! asked for more than the client's own buffer or the caller's.
#![no_main]

use device_fw::http::{Fetched, HEAD_BUF_LEN, HttpClient, MAX_DATE_LEN, MAX_ETAG_LEN, Url, Validators};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::socket::StreamSocket;
use otactl_fuzz::{Bytes, Splits, contains, run};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let start = u64::from(b.u32() % 300_000);
    let len = u64::from(b.u16());
    let nsplits = usize::from(b.u8() % 32);
    let splits = Splits::new(b.take(nsplits));
    let body_buf = usize::from(b.u16() % 4096) + 1;
    let stream = b.rest();

    let url = Url::parse("http://ota.example.com/fleet/stable/manifest.json").expect("fixed URL");
    let mut http = HttpClient::new(StreamSocket::new(stream, splits));
    let range = match mode % 4 {
        0 => None,
        1 => Some((start, None)),
        _ => Some((start, Some(start + len))),
    };
    let outcome = run(
        async {
            let head = match (mode >> 2) % 4 {
                0 | 1 => http.get(&url, range).await.map(Some),
                2 => {
                    let known = Validators::from_etag("\"5f2a-1b\"").unwrap_or(Validators::NONE);
                    match http.get_if_changed(&url, &known).await {
                        Ok(Fetched::Changed(h)) => Ok(Some(h)),
                        Ok(Fetched::NotModified) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                _ => {
                    let r = http
                        .post(&url, "application/json", b"{\"outcome\":\"confirmed\"}")
                        .await;
                    if let Ok(status) = r {
                        assert!((200..=299).contains(&status));
                    }
                    r.map(|_| None)
                }
            };
            let Ok(Some(head)) = head else {
                return (head.map(|_| ()), Vec::new(), None);
            };
            assert!(
                head.status == 200 || head.status == 206,
                "returned status {}",
                head.status
            );
            if head.status == 206 {
                let cr = head.content_range.expect("a 206 has a range");
                let (s, e) = range.expect("a 206 answers a range request");
                assert_eq!(cr.start, s, "206 at another offset");
                if let Some(e) = e {
                    assert!(cr.end <= e, "206 past the asked end");
                }
                assert!(cr.start <= cr.end);
            } else {
                assert!(head.content_range.is_none());
            }
            let mut body = Vec::new();
            let mut buf = vec![0u8; body_buf];
            let complete = loop {
                match http.read_body(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        assert!(n <= buf.len(), "read_body returned more than its buffer");
                        body.extend_from_slice(&buf[..n]);
                        if let Some(l) = head.content_length {
                            assert!(body.len() as u64 <= l, "body longer than Content-Length");
                        }
                        if body.len() > stream.len() {
                            panic!("more body than stream");
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            if complete.is_ok()
                && let Some(l) = head.content_length
            {
                assert_eq!(body.len() as u64, l, "body reported complete at the wrong length");
            }
            if let Some(cr) = head.content_range {
                assert!(body.len() as u64 <= cr.len());
            }
            (complete, body, Some(head))
        },
        1000,
    );
    let (_, body, _) = outcome.expect("the client waits on a socket that always answers");
    assert!(contains(stream, &body), "body bytes are not a run of the stream");
    let v = http.validators();
    assert!(v.etag().is_none_or(|e| e.len() <= MAX_ETAG_LEN));
    assert!(v.last_modified().is_none_or(|d| d.len() <= MAX_DATE_LEN));
    let socket = http.into_socket();
    assert!(
        socket.largest_read <= HEAD_BUF_LEN.max(body_buf),
        "socket read larger than any buffer"
    );
});
