//! The AT engine: lines, unsolicited results, payloads and deadlines over a byte stream.
//!
//! Everything the modem says goes through one small receive buffer ([`RX_BUF`] bytes).
//! The engine splits it into lines (`\n`-terminated; `\r`, blanks and line noise at either end
//! are trimmed), skips the echo of the command in flight and empty lines, and sorts every
//! line into one of: final result (`OK`, `ERROR`, `+CME ERROR: …`), information the caller
//! asked for, unsolicited result (recorded in [`Events`] wherever it shows up), or garbage
//! (counted and dropped, never fatal).
//!
//! Binary payloads (`+CIPRXGET: 2,…` / `+CARECV: <n>,`) are never split into lines: the header
//! gives their exact length, the bytes already in the receive buffer are copied out first and
//! the rest is read from the UART straight into the caller's buffer, so a payload byte is
//! never lost, duplicated or mistaken for `OK`, `\r\n` or a notice.
//!
//! A restart shows as `RDY`, but some firmware restarts without it: during a session
//! ([`At::watch_restart`]) the other boot notices and an echo that `ATE0` had turned off
//! count as a restart too. A command the driver stopped waiting for may still be answered
//! (a connect that stalls past its deadline): such finals are [`At::owed`] and are not taken
//! for the answer to a later command.
//!
//! The engine does no socket logic: the dialect modules build commands and interpret what
//! the engine hands back.

use core::fmt::{self, Write as _};

use embedded_io_async::{Error as _, ErrorKind, Read, Write};

use super::ModemStats;
use super::reply::{Header, Urc, carecv_header, notice_shaped, parse_urc, plain_notice, set_text, split_name, trim};
use crate::clock::{Clock, with_timeout};

/// Receive buffer: the longest line the engine keeps whole. Longer lines are noise or
/// replies the driver never asks for (they are counted as garbage and dropped).
pub(crate) const RX_BUF: usize = 256;
/// Command buffer: the longest command, `AT+CAOPEN=0,0,"TCP","<253-byte host>",65535`.
pub(crate) const CMD_BUF: usize = 288;
/// Room kept for the text of an error reply (`+CME ERROR: SIM busy`, `+CIPERROR: 4`).
pub(crate) const ERR_TEXT: usize = 48;

/// Why an AT exchange did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtError {
    /// No final result (or prompt, or payload byte) before the deadline.
    Timeout,
    /// The modem rebooted and forgot everything: `RDY`, or (in a session) another boot
    /// notice or an echo that `ATE0` had turned off.
    Restarted,
    /// The UART itself failed.
    Uart(ErrorKind),
    /// The modem answered `ERROR` or `+CME ERROR`; the text is in [`At::err_text`].
    Rejected,
    /// The formatted command does not fit [`CMD_BUF`].
    CommandTooLong,
    /// The reply broke the framing (payload longer than asked for).
    Protocol,
}

/// How a link ended, as far as the notices tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseKind {
    /// The peer closed cleanly (`+IPCLOSE: 0,1`): what the modem still holds is the rest of
    /// the stream.
    PeerFin,
    /// Reset, aborted, or a close whose reason the modem does not tell (`+CASTATE: 0,0`):
    /// data may have been lost.
    Reset,
}

/// Unsolicited results seen so far (for link / context 0, the only one the driver uses).
/// The engine sets these wherever the lines arrive; the driver reads and clears them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    /// The modem rebooted (`RDY` or another restart sign).
    pub restarted: bool,
    /// It said `RDY`: whatever it held is gone for certain. The other signs could also be a
    /// notice the modem sends for another reason.
    pub said_rdy: bool,
    /// `+CPIN: READY` arrived unsolicited.
    pub sim_ready: bool,
    /// `+CIPRXGET: 1,0` / `+CADATAIND: 0`: data arrived in an empty receive buffer.
    pub data_ready: bool,
    /// `+IPCLOSE: 0,<r>` / `+CASTATE: 0,0` / `+CACLOSE: 0`.
    pub closed: Option<CloseKind>,
    /// `+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY` / `+APP PDP: 0,DEACTIVE`.
    pub network_down: bool,
    /// `+APP PDP: 0,ACTIVE`.
    pub pdp_active: bool,
    /// Asynchronous `+NETOPEN: <err>`.
    pub net_open: Option<u16>,
    /// `+CIPOPEN: 0,<err>` / `+CAOPEN: 0,<result>`.
    pub open_result: Option<u16>,
    /// `+CIPCLOSE: 0,<err>` / `+CCHCLOSE: 0,<err>`: our close completed.
    pub close_done: bool,
    /// `+CCHSTART: <err>`.
    pub cch_start: Option<u16>,
}

