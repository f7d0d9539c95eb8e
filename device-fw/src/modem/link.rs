//! The one TCP connection: its state, the notices that change it, and [`Socket`].

use embedded_io_async::{Read, Write};

use super::at::{AtError, CloseKind};
use super::reply::not_allowed;
use super::{CONNECT_BAD_HOST, Dialect, MAX_EMPTY_POLLS, MAX_HOST, Modem, sim7080, sim7080_tls, sim7600, sim7600_tls};
use crate::clock::Clock;
use crate::socket::{Socket, SocketError, TlsError};

/// Where the one TCP link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Never brought up, or the modem was lost: [`Modem::bring_up`] is needed.
    Down,
    /// The packet network is gone: [`Modem::bring_up`] is needed.
    NoNetwork,
    /// Up, no connection.
    Idle,
    /// Connected, no close notice seen.
    Open,
    /// A close notice was seen; what the modem still holds can be read out.
    Ending(End),
    /// Closed and read out: reads give the end result until `close`/`connect`.
    Ended(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Peer closed cleanly: `Ok(0)`.
    Eof,
    /// Reset or closed with possible loss: `Err(Closed)`.
    Reset,
    /// The packet network dropped: `Err(NetworkDown)`.
    NetworkDown,
}

impl End {
    pub(super) fn result(self) -> Result<usize, SocketError> {
        match self {
            End::Eof => Ok(0),
            End::Reset => Err(SocketError::Closed),
            End::NetworkDown => Err(SocketError::NetworkDown),
        }
    }
}

/// A read command's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    /// Payload bytes copied into the caller's buffer (0: the modem had nothing).
    pub(super) got: usize,
    /// The modem may hold more (SIM7600 `<rest>` > 0, SIM7080 a full block).
    pub(super) more: bool,
}

impl<U: Read + Write, C: Clock> Modem<U, C> {
    /// Folds the notices seen so far into the link state.
    pub(super) fn absorb(&mut self) {
        if self.at.events.restarted {
            self.modem_lost();
            return;
        }
        let ev = &mut self.at.events;
        if core::mem::take(&mut ev.network_down) {
            self.link = match self.link {
                Link::Open | Link::Ending(_) => Link::Ending(End::NetworkDown),
                Link::Ended(_) | Link::Idle => Link::NoNetwork,
                other => other,
            };
        }
        if let Some(kind) = ev.closed.take()
            && self.link == Link::Open
        {
            self.link = Link::Ending(match kind {
                CloseKind::PeerFin => End::Eof,
                CloseKind::Reset => End::Reset,
            });
        }
    }

    /// Maps an AT failure during a socket operation; the modem is lost unless it refused.
    pub(super) fn lost(&mut self, e: AtError) -> SocketError {
        match e {
            AtError::Protocol => SocketError::Protocol,
            AtError::CommandTooLong => SocketError::ConnectFailed(CONNECT_BAD_HOST),
            AtError::Rejected => SocketError::Protocol,
            AtError::Timeout | AtError::Restarted | AtError::Uart(_) => {
                self.modem_lost();
                SocketError::ModemLost
            }
        }
    }

    /// Nothing works until bring-up. Unless the modem proved that it rebooted (`RDY`), it may
    /// still hold the link (a hung command, a notice taken for a restart), which bring-up
    /// then closes so that the next connect does not find it busy.
    fn modem_lost(&mut self) {
        if self.link != Link::Down && !self.at.events.said_rdy {
            self.free_link = true;
        }
        self.link = Link::Down;
        self.maybe_data = false;
    }

    /// The modem refused the socket the driver holds open, with no close notice: it
    /// restarted without saying so (and kept echo off). Handled as a restart.
    pub(super) fn forgot_socket(&mut self) -> SocketError {
        self.at.stats.restarts_seen = self.at.stats.restarts_seen.saturating_add(1);
        self.lost(AtError::Restarted)
    }

    /// Whether a refused read or send says the modem does not know the socket: "operation
    /// not allowed", or (SIM7080, which answers `+CARECV: 0` when empty) any refusal of a
    /// read, or (SIM7600) a refused read without its `+IP ERROR: No data`.
    fn socket_unknown(&self, reading: bool) -> bool {
        let text = self.at.err_text.as_bytes();
        if self.at.verbose_error && not_allowed(text) {
            return true;
        }
        reading
            && match self.cfg.dialect {
                Dialect::Sim7600 => !text.starts_with(b"+IP ERROR"),
                Dialect::Sim7080 => true,
            }
    }

