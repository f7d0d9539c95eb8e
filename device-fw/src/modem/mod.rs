//! Modem drivers (AT socket mode): SIMCom SIM7600 (`CIP*`) and SIM7080 (`CA*`).
//!
//! [`Modem`] owns the modem UART (any [`embedded_io_async`] `Read + Write`) and a
//! [`Clock`], brings the modem up ([`Modem::bring_up`]) and then offers one TCP connection
//! through [`crate::socket::Socket`]. The command set and the reply formats are the contract
//! in `docs/at-dialects.md`; the emulators in `sim` answer the same way.
//!
//! Layers: `at` splits the byte stream into lines, skips echo, records unsolicited results
//! wherever they arrive, counts and drops noise, and reads binary payloads with exact
//! lengths; `sim7600` and `sim7080` turn socket operations into their dialect's commands.
//!
//! # RAM
//!
//! No heap. The driver's state is its fixed buffers plus a few counters:
//!
//! | buffer | bytes |
//! |---|---|
//! | receive buffer (longest line kept whole) | 256 |
//! | command buffer (longest command: `AT+CAOPEN=…` with a 253-byte host) | 288 |
//! | error text of the last rejected command | 48 (+ length) |
//! | configuration (APN up to 63 bytes, timeouts) | about 128 |
//! | notices, counters, link state | about 64 |
//!
//! In all 784 bytes on a 64-bit host (less on the 32-bit ESP32, where lengths and `usize`
//! fields halve): `size_of::<Modem<U, C>>()` stays under [`DRIVER_RAM_BYTES`] (1 KiB) plus
//! the UART and clock handles themselves (checked at compile time and by a test). The
//! futures of the async methods add only small locals (at most a 48-byte error text) and the
//! UART's own read/write futures.
//!
//! Payloads are never staged in a driver buffer of their own: they go from the UART straight
//! into the caller's buffer (bytes that arrived together with the reply header are copied out
//! of the receive buffer first), so a read of 1460 bytes needs 1460 bytes of the *caller's*
//! memory only.
//!
//! # Cancellation
//!
//! The futures are not cancel-safe: dropping one in the middle of a command leaves its reply
//! in flight. Bound operations with the driver's own deadlines (`ModemConfig::*_timeout_us`)
//! rather than by dropping futures; after an outside cancellation, run [`Modem::bring_up`].

mod at;
mod sim7080;
mod sim7600;

use core::fmt::Write as _;

use embedded_io_async::{ErrorKind, Read, Write};

use self::at::{At, AtError, CloseKind, Fields, Take, after};
use crate::clock::{Clock, ms, secs};
use crate::socket::{Socket, SocketError};

/// Upper bound of the driver's own RAM (`size_of::<Modem<U, C>>()` minus the UART and clock
/// handles). See the module docs for the breakdown.
pub const DRIVER_RAM_BYTES: usize = 1024;

const _: () = assert!(core::mem::size_of::<Modem<(), ()>>() <= DRIVER_RAM_BYTES);

/// [`SocketError::ConnectFailed`] code when the host name cannot be sent: empty, longer than
/// 253 bytes, or containing `"` or control characters.
pub const CONNECT_BAD_HOST: u16 = 0xffff;
/// [`SocketError::ConnectFailed`] code when the modem refused with a bare `ERROR`.
pub const CONNECT_NO_CODE: u16 = 0xfffe;

/// How long one `AT` waits for `OK` during sync before it is sent again.
const SYNC_ATTEMPT_US: u64 = secs(1);
/// Quiet time after sync, so that a late `OK` to an earlier `AT` is not taken for the
/// answer to the next command.
const SYNC_SETTLE_US: u64 = ms(100);
/// How long one `AT` at a new rate waits for `OK`, and how many are sent.
const BAUD_CHECK_US: u64 = ms(300);
const BAUD_CHECKS: u8 = 3;
/// Poll interval for `AT+CPIN?` (SIM busy) and `AT+CEREG?` (searching).
const POLL_US: u64 = secs(1);
/// Restarts (`RDY`) tolerated during one bring-up before giving up.
const MAX_RESTARTS: u8 = 3;
/// Empty read replies in a row before a read stops asking and waits for a new notice.
const MAX_EMPTY_POLLS: u8 = 3;
/// Longest host name (DNS limit).
const MAX_HOST: usize = 253;