/// What the caller of a command decided about an information line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Not mine: route it as a notice (or garbage).
    No,
    /// Mine, consumed.
    Yes,
    /// Mine, and exactly this many raw payload bytes follow the line.
    Payload(usize),
    /// Mine, and it ends the reply: for answers that come after the `OK` (SIM7600
    /// `AT+CCHRECV`'s `+CCHRECV: 0,<err>`).
    End,
}

/// What a command ended with, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Final {
    /// `OK`.
    Ok,
    /// The `>` data prompt (only when asked for).
    Prompt,
}

/// Partial-line patterns the scanner recognises before a line is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Only whole lines.
    Lines,
    /// The `>` prompt of `CIPSEND` / `CASEND` (no line end follows it).
    Prompt,
    /// The SIM7080 `+CARECV: <n>,` header: payload follows the comma on the same line.
    Carecv,
}

/// One thing the scanner found in the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// A trimmed, non-empty line at `rx[start..end]` (already consumed from the buffer).
    Line(usize, usize),
    /// The `>` prompt (consumed).
    Prompt,
    /// `+CARECV: <n>,` (consumed); `n` payload bytes follow.
    Carecv(usize),
}

/// How a line was sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Error,
    Echo,
    Restart,
    Info(Take),
    Urc,
    Garbage,
}

/// The AT engine over one UART. See the module docs.
pub(crate) struct At<U, C> {
    uart: U,
    pub(super) clock: C,
    rx: [u8; RX_BUF],
    rx_start: u16,
    rx_end: u16,
    cmd: [u8; CMD_BUF],
    cmd_len: u16,
    /// Text of the last error reply (`+CME ERROR: <text>`, or the info line before `ERROR`).
    pub err_text: heapless::String<ERR_TEXT>,
    /// The last rejection was `+CME ERROR` / `+CMS ERROR`, not a plain `ERROR`.
    pub verbose_error: bool,
    /// Notices seen so far; the driver clears what it has handled.
    pub events: Events,
    pub stats: ModemStats,
    /// Final results still owed by commands the driver stopped waiting for. The modem
    /// answers one command at a time and in order, so the next finals belong to those
    /// commands, not to the one in flight.
    pub owed: u8,
    /// A session is up: boot notices other than `RDY` (`+CPIN: READY`, `+CFUN: 1`,
    /// `SMS Ready`) mean the modem restarted without saying `RDY`. Off during bring-up,
    /// where they are the boot the driver is syncing with.
    pub watch_restart: bool,
    /// The modem obeyed `ATE0`: an echo means it restarted (echo is on after power-on).
    pub echo_off: bool,
    /// An echo was seen since this was last cleared.
    pub echo_seen: bool,
}

