//! Real TLS on the bench network: rustls between a modem emulator's SSL client and an
//! origin that terminates TLS, and throwaway certificate authorities for both.
//!
//! The TLS records cross the emulated cellular link (its bandwidth, latency and NAT), so a
//! handshake costs its round trips and every record its header and tag in bench time. Each
//! end talks plaintext to its user (the modem's socket buffer, the origin's HTTP server)
//! through a [`Connection::local_pair`]; the layer in between ([`relay`]) passes FIN as
//! `close_notify` + FIN, a reset as a reset, and back-pressure both ways.

use std::io::{self, Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};

use crate::net::Connection;
use crate::pipe::PipeWriter;

/// Plaintext a layer holds between the wire and its user: one full TLS record, which a
/// modem must hold whole to check its tag anyway.
const PLAIN_CAPACITY: usize = 16 * 1024;

/// A throwaway certificate authority, as a fleet's own CA would be.
pub struct TestCa {
    /// The CA certificate (PEM): what the device is given as its trust anchor.
    pub cert_pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// How long a server certificate is valid, for the expiry cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// 2024-01-01 to 2099-12-31.
    Current,
    /// 2020-01-01 to 2021-01-01: expired.
    Expired,
}

/// A server's certificate chain and key, PEM.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`, with a fresh P-256 key.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A server certificate for `hosts`, signed by this CA.
    pub fn issue(&self, hosts: &[&str], validity: Validity) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, hosts.first().copied().unwrap_or("server"));
        let (from, until) = match validity {
            Validity::Current => ((2024, 1, 1), (2099, 12, 31)),
            Validity::Expired => ((2020, 1, 1), (2021, 1, 1)),
        };
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        ServerCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl ServerCert {
    /// The origin's rustls configuration: TLS 1.2 and 1.3, HTTP/1.1, as `otactl serve` makes.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server chain PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("server key PEM");
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// *ring*'s provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange,
/// which is beside the point here: the modems the bench emulates offer classic groups only.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a client configuration could not be made from what the modem holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the CA file holds no usable certificate")]
    NoCertificate,
    #[error("no TLS version both ends support")]
    Versions,
}

/// The clock a client checks certificate validity against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClock {
    /// The machine's: a modem whose clock follows the network.
    Network,
    /// A modem's real-time clock after power-on with no time from the network: SIMCom
    /// modules start at 1980-01-06 (the GPS epoch), before any certificate's validity.
    PowerOn,
}

/// 1980-01-06T00:00:00Z.
const POWER_ON_UNIX_S: u64 = 315_964_800;

#[derive(Debug)]
struct PowerOnClock;

impl rustls::time_provider::TimeProvider for PowerOnClock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(rustls::pki_types::UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(POWER_ON_UNIX_S),
        ))
    }
}

/// A client that trusts only the CA certificates in `ca_pem` and speaks `versions`, with
/// the machine's clock.
pub fn client_config(
    ca_pem: &[u8],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, TrustError> {
    client_config_at(ca_pem, versions, ClientClock::Network)
}

/// [`client_config`] checking validity against `clock`.
pub fn client_config_at(
    ca_pem: &[u8],
    versions: &[&'static SupportedProtocolVersion],
    clock: ClientClock,
) -> Result<Arc<ClientConfig>, TrustError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|_| TrustError::NoCertificate)?;
        roots.add(cert).map_err(|_| TrustError::NoCertificate)?;
    }
    if roots.is_empty() {
        return Err(TrustError::NoCertificate);
    }
    let time: Arc<dyn rustls::time_provider::TimeProvider> = match clock {
        ClientClock::Network => Arc::new(rustls::time_provider::DefaultTimeProvider),
        ClientClock::PowerOn => Arc::new(PowerOnClock),
    };
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|_| TrustError::NoCertificate)?;
    let config = ClientConfig::builder_with_details(provider(), time)
        .with_protocol_versions(versions)
        .map_err(|_| TrustError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ModemVerifier { inner }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a modem's certificate check refused the server, as far as a modem's result codes can
/// tell (SIM7080 `+CAOPEN` 24, 25, 26, 27; the SIM7600 has one code for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Outside its validity by the modem's clock.
    Expired,
    /// Not valid for the host name connected to.
    WrongHost,
    /// Both.
    ExpiredWrongHost,
    /// Any other failure: an unknown CA, a bad signature, no common version or cipher suite,
    /// an alert from the server.
    Other,
}