/// The AT dialect of the modem's TCP/IP stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SIMCom SIM7600 family: `NETOPEN`, `CIPOPEN`, `CIPSEND`, manual `CIPRXGET`.
    Sim7600,
    /// SIMCom SIM7080 (and SIM7070): `CNACT`, `CAOPEN`, `CASEND`, `CARECV`.
    Sim7080,
}

impl Dialect {
    /// Most bytes one read command may ask for (`CIPRXGET=2` / `CARECV`).
    pub fn max_read(self) -> usize {
        match self {
            Dialect::Sim7600 | Dialect::Sim7080 => 1460,
        }
    }

    /// Most bytes one send command may carry (`CIPSEND` / `CASEND`).
    pub fn max_send(self) -> usize {
        match self {
            Dialect::Sim7600 | Dialect::Sim7080 => 1460,
        }
    }

    /// Short name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sim7600 => "SIM7600",
            Dialect::Sim7080 => "SIM7080",
        }
    }
}

/// Driver settings. Build with [`ModemConfig::new`] and adjust fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemConfig {
    /// Which command set to speak.
    pub dialect: Dialect,
    /// Access point name for `AT+CGDCONT=1,"IP","<apn>"` (printable ASCII, no `"`).
    pub apn: heapless::String<63>,
    /// Bytes asked per read command; clamped to `1..=dialect.max_read()` when used.
    pub read_block: usize,
    /// How long [`Socket::read`] waits for the first byte before [`SocketError::Timeout`].
    pub read_timeout_us: u64,
    /// Deadline for an ordinary command's final result (and a payload's bytes).
    pub command_timeout_us: u64,
    /// Deadline for opening the packet network (`+NETOPEN: 0`, `+APP PDP: 0,ACTIVE`) and a
    /// TCP connection (`+CIPOPEN`, `+CAOPEN`).
    pub connect_timeout_us: u64,
    /// How long bring-up waits for the modem to answer `AT` (covers a cold boot until
    /// `RDY`) and, separately, for the SIM to become ready.
    pub boot_timeout_us: u64,
    /// How long bring-up waits for network registration (`+CEREG` stat 1 or 5).
    pub register_timeout_us: u64,
    /// The modem's UART rate after power-on (the profile's `modem.baud`), which the chip's
    /// UART is set to when the driver starts.
    pub baud: u32,
    /// The rate bring-up raises the link to with `AT+IPR` (the profile's
    /// `modem.fast_baud`). An AT download is bound by the UART, so this is the largest
    /// speed-up there is. The modem keeps the rate until it restarts (then it answers at
    /// `baud` again, which sync finds); a modem that refuses it stays at `baud`. Needs
    /// [`Modem::with_uart_rate`].
    pub fast_baud: Option<u32>,
}

impl ModemConfig {
    /// Defaults: largest read block, 20 s read deadline, 5 s commands, 60 s connects,
    /// 30 s boot, 120 s registration.
    ///
    /// Fails with [`ModemError::InvalidApn`] when `apn` is longer than 63 bytes or holds a
    /// `"` or a non-printable character.
    pub fn new(dialect: Dialect, apn: &str) -> Result<Self, ModemError> {
        if !apn_ok(apn) {
            return Err(ModemError::InvalidApn);
        }
        let mut s = heapless::String::new();
        s.push_str(apn).map_err(|_| ModemError::InvalidApn)?;
        Ok(Self {
            dialect,
            apn: s,
            read_block: dialect.max_read(),
            read_timeout_us: secs(20),
            command_timeout_us: secs(5),
            connect_timeout_us: secs(60),
            boot_timeout_us: secs(30),
            register_timeout_us: secs(120),
            baud: 115_200,
            fast_baud: None,
        })
    }

    /// The read block actually used: `read_block` clamped to `1..=dialect.max_read()`.
    pub fn effective_read_block(&self) -> usize {
        self.read_block.clamp(1, self.dialect.max_read())
    }
}

fn apn_ok(apn: &str) -> bool {
    apn.len() <= 63 && apn.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"')
}

/// What bring-up learned about the modem and the network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModemInfo {
    /// `AT+CGMM` answer, e.g. `SIMCOM_SIM7600G-H` (truncated to 32 bytes).
    pub model: heapless::String<32>,
    /// `AT+CSQ` signal quality, 0..=31, 99 = unknown.
    pub rssi: u8,
    /// `AT+COPS?` operator name (empty when the modem gives none).
    pub operator: heapless::String<32>,
    /// The UART rate the link runs at now.
    pub baud: u32,
    /// The modem refused [`ModemConfig::fast_baud`] or did not answer at it: the link
    /// stays at [`ModemConfig::baud`].
    pub fast_baud_refused: bool,
}