    /// Opens link 0 (`CIPOPEN` / `CAOPEN`) or, with `tls`, SSL session 0 (`CCHOPEN`) / connection
    /// 0 with SSL (`CAOPEN`).
    async fn open_link(&mut self, host: &str, port: u16, tls: bool) -> Result<(), SocketError> {
        self.absorb();
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        if self.link != Link::Idle {
            self.close().await;
            if let Some(e) = self.unusable() {
                return Err(e);
            }
        }
        if host.is_empty() || host.len() > MAX_HOST || !host.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"') {
            return Err(SocketError::ConnectFailed(CONNECT_BAD_HOST));
        }
        let ev = &mut self.at.events;
        ev.data_ready = false;
        ev.closed = None;
        ev.open_result = None;
        ev.close_done = false;
        self.tls = tls;
        let res = match self.cfg.dialect {
            Dialect::Sim7600 if tls => sim7600_tls::open(self, host, port).await,
            Dialect::Sim7600 => sim7600::open(self, host, port).await,
            Dialect::Sim7080 if tls => sim7080_tls::open(self, host, port).await,
            Dialect::Sim7080 => match sim7080_tls::plain(self).await {
                Ok(()) => sim7080::open(self, host, port).await,
                Err(e) => Err(e),
            },
        };
        self.absorb();
        if res.is_ok() {
            if let Some(e) = self.unusable() {
                return Err(e);
            }
            if self.link == Link::Idle {
                self.link = Link::Open;
            }
            // Ask once before relying on the data notice.
            self.maybe_data = true;
        }
        res
    }

    /// The error for an operation that needs a working modem and network.
    pub(super) fn unusable(&self) -> Option<SocketError> {
        match self.link {
            Link::Down => Some(SocketError::ModemLost),
            Link::NoNetwork | Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => {
                Some(SocketError::NetworkDown)
            }
            _ => None,
        }
    }
}

