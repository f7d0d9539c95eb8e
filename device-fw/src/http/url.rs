//! `http://` and `https://host[:port]/path` URLs: parsing, normalising into a fixed buffer,
//! and resolving a redirect's `Location` against the current URL.
//!
//! [`Url`] is the plain-HTTP triple older callers build and compare; [`Target`] adds the
//! scheme, so that one client can follow a redirect from one to the other.

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
    /// `https://` (and any other scheme) is [`HttpError::UnsupportedScheme`] here: a
    /// `Url` names a plain connection. [`Target::parse`] takes both.
    pub fn parse(text: &'a str) -> Result<Self, HttpError> {
        match Target::parse(text)? {
            Target { url, tls: false } => Ok(url),
            Target { tls: true, .. } => Err(HttpError::UnsupportedScheme),
        }
    }

    /// Parses what follows `<scheme>://`: `host[:port][/path]`; `default_port` when the
    /// URL gives none.
    fn parse_authority_and_path(rest: &'a str, default_port: u16) -> Result<Self, HttpError> {
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
            Some(colon) => (&authority[..colon], parse_port(&authority[colon + 1..], default_port)?),
            None => (authority, default_port),
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

/// A URL with its scheme: what the client connects to, plainly or through TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// Host, port (80 or 443 when the URL gives none) and request target.
    pub url: Url<'a>,
    /// `https://`: the connection goes through the socket's TLS stack.
    pub tls: bool,
}

impl<'a> Target<'a> {
    /// Parses `http://…` or `https://…` (the scheme in any case); any other scheme is
    /// [`HttpError::UnsupportedScheme`], anything else unusable [`HttpError::BadUrl`].
    pub fn parse(text: &'a str) -> Result<Self, HttpError> {
        let Some(sep) = text.find("://") else {
            return Err(HttpError::BadUrl("missing scheme; write http://host/path"));
        };
        let scheme = &text[..sep];
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(HttpError::BadUrl("malformed scheme; write http://host/path"));
        }
        let tls = if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("https") {
            true
        } else {
            return Err(HttpError::UnsupportedScheme);
        };
        let url = Url::parse_authority_and_path(&text[sep + 3..], default_port(tls))?;
        Ok(Target { url, tls })
    }

    /// Same scheme, host and port: one connection can carry both.
    pub fn same_origin(&self, other: &Target<'_>) -> bool {
        self.tls == other.tls && self.url.same_origin(&other.url)
    }
}

impl<'a> From<Url<'a>> for Target<'a> {
    fn from(url: Url<'a>) -> Self {
        Target { url, tls: false }
    }
}

impl<'a> From<&Url<'a>> for Target<'a> {
    fn from(url: &Url<'a>) -> Self {
        Target { url: *url, tls: false }
    }
}

impl<'a> From<&Target<'a>> for Target<'a> {
    fn from(target: &Target<'a>) -> Self {
        *target
    }
}

impl fmt::Display for Target<'_> {
    /// The normal form `http[s]://host[:port]/path` (port omitted when the default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "https://" } else { "http://" })?;
        f.write_str(self.url.host)?;
        if self.url.port != default_port(self.tls) {
            write!(f, ":{}", self.url.port)?;
        }
        f.write_str(self.url.path)
    }
}

fn default_port(tls: bool) -> u16 {
    if tls { 443 } else { 80 }
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

fn parse_port(text: &str, default_port: u16) -> Result<u16, HttpError> {
    const BAD_PORT: HttpError = HttpError::BadUrl("port is not a number in 1..=65535");
    if text.is_empty() {
        // RFC 3986: an empty port means the scheme's default.
        return Ok(default_port);
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
pub(crate) fn store(buf: &mut UrlBuf, url: &Target<'_>) -> Result<(), HttpError> {
    buf.clear();
    write!(buf, "{url}").map_err(|_| {
        buf.clear();
        HttpError::UrlTooLong
    })
}

/// Length of the `http[s]://host[:port]` prefix of a URL in normal form.
fn origin_len(normal: &str) -> usize {
    let after_scheme = normal.find("://").map_or(0, |i| i + 3);
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
        // A scheme-relative Location keeps the current scheme.
        let current_tls = buf.as_str().starts_with("https://");
        let target = if is_absolute {
            Target::parse(location)?
        } else {
            Target {
                url: Url::parse_authority_and_path(&location[2..], default_port(current_tls))?,
                tls: current_tls,
            }
        };
        let same = Target::parse(buf.as_str()).is_ok_and(|current| current.same_origin(&target));
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
    store(&mut buf, &Target::parse(base)?)?;
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
        store(&mut buf, &Target::parse(current).unwrap()).unwrap();
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
        assert_eq!(
            resolve("http://a/x", "https://a/k").unwrap(),
            ("https://a/k".into(), false)
        );
        assert_eq!(resolve("https://a/x", "//a/k").unwrap(), ("https://a/k".into(), true));
        assert_eq!(
            resolve("https://a:8443/x", "/k").unwrap(),
            ("https://a:8443/k".into(), true)
        );
        assert_eq!(
            resolve("https://a/x", "http://a:443/k").unwrap(),
            ("http://a:443/k".into(), false)
        );
        assert_eq!(resolve("http://a/x", "ftp://a/k"), Err(HttpError::UnsupportedScheme));
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
        assert_eq!(
            r(base, "https://cdn.example/a.bin").unwrap(),
            "https://cdn.example/a.bin"
        );
        assert_eq!(
            r("https://h/fleet/m.json", "../img/a.bin").unwrap(),
            "https://h/img/a.bin"
        );
    }
}
