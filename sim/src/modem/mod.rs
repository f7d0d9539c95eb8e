//! Modem emulators: SIMCom SIM7600 (`CIP*`) and SIM7080 (`CA*`) on the virtual UART.
//!
//! The bytes follow `docs/at-dialects.md`, the contract the device driver is written
//! against. One tokio task per modem reads the UART and answers **one command at a time**:
//! a command that arrives while the modem is still answering waits until the answer is
//! completely written, then costs [`ModemEmulatorConfig::command_latency`]. All pacing comes
//! from the UART pipes (a reply takes its line time at the baud) and from [`crate::time`],
//! so a scenario runs in virtual time.
//!
//! # Sockets
//!
//! A connection through [`Network`] is watched by a small task that moves bytes as they
//! *arrive* into the modem's socket buffer ([`ModemEmulatorConfig::rx_buffer`] bytes; when it
//! is full the task stops taking, the network's window fills and the origin stalls). The
//! host reads from that buffer with `AT+CIPRXGET=2` / `AT+CARECV`. Just before a read or a
//! query the modem asks the watcher for everything that has arrived by then, so a read never
//! sees a byte early and never misses one that is there.
//!
//! The watcher also raises the notices: the data-ready line once when the buffer goes from
//! empty to non-empty (not again until the host has read it empty); on a peer FIN, SIM7600
//! `+IPCLOSE: <l>,1` with the unread data still readable, SIM7080 `+CASTATE: <cid>,0` with
//! the unread data thrown away; on a reset (RST, a NAT that forgot the mapping)
//! `+IPCLOSE: <l>,2` / `+CASTATE: <cid>,0` and the unread data thrown away. Thrown-away
//! bytes are counted in [`ModemEmuStats::discarded_bytes`].
//!
//! # Unsolicited output
//!
//! Notices, injected lines ([`ModemHandle::inject_urc`]) and noise
//! ([`ModemHandle::inject_garbage`]) wait in a queue and go out at the next boundary: when
//! the modem is idle, before a command's reply, between the lines of a reply, or while a
//! command waits (its latency, a `CAOPEN` connect). Never inside a binary payload, never
//! between a read reply's header and its data, never between a `>` prompt and the end of
//! the payload the host sends after it.
//!
//! # Firmware quirks
//!
//! What real modems do beyond the contract can be switched on (`quirks`, and the settings in
//! [`ModemEmulatorConfig`]): a notice at a chosen point of a chosen command's answer, a
//! restart that prints no `RDY`, a connect answered after a long stall, commands that answer
//! plain `ERROR`, registration on 2G/3G only, echo that `ATE0` leaves on.
//!
//! # What is not emulated
//!
//! Direct-push receive (SIM7600 without `AT+CIPRXGET=1`: `CIPOPEN` then fails with
//! `+CIPOPEN: <l>,4`), hex reads (`CIPRXGET=3`), UDP, SMS. The SIM7600's SSL client (`CCH*`)
//! and the SIM7080's SSL on `CA*` connections do real TLS: see `sim7600_tls` and
//! `sim7080_tls` (what they share is in `ssl`). Echo is written when a command is taken up,
//! not while its characters arrive.

mod at;
mod common;
mod config;
mod quirks;
mod registration;
mod sim7080;
mod sim7080_tls;
mod sim7600;
mod sim7600_tls;
mod socket;
mod ssl;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::net::Network;
use crate::time;
use crate::uart::UartEnd;

use at::{Command, line};
use socket::{Request, Socket};

pub use config::{IPR_RATES, IprBehaviour, ModemEmulatorConfig, RegisteredOn, default_command_latency};
pub use quirks::{BootOutput, ReplyPoint};

/// Which AT dialect the emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// SIMCom SIM7600 (LTE Cat-1/Cat-4): `NETOPEN`, `CIPOPEN`, `CIPSEND`, `CIPRXGET`.
    Sim7600,
    /// SIMCom SIM7080 (LTE Cat-M/NB-IoT): `CNACT`, `CAOPEN`, `CASEND`, `CARECV`.
    Sim7080,
}