impl Refusal {
    /// What the failed handshake's error was.
    pub fn of(e: &rustls::Error) -> Refusal {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                    Refusal::Expired
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => Refusal::WrongHost,
                C::Other(other) if other.0.downcast_ref::<ExpiredForAnotherHost>().is_some() => {
                    Refusal::ExpiredWrongHost
                }
                _ => Refusal::Other,
            },
            _ => Refusal::Other,
        }
    }
}

/// A certificate that fails both the validity and the name check: webpki stops at the
/// first, a modem reports both (SIM7080 `+CAOPEN: <cid>,26`).
#[derive(Debug, thiserror::Error)]
#[error("certificate expired and not valid for the host name")]
struct ExpiredForAnotherHost;

/// webpki's checks, plus the name check after an expiry so that both failures show.
#[derive(Debug)]
struct ModemVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ModemVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let res = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match res {
            Err(e) if Refusal::of(&e) == Refusal::Expired => {
                let name_ok = ParsedCertificate::try_from(end_entity)
                    .is_ok_and(|cert| rustls::client::verify_server_name(&cert, server_name).is_ok());
                match name_ok {
                    true => Err(e),
                    false => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                        rustls::OtherError(Arc::new(ExpiredForAnotherHost)),
                    ))),
                }
            }
            res => res,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What crossed one side's wire, for the airtime a TLS session costs over its plaintext.
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// TLS bytes received from the network: handshake, record headers and tags included.
    pub wire_in: AtomicU64,
    /// Plaintext those records carried.
    pub plain_in: AtomicU64,
    /// Handshakes completed.
    pub handshakes: AtomicU64,
}

impl TlsCounters {
    /// Bytes received beyond the plaintext: the handshake and the record overhead.
    pub fn overhead_in(&self) -> u64 {
        self.wire_in
            .load(Ordering::Relaxed)
            .saturating_sub(self.plain_in.load(Ordering::Relaxed))
    }
}

/// How a client handshake ended when it did not succeed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The TLS layer refused: a certificate check, a version, an alert from the server.
    Tls(rustls::Error),
    /// The connection closed or was reset before the handshake finished.
    Closed,
}

/// Runs a client handshake for `host` over `net`, `sni` saying whether the host name goes
/// in the ClientHello (the name is checked against the certificate either way). On
/// success the returned [`Connection`] carries plaintext.
pub async fn connect(
    mut net: Connection,
    config: Arc<ClientConfig>,
    host: &str,
    sni: bool,
    counters: Arc<TlsCounters>,
) -> Result<Connection, HandshakeError> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| HandshakeError::Closed)?;
    let mut config = (*config).clone();
    config.enable_sni = sni;
    let client = rustls::ClientConnection::new(Arc::new(config), name).map_err(HandshakeError::Tls)?;
    let mut tls = rustls::Connection::Client(client);
    let mut buf = vec![0u8; 4096];
    while tls.is_handshaking() {
        if flush(&mut tls, &net.writer).await.is_err() {
            return Err(HandshakeError::Closed);
        }
        let n = match net.read(&mut buf).await {
            Ok(0) | Err(_) => return Err(HandshakeError::Closed),
            Ok(n) => n,
        };
        counters.wire_in.fetch_add(n as u64, Ordering::Relaxed);
        if let Err(e) = feed(&mut tls, &buf[..n]) {
            // The alert goes out before the connection closes, as a TLS stack sends it.
            let _ = flush(&mut tls, &net.writer).await;
            net.shutdown();
            return Err(HandshakeError::Tls(e));
        }
    }
    if flush(&mut tls, &net.writer).await.is_err() {
        return Err(HandshakeError::Closed);
    }
    counters.handshakes.fetch_add(1, Ordering::Relaxed);
    Ok(relay(net, tls, counters))
}

