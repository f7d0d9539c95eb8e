//! Test harness for the modem emulators: the device end of the UART, an origin on the
//! network, byte-exact expectations in virtual time. Included by the `modem_*` tests.
#![allow(dead_code)]

use std::time::Duration;

use sim::modem::{Dialect, ModemEmulatorConfig, ModemHandle, spawn_modem};
use sim::net::{Connection, Listener, NatConfig, NatExpiry, NetConfig, Network};
use sim::time;
use sim::uart::{UartEnd, uart};

pub const BAUD: u32 = 115_200;
pub const HOST: &str = "origin.example";
pub const PORT: u16 = 80;

/// Long enough for anything a test waits for; a hang fails instead of blocking.
const PATIENCE: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Bench {
    pub dev: Dev,
    pub modem: ModemHandle,
    pub net: Network,
    pub origin: Listener,
}

/// Short boot, boot lines all at once, everything else default.
pub fn config(dialect: Dialect) -> ModemEmulatorConfig {
    let mut cfg = ModemEmulatorConfig::new(dialect);
    cfg.boot_time = Duration::from_secs(1);
    cfg.late_urc_delay = Duration::ZERO;
    cfg
}

pub fn no_nat() -> NatConfig {
    NatConfig {
        idle_timeout: None,
        on_expiry: NatExpiry::Reset,
    }
}

/// Powers a modem on (call first in the test: it switches to virtual time).
pub fn bench(cfg: ModemEmulatorConfig, nat: NatConfig) -> Bench {
    time::use_virtual_time();
    let mut net_cfg = NetConfig::lte(nat);
    net_cfg.modem_rx_buffer = cfg.rx_buffer;
    let net = Network::new(net_cfg);
    let origin = net.listen(HOST, PORT);
    let (dev_end, modem_end) = uart(BAUD, 1 << 20, 4096);
    let modem = spawn_modem(cfg, modem_end, net.clone());
    Bench {
        dev: Dev { uart: dev_end },
        modem,
        net,
        origin,
    }
}

/// A booted modem with echo off.
pub async fn ready(cfg: ModemEmulatorConfig, nat: NatConfig) -> Bench {
    let dialect = cfg.dialect;
    let mut b = bench(cfg, nat);
    b.dev.expect(boot_lines(dialect)).await;
    b.dev.cmd("ATE0", "ATE0\r\r\nOK\r\n").await;
    b
}

/// Everything a modem says at boot when `late_urc_delay` is zero.
pub fn boot_lines(dialect: Dialect) -> Vec<u8> {
    match dialect {
        Dialect::Sim7600 => b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n".to_vec(),
        Dialect::Sim7080 => b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n".to_vec(),
    }
}

/// The UART time of `bytes` at [`BAUD`], 8N1.
pub fn wire(bytes: usize) -> Duration {
    Duration::from_nanos((bytes as u128 * 10 * 1_000_000_000 / u128::from(BAUD)) as u64)
}

/// Binary test data: every byte value, `\r`, `\n`, `OK` sequences included.
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    for (i, chunk) in v.chunks_mut(97).enumerate() {
        if chunk.len() > 8 && i % 2 == 0 {
            chunk[..8].copy_from_slice(b"\r\nOK\r\n\r\n");
        }
    }
    v
}

pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The device's end of the UART.
#[derive(Debug)]
pub struct Dev {
    pub uart: UartEnd,
}

impl Dev {
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.uart.tx.write(bytes.as_ref()).await.expect("uart write");
    }

    /// Exactly `n` bytes from the modem.
    pub async fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        let mut have = 0;
        while have < n {
            match time::timeout(PATIENCE, self.uart.rx.read(&mut got[have..])).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("uart closed after {:?}", show(&got[..have])),
                Ok(Ok(k)) => have += k,
                Err(_) => panic!("modem went quiet after {:?} ({have} of {n} bytes)", show(&got[..have])),
            }
        }
        got
    }

    /// The next bytes from the modem are exactly `want`.
    pub async fn expect(&mut self, want: impl AsRef<[u8]>) {
        let want = want.as_ref();
        let got = self.read_n(want.len()).await;
        assert_eq!(show(&got), show(want));
    }

    /// Sends `cmd` + `\r` and expects `reply` (echo included if on).
    pub async fn cmd(&mut self, cmd: &str, reply: impl AsRef<[u8]>) {
        self.send(format!("{cmd}\r")).await;
        self.expect(reply).await;
    }

    /// Nothing arrives for `d`.
    pub async fn silent_for(&mut self, d: Duration) {
        let mut buf = [0u8; 256];
        if let Ok(r) = time::timeout(d, self.uart.rx.read(&mut buf)).await {
            let n = r.unwrap_or(0);
            panic!("expected silence, got {:?}", show(&buf[..n]));
        }
    }
}

pub async fn accept(origin: &mut Listener) -> Connection {
    time::timeout(PATIENCE, origin.accept())
        .await
        .expect("no connection")
        .expect("network gone")
}

/// Exactly `n` bytes from a connection.
pub async fn conn_read(conn: &mut Connection, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut have = 0;
    while have < n {
        let k = time::timeout(PATIENCE, conn.read(&mut got[have..]))
            .await
            .expect("origin waited forever")
            .expect("connection failed");
        assert!(k > 0, "connection ended after {have} of {n} bytes");
        have += k;
    }
    got
}

/// `AT+CIPRXGET=2,0,<asked>` reply bytes.
pub fn ciprxget_reply(data: &[u8], rest: usize) -> Vec<u8> {
    let mut r = format!("\r\n+CIPRXGET: 2,0,{},{rest}\r\n", data.len()).into_bytes();
    r.extend_from_slice(data);
    r.extend_from_slice(b"\r\nOK\r\n");
    r
}

/// `AT+CARECV=0,<asked>` reply bytes.
pub fn carecv_reply(data: &[u8]) -> Vec<u8> {
    let mut r = format!("\r\n+CARECV: {},", data.len()).into_bytes();
    r.extend_from_slice(data);
    r.extend_from_slice(b"\r\n\r\nOK\r\n");
    r
}

/// The device's UART as the driver sees it, handing out at most `max_read` bytes per read:
/// 1 makes every byte boundary a split, as a UART FIFO drained byte by byte does.
#[derive(Debug)]
pub struct ChunkedUart {
    pub uart: UartEnd,
    pub max_read: usize,
}

impl embedded_io_async::ErrorType for ChunkedUart {
    type Error = sim::uart::UartError;
}

impl embedded_io_async::Read for ChunkedUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.max_read);
        embedded_io_async::Read::read(&mut self.uart, &mut buf[..n]).await
    }
}

impl embedded_io_async::Write for ChunkedUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        embedded_io_async::Write::write(&mut self.uart, buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        embedded_io_async::Write::flush(&mut self.uart).await
    }
}
