//! Bench time, with microsecond resolution on top of tokio's millisecond timer.
//!
//! tokio's timer wheel rounds every sleep up to the next millisecond. A UART byte at
//! 115200 baud lasts 87 µs and a page program 0.4 ms, so millisecond rounding would distort
//! exactly the figures the bench exists to measure. In virtual time the bench therefore
//! stretches its clock: one bench microsecond is one tokio millisecond (the paused clock
//! jumps over the gaps, so this costs no wall time).
//!
//! A device on the real bench (a pseudo-terminal, real TCP) runs on tokio's real clock:
//! at scale 1 bench time is wall time; [`use_scaled_time`] lets it run `k` times faster, so
//! that a 59 s NAT timeout or a 12 s modem boot can be watched in seconds. The scale is
//! kept as an exact ratio of tokio units to bench units so that the virtual-time figures
//! stay bit for bit what they were.
//!
//! Bench time is counted in nanoseconds since the thread's epoch; every bench component
//! sleeps and reads the time through this module, never through tokio directly.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

thread_local! {
    static EPOCH: Cell<Option<Instant>> = const { Cell::new(None) };
    static SCALE: Cell<Scale> = const { Cell::new(Scale::REAL) };
    /// On tokio's real clock (not paused): short sleeps are batched, see [`sleep`].
    static REAL: Cell<bool> = const { Cell::new(true) };
    /// Real-clock time owed by relative sleeps too short for tokio's timer.
    static OWED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// tokio's timer resolution: a real-clock sleep lasts at least until the next tick.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// tokio units per bench unit in virtual time.
pub const VIRTUAL_SCALE: u32 = 1000;

/// Most speed-up [`use_scaled_time`] accepts: beyond it tokio's millisecond timer would
/// swallow the UART's byte times whole.
pub const MAX_TIME_SCALE: f64 = 1000.0;

/// `tokio = bench × tokio_units / bench_units`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scale {
    tokio_units: u64,
    bench_units: u64,
}

impl Scale {
    const REAL: Scale = Scale {
        tokio_units: 1,
        bench_units: 1,
    };

    fn to_tokio(self, d: Duration) -> Duration {
        from_nanos_u128(d.as_nanos() * u128::from(self.tokio_units) / u128::from(self.bench_units))
    }

    fn to_bench_ns(self, tokio: Duration) -> u64 {
        (tokio.as_nanos() * u128::from(self.bench_units) / u128::from(self.tokio_units)) as u64
    }
}

fn from_nanos_u128(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

fn start(scale: Scale, real: bool) {
    SCALE.set(scale);
    REAL.set(real);
    OWED.set(Duration::ZERO);
    EPOCH.set(Some(Instant::now()));
}

/// Switches this thread to virtual time (call first thing inside a paused runtime).
pub fn use_virtual_time() {
    start(
        Scale {
            tokio_units: u64::from(VIRTUAL_SCALE),
            bench_units: 1,
        },
        false,
    );
}

/// Runs `f` to its end on a fresh paused single-thread runtime, in virtual time: how a
/// sweep or a test drives the bench when nothing needs real time.
pub fn run_virtual<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
        .block_on(async {
            use_virtual_time();
            f.await
        })
}

/// Switches this thread to real time: bench time is wall time.
pub fn use_real_time() {
    start(Scale::REAL, true);
}

/// Switches this thread to real time running `k` times faster than the wall clock
/// (`1.0 ≤ k ≤ MAX_TIME_SCALE`; resolution 1/1000). The epoch restarts now.
pub fn use_scaled_time(k: f64) {
    assert!(
        (1.0..=MAX_TIME_SCALE).contains(&k),
        "time scale {k} is outside 1..={MAX_TIME_SCALE}"
    );
    start(
        Scale {
            tokio_units: 1000,
            bench_units: (k * 1000.0).round() as u64,
        },
        true,
    );
}

/// How many bench seconds pass in one tokio second on this thread.
pub fn speed() -> f64 {
    let s = SCALE.get();
    s.bench_units as f64 / s.tokio_units as f64
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
    SCALE.get().to_bench_ns(Instant::now().duration_since(epoch()))
}

/// Bench time since the epoch.
pub fn now() -> Duration {
    Duration::from_nanos(now_ns())
}

