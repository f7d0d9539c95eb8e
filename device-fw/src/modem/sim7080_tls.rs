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
/// SSL context 0 and connection 0. One command call for every step, so the firmware carries
/// one copy of its state machine.
async fn setup<U: Read + Write, C: Clock>(m: &mut Modem<U, C>) -> Result<(), SocketError> {
    let Some(pem) = m.cfg.ca_cert else {
        return Err(SocketError::Tls(TlsError::NoCaCert));
    };
    let name = ca_name(pem);
    let t = m.cfg.command_timeout_us;
    let mut clts = None;
    let mut size = None;
    let mut step = Step::ClockQuery;
    loop {
        let mut line: heapless::String<64> = heapless::String::new();
        let _ = match step {
            Step::ClockQuery => line.write_str("AT+CLTS?"),
            // Certificates are checked against the modem's clock, which only the network's
            // time sets; at its power-on time (1980) every certificate is "expired".
            Step::ClockOn => line.write_str("AT+CLTS=1"),
            Step::FsOpen | Step::DropOpen => line.write_str("AT+CFSINIT"),
            Step::FileSize => write!(line, "AT+CFSGFIS={CUSTOMER_DIR},\"{name}\""),
            Step::FileWrite => {
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
                step = Step::FsClose;
                continue;
            }
            Step::FsClose | Step::DropClose => line.write_str("AT+CFSTERM"),
            Step::Convert => write!(line, "AT+CSSLCFG=\"convert\",2,\"{name}\""),
            Step::Drop => write!(line, "AT+CFSDFILE={CUSTOMER_DIR},\"{name}\""),
            Step::Version => line.write_str("AT+CSSLCFG=\"sslversion\",0,3"),
            Step::Expiry => line.write_str("AT+CSSLCFG=\"ignorertctime\",0,0"),
            Step::Ssl => line.write_str("AT+CASSLCFG=0,\"SSL\",1"),
            Step::Context => line.write_str("AT+CASSLCFG=0,\"CRINDEX\",0"),
            Step::CaCert => write!(line, "AT+CASSLCFG=0,\"CACERT\",\"{name}\""),
        };
        let res =
            m.at.command(format_args!("{line}"), t, &mut |reply| {
                if let Some(rest) = after(reply, b"+CLTS:") {
                    clts = Fields(rest).num();
                } else if let Some(rest) = after(reply, b"+CFSGFIS:") {
                    size = Fields(rest).num32();
                } else {
                    return Take::No;
                }
                Take::Yes
            })
            .await;
        let held = size.is_some_and(|n| n as usize == pem.len());
        step = match (step, res) {
            (Step::CaCert, Ok(())) => break,
            (Step::DropClose, Ok(()) | Err(AtError::Rejected)) => return Err(SocketError::Tls(TlsError::Setup)),
            // `ERROR`: the file system is open already (the chip restarted, the modem did
            // not); no such file; a clean-up step that did not take.
            (Step::FsOpen | Step::FileSize | Step::DropOpen | Step::Drop, Err(AtError::Rejected)) | (_, Ok(())) => {
                step.next(held, clts)
            }
            // Not a CA the modem can load: drop the file, or the next boot takes it as held.
            (Step::Convert, Err(AtError::Rejected)) => Step::DropOpen,
            (_, Err(e)) => return tls_step(m, Err(e)),
        };
    }
    m.tls_ready = true;
    m.plain_ready = false;
    Ok(())
}

/// The steps of [`setup`], in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ClockQuery,
    ClockOn,
    FsOpen,
    FileSize,
    FileWrite,
    FsClose,
    Convert,
    Version,
    Expiry,
    Ssl,
    Context,
    CaCert,
    /// After a refused conversion: the file is deleted, then setup fails.
    DropOpen,
    Drop,
    DropClose,
}

impl Step {
    /// The step after this one, given whether the modem holds the CA file and what `CLTS?`
    /// said.
    fn next(self, held: bool, clts: Option<u16>) -> Step {
        match self {
            Step::ClockQuery if clts == Some(1) => Step::FsOpen,
            Step::ClockQuery => Step::ClockOn,
            Step::ClockOn => Step::FsOpen,
            Step::FsOpen => Step::FileSize,
            Step::FileSize if held => Step::FsClose,
            Step::FileSize => Step::FileWrite,
            Step::FileWrite => Step::FsClose,
            // A file that was there is loaded already: no conversion, no flash write.
            Step::FsClose if held => Step::Version,
            Step::FsClose => Step::Convert,
            Step::Convert => Step::Version,
            Step::Version => Step::Expiry,
            Step::Expiry => Step::Ssl,
            Step::Ssl => Step::Context,
            Step::Context | Step::CaCert => Step::CaCert,
            Step::DropOpen => Step::Drop,
            Step::Drop | Step::DropClose => Step::DropClose,
        }
    }
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
