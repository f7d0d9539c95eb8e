//! Modem drivers (AT socket mode): SIMCom SIM7600 (`CIP*`, and its SSL client `CCH*` for
//! `https://`) and SIM7080 (`CA*`).
//!
//! [`Modem`] owns the modem UART (any [`embedded_io_async`] `Read + Write`) and a
//! [`Clock`], brings the modem up ([`Modem::bring_up`]) and then offers one TCP connection
//! through [`crate::socket::Socket`]. The command set and the reply formats are the contract
//! in `docs/at-dialects.md`; the emulators in `sim` answer the same way.
//!
//! Layers: `at` splits the byte stream into lines, skips echo, records unsolicited results
//! wherever they arrive (restarts included, also those without `RDY`), counts and drops
//! noise, and reads binary payloads with exact lengths; `reply` tells a notice from an
//! answer and reads fields; `bring_up` and `registration` set the modem up; `link` keeps the
//! one connection's state behind [`Socket`]; `sim7600` and `sim7080` turn socket operations
//! into their dialect's commands, `sim7600_tls` into the SIM7600's SSL client commands and
//! `sim7080_tls` sets up the SIM7080's SSL on its `CA*` connection (the modem terminates
//! TLS, so the chip carries no TLS code or buffers).
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
//! | configuration (APN up to 63 bytes, timeouts, the CA certificate's reference) | about 144 |
//! | notices, counters, link state, restart and owed-reply tracking | about 96 |
//!
//! In all 832 bytes on a 64-bit host (less on the 32-bit ESP32, where lengths and `usize`
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
mod bring_up;
mod ca_file;
mod link;
mod registration;
mod reply;
mod sim7080;
mod sim7080_tls;
mod sim7600;
mod sim7600_tls;

use embedded_io_async::{ErrorKind, Read, Write};

use self::at::At;
use self::link::{Chunk, Link};
use crate::clock::{Clock, ms, secs};

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
    /// How long bring-up waits for network registration (stat 1 or 5 in `+CEREG`, or in
    /// `+CGREG` / `+CREG` for a module on 2G/3G).
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
    /// The CA certificate (PEM) that `https://` servers are checked against, stored on the
    /// modem with `AT+CCERTDOWN` / `AT+CFSWFILE` (only when the modem does not hold it yet). `None`: no
    /// `https://` ([`crate::socket::TlsError::NoCaCert`]).
    pub ca_cert: Option<&'static [u8]>,
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
            ca_cert: None,
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

/// Counters since the driver was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModemStats {
    /// Commands sent.
    pub commands: u32,
    /// Unsolicited lines seen (known or not), including `RDY`.
    pub urcs: u32,
    /// Bytes dropped as line noise, stale replies or unreadable lines.
    pub garbage_bytes: u32,
    /// Modem (re)boots seen: `RDY`, or a restart that did not say so (see `docs/at-dialects.md`).
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
        "not registered on the network after {secs} s (+CEREG stat {stat}, and not on 2G/3G either): check the antenna, coverage, the SIM's activation and the modem's band/RAT settings"
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
    /// The modem was lost while it may have held the link: bring-up closes it.
    free_link: bool,
    /// The link is (or was last) a TLS session of the modem's SSL client, not a `CIP` link.
    tls: bool,
    /// The SSL client is set up (CA on the modem, context, service started; SIM7080: SSL on
    /// connection 0) since the last bring-up.
    tls_ready: bool,
    /// SIM7080: SSL is off on connection 0 since the last bring-up.
    plain_ready: bool,
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
            free_link: false,
            tls: false,
            tls_ready: false,
            plain_ready: false,
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
}

/// The error for a connect that timed out, given the result the modem sent late (while the
/// driver closed the attempt): its code if it failed, else [`SocketError::Timeout`] (a late
/// success was closed).
fn late_result(open_result: Option<u16>) -> crate::socket::SocketError {
    match open_result {
        Some(code) if code != 0 => crate::socket::SocketError::ConnectFailed(code),
        _ => crate::socket::SocketError::Timeout,
    }
}

fn us_to_secs(us: u64) -> u32 {
    u32::try_from(us / 1_000_000).unwrap_or(u32::MAX)
}
