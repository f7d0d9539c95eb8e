//! The byte stream the modem offers: one TCP connection at a time.
//!
//! The HTTP client is written against this trait, not against a modem dialect, so the
//! same client runs over SIM7600 `CIP*`, SIM7080 `CA*`, a later data-mode link or a test
//! double.

/// Why a socket operation failed. Every variant is recoverable by reconnecting, except
/// where the modem itself is gone, which the caller handles by bringing the modem up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// No connection is open (never opened, or already closed by us).
    #[error("socket is not connected")]
    NotConnected,
    /// The peer (or a NAT in between) closed or reset the connection; unread data is gone.
    #[error("connection closed by the network")]
    Closed,
    /// Opening the connection failed (DNS, refused, no route); the modem's code is kept.
    #[error("connect failed (modem code {0})")]
    ConnectFailed(u16),
    /// Nothing arrived within the read deadline.
    #[error("no data within the read deadline")]
    Timeout,
    /// The packet data network went away (`+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`, PDP deact).
    #[error("packet data network lost")]
    NetworkDown,
    /// The modem rebooted (`RDY` seen) or stopped answering; it must be brought up again.
    #[error("modem restarted or stopped answering")]
    ModemLost,
    /// The modem answered with something the driver did not expect.
    #[error("unexpected modem reply")]
    Protocol,
    /// The TLS session could not be set up; trying again cannot help until the certificate,
    /// the trust anchor or the URL changes.
    #[error("TLS failed: {0}")]
    Tls(TlsError),
}

/// Why a TLS session through the modem's own TLS stack failed.
///
/// The driver keeps what the modem can tell apart, and no more. The SIMCom SIM7600 reports
/// every failed handshake with one code (15, "handshake error"): an unknown CA, a
/// certificate for another host name and an expired certificate all are [`TlsError::Handshake`].
/// The SIM7080 names an expired certificate (`+CAOPEN: 0,24`) and one for another host
/// (25, or 26 for both) apart from the other failures (27, an unknown CA among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake failed (SIM7600 `+CCHOPEN: 0,15`, SIM7080 `+CAOPEN: 0,27`): the
    /// server's certificate does not chain to the trusted CA, or no common protocol version
    /// or cipher suite was found; on the SIM7600 also a certificate for another host or an
    /// expired one.
    #[error(
        "TLS handshake failed: the server certificate is not signed by the CA the device trusts, \
         is for another host name or has expired (the modem does not say which)"
    )]
    Handshake,
    /// The server's certificate has expired, or is not valid yet by the modem's clock
    /// (SIM7080 `+CAOPEN: 0,24`).
    #[error(
        "TLS refused: the server certificate has expired (or the modem's clock, which follows the \
         network's time, is wrong); renew the server's certificate"
    )]
    Expired,
    /// The server's certificate names another host (SIM7080 `+CAOPEN: 0,25`, or 26 when it
    /// has also expired).
    #[error(
        "TLS refused: the server certificate is for another host name than the URL's; fix the \
         URL or the server's certificate"
    )]
    WrongHost,
    /// The modem has no CA certificate to check the server with (`+CCHOPEN: 0,19`), or the
    /// device was built without one.
    #[error("no CA certificate is set on the modem; configure the trust anchor")]
    NoCaCert,
    /// The modem refused the CA certificate download (`AT+CCERTDOWN`, `AT+CFSWFILE`, the
    /// `convert`) or its TLS settings.
    #[error("the modem refused the CA certificate or the TLS settings")]
    Setup,
    /// `https://` asked of a socket that has no TLS stack.
    #[error("this modem dialect has no TLS client in this driver")]
    Unsupported,
}

impl TlsError {
    /// The short code the update path reports (console events, outcome reports).
    pub fn code(self) -> &'static str {
        match self {
            TlsError::Handshake => "tls-handshake-failed",
            TlsError::Expired => "tls-cert-expired",
            TlsError::WrongHost => "tls-wrong-host",
            TlsError::NoCaCert => "tls-no-ca-cert",
            TlsError::Setup => "tls-setup-refused",
            TlsError::Unsupported => "tls-unsupported",
        }
    }
}

/// One TCP connection through the modem.
pub trait Socket {
    /// Opens a connection to `host:port`, closing any previous one first.
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError>;
    /// Opens a TLS connection to `host:port` (server certificate checked against the
    /// trusted CA, `host` sent as SNI), closing any previous one first. Reads and writes
    /// then carry plaintext. Sockets without a TLS stack keep this default.
    async fn connect_tls(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        let _ = (host, port);
        Err(SocketError::Tls(TlsError::Unsupported))
    }
    /// Whether [`Socket::connect_tls`] can work, so that an `https://` URL (or a redirect to
    /// one) fails at once with a clear error on a socket that cannot.
    fn supports_tls(&self) -> bool {
        false
    }
    /// Sends all of `data`.
    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError>;
    /// Reads at most `buf.len()` bytes, waiting up to the socket's read deadline for the
    /// first one. `Ok(0)` means the peer closed the connection and nothing is left to read.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError>;
    /// Closes the connection; unread data is discarded. Never fails: a socket that is
    /// already gone is closed.
    async fn close(&mut self);
    /// Whether a connection is believed open (no close notice seen since `connect`).
    fn is_connected(&self) -> bool;
    /// Brings the link layer back after `NetworkDown` or `ModemLost` (modem bring-up,
    /// packet data attach). Stacks that cannot lose it need not override this.
    async fn recover(&mut self) -> Result<(), SocketError> {
        Ok(())
    }
    /// Spends `us` microseconds reading what the transport says unasked, and returns `true`;
    /// the engine waits here between attempts. A modem's UART has only the chip's 128-byte
    /// FIFO, which nothing but a pending read drains: a bare sleep lets the notices of a
    /// 30-second backoff overflow it, and a restart notice among them goes unseen. A
    /// transport with nothing to read returns `false` at once, and the caller sleeps.
    async fn listen(&mut self, us: u64) -> bool {
        let _ = us;
        false
    }
}
