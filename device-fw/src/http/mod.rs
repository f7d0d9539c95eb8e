//! HTTP/1.1 Range client over a [`Socket`], without heap.
//!
//! Just enough HTTP for resumable firmware downloads from object storage: `GET` with
//! `Range: bytes=<start>-[<end>]`, redirects, keep-alive reuse, and strict checks of what
//! came back (a 206 must be the range asked, a body must be as long as announced), so that
//! the download engine never writes a byte to flash at the wrong offset. Besides that, what
//! a device that looks after itself needs: the conditional GET of its periodic manifest
//! check ([`HttpClient::get_if_changed`], a bodiless 304 when nothing changed) and the small
//! POST of an outcome report ([`HttpClient::post`]).
//!
//! # Memory
//!
//! Everything lives in the [`HttpClient`] value; no heap, no buffers on the stack of the
//! async calls:
//!
//! | what | bytes |
//! |---|---|
//! | head buffer: the request going out (with a POST's body when it fits), then one response header line at a time, then the body bytes that came with the head | [`HEAD_BUF_LEN`] = 1024 |
//! | current URL (after redirects), normal form | [`MAX_URL_LEN`] = 256 (+ a length word) |
//! | validators of the last 200: `ETag` and `Last-Modified`, each with a length byte | [`VALIDATORS_RAM`] = [`MAX_ETAG_LEN`] 80 + [`MAX_DATE_LEN`] 33 + 2 = 115 |
//! | response and connection state | ~64 |
//! | the socket `S` | `size_of::<S>()` |
//!
//! [`CLIENT_RAM`] is the bound: 1,491 bytes plus the socket (1,480 measured on a 64-bit
//! host, 1,472 on the 32-bit chip; the tests check it with `size_of`). The futures of
//! [`HttpClient::get`], [`HttpClient::get_if_changed`], [`HttpClient::post`] and
//! [`HttpClient::read_body`] hold only state, no buffers (about 590, 580, 490 and 100 bytes
//! on a 64-bit host with a stateless socket; also tested). Because the head is parsed line
//! by line, the buffer limits the length of a single header line (after unfolding), not of
//! the whole head: object stores that send a dozen `x-amz-*` headers fit; the head as a
//! whole is capped at [`MAX_HEAD_LEN`].
//!
//! # What a check costs
//!
//! A check that finds the manifest unchanged is one request and one bodiless 304. Against
//! the bench origin (an Apache-like head) with the bench's names, `ota.example.com` and
//! `/fleet/stable/manifest.json`, and a 19-byte ETag, that is 160 bytes up (80 of them fixed
//! by this code, the rest path, host, ETag and the 19-byte `User-Agent`) and 181 bytes
//! down: 341 bytes of HTTP, against 1,088 for fetching a 664-byte signed manifest (a
//! 124-byte request and a 300-byte head before the body). TCP and IP headers come on top,
//! and so does a fresh connection's handshake: hours apart, every check opens one, as the
//! carrier's NAT has long forgotten the last.
//!
//! # Not here
//!
//! TLS of its own: `https://` goes through the socket's TLS stack
//! ([`Socket::connect_tls`], the modem's), and is [`HttpError::UnsupportedScheme`] on a
//! socket without one. Chunked bodies in either
//! direction ([`HttpError::UnsupportedTransferEncoding`]), pipelining, a cache (the client
//! keeps a 200's validators, never its body: the caller keeps what it judged), redirects of
//! a POST ([`HttpError::RedirectNotFollowed`]), `Expect: 100-continue` (a report is smaller
//! than the refusal it would save).

mod error;
mod head;
mod request;
mod response;
mod url;
mod validators;

use core::fmt;

pub use self::error::HttpError;
pub use self::head::ContentRange;
use self::head::{RangeField, RawHead};
use self::request::{Request, write_request};
use self::response::check_success;
use self::url::UrlBuf;
pub use self::url::{Target, Url, resolve_reference};
pub use self::validators::{MAX_DATE_LEN, MAX_ETAG_LEN, VALIDATORS_RAM, Validators};
use crate::socket::{Socket, SocketError};

