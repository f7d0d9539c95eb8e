//! SIMCom SIM7600 (`CIP*` stack, manual receive).
//!
//! Attach: `AT+NETOPEN` → `OK`, then `+NETOPEN: 0` (already open: `+IP ERROR: Network is
//! already opened` + `ERROR`, which is success); `AT+CIPRXGET=1` selects manual receive.
//! Link 0 only: `AT+CIPOPEN=0,"TCP","<host>",<port>` → `OK` then `+CIPOPEN: 0,<err>`;
//! `AT+CIPSEND=0,<n>` → `>` → n bytes → `OK`; `AT+CIPRXGET=2,0,<n>` →
//! `+CIPRXGET: 2,0,<read>,<rest>` + raw bytes + `OK` (nothing: `+IP ERROR: No data` +
//! `ERROR`); `AT+CIPCLOSE=0` → `OK` then `+CIPCLOSE: 0,0`.

use embedded_io_async::{Read, Write};

use super::at::{AtError, CloseKind, Probe, Take};
use super::reply::{Fields, after};
use super::{CONNECT_NO_CODE, Chunk, Modem, ModemError};
use crate::clock::Clock;
use crate::socket::SocketError;

/// Opens the packet network and selects manual receive.
pub(super) async fn attach<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), ModemError> {
    m.at.events.net_open = None;
    let t = m.cfg.command_timeout_us;
    match m.at.command(format_args!("AT+NETOPEN"), t, &mut |_| Take::No).await {
        Ok(()) => {
            let end = m.at.deadline(m.cfg.connect_timeout_us);
            match m.at.wait_for(end, |ev| ev.net_open.is_some()).await {
                Ok(()) => match m.at.events.net_open {
                    Some(0) => {}
                    Some(code) => {
                        return Err(ModemError::AttachFailed {
                            command: "+NETOPEN",
                            code,
                        });
                    }
                    None => return Err(m.protocol("AT+NETOPEN")),
                },
                Err(AtError::Timeout) => {
                    return Err(ModemError::Timeout {
                        command: "+NETOPEN",
                        ms: m.cfg.connect_timeout_us / 1000,
                    });
                }
                Err(e) => return Err(m.at_error("AT+NETOPEN", e)),
            }
        }
        Err(AtError::Rejected) if contains_ignore_case(m.at.err_text.as_bytes(), b"already opened") => {}
        Err(AtError::Rejected) => {
            // A bare `ERROR` (seen when the context is busy): open already?
            let refused = m.at.err_text.clone();
            let mut open = None;
            m.cmd(
                "AT+NETOPEN?",
                format_args!("AT+NETOPEN?"),
                &mut |line| match after(line, b"+NETOPEN:") {
                    Some(rest) => {
                        open = Fields(rest).num();
                        Take::Yes
                    }
                    None => Take::No,
                },
            )
            .await?;
            if open != Some(1) {
                return Err(ModemError::CommandFailed {
                    command: "AT+NETOPEN",
                    reply: refused,
                });
            }
        }
        Err(e) => return Err(m.at_error("AT+NETOPEN", e)),
    }
    m.cmd("AT+CIPRXGET=1", format_args!("AT+CIPRXGET=1"), &mut |_| Take::No)
        .await
}

/// Opens link 0.
pub(super) async fn open<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    host: &str,
    port: u16,
) -> Result<(), SocketError> {
    let t = m.cfg.command_timeout_us;
    match m
        .at
        .command(format_args!("AT+CIPOPEN=0,\"TCP\",\"{host}\",{port}"), t, &mut |_| {
            Take::No
        })
        .await
    {
        Ok(()) => {}
        // Immediate failure: `+CIPOPEN: 0,<err>` + `ERROR`.
        Err(AtError::Rejected) => {
            let code = m.at.events.open_result.filter(|&c| c != 0).unwrap_or(CONNECT_NO_CODE);
            return Err(SocketError::ConnectFailed(code));
        }
        Err(e) => return Err(m.lost(e)),
    }
    let end = m.at.deadline(m.cfg.connect_timeout_us);
    match m
        .at
        .wait_for(end, |ev| ev.open_result.is_some() || ev.network_down)
        .await
    {
        Ok(()) => match m.at.events.open_result {
            Some(0) => Ok(()),
            Some(code) => Err(SocketError::ConnectFailed(code)),
            None => Err(SocketError::NetworkDown),
        },
        Err(AtError::Timeout) => {
            // Stop the attempt so the link is free for the next one; a result that comes
            // with the close is the modem's answer after all.
            if let Err(e) = close(m, true).await {
                return Err(m.lost(e));
            }
            Err(super::late_result(m.at.events.open_result))
        }
        Err(e) => Err(m.lost(e)),
    }
}

