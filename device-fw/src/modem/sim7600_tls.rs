//! SIMCom SIM7600 SSL client (`AT+CCH*`): `https://` with the TLS done inside the modem.
//!
//! Set up once per bring-up, on the first TLS connect: the CA certificate goes to the
//! modem's file system under a name that carries its SHA-256 (`otaca-<16 hex>.pem`), so an
//! `AT+CCERTLIST` that shows the name proves the modem holds these exact bytes and a normal
//! boot writes nothing; only a changed CA costs an `AT+CCERTDOWN` (and the old file is
//! deleted). Then SSL context 0: `AT+CSSLCFG="sslversion",0,3` (TLS 1.2),
//! `"authmode",0,1` (server authentication), `"cacert",0,"<name>"`, `"enableSNI",0,1`;
//! `AT+CCHSET=0,1` (no send reports, manual receive), `AT+CCHSTART` → `OK`,
//! `+CCHSTART: 0`.
//!
//! Session 0: `AT+CCHSSLCFG=0,0`, `AT+CCHOPEN=0,"<host>",<port>,2` → `OK`, then
//! `+CCHOPEN: 0,<err>`; `AT+CCHSEND=0,<n>` → `>` → n bytes → `OK`; `AT+CCHRECV=0,<n>` →
//! `OK`, `+CCHRECV: DATA,0,<len>` + raw bytes, `+CCHRECV: 0,0`; `AT+CCHCLOSE=0` → `OK`,
//! `+CCHCLOSE: 0,0`. Forms and codes: `docs/at-dialects.md`.

use core::fmt::Write as _;

use embedded_io_async::{Read, Write};

use super::at::{AtError, Probe, Take};
use super::ca_file::{CA_PREFIX, CaName};
use super::reply::{Fields, after};
use super::{CONNECT_NO_CODE, Chunk, Modem};
use crate::clock::Clock;
use crate::socket::{SocketError, TlsError};

/// `+CCHOPEN` codes (SIM7500/SIM7600 SSL manual, result codes): 15 handshake error, 19
/// certificates not set. The rest (13 DNS, 14 connect, 5 timeout, …) are connect failures.
const HANDSHAKE_ERROR: u16 = 15;
const NO_CERTIFICATE: u16 = 19;

/// Bytes of the PEM's SHA-256 in the CA file's name.
const CA_HASH_BYTES: usize = 8;

fn ca_name(pem: &[u8]) -> CaName {
    super::ca_file::ca_name(pem, CA_HASH_BYTES)
}

/// The file name in a `+CCERTLIST: "<name>"` line.
fn listed_name(line: &[u8]) -> Option<&[u8]> {
    let rest = after(line, b"+CCERTLIST:")?;
    Some(match rest.strip_prefix(b"\"") {
        Some(quoted) => quoted.strip_suffix(b"\"").unwrap_or(quoted),
        None => rest,
    })
}

