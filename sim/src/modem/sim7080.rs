//! SIMCom SIM7080: `CNACT`, `CAOPEN`, `CASEND`, `CARECV`, `CACLOSE`, `CASTATE`.
//!
//! `+CAOPEN: <cid>,<result>` results where the contract leaves them open follow the SIM7080
//! table: 21 network not active (no `CNACT`, or the packet network is down), 23 remote
//! refused; with SSL on the connection (`sim7080_tls`) also 24 to 27. A busy connection id
//! or a malformed command answers plain `ERROR`.

use super::at::{self, Command, Form, PROMPT, line};
use super::socket::{self, SockState};
use super::{Session, Stop, sim7080_tls, ssl};
use crate::net::ConnectError;

/// Largest `CASEND` payload (`AT+CASEND=?` → `(1-1460)`).
const MAX_SEND: u64 = 1460;

/// Answers a SIM7080 command. `Ok(false)`: unknown here (the caller answers `ERROR`).
pub(super) async fn execute(s: &mut Session<'_>, cmd: &Command) -> Result<bool, Stop> {
    if super::sim7080_tls::execute(s, cmd).await? {
        return Ok(true);
    }
    match (cmd.name.as_str(), &cmd.form) {
        ("+CNACT", Form::Set(_)) => {
            let (Some(0), Some(on @ 0..=1), 2) = (cmd.num(0), cmd.num(1), cmd.argc()) else {
                return Ok(false);
            };
            let on = on == 1;
            let changed = {
                let mut core = s.sh.lock();
                // Not registered: activation fails with a plain `ERROR` (not confirmed in a
                // capture).
                let changed = core.pdp != on && (!on || core.registered());
                if changed {
                    core.pdp = on;
                    if !on {
                        for link in 0..core.links.len() {
                            s.sh.close_by_host(&mut core, link);
                        }
                    }
                }
                changed
            };
            if changed {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc(format!("+APP PDP: 0,{}", if on { "ACTIVE" } else { "DEACTIVE" }));
            } else {
                s.reply(vec![at::error()]).await?;
            }
        }
        ("+CNACT", Form::Read) => {
            let pdp = s.sh.lock().pdp;
            let mut reply = vec![if pdp {
                line("+CNACT: 0,1,\"10.64.0.2\"")
            } else {
                line("+CNACT: 0,0,\"0.0.0.0\"")
            }];
            reply.extend((1..4).map(|i| line(&format!("+CNACT: {i},0,\"0.0.0.0\""))));
            reply.push(at::ok());
            s.reply(reply).await?;
        }
        ("+CAOPEN", Form::Set(_)) => caopen(s, cmd).await?,
        ("+CASEND", Form::Test) => {
            s.reply(vec![line("+CASEND: (0-12),(1-1460),(100-10000)"), at::ok()])
                .await?;
        }
        ("+CASEND", Form::Set(_)) => casend(s, cmd).await?,
        ("+CARECV", Form::Set(_)) => carecv(s, cmd).await?,
        ("+CARECV", Form::Read) => {
            let open: Vec<usize> = open_links(s);
            for &cid in &open {
                s.sync_socket(cid).await;
            }
            let mut reply: Vec<Vec<u8>> = {
                let core = s.sh.lock();
                open.iter()
                    .filter_map(|&cid| {
                        core.link(cid)
                            .map(|sock| line(&format!("+CARECV: {cid},{}", sock.buf.len())))
                    })
                    .collect()
            };
            reply.push(at::ok());
            s.reply(reply).await?;
        }
        ("+CACLOSE", Form::Set(_)) => {
            let Some(cid) = cid_arg(s, cmd) else { return Ok(false) };
            let closed = {
                let mut core = s.sh.lock();
                core.link(cid).is_some_and(|sock| sock.state == SockState::Open) && s.sh.close_by_host(&mut core, cid)
            };
            s.reply(vec![if closed { at::ok() } else { at::error() }]).await?;
        }
        ("+CASTATE", Form::Read) => {
            let open = open_links(s);
            let mut reply = Vec::new();
            if !open.contains(&0) {
                reply.push(line("+CASTATE: 0,0"));
            }
            reply.extend(open.iter().map(|cid| line(&format!("+CASTATE: {cid},1"))));
            reply.push(at::ok());
            s.reply(reply).await?;
        }
        ("+CAACK", Form::Set(_)) => {
            let Some(cid) = cid_arg(s, cmd) else { return Ok(false) };
            let sent = s.sh.lock().link(cid).map(|sock| sock.sent);
            match sent {
                Some(sent) => s.reply(vec![line(&format!("+CAACK: {sent},0")), at::ok()]).await?,
                None => s.reply(vec![at::error()]).await?,
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn cid_arg(s: &Session<'_>, cmd: &Command) -> Option<usize> {
    let cid = usize::try_from(cmd.num(0)?).ok()?;
    (cid < s.sh.cfg.dialect.links()).then_some(cid)
}

fn open_links(s: &Session<'_>) -> Vec<usize> {
    let core = s.sh.lock();
    (0..core.links.len())
        .filter(|&i| core.link(i).is_some_and(|sock| sock.state == SockState::Open))
        .collect()
}

/// `AT+CAOPEN=<cid>,<pdp>,"TCP","<host>",<port>` (the SIM7000 form without `<pdp>` too):
/// waits for the connect, then `+CAOPEN: <cid>,<result>` and `OK`.
async fn caopen(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let Some(cid) = cid_arg(s, cmd) else {
        return s.reply(vec![at::error()]).await;
    };
    let (pdp_ok, first) = match cmd.argc() {
        5 => (cmd.num(1) == Some(0), 2),
        4 => (true, 1),
        _ => (false, 0),
    };
    let port = cmd
        .num(first + 2)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0);
    let kind_ok = cmd.text(first).is_some_and(|k| k.eq_ignore_ascii_case("TCP"));
    let host = cmd.text(first + 1).filter(|h| !h.is_empty()).map(str::to_string);
    let (true, true, Some(host), Some(port)) = (pdp_ok, kind_ok, host, port) else {
        return s.reply(vec![at::error()]).await;
    };
    let result = |code: u8| vec![line(&format!("+CAOPEN: {cid},{code}")), at::ok()];
    let id = {
        let mut core = s.sh.lock();
        if core.links[cid].is_some() {
            None
        } else if !core.pdp {
            Some(None)
        } else {
            Some(Some(s.sh.new_socket(&mut core, cid)))
        }
    };
    let id = match id {
        None => return s.reply(vec![at::error()]).await,
        Some(None) => return s.reply(result(21)).await,
        Some(Some(id)) => id,
    };
    let stall = s.sh.lock().stall.take();
    if let Some(stall) = stall {
        // Commands sent meanwhile wait: the answer is still being worked on.
        s.pause(stall.delay).await?;
        if let Some(code) = stall.result {
            s.sh.forget(cid, id);
            return s.reply(result(code)).await;
        }
    }
    let trust = s.sh.lock().ca_ssl.trust(cid, &host);
    let net = s.sh.net.clone();
    let counters = s.sh.tls.clone();
    // With SSL on the connection, the handshake is part of the connect: `+CAOPEN` comes
    // after it, with the certificate check's result.
    let connected = s
        .wait_for(async move {
            let conn = net.connect(&host, port).await.map_err(Refused::Connect)?;
            match trust {
                None => Ok(conn),
                Some(Err(code)) => {
                    conn.abort();
                    Err(Refused::Tls(code))
                }
                Some(Ok(trust)) => ssl::handshake(conn, &trust, &host, counters)
                    .await
                    .map_err(|f| Refused::Tls(sim7080_tls::open_result(f))),
            }
        })
        .await?;
    match connected {
        Ok(conn) => match s.sh.attach(cid, id, conn) {
            Some((conn, requests)) => {
                tokio::spawn(socket::watch(s.sh.clone(), cid, id, conn, requests));
                s.reply(result(0)).await
            }
            None => s.reply(result(21)).await,
        },
        Err(e) => {
            s.sh.forget(cid, id);
            let code = match e {
                Refused::Connect(ConnectError::Refused(_)) => 23,
                Refused::Connect(_) => 21,
                Refused::Tls(code) => code,
            };
            s.reply(result(code)).await
        }
    }
}

/// Why a connect did not come up.
enum Refused {
    Connect(ConnectError),
    /// The TLS setup failed with this `+CAOPEN` result.
    Tls(u8),
}

/// `AT+CASEND=<cid>,<n>[,<timeout>]`: `>`, exactly n bytes, `OK`.
async fn casend(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let (Some(cid), Some(n @ 1..=MAX_SEND), 2 | 3) = (cid_arg(s, cmd), cmd.num(1), cmd.argc()) else {
        return s.reply(vec![at::error()]).await;
    };
    let writer = s.sh.lock().link(cid).and_then(|sock| sock.writer());
    let Some(writer) = writer else {
        return s.reply(vec![at::error()]).await;
    };
    s.write(PROMPT).await?;
    let data = s.read_payload(n as usize).await?;
    if writer.write(&data).await.is_err() {
        return s.reply(vec![at::error()]).await;
    }
    if let Some(sock) = s.sh.lock().links[cid].as_mut() {
        sock.sent += n;
    }
    s.reply(vec![at::ok()]).await
}

/// `AT+CARECV=<cid>,<n>`: `+CARECV: <read>,<data>` on one line, then `OK`.
async fn carecv(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let (Some(cid), Some(want @ 1..), 2) = (cid_arg(s, cmd), cmd.num(1), cmd.argc()) else {
        return s.reply(vec![at::error()]).await;
    };
    s.sync_socket(cid).await;
    let mut want = usize::try_from(want).unwrap_or(usize::MAX);
    if s.sh.lock().ca_ssl.ssl_on(cid) {
        want = want.min(sim7080_tls::MAX_READ);
    }
    match s.take(cid, want) {
        None => s.reply(vec![at::error()]).await,
        Some((data, _)) if data.is_empty() => s.reply(vec![line("+CARECV: 0"), at::ok()]).await,
        Some((data, _)) => {
            let mut piece = format!("\r\n+CARECV: {},", data.len()).into_bytes();
            piece.extend_from_slice(&data);
            piece.extend_from_slice(b"\r\n");
            s.reply(vec![piece, at::ok()]).await
        }
    }
}
