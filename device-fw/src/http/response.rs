//! Reading a response head off the connection, and checking a 200/206 head against the
//! request it answers.
//!
//! The head comes in a line at a time: only the line being read (after unfolding) has to fit
//! the head buffer, the head as a whole is capped at [`MAX_HEAD_LEN`]. Body bytes that came
//! with the head stay in the buffer for [`HttpClient::read_body`].

use super::head::{self, ContentRange, RangeField, RawHead};
use super::url::{self, UrlBuf};
use super::{HEAD_BUF_LEN, HttpClient, HttpError, MAX_HEAD_LEN, Validators};
use crate::socket::{Socket, SocketError};

impl<S: Socket> HttpClient<S> {
    /// Reads one response head, a line at a time, leaving any bytes after it in the buffer.
    /// For a GET (`get`), a redirect's `Location` becomes the current URL and a 200's
    /// validators replace the kept ones.
    pub(super) async fn read_head(&mut self, got_response: &mut bool, get: bool) -> Result<RawHead, HttpError> {
        let mut head = RawHead::default();
        let mut status_seen = false;
        let mut head_len = 0usize;
        // Where to look for the next line feed (past any folds already joined).
        let mut scan = usize::from(self.start);
        loop {
            let (start, end) = (usize::from(self.start), usize::from(self.end));
            if let Some(lf) = self.buf[scan..end].iter().position(|&b| b == b'\n').map(|i| scan + i) {
                let line_end = if lf > start && self.buf[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                if line_end == start {
                    // Blank line: the end of the head (or a stray one before the status line).
                    head_len += lf + 1 - start;
                    self.start = (lf + 1) as u16;
                    scan = lf + 1;
                    if head_len > MAX_HEAD_LEN {
                        return Err(HttpError::HeaderTooLarge);
                    }
                    if status_seen {
                        return Ok(head);
                    }
                    continue;
                }
                if status_seen {
                    // A header line may continue on the next one (obs-fold, RFC 9112 §5.2):
                    // the next byte tells. The head ends with a blank line, so it comes.
                    if lf + 1 == end {
                        self.fill(got_response, &mut scan).await?;
                        continue;
                    }
                    if matches!(self.buf[lf + 1], b' ' | b'\t') {
                        self.buf[line_end..=lf].fill(b' ');
                        scan = lf + 1;
                        continue;
                    }
                }
                head_len += lf + 1 - start;
                if head_len > MAX_HEAD_LEN {
                    return Err(HttpError::HeaderTooLarge);
                }
                let line = &self.buf[start..line_end];
                if status_seen {
                    let (name, value) = head::split_header(line)?;
                    let validators = (get && head.status == 200).then_some(&mut self.validators);
                    apply_header(&mut head, &mut self.url, validators, get, name, value)?;
                } else {
                    (head.http10, head.status) = head::parse_status_line(line)?;
                    status_seen = true;
                    if get && head.status == 200 {
                        // Until this head is accepted, no validators are offered: a 200
                        // whose head or checks fail names no version the caller will have.
                        self.validators = Validators::NONE;
                        self.validators_pending = true;
                    }
                }
                self.start = (lf + 1) as u16;
                scan = lf + 1;
                continue;
            }
            scan = end;
            self.fill(got_response, &mut scan).await?;
        }
    }

    /// Moves the unconsumed bytes to the front of the buffer and reads more after them.
    async fn fill(&mut self, got_response: &mut bool, scan: &mut usize) -> Result<(), HttpError> {
        let (start, end) = (usize::from(self.start), usize::from(self.end));
        if start > 0 {
            self.buf.copy_within(start..end, 0);
            *scan -= start;
            self.start = 0;
            self.end = (end - start) as u16;
        }
        let end = usize::from(self.end);
        if end == HEAD_BUF_LEN {
            return Err(HttpError::HeaderTooLarge);
        }
        match self.socket.read(&mut self.buf[end..]).await {
            Ok(0) => Err(HttpError::Socket(SocketError::Closed)),
            Ok(n) => {
                *got_response = true;
                self.end += n as u16;
                Ok(())
            }
            Err(e) => Err(HttpError::Socket(e)),
        }
    }
}

/// Records what the client needs of one header: `validators` when the response is a 200
/// to a GET, and a redirect's `Location` into `url` when `follow`.
fn apply_header(
    head: &mut RawHead,
    url: &mut UrlBuf,
    validators: Option<&mut Validators>,
    follow: bool,
    name: &[u8],
    value: &[u8],
) -> Result<(), HttpError> {
    if name.eq_ignore_ascii_case(b"content-length") {
        let length = head::parse_u64(value).ok_or(HttpError::Malformed("Content-Length is not a number"))?;
        if head.content_length.is_some_and(|previous| previous != length) {
            return Err(HttpError::Malformed("conflicting Content-Length headers"));
        }
        head.content_length = Some(length);
    } else if name.eq_ignore_ascii_case(b"content-range") {
        if head.content_range.is_some() {
            return Err(HttpError::Malformed("more than one Content-Range header"));
        }
        head.content_range = Some(head::parse_content_range(value));
    } else if name.eq_ignore_ascii_case(b"connection") {
        head.close |= head::has_token(value, b"close");
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        head.transfer_encoded |= !value.eq_ignore_ascii_case(b"identity");
    } else if name.eq_ignore_ascii_case(b"etag") {
        if let Some(validators) = validators {
            validators.record_etag(value, head.etag_seen);
            head.etag_seen = true;
        }
    } else if name.eq_ignore_ascii_case(b"last-modified") {
        if let Some(validators) = validators {
            validators.record_last_modified(value);
        }
    } else if follow && name.eq_ignore_ascii_case(b"location") && head.is_redirect() {
        if head.location.is_some() {
            return Err(HttpError::Malformed("more than one Location header"));
        }
        if !value.is_empty() {
            match url::resolve_location(url, value) {
                Ok(same_origin) => head.location = Some(same_origin),
                Err(e) => {
                    url.clear();
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Checks a 200/206 head against the request; returns the body length and the range.
pub(super) fn check_success(
    head: &RawHead,
    asked: Option<(u64, Option<u64>)>,
) -> Result<(Option<u64>, Option<ContentRange>), HttpError> {
    if head.transfer_encoded {
        return Err(HttpError::UnsupportedTransferEncoding);
    }
    if head.status == 200 {
        // Content-Range means nothing on a 200 (RFC 9110 §14.4); the engine skips ahead.
        return Ok((head.content_length, None));
    }
    let range = match head.content_range {
        Some(Ok(RangeField::Range(range))) => range,
        _ => return Err(HttpError::BadContentRange),
    };
    let Some((start, end)) = asked else {
        return Err(HttpError::UnexpectedContentRange);
    };
    if range.start != start || end.is_some_and(|end| range.end > end) {
        return Err(HttpError::UnexpectedContentRange);
    }
    if head.content_length.is_some_and(|length| length != range.len()) {
        return Err(HttpError::Malformed(
            "Content-Length does not match the Content-Range length",
        ));
    }
    Ok((Some(range.len()), Some(range)))
}