impl<U, C> fmt::Debug for At<U, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("At")
            .field("buffered", &(self.rx_end - self.rx_start))
            .field("events", &self.events)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<U, C> At<U, C> {
    pub(crate) fn new(uart: U, clock: C) -> Self {
        Self {
            uart,
            clock,
            rx: [0; RX_BUF],
            rx_start: 0,
            rx_end: 0,
            cmd: [0; CMD_BUF],
            cmd_len: 0,
            err_text: heapless::String::new(),
            verbose_error: false,
            events: Events::default(),
            stats: ModemStats::default(),
            owed: 0,
            watch_restart: false,
            echo_off: false,
            echo_seen: false,
        }
    }

    pub(crate) fn into_inner(self) -> U {
        self.uart
    }

    pub(crate) fn uart_mut(&mut self) -> &mut U {
        &mut self.uart
    }

    fn buffered(&self) -> &[u8] {
        &self.rx[self.rx_start as usize..self.rx_end as usize]
    }

    fn consume(&mut self, n: usize) {
        self.rx_start += n as u16;
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        }
    }

    /// Drops blanks, line ends and noise in front of the next line.
    fn skip_leading(&mut self) {
        let mut noise = 0u32;
        let mut n = 0;
        for &b in self.buffered() {
            match b {
                b'\r' | b'\n' | b' ' | b'\t' => {}
                0x21..=0x7e => break,
                _ => noise += 1,
            }
            n += 1;
        }
        bump(&mut self.stats.garbage_bytes, noise);
        self.consume(n);
    }

    /// Finds the next line (or prompt / payload header) already in the buffer.
    fn scan(&mut self, probe: Probe) -> Option<Scan> {
        loop {
            self.skip_leading();
            let buf = self.buffered();
            if buf.is_empty() {
                return None;
            }
            match probe {
                Probe::Prompt if buf[0] == b'>' => {
                    let n = if buf.get(1) == Some(&b' ') { 2 } else { 1 };
                    self.consume(n);
                    return Some(Scan::Prompt);
                }
                Probe::Carecv => match carecv_header(buf) {
                    Header::Found { len, header } => {
                        self.consume(header);
                        return Some(Scan::Carecv(len));
                    }
                    Header::NeedMore => return None,
                    Header::No => {}
                },
                _ => {}
            }
            let nl = buf.iter().position(|&b| b == b'\n')?;
            let start = self.rx_start as usize;
            let (mut s, mut e) = (start, start + nl);
            // Trim trailing `\r`, blanks and noise (leading ones went in `skip_leading`).
            while e > s {
                match self.rx[e - 1] {
                    b'\r' | b' ' | b'\t' => e -= 1,
                    0x21..=0x7e => break,
                    _ => {
                        bump(&mut self.stats.garbage_bytes, 1);
                        e -= 1;
                    }
                }
            }
            // Lines that still hold control or 8-bit bytes are noise, whole.
            if self.rx[s..e].iter().any(|&b| !(0x20..=0x7e).contains(&b)) {
                bump(&mut self.stats.garbage_bytes, e - s);
                s = e;
            }
            self.consume(nl + 1);
            if s < e {
                return Some(Scan::Line(s, e));
            }
        }
    }

    /// Sorts the line `rx[s..e]`, records notices, and remembers error text.
    fn classify(&mut self, s: usize, e: usize, on_info: &mut dyn FnMut(&[u8]) -> Take) -> Class {
        let line = &self.rx[s..e];
        if line == b"OK" {
            return Class::Ok;
        }
        if line == b"ERROR" {
            if self.err_text.is_empty() {
                set_text(&mut self.err_text, line);
            }
            self.verbose_error = false;
            return Class::Error;
        }
        if line.starts_with(b"+CME ERROR:") || line.starts_with(b"+CMS ERROR:") {
            set_text(&mut self.err_text, trim(&line[11..]));
            self.verbose_error = true;
            return Class::Error;
        }
        if self.cmd_len > 0 && line.eq_ignore_ascii_case(&self.cmd[..self.cmd_len as usize]) {
            if self.watch_restart && self.echo_off {
                // Echo is back on: only a restart does that.
                return self.restart(false);
            }
            self.echo_seen = true;
            return Class::Echo;
        }
        // Plain-text notices first, so that a caller taking free text (the model name)
        // never takes `RDY` or `SMS DONE` for an answer.
        if let Some(urc) = plain_notice(line) {
            return self.record(urc);
        }
        match on_info(line) {
            Take::No => {}
            take => return Class::Info(take),
        }
        if let Some(urc) = parse_urc(line) {
            return self.record(urc);
        }
        if notice_shaped(line) {
            // A notice nobody asked for, or the detail of an error that follows
            // (`+CIPERROR: 4`, `+IP ERROR: …`): only the latter may explain the `ERROR`.
            if split_name(line).is_some_and(|(name, _)| name.windows(5).any(|w| w == b"ERROR")) {
                set_text(&mut self.err_text, line);
            }
            return self.record(Urc::Other);
        }
        bump(&mut self.stats.garbage_bytes, line.len());
        Class::Garbage
    }

    /// The modem rebooted and forgot everything: echo is on, no context, no socket, and
    /// whatever it owed is not coming.
    fn restart(&mut self, said_rdy: bool) -> Class {
        bump(&mut self.stats.restarts_seen, 1);
        self.events = Events {
            restarted: true,
            said_rdy,
            ..Events::default()
        };
        self.owed = 0;
        self.watch_restart = false;
        self.echo_off = false;
        Class::Restart
    }

    fn record(&mut self, urc: Urc) -> Class {
        bump(&mut self.stats.urcs, 1);
        match urc {
            Urc::Ready => return self.restart(true),
            Urc::SimReady | Urc::Booted if self.watch_restart => return self.restart(false),
            _ => {}
        }
        let ev = &mut self.events;
        match urc {
            Urc::SimReady => ev.sim_ready = true,
            Urc::DataReady(0) => ev.data_ready = true,
            Urc::IpClose(0, reason) => {
                ev.closed = Some(if reason == 1 {
                    CloseKind::PeerFin
                } else {
                    CloseKind::Reset
                });
            }
            Urc::SocketState(0, 0) | Urc::SocketClosed(0) => ev.closed = Some(CloseKind::Reset),
            Urc::NetworkDown => {
                ev.network_down = true;
                ev.pdp_active = false;
            }
            Urc::PdpActive => ev.pdp_active = true,
            Urc::NetOpen(err) => ev.net_open = Some(err),
            Urc::Open(0, err) => ev.open_result = Some(err),
            Urc::CloseDone(0) => ev.close_done = true,
            Urc::CchStart(err) => ev.cch_start = Some(err),
            _ => {}
        }
        Class::Urc
    }

    /// A final result arrived: `true` if it answers an earlier command the driver gave up
    /// on (and is used up here), `false` if it is the answer to the command in flight.
    fn settles_owed(&mut self) -> bool {
        if self.owed == 0 {
            return false;
        }
        self.owed -= 1;
        self.err_text.clear();
        true
    }
}