/// Stores the CA (if the modem lacks it), configures SSL context 0 and starts the service.
async fn setup<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), SocketError> {
    let Some(pem) = m.cfg.ca_cert else {
        return Err(SocketError::Tls(TlsError::NoCaCert));
    };
    let name = ca_name(pem);
    let t = m.cfg.command_timeout_us;
    let mut held = false;
    let mut stale = CaName::new();
    let listed =
        m.at.command(format_args!("AT+CCERTLIST"), t, &mut |line| match listed_name(line) {
            Some(file) => {
                if file == name.as_bytes() {
                    held = true;
                } else if file.starts_with(CA_PREFIX.as_bytes())
                    && stale.is_empty()
                    && let Ok(file) = core::str::from_utf8(file)
                {
                    let _ = stale.push_str(file);
                }
                Take::Yes
            }
            None => Take::No,
        })
        .await;
    tls_step(m, listed)?;
    if !held {
        let res =
            m.at.send_prompted(format_args!("AT+CCERTDOWN=\"{name}\",{}", pem.len()), pem, t)
                .await;
        tls_step(m, res)?;
        if !stale.is_empty() {
            // The old anchor is of no use any more; a refusal only leaves a file behind.
            let res =
                m.at.command(format_args!("AT+CCERTDELE=\"{stale}\""), t, &mut |_| Take::No)
                    .await;
            if !matches!(res, Ok(()) | Err(AtError::Rejected)) {
                tls_step(m, res)?;
            }
        }
    }
    // One command call for all six, so the firmware carries one copy of its state machine.
    // `AT+CTZU=1`: certificates are checked against the modem's clock, which only the
    // network's time (NITZ) sets; at its power-on time (1980) every handshake fails.
    for step in 0..6u8 {
        let mut line: heapless::String<64> = heapless::String::new();
        let _ = match step {
            0 => line.write_str("AT+CSSLCFG=\"sslversion\",0,3"),
            1 => line.write_str("AT+CSSLCFG=\"authmode\",0,1"),
            2 => write!(line, "AT+CSSLCFG=\"cacert\",0,\"{name}\""),
            3 => line.write_str("AT+CSSLCFG=\"enableSNI\",0,1"),
            4 => line.write_str("AT+CCHSET=0,1"),
            _ => line.write_str("AT+CTZU=1"),
        };
        let res = m.at.command(format_args!("{line}"), t, &mut |_| Take::No).await;
        tls_step(m, res)?;
    }
    m.at.events.cch_start = None;
    match m.at.command(format_args!("AT+CCHSTART"), t, &mut |_| Take::No).await {
        Ok(()) => {
            let end = m.at.deadline(m.cfg.connect_timeout_us);
            match m.at.wait_for(end, |ev| ev.cch_start.is_some()).await {
                Ok(()) if m.at.events.cch_start == Some(0) => {}
                Ok(()) => return Err(SocketError::Tls(TlsError::Setup)),
                Err(e) => return Err(m.lost(e)),
            }
        }
        // Started already: the chip restarted while the modem kept running.
        Err(AtError::Rejected) => {}
        Err(e) => return Err(m.lost(e)),
    }
    m.tls_ready = true;
    Ok(())
}

/// A setup command's result: a refusal is [`TlsError::Setup`], anything else loses the modem.
pub(super) fn tls_step<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    res: Result<(), AtError>,
) -> Result<(), SocketError> {
    match res {
        Ok(()) => Ok(()),
        Err(AtError::Rejected) => Err(SocketError::Tls(TlsError::Setup)),
        Err(e) => Err(m.lost(e)),
    }
}

/// The error for a `+CCHOPEN: 0,<err>` that is not 0.
fn open_error(code: u16) -> SocketError {
    match code {
        HANDSHAKE_ERROR => SocketError::Tls(TlsError::Handshake),
        NO_CERTIFICATE => SocketError::Tls(TlsError::NoCaCert),
        code => SocketError::ConnectFailed(code),
    }
}

/// Opens TLS session 0.
pub(super) async fn open<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    host: &str,
    port: u16,
) -> Result<(), SocketError> {
    if !m.tls_ready {
        setup(m).await?;
    }
    let t = m.cfg.command_timeout_us;
    let res =
        m.at.command(format_args!("AT+CCHSSLCFG=0,0"), t, &mut |_| Take::No)
            .await;
    tls_step(m, res)?;
    m.at.events.open_result = None;
    match m
        .at
        .command(format_args!("AT+CCHOPEN=0,\"{host}\",{port},2"), t, &mut |_| Take::No)
        .await
    {
        Ok(()) => {}
        Err(AtError::Rejected) => {
            return Err(m
                .at
                .events
                .open_result
                .filter(|&c| c != 0)
                .map_or(SocketError::ConnectFailed(CONNECT_NO_CODE), open_error));
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
            Some(code) => Err(open_error(code)),
            None => Err(SocketError::NetworkDown),
        },
        Err(AtError::Timeout) => {
            if let Err(e) = close(m, true).await {
                return Err(m.lost(e));
            }
            Err(match m.at.events.open_result {
                Some(code) if code != 0 => open_error(code),
                _ => SocketError::Timeout,
            })
        }
        Err(e) => Err(m.lost(e)),
    }
}

