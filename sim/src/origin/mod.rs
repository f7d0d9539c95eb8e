//! An HTTP/1.1 origin on the bench network, serving files with Range semantics and, on
//! demand, the misbehaviours a device meets in the field: a server that ignores Range,
//! 5xx bursts, a keep-alive timeout, redirects and Apache `mod_ratelimit` throttling.
//!
//! Like `otactl serve`, every object has a strong, quoted `ETag` (here Apache's
//! `FileETag MTime Size` form, `"<size hex>-<mtime µs hex>"`) and a `Last-Modified` date,
//! both new with each [`OriginHandle::put`], and a GET with a matching `If-None-Match` (weak
//! comparison, `*`) or, without one, an `If-Modified-Since` not older than the object is
//! answered `304 Not Modified`. It also takes the devices' outcome reports: a POST to
//! [`OriginBehaviour::report_path`] is recorded for [`OriginHandle::reports`] and answered
//! `202 Accepted`.

mod conditional;
mod request;
mod serve;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::Listener;

use serve::serve_connection;

/// Switchable misbehaviour; change it while the origin runs through [`OriginHandle`].
#[derive(Debug, Clone)]
pub struct OriginBehaviour {
    /// Answer every Range request with 200 and the whole file.
    pub ignore_range: bool,
    /// Ignore Range for this many more requests (a transient misconfiguration).
    pub ignore_range_next: u32,
    /// Answer this many more requests with 503.
    pub fail_next: u32,
    /// Send bodies no faster than this (bytes per second), like Apache `mod_ratelimit`.
    pub rate_limit: Option<u32>,
    /// Close an idle kept-alive connection after this long (Apache's default is 5 s).
    pub keep_alive_timeout: Duration,
    /// Path → Location answered with 302.
    pub redirects: HashMap<String, String>,
    /// Where devices POST their outcome reports; a POST anywhere else is 405.
    pub report_path: String,
    /// The body a POST to [`OriginBehaviour::report_path`] is answered with (`200 OK`); empty:
    /// `202 Accepted` without a body. An app's own server says things this way (a telemetry
    /// endpoint that answers `update`).
    pub post_reply: Vec<u8>,
}

impl Default for OriginBehaviour {
    fn default() -> Self {
        OriginBehaviour {
            ignore_range: false,
            ignore_range_next: 0,
            fail_next: 0,
            rate_limit: None,
            keep_alive_timeout: Duration::from_secs(5),
            redirects: HashMap::new(),
            report_path: "/reports".into(),
            post_reply: Vec::new(),
        }
    }
}

/// What the origin saw and sent.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct OriginStats {
    pub requests: u64,
    pub range_requests: u64,
    pub partial_responses: u64,
    pub full_responses: u64,
    /// 304s to conditional GETs.
    pub not_modified: u64,
    /// POSTs to the report path, recorded.
    pub reports: u64,
    pub errors_5xx: u64,
    pub body_bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    range_requests: AtomicU64,
    partial: AtomicU64,
    full: AtomicU64,
    not_modified: AtomicU64,
    reports: AtomicU64,
    errors_5xx: AtomicU64,
    body_bytes: AtomicU64,
}

/// One stored object and its validators.
#[derive(Debug, Clone)]
struct Object {
    data: Arc<Vec<u8>>,
    /// Strong, quoted.
    etag: String,
    /// Seconds since the Unix epoch (HTTP dates have no finer resolution).
    modified: u64,
}

#[derive(Debug, Default)]
struct Store {
    objects: HashMap<String, Object>,
    /// Puts so far: each one is a second later than the one before, so that every version
    /// has its own `Last-Modified` and `ETag`.
    puts: u64,
}

#[derive(Debug)]
struct OriginShared {
    store: Mutex<Store>,
    behaviour: Mutex<OriginBehaviour>,
    reports: Mutex<Vec<Vec<u8>>>,
    counters: Counters,
}

/// Controls a running origin.
#[derive(Debug, Clone)]
pub struct OriginHandle {
    shared: Arc<OriginShared>,
}

/// `Last-Modified` of the first object put: Mon, 23 Nov 2026 21:14:07 GMT.
const FIRST_MODIFIED: u64 = 1_795_468_447;

impl OriginHandle {
    /// Stores (or replaces) the object at `path`: a new version, with a new `ETag` and a
    /// later `Last-Modified`.
    pub fn put(&self, path: &str, data: Vec<u8>) {
        let mut store = self.shared.store.lock().expect("origin lock");
        let modified = FIRST_MODIFIED + store.puts;
        store.puts += 1;
        let etag = format!("\"{:x}-{:x}\"", data.len(), modified * 1_000_000);
        store.objects.insert(
            path.to_string(),
            Object {
                data: Arc::new(data),
                etag,
                modified,
            },
        );
    }

    /// The `ETag` the object at `path` is served with.
    pub fn etag(&self, path: &str) -> Option<String> {
        let store = self.shared.store.lock().expect("origin lock");
        store.objects.get(path).map(|o| o.etag.clone())
    }

    pub fn set_behaviour(&self, f: impl FnOnce(&mut OriginBehaviour)) {
        f(&mut self.shared.behaviour.lock().expect("origin lock"));
    }

    /// The bodies POSTed to the report path so far, in order.
    pub fn reports(&self) -> Vec<Vec<u8>> {
        self.shared.reports.lock().expect("origin lock").clone()
    }

    pub fn stats(&self) -> OriginStats {
        let c = &self.shared.counters;
        OriginStats {
            requests: c.requests.load(Ordering::Relaxed),
            range_requests: c.range_requests.load(Ordering::Relaxed),
            partial_responses: c.partial.load(Ordering::Relaxed),
            full_responses: c.full.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            reports: c.reports.load(Ordering::Relaxed),
            errors_5xx: c.errors_5xx.load(Ordering::Relaxed),
            body_bytes_sent: c.body_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Serves connections from `listener` until the network goes away.
pub fn spawn_origin(listener: Listener, behaviour: OriginBehaviour) -> OriginHandle {
    spawn(listener, behaviour, None)
}

fn spawn(
    mut listener: Listener,
    behaviour: OriginBehaviour,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> OriginHandle {
    let shared = Arc::new(OriginShared {
        store: Mutex::new(Store::default()),
        behaviour: Mutex::new(behaviour),
        reports: Mutex::new(Vec::new()),
        counters: Counters::default(),
    });
    let handle = OriginHandle { shared: shared.clone() };
    tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            let conn = match &tls {
                Some(config) => match crate::tls::accept(conn, config.clone()) {
                    Some(plain) => plain,
                    None => continue,
                },
                None => conn,
            };
            tokio::spawn(serve_connection(conn, shared.clone()));
        }
    });
    handle
}

/// Serves HTTPS: every connection from `listener` is TLS, terminated with `tls` (rustls),
/// and then answered exactly as [`spawn_origin`] answers plain HTTP.
pub fn spawn_tls_origin(
    listener: Listener,
    behaviour: OriginBehaviour,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> OriginHandle {
    spawn(listener, behaviour, Some(tls))
}