impl Dialect {
    /// The `AT+CGMM` answer.
    fn model(self) -> &'static str {
        match self {
            Dialect::Sim7600 => "SIMCOM_SIM7600G-H",
            Dialect::Sim7080 => "SIM7080G",
        }
    }

    /// Link ids (SIM7600 `0..=9`) or connection ids (SIM7080 `0..=12`).
    fn links(self) -> usize {
        match self {
            Dialect::Sim7600 => 10,
            Dialect::Sim7080 => 13,
        }
    }

    /// Socket-table entries: the links, then (SIM7600) the SSL client's sessions.
    fn sockets(self) -> usize {
        match self {
            Dialect::Sim7600 => self.links() + sim7600_tls::SESSIONS,
            Dialect::Sim7080 => self.links(),
        }
    }

    /// The notice for data arriving in an empty receive buffer.
    fn data_ready_urc(self, link: usize) -> String {
        if let Some(session) = self.ssl_session(link) {
            return format!("+CCHEVENT: {session},RECV EVENT");
        }
        match self {
            Dialect::Sim7600 => format!("+CIPRXGET: 1,{link}"),
            Dialect::Sim7080 => format!("+CADATAIND: {link}"),
        }
    }

    /// The notice for a connection the network closed: by the peer's FIN or by a reset.
    fn closed_urc(self, link: usize, peer_fin: bool) -> String {
        if let Some(session) = self.ssl_session(link) {
            // A reset: the receive failed (`<err>` 9, network error; not confirmed in a capture).
            return match peer_fin {
                true => format!("+CCH_PEER_CLOSED: {session}"),
                false => format!("+CCH_RECV_CLOSED: {session},9"),
            };
        }
        match self {
            Dialect::Sim7600 => format!("+IPCLOSE: {link},{}", if peer_fin { 1 } else { 2 }),
            Dialect::Sim7080 => format!("+CASTATE: {link},0"),
        }
    }

    /// The SSL session a socket-table entry belongs to (SIM7600 `CCH*`).
    fn ssl_session(self, link: usize) -> Option<usize> {
        match self {
            Dialect::Sim7600 => sim7600_tls::session_of(link),
            Dialect::Sim7080 => None,
        }
    }
}

/// Counters a scenario reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ModemEmuStats {
    /// Commands taken up (after boot).
    pub commands: u64,
    /// Read commands (`CIPRXGET=2`, `CARECV`) answered for an existing socket.
    pub reads: u64,
    /// Payload bytes delivered to the host by those reads.
    pub bytes_read: u64,
    /// Unsolicited lines written (boot lines, notices, injected lines; not noise).
    pub urcs_sent: u64,
    /// Certificate files written to the modem's flash (SIM7600 `AT+CCERTDOWN`; SIM7080
    /// `AT+CFSWFILE` and each `AT+CSSLCFG="convert"` into its certificate store).
    pub cert_downloads: u64,
    /// TLS sessions set up (`+CCHOPEN: <s>,0`, SIM7080 `+CAOPEN: <cid>,0` with SSL).
    pub tls_handshakes: u64,
    /// TLS bytes received beyond the plaintext they carried: handshakes, record headers
    /// and tags. Airtime the plaintext counters above do not show.
    pub tls_overhead_bytes: u64,
    /// Modem reboots (handle, `AT+CRESET`, `AT+CFUN=1,1`).
    pub resets: u64,
    /// Bytes that had arrived in a socket buffer and were thrown away unread.
    pub discarded_bytes: u64,
    /// Registrations lost ([`ModemHandle::deregister`]) and regained.
    pub deregistrations: u64,
    pub reattaches: u64,
}

/// Controls a running emulator from the scenario.
#[derive(Debug, Clone)]
pub struct ModemHandle {
    shared: Arc<Shared>,
}

impl ModemHandle {
    /// Queues an unsolicited line; it goes out framed `\r\n<line>\r\n` at the next boundary.
    pub fn inject_urc(&self, line: &str) {
        let mut core = self.shared.lock();
        self.shared.queue(&mut core, Unsolicited::Line(line.to_string()));
    }

    /// Queues raw noise for the next boundary.
    pub fn inject_garbage(&self, bytes: &[u8]) {
        let mut core = self.shared.lock();
        self.shared.queue(&mut core, Unsolicited::Raw(bytes.to_vec()));
    }

    /// Reboots the modem: sockets dropped (unread data lost, peers reset), echo on, PDP
    /// down, silent for `boot_time`, then the boot lines.
    pub fn reset(&self) {
        let mut core = self.shared.lock();
        self.shared.reboot_state(&mut core);
        drop(core);
        self.shared.reboot.notify_one();
    }

