//! SIMCom SIM7080 SSL on `CA*` connections: the file system (`CFSINIT`, `CFSGFIS`,
//! `CFSWFILE`, `CFSDFILE`, `CFSTERM`), the certificate store (`CSSLCFG="convert"`), SSL
//! contexts (`CSSLCFG`), a connection's SSL settings (`CASSLCFG`) and network time (`CLTS`).
//!
//! The TLS is real: a `CAOPEN` on a connection with SSL on runs rustls ([`super::ssl`]) over
//! the emulated network after the TCP connect, trusting only the converted CA list the
//! connection names, with the host checked against the certificate and sent as SNI when the
//! context's `sni` names it. Failures answer the manual's `+CAOPEN` results: 24 certificate
//! expired (by the modem's clock), 25 common name mismatch, 26 both, 27 every other failure
//! (an unknown CA among them). Forms: `docs/at-dialects.md`.
//!
//! Not emulated: client certificates, PSK, DTLS, `ignorertctime` 1, the file system's other
//! directories (only `/customer/`, index 3), the `<inputtime>` of `CFSWFILE`.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::version::TLS12;

use super::at::{self, Command, Form, line};
use super::ssl::{CertFiles, Failed, Trust, file_name_ok};
use super::{Session, Stop};
use crate::tls::Refusal;

/// Most bytes one `CARECV` delivers on an SSL connection: field reports have larger reads
/// come out truncated (LilyGo-T-SIM7080G issue 148); here they are clamped.
pub(super) const MAX_READ: usize = 512;
/// SSL contexts (`<ctxindex>` 0..=5).
const CONTEXTS: usize = 6;
/// Connection ids (`<cid>` 0..=12).
const CIDS: usize = 13;
/// `CFSWFILE` directory index of `/customer/`, the one the SSL notes store certificates in.
const CUSTOMER_DIR: u64 = 3;
/// Largest file `CFSWFILE` takes ("should be less than 10240 bytes").
const MAX_FILE: u64 = 10_240;
/// `CSSLCFG="convert"` type of a CA list (`QAPI_NET_SSL_CA_LIST_E`).
const CA_LIST: u64 = 2;

/// `+CAOPEN` results of an SSL connection (SIM7070/SIM7080/SIM7090 AT command manual).
pub(super) const ERR_CERT_EXPIRED: u8 = 24;
pub(super) const ERR_NAME_MISMATCH: u8 = 25;
pub(super) const ERR_NAME_MISMATCH_EXPIRED: u8 = 26;
pub(super) const ERR_CONNECT_FAILED: u8 = 27;

/// One SSL context (`AT+CSSLCFG="<item>",<ctx>,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Context {
    /// 1 TLS 1.0, 2 TLS 1.1, 3 TLS 1.2 (taken as the default), 4 DTLS 1.0, 5 DTLS 1.2.
    version: u8,
    sni: Option<String>,
}

impl Default for Context {
    fn default() -> Self {
        Context { version: 3, sni: None }
    }
}

/// One connection's SSL settings (`AT+CASSLCFG=<cid>,…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CidSsl {
    on: bool,
    ctx: usize,
    cacert: Option<String>,
}

/// The SIM7080's SSL state.
#[derive(Debug, Default)]
pub(super) struct SslState {
    /// `/customer/` in the modem's flash file system: kept over restarts.
    files: CertFiles,
    /// The SSL stack's certificate store (`convert`), also in flash and kept over restarts.
    ca_lists: CertFiles,
    /// `AT+CLTS=1`, saved by the modem: its clock follows the network's time (NITZ).
    /// Off, certificates are checked against the power-on clock (1980) and all "expire".
    network_time: bool,
    /// Writes of the saved `CLTS` setting.
    setting_writes: u64,
    /// `CFSINIT` done (its buffer is allocated).
    fs_open: bool,
    contexts: [Context; CONTEXTS],
    cids: [CidSsl; CIDS],
}

impl SslState {
    /// What a restart forgets: the contexts, the connections' settings, an open file
    /// system; flash (files, store, saved settings) stays.
    pub(super) fn reboot(&mut self) {
        self.fs_open = false;
        self.contexts = Default::default();
        self.cids = Default::default();
    }