impl<U: Read + Write, C: Clock> At<U, C> {
    pub(crate) fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// The deadline `us` from now.
    pub(crate) fn deadline(&self, us: u64) -> u64 {
        self.clock.now_us().saturating_add(us)
    }

    /// Reads more bytes from the UART into the receive buffer.
    async fn fill(&mut self, deadline: u64) -> Result<(), AtError> {
        if self.rx_end as usize == RX_BUF {
            if self.rx_start == 0 {
                // A full buffer without a line end: noise or an overlong line. Drop it.
                bump(&mut self.stats.garbage_bytes, RX_BUF);
                self.rx_end = 0;
            } else {
                let (s, e) = (self.rx_start as usize, self.rx_end as usize);
                self.rx.copy_within(s..e, 0);
                self.rx_end = (e - s) as u16;
                self.rx_start = 0;
            }
        }
        let left = deadline.saturating_sub(self.clock.now_us());
        if left == 0 {
            return Err(AtError::Timeout);
        }
        let end = self.rx_end as usize;
        match with_timeout(&self.clock, left, self.uart.read(&mut self.rx[end..])).await {
            Err(_) => Err(AtError::Timeout),
            Ok(Err(e)) => Err(AtError::Uart(e.kind())),
            Ok(Ok(0)) => Err(AtError::Uart(ErrorKind::BrokenPipe)),
            Ok(Ok(n)) => {
                self.rx_end += n as u16;
                Ok(())
            }
        }
    }

    async fn next(&mut self, deadline: u64, probe: Probe) -> Result<Scan, AtError> {
        loop {
            if let Some(found) = self.scan(probe) {
                return Ok(found);
            }
            self.fill(deadline).await?;
        }
    }

    /// Handles what is already buffered (notices that came in between commands), then
    /// formats `args` and sends it with its `\r`.
    pub(crate) async fn send(&mut self, args: fmt::Arguments<'_>, deadline: u64) -> Result<(), AtError> {
        self.cmd_len = 0;
        while let Some(found) = self.scan(Probe::Lines) {
            if let Scan::Line(s, e) = found {
                self.stray(s, e)?;
            }
        }
        let mut w = CmdWriter {
            buf: &mut self.cmd,
            len: 0,
        };
        if w.write_fmt(args).is_err() || w.len >= CMD_BUF {
            return Err(AtError::CommandTooLong);
        }
        let len = w.len;
        self.cmd[len] = b'\r';
        self.cmd_len = len as u16;
        self.err_text.clear();
        bump(&mut self.stats.commands, 1);
        write_io(&mut self.uart, &self.clock, &self.cmd[..=len], deadline).await
    }

    /// Writes raw payload bytes (after a `>` prompt).
    pub(crate) async fn send_payload(&mut self, data: &[u8], deadline: u64) -> Result<(), AtError> {
        write_io(&mut self.uart, &self.clock, data, deadline).await
    }