/// The bring-up commands that only ask or set one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    EchoOff,
    /// `AT+IPR=<fast_baud>`.
    FastRate,
    VerboseErrors,
    Model,
    Signal,
    Operator,
    Context,
}

/// Counters since the driver was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModemStats {
    /// Commands sent.
    pub commands: u32,
    /// Unsolicited lines seen (known or not), including `RDY`.
    pub urcs: u32,
    /// Bytes dropped as line noise, stale replies or unreadable lines.
    pub garbage_bytes: u32,
    /// `RDY` lines seen: each is a modem (re)boot.
    pub restarts_seen: u32,
    /// Payload bytes received through read commands.
    pub payload_bytes: u64,
}

/// Why bring-up failed. Each message says what was wrong and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModemError {
    /// The APN cannot be sent in `AT+CGDCONT`.
    #[error("APN is not usable: it must be at most 63 printable ASCII characters without '\"'; fix the apn setting")]
    InvalidApn,
    /// Nothing answered `AT`.
    #[error(
        "modem did not answer `AT` within {secs} s: check its power and PWRKEY, the UART baud rate and TX/RX wiring"
    )]
    NoResponse {
        /// How long the driver tried.
        secs: u32,
    },
    /// `RDY` kept showing up: the modem rebooted during bring-up.
    #[error(
        "modem restarted {times} times during bring-up: check its supply (brown-outs under transmit bursts) and reset line"
    )]
    Restarted {
        /// `RDY` lines seen during this bring-up.
        times: u8,
    },
    /// The UART driver failed.
    #[error("UART error ({0:?}) talking to the modem: check the UART driver and pins")]
    Uart(ErrorKind),
    /// A command got no final result in time.
    #[error("`{command}` got no answer within {ms} ms: the modem is busy or hung; power-cycle it if this repeats")]
    Timeout {
        /// The command (or awaited notice).
        command: &'static str,
        /// The deadline, in milliseconds.
        ms: u64,
    },
    /// The SIM never became ready.
    #[error(
        "SIM not ready after {secs} s (last answer: {reply}): check that a SIM is inserted, its contacts and that it is activated"
    )]
    SimNotReady {
        /// The modem's last answer to `AT+CPIN?`.
        reply: heapless::String<48>,
        /// How long the driver waited.
        secs: u32,
    },
    /// The SIM wants a PIN or PUK.
    #[error("SIM is locked ({0}): remove the PIN from the SIM (in a phone) or unlock it before use")]
    SimLocked(heapless::String<48>),
    /// No registration in time.
    #[error(
        "not registered on the network after {secs} s (+CEREG stat {stat}): check the antenna, coverage, the SIM's activation and the modem's band/RAT settings"
    )]
    NotRegistered {
        /// Last `+CEREG` stat (0 not searching, 2 searching, 4 unknown).
        stat: u8,
        /// How long the driver waited.
        secs: u32,
    },
    /// The network refused registration.
    #[error(
        "network registration denied (+CEREG stat 3): the SIM is not allowed on this network; check the SIM's plan and roaming"
    )]
    RegistrationDenied,
    /// The packet data network could not be opened.
    #[error("packet data attach failed (`{command}` code {code}): check the APN and that the SIM has a data plan")]
    AttachFailed {
        /// The notice that carried the code.
        command: &'static str,
        /// The modem's error code.
        code: u16,
    },
    /// A command was refused.
    #[error("`{command}` failed: {reply}")]
    CommandFailed {
        /// The command.
        command: &'static str,
        /// The modem's error text (`+CME ERROR: …` text, the line before `ERROR`, or `ERROR`).
        reply: heapless::String<48>,
    },
    /// The chip's UART driver refused a rate.
    #[error("the chip's UART cannot run at {baud} baud: change modem.fast_baud")]
    UartRate {
        /// The rate asked for.
        baud: u32,
    },
    /// The modem took `AT+IPR` but then answered at neither rate.
    #[error(
        "modem took AT+IPR={fast} but answers at neither {fast} nor {base} baud: power-cycle it; lower modem.fast_baud or shorten the UART wires"
    )]
    BaudSwitch {
        /// [`ModemConfig::fast_baud`].
        fast: u32,
        /// [`ModemConfig::baud`].
        base: u32,
    },
    /// A reply did not have the expected form.
    #[error("unexpected reply to `{command}`: the modem is not a {dialect} or its firmware speaks another dialect")]
    Protocol {
        /// The command.
        command: &'static str,
        /// The dialect the driver was configured for.
        dialect: &'static str,
    },
}

