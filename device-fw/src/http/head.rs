//! Response head parsing: the status line, the few headers the client acts on, and
//! `Content-Range`. Pure functions over byte slices; the client feeds them one (unfolded)
//! line at a time, so a head of any length needs only one line of buffer.

use super::HttpError;

/// `Content-Range: bytes <start>-<end>/<total>` of a 206 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte offset of the body within the object.
    pub start: u64,
    /// Last byte offset of the body within the object (inclusive).
    pub end: u64,
    /// The whole object's length, or `None` when the origin sent `*`.
    pub total: Option<u64>,
}

impl ContentRange {
    /// Number of body bytes this range covers.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true (a range covers at least one byte); here for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A `Content-Range` value as it can appear in a 206 (`bytes a-b/n`) or a 416 (`bytes */n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeField {
    Range(ContentRange),
    Unsatisfied { total: u64 },
}

/// What the client keeps of a response head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawHead {
    pub status: u16,
    /// `HTTP/1.0`: the connection is not persistent whatever the headers say.
    pub http10: bool,
    /// `Connection: close` was present.
    pub close: bool,
    pub content_length: Option<u64>,
    /// `None`: no header; `Some(Err)`: present but not parseable.
    pub content_range: Option<Result<RangeField, ()>>,
    /// A `Transfer-Encoding` other than `identity` was present.
    pub transfer_encoded: bool,
    /// For a redirect: `Some(same_origin)` once `Location` was resolved into the URL buffer.
    pub location: Option<bool>,
    /// An `ETag` header was present (whether or not it could be kept).
    pub etag_seen: bool,
}

impl RawHead {
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }

    /// Whether the response has no body by definition (RFC 9112 §6.3).
    pub fn bodiless(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }
}

/// Parses `HTTP/1.x SSS reason`; returns (is HTTP/1.0, status).
pub(crate) fn parse_status_line(line: &[u8]) -> Result<(bool, u16), HttpError> {
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(HttpError::Malformed(
        "the response does not start with an HTTP/1.x status line",
    ))?;
    let (&minor, rest) = rest
        .split_first()
        .filter(|(minor, _)| minor.is_ascii_digit())
        .ok_or(HttpError::Malformed("bad HTTP version in the status line"))?;
    let code = rest
        .strip_prefix(b" ")
        .filter(|r| r.len() >= 3 && r[..3].iter().all(u8::is_ascii_digit) && (r.len() == 3 || r[3] == b' '))
        .ok_or(HttpError::Malformed("bad status code in the status line"))?;
    let status = code[..3].iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if status < 100 {
        return Err(HttpError::Malformed("status code below 100"));
    }
    Ok((minor == b'0', status))
}

/// Splits a header line into a name and a value with surrounding whitespace removed.
pub(crate) fn split_header(line: &[u8]) -> Result<(&[u8], &[u8]), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::Malformed("header line without a colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::Malformed("empty header name or whitespace before a colon"));
    }
    Ok((name, trim(&line[colon + 1..])))
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of at most 19 digits (no sign, no spaces): fits u64 without overflow
/// checks beyond what `checked_*` gives.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Parses a `Content-Range` value: `bytes a-b/n`, `bytes a-b/*` or `bytes */n`.
pub(crate) fn parse_content_range(value: &[u8]) -> Result<RangeField, ()> {
    let (unit, spec) = value.split_at(value.iter().position(|&b| b == b' ').ok_or(())?);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return Err(());
    }
    let spec = trim(spec);
    let slash = spec.iter().position(|&b| b == b'/').ok_or(())?;
    let (range, total) = (&spec[..slash], &spec[slash + 1..]);
    let total = match total {
        b"*" => None,
        digits => Some(parse_u64(digits).ok_or(())?),
    };
    if range == b"*" {
        return total.map(|total| RangeField::Unsatisfied { total }).ok_or(());
    }
    let dash = range.iter().position(|&b| b == b'-').ok_or(())?;
    let start = parse_u64(&range[..dash]).ok_or(())?;
    let end = parse_u64(&range[dash + 1..]).ok_or(())?;
    if end < start || total.is_some_and(|t| end >= t) {
        return Err(());
    }
    Ok(RangeField::Range(ContentRange { start, end, total }))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 206 Partial Content"), Ok((false, 206)));
        assert_eq!(parse_status_line(b"HTTP/1.0 200"), Ok((true, 200)));
        assert!(parse_status_line(b"HTTP/2 200").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20 OK").is_err());
        assert!(parse_status_line(b"HTTP/1.1 2000 OK").is_err());
        assert!(parse_status_line(b"ICY 200 OK").is_err());
    }

    #[test]
    fn content_ranges() {
        let r = |s, e, t| {
            Ok(RangeField::Range(ContentRange {
                start: s,
                end: e,
                total: t,
            }))
        };
        assert_eq!(parse_content_range(b"bytes 0-99/1000"), r(0, 99, Some(1000)));
        assert_eq!(parse_content_range(b"BYTES 5-5/*"), r(5, 5, None));
        assert_eq!(
            parse_content_range(b"bytes */1000"),
            Ok(RangeField::Unsatisfied { total: 1000 })
        );
        for bad in [
            &b"bytes 10-9/100"[..],
            b"bytes 0-100/100",
            b"bytes */*",
            b"items 0-1/2",
            b"bytes -1-2/3",
            b"bytes 0-99",
            b"bytes 0-99/99999999999999999999",
            b"bytes0-1/2",
        ] {
            assert_eq!(parse_content_range(bad), Err(()), "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn numbers_and_tokens() {
        assert_eq!(parse_u64(b"18446744073709551615"), None); // 20 digits: refused
        assert_eq!(parse_u64(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        assert_eq!(parse_u64(b"+1"), None);
        assert!(has_token(b"Keep-Alive, CLOSE", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert_eq!(split_header(b"A-B:  x y \t"), Ok((&b"A-B"[..], &b"x y"[..])));
        assert!(split_header(b"A B: x").is_err());
        assert!(split_header(b"A : x").is_err());
    }
}
