//! The device side of otactl: a `no_std` cellular OTA core.
//!
//! It owns no hardware. The modem UART comes in as [`embedded_io_async`] `Read + Write`,
//! the OTA slot as an [`embedded_storage_async`] `NorFlash`, and time as a [`clock::Clock`],
//! so the same code runs on the chip (esp-hal, embassy-time) and on the host, where the
//! virtual bench (`sim`) drives it in virtual time.
//!
//! One image byte travels one way: modem ([`modem`]) → socket ([`socket`]) → HTTP
//! ([`http`]) → download engine ([`ota`]) → slot. No layer reaches around another.
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
pub mod wire;