    /// Whether connection `cid` has SSL on.
    pub(super) fn ssl_on(&self, cid: usize) -> bool {
        self.cids.get(cid).is_some_and(|c| c.on)
    }

    /// Flash writes so far: files, conversions into the store, saved settings.
    pub(super) fn flash_writes(&self) -> u64 {
        self.files.writes + self.ca_lists.writes + self.setting_writes
    }

    /// What a `CAOPEN` on `cid` does after its TCP connect: `None` plain, `Some(Err(code))`
    /// fails with that result, `Some(Ok(trust))` a handshake with these checks.
    pub(super) fn trust(&self, cid: usize, host: &str) -> Option<Result<Trust, u8>> {
        let c = self.cids.get(cid).filter(|c| c.on)?;
        let ctx = &self.contexts[c.ctx];
        let Some(ca_pem) = c.cacert.as_ref().and_then(|n| self.ca_lists.files.get(n)) else {
            // No CA list to check the server with: the handshake cannot succeed.
            return Some(Err(ERR_CONNECT_FAILED));
        };
        Some(Ok(Trust {
            ca_pem: ca_pem.clone(),
            versions: if ctx.version == 3 { vec![&TLS12] } else { Vec::new() },
            sni: ctx.sni.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(host)),
            network_time: self.network_time,
        }))
    }
}

/// The `+CAOPEN` result of a handshake that failed.
pub(super) fn open_result(failed: Failed) -> u8 {
    match failed {
        Failed::Refused(Refusal::Expired) => ERR_CERT_EXPIRED,
        Failed::Refused(Refusal::WrongHost) => ERR_NAME_MISMATCH,
        Failed::Refused(Refusal::ExpiredWrongHost) => ERR_NAME_MISMATCH_EXPIRED,
        Failed::Refused(Refusal::Other) | Failed::Config | Failed::Closed => ERR_CONNECT_FAILED,
    }
}

/// Answers an SSL, file system or time command. `Ok(false)`: not one of them.
pub(super) async fn execute(s: &mut Session<'_>, cmd: &Command) -> Result<bool, Stop> {
    let ok = match (cmd.name.as_str(), &cmd.form) {
        ("+CLTS", Form::Read) => {
            let on = u8::from(s.sh.lock().ca_ssl.network_time);
            return s
                .reply(vec![line(&format!("+CLTS: {on}")), at::ok()])
                .await
                .map(|()| true);
        }
        ("+CLTS", Form::Set(_)) => match (cmd.num(0), cmd.argc()) {
            (Some(v @ 0..=1), 1) => {
                let mut core = s.sh.lock();
                core.ca_ssl.network_time = v == 1;
                core.ca_ssl.setting_writes += 1;
                true
            }
            _ => false,
        },
        ("+CFSINIT", Form::Exec) => !std::mem::replace(&mut s.sh.lock().ca_ssl.fs_open, true),
        ("+CFSTERM", Form::Exec) => std::mem::replace(&mut s.sh.lock().ca_ssl.fs_open, false),
        ("+CFSGFIS", Form::Set(_)) => {
            let size = customer_file(s, cmd).and_then(|name| {
                let core = s.sh.lock();
                core.ca_ssl.files.files.get(&name).map(Vec::len)
            });
            return match size {
                Some(n) => s.reply(vec![line(&format!("+CFSGFIS: {n}")), at::ok()]).await,
                None => s.reply(vec![at::error()]).await,
            }
            .map(|()| true);
        }
        ("+CFSDFILE", Form::Set(_)) => {
            customer_file(s, cmd).is_some_and(|name| s.sh.lock().ca_ssl.files.files.remove(&name).is_some())
        }
        ("+CFSWFILE", Form::Set(_)) => return cfswfile(s, cmd).await.map(|()| true),
        ("+CSSLCFG", Form::Set(_)) => csslcfg(s, cmd),
        ("+CASSLCFG", Form::Set(_)) => casslcfg(s, cmd),
        _ => return Ok(false),
    };
    s.reply(vec![if ok { at::ok() } else { at::error() }]).await?;
    Ok(true)
}