    /// The packet network drops: SIM7600 `+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`, SIM7080
    /// `+CASTATE: <cid>,0` for each open socket and `+APP PDP: 0,DEACTIVE`. Sockets are
    /// closed with their unread data; `NETOPEN` / `CNACT` is needed again. Nothing happens
    /// while the context is down already.
    pub fn network_lost(&self) {
        let sh = &self.shared;
        let mut core = sh.lock();
        if !core.booted || !core.pdp {
            return;
        }
        core.pdp = false;
        for link in 0..core.links.len() {
            let Some(sock) = core.links[link].take() else { continue };
            core.stats.discarded_bytes += sock.buf.len() as u64;
            let was_open = sock.state == socket::SockState::Open;
            sock.abort();
            if sh.cfg.dialect == Dialect::Sim7080 && was_open {
                sh.queue(&mut core, Unsolicited::Line(sh.cfg.dialect.closed_urc(link, false)));
            }
        }
        if std::mem::replace(&mut core.ssl.started, false) {
            sh.queue(&mut core, Unsolicited::Line("+CCH: CCH STOP".into()));
        }
        let notice = match sh.cfg.dialect {
            Dialect::Sim7600 => "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY",
            Dialect::Sim7080 => "+APP PDP: 0,DEACTIVE",
        };
        sh.queue(&mut core, Unsolicited::Line(notice.into()));
    }

    pub fn stats(&self) -> ModemEmuStats {
        let core = self.shared.lock();
        ModemEmuStats {
            cert_downloads: core.ssl.files.writes + core.ca_ssl.flash_writes(),
            tls_handshakes: self.shared.tls.handshakes.load(std::sync::atomic::Ordering::Relaxed),
            tls_overhead_bytes: self.shared.tls.overhead_in(),
            ..core.stats
        }
    }

    pub fn config(&self) -> &ModemEmulatorConfig {
        &self.shared.cfg
    }
}

/// Powers the modem on: it boots (silent for `boot_time`, then `RDY` and the boot lines) and
/// then answers on `uart` (the modem end of [`crate::uart::uart`]), connecting through `net`.
pub fn spawn_modem(cfg: ModemEmulatorConfig, uart: UartEnd, net: Network) -> ModemHandle {
    let links = cfg.dialect.sockets();
    let shared = Arc::new(Shared {
        cfg,
        net,
        core: Mutex::new(Core {
            generation: 0,
            booted: false,
            echo: true,
            cereg_mode: 0,
            reg_stat: 1,
            cmee: 0,
            pdp: false,
            manual_rx: false,
            baud: uart.initial_baud(),
            apn: String::new(),
            links: (0..links).map(|_| None).collect(),
            next_socket_id: 1,
            in_reply: Vec::new(),
            boot_output: BootOutput::Lines,
            stall: None,
            ssl: sim7600_tls::SslState::default(),
            ca_ssl: sim7080_tls::SslState::default(),
            out: VecDeque::new(),
            stats: ModemEmuStats::default(),
        }),
        wake: Notify::new(),
        reboot: Notify::new(),
        tls: Arc::default(),
    });
    tokio::spawn(run_modem(shared.clone(), uart));
    ModemHandle { shared }
}

/// Output that is not part of a command's reply.
#[derive(Debug)]
enum Unsolicited {
    Line(String),
    Raw(Vec<u8>),
    /// The data-ready notice of one socket; dropped if the host has read the buffer empty
    /// (or the socket is gone) by the time it would go out.
    DataReady {
        link: usize,
        id: u64,
    },
}

#[derive(Debug)]
struct Shared {
    cfg: ModemEmulatorConfig,
    net: Network,
    core: Mutex<Core>,
    /// Unsolicited output was queued.
    wake: Notify,
    /// A reboot was requested from outside the modem task.
    reboot: Notify,
    /// What the SSL client's sessions received on the wire.
    tls: Arc<crate::tls::TlsCounters>,
}

