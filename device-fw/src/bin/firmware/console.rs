//! The console on the chip's USB-Serial-JTAG port: the line `otactl watch` and a person's
//! terminal read, and where commands come in.
//!
//! The port only moves data while a host reads it. A device in the field has no host, and a
//! laptop may be attached without a terminal open; either way the 64-byte IN FIFO fills and
//! stays full. Writes must then never wait for the host, or the app would stop at its next
//! event line in the middle of an update. So output waits a short time for a reader and is
//! dropped after that, as esp-println does; once the FIFO drains again, output resumes.

use core::convert::Infallible;
use core::fmt;

use embassy_time::{Duration, with_timeout};
use embedded_io_async::{ErrorType, Read, Write};
use esp_hal::Async;
use esp_hal::peripherals::USB_DEVICE;
use esp_hal::usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx, UsbSerialJtagTx};

/// How long a write waits for the host to take a packet before output is dropped. Long
/// enough for a host that is reading but busy (a USB frame is 1 ms), short enough that an
/// unread console costs an update nothing noticeable.
const HOST_WAIT: Duration = Duration::from_millis(50);

/// Console I/O for the core's app: async reads of command bytes, writes that never block
/// for long.
pub struct Console {
    rx: UsbSerialJtagRx<'static, Async>,
    tx: UsbSerialJtagTx<'static, Async>,
    /// The last write found no reader: drop output until the FIFO has room again.
    host_absent: bool,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("host_absent", &self.host_absent)
            .finish()
    }
}

impl Console {
    pub fn new(usb: USB_DEVICE<'static>) -> Self {
        let (rx, tx) = UsbSerialJtag::new(usb).into_async().split();
        Console {
            rx,
            tx,
            host_absent: false,
        }
    }

    /// One log line for people, before the core's app owns the console.
    pub async fn log(&mut self, args: fmt::Arguments<'_>) {
        let mut line: heapless::String<256> = heapless::String::new();
        if fmt::write(&mut Cut(&mut line), args).is_err() {
            return;
        }
        let _ = self.write_all(line.as_bytes()).await;
        let _ = self.write_all(b"\r\n").await;
        let _ = self.flush().await;
    }
}

/// Writes into a fixed string and cuts at its end: a log line is for people, a cut one is
/// better than none.
struct Cut<'s, const N: usize>(&'s mut heapless::String<N>);

impl<const N: usize> fmt::Write for Cut<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl ErrorType for Console {
    type Error = Infallible;
}

impl Read for Console {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Read::read(&mut self.rx, buf).await
    }
}

impl Write for Console {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(0);
        };
        if self.host_absent {
            // Still nobody reading: the FIFO is as full as we left it. Drop the bytes now
            // rather than wait again.
            if self.tx.write_byte_nb(first).is_err() {
                return Ok(buf.len());
            }
            self.host_absent = false;
            if rest.is_empty() {
                return Ok(1);
            }
            return self.write_or_drop(rest).await.map(|n| n + 1);
        }
        self.write_or_drop(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        if !self.host_absent && with_timeout(HOST_WAIT, Write::flush(&mut self.tx)).await.is_err() {
            self.host_absent = true;
        }
        Ok(())
    }
}

impl Console {
    /// Writes `buf`, or reports it written once the host has not read for [`HOST_WAIT`]:
    /// the bytes are gone either way, and the app must go on.
    async fn write_or_drop(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if with_timeout(HOST_WAIT, Write::write(&mut self.tx, buf)).await.is_err() {
            self.host_absent = true;
        }
        Ok(buf.len())
    }
}
