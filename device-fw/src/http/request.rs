//! The bytes of a request: the head of one `GET` (with its range or its condition) or
//! `POST`, written into the client's head buffer without allocating, and as much of a POST's
//! body after it as fits, so that a small report goes out in one write (over a modem, one
//! send command).

use core::fmt::{self, Write as _};

use super::{HttpError, Target, USER_AGENT, Validators};

/// The request to send for the current URL.
#[derive(Debug, Clone, Copy)]
pub(super) enum Request<'a> {
    /// `known`: validators for `If-None-Match` / `If-Modified-Since`, never empty.
    Get {
        range: Option<(u64, Option<u64>)>,
        known: Option<&'a Validators>,
    },
    Post {
        content_type: &'a str,
        body: &'a [u8],
    },
}

impl Request<'_> {
    pub(super) fn is_get(&self) -> bool {
        matches!(self, Request::Get { .. })
    }
}

/// Writes the request for `url` into `buf`; returns its length and the part of a POST body
/// that did not fit after the head (to be sent from the caller's slice).
pub(super) fn write_request<'b>(
    buf: &mut [u8],
    target: &Target<'_>,
    request: Request<'b>,
) -> Result<(usize, &'b [u8]), HttpError> {
    let mut w = SliceWriter { buf, len: 0 };
    let method = if request.is_get() { "GET" } else { "POST" };
    let url = &target.url;
    let written = (|| -> fmt::Result {
        write!(w, "{method} {} HTTP/1.1\r\nHost: {}", url.path, url.host)?;
        if url.port != if target.tls { 443 } else { 80 } {
            write!(w, ":{}", url.port)?;
        }
        w.write_str("\r\n")?;
        match request {
            Request::Get { range, known } => {
                if let Some((start, end)) = range {
                    write!(w, "Range: bytes={start}-")?;
                    if let Some(end) = end {
                        write!(w, "{end}")?;
                    }
                    w.write_str("\r\n")?;
                }
                // The ETag alone when there is one: an origin ignores If-Modified-Since next
                // to If-None-Match (RFC 9110 §13.2.2), so the date would be bytes for nothing.
                match known.map(|k| (k.etag(), k.last_modified())) {
                    Some((Some(etag), _)) => write!(w, "If-None-Match: {etag}\r\n")?,
                    Some((None, Some(date))) => write!(w, "If-Modified-Since: {date}\r\n")?,
                    _ => {}
                }
            }
            Request::Post { content_type, body } => {
                write!(w, "Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len())?
            }
        }
        write!(w, "User-Agent: {USER_AGENT}\r\nConnection: keep-alive\r\n\r\n")
    })();
    written.map_err(|_| HttpError::UrlTooLong)?;
    let len = w.len;
    match request {
        Request::Post { body, .. } if w.buf.len() - len >= body.len() => {
            w.buf[len..len + body.len()].copy_from_slice(body);
            Ok((len + body.len(), &[]))
        }
        Request::Post { body, .. } => Ok((len, body)),
        Request::Get { .. } => Ok((len, &[])),
    }
}

/// `core::fmt::Write` into a byte slice; fails when full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let dest = self.buf.get_mut(self.len..self.len + s.len()).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}