/// Size of the head buffer: the longest request and the longest (unfolded) header line.
pub const HEAD_BUF_LEN: usize = 1024;
/// Longest URL the client can hold (the one asked or a redirect target).
pub const MAX_URL_LEN: usize = 256;
/// Most bytes a response head may have in all (status line, headers, blank line).
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most redirects followed for one [`HttpClient::get`].
pub const MAX_REDIRECTS: u8 = 5;
/// Bodies of redirects and error responses up to this length are read and dropped to keep
/// the connection; longer ones cost a reconnect instead.
pub const DRAIN_LIMIT: u64 = 2 * 1024;
/// RAM of an [`HttpClient`] without its socket, an upper bound on any target (32 or 64 bit).
pub const CLIENT_RAM: usize = HEAD_BUF_LEN + MAX_URL_LEN + VALIDATORS_RAM + 96;
/// Longest `Content-Type` a [`HttpClient::post`] sends; media types are a few dozen bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 128;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: u8 = 4;
/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("otactl-device/", env!("CARGO_PKG_VERSION"));

/// Head of the response a [`HttpClient::get`] returns (a 200 or a 206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// 200 (the whole object, also when a range was asked: skip to your offset) or 206.
    pub status: u16,
    /// Body length from `Content-Length` (for a 206 without one: the range length);
    /// `None` when the body runs until the connection closes.
    pub content_length: Option<u64>,
    /// The range a 206 carries (always `Some` for a 206, checked against the one asked;
    /// always `None` for a 200).
    pub content_range: Option<ContentRange>,
    /// Whether the connection stays open after this body (HTTP/1.1, no `Connection:
    /// close`, body length known).
    pub keep_alive: bool,
}

/// What a [`HttpClient::get_if_changed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the object is still the one the validators name. No body; the connection is
    /// kept for the next request when the origin allows it.
    NotModified,
    /// 200: a new version (or the origin ignored the condition); read its body with
    /// [`HttpClient::read_body`], then take its [`HttpClient::validators`].
    Changed(ResponseHead),
}

/// State of the body being read.
#[derive(Debug, Clone, Copy, Default)]
struct Body {
    /// A 200/206 body is being read.
    active: bool,
    /// Bytes still to come; `None`: until the connection closes.
    remaining: Option<u64>,
    /// The announced length, for [`HttpError::TruncatedBody`].
    expected: u64,
    received: u64,
    keep_alive: bool,
    /// The connection ended early; reads keep returning this.
    failed: Option<HttpError>,
}

/// Outcome of one request on one connection, before any retry.
struct Attempt {
    error: HttpError,
    /// Whether any response byte arrived (a failure before that on a reused connection is
    /// a stale keep-alive, worth one retry on a fresh connection).
    got_response: bool,
}

impl From<HttpError> for Attempt {
    fn from(error: HttpError) -> Self {
        Attempt {
            error,
            got_response: true,
        }
    }
}

/// An HTTP/1.1 client for one origin connection at a time. See the module docs for the
/// memory it needs.
pub struct HttpClient<S> {
    socket: S,
    /// Request out, head lines in, then body bytes that came along with the head.
    buf: [u8; HEAD_BUF_LEN],
    /// Unconsumed received bytes are `buf[start..end]`.
    start: u16,
    end: u16,
    /// Current URL in normal form; empty before the first request.
    url: UrlBuf,
    /// We opened the socket and have not closed it.
    connected: bool,
    /// The connection is to `url`'s origin, persistent, and has no response in flight.
    idle: bool,
    body: Body,
    /// Of the last 200 to a GET, as its head is read.
    validators: Validators,
    /// The last 200's head has not (yet) been accepted: [`HttpClient::validators`] offers
    /// none.
    validators_pending: bool,
}

impl<S> fmt::Debug for HttpClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("url", &self.url.as_str())
            .field("connected", &self.connected)
            .field("idle", &self.idle)
            .field("buffered", &(self.end - self.start))
            .field("body", &self.body)
            .field("validators", &self.validators)
            .field("validators_pending", &self.validators_pending)
            .finish_non_exhaustive()
    }
}

/// Accessors: they do no I/O, so they need no `Socket` bound (a wrapper generic over its
/// inner socket can reach them).
impl<S> HttpClient<S> {
    /// The validators (`ETag`, or `Last-Modified` when there was no ETag) of the last 200
    /// to a GET; empty when it had none that can be kept (see [`MAX_ETAG_LEN`]) or when its
    /// head was refused. Clone them once the body is read: the next 200 replaces them.
    pub fn validators(&self) -> &Validators {
        if self.validators_pending {
            &Validators::NONE
        } else {
            &self.validators
        }
    }