impl<U: Read + Write, C: Clock> Socket for Modem<U, C> {
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        self.open_link(host, port, false).await
    }

    async fn connect_tls(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        if !self.supports_tls() {
            return Err(SocketError::Tls(TlsError::NoCaCert));
        }
        self.open_link(host, port, true).await
    }

    fn supports_tls(&self) -> bool {
        self.cfg.ca_cert.is_some()
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        self.absorb();
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        match self.link {
            Link::Open => {}
            Link::Idle => return Err(SocketError::NotConnected),
            _ => return Err(SocketError::Closed),
        }
        for chunk in data.chunks(self.cfg.dialect.max_send()) {
            let res = match self.cfg.dialect {
                Dialect::Sim7600 if self.tls => sim7600_tls::send(self, chunk).await,
                Dialect::Sim7600 => sim7600::send(self, chunk).await,
                Dialect::Sim7080 => sim7080::send(self, chunk).await,
            };
            let res = match res {
                Err(AtError::Rejected) if self.link == Link::Open && self.socket_unknown(false) => {
                    Err(self.forgot_socket())
                }
                Err(AtError::Rejected) => Err(sim7600::send_refused(self)),
                Err(e) => Err(self.lost(e)),
                Ok(()) => Ok(()),
            };
            self.absorb();
            res?;
        }
        Ok(())
    }
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.absorb();
        match self.link {
            Link::Down => return Err(SocketError::ModemLost),
            Link::NoNetwork => return Err(SocketError::NetworkDown),
            Link::Idle => return Err(SocketError::NotConnected),
            Link::Ended(end) => return end.result(),
            Link::Open | Link::Ending(_) => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.at.deadline(self.cfg.read_timeout_us);
        let mut empty_polls = 0u8;
        loop {
            let ending = matches!(self.link, Link::Ending(_));
            if self.maybe_data || ending {
                let mut n = buf.len().min(self.cfg.effective_read_block());
                if self.tls && self.cfg.dialect == Dialect::Sim7080 {
                    n = n.min(sim7080_tls::MAX_READ);
                }
                self.at.events.data_ready = false;
                let res = match self.cfg.dialect {
                    Dialect::Sim7600 if self.tls => sim7600_tls::read(self, buf, n).await,
                    Dialect::Sim7600 => sim7600::read(self, buf, n).await,
                    Dialect::Sim7080 => sim7080::read(self, buf, n).await,
                };
                let chunk = match res {
                    Ok(chunk) => chunk,
                    Err(AtError::Rejected) if self.link == Link::Open && self.socket_unknown(true) => {
                        return Err(self.forgot_socket());
                    }
                    // Refused (`+IP ERROR: No data`, link already gone): nothing to read.
                    Err(AtError::Rejected) => Chunk { got: 0, more: false },
                    Err(e) => {
                        let err = self.lost(e);
                        self.absorb();
                        return Err(err);
                    }
                };
                self.maybe_data = chunk.more || self.at.events.data_ready;
                self.absorb();
                if self.link == Link::Down {
                    return Err(SocketError::ModemLost);
                }
                if chunk.got > 0 {
                    return Ok(chunk.got);
                }
                if let (true, Link::Ending(end)) = (ending, self.link) {
                    // Asked after the close notice and nothing was left.
                    self.link = Link::Ended(end);
                    self.maybe_data = false;
                    return end.result();
                }
                empty_polls += 1;
                if empty_polls >= MAX_EMPTY_POLLS {
                    // The modem keeps announcing data it does not hand out: stop asking
                    // and wait for a fresh notice (or the deadline).
                    self.maybe_data = false;
                    self.at.events.data_ready = false;
                } else if self.maybe_data || matches!(self.link, Link::Ending(_)) {
                    continue;
                }
            }
            let waited = self
                .at
                .wait_for(deadline, |ev| ev.data_ready || ev.closed.is_some() || ev.network_down)
                .await;
            match waited {
                Ok(()) => {
                    if self.at.events.data_ready {
                        self.maybe_data = true;
                    }
                    self.absorb();
                }
                Err(AtError::Timeout) => {
                    // In case a data notice was lost, ask first next time.
                    self.maybe_data = true;
                    return Err(SocketError::Timeout);
                }
                Err(e) => {
                    let err = self.lost(e);
                    self.absorb();
                    return Err(err);
                }
            }
        }
    }

    async fn close(&mut self) {
        self.absorb();
        match self.link {
            Link::Open | Link::Ending(End::Eof | End::Reset) | Link::Ended(End::Eof | End::Reset) => {
                let was_open = self.link == Link::Open;
                let res = match self.cfg.dialect {
                    Dialect::Sim7600 if self.tls => sim7600_tls::close(self, was_open).await,
                    Dialect::Sim7600 => sim7600::close(self, was_open).await,
                    Dialect::Sim7080 => sim7080::close(self, was_open).await,
                };
                if let Err(e) = res {
                    self.lost(e);
                }
                self.absorb();
                self.link = match self.link {
                    Link::Down | Link::NoNetwork => self.link,
                    Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => Link::NoNetwork,
                    _ => Link::Idle,
                };
            }
            Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => self.link = Link::NoNetwork,
            Link::Down | Link::NoNetwork | Link::Idle => {}
        }
        self.maybe_data = false;
        let ev = &mut self.at.events;
        ev.closed = None;
        ev.data_ready = false;
    }

    fn is_connected(&self) -> bool {
        self.link == Link::Open
    }

    /// A modem that rebooted or lost its packet network is brought up from scratch: sync,
    /// echo off, SIM, registration, attach.
    async fn listen(&mut self, us: u64) -> bool {
        let deadline = self.at.deadline(us);
        loop {
            match self.at.wait_for(deadline, |_| false).await {
                // Notices, a close, a lost network: recorded for the next operation.
                Err(AtError::Timeout) | Ok(()) => return true,
                // Seen now rather than at the next command's timeout.
                Err(AtError::Restarted) => {
                    let _ = self.lost(AtError::Restarted);
                }
                Err(e) => {
                    let _ = self.lost(e);
                    let left = deadline.saturating_sub(self.at.clock.now_us());
                    self.at.clock.sleep_us(left).await;
                    return true;
                }
            }
        }
    }

    async fn recover(&mut self) -> Result<(), SocketError> {
        self.bring_up().await.map(|_| ()).map_err(|_| SocketError::ModemLost)
    }
}
