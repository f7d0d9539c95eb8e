//! What can go wrong with one HTTP exchange, and whether trying again can help.

use core::fmt;

use crate::socket::SocketError;

use super::{MAX_CONTENT_TYPE_LEN, MAX_HEAD_LEN, MAX_REDIRECTS, MAX_URL_LEN};

/// Why a request or a body read failed.
///
/// The download engine decides with [`HttpError::is_retryable`] whether to back off and
/// resume (`Range: bytes=<written>-`) or to stop and report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection failed underneath (connect, write, read, reset, timeout).
    #[error("connection failed: {0}")]
    Socket(SocketError),
    /// The URL could not be parsed; the text says which part is wrong.
    #[error("bad URL: {0}")]
    BadUrl(&'static str),
    /// The URL (or a redirect target) does not fit the client's fixed URL buffer.
    #[error("URL longer than {MAX_URL_LEN} bytes; use a shorter object path")]
    UrlTooLong,
    /// A scheme other than `http://` and `https://`, or `https://` over a socket without a
    /// TLS stack.
    #[error(
        "only http:// URLs, and https:// through a modem whose TLS client the driver uses \
         (SIM7600 with a CA certificate configured), are supported"
    )]
    UnsupportedScheme,
    /// The caller asked for `Range: bytes=start-end` with `end < start`.
    #[error("invalid range request: the end offset is before the start offset")]
    InvalidRange,
    /// 4xx other than 416: the request itself is wrong (missing object, no permission).
    /// Trying again will not help, except for 408 and 429 (see [`HttpError::is_retryable`]).
    #[error("the origin refused the request with HTTP {0}; check the URL and the bucket's permissions")]
    ClientError(u16),
    /// 5xx: the origin failed; try again after a backoff.
    #[error("the origin failed with HTTP {0}; retrying after a backoff may help")]
    ServerError(u16),
    /// 416: the asked start is at or past the end of the object.
    #[error("range not satisfiable (HTTP 416){}", Total(*total))]
    RangeNotSatisfiable {
        /// The object's length, from `Content-Range: bytes */<total>`, when the origin said.
        total: Option<u64>,
    },
    /// A status this client has no use for (a 204 or a 304 to a GET that did not ask for
    /// one, 3xx without redirect meaning, codes above 599).
    #[error("unexpected HTTP status {0} for this request")]
    UnexpectedStatus(u16),
    /// A POST was answered with a redirect, which is not followed: the body would go to a
    /// URL that nobody configured.
    #[error(
        "the origin answered the POST with a redirect (HTTP {0}), which is not followed; \
         configure the URL it redirects to"
    )]
    RedirectNotFollowed(u16),
    /// The `Content-Type` given for a POST is empty, longer than
    /// [`MAX_CONTENT_TYPE_LEN`] or has a byte that cannot go in a header.
    #[error(
        "bad Content-Type for the POST: it must be 1 to {MAX_CONTENT_TYPE_LEN} bytes of \
         printable ASCII"
    )]
    BadContentType,
    /// More than [`MAX_REDIRECTS`] redirects in a row.
    #[error("more than {MAX_REDIRECTS} redirects; the origin is probably redirecting in a loop")]
    TooManyRedirects,
    /// A 301/302/303/307/308 without a `Location` header.
    #[error("redirect response without a Location header")]
    RedirectWithoutLocation,
    /// A header line longer than the head buffer, or a head longer than [`MAX_HEAD_LEN`].
    #[error(
        "response header too large (a line over the head buffer or more than {MAX_HEAD_LEN} \
         bytes in all); the origin or a proxy adds too many headers"
    )]
    HeaderTooLarge,
    /// The response is not valid HTTP/1.x; the text says what was wrong.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// A 206 without a `Content-Range`, or one that cannot be parsed or is inconsistent
    /// (`end < start`, `end >= total`).
    #[error("206 response with a missing or invalid Content-Range header")]
    BadContentRange,
    /// A 206 whose range does not start where asked (or ends past the asked end), or a 206
    /// to a request that asked for no range.
    #[error("206 response for a different range than the one asked")]
    UnexpectedContentRange,
    /// The connection ended before the whole body arrived.
    #[error("connection ended after {received} of {expected} body bytes")]
    TruncatedBody {
        /// Body length announced by `Content-Length` (or the `Content-Range` length).
        expected: u64,
        /// Body bytes received before the connection ended.
        received: u64,
    },
    /// `Transfer-Encoding` other than `identity` (e.g. `chunked`): the body length must be
    /// known from `Content-Length` to resume by offset.
    #[error(
        "the origin sent a Transfer-Encoding (e.g. chunked), which this client does not \
         decode; configure the origin to send Content-Length for firmware objects"
    )]
    UnsupportedTransferEncoding,
}

impl From<SocketError> for HttpError {
    fn from(e: SocketError) -> Self {
        HttpError::Socket(e)
    }
}

impl HttpError {
    /// Whether backing off and trying again (from the last written offset) can succeed.
    ///
    /// Retryable: every socket failure but a TLS one (a certificate does not fix itself), 5xx, a truncated body, and the two 4xx that mean
    /// "later" (408 Request Timeout, 429 Too Many Requests). Everything else is a property
    /// of the URL or of the origin's configuration and will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Socket(SocketError::Tls(_)) => false,
            HttpError::Socket(_) | HttpError::ServerError(_) | HttpError::TruncatedBody { .. } => true,
            HttpError::ClientError(code) => matches!(code, 408 | 429),
            _ => false,
        }
    }
}

/// Formats the optional object length of a 416.
struct Total(Option<u64>);

impl fmt::Display for Total {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(total) => write!(f, "; the object is {total} bytes long"),
            None => Ok(()),
        }
    }
}
