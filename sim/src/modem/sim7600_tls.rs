//! SIMCom SIM7600 SSL client: `CSSLCFG`, `CCERTDOWN`/`CCERTLIST`/`CCERTDELE`, `CCHSET`,
//! `CCHSTART`/`CCHSTOP`, `CCHSSLCFG`, `CCHOPEN`, `CCHSEND`, `CCHRECV`, `CCHCLOSE`.
//!
//! The TLS is real: a session's handshake is rustls ([`crate::tls::connect`]) over the
//! emulated network, trusting only the CA file its SSL context names, with the session's
//! host as the name checked and (with `enableSNI`) sent. Every certificate failure (an
//! unknown CA, another host's certificate, an expired one) answers `+CCHOPEN: <s>,15`, the
//! one code the manual has for a failed handshake. Sessions live in the socket table after
//! the ten `CIP` links (session `s` is entry `10 + s`), so receive buffering, the data
//! notice, FIN and reset work as for a `CIP` link. Forms: `docs/at-dialects.md`.
//!
//! Not emulated: `authmode` other than 1 (server authentication), client certificates,
//! direct-push receive (`CCHSET=…,0`: `CCHOPEN` then fails with code 8), send reports.

use rustls::version::{TLS12, TLS13};

use super::at::{self, Command, Form, PROMPT, line};
use super::ssl::{self, CertFiles, Failed, Trust, file_name_ok};
use super::{Session, Stop, Unsolicited, socket};

/// Sessions of the SSL client (`<session_id>` 0..=1).
pub(super) const SESSIONS: usize = 2;
/// SSL contexts (`<ssl_ctx_index>` 0..=9).
const CONTEXTS: usize = 10;
/// Largest `CCHSEND` / `CCHRECV` block (the A76xx manual's 2048; see docs).
const MAX_BLOCK: u64 = 2048;
/// Largest certificate file `CCERTDOWN` takes.
const MAX_CERT: u64 = 10_240;

/// `+CCHOPEN` result codes (SIM7500/SIM7600 SSL manual).
const ERR_PEER_CLOSED: u8 = 4;
const ERR_PARAMETER: u8 = 8;
const ERR_CONNECT: u8 = 14;
const ERR_HANDSHAKE: u8 = 15;
const ERR_NO_CERT: u8 = 19;

/// One SSL context (`AT+CSSLCFG`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Context {
    /// 0 SSL 3.0, 1 TLS 1.0, 2 TLS 1.1, 3 TLS 1.2, 4 all (the default).
    version: u8,
    /// 1 server authentication (default 0, which this emulator does not do).
    authmode: u8,
    cacert: Option<String>,
    sni: bool,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            version: 4,
            authmode: 0,
            cacert: None,
            sni: false,
        }
    }
}

/// The SSL client's state.
#[derive(Debug, Default)]
pub(super) struct SslState {
    /// Certificate files in the modem's flash file system: kept over restarts.
    pub(super) files: CertFiles,
    contexts: [Context; CONTEXTS],
    /// `CCHSSLCFG`: each session's context.
    session_ctx: [usize; SESSIONS],
    /// `CCHSET` receive mode 1 (manual).
    manual_rx: bool,
    /// `CCHSTART` done.
    pub(super) started: bool,
    /// `AT+CTZU=1`: the clock follows the network's time (NITZ). Off, the modem checks
    /// certificates against its power-on clock (1980) and every handshake fails.
    network_time: bool,
}

impl SslState {
    /// What a restart forgets: everything but the file system.
    pub(super) fn reboot(&mut self) {
        let files = std::mem::take(&mut self.files);
        *self = SslState {
            files,
            ..SslState::default()
        };
    }
}

/// The socket-table entry of session `s`.
pub(super) fn entry(session: usize) -> usize {
    super::Dialect::Sim7600.links() + session
}

/// The session of a socket-table entry, if it is one.
pub(super) fn session_of(link: usize) -> Option<usize> {
    link.checked_sub(super::Dialect::Sim7600.links())
        .filter(|&s| s < SESSIONS)
}