/// Where the one TCP link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Never brought up, or the modem was lost: [`Modem::bring_up`] is needed.
    Down,
    /// The packet network is gone: [`Modem::bring_up`] is needed.
    NoNetwork,
    /// Up, no connection.
    Idle,
    /// Connected, no close notice seen.
    Open,
    /// A close notice was seen; what the modem still holds can be read out.
    Ending(End),
    /// Closed and read out: reads give the end result until `close`/`connect`.
    Ended(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Peer closed cleanly: `Ok(0)`.
    Eof,
    /// Reset or closed with possible loss: `Err(Closed)`.
    Reset,
    /// The packet network dropped: `Err(NetworkDown)`.
    NetworkDown,
}

impl End {
    fn result(self) -> Result<usize, SocketError> {
        match self {
            End::Eof => Ok(0),
            End::Reset => Err(SocketError::Closed),
            End::NetworkDown => Err(SocketError::NetworkDown),
        }
    }
}

/// A read command's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    /// Payload bytes copied into the caller's buffer (0: the modem had nothing).
    got: usize,
    /// The modem may hold more (SIM7600 `<rest>` > 0, SIM7080 a full block).
    more: bool,
}

/// AT modem driver: bring-up, then one TCP connection as a [`Socket`].
///
/// See the module docs for the RAM it needs.
pub struct Modem<U, C> {
    at: At<U, C>,
    cfg: ModemConfig,
    link: Link,
    /// Ask the modem before waiting for a data notice.
    maybe_data: bool,
    /// Sets the chip's UART rate (`false`: the driver cannot); see [`Modem::with_uart_rate`].
    set_uart_rate: Option<fn(&mut U, u32) -> bool>,
    /// The chip's UART rate now.
    baud: u32,
    /// The modem would not run at `cfg.fast_baud`: do not ask again.
    fast_refused: bool,
}

impl<U, C> core::fmt::Debug for Modem<U, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Modem")
            .field("cfg", &self.cfg)
            .field("link", &self.link)
            .field("at", &self.at)
            .finish()
    }
}

impl<U: Read + Write, C: Clock> Modem<U, C> {
    /// Wraps the modem UART. Nothing is sent until [`Modem::bring_up`].
    pub fn new(uart: U, clock: C, cfg: ModemConfig) -> Self {
        let baud = cfg.baud;
        Self {
            at: At::new(uart, clock),
            cfg,
            link: Link::Down,
            maybe_data: false,
            set_uart_rate: None,
            baud,
            fast_refused: false,
        }
    }

    /// Lets the driver change the chip's UART rate, which [`ModemConfig::fast_baud`] needs:
    /// `set` retunes the UART and returns `false` if it cannot run at that rate. A plain
    /// function, not a closure, so that the driver carries one pointer and no generic code.
    pub fn with_uart_rate(mut self, set: fn(&mut U, u32) -> bool) -> Self {
        self.set_uart_rate = Some(set);
        self
    }

    /// The UART rate the link runs at now.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Counters since creation.
    pub fn stats(&self) -> ModemStats {
        self.at.stats
    }

    /// The settings in use.
    pub fn config(&self) -> &ModemConfig {
        &self.cfg
    }

    /// Sets the bytes asked per read command, clamped to `1..=dialect.max_read()`.
    pub fn set_read_block(&mut self, n: usize) {
        self.cfg.read_block = n.clamp(1, self.cfg.dialect.max_read());
    }

