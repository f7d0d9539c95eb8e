//! The core's [`Clock`] on the chip: embassy-time, driven by esp-rtos's timer.

use device_fw::clock::Clock;
use embassy_time::{Instant, Timer};

/// A handle to embassy-time's global clock; zero-sized, so the core can copy it into every
/// layer that waits.
#[derive(Debug, Clone, Copy)]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now_us(&self) -> u64 {
        Instant::now().as_micros()
    }

    async fn sleep_us(&self, us: u64) {
        Timer::after_micros(us).await
    }
}
