//! What the ROM loader tests share: a host end that speaks the serial protocol to the
//! emulator over an in-memory stream, and test data.
#![allow(dead_code, unused_imports)]

pub use std::path::{Path, PathBuf};
pub use std::process::Command;
pub use std::time::Duration;

pub use md5::{Digest, Md5};
pub use rand::{RngExt, SeedableRng};
pub use sim::flash::{SECTOR, SimFlash};
pub use sim::pty_device::Stop;
pub use sim::rom::chip::{CHIP_DETECT_MAGIC_REG, MAX_FRAME};
pub use sim::rom::protocol::{
    RomError, STUB_GREETING, SYNC_PAYLOAD, SYNC_VALUE, StubError, checksum, data_block, op, request, words,
};
pub use sim::rom::pty::{INSTANT_FLASH, RomPtyConfig};
pub use sim::rom::slip::{self, Decoder};
pub use sim::rom::{LinkConfig, RomChip, RomLoader, RomStats, serve};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
pub use tokio::task::JoinHandle;

pub const FLASH_SIZE: usize = 4 << 20;

/// A reply as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub op: u8,
    pub value: u32,
    /// Command output, without the status bytes.
    pub data: Vec<u8>,
    /// `None` for success, else the error byte.
    pub error: Option<u8>,
}

impl Reply {
    /// A ROM reply: 4 status bytes, `1, error` on failure.
    pub fn parse(frame: &[u8]) -> Reply {
        assert!(frame.len() >= 12, "reply too short: {frame:02x?}");
        assert_eq!(frame[0], 1, "not a response: {frame:02x?}");
        let size = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
        assert_eq!(size, frame.len() - 8, "size field: {frame:02x?}");
        let status = &frame[frame.len() - 4..];
        assert_eq!(status[2..], [0, 0], "reserved status bytes");
        Reply {
            op: frame[1],
            value: u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]),
            data: frame[8..frame.len() - 4].to_vec(),
            error: match status[0] {
                0 => None,
                1 => Some(status[1]),
                s => panic!("status byte {s}"),
            },
        }
    }

    /// A stub reply: 2 status bytes, the big-endian code (its high byte in `error`).
    pub fn parse_stub(frame: &[u8]) -> Reply {
        assert!(frame.len() >= 10, "reply too short: {frame:02x?}");
        assert_eq!(frame[0], 1, "not a response: {frame:02x?}");
        let size = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
        assert_eq!(size, frame.len() - 8, "size field: {frame:02x?}");
        let status = &frame[frame.len() - 2..];
        assert_eq!(status[1], 0, "low byte of the stub's code");
        Reply {
            op: frame[1],
            value: u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]),
            data: frame[8..frame.len() - 2].to_vec(),
            error: (status[0] != 0).then_some(status[0]),
        }
    }

    #[track_caller]
    pub fn stub_fails(&self, op: u8, error: StubError) {
        assert_eq!(
            (self.op, self.error),
            (op, Some((error as u16 >> 8) as u8)),
            "{self:02x?}"
        );
    }

    #[track_caller]
    pub fn ok(self) -> Reply {
        assert_eq!(self.error, None, "{self:02x?}");
        self
    }

    #[track_caller]
    pub fn fails(&self, op: u8, error: RomError) {
        assert_eq!((self.op, self.error), (op, Some(error as u8)), "{self:02x?}");
    }
}

/// The host end of the link.
pub struct Host {
    pub tx: WriteHalf<DuplexStream>,
    pub rx: ReadHalf<DuplexStream>,
    pub decoder: Decoder,
    pub frames: std::collections::VecDeque<Vec<u8>>,
    /// Every byte received, frames and text alike.
    pub raw: Vec<u8>,
    /// How long (tokio time) a reply may take before the test fails.
    pub patience: Duration,
}

/// A loader for `chip` on an in-memory link; the task returns the loader when the host
/// hangs up.
pub fn start(chip: RomChip, flash: SimFlash, link: LinkConfig) -> (Host, JoinHandle<RomStats>) {
    let (host, device) = tokio::io::duplex(1 << 20);
    let (drx, dtx) = tokio::io::split(device);
    let task = tokio::spawn(async move {
        let mut loader = RomLoader::new(chip, flash);
        serve(&mut loader, drx, dtx, link).await.expect("serve");
        loader.stats()
    });
    let (rx, tx) = tokio::io::split(host);
    let host = Host {
        tx,
        rx,
        decoder: Decoder::new(1 << 16),
        frames: Default::default(),
        raw: Vec::new(),
        patience: Duration::from_secs(10),
    };
    (host, task)
}

