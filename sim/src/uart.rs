//! The UART between the ESP32 and its modem: two [`pipe`]s paced at the baud rate.
//!
//! The device end implements `embedded_io_async::{Read, Write}`, exactly what the device
//! core takes on the chip. Receive rings are finite: the device's is part of its stated
//! RAM; when a ring is full the sender stalls, as RTS/CTS flow control makes it.

use crate::pipe::{PipeConfig, PipeError, PipeReader, PipeWriter, pipe};

/// One end of the UART.
#[derive(Debug)]
pub struct UartEnd {
    pub tx: PipeWriter,
    pub rx: PipeReader,
    /// The rate the UART was made with (a modem's power-on rate).
    initial_baud: u32,
}

impl UartEnd {
    /// Retunes this end, sending and receiving, to `baud` (8N1). Until the other end
    /// follows, each side reads what the other sends as garbage.
    pub fn set_baud(&self, baud: u32) {
        let rate = f64::from(baud) / 10.0;
        self.tx.set_rate(rate);
        self.rx.set_rate(rate);
    }

    /// The rate the UART was made with.
    pub fn initial_baud(&self) -> u32 {
        self.initial_baud
    }
}

/// Retunes the device end: what the device core's modem driver calls to change the rate
/// (`Modem::with_uart_rate`), as the firmware reconfigures its UART peripheral.
pub fn retune(end: &mut UartEnd, baud: u32) -> bool {
    end.set_baud(baud);
    true
}

/// A UART at `baud` (8N1). Returns (device end, modem end).
pub fn uart(baud: u32, device_rx_ring: usize, modem_rx_ring: usize) -> (UartEnd, UartEnd) {
    let (to_modem, modem_rx) = pipe(PipeConfig::uart(baud, modem_rx_ring));
    let (to_device, device_rx) = pipe(PipeConfig::uart(baud, device_rx_ring));
    (
        UartEnd {
            tx: to_modem,
            rx: device_rx,
            initial_baud: baud,
        },
        UartEnd {
            tx: to_device,
            rx: modem_rx,
            initial_baud: baud,
        },
    )
}

/// A UART never fails on the wire; a reset pipe only happens when a scenario tears the
/// bench down, which the device sees as an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("uart torn down: {0}")]
pub struct UartError(PipeError);

impl embedded_io_async::Error for UartError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::BrokenPipe
    }
}

impl embedded_io_async::ErrorType for UartEnd {
    type Error = UartError;
}

impl embedded_io_async::Read for UartEnd {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        self.rx.read(buf).await.map_err(UartError)
    }
}

impl embedded_io_async::Write for UartEnd {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        self.tx.write(buf).await.map_err(UartError)?;
        Ok(buf.len())
    }

    /// Writes return once the bytes are on the wire, so there is nothing left to flush.
    async fn flush(&mut self) -> Result<(), UartError> {
        Ok(())
    }
}
