//! The firmware's callbacks as the traits the core takes: the modem UART as
//! `embedded-io-async` `Read + Write`, the flash as `NorFlash`, time as a [`Clock`], and a
//! poll loop that drives the core's futures to completion.
//!
//! The callbacks block (a C firmware has no executor to hand the core), so every future
//! completes in its first poll except two: a UART read that saw no byte within
//! [`UART_POLL_US`], and a sleep. The core times reads out by racing them against a sleep
//! (`with_timeout`), so a sleep must not block while a read in the same poll round is
//! waiting for bytes, or the read would stop being served for the whole deadline. The rule:
//! a read that saw nothing marks the round, and a sleep only blocks in a round where no read
//! waited. A sleep of its own (a backoff) then blocks in one call to `sleep_us`; a read
//! raced against a deadline is polled in slices of `UART_POLL_US`, and the deadline is
//! noticed at most one slice late.

use core::cell::Cell;
use core::ffi::c_void;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use device_fw::clock::Clock;
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use embedded_storage_async::nor_flash::{
    ErrorType as FlashErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// How long one `uart_read` call may wait for the first byte. Short enough that a deadline
/// raced against a read is noticed promptly, long enough that an idle line costs a few
/// hundred calls a second at most.
pub const UART_POLL_US: u32 = 10_000;

/// The firmware's side of the engine. Every function is called from the thread that called
/// the `otactl_*` function, never concurrently, and must not call back into `otactl_*`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct otactl_callbacks {
    /// Passed as the first argument of every callback.
    pub ctx: *mut c_void,
    /// Reads up to `len` bytes from the modem UART into `buf`, waiting at most `timeout_us`
    /// for the first one. Returns the number of bytes read (1..=len), 0 when none came in
    /// time, or a negative value on a UART fault.
    pub uart_read: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: usize, timeout_us: u32) -> i32>,
    /// Writes `len` bytes from `buf` to the modem UART, blocking until they are queued.
    /// Returns the number written (1..=len; fewer is allowed, the rest follows in another
    /// call) or a negative value on a fault.
    pub uart_write: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *const u8, len: usize) -> i32>,
    /// Optional (may be NULL): sets the chip's UART to `baud`; returns 0 on success. Needed
    /// only when `otactl_config.fast_baud` is set.
    pub uart_set_baud: Option<unsafe extern "C" fn(ctx: *mut c_void, baud: u32) -> i32>,
    /// Reads `len` bytes at flash address `offset` into `buf`; 0 on success, negative on a
    /// fault. Any offset and length.
    pub flash_read: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32>,
    /// Programs `len` bytes at `offset` (NOR semantics: bits only go from 1 to 0; the
    /// engine erases first). `offset` and `len` are multiples of 4. 0 on success.
    pub flash_write: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *const u8, len: usize) -> i32>,
    /// Erases `[offset, offset + len)` to 0xFF; both are multiples of 4096. 0 on success.
    pub flash_erase: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, len: u32) -> i32>,
    /// Monotonic microseconds since any fixed origin (`esp_timer_get_time`, `micros64`).
    pub now_us: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>,
    /// Blocks for `us` microseconds (`vTaskDelay`, `delayMicroseconds`); may return early.
    pub sleep_us: Option<unsafe extern "C" fn(ctx: *mut c_void, us: u64)>,
    /// Optional (may be NULL): receives each `otactl_event` as it happens.
    pub event: Option<unsafe extern "C" fn(ctx: *mut c_void, event: *const crate::events::otactl_event)>,
}

/// The callbacks, checked for presence once, and the poll round's "a read waited" mark.
#[derive(Debug)]
pub struct Io {
    ctx: *mut c_void,
    uart_read: unsafe extern "C" fn(*mut c_void, *mut u8, usize, u32) -> i32,
    uart_write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> i32,
    uart_set_baud: Option<unsafe extern "C" fn(*mut c_void, u32) -> i32>,
    flash_read: unsafe extern "C" fn(*mut c_void, u32, *mut u8, usize) -> i32,
    flash_write: unsafe extern "C" fn(*mut c_void, u32, *const u8, usize) -> i32,
    flash_erase: unsafe extern "C" fn(*mut c_void, u32, u32) -> i32,
    now_us: unsafe extern "C" fn(*mut c_void) -> u64,
    sleep_us: unsafe extern "C" fn(*mut c_void, u64),
    event: Option<unsafe extern "C" fn(*mut c_void, *const crate::events::otactl_event)>,
    read_waited: Cell<bool>,
}

impl Io {
    /// `None` when a required callback is NULL.
    pub fn new(cb: &otactl_callbacks) -> Option<Io> {
        Some(Io {
            ctx: cb.ctx,
            uart_read: cb.uart_read?,
            uart_write: cb.uart_write?,
            uart_set_baud: cb.uart_set_baud,
            flash_read: cb.flash_read?,
            flash_write: cb.flash_write?,
            flash_erase: cb.flash_erase?,
            now_us: cb.now_us?,
            sleep_us: cb.sleep_us?,
            event: cb.event,
            read_waited: Cell::new(false),
        })
    }