/// Sends one chunk of plaintext (at most 1460 bytes).
pub(super) async fn send<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, chunk: &[u8]) -> Result<(), AtError> {
    m.at.send_prompted(
        format_args!("AT+CCHSEND=0,{}", chunk.len()),
        chunk,
        m.cfg.command_timeout_us,
    )
    .await
}

/// One `AT+CCHRECV=0,<n>` into `buf`. The data and the closing `+CCHRECV: 0,<err>` come
/// after the `OK`, so the reply is read on past it.
pub(super) async fn read<U: Read + Write, C: Clock>(
    m: &mut Modem<U, C>,
    buf: &mut [u8],
    n: usize,
) -> Result<Chunk, AtError> {
    let deadline = m.at.deadline(m.cfg.command_timeout_us);
    m.at.send(format_args!("AT+CCHRECV=0,{n}"), deadline).await?;
    let mut got = 0;
    let ended = core::cell::Cell::new(false);
    let mut on_line = |line: &[u8]| {
        let Some(rest) = after(line, b"+CCHRECV:") else {
            return Take::No;
        };
        if let Some(data) = rest.strip_prefix(b"DATA,") {
            let mut f = Fields(data);
            return match (f.num(), f.num32()) {
                (Some(0), Some(len)) => Take::Payload(len as usize),
                _ => Take::No,
            };
        }
        match Fields(rest).num() {
            Some(0) => {
                ended.set(true);
                Take::End
            }
            _ => Take::No,
        }
    };
    m.at.finish(deadline, Probe::Lines, buf, &mut got, &mut on_line).await?;
    if !ended.get() {
        m.at.finish(deadline, Probe::Lines, buf, &mut got, &mut on_line).await?;
    }
    // A full block: the modem probably holds more (it does not say how much is left).
    Ok(Chunk { got, more: got == n })
}

/// Closes session 0 (only when the modem still has it open).
pub(super) async fn close<U: Read + Write, C: Clock>(m: &mut Modem<U, C>, was_open: bool) -> Result<(), AtError> {
    if !was_open {
        return Ok(());
    }
    m.at.events.close_done = false;
    let t = m.cfg.command_timeout_us;
    match m.at.command(format_args!("AT+CCHCLOSE=0"), t, &mut |_| Take::No).await {
        Ok(()) => {
            let end = m.at.deadline(t);
            match m.at.wait_for(end, |ev| ev.close_done || ev.closed.is_some()).await {
                Ok(()) | Err(AtError::Timeout) => Ok(()),
                Err(e) => Err(e),
            }
        }
        // Not open, which is what we wanted.
        Err(AtError::Rejected) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stops the SSL service, which closes any session a lost modem may still hold; the next
/// TLS connect sets it up again.
pub(super) async fn stop<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), AtError> {
    m.tls_ready = false;
    match m
        .at
        .command(format_args!("AT+CCHSTOP"), m.cfg.command_timeout_us, &mut |_| Take::No)
        .await
    {
        Ok(()) | Err(AtError::Rejected) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_are_read_with_or_without_quotes() {
        assert_eq!(listed_name(b"+CCERTLIST: \"otaca-1.pem\""), Some(&b"otaca-1.pem"[..]));
        assert_eq!(listed_name(b"+CCERTLIST: ca.pem"), Some(&b"ca.pem"[..]));
        assert_eq!(listed_name(b"+CCHRECV: 0,0"), None);
    }

    #[test]
    fn open_codes_map_to_distinct_errors() {
        assert_eq!(open_error(15), SocketError::Tls(TlsError::Handshake));
        assert_eq!(open_error(19), SocketError::Tls(TlsError::NoCaCert));
        assert_eq!(open_error(13), SocketError::ConnectFailed(13));
    }
}
