//! `otactl-fw`: the device core on an ESP32-C3 or ESP32-C6 (esp-hal, esp-rtos, embassy).
//!
//! This file and its modules are glue only: they turn the chip's peripherals into the
//! traits the core takes (console and modem UART as `embedded-io-async` streams, the flash as
//! `NorFlash`, embassy-time as the core's `Clock`), find out what the bootloader started,
//! and hand everything to [`device_fw::app::run`]. Every decision about updates is the
//! core's, so what the virtual bench tests is what the chip runs.
//!
//! Built only with a chip feature (`esp32c3` or `esp32c6`); the profile it was built from
//! is compiled in by `build.rs`. See docs/hardware.md for wiring and build commands.
#![no_std]
#![no_main]

mod board;
mod clock;
mod console;
mod flash;
mod start;

/// The profile, as `build.rs` read it.
#[macro_use]
mod config {
    include!(concat!(env!("OUT_DIR"), "/firmware_config.rs"));
}

use core::fmt::Write as _;

use device_fw::app::{AlwaysNow, AppConfig, Reboot};
use device_fw::modem::ModemConfig;
use embassy_executor::Spawner;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::Pin as _;
use esp_hal::timer::timg::TimerGroup;
// Panics print a backtrace on the USB-Serial-JTAG console (esp-println), then reset
// (`custom_halt`).
use esp_backtrace as _;

use crate::clock::EmbassyClock;
use crate::console::Console;
use crate::flash::AsyncFlash;

// The app descriptor: the bootloader and `otactl release` read the version from it, and an
// update is accepted only when it equals the signed manifest's. It is the crate version
// (`version` in the workspace Cargo.toml): bump it for every release.
esp_bootloader_esp_idf::esp_app_desc!();

#[esp_rtos::main]
async fn main(_spawner: Spawner) -> ! {
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    let timg0 = TimerGroup::new(p.TIMG0);
    esp_rtos::start(timg0.timer0, p.FROM_CPU_INTR0);

    let mut console = Console::new(p.USB_DEVICE);
    let desc = &ESP_APP_DESC;
    let (tx, rx, pwrkey) = config::PIN_NUMBERS;
    console
        .log(format_args!(
            "otactl-fw {} ({}) for {} on {}, profile {}: modem {} at {} baud{}, TX GPIO{tx} RX GPIO{rx} PWRKEY GPIO{pwrkey}",
            desc.version(),
            config::PRODUCT,
            config::CHIP,
            config::BOARD,
            config::PROFILE,
            config::DIALECT.name(),
            config::BAUD,
            if config::RTS_CTS { " with RTS/CTS" } else { "" },
        ))
        .await;

    let mut storage = esp_storage::FlashStorage::new(p.FLASH);
    let booted = match start::booted_offset(&mut storage) {
        Ok(offset) => offset,
        Err(e) => halt(&mut console, e).await,
    };
    let mut flash = AsyncFlash::new(storage);
    let (layout, running) = match start::layout_and_running(&mut flash, booted, desc).await {
        Ok(found) => found,
        Err(e) => halt(&mut console, e).await,
    };

    let modem = match ModemConfig::new(config::DIALECT, config::APN) {
        Ok(mut modem) => {
            modem.baud = config::BAUD;
            modem.fast_baud = config::FAST_BAUD;
            modem.ca_cert = config::CA_CERTS;
            modem
        }
        // build.rs checked the APN with the same rule; this is only reachable if they drift.
        Err(e) => halt(&mut console, start::StartError::Config(e)).await,
    };
    // The id is the chip's own: derived from the factory MAC in eFuse, so it survives
    // every update and reflash, and hashed so that reports do not carry the MAC.
    let device_id = device_fw::wire::rollout::device_id_from_hardware(
        config::PRODUCT,
        esp_hal::efuse::base_mac_address().as_bytes(),
    );
    let cfg = AppConfig {
        product: config::PRODUCT,
        channel: config::CHANNEL,
        board: config::BOARD,
        chip: config::CHIP,
        project: desc.project_name(),
        manifest_url: config::MANIFEST_URL,
        keys: &config::PUBLIC_KEYS,
        download: config::DOWNLOAD,
        layout,
        modem,
        device_id: &device_id,
        update: config::UPDATE,
        report_url: config::REPORT_URL,
    };

    let pins = take_modem_pins!(p);
    let mut uart = match board::modem_uart(p.UART1, pins.tx, pins.rx, pins.rts, pins.cts) {
        Ok(uart) => uart,
        Err(e) => halt(&mut console, e).await,
    };
    let mut power = board::ModemPower::new(pins.pwrkey, pins.reset);
    let note = power.switch_on(&mut uart, config::DIALECT).await;
    console.log(format_args!("modem power: {note}")).await;

    let reboot = device_fw::app::run(
        &mut console,
        uart,
        // Only a profile with a fast rate needs the UART retuned; without one the
        // reconfiguration code is left out of the image.
        config::FAST_BAUD.map(|_| board::set_modem_baud as fn(&mut _, u32) -> bool),
        &mut flash,
        EmbassyClock,
        &cfg,
        running,
        // The reference firmware has nothing to wait for: a scheduled update goes ahead.
        &mut AlwaysNow,
    )
    .await;
    let why = match reboot {
        Reboot::Activated => "update activated",
        Reboot::SelfTestFailed => "self-test failed, rolling back",
        Reboot::Requested => "requested",
    };
    console.log(format_args!("reset: {why}")).await;
    // Let the last line leave the USB FIFO before the reset cuts it off.
    embassy_time::Timer::after_millis(50).await;
    esp_hal::system::software_reset()
}

/// esp-backtrace calls this after it printed a panic: reset, never spin. A new app that
/// panics before it confirmed itself then boots again as ABORTED, and the bootloader rolls
/// back to the previous one; a spinning chip would stay dead until someone power-cycles it.
// The hook is found by its symbol name, which takes `no_mangle`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
fn custom_halt() -> ! {
    // Give the host a moment to read the panic message out of the USB FIFO.
    esp_hal::delay::Delay::new().delay_millis(100);
    esp_hal::system::software_reset()
}

/// Stops at a fault the device cannot work around (no usable partition table, the app not
/// in an OTA slot): repeats the reason on the console, so that whoever attaches later still
/// sees it, instead of resetting into the same fault forever.
async fn halt(console: &mut Console, error: impl core::fmt::Display) -> ! {
    let mut line: heapless::String<256> = heapless::String::new();
    let _ = write!(line, "otactl-fw cannot start: {error}");
    loop {
        console.log(format_args!("{line}")).await;
        embassy_time::Timer::after_secs(10).await;
    }
}
