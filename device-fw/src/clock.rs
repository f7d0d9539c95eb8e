//! Time, as the core sees it.
//!
//! The core never reads a hardware timer itself: on the chip the clock is embassy-time, on
//! the host it is tokio's (paused, virtual) clock. That is what lets a 59 s NAT timeout
//! run in microseconds of wall time and the same seed give the same run.

use core::future::Future;

use embassy_futures::select::{Either, select};

/// A monotonic clock with microsecond resolution and an async sleep.
///
/// Implementations are expected to be cheap handles (usually zero-sized), hence `Clone`.
pub trait Clock: Clone {
    /// Microseconds since an arbitrary, fixed origin.
    fn now_us(&self) -> u64;
    /// Completes once `us` microseconds have passed.
    async fn sleep_us(&self, us: u64);
}

/// A deadline passed before the operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// Runs `fut` for at most `us` microseconds.
pub async fn with_timeout<C: Clock, F: Future>(clock: &C, us: u64, fut: F) -> Result<F::Output, TimedOut> {
    match select(fut, clock.sleep_us(us)).await {
        Either::First(out) => Ok(out),
        Either::Second(()) => Err(TimedOut),
    }
}

/// Milliseconds to microseconds, for readable call sites.
pub const fn ms(ms: u64) -> u64 {
    ms * 1_000
}

/// Seconds to microseconds, for readable call sites.
pub const fn secs(s: u64) -> u64 {
    s * 1_000_000
}
