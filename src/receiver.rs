//! `POST /reports`: the receiver of device outcome reports behind `otactl serve`.
//!
//! Reports are not signed (a device holds no private key), so anyone who can reach the
//! receiver can send one. What that can do is bounded here, and by what reports feed: a
//! report can only ever count toward a rollout's halt or advance decision
//! ([`device_fw::fleet`]); only the signed manifest makes a device install anything.
//!
//! What the receiver bounds, cheapest check first:
//!
//! 1. **Rate**: a token bucket per source address (an IPv6 source by its /64, what one
//!    subscriber gets) and one for all sources, each refilled continuously at its rate per
//!    minute and holding a minute's worth; over either, 429 with `Retry-After`. Devices
//!    behind a carrier's NAT share an address, so the per-source rate is generous.
//! 2. **Type and size**: `Content-Type` `application/json` or the report type, at most
//!    [`MAX_REPORT`] bytes (413), read with that limit whatever `Content-Length` says.
//! 3. **Form**: [`Report::parse`] (400): schema, every field's characters and length.
//! 4. **Subject**: the release must be one the served bucket has published on that channel
//!    (its current manifest, or one in its history): no objects for made-up products,
//!    channels or versions (422).
//! 5. **Once**: one object per device and attempt, written only if absent
//!    ([`crate::reports`]); a repeat answers 200 and writes nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use device_fw::wire::manifest::{self, Manifest, PayloadBuf};
use device_fw::wire::report::{CONTENT_TYPE, MAX_REPORT, Report};

use crate::bucket::Bucket;
use crate::channel;
use crate::reports::{self, Stored};

/// Sources tracked at once; past it, sources whose bucket has refilled are forgotten.
const MAX_SOURCES: usize = 65_536;

/// A token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    level: f64,
    at: Instant,
}

impl Tokens {
    fn full(capacity: f64, now: Instant) -> Tokens {
        Tokens {
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, capacity: f64, per_second: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * per_second).min(capacity);
        self.at = now;
    }

    /// Time until one token is there.
    fn wait(&self, per_second: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - self.level) / per_second).max(0.0))
    }
}

/// Rates, in reports per minute; each bucket holds a minute's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub per_source: u32,
    pub total: u32,
}

#[derive(Debug)]
struct Limiter {
    rates: Rates,
    sources: HashMap<IpAddr, Tokens>,
    all: Tokens,
}

/// The source a rate is kept for: an IPv4 address, or an IPv6 /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limiter {
    fn new(rates: Rates, now: Instant) -> Limiter {
        Limiter {
            rates,
            sources: HashMap::new(),
            all: Tokens::full(f64::from(rates.total), now),
        }
    }

    /// Takes a token for `ip` and one from the total, or says how long to wait.
    fn take(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (one_cap, all_cap) = (f64::from(self.rates.per_source), f64::from(self.rates.total));
        let (one_rate, all_rate) = (one_cap / 60.0, all_cap / 60.0);
        if self.sources.len() >= MAX_SOURCES {
            self.sources.retain(|_, t| {
                t.refill(one_cap, one_rate, now);
                t.level < one_cap
            });
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let one = self
            .sources
            .entry(source_of(ip))
            .or_insert_with(|| Tokens::full(one_cap, now));
        one.refill(one_cap, one_rate, now);
        self.all.refill(all_cap, all_rate, now);
        if one.level < 1.0 {
            return Err(one.wait(one_rate));
        }
        if self.all.level < 1.0 {
            return Err(self.all.wait(all_rate));
        }
        one.level -= 1.0;
        self.all.level -= 1.0;
        Ok(())
    }
}

/// What the report route needs.
#[derive(Debug)]
pub struct Receiver {
    /// Where reports are stored.
    pub reports: Bucket,
    /// The served bucket's directory: which releases exist.
    pub served: PathBuf,
    limiter: Mutex<Limiter>,
}