    /// Body bytes still to read: `Some(0)` when there is no body in progress, `None` when
    /// the body runs until the connection closes.
    pub fn body_remaining(&self) -> Option<u64> {
        if self.body.active { self.body.remaining } else { Some(0) }
    }

    /// The socket, e.g. to query the modem between requests.
    pub fn socket(&mut self) -> &mut S {
        &mut self.socket
    }

    /// Gives the socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// The URL the last response came from (after redirects), in normal form
    /// `http[s]://host[:port]/path`; `None` before the first request.
    pub fn effective_url(&self) -> Option<&str> {
        (!self.url.is_empty()).then_some(self.url.as_str())
    }
}

impl<S: Socket> HttpClient<S> {
    /// A client that will open connections on `socket` as needed.
    pub fn new(socket: S) -> Self {
        HttpClient {
            socket,
            buf: [0; HEAD_BUF_LEN],
            start: 0,
            end: 0,
            url: UrlBuf::new(),
            connected: false,
            idle: false,
            body: Body::default(),
            validators: Validators::NONE,
            validators_pending: false,
        }
    }

    /// GETs `url`, with `Range: bytes=<start>-[<end>]` when `range` is given (`end`
    /// inclusive).
    ///
    /// Follows up to [`MAX_REDIRECTS`] redirects (301/302/303/307/308, absolute or relative
    /// `Location`). Reuses the open connection when it is to the same host and port, was
    /// kept alive and its previous body was read to the end; otherwise (re)connects. A
    /// request on a reused connection that fails before any response byte arrives (the
    /// NAT or the origin dropped the idle connection) is retried once on a fresh one.
    ///
    /// Returns the head of a 200 or 206; read the body with [`HttpClient::read_body`].
    /// A 206 always starts at the asked start (else [`HttpError::UnexpectedContentRange`]);
    /// a 200 to a range request is returned as is. Other statuses are errors (a 304 too:
    /// this request names no version): see [`HttpError`] and [`HttpError::is_retryable`].
    pub async fn get<'u>(
        &mut self,
        url: impl Into<Target<'u>>,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ResponseHead, HttpError> {
        let url = url.into();
        if let Some((start, Some(end))) = range
            && end < start
        {
            return Err(HttpError::InvalidRange);
        }
        match self.fetch(&url, range, None).await? {
            Fetched::Changed(head) => Ok(head),
            // Only a conditional request takes a 304 for an answer.
            Fetched::NotModified => Err(HttpError::UnexpectedStatus(304)),
        }
    }

    /// GETs `url` unless it is still the version `known` names: `If-None-Match` with its
    /// ETag, else `If-Modified-Since` with its date, else (empty `known`) a plain GET.
    ///
    /// A 304 is [`Fetched::NotModified`]: it has no body (RFC 9112 §6.3), so the connection
    /// stays usable for the next request. A 200 is [`Fetched::Changed`], as from
    /// [`HttpClient::get`]; once its body is read and accepted, keep
    /// [`HttpClient::validators`] for the next check. Redirects, connection reuse, the
    /// stale-connection retry and the errors are those of [`HttpClient::get`]; the
    /// condition goes along to every redirect target.
    pub async fn get_if_changed<'u>(
        &mut self,
        url: impl Into<Target<'u>>,
        known: &Validators,
    ) -> Result<Fetched, HttpError> {
        self.fetch(&url.into(), None, (!known.is_empty()).then_some(known))
            .await
    }

    /// POSTs `body` with `Content-Type: content_type` and its `Content-Length`, and
    /// returns the 2xx status once the response's body is drained (a short one keeps the
    /// connection; see [`DRAIN_LIMIT`]).
    ///
    /// Meant for small bodies (an outcome report, at most a few hundred bytes): when head
    /// and body fit the head buffer they go in one write, which over a modem is one send
    /// command. A 3xx is not followed ([`HttpError::RedirectNotFollowed`]): re-sending the
    /// body elsewhere is the configuration's business. 4xx and 5xx are
    /// [`HttpError::ClientError`] and [`HttpError::ServerError`], as for a GET.
    ///
    /// Like a GET, a POST on a reused connection that fails before any response byte is
    /// sent again once on a fresh connection, even though the first copy may have reached
    /// the origin: a kept-alive connection that sat idle through a download is the one most
    /// likely to be gone, and whether the modem's bytes left it cannot be known from here
    /// (a successful write only means the modem took them). So a POST can arrive twice:
    /// use it for requests whose receiver de-duplicates them, as the outcome reports'
    /// receiver does by device and attempt.
    pub async fn post<'u>(
        &mut self,
        url: impl Into<Target<'u>>,
        content_type: &str,
        body: &[u8],
    ) -> Result<u16, HttpError> {
        let head = self.send_post(url.into(), content_type, body).await?;
        // Whatever the body says (a receipt, an error page) is not for us.
        self.discard_body(&head).await;
        match head.status {
            status @ 200..=299 => Ok(status),
            _ => Err(post_status_error(&head)),
        }
    }

    /// POSTs `body` like [`HttpClient::post`], but keeps the reply's body for
    /// [`HttpClient::read_body`]: for an app's own server, whose answer says something (a
    /// telemetry endpoint that answers "update now"). A 2xx returns its head; read the body
    /// to its end before the next request, or [`HttpClient::close`]. Other statuses are the
    /// errors of [`HttpClient::post`].
    pub async fn post_for_reply<'u>(
        &mut self,
        url: impl Into<Target<'u>>,
        content_type: &str,
        body: &[u8],
    ) -> Result<ResponseHead, HttpError> {
        let head = self.send_post(url.into(), content_type, body).await?;
        if (200..=299).contains(&head.status) {
            if head.transfer_encoded {
                self.close_socket().await;
                return Err(HttpError::UnsupportedTransferEncoding);
            }
            return Ok(self.open_body(&head, head.content_length, None).await);
        }
        self.discard_body(&head).await;
        Err(post_status_error(&head))
    }

    /// Sends a POST and reads its response head; on failure the connection is closed.
    async fn send_post(&mut self, url: Target<'_>, content_type: &str, body: &[u8]) -> Result<RawHead, HttpError> {
        if !content_type_ok(content_type) {
            return Err(HttpError::BadContentType);
        }
        let reuse = self.begin(&url).await?;
        let request = Request::Post { content_type, body };
        match self.exchange(reuse, &request).await {
            Ok(head) => Ok(head),
            Err(e) => {
                self.close_socket().await;
                Err(e)
            }
        }
    }

    /// Makes `url` the current one; returns whether the open connection can carry it (else
    /// it is closed).
    async fn begin(&mut self, url: &Target<'_>) -> Result<bool, HttpError> {
        if url.tls && !self.socket.supports_tls() {
            self.close_socket().await;
            return Err(HttpError::UnsupportedScheme);
        }
        let reuse = self.can_reuse_for(url);
        if !reuse && self.connected {
            self.close_socket().await;
        }
        self.body = Body::default();
        if let Err(e) = url::store(&mut self.url, url) {
            self.close_socket().await;
            return Err(e);
        }
        Ok(reuse)
    }

    /// A GET, following redirects; a 304 counts as an answer only when `known` is given.
    async fn fetch(
        &mut self,
        url: &Target<'_>,
        range: Option<(u64, Option<u64>)>,
        known: Option<&Validators>,
    ) -> Result<Fetched, HttpError> {
        let mut reuse = self.begin(url).await?;
        let request = Request::Get { range, known };
        let mut redirects = 0u8;
        loop {
            let head = match self.exchange(reuse, &request).await {
                Ok(head) => head,
                Err(e) => {
                    self.close_socket().await;
                    return Err(e);
                }
            };
            let error = match head.status {
                200 | 206 => return self.start_body(&head, range).await.map(Fetched::Changed),
                304 if known.is_some() => {
                    self.discard_body(&head).await;
                    return Ok(Fetched::NotModified);
                }
                _ if head.is_redirect() => match head.location {
                    None => HttpError::RedirectWithoutLocation,
                    Some(_) if redirects == MAX_REDIRECTS => {
                        self.close_socket().await;
                        return Err(HttpError::TooManyRedirects);
                    }
                    Some(_) if !self.socket.supports_tls() && self.url.starts_with("https:") => {
                        self.close_socket().await;
                        return Err(HttpError::UnsupportedScheme);
                    }
                    Some(same_origin) => {
                        redirects += 1;
                        reuse = self.discard_body(&head).await && same_origin;
                        continue;
                    }
                },
                416 => HttpError::RangeNotSatisfiable {
                    total: match head.content_range {
                        Some(Ok(RangeField::Unsatisfied { total })) => Some(total),
                        Some(Ok(RangeField::Range(ContentRange { total, .. }))) => total,
                        _ => None,
                    },
                },
                status @ 400..=499 => HttpError::ClientError(status),
                status @ 500..=599 => HttpError::ServerError(status),
                status => HttpError::UnexpectedStatus(status),
            };
            // Read what is left of the refused response, so the connection can serve the
            // next request.
            self.discard_body(&head).await;
            return Err(error);
        }
    }

    /// Reads body bytes of the response returned by the last [`HttpClient::get`] (or
    /// [`Fetched::Changed`]) into `buf`; `Ok(0)` once the body is complete (or when `buf`
    /// is empty).
    ///
    /// Never reads past the body. If the connection ends before the announced length,
    /// returns [`HttpError::TruncatedBody`] (now and on every later call).
    pub async fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        if let Some(e) = self.body.failed {
            return Err(e);
        }
        if !self.body.active || buf.is_empty() {
            return Ok(0);
        }
        let want = match self.body.remaining {
            Some(remaining) => buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = if self.start < self.end {
            let (start, end) = (usize::from(self.start), usize::from(self.end));
            let n = want.min(end - start);
            buf[..n].copy_from_slice(&self.buf[start..start + n]);
            self.start += n as u16;
            n
        } else {
            match self.socket.read(&mut buf[..want]).await {
                Ok(0) | Err(SocketError::Closed) => {
                    self.close_socket().await;
                    if self.body.remaining.is_none() {
                        // A body delimited by the end of the connection: this is its end.
                        self.body.active = false;
                        return Ok(0);
                    }
                    let e = HttpError::TruncatedBody {
                        expected: self.body.expected,
                        received: self.body.received,
                    };
                    self.body.failed = Some(e);
                    return Err(e);
                }
                Ok(n) => n,
                Err(e) => return Err(HttpError::Socket(e)),
            }
        };
        self.body.received += n as u64;
        if let Some(remaining) = self.body.remaining.as_mut() {
            *remaining -= n as u64;
            if *remaining == 0 {
                self.finish_body().await;
            }
        }
        Ok(n)
    }

    /// Closes the connection (if any) and forgets the response in progress.
    pub async fn close(&mut self) {
        self.close_socket().await;
        self.body = Body::default();
    }

    /// Whether the open connection can carry a request for `url`.
    fn can_reuse_for(&self, url: &Target<'_>) -> bool {
        self.connected
            && self.idle
            && !self.body.active
            && self.socket.is_connected()
            && Target::parse(self.url.as_str()).is_ok_and(|current| current.same_origin(url))
    }

    async fn close_socket(&mut self) {
        if self.connected || self.socket.is_connected() {
            self.socket.close().await;
        }
        self.connected = false;
        self.idle = false;
        self.start = 0;
        self.end = 0;
    }

    /// Sends the request for the current URL and reads the response head, on the open
    /// connection if `reuse`, retrying once on a fresh connection if that one turns out dead.
    async fn exchange(&mut self, reuse: bool, request: &Request<'_>) -> Result<RawHead, HttpError> {
        if reuse {
            match self.send_and_read_head(request).await {
                Ok(head) => return Ok(head),
                Err(Attempt {
                    error: HttpError::Socket(_),
                    got_response: false,
                }) => {}
                Err(attempt) => return Err(attempt.error),
            }
        }
        self.close_socket().await;
        let target = Target::parse(self.url.as_str())?;
        if target.tls {
            self.socket.connect_tls(target.url.host, target.url.port).await?;
        } else {
            self.socket.connect(target.url.host, target.url.port).await?;
        }
        self.connected = true;
        self.send_and_read_head(request).await.map_err(|a| a.error)
    }

    async fn send_and_read_head(&mut self, request: &Request<'_>) -> Result<RawHead, Attempt> {
        self.idle = false;
        self.start = 0;
        self.end = 0;
        let target = Target::parse(self.url.as_str())?;
        let (len, body_left) = write_request(&mut self.buf, &target, *request)?;
        let write_failed = |e| Attempt {
            error: HttpError::Socket(e),
            got_response: false,
        };
        self.socket.write_all(&self.buf[..len]).await.map_err(write_failed)?;
        if !body_left.is_empty() {
            self.socket.write_all(body_left).await.map_err(write_failed)?;
        }
        let mut got_response = false;
        for _ in 0..=MAX_INTERIM {
            let head = self
                .read_head(&mut got_response, request.is_get())
                .await
                .map_err(|error| Attempt { error, got_response })?;
            match head.status {
                101 => return Err(HttpError::Malformed("101 Switching Protocols, which was not asked for").into()),
                100..=199 => continue, // interim (100 Continue, 103 Early Hints): the real one follows
                _ => return Ok(head),
            }
        }
        Err(HttpError::Malformed("too many interim (1xx) responses").into())
    }

    /// Checks a 200/206 head against the request and sets up the body.
    async fn start_body(
        &mut self,
        head: &RawHead,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ResponseHead, HttpError> {
        let checked = check_success(head, range);
        let (length, content_range) = match checked {
            Ok(x) => x,
            Err(e) => {
                self.close_socket().await;
                return Err(e);
            }
        };
        if head.status == 200 {
            self.validators.finish(head.etag_seen);
            self.validators_pending = false;
        }
        Ok(self.open_body(head, length, content_range).await)
    }

    /// Makes the body of `head` (of `length` bytes, `None`: until the connection closes) the
    /// one [`HttpClient::read_body`] reads.
    async fn open_body(
        &mut self,
        head: &RawHead,
        length: Option<u64>,
        content_range: Option<ContentRange>,
    ) -> ResponseHead {
        let keep_alive = !head.http10 && !head.close && length.is_some();
        self.body = Body {
            active: true,
            remaining: length,
            expected: length.unwrap_or(0),
            received: 0,
            keep_alive,
            failed: None,
        };
        if length == Some(0) {
            self.finish_body().await;
        }
        ResponseHead {
            status: head.status,
            content_length: length,
            content_range,
            keep_alive,
        }
    }

    /// The body has been read to its end: keep the connection for the next request if it
    /// is persistent and nothing unasked-for came after the body, else close it.
    async fn finish_body(&mut self) {
        self.body.active = false;
        if self.body.keep_alive && self.start == self.end {
            self.idle = true;
            self.start = 0;
            self.end = 0;
        } else {
            self.close_socket().await;
        }
    }

    /// Drops the body of a redirect or error response. Returns whether the connection is
    /// still usable (persistent and the body short enough to read through), else closes it.
    async fn discard_body(&mut self, head: &RawHead) -> bool {
        let length = if head.bodiless() { Some(0) } else { head.content_length };
        let persistent = !head.http10 && !head.close && !head.transfer_encoded;
        let Some(mut remaining) = length.filter(|&n| persistent && n <= DRAIN_LIMIT) else {
            self.close_socket().await;
            return false;
        };
        while remaining > 0 {
            let (start, end) = (usize::from(self.start), usize::from(self.end));
            if start < end {
                let n = (end - start).min(remaining as usize);
                self.start += n as u16;
                remaining -= n as u64;
                continue;
            }
            let want = self.buf.len().min(remaining as usize);
            match self.socket.read(&mut self.buf[..want]).await {
                Ok(n) if n > 0 => remaining -= n as u64,
                _ => {
                    self.close_socket().await;
                    return false;
                }
            }
        }
        if self.start != self.end {
            self.close_socket().await;
            return false;
        }
        self.start = 0;
        self.end = 0;
        self.idle = true;
        true
    }
}

/// Whether `content_type` can go into a request head as it is.
fn content_type_ok(content_type: &str) -> bool {
    !content_type.is_empty()
        && content_type.len() <= MAX_CONTENT_TYPE_LEN
        && content_type.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// The error for a POST answered with anything but a 2xx.
fn post_status_error(head: &RawHead) -> HttpError {
    match head.status {
        status if head.is_redirect() => HttpError::RedirectNotFollowed(status),
        status @ 400..=499 => HttpError::ClientError(status),
        status @ 500..=599 => HttpError::ServerError(status),
        status => HttpError::UnexpectedStatus(status),
    }
}
