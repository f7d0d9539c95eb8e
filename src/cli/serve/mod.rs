//! `otactl serve`: a file bucket over HTTP, or HTTPS with `--tls-cert`/`--tls-key`
//! ([`tls`]), so a bench device can update from a laptop.
//!
//! The signed manifest, not the transport, protects what devices install; HTTPS is there
//! for the fleets whose servers refuse port 80 and for testing the devices' TLS. The files are served by
//! tower-http's `ServeDir` (Range, `If-Modified-Since`, content types); in front of it this
//! module adds what a device or a CDN in front of this origin needs and `ServeDir` lacks:
//! strong ETags with `If-None-Match` (and `If-Range`), `Cache-Control` (a manifest must be
//! revalidated, an image never changes under its name), and a second line of defence for
//! the bucket's boundary: no `..`, no hidden files (the channel locks and staging files of
//! `otactl release`), no symlink leading outside, nothing under `reports/` (device ids are
//! not public).
//!
//! `POST /reports` takes the devices' outcome reports ([`crate::receiver`]) and stores
//! them through [`crate::bucket`], by default under the served bucket's `reports/`, for
//! `otactl rollout status`, `advance` and `check`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use clap::Args;
use miette::Diagnostic;
use tower_http::services::ServeDir;

use crate::bucket::{Bucket, Kind, Location};
use crate::receiver::{self, Rates, Receiver};
use crate::reports;

mod tls;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The file bucket to serve: file:///path, or a relative path.
    #[arg(long, value_name = "URL")]
    bucket: String,

    /// Address to listen on; port 0 picks a free one. Use 0.0.0.0:8080 (or the laptop's LAN
    /// address) for a device on the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Bucket to store the outcome reports devices POST to /reports in (file://, s3://,
    /// gs://, az://) [default: the served bucket, whose reports/ this server never serves].
    #[arg(long, value_name = "URL")]
    reports: Option<String>,

    /// Endpoint of an S3-compatible store or of Azurite for --reports; AWS_ENDPOINT_URL
    /// works too.
    #[arg(long, value_name = "URL", requires = "reports")]
    endpoint: Option<String>,

    /// Do not accept reports (POST /reports answers 404).
    #[arg(long, conflicts_with = "reports")]
    no_reports: bool,

    /// Reports accepted per minute from one source address (an IPv6 /64); a minute's worth
    /// may come at once. Devices behind a carrier's NAT share one.
    #[arg(long, value_name = "N", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    reports_per_source: u32,

    /// Serve HTTPS with this PEM certificate (chain, leaf first) instead of plain HTTP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Reports accepted per minute from all sources together.
    #[arg(long, value_name = "N", default_value_t = 1200, value_parser = clap::value_parser!(u32).range(1..))]
    reports_per_minute: u32,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
enum ServeError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Bucket(#[from] crate::bucket::BucketError),

    #[error("{url} is not a local directory; otactl serve serves file:// buckets")]
    #[diagnostic(
        code(otactl::serve::not_local),
        help("cloud buckets have their own HTTP endpoints (a public bucket, a CDN); point devices there")
    )]
    NotLocal { url: String },

    #[error("{path} is not a directory")]
    #[diagnostic(
        code(otactl::serve::missing),
        help("publish a release into it first: otactl release --bucket file://… ")
    )]
    Missing { path: String },

    #[error("cannot listen on {addr}: {reason}")]
    #[diagnostic(code(otactl::serve::listen), help("pick another port, or port 0 for a free one"))]
    Listen { addr: SocketAddr, reason: String },

    #[error("--reports {path} is inside the served directory, where its reports would be served")]
    #[diagnostic(
        code(otactl::serve::reports_served),
        help(
            "device ids in reports are not public: leave --reports out (the served bucket's reports/ is never served) or store them outside the served directory"
        )
    )]
    ReportsServed { path: String },

    #[error(transparent)]
    #[diagnostic(
        code(otactl::serve::tls),
        help(
            "pass a PEM certificate (chain, leaf first) and its PEM private key; `openssl x509 -in FILE -noout -text` shows what a certificate holds"
        )
    )]
    Tls(#[from] tls::TlsSetupError),

    #[error("the server stopped: {0}")]
    #[diagnostic(code(otactl::serve::io))]
    Io(String),
}

