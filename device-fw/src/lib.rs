//! The device side of otactl: a `no_std` cellular OTA core.
//!
//! It owns no hardware. The modem UART comes in as [`embedded_io_async`] `Read + Write`,
//! the OTA slot as an [`embedded_storage_async`] `NorFlash`, and time as a [`clock::Clock`],
//! so the same code runs on the chip (esp-hal, embassy-time) and on the host, where the
//! virtual bench (`sim`) drives it in virtual time.
//!
//! One image byte travels one way: modem ([`modem`]) → socket ([`socket`]) → HTTP
//! ([`http`]) → download engine ([`ota`]) → slot. No layer reaches around another.
//!
//! # Use it from your firmware
//!
//! A product's firmware keeps its own work (sensors, display, its own server) and hands the
//! engine what it needs one call at a time: [`updater::Updater`] has three calls,
//! [`start`](updater::Updater::start) after every boot (confirm or roll back a fresh
//! update, after the app's own self-test), [`check`](updater::Updater::check) and
//! [`update`](updater::Updater::update). The app owns the modem driver ([`modem::Modem`],
//! over its UART) and the [`http::HttpClient`] on it; between updates it sends its own
//! requests through the same client, and every updater call returns with no connection of
//! its own left open. Events come through an [`ota::update::UpdateSink`] (a closure will do).
//!
//! ```
//! use device_fw::clock::{Clock, secs};
//! use device_fw::http::{HttpClient, Target};
//! use device_fw::modem::{Dialect, Modem, ModemConfig};
//! use device_fw::ota::update::{BootReport, Running, UpdateEvent};
//! use device_fw::socket::Socket;
//! use device_fw::updater::{Settings, Updater};
//! use embedded_io_async::{Read, Write};
//! use embedded_storage_async::nor_flash::NorFlash;
//!
//! /// Posts a reading every minute; updates when the server's answer says `update`.
//! /// Returns when the chip should reset.
//! async fn app<U: Read + Write, F: NorFlash, C: Clock>(
//!     uart: U,
//!     flash: &mut F,
//!     clock: C,
//!     settings: &Settings<'_>,
//!     running: Running<'_>,
//! ) {
//!     let Ok(modem_cfg) = ModemConfig::new(Dialect::Sim7600, "iot.example") else { return };
//!     let mut http = HttpClient::new(Modem::new(uart, clock.clone(), modem_cfg));
//!     let modem_up = http.socket().bring_up().await.is_ok();
//!     let mut updater = Updater::new(settings, running);
//!     let mut events = |event: UpdateEvent<'_>| { let _ = event; /* log it */ };
//!     let Ok(url) = Target::parse("http://telemetry.example/readings") else { return };
//!
//!     // A fresh update confirms itself only if the app's own work goes through.
//!     let self_test = async {
//!         modem_up && http.post(&url, "application/json", br#"{"t":0}"#).await.is_ok()
//!     };
//!     match updater.start(flash, self_test, &mut events).await {
//!         Ok(BootReport::RollbackRequested) => return, // reset: the previous app boots
//!         _ => {}
//!     }
//!     loop {
//!         let mut reply = [0u8; 16];
//!         let mut n = 0;
//!         if http.post_for_reply(&url, "application/json", br#"{"t":21.5}"#).await.is_ok() {
//!             while let Ok(k @ 1..) = http.read_body(&mut reply[n..]).await {
//!                 n += k;
//!             }
//!         }
//!         if reply[..n].starts_with(b"update")
//!             && updater.update(&mut http, flash, &clock, &mut events).await.is_ok()
//!         {
//!             return; // reset: the new app boots and confirms itself
//!         }
//!         // Listen rather than sleep: the modem's notices are read as they come, not left
//!         // to overflow the chip's 128-byte UART FIFO.
//!         if !http.socket().listen(secs(60)).await {
//!             clock.sleep_us(secs(60)).await;
//!         }
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! The same loop, with a real server and the bench's modem emulator, runs in the test
//! `sim/tests/embedding.rs`; the example app `example-telemetry` (a workspace member) is its
//! complete form, built for the chip.
//! An app with its own transport uses the layer under the updater: [`ota::slot`] (the slot
//! writer), [`ota::journal`] (resume after power cuts), [`esp::slot_image`] (the
//! bootloader's checks of a written image) and [`esp::boot`] (activate, mark valid or
//! invalid).
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(async_fn_in_trait)]

pub mod app;
pub mod clock;
pub mod esp;
#[cfg(feature = "std")]
pub mod fleet;
pub mod http;
pub mod modem;
pub mod ota;
#[cfg(feature = "profile")]
pub mod profile;
pub mod socket;
pub mod updater;
pub mod wire;
