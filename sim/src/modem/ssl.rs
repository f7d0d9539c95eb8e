//! What both modems' TLS stacks share: the rules for a certificate file's name, and a
//! session's handshake with the modem's certificate checks ([`crate::tls`]). Each dialect
//! keeps its own commands, state and result codes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::SupportedProtocolVersion;

use crate::net::Connection;
use crate::tls::{self, ClientClock, HandshakeError, Refusal, TlsCounters};

/// A file name the modem's file system takes: printable, no quote or path separator.
pub(super) fn file_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 108
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"\"/\\".contains(&b))
}

/// Certificate files in the modem's flash: they survive restarts, and every write is
/// counted, as flash wear a normal boot must not cause.
#[derive(Debug, Default)]
pub(super) struct CertFiles {
    pub(super) files: BTreeMap<String, Vec<u8>>,
    pub(super) writes: u64,
}

impl CertFiles {
    pub(super) fn write(&mut self, name: String, data: Vec<u8>) {
        self.files.insert(name, data);
        self.writes += 1;
    }
}

/// What a session connects with: the CA file's bytes, the versions its context allows,
/// whether the host goes out as SNI, and the clock certificates are checked against.
#[derive(Debug, Clone)]
pub(super) struct Trust {
    pub(super) ca_pem: Vec<u8>,
    pub(super) versions: Vec<&'static SupportedProtocolVersion>,
    pub(super) sni: bool,
    /// The modem's clock follows the network's time (SIM7600 `AT+CTZU=1`, SIM7080
    /// `AT+CLTS=1`); otherwise it shows its power-on date, 1980.
    pub(super) network_time: bool,
}

/// How a session's setup ended when it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failed {
    /// The CA file holds no certificate, or no version is allowed.
    Config,
    /// The modem's certificate checks (or the server) refused.
    Refused(Refusal),
    /// The connection closed or was reset during the handshake.
    Closed,
}

/// The TLS handshake over `conn` for `host`, as the modem makes it: trusting only
/// `trust.ca_pem`, the host checked against the certificate and (with SNI) sent. On
/// success the returned connection carries plaintext.
pub(super) async fn handshake(
    conn: Connection,
    trust: &Trust,
    host: &str,
    counters: Arc<TlsCounters>,
) -> Result<Connection, Failed> {
    let clock = match trust.network_time {
        true => ClientClock::Network,
        false => ClientClock::PowerOn,
    };
    let Ok(config) = tls::client_config_at(&trust.ca_pem, &trust.versions, clock) else {
        conn.abort();
        return Err(Failed::Config);
    };
    match tls::connect(conn, config, host, trust.sni, counters).await {
        Ok(plain) => Ok(plain),
        Err(HandshakeError::Tls(e)) => Err(Failed::Refused(Refusal::of(&e))),
        Err(HandshakeError::Closed) => Err(Failed::Closed),
    }
}
