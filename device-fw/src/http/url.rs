//! `http://host[:port]/path` URLs: parsing, normalising into a fixed buffer, and resolving
//! a redirect's `Location` against the current URL.

use core::fmt::{self, Write as _};

use heapless::String;

use super::{HttpError, MAX_URL_LEN};

/// The fixed buffer the client keeps the current (effective) URL in.
pub(crate) type UrlBuf = String<MAX_URL_LEN>;

/// A parsed `http://` URL, borrowing from its text.
///
/// Only what a GET needs: host, port (80 when not given) and the request target (path plus
/// query, never empty, the fragment dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    /// Host name or IPv4 address, as written (no brackets, no credentials).
    pub host: &'a str,
    /// TCP port; 80 when the URL gives none.
    pub port: u16,
    /// Request target: starts with `/`, may carry a `?query`.
    pub path: &'a str,
}

impl<'a> Url<'a> {
    /// Parses `http://host[:port][/path][?query][#fragment]`.
    ///
    /// `https://` (and any other scheme) is [`HttpError::UnsupportedScheme`]; everything
    /// else that is not a usable URL is [`HttpError::BadUrl`] with the reason.
    pub fn parse(text: &'a str) -> Result<Self, HttpError> {
        let Some(sep) = text.find("://") else {
            return Err(HttpError::BadUrl("missing scheme; write http://host/path"));
        };
        let scheme = &text[..sep];
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(HttpError::BadUrl("malformed scheme; write http://host/path"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(HttpError::UnsupportedScheme);
        }
        Self::parse_authority_and_path(&text[sep + 3..])
    }

    /// Parses what follows `http://`: `host[:port][/path]`.
    fn parse_authority_and_path(rest: &'a str) -> Result<Self, HttpError> {
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let mut path = &rest[auth_end..];
        if let Some(hash) = path.find('#') {
            path = &path[..hash];
        }
        if path.starts_with('?') {
            return Err(HttpError::BadUrl("query without a path; write http://host/?query"));
        }
        if path.is_empty() {
            path = "/";
        }
        check_path(path)?;

        if authority.contains('@') {
            return Err(HttpError::BadUrl(
                "credentials in the URL (user@host) are not supported",
            ));
        }
        if authority.starts_with('[') {
            return Err(HttpError::BadUrl(
                "IPv6 literal hosts are not supported; use a host name",
            ));
        }
        let (host, port) = match authority.rfind(':') {
            Some(colon) => (&authority[..colon], parse_port(&authority[colon + 1..])?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(HttpError::BadUrl("missing host"));
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            return Err(HttpError::BadUrl(
                "host contains a character other than letters, digits, '-', '.' and '_'",
            ));
        }
        Ok(Url { host, port, path })
    }

    /// Whether `other` names the same host and port (host names compare case-insensitively),
    /// i.e. whether a connection to one can carry a request for the other.
    pub fn same_origin(&self, other: &Url<'_>) -> bool {
        self.port == other.port && self.host.eq_ignore_ascii_case(other.host)
    }
}

impl fmt::Display for Url<'_> {
    /// The normal form `http://host[:port]/path` (port omitted when 80).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        f.write_str(self.host)?;
        if self.port != 80 {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(self.path)
    }
}

fn parse_port(text: &str) -> Result<u16, HttpError> {
    const BAD_PORT: HttpError = HttpError::BadUrl("port is not a number in 1..=65535");
    if text.is_empty() {
        // RFC 3986: an empty port means the scheme's default.
        return Ok(80);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return Err(BAD_PORT);
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(BAD_PORT),
    }
}

/// A request target goes verbatim into the request line: no spaces, no control bytes, ASCII.
fn check_path(path: &str) -> Result<(), HttpError> {
    if path.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(HttpError::BadUrl(
            "path contains a space, a control character or non-ASCII; percent-encode it",
        ))
    }
}

/// Stores `url` in normal form into `buf`.
pub(crate) fn store(buf: &mut UrlBuf, url: &Url<'_>) -> Result<(), HttpError> {
    buf.clear();
    write!(buf, "{url}").map_err(|_| {
        buf.clear();
        HttpError::UrlTooLong
    })
}

/// Length of the `http://host[:port]` prefix of a URL in normal form.
fn origin_len(normal: &str) -> usize {
    let after_scheme = "http://".len();
    normal[after_scheme..]
        .find('/')
        .map_or(normal.len(), |i| after_scheme + i)
}

