//! The virtual bench: the world around the device core, in tokio's virtual time.
//!
//! A scenario runs on a current-thread runtime with a paused clock and only in-memory
//! streams, so a 59 s NAT timeout or a 105 s baseline costs milliseconds of wall time and
//! a seed always gives the same run.
//!
//! The same world also runs on the real clock, optionally sped up ([`pty_device`]): a
//! virtual device whose console is a pseudo-terminal and whose modem reaches a real HTTP
//! server on loopback, for the host tools (`otactl watch`, `otactl demo`) to be tried and
//! tested without a board.

pub mod calibration;
pub mod check_cost;
pub mod chip_ram;
pub mod cpu;
pub mod device;
pub mod fewer_bytes;
pub mod flash;
pub mod fleet;
pub mod loopback_origin;
pub mod modem;
pub mod net;
pub mod origin;
pub mod pipe;
pub mod pty;
pub mod pty_device;
pub mod required_tool;
pub mod rom;
pub mod rural;
pub mod scenario;
pub mod time;
pub mod tls;
pub mod trust;
pub mod uart;