    /// A command the modem answers with its `>` prompt, then `payload`, then the final
    /// result: how both dialects send socket data, and how a file goes onto the modem. Each
    /// half gets `timeout_us`.
    pub(crate) async fn send_prompted(
        &mut self,
        args: fmt::Arguments<'_>,
        payload: &[u8],
        timeout_us: u64,
    ) -> Result<(), AtError> {
        let deadline = self.deadline(timeout_us);
        self.send(args, deadline).await?;
        if self
            .finish(deadline, Probe::Prompt, &mut [], &mut 0, &mut |_| Take::No)
            .await?
            != Final::Prompt
        {
            return Err(AtError::Protocol);
        }
        self.payload_then_final(payload, timeout_us).await
    }

    /// A command the modem answers with the line `ready` (the SIM7080's `DOWNLOAD` for
    /// `AT+CFSWFILE`) instead of a `>` prompt, then `payload`, then the final result.
    pub(crate) async fn send_after_line(
        &mut self,
        args: fmt::Arguments<'_>,
        ready: &[u8],
        payload: &[u8],
        timeout_us: u64,
    ) -> Result<(), AtError> {
        let deadline = self.deadline(timeout_us);
        self.send(args, deadline).await?;
        self.finish(deadline, Probe::Lines, &mut [], &mut 0, &mut |line| {
            if line == ready { Take::End } else { Take::No }
        })
        .await?;
        self.payload_then_final(payload, timeout_us).await
    }

    async fn payload_then_final(&mut self, payload: &[u8], timeout_us: u64) -> Result<(), AtError> {
        let deadline = self.deadline(timeout_us);
        self.send_payload(payload, deadline).await?;
        self.finish(deadline, Probe::Lines, &mut [], &mut 0, &mut |_| Take::No)
            .await
            .map(|_| ())
    }

    /// Waits for the final result of the command in flight.
    ///
    /// Information lines go to `on_info` (after echo, finals and plain-text notices have
    /// been taken out); whatever it does not take is routed as a notice or garbage. When it
    /// answers [`Take::Payload`], or the [`Probe::Carecv`] header shows up, the payload is
    /// copied into `dest[*got..]` and `*got` advances; a payload longer than `dest` has room
    /// for is read and dropped and the command ends in [`AtError::Protocol`].
    pub(crate) async fn finish(
        &mut self,
        deadline: u64,
        probe: Probe,
        dest: &mut [u8],
        got: &mut usize,
        on_info: &mut dyn FnMut(&[u8]) -> Take,
    ) -> Result<Final, AtError> {
        let mut overflow = false;
        loop {
            let payload = match self.next(deadline, probe).await? {
                Scan::Prompt => return Ok(Final::Prompt),
                Scan::Carecv(n) => n,
                Scan::Line(s, e) => match self.classify(s, e, on_info) {
                    Class::Ok | Class::Error if self.settles_owed() => continue,
                    Class::Ok if overflow => return Err(AtError::Protocol),
                    Class::Ok => return Ok(Final::Ok),
                    Class::Error => return Err(AtError::Rejected),
                    Class::Restart => return Err(AtError::Restarted),
                    Class::Info(Take::Payload(n)) => n,
                    Class::Info(Take::End) if overflow => return Err(AtError::Protocol),
                    Class::Info(Take::End) => return Ok(Final::Ok),
                    Class::Echo | Class::Info(_) | Class::Urc | Class::Garbage => continue,
                },
            };
            let room = dest.len() - *got;
            let take = payload.min(room);
            self.read_exact(&mut dest[*got..*got + take], deadline).await?;
            *got += take;
            if payload > take {
                overflow = true;
                self.discard(payload - take, deadline).await?;
            }
        }
    }

    /// Sends a command and waits for its final result.
    pub(crate) async fn command(
        &mut self,
        args: fmt::Arguments<'_>,
        timeout_us: u64,
        on_info: &mut dyn FnMut(&[u8]) -> Take,
    ) -> Result<(), AtError> {
        let deadline = self.deadline(timeout_us);
        self.send(args, deadline).await?;
        self.finish(deadline, Probe::Lines, &mut [], &mut 0, on_info)
            .await
            .map(|_| ())
    }

