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
}

/// One TCP connection through the modem.
pub trait Socket {
    /// Opens a connection to `host:port`, closing any previous one first.
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError>;
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
}