impl Receiver {
    pub fn new(reports: Bucket, served: PathBuf, rates: Rates) -> Receiver {
        Receiver {
            reports,
            served,
            limiter: Mutex::new(Limiter::new(rates, Instant::now())),
        }
    }
}

fn answer(status: StatusCode, text: &str) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn content_type_ok(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json") || media.eq_ignore_ascii_case(CONTENT_TYPE)
}

/// `POST /reports`.
pub async fn post(
    State(receiver): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = receive(&receiver, peer, &headers, body).await;
    eprintln!("POST /reports {} from {}", response.status().as_u16(), peer.ip());
    response
}

async fn receive(receiver: &Receiver, peer: SocketAddr, headers: &HeaderMap, body: Body) -> Response {
    let limited = receiver
        .limiter
        .lock()
        .map_or(Ok(()), |mut l| l.take(peer.ip(), Instant::now()));
    if let Err(wait) = limited {
        let seconds = (wait.as_secs_f64().ceil() as u64).max(1);
        let mut response = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many reports; retry in {seconds} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    if !content_type_ok(headers) {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("a report is sent as application/json or {CONTENT_TYPE}"),
        );
    }
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a report is at most {MAX_REPORT} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REPORT as u64) {
        return too_large();
    }
    // Past the limit (or a body cut off), nothing more is read.
    let Ok(bytes) = to_bytes(body, MAX_REPORT).await else {
        return too_large();
    };
    let report = match Report::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let key = match reports::key_of(&report) {
        Ok(key) => key,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if !published(receiver, &report).await {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "this bucket has not published {} {} on channel {}",
                report.product, report.version, report.channel
            ),
        );
    }
    match reports::store(&receiver.reports, &key, &report).await {
        Ok(Stored::Created) => answer(StatusCode::ACCEPTED, "accepted"),
        Ok(Stored::Duplicate) => answer(StatusCode::OK, "already reported"),
        Err(e) => {
            eprintln!("cannot store a report: {:?}", miette::Report::new(e));
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot store the report now; retry later",
            )
        }
    }
}

/// Whether the served bucket has published the release a report is about: the channel's
/// manifest (read, not verified: this bounds what is stored, it trusts nothing) is for
/// the product, and the version is its own or one in the channel's history.
async fn published(receiver: &Receiver, report: &Report<String>) -> bool {
    let dir = receiver.served.join(&report.channel);
    let Ok(envelope) = tokio::fs::read(dir.join("manifest.json")).await else {
        return false;
    };
    let mut buf = PayloadBuf::default();
    let Some(current) = manifest::decode_unverified(&envelope, &mut buf)
        .ok()
        .and_then(|p| Manifest::parse(p).ok())
    else {
        return false;
    };
    if current.product != report.product {
        return false;
    }
    if current.version == report.version {
        return true;
    }
    let Ok(mut entries) = tokio::fs::read_dir(dir.join(channel::HISTORY)).await else {
        return false;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        if channel::parse_history_name(&name.to_string_lossy()).is_some_and(|h| h.version == report.version) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_rate_and_all_share_the_total() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            Rates {
                per_source: 3,
                total: 5,
            },
            t0,
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.take(a, t0).is_ok());
        }
        let wait = l.take(a, t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(l.take(b, t0).is_ok());
        assert!(l.take(b, t0).is_ok());
        // Five taken in all: b has tokens left, the total has none.
        assert!(l.take(b, t0).is_err());
        // A third of a minute later, each has one more.
        let later = t0 + Duration::from_secs(21);
        assert!(l.take(a, later).is_ok());
        assert!(l.take(a, later).is_err());
    }

    #[test]
    fn an_ipv6_subscriber_is_one_source() {
        let one: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert_eq!(source_of(one), source_of(same));
        assert_ne!(source_of(one), source_of(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(source_of(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!content_type_ok(&h));
        for ok in ["application/json", "application/json; charset=utf-8", CONTENT_TYPE] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ok).unwrap());
            assert!(content_type_ok(&h), "{ok}");
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!content_type_ok(&h));
    }
}