#[derive(Debug)]
struct Core {
    /// Bumped by every reboot; tasks started before it (connects, timers) see it changed.
    generation: u64,
    /// `RDY` has been sent: commands are answered, unsolicited output flows.
    booted: bool,
    echo: bool,
    cmee: u8,
    cereg_mode: u8,
    /// The `+CEREG` stat: 1 registered (home), 2 searching, 0 not searching. Radio state:
    /// a reboot does not change it.
    reg_stat: u8,
    /// SIM7600 `NETOPEN` / SIM7080 `CNACT=0,1`.
    pdp: bool,
    /// SIM7600 `AT+CIPRXGET=1`.
    manual_rx: bool,
    /// The UART rate now (`AT+IPR`); back to the power-on rate at every restart.
    baud: u32,
    apn: String,
    links: Vec<Option<Socket>>,
    next_socket_id: u64,
    out: VecDeque<Unsolicited>,
    stats: ModemEmuStats,
    /// Notices waiting for the answer to a given command.
    in_reply: Vec<quirks::InReply>,
    /// What the next boot prints.
    boot_output: BootOutput,
    /// The next connect's stall.
    stall: Option<quirks::Stall>,
    /// The SIM7600 SSL client (`CCH*`).
    ssl: sim7600_tls::SslState,
    /// The SIM7080's SSL on `CA*` connections, its file system and certificate store.
    ca_ssl: sim7080_tls::SslState,
}

impl Core {
    /// Registered on the network (home or roaming): the packet network can be opened.
    fn registered(&self) -> bool {
        matches!(self.reg_stat, 1 | 5)
    }

    fn socket(&self, link: usize, id: u64) -> Option<&Socket> {
        self.links.get(link)?.as_ref().filter(|s| s.id == id)
    }

    fn socket_mut(&mut self, link: usize, id: u64) -> Option<&mut Socket> {
        self.links.get_mut(link)?.as_mut().filter(|s| s.id == id)
    }

    fn link(&self, link: usize) -> Option<&Socket> {
        self.links.get(link)?.as_ref()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().expect("modem lock poisoned")
    }

    fn queue(&self, core: &mut Core, u: Unsolicited) {
        core.out.push_back(u);
        self.wake.notify_one();
    }

    fn urc(&self, text: String) {
        let mut core = self.lock();
        self.queue(&mut core, Unsolicited::Line(text));
    }

    /// Everything a reboot forgets.
    fn reboot_state(&self, core: &mut Core) {
        core.generation += 1;
        core.booted = false;
        core.echo = true;
        core.cmee = 0;
        core.cereg_mode = 0;
        core.pdp = false;
        core.manual_rx = false;
        core.ssl.reboot();
        core.ca_ssl.reboot();
        for slot in core.links.iter_mut() {
            if let Some(sock) = slot.take() {
                core.stats.discarded_bytes += sock.buf.len() as u64;
                sock.abort();
            }
        }
        core.out.clear();
        core.stats.resets += 1;
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The UART was torn down: the modem task ends.
    Uart,
    /// A command rebooted the modem (state already reset).
    Reboot,
}

async fn run_modem(sh: Arc<Shared>, mut uart: UartEnd) {
    loop {
        let mut session = Session {
            sh: &sh,
            uart: &mut uart,
            inbuf: Vec::new(),
            in_reply: None,
        };
        let rebooted = tokio::select! {
            biased;
            _ = sh.reboot.notified() => true,
            r = session.run() => r == Err(Stop::Reboot),
        };
        if !rebooted {
            return;
        }
    }
}

/// Longest command line kept; longer input without `\r` is noise and is dropped.
const MAX_LINE: usize = 4096;

/// One power cycle of the modem: boot, then commands until the UART goes away or a reboot.
struct Session<'a> {
    sh: &'a Arc<Shared>,
    uart: &'a mut UartEnd,
    /// Received bytes not yet taken up as a command.
    inbuf: Vec<u8>,
    /// The notice injected into the answer to the command in flight.
    in_reply: Option<quirks::InReply>,
}