pub fn run(args: ServeArgs) -> ExitCode {
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::from(2)
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), ServeError> {
    let location = Location::parse(&args.bucket, Path::new("."))?;
    let Kind::File { root } = &location.kind else {
        return Err(ServeError::NotLocal { url: location.url() });
    };
    let root = std::path::absolute(root).unwrap_or_else(|_| root.clone());
    let root = root.canonicalize().map_err(|_| ServeError::Missing {
        path: root.display().to_string(),
    })?;
    if !root.is_dir() {
        return Err(ServeError::Missing {
            path: root.display().to_string(),
        });
    }
    let receiver = if args.no_reports {
        None
    } else {
        let (location, endpoint) = match &args.reports {
            Some(url) => (Location::parse(url, Path::new("."))?, args.endpoint.as_deref()),
            None => (
                Location {
                    kind: Kind::File { root: root.clone() },
                    prefix: String::new(),
                },
                None,
            ),
        };
        // Only the served bucket's own `reports/` is kept from GETs; another folder inside
        // it would be served like any file.
        if let Kind::File { root: dir } = &location.kind
            && let Ok(dir) = std::path::absolute(dir)
            && dir != root
            && dir.starts_with(&root)
        {
            return Err(ServeError::ReportsServed {
                path: dir.display().to_string(),
            });
        }
        let bucket = Bucket::open(&location, endpoint, true)?;
        let rates = Rates {
            per_source: args.reports_per_source,
            total: args.reports_per_minute,
        };
        Some(Arc::new(Receiver::new(bucket, root.clone(), rates)))
    };
    // Before binding: a bad certificate is an error at start, not at the first request.
    let acceptor = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| ServeError::Listen {
                addr: args.addr,
                reason: e.to_string(),
            })?;
        let local = listener.local_addr().map_err(|e| ServeError::Io(e.to_string()))?;
        let stop = shutdown()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        announce(&root, scheme, local, receiver.as_deref());
        let files = Router::new()
            .fallback_service(ServeDir::new(&root).append_index_html_on_directories(false))
            .layer(middleware::from_fn_with_state(Arc::new(root.clone()), guard));
        let app = match receiver {
            Some(receiver) => Router::new()
                .route("/reports", post(receiver::post))
                .with_state(receiver)
                .fallback_service(files),
            None => files,
        };
        match acceptor {
            Some(acceptor) => {
                tls::serve(listener, acceptor, app, stop).await;
                Ok(())
            }
            None => axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stop)
                .await
                .map_err(|e| ServeError::Io(e.to_string())),
        }
    })
}

/// The first stdout line is `serving <dir> on http://<addr>/` (or `https://`): scripts and
/// tests read the bound address (port 0) from it.
fn announce(root: &Path, scheme: &str, local: SocketAddr, receiver: Option<&Receiver>) {
    let base = format!("{scheme}://{local}/");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "serving {} on {base}", root.display());
    let mut channels: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    channels.sort();
    for channel in channels {
        let _ = writeln!(out, "  channel {channel}: {base}{channel}/manifest.json");
    }
    if let Some(r) = receiver {
        let _ = writeln!(
            out,
            "  reports: POST {base}reports, stored in {}/{}/",
            r.reports.url(),
            reports::FOLDER
        );
    }
    if local.ip().is_unspecified() {
        let _ = writeln!(
            out,
            "  listening on every interface: devices use this machine's address instead of {}",
            local.ip()
        );
    }
    let _ = writeln!(out, "Ctrl-C stops it");
    let _ = out.flush();
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: a signal sent right after the address is printed
/// must stop the server, not kill the process.
fn shutdown() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind| signal(kind).map_err(|e| ServeError::Io(format!("cannot handle signals: {e}")));
    let mut interrupt = handler(SignalKind::interrupt())?;
    let mut terminate = handler(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// What a request path names inside the bucket.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// An existing file inside the bucket.
    File(PathBuf),
    /// Nothing that needs our headers (missing, a directory): `ServeDir` answers.
    Other,
    /// Outside the bucket, hidden, or undecodable: 404 without looking further.
    Refused,
}

fn percent_decode(text: &str) -> Option<String> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn resolve(root: &Path, uri_path: &str) -> Target {
    let Some(decoded) = percent_decode(uri_path) else {
        return Target::Refused;
    };
    let mut path = root.to_path_buf();
    for (n, segment) in decoded.split('/').filter(|s| !s.is_empty()).enumerate() {
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return Target::Refused;
        }
        // Outcome reports carry device ids, which are not public.
        if n == 0 && segment == reports::FOLDER {
            return Target::Refused;
        }
        path.push(segment);
    }
    if !path.is_file() {
        return Target::Other;
    }
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Target::File(path),
        _ => Target::Refused,
    }
}