    /// Gives the UART back.
    pub fn into_inner(self) -> U {
        self.at.into_inner()
    }

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
        let mut restarts = 0u8;
        loop {
            match self.bring_up_once().await {
                Ok(info) => {
                    self.link = Link::Idle;
                    self.maybe_data = false;
                    return Ok(info);
                }
                Err(ModemError::Restarted { .. }) if restarts < MAX_RESTARTS => restarts += 1,
                Err(ModemError::Restarted { .. }) => return Err(ModemError::Restarted { times: restarts + 1 }),
                Err(e) => return Err(e),
            }
        }
    }

    async fn bring_up_once(&mut self) -> Result<ModemInfo, ModemError> {
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
        Ok(info)
    }

    /// One of the plain bring-up commands, recording what it answers in `info`. One
    /// function for all of them, so the firmware carries one copy of the command's state
    /// machine instead of one per command.
    async fn query(&mut self, step: Query, info: &mut ModemInfo) -> Result<(), ModemError> {
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
                let text = after(reply, b"+CGMM:").unwrap_or(reply);
                if info.model.is_empty() && (reply.first() != Some(&b'+') || text.len() < reply.len()) {
                    at::set_text(&mut info.model, text);
                    Take::Yes
                } else {
                    Take::No
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
                        at::set_text(&mut info.operator, name);
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
    async fn sync(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.boot_timeout_us);
        loop {
            let now = self.at.now_us();
            if now >= end {
                return Err(ModemError::NoResponse {
                    secs: us_to_secs(self.cfg.boot_timeout_us),
                });
            }
            let attempt = end.min(now + SYNC_ATTEMPT_US);
            match self.ping(attempt).await {
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
    fn try_other_rate(&mut self) -> Result<(), ModemError> {
        match (self.set_uart_rate, self.cfg.fast_baud) {
            (Some(_), Some(fast)) if fast != self.cfg.baud => {
                let other = if self.baud == fast { self.cfg.baud } else { fast };
                self.set_rate(other)
            }
            _ => Ok(()),
        }
    }

    fn set_rate(&mut self, baud: u32) -> Result<(), ModemError> {
        if let Some(set) = self.set_uart_rate {
            if !set(self.at.uart_mut(), baud) {
                return Err(ModemError::UartRate { baud });
            }
            self.baud = baud;
        }
        Ok(())
    }

    /// One `AT`, its `OK` awaited until `until`.
    async fn ping(&mut self, until: u64) -> Result<(), AtError> {
        self.at.send(format_args!("AT"), until).await?;
        self.at
            .finish(until, at::Probe::Lines, &mut [], &mut 0, &mut |_| Take::No)
            .await
            .map(|_| ())
    }

    /// `AT` until `OK`, a few short tries: does the modem answer at the current rate?
    async fn answers(&mut self) -> Result<bool, ModemError> {
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
    async fn raise_baud(&mut self, info: &mut ModemInfo) -> Result<(), ModemError> {
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
    async fn quiet(&mut self, us: u64) -> Result<(), ModemError> {
        let until = self.at.deadline(us);
        match self.at.wait_for(until, |_| false).await {
            Err(AtError::Uart(k)) => Err(ModemError::Uart(k)),
            _ => Ok(()),
        }
    }

    /// `AT+CPIN?` until `READY`; `SIM busy` (early in boot) is retried.
    async fn sim_ready(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.boot_timeout_us);
        loop {
            let mut state: heapless::String<48> = heapless::String::new();
            let st = &mut state;
            let res = self
                .at
                .command(
                    format_args!("AT+CPIN?"),
                    self.cfg.command_timeout_us,
                    &mut |line| match after(line, b"+CPIN:") {
                        Some(rest) => {
                            at::set_text(st, rest);
                            Take::Yes
                        }
                        None => Take::No,
                    },
                )
                .await;
            let last = match res {
                Ok(()) if state == "READY" => return Ok(()),
                Ok(()) if state.is_empty() => return Err(self.protocol("AT+CPIN?")),
                Ok(()) => return Err(ModemError::SimLocked(state)),
                Err(AtError::Rejected) => self.at.err_text.clone(),
                Err(e) => return Err(self.at_error("AT+CPIN?", e)),
            };
            if self.at.now_us() >= end {
                return Err(ModemError::SimNotReady {
                    reply: last,
                    secs: us_to_secs(self.cfg.boot_timeout_us),
                });
            }
            // `SIM busy`: the modem announces `+CPIN: READY` when done.
            self.at.events.sim_ready = false;
            let wake = end.min(self.at.now_us() + POLL_US);
            self.idle(wake, |ev| ev.sim_ready).await?;
        }
    }

    /// `AT+CEREG?` until registered (home or roaming).
    async fn registered(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.register_timeout_us);
        loop {
            let mut stat = None;
            self.cmd(
                "AT+CEREG?",
                format_args!("AT+CEREG?"),
                &mut |line| match after(line, b"+CEREG:") {
                    Some(rest) => {
                        let mut f = Fields(rest);
                        let first = f.num();
                        // `+CEREG: <n>,<stat>[,…]` (query form).
                        stat = f.num().or(first).and_then(|s| u8::try_from(s).ok());
                        Take::Yes
                    }
                    None => Take::No,
                },
            )
            .await?;
            match stat {
                Some(1 | 5) => return Ok(()),
                Some(3) => return Err(ModemError::RegistrationDenied),
                None => return Err(self.protocol("AT+CEREG?")),
                Some(s) if self.at.now_us() >= end => {
                    return Err(ModemError::NotRegistered {
                        stat: s,
                        secs: us_to_secs(self.cfg.register_timeout_us),
                    });
                }
                Some(_) => {}
            }
            let wake = end.min(self.at.now_us() + POLL_US);
            self.idle(wake, |_| false).await?;
        }
    }

    /// Waits (recording notices) until `done` or `until`; only a restart or UART failure
    /// is an error.
    async fn idle(&mut self, until: u64, done: fn(&at::Events) -> bool) -> Result<(), ModemError> {
        match self.at.wait_for(until, done).await {
            Ok(()) | Err(AtError::Timeout) => Ok(()),
            Err(e) => Err(self.at_error("(waiting)", e)),
        }
    }

    /// One bring-up command with the ordinary deadline.
    async fn cmd(
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

    fn at_error(&self, command: &'static str, e: AtError) -> ModemError {
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

    fn protocol(&self, command: &'static str) -> ModemError {
        ModemError::Protocol {
            command,
            dialect: self.cfg.dialect.name(),
        }
    }

    /// Folds the notices seen so far into the link state.
    fn absorb(&mut self) {
        let ev = &mut self.at.events;
        if ev.restarted {
            self.link = Link::Down;
            self.maybe_data = false;
            return;
        }
        if core::mem::take(&mut ev.network_down) {
            self.link = match self.link {
                Link::Open | Link::Ending(_) => Link::Ending(End::NetworkDown),
                Link::Ended(_) | Link::Idle => Link::NoNetwork,
                other => other,
            };
        }
        if let Some(kind) = ev.closed.take()
            && self.link == Link::Open
        {
            self.link = Link::Ending(match kind {
                CloseKind::PeerFin => End::Eof,
                CloseKind::Reset => End::Reset,
            });
        }
    }

    /// Maps an AT failure during a socket operation; the modem is lost unless it refused.
    fn lost(&mut self, e: AtError) -> SocketError {
        match e {
            AtError::Protocol => SocketError::Protocol,
            AtError::CommandTooLong => SocketError::ConnectFailed(CONNECT_BAD_HOST),
            AtError::Rejected => SocketError::Protocol,
            AtError::Timeout | AtError::Restarted | AtError::Uart(_) => {
                self.link = Link::Down;
                self.maybe_data = false;
                SocketError::ModemLost
            }
        }
    }

    /// The error for an operation that needs a working modem and network.
    fn unusable(&self) -> Option<SocketError> {
        match self.link {
            Link::Down => Some(SocketError::ModemLost),
            Link::NoNetwork | Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => {
                Some(SocketError::NetworkDown)
            }
            _ => None,
        }
    }
}

impl<U: Read + Write, C: Clock> Socket for Modem<U, C> {
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        self.absorb();
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        if self.link != Link::Idle {
            self.close().await;
            if let Some(e) = self.unusable() {
                return Err(e);
            }
        }
        if host.is_empty() || host.len() > MAX_HOST || !host.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"') {
            return Err(SocketError::ConnectFailed(CONNECT_BAD_HOST));
        }
        let ev = &mut self.at.events;
        ev.data_ready = false;
        ev.closed = None;
        ev.open_result = None;
        ev.close_done = false;
        let res = match self.cfg.dialect {
            Dialect::Sim7600 => sim7600::open(self, host, port).await,
            Dialect::Sim7080 => sim7080::open(self, host, port).await,
        };
        self.absorb();
        if res.is_ok() {
            if let Some(e) = self.unusable() {
                return Err(e);
            }
            if self.link == Link::Idle {
                self.link = Link::Open;
            }
            // Ask once before relying on the data notice.
            self.maybe_data = true;
        }
        res
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        self.absorb();
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        match self.link {
            Link::Open => {}
            Link::Idle => return Err(SocketError::NotConnected),
            _ => return Err(SocketError::Closed),
        }
        for chunk in data.chunks(self.cfg.dialect.max_send()) {
            let res = match self.cfg.dialect {
                Dialect::Sim7600 => sim7600::send(self, chunk).await,
                Dialect::Sim7080 => sim7080::send(self, chunk).await,
            };
            self.absorb();
            res?;
        }
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.absorb();
        match self.link {
            Link::Down => return Err(SocketError::ModemLost),
            Link::NoNetwork => return Err(SocketError::NetworkDown),
            Link::Idle => return Err(SocketError::NotConnected),
            Link::Ended(end) => return end.result(),
            Link::Open | Link::Ending(_) => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.at.deadline(self.cfg.read_timeout_us);
        let mut empty_polls = 0u8;
        loop {
            let ending = matches!(self.link, Link::Ending(_));
            if self.maybe_data || ending {
                let n = buf.len().min(self.cfg.effective_read_block());
                self.at.events.data_ready = false;
                let res = match self.cfg.dialect {
                    Dialect::Sim7600 => sim7600::read(self, buf, n).await,
                    Dialect::Sim7080 => sim7080::read(self, buf, n).await,
                };
                let chunk = match res {
                    Ok(chunk) => chunk,
                    // Refused (`+IP ERROR: No data`, link already gone): nothing to read.
                    Err(AtError::Rejected) => Chunk { got: 0, more: false },
                    Err(e) => {
                        let err = self.lost(e);
                        self.absorb();
                        return Err(err);
                    }
                };
                self.maybe_data = chunk.more || self.at.events.data_ready;
                self.absorb();
                if self.link == Link::Down {
                    return Err(SocketError::ModemLost);
                }
                if chunk.got > 0 {
                    return Ok(chunk.got);
                }
                if let (true, Link::Ending(end)) = (ending, self.link) {
                    // Asked after the close notice and nothing was left.
                    self.link = Link::Ended(end);
                    self.maybe_data = false;
                    return end.result();
                }
                empty_polls += 1;
                if empty_polls >= MAX_EMPTY_POLLS {
                    // The modem keeps announcing data it does not hand out: stop asking
                    // and wait for a fresh notice (or the deadline).
                    self.maybe_data = false;
                    self.at.events.data_ready = false;
                } else if self.maybe_data || matches!(self.link, Link::Ending(_)) {
                    continue;
                }
            }
            let waited = self
                .at
                .wait_for(deadline, |ev| ev.data_ready || ev.closed.is_some() || ev.network_down)
                .await;
            match waited {
                Ok(()) => {
                    if self.at.events.data_ready {
                        self.maybe_data = true;
                    }
                    self.absorb();
                }
                Err(AtError::Timeout) => {
                    // In case a data notice was lost, ask first next time.
                    self.maybe_data = true;
                    return Err(SocketError::Timeout);
                }
                Err(e) => {
                    let err = self.lost(e);
                    self.absorb();
                    return Err(err);
                }
            }
        }
    }

    async fn close(&mut self) {
        self.absorb();
        match self.link {
            Link::Open | Link::Ending(End::Eof | End::Reset) | Link::Ended(End::Eof | End::Reset) => {
                let was_open = self.link == Link::Open;
                let res = match self.cfg.dialect {
                    Dialect::Sim7600 => sim7600::close(self, was_open).await,
                    Dialect::Sim7080 => sim7080::close(self, was_open).await,
                };
                if let Err(e) = res {
                    self.lost(e);
                }
                self.absorb();
                self.link = match self.link {
                    Link::Down | Link::NoNetwork => self.link,
                    Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => Link::NoNetwork,
                    _ => Link::Idle,
                };
            }
            Link::Ending(End::NetworkDown) | Link::Ended(End::NetworkDown) => self.link = Link::NoNetwork,
            Link::Down | Link::NoNetwork | Link::Idle => {}
        }
        self.maybe_data = false;
        let ev = &mut self.at.events;
        ev.closed = None;
        ev.data_ready = false;
    }

    fn is_connected(&self) -> bool {
        self.link == Link::Open
    }

    /// A modem that rebooted or lost its packet network is brought up from scratch: sync,
    /// echo off, SIM, registration, attach.
    async fn recover(&mut self) -> Result<(), SocketError> {
        self.bring_up().await.map(|_| ()).map_err(|_| SocketError::ModemLost)
    }
}

fn us_to_secs(us: u64) -> u32 {
    u32::try_from(us / 1_000_000).unwrap_or(u32::MAX)
}