    /// Reads lines with no command in flight until `done(&events)` holds or the deadline
    /// passes. Notices are recorded; anything else is garbage.
    pub(crate) async fn wait_for(&mut self, deadline: u64, done: fn(&Events) -> bool) -> Result<(), AtError> {
        loop {
            if done(&self.events) {
                return Ok(());
            }
            if let Scan::Line(s, e) = self.next(deadline, Probe::Lines).await? {
                self.stray(s, e)?;
            }
        }
    }

    /// A line with no command waiting for it: notices are recorded, a final result pays
    /// off an owed one, anything else is stale and dropped.
    fn stray(&mut self, s: usize, e: usize) -> Result<(), AtError> {
        match self.classify(s, e, &mut |_| Take::No) {
            Class::Restart => return Err(AtError::Restarted),
            Class::Ok | Class::Error if self.settles_owed() => {}
            Class::Ok | Class::Error | Class::Echo | Class::Info(_) => {
                bump(&mut self.stats.garbage_bytes, e - s);
            }
            Class::Urc | Class::Garbage => {}
        }
        Ok(())
    }

    /// Exactly `dest.len()` payload bytes: first from the receive buffer, then straight
    /// from the UART into `dest`.
    async fn read_exact(&mut self, dest: &mut [u8], deadline: u64) -> Result<(), AtError> {
        let have = self.buffered().len().min(dest.len());
        dest[..have].copy_from_slice(&self.buffered()[..have]);
        self.consume(have);
        let mut got = have;
        while got < dest.len() {
            let left = deadline.saturating_sub(self.clock.now_us());
            if left == 0 {
                return Err(AtError::Timeout);
            }
            match with_timeout(&self.clock, left, self.uart.read(&mut dest[got..])).await {
                Err(_) => return Err(AtError::Timeout),
                Ok(Err(e)) => return Err(AtError::Uart(e.kind())),
                Ok(Ok(0)) => return Err(AtError::Uart(ErrorKind::BrokenPipe)),
                Ok(Ok(n)) => got += n,
            }
        }
        self.stats.payload_bytes = self.stats.payload_bytes.saturating_add(dest.len() as u64);
        Ok(())
    }

    /// Reads and drops exactly `n` payload bytes.
    async fn discard(&mut self, mut n: usize, deadline: u64) -> Result<(), AtError> {
        while n > 0 {
            if self.buffered().is_empty() {
                self.rx_start = 0;
                self.rx_end = 0;
                let want = n.min(RX_BUF);
                let left = deadline.saturating_sub(self.clock.now_us());
                if left == 0 {
                    return Err(AtError::Timeout);
                }
                match with_timeout(&self.clock, left, self.uart.read(&mut self.rx[..want])).await {
                    Err(_) => return Err(AtError::Timeout),
                    Ok(Err(e)) => return Err(AtError::Uart(e.kind())),
                    Ok(Ok(0)) => return Err(AtError::Uart(ErrorKind::BrokenPipe)),
                    Ok(Ok(k)) => self.rx_end = k as u16,
                }
            }
            let k = self.buffered().len().min(n);
            self.consume(k);
            bump(&mut self.stats.garbage_bytes, k);
            n -= k;
        }
        Ok(())
    }
}

/// Adds to a counter; counters stick at their maximum rather than wrap.
fn bump(counter: &mut u32, n: impl TryInto<u32>) {
    *counter = counter.saturating_add(n.try_into().unwrap_or(u32::MAX));
}

/// Writes all of `bytes` and flushes, within the deadline.
async fn write_io<U: Write, C: Clock>(uart: &mut U, clock: &C, bytes: &[u8], deadline: u64) -> Result<(), AtError> {
    let left = deadline.saturating_sub(clock.now_us()).max(1);
    let io = async {
        uart.write_all(bytes).await?;
        uart.flush().await
    };
    match with_timeout(clock, left, io).await {
        Err(_) => Err(AtError::Timeout),
        Ok(Err(e)) => Err(AtError::Uart(e.kind())),
        Ok(Ok(())) => Ok(()),
    }
}

/// Formats a command into the fixed command buffer.
struct CmdWriter<'a> {
    buf: &'a mut [u8; CMD_BUF],
    len: usize,
}

impl fmt::Write for CmdWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        // Keep one byte for the `\r`.
        if self.len + b.len() >= CMD_BUF {
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}