/// A strong validator: a release replaces a file by renaming a new one over it, which
/// changes its modification time, and images never change under their name.
fn etag_of(meta: &std::fs::Metadata) -> Option<String> {
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!("\"{:x}-{:x}\"", meta.len(), mtime.as_nanos()))
}

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`.
fn none_match(headers: &HeaderMap, etag: &str) -> Option<bool> {
    let value = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag),
    )
}

fn cache_control(path: &Path) -> &'static str {
    if path.file_name().is_some_and(|n| n == "manifest.json") {
        "no-cache"
    } else if path.parent().and_then(Path::file_name).is_some_and(|d| d == "images") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

async fn guard(State(root): State<Arc<PathBuf>>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let response = match resolve(&root, &path) {
        Target::Refused => StatusCode::NOT_FOUND.into_response(),
        Target::Other => next.run(request).await,
        Target::File(file) if method == Method::GET || method == Method::HEAD => {
            let etag = std::fs::metadata(&file).ok().as_ref().and_then(etag_of);
            match etag {
                Some(etag) => {
                    let headers = request.headers_mut();
                    let not_modified = match none_match(headers, &etag) {
                        Some(matched) => {
                            // RFC 9110 §13.2.2: If-None-Match decides; If-Modified-Since is
                            // not looked at when it is present.
                            headers.remove(header::IF_MODIFIED_SINCE);
                            matched
                        }
                        None => false,
                    };
                    // A Range under an If-Range that is not this version would splice two
                    // versions of the file together: send the whole file instead.
                    if headers
                        .get(header::IF_RANGE)
                        .is_some_and(|v| v.to_str().map_or(true, |v| v != etag))
                    {
                        headers.remove(header::RANGE);
                    }
                    let mut response = if not_modified {
                        Response::builder()
                            .status(StatusCode::NOT_MODIFIED)
                            .body(Body::empty())
                            .unwrap_or_default()
                    } else {
                        next.run(request).await
                    };
                    if matches!(
                        response.status(),
                        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
                    ) {
                        let h = response.headers_mut();
                        if let Ok(value) = HeaderValue::from_str(&etag) {
                            h.insert(header::ETAG, value);
                        }
                        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control(&file)));
                    }
                    response
                }
                None => next.run(request).await,
            }
        }
        Target::File(_) => next.run(request).await,
    };
    eprintln!("{method} {path}{range} {}", response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bucket");
        std::fs::create_dir_all(root.join("stable")).unwrap();
        std::fs::write(root.join("stable/manifest.json"), b"{}").unwrap();
        std::fs::write(root.join("stable/.manifest.json.lock"), b"").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, "/stable/manifest.json"),
            Target::File(root.join("stable/manifest.json"))
        );
        assert_eq!(
            resolve(&root, "/stable/%6danifest.json"),
            Target::File(root.join("stable/manifest.json"))
        );
        for bad in [
            "/../secret",
            "/%2e%2e/secret",
            "/stable/%2E%2E/%2e%2e/secret",
            "/..%2fsecret",
            "/stable/.manifest.json.lock",
            "/stable/%2emanifest.json.lock",
            "/%zz",
            "/a%00b",
        ] {
            assert_eq!(resolve(&root, bad), Target::Refused, "{bad}");
        }
        std::fs::create_dir_all(root.join("reports/field-logger")).unwrap();
        std::fs::write(root.join("reports/field-logger/r.json"), b"{}").unwrap();
        for hidden in [
            "/reports",
            "/reports/",
            "/reports/field-logger/r.json",
            "//reports/field-logger/r.json",
            "/%72eports/field-logger/r.json",
        ] {
            assert_eq!(resolve(&root, hidden), Target::Refused, "{hidden}");
        }
        assert_eq!(resolve(&root, "/stable"), Target::Other);
        assert_eq!(resolve(&root, "/missing.bin"), Target::Other);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
            assert_eq!(resolve(&root, "/link"), Target::Refused);
        }
    }

    #[test]
    fn if_none_match_lists() {
        let mut h = HeaderMap::new();
        assert_eq!(none_match(&h, "\"a\""), None);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"b\", W/\"a\""));
        assert_eq!(none_match(&h, "\"a\""), Some(true));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"b\""));
        assert_eq!(none_match(&h, "\"a\""), Some(false));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(none_match(&h, "\"a\""), Some(true));
    }
}
