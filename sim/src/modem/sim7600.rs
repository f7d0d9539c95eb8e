//! SIMCom SIM7600: `NETOPEN`, `CIPOPEN`, `CIPSEND`, `CIPRXGET` (manual receive), `CIPCLOSE`.
//!
//! Error codes where the contract leaves them open follow the SIM7600 TCP/IP error table:
//! `+CIPOPEN: <l>,2` network not opened, `,3` wrong parameter, `,4` operation not supported
//! (link busy, or manual receive not enabled), and asynchronously `,1` network failure
//! (connection refused, packet network down).

use super::at::{self, Command, Form, PROMPT, line};
use super::socket::{self, SockState};
use super::{Session, Stop};

/// Largest `CIPSEND` payload.
const MAX_SEND: u64 = 1500;

/// Answers a SIM7600 command. `Ok(false)`: unknown here (the caller answers `ERROR`).
pub(super) async fn execute(s: &mut Session<'_>, cmd: &Command) -> Result<bool, Stop> {
    if super::sim7600_tls::execute(s, cmd).await? {
        return Ok(true);
    }
    match (cmd.name.as_str(), &cmd.form) {
        ("+CRESET", Form::Exec) => {
            s.reply(vec![at::ok()]).await?;
            return Err(s.reboot());
        }
        // Not registered: the command is taken, the attach then fails (`+NETOPEN: 1`, network
        // failure in the SIM7600 error table; the form is not confirmed in a capture).
        ("+NETOPEN", Form::Exec)
            if {
                let core = s.sh.lock();
                !core.registered() && !core.pdp
            } =>
        {
            s.reply(vec![at::ok()]).await?;
            s.sh.urc("+NETOPEN: 1".into());
        }
        ("+NETOPEN", Form::Exec) => {
            let opened = {
                let mut core = s.sh.lock();
                !std::mem::replace(&mut core.pdp, true)
            };
            if opened {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc("+NETOPEN: 0".into());
            } else {
                s.reply(vec![line("+IP ERROR: Network is already opened"), at::error()])
                    .await?;
            }
        }
        ("+NETOPEN", Form::Read) => {
            let pdp = s.sh.lock().pdp;
            s.reply(vec![line(&format!("+NETOPEN: {}", u8::from(pdp))), at::ok()])
                .await?;
        }
        ("+NETCLOSE", Form::Exec) => {
            let was_open = {
                let mut core = s.sh.lock();
                let was = std::mem::replace(&mut core.pdp, false);
                if was {
                    for link in 0..core.links.len() {
                        s.sh.close_by_host(&mut core, link);
                    }
                }
                was
            };
            if was_open {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc("+NETCLOSE: 0".into());
            } else {
                s.reply(vec![line("+NETCLOSE: 2"), at::error()]).await?;
            }
        }
        ("+CIPRXGET", Form::Read) => {
            let mode = u8::from(s.sh.lock().manual_rx);
            s.reply(vec![line(&format!("+CIPRXGET: {mode}")), at::ok()]).await?;
        }
        ("+CIPRXGET", Form::Set(_)) => ciprxget(s, cmd).await?,
        ("+CIPOPEN", Form::Set(_)) => cipopen(s, cmd).await?,
        ("+CIPSEND", Form::Set(_)) => cipsend(s, cmd).await?,
        ("+CIPCLOSE", Form::Set(_)) => {
            let Some(link) = link_arg(s, cmd, 0) else {
                return Ok(false);
            };
            let closed = {
                let mut core = s.sh.lock();
                s.sh.close_by_host(&mut core, link)
            };
            if closed {
                s.reply(vec![at::ok()]).await?;
                s.sh.urc(format!("+CIPCLOSE: {link},0"));
            } else {
                s.reply(vec![line(&format!("+CIPCLOSE: {link},4")), at::error()])
                    .await?;
            }
        }
        ("+CIPCLOSE", Form::Read) => {
            let states: Vec<&str> = {
                let core = s.sh.lock();
                core.links
                    .iter()
                    .take(s.sh.cfg.dialect.links())
                    .map(|l| {
                        if l.as_ref().is_some_and(|s| s.state == SockState::Open) {
                            "1"
                        } else {
                            "0"
                        }
                    })
                    .collect()
            };
            s.reply(vec![line(&format!("+CIPCLOSE: {}", states.join(","))), at::ok()])
                .await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Argument `i` as a link id in range.
fn link_arg(s: &Session<'_>, cmd: &Command, i: usize) -> Option<usize> {
    let link = usize::try_from(cmd.num(i)?).ok()?;
    (link < s.sh.cfg.dialect.links()).then_some(link)
}

/// `AT+CIPRXGET=<mode>[,<l>[,<n>]]`: 0/1 switch manual receive, 2 reads, 4 asks.
async fn ciprxget(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    match (cmd.num(0), cmd.argc()) {
        (Some(m @ 0..=1), 1) => {
            s.sh.lock().manual_rx = m == 1;
            s.reply(vec![at::ok()]).await
        }
        (Some(4), 2) => {
            let Some(link) = link_arg(s, cmd, 1) else {
                return s.reply(vec![at::error()]).await;
            };
            s.sync_socket(link).await;
            let unread = s.sh.lock().link(link).map(|sock| sock.buf.len());
            match unread {
                Some(n) => s.reply(vec![line(&format!("+CIPRXGET: 4,{link},{n}")), at::ok()]).await,
                None => s.reply(vec![at::error()]).await,
            }
        }
        (Some(2), 2 | 3) => {
            let Some(link) = link_arg(s, cmd, 1) else {
                return s.reply(vec![at::error()]).await;
            };
            let want = if cmd.argc() == 3 {
                match cmd.num(2) {
                    Some(n @ 1..) => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => return s.reply(vec![at::error()]).await,
                }
            } else {
                s.sh.cfg.max_read
            };
            s.sync_socket(link).await;
            match s.take(link, want) {
                Some((data, rest)) if !data.is_empty() => {
                    let mut piece = format!("\r\n+CIPRXGET: 2,{link},{},{rest}\r\n", data.len()).into_bytes();
                    piece.extend_from_slice(&data);
                    s.reply(vec![piece, at::ok()]).await
                }
                _ => s.reply(vec![line("+IP ERROR: No data"), at::error()]).await,
            }
        }
        _ => s.reply(vec![at::error()]).await,
    }
}

/// `AT+CIPOPEN=<l>,"TCP","<host>",<port>`: `OK` now, `+CIPOPEN: <l>,<err>` after the connect.
async fn cipopen(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let Some(link) = link_arg(s, cmd, 0) else {
        return s.reply(vec![at::error()]).await;
    };
    let fail = |code: u8| vec![line(&format!("+CIPOPEN: {link},{code}")), at::error()];
    let target = match (
        cmd.argc(),
        cmd.text(1),
        cmd.text(2),
        cmd.num(3).and_then(|p| u16::try_from(p).ok()),
    ) {
        (4, Some(kind), Some(host), Some(port))
            if kind.eq_ignore_ascii_case("TCP") && !host.is_empty() && port != 0 =>
        {
            Some((host.to_string(), port))
        }
        _ => None,
    };
    let Some((host, port)) = target else {
        return s.reply(fail(3)).await;
    };
    let opened = {
        let mut core = s.sh.lock();
        if !core.pdp {
            Err(2)
        } else if !core.manual_rx {
            Err(4)
        } else {
            match core.links[link].as_ref().map(|sock| sock.state) {
                Some(SockState::Connecting | SockState::Open) => Err(4),
                Some(SockState::PeerClosed) => {
                    // Leftovers of the previous connection on this link are thrown away.
                    s.sh.close_by_host(&mut core, link);
                    Ok(s.sh.new_socket(&mut core, link))
                }
                None => Ok(s.sh.new_socket(&mut core, link)),
            }
        }
    };
    let id = match opened {
        Ok(id) => id,
        Err(code) => return s.reply(fail(code)).await,
    };
    s.reply(vec![at::ok()]).await?;
    let sh = s.sh.clone();
    let stall = sh.lock().stall.take();
    tokio::spawn(async move {
        if let Some(stall) = stall {
            crate::time::sleep(stall.delay).await;
            let mut core = sh.lock();
            // Closed meanwhile (`CIPCLOSE` stops the attempt): nothing more happens.
            if core.socket(link, id).is_none() {
                return;
            }
            if let Some(code) = stall.result {
                core.links[link] = None;
                sh.queue(&mut core, super::Unsolicited::Line(format!("+CIPOPEN: {link},{code}")));
                return;
            }
        }
        match sh.net.connect(&host, port).await {
            Ok(conn) => {
                if let Some((conn, requests)) = sh.attach(link, id, conn) {
                    sh.urc(format!("+CIPOPEN: {link},0"));
                    socket::watch(sh, link, id, conn, requests).await;
                }
            }
            Err(_) => {
                let mut core = sh.lock();
                if core.socket(link, id).is_some() {
                    core.links[link] = None;
                    sh.queue(&mut core, super::Unsolicited::Line(format!("+CIPOPEN: {link},1")));
                }
            }
        }
    });
    Ok(())
}

/// `AT+CIPSEND=<l>,<n>`: `>`, exactly n bytes, `OK`, then `+CIPSEND: <l>,<n>,<n>`.
async fn cipsend(s: &mut Session<'_>, cmd: &Command) -> Result<(), Stop> {
    let (Some(link), Some(n @ 1..=MAX_SEND), 2) = (link_arg(s, cmd, 0), cmd.num(1), cmd.argc()) else {
        return s.reply(vec![at::error()]).await;
    };
    let writer = s.sh.lock().link(link).and_then(|sock| sock.writer());
    let Some(writer) = writer else {
        return s.reply(vec![line("+CIPERROR: 4"), at::error()]).await;
    };
    s.write(PROMPT).await?;
    let data = s.read_payload(n as usize).await?;
    if writer.write(&data).await.is_err() {
        return s.reply(vec![line("+CIPERROR: 4"), at::error()]).await;
    }
    if let Some(sock) = s.sh.lock().links[link].as_mut() {
        sock.sent += n;
    }
    s.reply(vec![at::ok()]).await?;
    s.sh.urc(format!("+CIPSEND: {link},{n},{n}"));
    Ok(())
}
