//! The UART between the ESP32 and its modem: two [`pipe`]s paced at the baud rate.
//!
//! The device end implements `embedded_io_async::{Read, Write}`, exactly what the device
//! core takes on the chip. Receive buffers are finite. The chip's ([`chip_uart`]) is the
//! UART peripheral's receive FIFO and nothing more: the firmware's esp-hal driver reads the
//! FIFO straight into the buffer of the pending `read` and keeps no ring of its own. With
//! RTS/CTS a full FIFO holds the modem; without, the bytes that arrive at a full FIFO are
//! lost and counted. The device end can be tied to the chip's CPU ([`UartEnd::stalled_by`]):
//! while a flash operation holds it, the device neither sends nor drains the FIFO, and the
//! modem's bytes pile up in the FIFO as they do on the chip.

use crate::pipe::{PipeConfig, PipeControl, PipeError, PipeReader, PipeWriter, lossy_pipe, pipe};
use crate::time::Stall;

/// The receive FIFO of the UART peripheral: 128 bytes on the ESP32, ESP32-C3 and ESP32-C6
/// (technical reference manuals, UART chapter). The firmware wakes its reader at 64 bytes
/// (`RX_FIFO_THRESHOLD` in its board module), as the pipe's batch does.
pub const CHIP_RX_FIFO: usize = 128;

/// One end of the UART.
#[derive(Debug)]
pub struct UartEnd {
    pub tx: PipeWriter,
    pub rx: PipeReader,
    /// The rate the UART was made with (a modem's power-on rate).
    initial_baud: u32,
    /// The CPU this end's owner runs on, when a flash operation can hold it.
    cpu: Option<Stall>,
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

    /// Ties this end to a CPU: every read and write first waits until no flash operation
    /// holds it, as the firmware's task cannot run during a blocking esp-storage call.
    pub fn stalled_by(mut self, cpu: Stall) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Watches this end's receiver (bytes lost at a full FIFO, resets).
    pub fn rx_control(&self) -> PipeControl {
        self.rx.control()
    }

    async fn cpu_free(&self) {
        if let Some(cpu) = &self.cpu {
            cpu.wait().await;
        }
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
    ends(baud, (to_modem, modem_rx), (to_device, device_rx))
}

/// The UART of an ESP32-class chip to its modem at `baud` (8N1): the chip receives into
/// its [`CHIP_RX_FIFO`]; `flow_control` says whether RTS/CTS are wired (a full FIFO holds
/// the modem) or not (bytes arriving at a full FIFO are lost, counted by
/// [`PipeControl::bytes_lost`] on the device end's receiver). Returns (device end, modem end).
pub fn chip_uart(baud: u32, flow_control: bool, modem_rx_ring: usize) -> (UartEnd, UartEnd) {
    let to_modem = pipe(PipeConfig::uart(baud, modem_rx_ring));
    let rx = PipeConfig::uart(baud, CHIP_RX_FIFO);
    let to_device = if flow_control { pipe(rx) } else { lossy_pipe(rx) };
    ends(baud, to_modem, to_device)
}

fn ends(baud: u32, to_modem: (PipeWriter, PipeReader), to_device: (PipeWriter, PipeReader)) -> (UartEnd, UartEnd) {
    (
        UartEnd {
            tx: to_modem.0,
            rx: to_device.1,
            initial_baud: baud,
            cpu: None,
        },
        UartEnd {
            tx: to_device.0,
            rx: to_modem.1,
            initial_baud: baud,
            cpu: None,
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
        self.cpu_free().await;
        self.rx.read(buf).await.map_err(UartError)
    }
}

impl embedded_io_async::Write for UartEnd {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        self.cpu_free().await;
        self.tx.write(buf).await.map_err(UartError)?;
        Ok(buf.len())
    }

    /// Writes return once the bytes are on the wire, so there is nothing left to flush.
    async fn flush(&mut self) -> Result<(), UartError> {
        Ok(())
    }
}
