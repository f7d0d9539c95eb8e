//! HTTPS for `otactl serve` (`--tls-cert`, `--tls-key`): rustls in front of the same axum
//! router, so a bench device (or a test) fetches over TLS exactly what it would fetch over
//! plain HTTP, with the same ETags, Range answers and report receiver.
//!
//! A failed handshake is the client's problem (a device with the wrong CA, a browser that
//! distrusts a throwaway certificate): it is logged on stderr with the peer and the reason,
//! because on a bench that line is how a user learns why a device refused the server, and
//! the server carries on.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A handshake that has not finished in this time is dropped, so that idle or hostile
/// connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("--tls-cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("--tls-key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--tls-key {key} does not go with --tls-cert {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Reads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or
/// SEC1), and makes the acceptor: TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let cert_error = |reason: String| TlsSetupError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(cert_error(
            "holds no CERTIFICATE block; pass the PEM certificate (chain), leaf first".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: key.to_path_buf(),
        reason: pem_reason(&e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsSetupError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read it: {io}"),
        rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM block of the expected kind".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Accepts TLS connections until `stop` resolves and serves each with `app`, the client's
/// address attached as axum's `ConnectInfo` (the report receiver's rate limit keys on it).
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    eprintln!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    eprintln!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            let service = TowerToHyperService::new(app.layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