/// Sends one chunk (at most 1460 bytes).
pub(super) async fn send<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, chunk: &[u8]) -> Result<(), AtError> {
    m.at.send_prompted(
        format_args!("AT+CIPSEND=0,{}", chunk.len()),
        chunk,
        m.cfg.command_timeout_us,
    )
    .await
}

/// A refused send: `+CIPERROR: 4` (or a network notice) means the network is gone,
/// anything else that the link is. Both dialects. A close notice read before the refusal
/// explains it: the peer (or a NAT) ended the link while the app was idle, and the notice
/// waited in the UART until this send; the network is fine.
pub(super) fn send_refused<U, C>(m: &mut Modem<U, C>) -> SocketError {
    let ev = &mut m.at.events;
    let link_closed = ev.closed.is_some();
    if ev.network_down || (!link_closed && m.at.err_text.as_bytes().starts_with(b"+CIPERROR: 4")) {
        ev.network_down = true;
        SocketError::NetworkDown
    } else {
        ev.closed.get_or_insert(CloseKind::Reset);
        SocketError::Closed
    }
}

/// One `AT+CIPRXGET=2,0,<n>` into `buf`.
pub(super) async fn read<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    buf: &mut [u8],
    n: usize,
) -> Result<Chunk, AtError> {
    let deadline = m.at.deadline(m.cfg.command_timeout_us);
    m.at.send(format_args!("AT+CIPRXGET=2,0,{n}"), deadline).await?;
    let mut header: Option<(u16, u32)> = None;
    let mut got = 0;
    m.at.finish(deadline, Probe::Lines, buf, &mut got, &mut |line| {
        let Some(rest) = after(line, b"+CIPRXGET:") else {
            return Take::No;
        };
        let mut f = Fields(rest);
        if f.num() != Some(2) {
            // `+CIPRXGET: 1,<l>`: a data notice, for this link or another.
            return Take::No;
        }
        match (f.num(), f.num32(), f.num32()) {
            (Some(link), Some(read), left) if header.is_none() => {
                header = Some((link, left.unwrap_or(0)));
                Take::Payload(read as usize)
            }
            _ => Take::No,
        }
    })
    .await?;
    match header {
        Some((0, left)) => Ok(Chunk { got, more: left > 0 }),
        Some(_) => Err(AtError::Protocol),
        None => Ok(Chunk { got: 0, more: false }),
    }
}

/// Closes link 0 (only when the modem still has it open: after `+IPCLOSE` it does not).
pub(super) async fn close<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, was_open: bool) -> Result<(), AtError> {
    if !was_open {
        return Ok(());
    }
    m.at.events.close_done = false;
    let t = m.cfg.command_timeout_us;
    match m.at.command(format_args!("AT+CIPCLOSE=0"), t, &mut |_| Take::No).await {
        Ok(()) => {
            let end = m.at.deadline(t);
            match m.at.wait_for(end, |ev| ev.close_done || ev.closed.is_some()).await {
                Ok(()) | Err(AtError::Timeout) => Ok(()),
                Err(e) => Err(e),
            }
        }
        // `+CIPCLOSE: 0,4` + `ERROR`: not open, which is what we wanted.
        Err(AtError::Rejected) => Ok(()),
        Err(e) => Err(e),
    }
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}
