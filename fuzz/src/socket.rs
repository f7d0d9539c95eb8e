//! A [`Socket`] whose peer is the fuzzer: every read hands out the next fuzz-chosen slice
//! of one byte stream, across as many connections as the client opens.

use device_fw::socket::{Socket, SocketError};

use crate::Splits;

#[derive(Debug)]
pub struct StreamSocket<'a> {
    pub stream: &'a [u8],
    /// Bytes of `stream` handed out so far.
    pub pos: usize,
    splits: Splits,
    connected: bool,
    pub connects: usize,
    pub written: Vec<u8>,
    /// The largest buffer a read was given: a client must never ask past its own buffers.
    pub largest_read: usize,
}

impl<'a> StreamSocket<'a> {
    pub fn new(stream: &'a [u8], splits: Splits) -> Self {
        StreamSocket {
            stream,
            pos: 0,
            splits,
            connected: false,
            connects: 0,
            written: Vec::new(),
            largest_read: 0,
        }
    }
}

impl Socket for StreamSocket<'_> {
    async fn connect(&mut self, _host: &str, _port: u16) -> Result<(), SocketError> {
        self.connects += 1;
        if self.connects > 16 {
            return Err(SocketError::ConnectFailed(1));
        }
        self.connected = true;
        Ok(())
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        if !self.connected {
            return Err(SocketError::NotConnected);
        }
        if self.written.len() < 64 * 1024 {
            self.written.extend_from_slice(data);
        }
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        if !self.connected {
            return Err(SocketError::NotConnected);
        }
        self.largest_read = self.largest_read.max(buf.len());
        let left = self.stream.len() - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let n = self.splits.next(buf.len()).min(left);
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    async fn close(&mut self) {
        self.connected = false;
    }

    fn is_connected(&self) -> bool {
        self.connected
    }
}