/// Sleeps until bench time `ns`.
pub fn sleep_until_ns(ns: u64) -> impl Future<Output = ()> {
    let at = epoch() + SCALE.get().to_tokio(Duration::from_nanos(ns));
    tokio::time::sleep_until(at)
}

/// Sleeps for `d` of bench time.
///
/// On the real clock every tokio sleep lasts until at least the next millisecond tick, so
/// a flash page program (0.4 ms, 20 µs of wall time at 20× speed) would cost a whole tick
/// and a sped-up device would write flash 50 times too slowly. Sleeps shorter than a tick
/// are therefore added up and paid together once they reach one; until then the sleep
/// ends at once. Time spent still adds up to what was asked for, a tick late at most. (The
/// future stays tokio's own `Sleep`: its size is part of the data path's measured RAM.)
pub fn sleep(d: Duration) -> impl Future<Output = ()> {
    let t = SCALE.get().to_tokio(d);
    if !REAL.get() {
        return tokio::time::sleep(t);
    }
    let owed = OWED.get() + t;
    if owed < TIMER_TICK {
        OWED.set(owed);
        // A deadline already a tick in the past fires at the first poll; `sleep(ZERO)`
        // would wait for the next tick.
        let now = Instant::now();
        tokio::time::sleep_until(now.checked_sub(2 * TIMER_TICK).unwrap_or(now))
    } else {
        OWED.set(Duration::ZERO);
        tokio::time::sleep(owed)
    }
}

/// Runs `fut` for at most `d` of bench time.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(SCALE.get().to_tokio(d), fut).await
}

/// The chip's CPU, as a blocking operation holds it: while a flash operation runs (the
/// firmware's esp-storage driver is synchronous, and a sector erase masks interrupts) nothing
/// else of the device progresses. Every device-side component that can do work on its own
/// (the UART end's reads and writes) waits here first, so the bench cannot overlap what the
/// chip runs one after the other. Clones share the same CPU.
#[derive(Debug, Clone, Default)]
pub struct Stall {
    /// Bench ns until which the CPU is held.
    until_ns: Arc<AtomicU64>,
    /// Bench ns the CPU has been held in all.
    held_ns: Arc<AtomicU64>,
}

impl Stall {
    /// Holds the CPU for `d` from now (or from the end of a hold already running); returns
    /// when (bench ns) the hold ends.
    pub fn hold(&self, d: Duration) -> u64 {
        let d_ns = d.as_nanos() as u64;
        let start = self.until_ns.load(Ordering::Relaxed).max(now_ns());
        let end = start + d_ns;
        self.until_ns.store(end, Ordering::Relaxed);
        self.held_ns.fetch_add(d_ns, Ordering::Relaxed);
        end
    }

    /// Whether the CPU is held right now.
    pub fn is_held(&self) -> bool {
        now_ns() < self.until_ns.load(Ordering::Relaxed)
    }

    /// Bench time the CPU has been held in all.
    pub fn held(&self) -> Duration {
        Duration::from_nanos(self.held_ns.load(Ordering::Relaxed))
    }

    /// Waits until the CPU is free. A hold that starts while waiting (the same poll of the
    /// device's task went on to the next flash operation) is waited out too.
    pub async fn wait(&self) {
        loop {
            let until = self.until_ns.load(Ordering::Relaxed);
            if now_ns() >= until {
                return;
            }
            sleep_until_ns(until).await;
        }
    }
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

    #[tokio::test(start_paused = true)]
    async fn a_scaled_clock_runs_k_times_faster_than_tokio() {
        use_scaled_time(12.5);
        let t0 = tokio::time::Instant::now();
        sleep(Duration::from_secs(25)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(now(), Duration::from_secs(25));
        sleep_until_ns(50_000_000_000).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(4));
        assert_eq!(speed(), 12.5);
        use_real_time();
        sleep(Duration::from_secs(3)).await;
        assert_eq!(now(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn short_real_time_sleeps_add_up_to_what_was_asked() {
        // 2000 page programs of 0.4 ms at 20× speed: 40 ms of wall time, not 2000 ticks.
        use_scaled_time(20.0);
        let t0 = std::time::Instant::now();
        for _ in 0..2000 {
            sleep(Duration::from_micros(400)).await;
        }
        let wall = t0.elapsed();
        assert!(wall >= Duration::from_millis(39), "{wall:?}");
        assert!(wall < Duration::from_millis(400), "{wall:?}");
    }
}