impl Host {
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.tx.write_all(bytes).await.unwrap();
    }

    pub async fn send(&mut self, command: u8, data: &[u8], chk: u32) {
        self.send_raw(&slip::encode(&request(command, data, chk))).await;
    }

    pub async fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return f;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(self.patience, self.rx.read(&mut buf))
                .await
                .expect("the loader did not answer")
                .unwrap();
            assert!(n > 0, "the loader hung up");
            self.raw.extend_from_slice(&buf[..n]);
            for &b in &buf[..n] {
                if let Some(f) = self.decoder.push(b) {
                    self.frames.push_back(f.expect("the loader sent a broken frame"));
                }
            }
        }
    }

    pub async fn reply(&mut self) -> Reply {
        Reply::parse(&self.frame().await)
    }

    pub async fn cmd(&mut self, command: u8, data: &[u8]) -> Reply {
        self.send(command, data, 0).await;
        self.reply().await
    }

    pub async fn stub_cmd(&mut self, command: u8, data: &[u8]) -> Reply {
        self.send(command, data, 0).await;
        Reply::parse_stub(&self.frame().await)
    }

    pub async fn stub_data(&mut self, command: u8, seq: u32, block: &[u8]) -> Reply {
        self.send(command, &data_block(seq, block), u32::from(checksum(block)))
            .await;
        Reply::parse_stub(&self.frame().await)
    }

    /// Uploads a stand-in for the stub (two segments, as esptool and espflash send theirs)
    /// and jumps to it; returns the greeting frame.
    pub async fn start_stub(&mut self, chip: RomChip) -> Vec<u8> {
        let (text_at, data_at) = match chip {
            RomChip::Esp32c3 => (0x4038_0000, 0x3FC9_0000),
            RomChip::Esp32 => (0x4009_0000, 0x3FFE_0000),
        };
        for (at, len) in [(text_at, 0x2000u32), (data_at, 0x300)] {
            let code = pattern(len as usize, at);
            let blocks: Vec<&[u8]> = code.chunks(0x1800).collect();
            self.cmd(op::MEM_BEGIN, &words(&[len, blocks.len() as u32, 0x1800, at]))
                .await
                .ok();
            for (seq, b) in blocks.iter().enumerate() {
                self.data(op::MEM_DATA, seq as u32, b).await.ok();
            }
        }
        self.cmd(op::MEM_END, &words(&[0, text_at + 0x6d2])).await.ok();
        self.frame().await
    }

    pub async fn data(&mut self, command: u8, seq: u32, block: &[u8]) -> Reply {
        self.send(command, &data_block(seq, block), u32::from(checksum(block)))
            .await;
        self.reply().await
    }

    pub async fn sync(&mut self) {
        self.send(op::SYNC, &SYNC_PAYLOAD, 0).await;
        for _ in 0..8 {
            let r = self.reply().await.ok();
            assert_eq!((r.op, r.value), (op::SYNC, SYNC_VALUE));
        }
    }

    pub async fn read_reg(&mut self, addr: u32) -> u32 {
        self.cmd(op::READ_REG, &addr.to_le_bytes()).await.ok().value
    }

    pub async fn attach(&mut self) {
        self.cmd(op::SPI_ATTACH, &[0; 8]).await.ok();
        self.cmd(
            op::SPI_SET_PARAMS,
            &words(&[0, FLASH_SIZE as u32, 0x10000, 0x1000, 0x100, 0xFFFF]),
        )
        .await
        .ok();
    }

    /// FLASH_BEGIN / FLASH_DEFL_BEGIN words as esptool sends them to this chip's ROM.
    pub fn begin(chip: RomChip, size: u32, blocks: u32, block: u32, offset: u32) -> Vec<u8> {
        let mut w = vec![size, blocks, block, offset];
        if chip == RomChip::Esp32c3 {
            w.push(0);
        }
        words(&w)
    }

    pub async fn md5(&mut self, addr: u32, size: u32) -> Reply {
        self.cmd(op::SPI_FLASH_MD5, &words(&[addr, size, 0, 0])).await
    }

    /// Hangs up; returns the loader's counters.
    pub async fn close(self, task: JoinHandle<RomStats>) -> RomStats {
        drop(self.tx);
        drop(self.rx);
        task.await.unwrap()
    }
}

pub fn md5_hex(data: &[u8]) -> Vec<u8> {
    Md5::digest(data)
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8)
        .collect()
}

pub fn blank() -> SimFlash {
    SimFlash::new(FLASH_SIZE, INSTANT_FLASH)
}
