//! Request and response packets, opcodes and error codes of the ROM loader
//! (ESP-FORMATS.md §1.2–1.5, §1.8).

/// Command opcodes (§1.5): the ROM's, then the flasher stub's own (`0xD0`…), which the ROM
/// answers as unknown.
pub mod op {
    pub const FLASH_BEGIN: u8 = 0x02;
    pub const FLASH_DATA: u8 = 0x03;
    pub const FLASH_END: u8 = 0x04;
    pub const MEM_BEGIN: u8 = 0x05;
    pub const MEM_END: u8 = 0x06;
    pub const MEM_DATA: u8 = 0x07;
    pub const SYNC: u8 = 0x08;
    pub const WRITE_REG: u8 = 0x09;
    pub const READ_REG: u8 = 0x0A;
    pub const SPI_SET_PARAMS: u8 = 0x0B;
    pub const SPI_ATTACH: u8 = 0x0D;
    pub const READ_FLASH_SLOW: u8 = 0x0E;
    pub const CHANGE_BAUDRATE: u8 = 0x0F;
    pub const FLASH_DEFL_BEGIN: u8 = 0x10;
    pub const FLASH_DEFL_DATA: u8 = 0x11;
    pub const FLASH_DEFL_END: u8 = 0x12;
    pub const SPI_FLASH_MD5: u8 = 0x13;
    pub const GET_SECURITY_INFO: u8 = 0x14;
    pub const ERASE_FLASH: u8 = 0xD0;
    pub const ERASE_REGION: u8 = 0xD1;
    pub const READ_FLASH: u8 = 0xD2;
    pub const RUN_USER_CODE: u8 = 0xD3;
}

/// The frame the flasher stub sends once it runs, before it reads any command.
pub const STUB_GREETING: &[u8] = b"OHAI";

/// Status bytes after a stub's reply data (a ROM from the ESP32 on sends 4).
pub const STUB_STATUS_LEN: usize = 2;

/// The 36-byte SYNC payload: `07 07 12 20` then 32 × `55`.
pub const SYNC_PAYLOAD: [u8; 36] = {
    let mut p = [0x55u8; 36];
    p[0] = 0x07;
    p[1] = 0x07;
    p[2] = 0x12;
    p[3] = 0x20;
    p
};

/// What a ROM puts in the value field of its SYNC replies (a stub puts 0 there, which is
/// how esptool tells them apart).
pub const SYNC_VALUE: u32 = 0x2012_0707;

/// Request header length: direction, command, size, checksum.
pub const HEADER: usize = 8;

/// Seed of the `*_DATA` checksum.
pub const CHECKSUM_SEED: u8 = 0xEF;

/// The 8-bit XOR checksum of `*_DATA` payloads (§1.4).
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(CHECKSUM_SEED, |c, &b| c ^ b)
}

/// The ROM's `error` byte when `status` is 1 (§1.8); the names are the emulator's uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RomError {
    /// A parameter is out of range (region off the chip, unaligned offset, zero block size).
    InvalidParameter = 0x01,
    /// Malformed frame, unknown or unsupported command, wrong length, block bigger than the
    /// ROM takes, a `*_DATA` out of sequence or without its `*_BEGIN`.
    InvalidMessage = 0x05,
    /// The command was understood but cannot be carried out now (flash not attached).
    FailedToAct = 0x06,
    /// `*_DATA` checksum mismatch.
    BadChecksum = 0x07,
    /// Erasing or programming failed (past the end of the chip, or a program that needs a
    /// 0 bit back to 1 in a region that was not erased).
    FlashWrite = 0x08,
    /// Reading failed (past the end of the chip).
    FlashRead = 0x09,
    /// READ_FLASH_SLOW asked for more than 64 bytes.
    FlashReadLength = 0x0A,
    /// The compressed stream is not valid zlib/deflate.
    Inflate = 0x0B,
    /// The zlib stream's Adler-32 does not match what it inflated to.
    InflateAdler = 0x0C,
    /// MEM_BEGIN region larger than the RAM it starts in.
    BadRamSize = 0x0E,
    /// MEM_BEGIN address outside the chip's RAM.
    BadRamAddress = 0x0F,
}

/// The flasher stub's 16-bit response codes (esp-flasher-stub `commands.h`), sent
/// big-endian in its two status bytes, so the first byte is non-zero on failure as hosts
/// check it, and esptool names the code from both bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum StubError {
    /// Wrong payload length, an unaligned erase, a READ_FLASH packet size out of range.
    BadDataLen = 0xC000,
    BadChecksum = 0xC100,
    /// Unknown command, or a ROM-only one (READ_FLASH_SLOW).
    InvalidCommand = 0xC300,
    /// A flash operation failed: past the end of the chip, programming what was not
    /// erased, an encrypted write (flash encryption is not emulated).
    FailedSpiOp = 0xC400,
    /// `*_DATA` or `*_END` without its BEGIN.
    NotInFlashMode = 0xC600,
    Inflate = 0xC700,
    NotEnoughData = 0xC800,
    /// More data than BEGIN announced, or a length field that does not match the data.
    TooMuchData = 0xC900,
    /// GET_SECURITY_INFO on the ESP32, whose stub cannot read it.
    NotImplemented = 0xFF00,
}

