//! Parsing a request: what the origin acts on from its head, and the one `Range` form it
//! serves partially.

/// A parsed request: just what the origin acts on.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) range: Option<String>,
    pub(super) if_range: Option<String>,
    pub(super) if_none_match: Option<String>,
    pub(super) if_modified_since: Option<String>,
    /// Body length from `Content-Length`; `Err` when the body's length is not known from
    /// it (a `Transfer-Encoding`, or a number that is not one).
    pub(super) body_len: Result<usize, ()>,
    pub(super) close: bool,
}

pub(super) enum Parse {
    Done(Request, usize),
    Partial,
    Bad,
}

pub(super) fn parse_request(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || req.version == Some(0);
            let body_len = match (header("transfer-encoding"), header("content-length")) {
                (Some(_), _) => Err(()),
                (None, Some(n)) => n.trim().parse().map_err(|_| ()),
                (None, None) => Ok(0),
            };
            Parse::Done(
                Request {
                    method: req.method.unwrap_or("GET").to_string(),
                    path: req.path.unwrap_or("/").to_string(),
                    range: header("range"),
                    if_range: header("if-range"),
                    if_none_match: header("if-none-match"),
                    if_modified_since: header("if-modified-since"),
                    body_len,
                    close,
                },
                n,
            )
        }
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(_) => Parse::Bad,
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against a file of `len` bytes. `None` for forms the
/// origin does not serve partially (several ranges, other units): those get the whole file.
/// `Some(Err(()))` when unsatisfiable.
pub(super) fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (a, "") => (a.parse().ok()?, len.saturating_sub(1)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, b.min(len.saturating_sub(1)))
        }
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}