/// Terminates TLS on an accepted connection: the returned [`Connection`] carries the
/// plaintext. A failed handshake resets it.
pub fn accept(net: Connection, config: Arc<ServerConfig>) -> Option<Connection> {
    let server = rustls::ServerConnection::new(config).ok()?;
    Some(relay(net, rustls::Connection::Server(server), Arc::default()))
}

/// Puts `tls` between `net` and a new plaintext connection, returned.
fn relay(net: Connection, tls: rustls::Connection, counters: Arc<TlsCounters>) -> Connection {
    let (outer, inner) = Connection::local_pair(PLAIN_CAPACITY);
    tokio::spawn(run_relay(net, tls, inner, counters));
    outer
}

/// Writes every TLS record `tls` has ready to `net`.
async fn flush(tls: &mut rustls::Connection, tx: &PipeWriter) -> Result<(), ()> {
    while tls.wants_write() {
        let mut out = Vec::new();
        tls.write_tls(&mut out).map_err(|_| ())?;
        tx.write(&out).await.map_err(|_| ())?;
    }
    Ok(())
}

/// Gives `tls` bytes from the wire.
fn feed(tls: &mut rustls::Connection, mut data: &[u8]) -> Result<(), rustls::Error> {
    while !data.is_empty() {
        if tls.read_tls(&mut data).is_err() {
            return Err(rustls::Error::General("TLS receive buffer full".into()));
        }
        tls.process_new_packets()?;
    }
    Ok(())
}

/// What the plaintext side may read now: `Ok(None)` nothing yet, `Ok(Some(0))` the peer's
/// `close_notify`.
fn plaintext(tls: &mut rustls::Connection, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match tls.reader().read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

async fn run_relay(net: Connection, mut tls: rustls::Connection, mut plain: Connection, counters: Arc<TlsCounters>) {
    let Connection {
        reader: mut net_rx,
        writer: net_tx,
        ..
    } = net;
    let mut plain_rx_open = true;
    let mut net_rx_open = true;
    let mut wire = vec![0u8; 4096];
    let mut user = vec![0u8; 4096];
    let mut clear = vec![0u8; 4096];
    loop {
        if flush(&mut tls, &net_tx).await.is_err() {
            plain.abort();
            return;
        }
        if !plain_rx_open && !net_rx_open {
            return;
        }
        tokio::select! {
            r = net_rx.read(&mut wire), if net_rx_open => match r {
                Ok(0) => {
                    net_rx_open = false;
                    plain.shutdown();
                }
                Ok(n) => {
                    counters.wire_in.fetch_add(n as u64, Ordering::Relaxed);
                    if feed(&mut tls, &wire[..n]).is_err() {
                        let _ = flush(&mut tls, &net_tx).await;
                        net_tx.control().reset();
                        plain.abort();
                        return;
                    }
                    loop {
                        match plaintext(&mut tls, &mut clear) {
                            Ok(None) => break,
                            Ok(Some(0)) => {
                                plain.shutdown();
                                break;
                            }
                            Ok(Some(k)) => {
                                counters.plain_in.fetch_add(k as u64, Ordering::Relaxed);
                                if plain.write(&clear[..k]).await.is_err() {
                                    net_tx.control().reset();
                                    return;
                                }
                            }
                            Err(_) => {
                                plain.abort();
                                net_tx.control().reset();
                                return;
                            }
                        }
                    }
                }
                Err(_) => {
                    plain.abort();
                    return;
                }
            },
            r = plain.reader.read(&mut user), if plain_rx_open => match r {
                Ok(0) => {
                    plain_rx_open = false;
                    tls.send_close_notify();
                    let _ = flush(&mut tls, &net_tx).await;
                    net_tx.close();
                }
                Ok(n) => {
                    if tls.writer().write_all(&user[..n]).is_err() {
                        net_tx.control().reset();
                        plain.abort();
                        return;
                    }
                }
                Err(_) => {
                    net_tx.control().reset();
                    net_rx.control().reset();
                    return;
                }
            },
        }
    }
}
