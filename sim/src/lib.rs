//! The virtual bench: the world around the device core, in tokio's virtual time.
//!
//! A scenario runs on a current-thread runtime with a paused clock and only in-memory
//! streams, so a 59 s NAT timeout or a 105 s baseline costs milliseconds of wall time and
//! a seed always gives the same run.

pub mod device;
pub mod flash;
pub mod modem;
pub mod net;
pub mod origin;
pub mod pipe;
pub mod scenario;
pub mod time;
pub mod trust;
pub mod uart;