/// Replaces the URL in `buf` (normal form) with the target of a redirect's `Location`
/// value, resolved against it. Returns whether the new URL has the same host and port, so
/// that the open connection can carry the next request.
///
/// Accepted forms: absolute (`http://host/…`), scheme-relative (`//host/…`), path-absolute
/// (`/…`) and path-relative (`name`, resolved against the current path's directory; dot
/// segments are passed to the origin as they are).
pub(crate) fn resolve_location(buf: &mut UrlBuf, location: &[u8]) -> Result<bool, HttpError> {
    let location = core::str::from_utf8(location).map_err(|_| HttpError::BadUrl("redirect Location is not ASCII"))?;
    let location = location.find('#').map_or(location, |i| &location[..i]);
    let is_absolute = location.find(':').is_some_and(|colon| {
        let scheme = &location[..colon];
        !scheme.is_empty() && !scheme.contains('/') && location[colon..].starts_with("://")
    });

    if is_absolute || location.starts_with("//") {
        let target = if is_absolute {
            Url::parse(location)?
        } else {
            Url::parse_authority_and_path(&location[2..])?
        };
        let same = Url::parse(buf.as_str()).is_ok_and(|current| current.same_origin(&target));
        store(buf, &target)?;
        return Ok(same);
    }

    if location.is_empty() {
        return Err(HttpError::RedirectWithoutLocation);
    }
    check_path(location)?;
    let keep = if location.starts_with('/') {
        origin_len(buf.as_str())
    } else {
        // Directory of the current path: up to and including its last '/' before any query.
        let origin = origin_len(buf.as_str());
        let path = &buf.as_str()[origin..];
        let path = path.find('?').map_or(path, |q| &path[..q]);
        origin + path.rfind('/').map_or(0, |i| i + 1)
    };
    buf.truncate(keep);
    buf.push_str(location).map_err(|_| HttpError::UrlTooLong)?;
    Ok(true)
}

/// Resolves `reference` (absolute, or relative as in a manifest's `image` field) against
/// `base`, removing `.` and `..` segments (RFC 3986 §5.2.4) so that origins which do not
/// normalise paths (object stores) see the object's real key.
pub fn resolve_reference(base: &str, reference: &str) -> Result<String<MAX_URL_LEN>, HttpError> {
    let mut buf = UrlBuf::new();
    store(&mut buf, &Url::parse(base)?)?;
    resolve_location(&mut buf, reference.as_bytes())?;
    let origin = origin_len(buf.as_str());
    let (path, query) = buf.as_str()[origin..].split_at(buf.as_str()[origin..].find('?').unwrap_or(buf.len() - origin));
    let mut kept: heapless::Vec<&str, 64> = heapless::Vec::new();
    let segments: heapless::Vec<&str, 64> = path.split('/').skip(1).collect::<heapless::Vec<&str, 64>>();
    if segments.len() == 64 {
        return Err(HttpError::UrlTooLong);
    }
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                kept.pop();
                trailing_slash = i == last;
            }
            other => {
                // Cannot overflow: at most as many as `segments`.
                let _ = kept.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::new();
    let too_long = |_| HttpError::UrlTooLong;
    out.push_str(&buf.as_str()[..origin]).map_err(too_long)?;
    for seg in &kept {
        out.push('/').map_err(too_long)?;
        out.push_str(seg).map_err(too_long)?;
    }
    if kept.is_empty() || trailing_slash {
        out.push('/').map_err(too_long)?;
    }
    out.push_str(query).map_err(too_long)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn resolve(current: &str, location: &str) -> Result<(std::string::String, bool), HttpError> {
        let mut buf = UrlBuf::new();
        store(&mut buf, &Url::parse(current).unwrap()).unwrap();
        let same = resolve_location(&mut buf, location.as_bytes())?;
        Ok((buf.as_str().into(), same))
    }

    #[test]
    fn resolves_each_location_form() {
        assert_eq!(
            resolve("http://a/x/y?q=1/2", "z").unwrap(),
            ("http://a/x/z".into(), true)
        );
        assert_eq!(resolve("http://a/x/y", "/p?x").unwrap(), ("http://a/p?x".into(), true));
        assert_eq!(
            resolve("http://a:81/x", "//A:81/k").unwrap(),
            ("http://A:81/k".into(), true)
        );
        assert_eq!(
            resolve("http://a/x", "http://b/k#f").unwrap(),
            ("http://b/k".into(), false)
        );
        assert_eq!(
            resolve("http://a/x", "HTTP://a:80/k").unwrap(),
            ("http://a/k".into(), true)
        );
        assert_eq!(
            resolve("http://a/x", "http://a:8080/k").unwrap(),
            ("http://a:8080/k".into(), false)
        );
        assert_eq!(resolve("http://a/x", "https://a/k"), Err(HttpError::UnsupportedScheme));
        assert!(matches!(resolve("http://a/x", "/a b"), Err(HttpError::BadUrl(_))));
    }

    #[test]
    fn manifest_relative_image_references() {
        let r = |b: &str, r: &str| resolve_reference(b, r).map(|s| std::string::String::from(s.as_str()));
        let base = "http://bucket.example:9000/fleet/stable/manifest.json";
        assert_eq!(
            r(base, "../images/ab.bin").unwrap(),
            "http://bucket.example:9000/fleet/images/ab.bin"
        );
        assert_eq!(
            r(base, "./x/../y.bin?v=1").unwrap(),
            "http://bucket.example:9000/fleet/stable/y.bin?v=1"
        );
        assert_eq!(
            r(base, "../../../../a.bin").unwrap(),
            "http://bucket.example:9000/a.bin"
        );
        assert_eq!(r(base, "/abs/a.bin").unwrap(), "http://bucket.example:9000/abs/a.bin");
        assert_eq!(r(base, "http://cdn.example/a.bin").unwrap(), "http://cdn.example/a.bin");
        assert_eq!(r(base, "sub/").unwrap(), "http://bucket.example:9000/fleet/stable/sub/");
        assert_eq!(r(base, "https://cdn.example/a.bin"), Err(HttpError::UnsupportedScheme));
    }
}
