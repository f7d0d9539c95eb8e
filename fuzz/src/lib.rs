//! Test doubles shared by the fuzz targets: an executor with a poll budget, a virtual clock
//! whose every sleep ends at once, a RAM NOR flash, a socket and UARTs that hand out fuzz
//! bytes, and a modem model that answers the driver's commands.
//!
//! Everything here is synchronous underneath, so a target runs one input in microseconds
//! and the same input always takes the same path (libFuzzer needs both).

pub mod decoder;
pub mod flash;
pub mod manifest_keys;
pub mod modem_model;
pub mod socket;
pub mod uart;

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use device_fw::clock::Clock;

/// Polls `fut` to completion; `None` if it is still pending after `budget` polls in a row.
///
/// The doubles never wake anyone: a future that is pending here is waiting for input that
/// will never come, with no deadline of its own (a sleep of [`VirtualClock`] ends at its
/// first poll). Giving up instead of spinning keeps libFuzzer's own timeout for true loops.
pub fn run<F: Future>(fut: F, budget: u32) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..budget {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// A clock in which waiting costs nothing: a sleep jumps the time to its end at its first
/// poll, so a deadline raced against input that is not there expires immediately, and
/// every reading of the time moves it on a little so that a loop on `now_us` terminates.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    now: Rc<Cell<u64>>,
}

impl VirtualClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for VirtualClock {
    fn now_us(&self) -> u64 {
        let t = self.now.get() + 1;
        self.now.set(t);
        t
    }

    async fn sleep_us(&self, us: u64) {
        let end = self.now.get().saturating_add(us);
        if end > self.now.get() {
            self.now.set(end);
        }
    }
}

/// Reads fuzz bytes front to back; running out yields zeros, so every input is usable.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest_is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// Whether `slice` lies inside `outer` (same allocation, in bounds): what a parser returns
/// must borrow from its input, never from elsewhere.
pub fn within(outer: &[u8], slice: &[u8]) -> bool {
    let (o, s) = (outer.as_ptr() as usize, slice.as_ptr() as usize);
    slice.is_empty() || (s >= o && s + slice.len() <= o + outer.len())
}

/// Whether `needle` occurs in `hay` as one contiguous run.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Read sizes chosen by the fuzzer: cycles through `sizes` (each 1..=256), or whole
/// buffers when there are none.
#[derive(Debug, Clone, Default)]
pub struct Splits {
    sizes: Vec<usize>,
    next: usize,
}

impl Splits {
    pub fn new(raw: &[u8]) -> Self {
        Splits {
            sizes: raw.iter().map(|&b| usize::from(b) + 1).collect(),
            next: 0,
        }
    }

    pub fn next(&mut self, cap: usize) -> usize {
        if self.sizes.is_empty() {
            return cap;
        }
        let n = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        n.min(cap)
    }
}
