//! Bring-up: sync with the modem, set it up, raise the UART rate, attach.

use core::fmt::Write as _;

use embedded_io_async::{Read, Write};

use super::at::{self, AtError, Take};
use super::reply::{Fields, after, bare_answer, set_text};
use super::{
    BAUD_CHECK_US, BAUD_CHECKS, Dialect, Link, MAX_RESTARTS, Modem, ModemError, ModemInfo, SYNC_ATTEMPT_US,
    SYNC_SETTLE_US, apn_ok, sim7080, sim7600, sim7600_tls, us_to_secs,
};
use crate::clock::Clock;
use crate::socket::Socket;

/// The bring-up commands that only ask or set one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Query {
    EchoOff,
    /// `AT+IPR=<fast_baud>`.
    FastRate,
    VerboseErrors,
    Model,
    Signal,
    Operator,
    Context,
}

impl<U: Read + Write, C: Clock> Modem<U, C> {
    /// Brings the modem up from any state (cold boot, after a restart, after the network
    /// dropped): sync with `AT`, echo off, verbose errors, model, SIM, registration, signal,
    /// operator, PDP context, then the dialect's packet-network attach. Any open connection
    /// is forgotten.
    pub async fn bring_up(&mut self) -> Result<ModemInfo, ModemError> {
        if !apn_ok(&self.cfg.apn) {
            return Err(ModemError::InvalidApn);
        }
        if matches!(self.link, Link::Open | Link::Ending(_) | Link::Ended(_)) {
            // Free the modem's link so that the next connect can use it.
            self.close().await;
        }
        self.link = Link::Down;
        // The modem may have restarted: the first TLS connect checks the CA and context again
        // (a list and a few settings, no write unless the CA changed).
        self.tls_ready = false;
        self.plain_ready = false;
        // Boot notices from here on belong to the boot being synced with.
        self.at.watch_restart = false;
        let mut restarts = 0u8;
        loop {
            match self.bring_up_once().await {
                Ok(info) => {
                    self.link = Link::Idle;
                    self.maybe_data = false;
                    self.at.watch_restart = true;
                    return Ok(info);
                }
                Err(ModemError::Restarted { .. }) if restarts < MAX_RESTARTS => restarts += 1,
                Err(ModemError::Restarted { .. }) => return Err(ModemError::Restarted { times: restarts + 1 }),
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn bring_up_once(&mut self) -> Result<ModemInfo, ModemError> {
        // Start from a clean slate, except that an active PDP context (SIM7080) stays
        // active until a restart or a deactivation notice says otherwise.
        let pdp_active = self.at.events.pdp_active;
        self.at.events = at::Events {
            pdp_active,
            ..Default::default()
        };
        self.sync().await?;
        // Anything before here (boot notices, RDY) belongs to the boot we synced with.
        self.at.events.restarted = false;
        let mut info = ModemInfo {
            rssi: 99,
            ..ModemInfo::default()
        };
        self.query(Query::EchoOff, &mut info).await?;
        // Whether the modem obeys `ATE0` shows in the commands after it.
        self.at.echo_off = false;
        self.at.echo_seen = false;
        self.raise_baud(&mut info).await?;
        info.baud = self.baud;
        info.fast_baud_refused = self.fast_refused;
        for step in [Query::VerboseErrors, Query::Model] {
            self.query(step, &mut info).await?;
        }
        self.sim_ready().await?;
        self.registered().await?;
        for step in [Query::Signal, Query::Operator, Query::Context] {
            self.query(step, &mut info).await?;
        }

        // Socket notices from before the attach are history (a `+CIPEVENT` during boot);
        // the ones from here on count.
        let ev = &mut self.at.events;
        ev.network_down = false;
        ev.closed = None;
        ev.data_ready = false;
        ev.open_result = None;
        match self.cfg.dialect {
            Dialect::Sim7600 => sim7600::attach(self).await?,
            Dialect::Sim7080 => sim7080::attach(self).await?,
        }
        if self.free_link {
            // The modem was lost while it held the link, and nothing proved that it
            // forgot it (`RDY`): close it, or the next connect finds it busy.
            let res = match self.cfg.dialect {
                Dialect::Sim7600 if self.tls => sim7600_tls::stop(self).await,
                Dialect::Sim7600 => sim7600::close(self, true).await,
                Dialect::Sim7080 => sim7080::close(self, true).await,
            };
            if let Err(e) = res {
                return Err(self.at_error("(closing a stale link)", e));
            }
            self.free_link = false;
        }
        self.at.echo_off = !self.at.echo_seen;
        Ok(info)
    }

    /// One of the plain bring-up commands, recording what it answers in `info`. One
    /// function for all of them, so the firmware carries one copy of the command's state
    /// machine instead of one per command.
    pub(super) async fn query(&mut self, step: Query, info: &mut ModemInfo) -> Result<(), ModemError> {
        let mut line: heapless::String<96> = heapless::String::new();
        let name = match step {
            Query::EchoOff => "ATE0",
            Query::VerboseErrors => "AT+CMEE=2",
            Query::Model => "AT+CGMM",
            Query::Signal => "AT+CSQ",
            Query::Operator => "AT+COPS?",
            Query::FastRate => {
                let _ = write!(line, "AT+IPR={}", self.cfg.fast_baud.unwrap_or(self.baud));
                "AT+IPR"
            }
            Query::Context => {
                // The APN was checked by `ModemConfig::new`: it fits and needs no quoting.
                let _ = write!(line, "AT+CGDCONT=1,\"IP\",\"{}\"", self.cfg.apn);
                "AT+CGDCONT"
            }
        };
        if line.is_empty() {
            let _ = line.push_str(name);
        }
        self.cmd(name, format_args!("{line}"), &mut |reply| match step {
            Query::Model => {
                // A bare line (`SIM7080G`) or `+CGMM: <model>`; a time or network notice
                // in front of it is not the model.
                let text = after(reply, b"+CGMM:").or(bare_answer(reply).then_some(reply));
                match text {
                    Some(text) if info.model.is_empty() => {
                        set_text(&mut info.model, text);
                        Take::Yes
                    }
                    _ => Take::No,
                }
            }
            Query::Signal => match after(reply, b"+CSQ:") {
                Some(rest) => {
                    info.rssi = Fields(rest).num().and_then(|n| u8::try_from(n).ok()).unwrap_or(99);
                    Take::Yes
                }
                None => Take::No,
            },
            Query::Operator => match after(reply, b"+COPS:") {
                Some(rest) => {
                    let mut q = rest.split(|&b| b == b'"');
                    if let (Some(_), Some(name)) = (q.next(), q.next()) {
                        set_text(&mut info.operator, name);
                    }
                    Take::Yes
                }
                None => Take::No,
            },
            Query::EchoOff | Query::VerboseErrors | Query::FastRate | Query::Context => Take::No,
        })
        .await
    }

    /// `AT` until `OK`, within the boot timeout; the modem ignores commands until `RDY`.
    pub(super) async fn sync(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.boot_timeout_us);
        let mut refused = false;
        loop {
            let now = self.at.now_us();
            if now >= end && refused {
                // It answers, but only `ERROR`: say so rather than "no answer".
                return Err(self.at_error("AT", AtError::Rejected));
            }
            if now >= end {
                return Err(ModemError::NoResponse {
                    secs: us_to_secs(self.cfg.boot_timeout_us),
                });
            }
            let attempt = end.min(now + SYNC_ATTEMPT_US);
            let res = self.ping(attempt).await;
            refused = res == Err(AtError::Rejected);
            match res {
                Ok(_) => break,
                // Not answering: still booting, or the modem runs at the other rate (it
                // restarted at its power-on rate, or this chip restarted while the modem
                // kept the fast one). Ask again, at the other rate if there is one.
                Err(AtError::Timeout) => self.try_other_rate()?,
                // Just booted (`RDY`, so at this rate): ask again.
                Err(AtError::Restarted) => {}
                // Booted but not ready for commands: wait out the attempt, then ask again.
                Err(AtError::Rejected | AtError::Protocol) => {
                    if let Err(AtError::Uart(k)) = self.at.wait_for(attempt, |_| false).await {
                        return Err(ModemError::Uart(k));
                    }
                }
                Err(AtError::Uart(k)) => return Err(ModemError::Uart(k)),
                Err(AtError::CommandTooLong) => unreachable!("`AT` fits"),
            }
        }
        let settle = self.at.deadline(SYNC_SETTLE_US);
        match self.at.wait_for(settle, |_| false).await {
            Err(AtError::Uart(k)) => Err(ModemError::Uart(k)),
            Err(AtError::Restarted) => Err(ModemError::Restarted { times: 1 }),
            _ => Ok(()),
        }
    }

    /// Switches the chip's UART between the power-on and the fast rate (sync's search).
    pub(super) fn try_other_rate(&mut self) -> Result<(), ModemError> {
        match (self.set_uart_rate, self.cfg.fast_baud) {
            (Some(_), Some(fast)) if fast != self.cfg.baud => {
                let other = if self.baud == fast { self.cfg.baud } else { fast };
                self.set_rate(other)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn set_rate(&mut self, baud: u32) -> Result<(), ModemError> {
        if let Some(set) = self.set_uart_rate {
            if !set(self.at.uart_mut(), baud) {
                return Err(ModemError::UartRate { baud });
            }
            self.baud = baud;
        }
        Ok(())
    }

    /// One `AT`, its `OK` awaited until `until`.
    pub(super) async fn ping(&mut self, until: u64) -> Result<(), AtError> {
        self.at.send(format_args!("AT"), until).await?;
        self.at
            .finish(until, at::Probe::Lines, &mut [], &mut 0, &mut |_| Take::No)
            .await
            .map(|_| ())
    }

    /// `AT` until `OK`, a few short tries: does the modem answer at the current rate?
    pub(super) async fn answers(&mut self) -> Result<bool, ModemError> {
        for _ in 0..BAUD_CHECKS {
            let until = self.at.deadline(BAUD_CHECK_US);
            match self.ping(until).await {
                Ok(()) => return Ok(true),
                Err(AtError::Uart(k)) => return Err(ModemError::Uart(k)),
                Err(_) => {}
            }
        }
        Ok(false)
    }

    /// Raises the link to [`ModemConfig::fast_baud`]: `AT+IPR=<fast>` (the `OK` comes at
    /// the old rate, then the modem switches), retune the chip, check with `AT` (the first
    /// may fall into the modem's own retuning; [`Modem::answers`] asks again). A modem that
    /// refuses, or says `OK` and does not switch, is left at the power-on rate.
    pub(super) async fn raise_baud(&mut self, info: &mut ModemInfo) -> Result<(), ModemError> {
        let (Some(_), Some(fast)) = (self.set_uart_rate, self.cfg.fast_baud) else {
            return Ok(());
        };
        if self.fast_refused || self.baud == fast {
            return Ok(());
        }
        let base = self.baud;
        let mut raised = false;
        match self.query(Query::FastRate, info).await {
            Ok(()) => {
                self.set_rate(fast)?;
                raised = self.answers().await?;
                if !raised {
                    // It said OK but does not answer at the new rate: back to where it did.
                    self.set_rate(base)?;
                    if !self.answers().await? {
                        return Err(ModemError::BaudSwitch { fast, base });
                    }
                }
            }
            Err(ModemError::CommandFailed { .. }) => {}
            Err(e) => return Err(e),
        }
        self.fast_refused = !raised;
        self.quiet(SYNC_SETTLE_US).await
    }

    /// Reads (and drops) whatever comes for `us`: the time a modem takes to retune, or a
    /// late `OK` to a repeated `AT` that must not be taken for the next command's answer.
    pub(super) async fn quiet(&mut self, us: u64) -> Result<(), ModemError> {
        let until = self.at.deadline(us);
        match self.at.wait_for(until, |_| false).await {
            Err(AtError::Uart(k)) => Err(ModemError::Uart(k)),
            _ => Ok(()),
        }
    }

    /// Waits (recording notices) until `done` or `until`; only a restart or UART failure
    /// is an error.
    pub(super) async fn idle(&mut self, until: u64, done: fn(&at::Events) -> bool) -> Result<(), ModemError> {
        match self.at.wait_for(until, done).await {
            Ok(()) | Err(AtError::Timeout) => Ok(()),
            Err(e) => Err(self.at_error("(waiting)", e)),
        }
    }

    /// One bring-up command with the ordinary deadline.
    pub(super) async fn cmd(
        &mut self,
        name: &'static str,
        args: core::fmt::Arguments<'_>,
        on_info: &mut dyn FnMut(&[u8]) -> Take,
    ) -> Result<(), ModemError> {
        match self.at.command(args, self.cfg.command_timeout_us, on_info).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.at_error(name, e)),
        }
    }

    pub(super) fn at_error(&self, command: &'static str, e: AtError) -> ModemError {
        match e {
            AtError::Timeout => ModemError::Timeout {
                command,
                ms: self.cfg.command_timeout_us / 1000,
            },
            AtError::Restarted => ModemError::Restarted { times: 1 },
            AtError::Uart(k) => ModemError::Uart(k),
            AtError::Rejected => ModemError::CommandFailed {
                command,
                reply: self.at.err_text.clone(),
            },
            AtError::CommandTooLong | AtError::Protocol => self.protocol(command),
        }
    }

    pub(super) fn protocol(&self, command: &'static str) -> ModemError {
        ModemError::Protocol {
            command,
            dialect: self.cfg.dialect.name(),
        }
    }
}
