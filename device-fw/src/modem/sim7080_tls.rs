//! SIMCom SIM7080 / SIM7070 SSL on the `CA*` stack: `https://` with the TLS done inside the
//! modem, on the same connection 0 and the same `CAOPEN`/`CASEND`/`CARECV`/`CACLOSE` as a
//! plain link.
//!
//! Set up once per bring-up, on the first TLS connect. Network time first: `AT+CLTS?`, and
//! `AT+CLTS=1` only when it is off (the modem saves it), so the clock the certificates are
//! checked against follows the network's. The CA goes to the modem's file system under a
//! name that carries its SHA-256 (`otaca-<10 hex>.pem` in `/customer/`, directory 3):
//! `AT+CFSINIT`, `AT+CFSGFIS=3,"<name>"` (its size, or `ERROR` when absent), only when
//! absent `AT+CFSWFILE=3,"<name>",0,<len>,10000` → `DOWNLOAD` → the PEM → `OK`, then
//! `AT+CFSTERM`; a written file is loaded into the SSL stack's CA list with
//! `AT+CSSLCFG="convert",2,"<name>"` (which the modem keeps over restarts). So a normal boot
//! writes nothing to the modem's flash. Then SSL context 0: `"sslversion",0,3` (TLS 1.2),
//! `"ignorertctime",0,0` (expiry checked); connection 0: `AT+CASSLCFG=0,"SSL",1`,
//! `"CRINDEX",0`, `"CACERT","<name>"`. Each connect sends the host as SNI
//! (`AT+CSSLCFG="sni",0,"<host>"`). A plain `http://` connect on a device that has a CA
//! turns SSL off on connection 0 first (`AT+CASSLCFG=0,"SSL",0`), once per bring-up. Reads
//! on an SSL connection ask for at most [`MAX_READ`] bytes.
//! Forms, codes and sources: `docs/at-dialects.md`.

use core::fmt::Write as _;

use embedded_io_async::{Read, Write};

use super::Modem;
use super::at::{AtError, Take};
use super::ca_file::CaName;
use super::reply::{Fields, after};
use super::sim7600_tls::tls_step;
use crate::clock::Clock;
use crate::socket::{SocketError, TlsError};

/// `+CAOPEN` results for an SSL connection (SIM7070/SIM7080/SIM7090 AT command manual,
/// `AT+CAOPEN` result table): 24 certificate's time expired, 25 certificate's common name
/// does not match, 26 both, 27 connect failed (taken for every other failed handshake: the
/// table has no code for an unknown CA). The rest (20 DNS, 21 network, 23 refused) are
/// connect failures.
const CERT_EXPIRED: u16 = 24;
const NAME_MISMATCH: u16 = 25;
const NAME_MISMATCH_AND_EXPIRED: u16 = 26;
const CONNECT_FAILED: u16 = 27;

/// Most bytes one `AT+CARECV` asks for on an SSL connection. Field reports: on a SIM7080G
/// larger SSL reads come out truncated, without their `OK` (LilyGo-T-SIM7080G issue 148), and
/// on a SIM7000G `+CARECV: 1024,` announced more bytes than followed, where 512-byte reads
/// worked (TinyGSM issue 437).
pub(super) const MAX_READ: usize = 512;

/// Bytes of the PEM's SHA-256 in the CA file's name: a 20-byte name, the longest the
/// manual allows for a CA list's name where it gives a limit (`AT+SMSSL`'s `<ca list>`).
const CA_HASH_BYTES: usize = 5;
/// `AT+CFSWFILE` directory index 3: `/customer/`.
const CUSTOMER_DIR: u8 = 3;
/// Milliseconds the modem waits for a file's bytes after `DOWNLOAD` (the manual's largest).
const INPUT_MS: u32 = 10_000;

fn ca_name(pem: &[u8]) -> CaName {
    super::ca_file::ca_name(pem, CA_HASH_BYTES)
}