impl Session<'_> {
    async fn run(&mut self) -> Result<(), Stop> {
        self.boot().await?;
        let mut chunk = [0u8; 512];
        loop {
            self.flush().await?;
            if let Some(cmd) = self.next_command() {
                self.process(cmd).await?;
                continue;
            }
            tokio::select! {
                biased;
                r = self.uart.rx.read(&mut chunk) => {
                    let n = r.map_err(|_| Stop::Uart)?;
                    if n == 0 {
                        return Err(Stop::Uart);
                    }
                    self.inbuf.extend_from_slice(&chunk[..n]);
                }
                _ = self.sh.wake.notified() => {}
            }
        }
    }

    /// Silent for `boot_time` (input is swallowed), then the boot lines, at the power-on
    /// rate.
    async fn boot(&mut self) -> Result<(), Stop> {
        let power_on = self.uart.initial_baud();
        self.uart.set_baud(power_on);
        self.sh.lock().baud = power_on;
        let ready_at = time::now_ns() + self.sh.cfg.boot_time.as_nanos() as u64;
        let mut chunk = [0u8; 512];
        loop {
            tokio::select! {
                biased;
                _ = time::sleep_until_ns(ready_at) => break,
                r = self.uart.rx.read(&mut chunk) => {
                    if r.map_err(|_| Stop::Uart)? == 0 {
                        return Err(Stop::Uart);
                    }
                }
            }
        }
        self.inbuf.clear();
        let sh = self.sh;
        let (now, late): (&[&str], &[&str]) = match sh.cfg.dialect {
            Dialect::Sim7600 => (&["RDY", "+CPIN: READY"], &["SMS DONE", "PB DONE"]),
            Dialect::Sim7080 => (&["RDY", "+CFUN: 1", "+CPIN: READY", "SMS Ready"], &[]),
        };
        let delay = sh.cfg.late_urc_delay;
        let mut core = sh.lock();
        core.booted = true;
        let mut boot: Vec<&str> = now.to_vec();
        if delay.is_zero() {
            boot.extend_from_slice(late);
        } else if !late.is_empty() {
            let generation = core.generation;
            let sh2 = sh.clone();
            tokio::spawn(async move {
                time::sleep(delay).await;
                let mut core = sh2.lock();
                if core.generation == generation {
                    for l in late {
                        sh2.queue(&mut core, Unsolicited::Line((*l).to_string()));
                    }
                }
            });
        }
        core.queue_boot(&boot);
        drop(core);
        sh.wake.notify_one();
        Ok(())
    }

    /// The next complete command line (text from `AT` up to, not including, the `\r`).
    /// Bytes before the `AT` of a line (a stray `\n`, noise) are dropped, as are lines
    /// with no `AT` at all.
    fn next_command(&mut self) -> Option<Vec<u8>> {
        loop {
            let Some(cr) = self.inbuf.iter().position(|&b| b == b'\r') else {
                if self.inbuf.len() > MAX_LINE {
                    self.inbuf.clear();
                }
                return None;
            };
            let line: Vec<u8> = self.inbuf.drain(..=cr).take(cr).collect();
            if let Some(at) = line.windows(2).position(|w| w.eq_ignore_ascii_case(b"AT")) {
                return Some(line[at..].to_vec());
            }
        }
    }

    async fn process(&mut self, text: Vec<u8>) -> Result<(), Stop> {
        let echo = {
            let mut core = self.sh.lock();
            core.stats.commands += 1;
            self.in_reply = core.take_in_reply(&text);
            core.echo
        };
        self.injected(ReplyPoint::BeforeEcho).await?;
        if echo {
            let mut e = text.clone();
            e.push(b'\r');
            self.write(&e).await?;
        }
        self.injected(ReplyPoint::AfterEcho).await?;
        self.pause(self.sh.cfg.command_latency).await?;
        self.answer(&text).await?;
        // A point the answer did not have (no final after a prompt): it still happens.
        if let Some(inj) = self.in_reply.take() {
            self.inject(inj.what).await?;
        }
        Ok(())
    }

    async fn answer(&mut self, text: &[u8]) -> Result<(), Stop> {
        let Some(cmd) = Command::parse(text) else {
            return self.reply(vec![at::error()]).await;
        };
        if self
            .sh
            .cfg
            .plain_error
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&cmd.name))
        {
            return self.reply(vec![at::error()]).await;
        }
        if self.common(&cmd).await? {
            return Ok(());
        }
        let handled = match self.sh.cfg.dialect {
            Dialect::Sim7600 => sim7600::execute(self, &cmd).await?,
            Dialect::Sim7080 => sim7080::execute(self, &cmd).await?,
        };
        if !handled {
            self.reply(vec![at::error()]).await?;
        }
        Ok(())
    }

    /// Writes the injected notice if it goes at `point`.
    async fn injected(&mut self, point: ReplyPoint) -> Result<(), Stop> {
        if self.in_reply.as_ref().is_some_and(|i| i.at == point)
            && let Some(inj) = self.in_reply.take()
        {
            self.inject(inj.what).await?;
        }
        Ok(())
    }

    async fn inject(&mut self, what: quirks::Injected) -> Result<(), Stop> {
        match what {
            quirks::Injected::Line(text) => self.write(&line(&text)).await,
            quirks::Injected::Restart(output) => {
                let stop = self.reboot();
                self.sh.lock().boot_output = output;
                Err(stop)
            }
        }
    }

    /// Reboots from a command (after its `OK` went out).
    fn reboot(&self) -> Stop {
        let mut core = self.sh.lock();
        self.sh.reboot_state(&mut core);
        Stop::Reboot
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.uart.tx.write(bytes).await.map_err(|_| Stop::Uart)
    }

    /// Writes a reply, one piece after another; queued unsolicited output may go out
    /// between the pieces (each piece is a whole line, or a read header with its data).
    async fn reply(&mut self, pieces: Vec<Vec<u8>>) -> Result<(), Stop> {
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                self.flush().await?;
            }
            if i == last {
                self.injected(ReplyPoint::BeforeFinal).await?;
            }
            self.write(piece).await?;
        }
        self.injected(ReplyPoint::AfterFinal).await
    }

    /// Writes all queued unsolicited output (once booted).
    async fn flush(&mut self) -> Result<(), Stop> {
        loop {
            let bytes = {
                let mut core = self.sh.lock();
                if !core.booted {
                    return Ok(());
                }
                let Some(u) = core.out.pop_front() else { return Ok(()) };
                match u {
                    Unsolicited::Line(text) => {
                        core.stats.urcs_sent += 1;
                        line(&text)
                    }
                    Unsolicited::Raw(bytes) => bytes,
                    Unsolicited::DataReady { link, id } => {
                        if core.socket(link, id).is_none_or(|s| s.buf.is_empty()) {
                            continue;
                        }
                        core.stats.urcs_sent += 1;
                        line(&self.sh.cfg.dialect.data_ready_urc(link))
                    }
                }
            };
            self.write(&bytes).await?;
        }
    }

    /// Waits for `fut`, writing unsolicited output that comes up meanwhile.
    async fn wait_for<F: Future>(&mut self, fut: F) -> Result<F::Output, Stop> {
        tokio::pin!(fut);
        loop {
            self.flush().await?;
            tokio::select! {
                biased;
                r = &mut fut => return Ok(r),
                _ = self.sh.wake.notified() => {}
            }
        }
    }

    /// The command latency (or any modem-side wait) with the line free for notices.
    async fn pause(&mut self, d: Duration) -> Result<(), Stop> {
        if d.is_zero() {
            return Ok(());
        }
        self.wait_for(time::sleep(d)).await
    }

    /// Exactly `n` payload bytes after a `>` prompt (bytes already received count).
    async fn read_payload(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        let take = n.min(self.inbuf.len());
        let mut data: Vec<u8> = self.inbuf.drain(..take).collect();
        let mut chunk = [0u8; 1024];
        while data.len() < n {
            let want = (n - data.len()).min(chunk.len());
            let got = self.uart.rx.read(&mut chunk[..want]).await.map_err(|_| Stop::Uart)?;
            if got == 0 {
                return Err(Stop::Uart);
            }
            data.extend_from_slice(&chunk[..got]);
        }
        Ok(data)
    }

    /// Has the socket's watcher take in every byte that has arrived by now.
    async fn sync_socket(&self, link: usize) {
        let requests = {
            let core = self.sh.lock();
            core.link(link)
                .and_then(|s| s.conn.as_ref())
                .map(|c| c.requests.clone())
        };
        if let Some(requests) = requests {
            let (ack, done) = oneshot::channel();
            if requests.send(Request::Drain(ack)).is_ok() {
                let _ = done.await;
            }
        }
    }

    /// Takes up to `want` (clamped to `max_read`) unread bytes of a socket.
    /// `None`: no such socket. `Some((data, rest))`.
    fn take(&self, link: usize, want: usize) -> Option<(Vec<u8>, usize)> {
        let sh = self.sh;
        let mut core = sh.lock();
        let cap = sh.cfg.rx_buffer;
        let sock = core.links.get_mut(link)?.as_mut()?;
        let was_full = sock.buf.len() >= cap;
        let n = want.min(sh.cfg.max_read.max(1)).min(sock.buf.len());
        let data: Vec<u8> = sock.buf.drain(..n).collect();
        let rest = sock.buf.len();
        let id = sock.id;
        if was_full && let Some(c) = &sock.conn {
            let _ = c.requests.send(Request::Room);
        }
        if rest == 0 {
            sock.armed = true;
            if sock.state == socket::SockState::PeerClosed {
                core.links[link] = None;
            }
            core.out
                .retain(|u| !matches!(u, Unsolicited::DataReady { id: i, .. } if *i == id));
        }
        core.stats.reads += 1;
        core.stats.bytes_read += n as u64;
        Some((data, rest))
    }
}