/// The file a `<index>,"<name>"` command names in `/customer/`, with the file system open.
fn customer_file(s: &Session<'_>, cmd: &Command) -> Option<String> {
    let name = cmd.text(1).filter(|n| file_name_ok(n))?;
    (cmd.num(0) == Some(CUSTOMER_DIR) && cmd.argc() == 2 && s.sh.lock().ca_ssl.fs_open).then(|| name.to_string())
}

/// `AT+CFSWFILE=3,"<name>",<mode>,<size>,<inputtime>`: `DOWNLOAD`, exactly `size` bytes,
/// `OK`. Mode 0 writes the file from its start, 1 appends.
async fn cfswfile(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let fs_open = s.sh.lock().ca_ssl.fs_open;
    let args = (cmd.num(0), cmd.text(1), cmd.num(2), cmd.num(3), cmd.num(4), cmd.argc());
    let (Some(CUSTOMER_DIR), Some(name), Some(mode @ 0..=1), Some(n @ 1..=MAX_FILE), Some(100..=10_000), 5) = args
    else {
        return s.reply(vec![at::error()]).await;
    };
    if !fs_open || !file_name_ok(name) {
        return s.reply(vec![at::error()]).await;
    }
    let name = name.to_string();
    s.write(&line("DOWNLOAD")).await?;
    let data = s.read_payload(n as usize).await?;
    {
        let mut core = s.sh.lock();
        let files = &mut core.ca_ssl.files;
        let mut bytes = match mode {
            1 => files.files.get(&name).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        bytes.extend_from_slice(&data);
        files.write(name, bytes);
    }
    s.reply(vec![at::ok()]).await
}

/// `AT+CSSLCFG="<item>",<ctx>,<value>` and `AT+CSSLCFG="convert",2,"<file>"`, items in
/// either case (the sources disagree on which the firmware takes). `false`: refused.
fn csslcfg(s: &Session<'_>, cmd: &Command) -> bool {
    let Some(item) = cmd.text(0).map(str::to_ascii_lowercase) else {
        return false;
    };
    let item = item.as_str();
    let mut core = s.sh.lock();
    let state = &mut core.ca_ssl;
    if item == "convert" {
        // The file must hold at least one certificate; the store keeps it under its name.
        let (Some(CA_LIST), Some(name), 3) = (cmd.num(1), cmd.text(2), cmd.argc()) else {
            return false;
        };
        let Some(pem) = state.files.files.get(name) else {
            return false;
        };
        let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
        if !certs.is_ok_and(|c| !c.is_empty()) {
            return false;
        }
        let pem = pem.clone();
        state.ca_lists.write(name.to_string(), pem);
        return true;
    }
    let (Some(ctx), 3) = (cmd.num(1), cmd.argc()) else {
        return false;
    };
    let Some(c) = usize::try_from(ctx).ok().and_then(|i| state.contexts.get_mut(i)) else {
        return false;
    };
    match (item, cmd.num(2)) {
        ("sslversion", Some(v @ 1..=5)) => c.version = v as u8,
        ("ignorertctime", Some(0)) => {}
        ("protocol", Some(1)) => {}
        ("sni", _) => match cmd.text(2) {
            Some(name) if !name.is_empty() => c.sni = Some(name.to_string()),
            _ => return false,
        },
        _ => return false,
    }
    true
}

/// `AT+CASSLCFG=<cid>,"SSL"|"CRINDEX"|"CACERT",<value>`. `false`: refused.
fn casslcfg(s: &Session<'_>, cmd: &Command) -> bool {
    let (Some(cid), Some(item), 3) = (cmd.num(0), cmd.text(1), cmd.argc()) else {
        return false;
    };
    let mut core = s.sh.lock();
    let Some(c) = usize::try_from(cid).ok().and_then(|i| core.ca_ssl.cids.get_mut(i)) else {
        return false;
    };
    match (item.to_ascii_uppercase().as_str(), cmd.num(2)) {
        ("SSL", Some(v @ 0..=1)) => c.on = v == 1,
        ("CRINDEX", Some(ctx)) if (ctx as usize) < CONTEXTS => c.ctx = ctx as usize,
        ("CACERT", _) => match cmd.text(2) {
            Some(name) if file_name_ok(name) => c.cacert = Some(name.to_string()),
            _ => return false,
        },
        _ => return false,
    }
    true
}
