//! The telemetry app's logic: a product's own work with the engine beside it.
//!
//! Every minute it posts a reading to its own server through the modem the engine also
//! uses; the server's answer says whether to update (`update`). A freshly updated app
//! confirms itself only after a reading went through, so a release that breaks the
//! product's own work rolls back. Nothing here touches hardware: the chip's `main.rs` and
//! the bench's test (`sim/tests/embedding.rs`) hand it the same UART, flash and clock
//! types they hand the engine.

use core::fmt::Write as _;

use device_fw::clock::{Clock, secs};
use device_fw::http::{HttpClient, HttpError, Target};
use device_fw::modem::Modem;
use device_fw::ota::update::{BootReport, UpdateSink};
use device_fw::socket::{Socket, SocketError};
use device_fw::updater::Updater;
use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::NorFlash;

/// How often a reading goes out.
pub const PERIOD_US: u64 = secs(60);
/// The longest answer the app reads from its server.
const REPLY_LEN: usize = 64;

/// Where the readings go and what this device calls itself there.
#[derive(Debug, Clone, Copy)]
pub struct Telemetry<'a> {
    /// `http://host[:port]/path` of the app's own server.
    pub url: &'a str,
    pub device_id: &'a str,
    /// The running app's version, sent with every reading.
    pub version: &'a str,
}

/// What the app measures; on the chip a sensor, on the bench a counter.
pub trait Sensor {
    /// The reading in hundredths of a unit (°C × 100 for a thermometer).
    fn read_centi(&mut self) -> i32;
}

/// Why the app wants the chip reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// An update was activated: boot it.
    Updated,
    /// This freshly updated app failed its self-test: boot the previous one.
    RolledBack,
    /// The start duties could not read or write flash; a reset tries again.
    FlashFailed,
}

/// What one reading's POST came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Accepted; the server wants this device to update.
    Update,
    /// Accepted.
    Ok,
    /// Not delivered (the server refused it, the connection failed); the next period
    /// tries again.
    Failed,
    /// Not delivered: the modem restarted or lost the packet network; it is brought up
    /// again before the next reading.
    LinkLost,
}

/// Sends one reading and reads the server's answer.
pub async fn post_reading<U, C>(
    http: &mut HttpClient<Modem<U, C>>,
    telemetry: &Telemetry<'_>,
    seq: u32,
    centi: i32,
) -> Posted
where
    U: Read + Write,
    C: Clock,
{
    let Ok(url) = Target::parse(telemetry.url) else {
        return Posted::Failed;
    };
    let mut body: heapless::String<160> = heapless::String::new();
    let sign = if centi < 0 { "-" } else { "" };
    let (whole, frac) = (centi.unsigned_abs() / 100, centi.unsigned_abs() % 100);
    if write!(
        body,
        r#"{{"device":"{}","version":"{}","seq":{seq},"reading":{sign}{whole}.{frac:02}}}"#,
        telemetry.device_id, telemetry.version
    )
    .is_err()
    {
        return Posted::Failed;
    }
    match http.post_for_reply(&url, "application/json", body.as_bytes()).await {
        Ok(_) => {}
        Err(HttpError::Socket(SocketError::ModemLost | SocketError::NetworkDown)) => return Posted::LinkLost,
        Err(_) => return Posted::Failed,
    }
    let mut reply = [0u8; REPLY_LEN];
    let mut n = 0;
    loop {
        match http.read_body(&mut reply[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Posted::Failed,
        }
        if n == reply.len() {
            // Longer than any answer this server gives: not one we act on.
            http.close().await;
            break;
        }
    }
    if reply[..n].trim_ascii() == b"update" {
        Posted::Update
    } else {
        Posted::Ok
    }
}

/// Runs the app: modem up, start duties (with a reading as the self-test), then a reading
/// every [`PERIOD_US`], updating when the server says so. Returns when the chip should
/// reset; an app that never updates runs for ever.
pub async fn run<U, F, C, S, E>(
    http: &mut HttpClient<Modem<U, C>>,
    flash: &mut F,
    clock: &C,
    updater: &mut Updater<'_>,
    telemetry: &Telemetry<'_>,
    sensor: &mut S,
    events: &mut E,
) -> Exit
where
    U: Read + Write,
    F: NorFlash,
    C: Clock,
    S: Sensor,
    E: UpdateSink,
{
    let mut seq = 0u32;
    let mut modem_up = http.socket().bring_up().await.is_ok();
    // The self-test is the app's own work: a reading reaches its server.
    let first = if modem_up {
        post_reading(http, telemetry, seq, sensor.read_centi()).await
    } else {
        Posted::LinkLost
    };
    seq += 1;
    let delivered = matches!(first, Posted::Ok | Posted::Update);
    match updater.start(flash, async { delivered }, events).await {
        Ok(BootReport::RollbackRequested) => return Exit::RolledBack,
        Ok(_) => {}
        Err(_) => return Exit::FlashFailed,
    }
    let mut posted = first;
    loop {
        if posted == Posted::Update && updater.update(http, flash, clock, events).await.is_ok() {
            return Exit::Updated;
        }
        // Listening, not sleeping: the modem's notices (a close, a restart) are read as they
        // come instead of overflowing the chip's 128-byte UART FIFO.
        if !http.socket().listen(PERIOD_US).await {
            clock.sleep_us(PERIOD_US).await;
        }
        if !modem_up {
            modem_up = http.socket().bring_up().await.is_ok();
        }
        posted = post_reading(http, telemetry, seq, sensor.read_centi()).await;
        seq = seq.wrapping_add(1);
        if posted == Posted::LinkLost {
            modem_up = false;
        }
    }
}
