//! Bench time, with microsecond resolution on top of tokio's millisecond timer.
//!
//! tokio's timer wheel rounds every sleep up to the next millisecond. A UART byte at
//! 115200 baud lasts 87 µs and a page program 0.4 ms, so millisecond rounding would distort
//! exactly the figures the bench exists to measure. In virtual time the bench therefore
//! stretches its clock: one bench microsecond is one tokio millisecond (the paused clock
//! jumps over the gaps, so this costs no wall time). Real-time runs keep a scale of 1.
//!
//! Bench time is counted in nanoseconds since the thread's epoch; every bench component
//! sleeps and reads the time through this module, never through tokio directly.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

thread_local! {
    static EPOCH: Cell<Option<Instant>> = const { Cell::new(None) };
    static SCALE: Cell<u32> = const { Cell::new(1) };
}

/// tokio units per bench unit in virtual time.
pub const VIRTUAL_SCALE: u32 = 1000;

/// Switches this thread to virtual time (call first thing inside a paused runtime).
pub fn use_virtual_time() {
    SCALE.set(VIRTUAL_SCALE);
    EPOCH.set(Some(Instant::now()));
}

/// Switches this thread to real time, optionally sped up `k` times is not supported: the
/// bench's real-time mode runs at wall speed.
pub fn use_real_time() {
    SCALE.set(1);
    EPOCH.set(Some(Instant::now()));
}

fn epoch() -> Instant {
    EPOCH.get().unwrap_or_else(|| {
        let now = Instant::now();
        EPOCH.set(Some(now));
        now
    })
}

/// Bench nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    (Instant::now().duration_since(epoch()).as_nanos() / u128::from(SCALE.get())) as u64
}

/// Bench time since the epoch.
pub fn now() -> Duration {
    Duration::from_nanos(now_ns())
}

/// Sleeps until bench time `ns`.
pub fn sleep_until_ns(ns: u64) -> impl Future<Output = ()> {
    let at = epoch() + Duration::from_nanos(ns) * SCALE.get();
    tokio::time::sleep_until(at)
}

/// Sleeps for `d` of bench time.
pub fn sleep(d: Duration) -> impl Future<Output = ()> {
    tokio::time::sleep(d * SCALE.get())
}

/// Runs `fut` for at most `d` of bench time.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(d * SCALE.get(), fut).await
}

/// The device core's clock on the bench.
#[derive(Debug, Clone, Copy, Default)]
pub struct BenchClock;

impl device_fw::clock::Clock for BenchClock {
    fn now_us(&self) -> u64 {
        now_ns() / 1_000
    }

    async fn sleep_us(&self, us: u64) {
        sleep(Duration::from_micros(us)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn microsecond_sleeps_are_exact_in_virtual_time() {
        use_virtual_time();
        for _ in 0..1000 {
            sleep(Duration::from_micros(87)).await;
        }
        assert_eq!(now(), Duration::from_micros(87_000));
    }
}
