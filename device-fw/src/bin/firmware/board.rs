//! The modem's wiring: its UART at the profile's baud and pins, and the power-key and reset
//! lines that switch it on before the core's driver talks to it.
//!
//! The profiles describe the common module boards, where PWRKEY and RESET are driven
//! through an NPN transistor: the GPIO high pulls the modem's pin low ("pressed"), the GPIO
//! low releases it. docs/hardware.md shows the circuit.

use embassy_time::{Duration, Instant, Timer, with_timeout};
use embedded_io_async::{Read, Write};
use esp_hal::Async;
use esp_hal::gpio::{AnyPin, Level, Output, OutputConfig};
use esp_hal::peripherals::UART1;
use esp_hal::uart::{Config, CtsConfig, HwFlowControl, RtsConfig, RxConfig, Uart};

use device_fw::modem::Dialect;

use crate::config;
use crate::start::StartError;

/// GPIO level that presses the modem's PWRKEY or RESET through the board's transistor.
const PRESSED: Level = Level::High;
const RELEASED: Level = Level::Low;

/// RX FIFO level (of 128 bytes) at which the UART interrupt hands bytes to the driver.
/// esp-hal's default (120) leaves 8 bytes of slack, 70 µs at 921600 baud; half the FIFO
/// leaves room for interrupt latency at every rate a profile may use.
const RX_FIFO_THRESHOLD: u16 = 64;
/// RX FIFO level at which RTS tells the modem to pause (flow-controlled profiles): the
/// modem stops within a few bytes, well before the FIFO is full. This is what carries the
/// modem's reply through a flash erase, during which the CPU serves no interrupts.
const RTS_THRESHOLD: u8 = 64;

/// The modem's GPIOs, taken from the peripherals by `take_modem_pins!` (generated from the
/// profile's `[pins]`).
#[derive(Debug)]
pub struct ModemPins {
    pub tx: AnyPin<'static>,
    pub rx: AnyPin<'static>,
    pub pwrkey: AnyPin<'static>,
    pub reset: Option<AnyPin<'static>>,
    /// Only with `modem.rts_cts = true`.
    pub rts: Option<AnyPin<'static>>,
    pub cts: Option<AnyPin<'static>>,
}

/// UART1 to the modem, 8N1 at the profile's baud, with RTS/CTS when the profile wires them.
/// The esp-hal driver implements `embedded-io-async` 0.7, the version the core uses, so it
/// goes to the core as it is.
pub fn modem_uart(
    uart: UART1<'static>,
    tx: AnyPin<'static>,
    rx: AnyPin<'static>,
    rts: Option<AnyPin<'static>>,
    cts: Option<AnyPin<'static>>,
) -> Result<Uart<'static, Async>, StartError> {
    let cfg = uart_config(config::BAUD, rts.is_some() && cts.is_some());
    let mut uart = Uart::new(uart, cfg).map_err(StartError::Uart)?.with_tx(tx).with_rx(rx);
    if let (Some(rts), Some(cts)) = (rts, cts) {
        uart = uart.with_rts(rts).with_cts(cts);
    }
    Ok(uart.into_async())
}

/// The modem UART's settings at `baud`.
fn uart_config(baud: u32, flow_control: bool) -> Config {
    let flow = if flow_control {
        HwFlowControl {
            cts: CtsConfig::Enabled,
            rts: RtsConfig::Enabled(RTS_THRESHOLD),
        }
    } else {
        HwFlowControl::default()
    };
    Config::default()
        .with_baudrate(baud)
        .with_rx(RxConfig::default().with_fifo_full_threshold(RX_FIFO_THRESHOLD))
        .with_hw_flow_ctrl(flow)
}

/// Retunes the modem UART to `baud`, everything else as set up: what the core calls to
/// follow the modem to `modem.fast_baud` and back (`Modem::with_uart_rate`). The core calls
/// it only between commands; the flush lets a last byte leave first, since reconfiguring
/// drops what the transmitter still holds.
pub fn set_modem_baud(uart: &mut Uart<'static, Async>, baud: u32) -> bool {
    let _ = uart.flush();
    uart.apply_config(&uart_config(baud, config::RTS_CTS)).is_ok()
}

