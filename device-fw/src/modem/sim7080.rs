//! SIMCom SIM7080 / SIM7070 (`CA*` stack).
//!
//! Attach: `AT+CNACT=0,1` → `OK`, then `+APP PDP: 0,ACTIVE` (already active: `ERROR`, then
//! checked with `AT+CNACT?`). Connection 0 on PDP context 0:
//! `AT+CAOPEN=0,0,"TCP","<host>",<port>` → `+CAOPEN: 0,<result>` + `OK`;
//! `AT+CASEND=0,<n>` → `>` → n bytes → `OK`; `AT+CARECV=0,<n>` → `+CARECV: <read>,<bytes>`
//! (payload right after the comma) + `OK`, or `+CARECV: 0` when empty; `AT+CACLOSE=0`.
//! With SSL on connection 0 (`sim7080_tls`) the same commands carry plaintext.

use embedded_io_async::{Read, Write};

use super::at::{AtError, Probe, Take};
use super::reply::{Fields, after, set_text};
use super::{CONNECT_NO_CODE, Chunk, Modem, ModemError};
use crate::clock::Clock;
use crate::socket::SocketError;

/// Activates PDP context 0.
pub(super) async fn attach<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), ModemError> {
    let t = m.cfg.command_timeout_us;
    match m.at.command(format_args!("AT+CNACT=0,1"), t, &mut |_| Take::No).await {
        Ok(()) => {
            let end = m.at.deadline(m.cfg.connect_timeout_us);
            match m.at.wait_for(end, |ev| ev.pdp_active || ev.network_down).await {
                Ok(()) if m.at.events.pdp_active => Ok(()),
                Ok(()) => {
                    let mut reply = heapless::String::new();
                    set_text(&mut reply, b"+APP PDP: 0,DEACTIVE");
                    Err(ModemError::CommandFailed {
                        command: "AT+CNACT=0,1",
                        reply,
                    })
                }
                Err(AtError::Timeout) => Err(ModemError::Timeout {
                    command: "+APP PDP",
                    ms: m.cfg.connect_timeout_us / 1000,
                }),
                Err(e) => Err(m.at_error("AT+CNACT=0,1", e)),
            }
        }
        // Already active (we saw it come up since the last restart).
        Err(AtError::Rejected) if m.at.events.pdp_active => Ok(()),
        Err(AtError::Rejected) => {
            let refused = m.at.err_text.clone();
            let mut state = None;
            let res =
                m.at.command(
                    format_args!("AT+CNACT?"),
                    t,
                    &mut |line| match after(line, b"+CNACT:") {
                        Some(rest) => {
                            let mut f = Fields(rest);
                            if f.num() == Some(0) {
                                state = f.num();
                            }
                            Take::Yes
                        }
                        None => Take::No,
                    },
                )
                .await;
            match res {
                Ok(()) if state == Some(1) => Ok(()),
                Ok(()) => Err(ModemError::CommandFailed {
                    command: "AT+CNACT=0,1",
                    reply: refused,
                }),
                // No way to check on this firmware: take `ERROR` for "already active";
                // `AT+CAOPEN` will tell if it was not.
                Err(AtError::Rejected) => Ok(()),
                Err(e) => Err(m.at_error("AT+CNACT?", e)),
            }
        }
        Err(e) => Err(m.at_error("AT+CNACT=0,1", e)),
    }
}

