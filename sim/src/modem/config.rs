//! How an emulated modem behaves: dialect, pacing, buffers, and the firmware quirks that hold
//! for a whole run.

use std::time::Duration;

use super::Dialect;

/// How the emulated modem behaves. Start from [`ModemEmulatorConfig::new`].
#[derive(Debug, Clone)]
pub struct ModemEmulatorConfig {
    pub dialect: Dialect,
    /// Processing time of each command, paid after the previous answer is completely
    /// written (and after the echo). Default: [`default_command_latency`].
    pub command_latency: Duration,
    /// The socket receive buffer the host reads from, bytes. When it is full the modem
    /// takes nothing more from the connection, whose window (the network's
    /// `modem_rx_buffer`) then fills before the origin stalls: with both set to the same
    /// value, up to twice this many bytes are on the modem side of the network.
    pub rx_buffer: usize,
    /// Power-on or reset to `RDY`; commands before `RDY` get no reply at all.
    pub boot_time: Duration,
    /// SIM7600: `SMS DONE` and `PB DONE` come this long after `RDY` (the SIM7080 sends its
    /// `SMS Ready` with the other boot lines and ignores this).
    pub late_urc_delay: Duration,
    /// Most payload bytes one `CIPRXGET=2` / `CARECV` delivers; larger requests are clamped.
    pub max_read: usize,
    /// Operator name in `+COPS:`.
    pub operator: String,
    /// `+CSQ:` signal, 0..=31 (99 unknown).
    pub rssi: u8,
    /// What `AT+IPR=<rate>` does.
    pub ipr: IprBehaviour,
    /// Commands (names as `"+CPIN"`) that answer a plain `ERROR` whatever `AT+CMEE` says, as
    /// some firmware does for commands that ignore it.
    pub plain_error: Vec<String>,
    /// The radio the modem is registered on, which decides which of `+CEREG`, `+CGREG`,
    /// `+CREG` reports the registration.
    pub registered_on: RegisteredOn,
    /// `ATE0` answers `OK` but echo stays on (firmware with `ATE1` stored).
    pub keeps_echo: bool,
}

/// Which registration query reports the modem registered. What the others say then is not
/// in a capture: here `0` (not registered there, not searching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegisteredOn {
    /// LTE: `+CEREG`, and `+CGREG` / `+CREG` alike (combined attach).
    #[default]
    Lte,
    /// 2G/3G packet service after falling back from LTE: `+CGREG` and `+CREG`.
    Packet2g3g,
    /// 2G circuit-switched only: `+CREG`.
    CircuitOnly,
}

/// How the modem takes `AT+IPR=<rate>` (set the UART rate until the next restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IprBehaviour {
    /// `OK` at the old rate, then the new rate (a rate from [`IPR_RATES`]; others `ERROR`).
    #[default]
    Switches,
    /// `ERROR`: firmware that does not take the command or the rate.
    Refuses,
    /// `OK`, but the rate stays (a module that needs a save and a restart first).
    Ignores,
}

/// The rates `AT+IPR` takes (the SIM7600 manual's list; the SIM7080's manual lists the same
/// up to 921600 and more above it).
pub const IPR_RATES: [u64; 14] = [
    300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600, 3_000_000,
];

impl ModemEmulatorConfig {
    /// Defaults for a dialect. Boot times are not in the captured logs for the SIM7600 and
    /// are settings: SIM7600 `RDY` after 12 s and `SMS DONE`/`PB DONE` 10 s later; SIM7080
    /// `RDY` after 2 s (the SIM7080G capture in the transcript index: the first `AT` after
    /// power-on is unanswered, `OK` comes about 2 s after power-on).
    pub fn new(dialect: Dialect) -> Self {
        let (boot_time, late_urc_delay) = match dialect {
            Dialect::Sim7600 => (Duration::from_secs(12), Duration::from_secs(10)),
            Dialect::Sim7080 => (Duration::from_secs(2), Duration::ZERO),
        };
        ModemEmulatorConfig {
            dialect,
            command_latency: default_command_latency(),
            rx_buffer: 512 * 1024,
            boot_time,
            late_urc_delay,
            max_read: 1460,
            operator: "otactl sim".into(),
            rssi: 20,
            ipr: IprBehaviour::Switches,
            plain_error: Vec::new(),
            registered_on: RegisteredOn::Lte,
            keeps_echo: false,
        }
    }
}