/// Turns network time on (when off), stores the CA (when the modem lacks it), configures
/// SSL context 0 and connection 0.
async fn setup<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), SocketError> {
    let Some(pem) = m.cfg.ca_cert else {
        return Err(SocketError::Tls(TlsError::NoCaCert));
    };
    let name = ca_name(pem);
    let t = m.cfg.command_timeout_us;
    let mut clts = None;
    let res =
        m.at.command(format_args!("AT+CLTS?"), t, &mut |line| match after(line, b"+CLTS:") {
            Some(rest) => {
                clts = Fields(rest).num();
                Take::Yes
            }
            None => Take::No,
        })
        .await;
    tls_step(m, res)?;
    if clts != Some(1) {
        // Certificates are checked against the modem's clock, which only the network's time
        // sets; at its power-on time (1980) every certificate is "expired".
        let res = m.at.command(format_args!("AT+CLTS=1"), t, &mut |_| Take::No).await;
        tls_step(m, res)?;
    }
    // `ERROR`: the file system is open already (the chip restarted, the modem did not).
    match m.at.command(format_args!("AT+CFSINIT"), t, &mut |_| Take::No).await {
        Ok(()) | Err(AtError::Rejected) => {}
        Err(e) => return Err(m.lost(e)),
    }
    let mut size = None;
    let res =
        m.at.command(
            format_args!("AT+CFSGFIS={CUSTOMER_DIR},\"{name}\""),
            t,
            &mut |line| match after(line, b"+CFSGFIS:") {
                Some(rest) => {
                    size = Fields(rest).num32();
                    Take::Yes
                }
                None => Take::No,
            },
        )
        .await;
    let held = match res {
        Ok(()) => size.is_some_and(|n| n as usize == pem.len()),
        // No such file.
        Err(AtError::Rejected) => false,
        Err(e) => return Err(m.lost(e)),
    };
    if !held {
        let len = pem.len();
        let res =
            m.at.send_after_line(
                format_args!("AT+CFSWFILE={CUSTOMER_DIR},\"{name}\",0,{len},{INPUT_MS}"),
                b"DOWNLOAD",
                pem,
                t + u64::from(INPUT_MS) * 1000,
            )
            .await;
        tls_step(m, res)?;
    }
    let res = m.at.command(format_args!("AT+CFSTERM"), t, &mut |_| Take::No).await;
    tls_step(m, res)?;
    // One command call for the rest, so the firmware carries one copy of its state machine.
    for step in u8::from(held)..6 {
        let mut line: heapless::String<64> = heapless::String::new();
        let _ = match step {
            0 => write!(line, "AT+CSSLCFG=\"convert\",2,\"{name}\""),
            1 => line.write_str("AT+CSSLCFG=\"sslversion\",0,3"),
            2 => line.write_str("AT+CSSLCFG=\"ignorertctime\",0,0"),
            3 => line.write_str("AT+CASSLCFG=0,\"SSL\",1"),
            4 => line.write_str("AT+CASSLCFG=0,\"CRINDEX\",0"),
            _ => write!(line, "AT+CASSLCFG=0,\"CACERT\",\"{name}\""),
        };
        let res = m.at.command(format_args!("{line}"), t, &mut |_| Take::No).await;
        if step == 0 && res == Err(AtError::Rejected) {
            // Not a CA the modem can load: drop the file, or the next boot takes it as held.
            let _ = m.at.command(format_args!("AT+CFSINIT"), t, &mut |_| Take::No).await;
            let _ =
                m.at.command(format_args!("AT+CFSDFILE={CUSTOMER_DIR},\"{name}\""), t, &mut |_| {
                    Take::No
                })
                .await;
            let _ = m.at.command(format_args!("AT+CFSTERM"), t, &mut |_| Take::No).await;
        }
        tls_step(m, res)?;
    }
    m.tls_ready = true;
    m.plain_ready = false;
    Ok(())
}

/// The error for a `+CAOPEN: 0,<result>` of an SSL connection that is not 0.
pub(super) fn open_error(code: u16) -> SocketError {
    match code {
        CERT_EXPIRED => SocketError::Tls(TlsError::Expired),
        NAME_MISMATCH | NAME_MISMATCH_AND_EXPIRED => SocketError::Tls(TlsError::WrongHost),
        CONNECT_FAILED => SocketError::Tls(TlsError::Handshake),
        code => SocketError::ConnectFailed(code),
    }
}

/// Opens connection 0 with SSL: setup when needed, the host as SNI, then the plain
/// connect's `AT+CAOPEN`.
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
        m.at.command(format_args!("AT+CSSLCFG=\"sni\",0,\"{host}\""), t, &mut |_| Take::No)
            .await;
    tls_step(m, res)?;
    super::sim7080::open(m, host, port).await
}

/// Before a plain connect: connection 0 without SSL, if this device may have turned it on.
pub(super) async fn plain<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), SocketError> {
    if m.plain_ready || m.cfg.ca_cert.is_none() {
        return Ok(());
    }
    let t = m.cfg.command_timeout_us;
    let res =
        m.at.command(format_args!("AT+CASSLCFG=0,\"SSL\",0"), t, &mut |_| Take::No)
            .await;
    tls_step(m, res)?;
    m.plain_ready = true;
    m.tls_ready = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_codes_map_to_distinct_errors() {
        assert_eq!(open_error(24), SocketError::Tls(TlsError::Expired));
        assert_eq!(open_error(25), SocketError::Tls(TlsError::WrongHost));
        assert_eq!(open_error(26), SocketError::Tls(TlsError::WrongHost));
        assert_eq!(open_error(27), SocketError::Tls(TlsError::Handshake));
        assert_eq!(open_error(23), SocketError::ConnectFailed(23));
    }

    #[test]
    fn the_ca_name_fits_twenty_bytes() {
        assert_eq!(ca_name(b"-----BEGIN CERTIFICATE-----\n").len(), 20);
    }
}
