//! An Espressif ROM serial loader (download mode) in front of a [`SimFlash`](crate::flash::SimFlash):
//! the peer `otactl flash` is proven against, through the ROM's commands and through the
//! flasher stub's (answered as the stub answers, nothing uploaded is executed), and one that
//! Espressif's own esptool accepts in both modes, so the emulator is itself checked by a tool
//! nobody here wrote.
//!
//! - [`stub`]: the flasher stub's commands once it "runs".
//! - [`inflate`]: FLASH_DEFL_DATA's streaming inflate.
//! - [`spi`]: the SPI1 user-command registers (flash id, SFDP).
//! - [`ram`]: uploads to RAM, and the jump that starts stub mode.
//!
//! - [`slip`]: SLIP framing.
//! - [`protocol`]: request/response packets, opcodes, checksum, ROM error codes.
//! - [`chip`]: per-chip facts (detection values, eFuse/register answers, RAM, block sizes).
//! - [`loader`]: the command state machine, one frame at a time.
//! - [`link`]: the loader on a byte stream, optionally paced at the UART's baud rate.
//! - [`pty`]: the loader behind a pseudo-terminal (`otactl sim rom`).
//!
//! What is and is not emulated, and the error code each check answers with, is in
//! docs/rom-loader.md.

pub mod chip;
pub mod inflate;
pub mod link;
pub mod loader;
pub mod protocol;
pub mod pty;
pub mod ram;
pub mod slip;
pub mod spi;
pub mod stub;

pub use chip::RomChip;
pub use link::{LinkConfig, serve};
pub use loader::{RomLoader, RomStats};