impl Default for ModemEmulatorConfig {
    fn default() -> Self {
        Self::new(Dialect::Sim7600)
    }
}

/// Bytes read by the seed device before its socket died.
const SEED_BYTES_READ: f64 = 129_867.0;
/// Seconds the seed device took to read them.
const SEED_SECONDS: f64 = 58.87;
/// TinyGSM's receive FIFO (`TINY_GSM_RX_BUFFER`): the size of each `CIPRXGET=2` read.
const SEED_READ: usize = 64;
/// The seed device's UART.
const SEED_BAUD: f64 = 115_200.0;
/// 8N1: start bit, 8 data bits, stop bit.
const BITS_PER_BYTE: f64 = 10.0;
/// ESP32 flash as Arduino `Update` drives it: one 4 KiB sector erase, then 16 page programs.
const SECTOR_BYTES: f64 = 4096.0;
const SECTOR_ERASE_S: f64 = 0.045;
const PAGE_PROGRAM_S: f64 = 0.0004;
const PAGES_PER_SECTOR: f64 = 16.0;

/// The per-command latency of a SIM7600, derived from the seed field failure.
///
/// The seed device read 129,867 bytes in 58.87 s with TinyGSM's 64-byte
/// `AT+CIPRXGET=2,0,64` reads at 115200 baud (8N1), writing each byte to flash as Arduino
/// `Update` does. One read cycle is the command on the wire, the modem's processing, the
/// reply on the wire and the flash work for its 64 bytes; all but the processing are known:
///
/// | | |
/// |---|---|
/// | one read cycle | 64 / (129,867 / 58.87) s = 29.012 ms |
/// | command `AT+CIPRXGET=2,0,64\r` (echo off) | 19 B × 10 / 115200 = 1.649 ms |
/// | reply `\r\n+CIPRXGET: 2,0,64,<6 digits>\r\n` + 64 B + `\r\nOK\r\n` | 98 B × 10 / 115200 = 8.507 ms |
/// | flash: (45 ms erase + 16 × 0.4 ms program) per 4 KiB, × 64 / 4096 | 0.803 ms |
/// | **modem processing per command** | **18.05 ms** |
pub fn default_command_latency() -> Duration {
    let cycle = SEED_READ as f64 / (SEED_BYTES_READ / SEED_SECONDS);
    let command = "AT+CIPRXGET=2,0,64\r".len();
    let reply = "\r\n+CIPRXGET: 2,0,64,123456\r\n".len() + SEED_READ + "\r\nOK\r\n".len();
    let wire = (command + reply) as f64 * BITS_PER_BYTE / SEED_BAUD;
    let flash = (SECTOR_ERASE_S + PAGES_PER_SECTOR * PAGE_PROGRAM_S) * SEED_READ as f64 / SECTOR_BYTES;
    Duration::from_secs_f64(cycle - wire - flash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_latency_from_the_seed_figures() {
        // By hand: 64 B / (129867 B / 58.87 s) = 29.0118 ms per read cycle;
        // wire (19 + 98) B × 10 / 115200 = 10.1563 ms; flash 51.4 ms × 64 / 4096 = 0.8031 ms;
        // 29.0118 − 10.1563 − 0.8031 = 18.0524 ms.
        let ms = default_command_latency().as_secs_f64() * 1e3;
        assert!((ms - 18.05).abs() < 0.5, "derived latency {ms} ms");
        assert!((ms - 18.0524).abs() < 0.001, "derived latency {ms} ms");
    }

    #[test]
    fn defaults_follow_the_dialect() {
        let a = ModemEmulatorConfig::new(Dialect::Sim7600);
        let b = ModemEmulatorConfig::new(Dialect::Sim7080);
        assert_eq!(a.max_read, 1460);
        assert!(a.boot_time > b.boot_time);
        assert_eq!(a.command_latency, default_command_latency());
    }
}