/// The modem's PWRKEY and (optional) RESET lines.
#[derive(Debug)]
pub struct ModemPower {
    pwrkey: Output<'static>,
    reset: Option<Output<'static>>,
}

/// How long PWRKEY is held to switch the modem on.
///
/// - SIM7600: at least 500 ms (SIMCom SIM7600 Series Hardware Design, power-on sequence);
///   held 2.5 s or more it switches a running module off, so 600 ms keeps margin both ways.
///   The UART answers about 12 s later: the core's bring-up waits for `RDY`/`AT` up to
///   `ModemConfig::boot_timeout_us` (30 s), so the glue does not wait here.
/// - SIM7080: about 1 s (SIMCom SIM7080 Series Hardware Design, power-on sequence); 1.2 s
///   switches a running module off, hence 1.1 s.
fn pwrkey_hold(dialect: Dialect) -> Duration {
    match dialect {
        Dialect::Sim7600 => Duration::from_millis(600),
        _ => Duration::from_millis(1100),
    }
}

/// RESET low for at least 250 ms restarts a hung module (SIMCom hardware design manuals,
/// reset sequence); 300 ms for margin.
const RESET_HOLD: Duration = Duration::from_millis(300);
/// How long one `AT` probe waits for `OK`.
const PROBE_WAIT: Duration = Duration::from_millis(300);

impl ModemPower {
    /// Both lines start released, so configuring the GPIOs never presses a key.
    pub fn new(pwrkey: AnyPin<'static>, reset: Option<AnyPin<'static>>) -> Self {
        ModemPower {
            pwrkey: Output::new(pwrkey, RELEASED, OutputConfig::default()),
            reset: reset.map(|pin| Output::new(pin, RELEASED, OutputConfig::default())),
        }
    }

    /// Switches the modem on unless it already answers; says what it did, for the log.
    ///
    /// PWRKEY toggles: a press long enough to switch the module on also switches a running
    /// one off (a little longer on the SIM7080). After a reset of the chip alone (an update,
    /// a crash) the modem is still on, so it is asked first and left alone if it answers,
    /// at its power-on rate or at `modem.fast_baud`, which it keeps until it restarts. The
    /// UART is left at the power-on rate; the core's sync finds the modem's.
    pub async fn switch_on(&mut self, uart: &mut Uart<'static, Async>, dialect: Dialect) -> &'static str {
        // Twice at the power-on rate, then once at the fast rate if the profile has one.
        let fast = config::FAST_BAUD.unwrap_or(config::BAUD);
        for probe in 0..3 {
            let at_fast = probe == 2;
            if at_fast && (fast == config::BAUD || !set_modem_baud(uart, fast)) {
                break;
            }
            let on = answers_at(uart).await;
            if at_fast && !set_modem_baud(uart, config::BAUD) {
                return "could not set the UART back to modem.baud";
            }
            if on {
                return if at_fast {
                    "already on, at modem.fast_baud"
                } else {
                    "already on"
                };
            }
        }
        if let Some(reset) = &mut self.reset {
            // Powered but not answering (hung, or at another baud): restart it. On a module
            // that is off this does nothing, and the PWRKEY press below switches it on.
            reset.set_level(PRESSED);
            Timer::after(RESET_HOLD).await;
            reset.set_level(RELEASED);
            Timer::after_millis(100).await;
        }
        self.pwrkey.set_level(PRESSED);
        Timer::after(pwrkey_hold(dialect)).await;
        self.pwrkey.set_level(RELEASED);
        if self.reset.is_some() {
            "reset and PWRKEY pressed; the modem boots now"
        } else {
            "PWRKEY pressed; the modem boots now"
        }
    }
}

/// Sends `AT` and looks for `OK` in whatever comes back within [`PROBE_WAIT`]. Leftover
/// bytes (echo, boot notices) are the core's to skip: its bring-up syncs from any state.
async fn answers_at(uart: &mut Uart<'static, Async>) -> bool {
    if Write::write_all(uart, b"AT\r").await.is_err() {
        return false;
    }
    let mut seen = [0u8; 64];
    let mut len = 0;
    let deadline = Instant::now() + PROBE_WAIT;
    while len < seen.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match with_timeout(left, Read::read(uart, &mut seen[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => break,
        }
        if seen[..len].windows(2).any(|w| w == b"OK") {
            return true;
        }
    }
    false
}