    pub fn has_set_baud(&self) -> bool {
        self.uart_set_baud.is_some()
    }

    pub fn now(&self) -> u64 {
        // SAFETY: the firmware's function, called with its own context as the contract says.
        unsafe { (self.now_us)(self.ctx) }
    }

    pub fn emit(&self, event: &crate::events::otactl_event) {
        if let Some(f) = self.event {
            // SAFETY: `event` points at a live value for the call; the contract says the
            // callback must not keep the pointer.
            unsafe { f(self.ctx, event) }
        }
    }

    /// Drives `fut` to completion (see the module docs for the polling rule).
    pub fn block_on<F: Future>(&self, mut fut: Pin<&mut F>) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            self.read_waited.set(false);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }
}

/// A callback's negative return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackError(pub i32);

impl core::fmt::Display for CallbackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "callback returned {}", self.0)
    }
}

impl core::error::Error for CallbackError {}

impl embedded_io_async::Error for CallbackError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl NorFlashError for CallbackError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// The modem UART.
#[derive(Debug)]
pub struct Uart<'a>(pub &'a Io);

impl ErrorType for Uart<'_> {
    type Error = CallbackError;
}

impl Read for Uart<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let io = self.0;
        poll_fn(|_| {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes for the call.
            let n = unsafe { (io.uart_read)(io.ctx, buf.as_mut_ptr(), buf.len(), UART_POLL_US) };
            match n {
                0 => {
                    io.read_waited.set(true);
                    Poll::Pending
                }
                // A callback claiming more than it was given is clamped, never trusted.
                n if n > 0 => Poll::Ready(Ok((n as usize).min(buf.len()))),
                n => Poll::Ready(Err(CallbackError(n))),
            }
        })
        .await
    }
}

impl Write for Uart<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes of reads for the call.
        let n = unsafe { (self.0.uart_write)(self.0.ctx, buf.as_ptr(), buf.len()) };
        match n {
            n if n > 0 => Ok((n as usize).min(buf.len())),
            // Zero bytes taken would make `write_all` spin; it is a fault like a negative one.
            n => Err(CallbackError(n.min(-1))),
        }
    }

    /// The bytes `uart_write` took are the firmware's UART driver's to send; the core never
    /// needs them on the wire before it reads the answer, which waits for them anyway.
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The modem driver's hook for `fast_baud` (a plain `fn`, as `Modem::with_uart_rate` takes).
pub fn set_uart_baud(uart: &mut Uart<'_>, baud: u32) -> bool {
    match uart.0.uart_set_baud {
        // SAFETY: the firmware's function, called with its own context.
        Some(f) => unsafe { f(uart.0.ctx, baud) == 0 },
        None => false,
    }
}

/// The clock.
#[derive(Debug, Clone, Copy)]
pub struct CallbackClock<'a>(pub &'a Io);

impl Clock for CallbackClock<'_> {
    fn now_us(&self) -> u64 {
        self.0.now()
    }

    async fn sleep_us(&self, us: u64) {
        let io = self.0;
        let deadline = io.now().saturating_add(us);
        poll_fn(|_| {
            loop {
                let now = io.now();
                if now >= deadline {
                    return Poll::Ready(());
                }
                if io.read_waited.get() {
                    return Poll::Pending;
                }
                // SAFETY: the firmware's function, called with its own context.
                unsafe { (io.sleep_us)(io.ctx, deadline - now) };
            }
        })
        .await
    }
}

/// The flash chip, `capacity` bytes from address 0.
#[derive(Debug)]
pub struct Flash<'a> {
    pub io: &'a Io,
    pub capacity: u32,
}

impl FlashErrorType for Flash<'_> {
    type Error = CallbackError;
}

fn flash_result(rc: i32) -> Result<(), CallbackError> {
    if rc == 0 { Ok(()) } else { Err(CallbackError(rc)) }
}

impl ReadNorFlash for Flash<'_> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        // SAFETY: `bytes` is valid for `bytes.len()` bytes of writes for the call.
        flash_result(unsafe { (self.io.flash_read)(self.io.ctx, offset, bytes.as_mut_ptr(), bytes.len()) })
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl NorFlash for Flash<'_> {
    // ESP-IDF's `esp_flash_write` takes any alignment; 4 is what the chip's own driver
    // (esp-storage) asks for, so the same core runs over both.
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        // SAFETY: the firmware's function, called with its own context.
        flash_result(unsafe { (self.io.flash_erase)(self.io.ctx, from, to - from) })
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        // SAFETY: `bytes` is valid for `bytes.len()` bytes of reads for the call.
        flash_result(unsafe { (self.io.flash_write)(self.io.ctx, offset, bytes.as_ptr(), bytes.len()) })
    }
}