/// Why a request failed, in the form of whoever answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Rom(RomError),
    Stub(StubError),
}

impl From<RomError> for Failure {
    fn from(e: RomError) -> Self {
        Failure::Rom(e)
    }
}

impl From<StubError> for Failure {
    fn from(e: StubError) -> Self {
        Failure::Stub(e)
    }
}

/// A request as parsed from one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub command: u8,
    pub checksum: u32,
    pub data: &'a [u8],
}

/// Why a frame is not a request; the command byte (if the frame had one) is kept for the
/// error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub command: u8,
}

impl<'a> Request<'a> {
    /// A request frame: direction 0, and a size field that matches the data.
    pub fn parse(frame: &'a [u8]) -> Result<Request<'a>, Malformed> {
        let command = frame.get(1).copied().unwrap_or(0);
        if frame.len() < HEADER || frame[0] != 0x00 {
            return Err(Malformed { command });
        }
        let size = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
        let data = &frame[HEADER..];
        if data.len() != size {
            return Err(Malformed { command });
        }
        Ok(Request {
            command,
            checksum: u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]),
            data,
        })
    }

    /// Little-endian word `i` of the data, if there is one.
    pub fn word(&self, i: usize) -> Option<u32> {
        let b = self.data.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A response packet (§1.3), with the ROM's or the stub's status trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub command: u8,
    pub value: u32,
    /// Command output, before the status bytes.
    pub data: Vec<u8>,
    pub error: Option<Failure>,
}

impl Response {
    pub fn ok(command: u8) -> Self {
        Response {
            command,
            value: 0,
            data: Vec::new(),
            error: None,
        }
    }

    pub fn fail(command: u8, error: impl Into<Failure>) -> Self {
        Response {
            command,
            value: 0,
            data: Vec::new(),
            error: Some(error.into()),
        }
    }

    pub fn with_value(mut self, value: u32) -> Self {
        self.value = value;
        self
    }

    pub fn with_data(mut self, data: Vec<u8>) -> Self {
        self.data = data;
        self
    }

    /// The packet bytes (before SLIP framing), with `status_len` status bytes: the ROM's
    /// `status, error` or the stub's big-endian code, then reserved zeros.
    pub fn encode(&self, status_len: usize) -> Vec<u8> {
        let mut status = vec![0u8; status_len.max(2)];
        match self.error {
            None => {}
            Some(Failure::Rom(e)) => {
                status[0] = 1;
                status[1] = e as u8;
            }
            Some(Failure::Stub(e)) => status[..2].copy_from_slice(&(e as u16).to_be_bytes()),
        }
        let size = (self.data.len() + status.len()) as u16;
        let mut out = Vec::with_capacity(HEADER + usize::from(size));
        out.push(0x01);
        out.push(self.command);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&status);
        out
    }
}

/// Builds a request packet (the host side; tests and tools speak through it).
pub fn request(command: u8, data: &[u8], checksum: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.push(0x00);
    out.push(command);
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The data of a `*_DATA` request: `len, seq, 0, 0` then the block.
pub fn data_block(seq: u32, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + block.len());
    out.extend_from_slice(&(block.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(block);
    out
}

/// Little-endian words, as most request payloads are.
pub fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_esp32_read_reg_reply_is_what_we_encode() {
        // From a real ESP32 ROM trace (ESP-FORMATS.md §1.3).
        let reply = Response::ok(op::READ_REG).with_value(0x0086_30ae).encode(4);
        assert_eq!(reply, [0x01, 0x0a, 0x04, 0x00, 0xae, 0x30, 0x86, 0x00, 0, 0, 0, 0]);
        let sync = Response::ok(op::SYNC).with_value(SYNC_VALUE).encode(4);
        assert_eq!(sync, [0x01, 0x08, 0x04, 0x00, 0x07, 0x07, 0x12, 0x20, 0, 0, 0, 0]);
    }

    #[test]
    fn parse_checks_direction_and_size() {
        let pkt = request(op::READ_REG, &0x4000_1000u32.to_le_bytes(), 0);
        let r = Request::parse(&pkt).unwrap();
        assert_eq!(
            (r.command, r.word(0), r.word(1)),
            (op::READ_REG, Some(0x4000_1000), None)
        );
        let mut short = pkt.clone();
        short.pop();
        assert_eq!(Request::parse(&short), Err(Malformed { command: op::READ_REG }));
        let mut reply = pkt;
        reply[0] = 1;
        assert!(Request::parse(&reply).is_err());
        assert_eq!(Request::parse(&[]), Err(Malformed { command: 0 }));
    }

    #[test]
    fn checksum_is_seeded_xor() {
        assert_eq!(checksum(&[]), 0xEF);
        assert_eq!(checksum(&[0xEF]), 0);
        assert_eq!(checksum(&[1, 2, 4]), 0xEF ^ 7);
    }
}