/// Answers an SSL client command. `Ok(false)`: not one of them.
pub(super) async fn execute(s: &mut Session<'_>, cmd: &Command) -> Result<bool, Stop> {
    match (cmd.name.as_str(), &cmd.form) {
        ("+CSSLCFG", Form::Set(_)) => {
            let ok = csslcfg(s, cmd);
            s.reply(vec![if ok { at::ok() } else { at::error() }]).await?;
        }
        ("+CTZU", Form::Set(_)) => {
            let ok = match (cmd.num(0), cmd.argc()) {
                (Some(v @ 0..=1), 1) => {
                    s.sh.lock().ssl.network_time = v == 1;
                    true
                }
                _ => false,
            };
            s.reply(vec![if ok { at::ok() } else { at::error() }]).await?;
        }
        ("+CTZU", Form::Read) => {
            let on = u8::from(s.sh.lock().ssl.network_time);
            s.reply(vec![line(&format!("+CTZU: {on}")), at::ok()]).await?;
        }
        ("+CCERTLIST", Form::Exec) => {
            let mut reply: Vec<Vec<u8>> = {
                let core = s.sh.lock();
                core.ssl
                    .files
                    .files
                    .keys()
                    .map(|n| line(&format!("+CCERTLIST: \"{n}\"")))
                    .collect()
            };
            reply.push(at::ok());
            s.reply(reply).await?;
        }
        ("+CCERTDOWN", Form::Set(_)) => {
            let (Some(name), Some(n @ 1..=MAX_CERT), 2) = (cmd.text(0), cmd.num(1), cmd.argc()) else {
                return s.reply(vec![at::error()]).await.map(|()| true);
            };
            let name = name.to_string();
            if !file_name_ok(&name) {
                return s.reply(vec![at::error()]).await.map(|()| true);
            }
            s.write(PROMPT).await?;
            let data = s.read_payload(n as usize).await?;
            s.sh.lock().ssl.files.write(name, data);
            s.reply(vec![at::ok()]).await?;
        }
        ("+CCERTDELE", Form::Set(_)) => {
            let removed = cmd
                .text(0)
                .is_some_and(|n| s.sh.lock().ssl.files.files.remove(n).is_some());
            s.reply(vec![if removed { at::ok() } else { at::error() }]).await?;
        }
        ("+CCHSET", Form::Set(_)) => {
            let ok = match (cmd.num(0), cmd.num(1), cmd.argc()) {
                (Some(0..=1), None, 1) => true,
                (Some(0..=1), Some(mode @ 0..=1), 2) => {
                    s.sh.lock().ssl.manual_rx = mode == 1;
                    true
                }
                _ => false,
            };
            s.reply(vec![if ok { at::ok() } else { at::error() }]).await?;
        }
        ("+CCHSTART", Form::Exec) => {
            let started = {
                let mut core = s.sh.lock();
                core.registered() && !std::mem::replace(&mut core.ssl.started, true)
            };
            if started {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc("+CCHSTART: 0".into());
            } else {
                s.reply(vec![at::error()]).await?;
            }
        }
        ("+CCHSTOP", Form::Exec) => {
            let was = {
                let mut core = s.sh.lock();
                let was = std::mem::replace(&mut core.ssl.started, false);
                for session in 0..SESSIONS {
                    s.sh.close_by_host(&mut core, entry(session));
                }
                was
            };
            if was {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc("+CCHSTOP: 0".into());
            } else {
                s.reply(vec![at::error()]).await?;
            }
        }
        ("+CCHSSLCFG", Form::Set(_)) => {
            let ok = match (session_arg(cmd, 0), cmd.num(1), cmd.argc()) {
                (Some(session), Some(ctx), 2) if (ctx as usize) < CONTEXTS => {
                    s.sh.lock().ssl.session_ctx[session] = ctx as usize;
                    true
                }
                _ => false,
            };
            s.reply(vec![if ok { at::ok() } else { at::error() }]).await?;
        }
        ("+CCHOPEN", Form::Set(_)) => cchopen(s, cmd).await?,
        ("+CCHSEND", Form::Set(_)) => cchsend(s, cmd).await?,
        ("+CCHRECV", Form::Set(_)) => cchrecv(s, cmd).await?,
        ("+CCHCLOSE", Form::Set(_)) => {
            let Some(session) = session_arg(cmd, 0) else {
                return s.reply(vec![at::error()]).await.map(|()| true);
            };
            let closed = {
                let mut core = s.sh.lock();
                s.sh.close_by_host(&mut core, entry(session))
            };
            if closed {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc(format!("+CCHCLOSE: {session},0"));
            } else {
                s.reply(vec![at::error()]).await?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn session_arg(cmd: &Command, i: usize) -> Option<usize> {
    let session = usize::try_from(cmd.num(i)?).ok()?;
    (session < SESSIONS).then_some(session)
}

/// `AT+CSSLCFG="<item>",<ctx>,<value>`. `false`: refused.
fn csslcfg(s: &Session<'_>, cmd: &Command) -> bool {
    let (Some(item), Some(ctx), 3) = (cmd.text(0), cmd.num(1), cmd.argc()) else {
        return false;
    };
    let Some(ctx) = usize::try_from(ctx).ok().filter(|&c| c < CONTEXTS) else {
        return false;
    };
    let mut core = s.sh.lock();
    let c = &mut core.ssl.contexts[ctx];
    match (item.to_ascii_lowercase().as_str(), cmd.num(2)) {
        ("sslversion", Some(v @ 0..=4)) => c.version = v as u8,
        ("authmode", Some(1)) => c.authmode = 1,
        ("enablesni", Some(v @ 0..=1)) => c.sni = v == 1,
        ("cacert", _) => match cmd.text(2) {
            Some(name) if file_name_ok(name) => c.cacert = Some(name.to_string()),
            _ => return false,
        },
        _ => return false,
    }
    true
}

/// What a session connects with. `Err(code)`: the open fails with that `+CCHOPEN` code.
fn trust(s: &Session<'_>, session: usize) -> Result<Trust, u8> {
    let core = s.sh.lock();
    let ctx = &core.ssl.contexts[core.ssl.session_ctx[session]];
    if !core.ssl.manual_rx {
        return Err(ERR_PARAMETER);
    }
    let ca_pem = match (&ctx.cacert, ctx.authmode) {
        (Some(name), 1) => core.ssl.files.files.get(name).cloned().ok_or(ERR_NO_CERT)?,
        _ => return Err(ERR_NO_CERT),
    };
    let versions: Vec<_> = match ctx.version {
        3 => vec![&TLS12],
        4 => vec![&TLS12, &TLS13],
        // SSL 3.0 to TLS 1.1: no server worth talking to accepts them.
        _ => Vec::new(),
    };
    Ok(Trust {
        ca_pem,
        versions,
        sni: ctx.sni,
        network_time: core.ssl.network_time,
    })
}

/// `AT+CCHOPEN=<s>,"<host>",<port>[,<client_type>]`: `OK`, then `+CCHOPEN: <s>,<err>`
/// once the TCP connect and the TLS handshake are done.
async fn cchopen(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let target = match (
        session_arg(cmd, 0),
        cmd.text(1),
        cmd.num(2).and_then(|p| u16::try_from(p).ok()),
        cmd.argc(),
        cmd.num(3),
    ) {
        (Some(session), Some(host), Some(port), 3, _) | (Some(session), Some(host), Some(port), 4, Some(2))
            if !host.is_empty() && port != 0 =>
        {
            Some((session, host.to_string(), port))
        }
        _ => None,
    };
    let Some((session, host, port)) = target else {
        return s.reply(vec![at::error()]).await;
    };
    let link = entry(session);
    let opened = {
        let mut core = s.sh.lock();
        if !core.ssl.started || core.links[link].is_some() {
            None
        } else {
            Some(s.sh.new_socket(&mut core, link))
        }
    };
    let Some(id) = opened else {
        return s.reply(vec![at::error()]).await;
    };
    let trust = trust(s, session);
    s.reply(vec![at::ok()]).await?;
    let sh = s.sh.clone();
    tokio::spawn(async move {
        let fail = |code: u8| {
            let mut core = sh.lock();
            if core.socket(link, id).is_some() {
                core.links[link] = None;
                sh.queue(&mut core, Unsolicited::Line(format!("+CCHOPEN: {session},{code}")));
            }
        };
        let trust = match trust {
            Ok(t) => t,
            Err(code) => return fail(code),
        };
        let Ok(conn) = sh.net.connect(&host, port).await else {
            return fail(ERR_CONNECT);
        };
        // Every certificate or protocol failure is the one handshake code.
        let plain = match ssl::handshake(conn, &trust, &host, sh.tls.clone()).await {
            Ok(plain) => plain,
            Err(Failed::Config | Failed::Refused(_)) => return fail(ERR_HANDSHAKE),
            Err(Failed::Closed) => return fail(ERR_PEER_CLOSED),
        };
        if let Some((plain, requests)) = sh.attach(link, id, plain) {
            sh.urc(format!("+CCHOPEN: {session},0"));
            socket::watch(sh, link, id, plain, requests).await;
        }
    });
    Ok(())
}

/// `AT+CCHSEND=<s>,<n>`: `>`, exactly n bytes, `OK` (no send report: `CCHSET=0,…`).
async fn cchsend(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let (Some(session), Some(n @ 1..=MAX_BLOCK), 2) = (session_arg(cmd, 0), cmd.num(1), cmd.argc()) else {
        return s.reply(vec![at::error()]).await;
    };
    let writer = s.sh.lock().link(entry(session)).and_then(|sock| sock.writer());
    let Some(writer) = writer else {
        return s.reply(vec![at::error()]).await;
    };
    s.write(PROMPT).await?;
    let data = s.read_payload(n as usize).await?;
    if writer.write(&data).await.is_err() {
        return s.reply(vec![at::error()]).await;
    }
    if let Some(sock) = s.sh.lock().links[entry(session)].as_mut() {
        sock.sent += n;
    }
    s.reply(vec![at::ok()]).await
}

/// `AT+CCHRECV=<s>,<n>`: `OK`, then `+CCHRECV: DATA,<s>,<len>` with the bytes (when the
/// cache holds any) and `+CCHRECV: <s>,0`.
async fn cchrecv(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let (Some(session), Some(n @ 1..=MAX_BLOCK), 2) = (session_arg(cmd, 0), cmd.num(1), cmd.argc()) else {
        return s.reply(vec![at::error()]).await;
    };
    let link = entry(session);
    s.sync_socket(link).await;
    let Some((data, _rest)) = s.take(link, n as usize) else {
        return s.reply(vec![at::error()]).await;
    };
    let mut reply = vec![at::ok()];
    if !data.is_empty() {
        let mut piece = format!("\r\n+CCHRECV: DATA,{session},{}\r\n", data.len()).into_bytes();
        piece.extend_from_slice(&data);
        reply.push(piece);
    }
    reply.push(line(&format!("+CCHRECV: {session},0")));
    s.reply(reply).await
}
