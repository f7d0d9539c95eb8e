//! A product's own firmware with the engine inside: the chip side of the telemetry app.
//!
//! The app's work is [`app::run`]: a reading of the chip's temperature sensor every minute,
//! posted to the app's own server (`TELEMETRY_URL`, set when building) through the same
//! modem driver the engine uses; the server's answer `update` starts an update; a fresh
//! update confirms itself only once its first reading went through. This file is glue: the
//! reference firmware's board support (modem UART and power, flash, clock, console) and the
//! profile compiled in by `build.rs`, handed to the app. The bench runs the same `app.rs`
//! (`sim/tests/embedding.rs`).
//!
//! ```text
//! TELEMETRY_URL=http://readings.example.net/v1/readings \
//! OTACTL_PROFILE=profiles/esp32c3-sim7600.toml \
//!   cargo build --profile firmware -p example-telemetry --target riscv32imc-unknown-none-elf \
//!   --features esp32c3
//! ```
#![no_std]
#![no_main]

mod app;
#[path = "../../device-fw/src/bin/firmware/board.rs"]
mod board;
#[path = "../../device-fw/src/bin/firmware/clock.rs"]
mod clock;
#[path = "../../device-fw/src/bin/firmware/console.rs"]
mod console;
#[path = "../../device-fw/src/bin/firmware/flash.rs"]
mod flash;
#[path = "../../device-fw/src/bin/firmware/start.rs"]
mod start;

/// The profile, as `build.rs` read it. This app's server decides when to update, so the
/// profile's schedule (`UPDATE`) and outcome reports (`REPORT_URL`) go unused.
#[macro_use]
#[allow(dead_code)]
mod config {
    include!(concat!(env!("OUT_DIR"), "/firmware_config.rs"));
}

use device_fw::http::HttpClient;
use device_fw::modem::{Modem, ModemConfig};
use device_fw::ota::policy::DeviceIdentity;
use device_fw::ota::update::UpdateEvent;
use device_fw::updater::{Settings, Updater};
use embassy_executor::Spawner;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::Pin as _;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::tsens::{Config as TsensConfig, TemperatureSensor};

use crate::clock::EmbassyClock;
use crate::console::Console;
use crate::flash::AsyncFlash;

esp_bootloader_esp_idf::esp_app_desc!();

/// Where the readings go: the product's own server, not the update bucket.
const TELEMETRY_URL: &str = env!(
    "TELEMETRY_URL",
    "set TELEMETRY_URL to the http:// URL the readings are posted to"
);

/// The chip's own temperature sensor, in hundredths of a degree Celsius.
struct ChipTemperature(TemperatureSensor<'static>);

impl app::Sensor for ChipTemperature {
    fn read_centi(&mut self) -> i32 {
        (self.0.get_temperature().to_celsius() * 100.0) as i32
    }
}

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
            "telemetry app {} on {}, profile {}: modem {} TX GPIO{tx} RX GPIO{rx} PWRKEY GPIO{pwrkey}, readings to {TELEMETRY_URL}",
            desc.version(),
            config::BOARD,
            config::PROFILE,
            config::DIALECT.name(),
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
    let mut modem_cfg = match ModemConfig::new(config::DIALECT, config::APN) {
        Ok(cfg) => cfg,
        Err(e) => halt(&mut console, start::StartError::Config(e)).await,
    };
    modem_cfg.baud = config::BAUD;
    let device_id = device_fw::wire::rollout::device_id_from_hardware(
        config::PRODUCT,
        esp_hal::efuse::base_mac_address().as_bytes(),
    );
    let settings = Settings {
        manifest_url: config::MANIFEST_URL,
        keys: &config::PUBLIC_KEYS,
        layout,
        download: config::DOWNLOAD,
        identity: DeviceIdentity {
            product: config::PRODUCT,
            channel: config::CHANNEL,
            chip: config::CHIP,
            board: config::BOARD,
            running_version: running.version,
            secure_version: running.secure_version,
            failed_version: None,
            slot_size: 0,
            device_id: &device_id,
        },
    };

    let pins = take_modem_pins!(p);
    let mut uart = match board::modem_uart(p.UART1, pins.tx, pins.rx, pins.rts, pins.cts) {
        Ok(uart) => uart,
        Err(e) => halt(&mut console, e).await,
    };
    let mut power = board::ModemPower::new(pins.pwrkey, pins.reset);
    power.switch_on(&mut uart, config::DIALECT).await;
    let Ok(sensor) = TemperatureSensor::new(p.TSENS, TsensConfig::default()) else {
        halt(&mut console, "the temperature sensor did not start").await
    };

    let mut http = HttpClient::new(Modem::new(uart, EmbassyClock, modem_cfg));
    let mut updater = Updater::new(&settings, running);
    let telemetry = app::Telemetry {
        url: TELEMETRY_URL,
        device_id: &device_id,
        version: desc.version(),
    };
    // Events go to the USB console one line each; a product would log or count them.
    let mut events = |event: UpdateEvent<'_>| esp_println::println!("update: {event:?}");
    let exit = app::run(
        &mut http,
        &mut flash,
        &EmbassyClock,
        &mut updater,
        &telemetry,
        &mut ChipTemperature(sensor),
        &mut events,
    )
    .await;
    console.log(format_args!("reset: {exit:?}")).await;
    embassy_time::Timer::after_millis(50).await;
    esp_hal::system::software_reset()
}

/// A panic resets the chip (esp-backtrace's hook), so an update that panics rolls back.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
fn custom_halt() -> ! {
    esp_hal::delay::Delay::new().delay_millis(100);
    esp_hal::system::software_reset()
}

/// Repeats why the app cannot start, for whoever attaches the console later.
async fn halt(console: &mut Console, why: impl core::fmt::Display) -> ! {
    loop {
        console.log(format_args!("telemetry app cannot start: {why}")).await;
        embassy_time::Timer::after_secs(10).await;
    }
}