/// Opens connection 0.
pub(super) async fn open<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    host: &str,
    port: u16,
) -> Result<(), SocketError> {
    let t = m.cfg.connect_timeout_us;
    match m
        .at
        .command(format_args!("AT+CAOPEN=0,0,\"TCP\",\"{host}\",{port}"), t, &mut |_| {
            Take::No
        })
        .await
    {
        Ok(()) => {}
        Err(AtError::Rejected) => {
            let code = m.at.events.open_result.filter(|&c| c != 0).unwrap_or(CONNECT_NO_CODE);
            return Err(open_error(m.tls, code));
        }
        // Seen after a 75 s stall: the modem is still connecting, and answers one command
        // at a time, so the close queues behind the connect and its late
        // `+CAOPEN: 0,<result>` and `OK` come first. That `OK` is owed, not the close's.
        Err(AtError::Timeout) => {
            m.at.owed = m.at.owed.saturating_add(1);
            return close_after_timeout(m).await;
        }
        Err(e) => return Err(m.lost(e)),
    }
    if m.at.events.open_result.is_none() {
        // `+CAOPEN` may trail the `OK`.
        let end = m.at.deadline(t);
        match m
            .at
            .wait_for(end, |ev| ev.open_result.is_some() || ev.network_down)
            .await
        {
            Ok(()) => {}
            Err(AtError::Timeout) => return close_after_timeout(m).await,
            Err(e) => return Err(m.lost(e)),
        }
    }
    match m.at.events.open_result {
        Some(0) => Ok(()),
        Some(code) => Err(open_error(m.tls, code)),
        None => Err(SocketError::NetworkDown),
    }
}

/// The error for a `+CAOPEN: 0,<result>` that is not 0: a TLS one when connection 0 has SSL.
fn open_error(tls: bool, code: u16) -> SocketError {
    match tls {
        true => super::sim7080_tls::open_error(code),
        false => SocketError::ConnectFailed(code),
    }
}

/// Closes connection 0 after a connect that timed out, waiting as long again for the modem to
/// get to the close. The modem's late result, when it came meanwhile, is the error: a
/// connect that failed late says why (`+CAOPEN: 0,2`), one that succeeded late was closed.
async fn close_after_timeout<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), SocketError> {
    let t = m.cfg.connect_timeout_us;
    match m.at.command(format_args!("AT+CACLOSE=0"), t, &mut |_| Take::No).await {
        Ok(()) | Err(AtError::Rejected) => Err(super::late_result(m.at.events.open_result)),
        Err(e) => Err(m.lost(e)),
    }
}

/// Sends one chunk (at most 1460 bytes).
pub(super) async fn send<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, chunk: &[u8]) -> Result<(), AtError> {
    m.at.send_prompted(
        format_args!("AT+CASEND=0,{}", chunk.len()),
        chunk,
        m.cfg.command_timeout_us,
    )
    .await
}

/// One `AT+CARECV=0,<n>` into `buf`.
pub(super) async fn read<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    buf: &mut [u8],
    n: usize,
) -> Result<Chunk, AtError> {
    let deadline = m.at.deadline(m.cfg.command_timeout_us);
    m.at.send(format_args!("AT+CARECV=0,{n}"), deadline).await?;
    let mut got = 0;
    // `+CARECV: <n>,<bytes>` is taken by the probe; only the empty form `+CARECV: 0` is a line.
    m.at.finish(deadline, Probe::Carecv, buf, &mut got, &mut |line| {
        if after(line, b"+CARECV:").is_some() {
            Take::Yes
        } else {
            Take::No
        }
    })
    .await?;
    // A full block: the modem probably holds more. On an SSL connection a short answer does
    // not prove the buffer empty (field reports of SSL reads that hand out less than is
    // there, `sim7080_tls::MAX_READ`), and no new `+CADATAIND` comes until it is: ask again
    // until `+CARECV: 0`.
    Ok(Chunk {
        got,
        more: got >= n || (m.tls && got > 0),
    })
}

/// Closes connection 0 (also after `+CASTATE: 0,0`, to free it; `ERROR` means not open).
pub(super) async fn close<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, _was_open: bool) -> Result<(), AtError> {
    let t = m.cfg.command_timeout_us;
    match m.at.command(format_args!("AT+CACLOSE=0"), t, &mut |_| Take::No).await {
        Ok(()) | Err(AtError::Rejected) => Ok(()),
        Err(e) => Err(e),
    }
}
