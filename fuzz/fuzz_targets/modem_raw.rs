//! The AT engine and both dialects' reply parsers on raw bytes: the public `Modem` is
//! brought up, connects, sends a request and reads, over a UART that answers each command
//! with the next NUL-separated segment of the fuzz input, in fuzz-chosen read sizes.
//!
//! Input: dialect and read block (1 byte), caller buffer size (2), number of split sizes
//! (1), the sizes, then the stream.
//!
//! Asserts: no panic; the driver never waits on the UART without a deadline; a read never
//! returns more than the caller's buffer, nor more payload than the UART carried.
#![no_main]

use device_fw::modem::{Dialect, Modem, ModemConfig};
use device_fw::socket::Socket;
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::uart::SegmentUart;
use otactl_fuzz::{Bytes, Splits, VirtualClock, run};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let dialect = if flags & 1 == 0 {
        Dialect::Sim7600
    } else {
        Dialect::Sim7080
    };
    let read_buf = usize::from(b.u16() % 2048) + 1;
    let nsplits = usize::from(b.u8() % 16);
    let splits = Splits::new(b.take(nsplits));
    let stream = b.rest();

    let mut cfg = ModemConfig::new(dialect, "iot.1nce.net").expect("fixed APN");
    cfg.read_block = [1460, 64, 1, 512][usize::from(flags >> 1) % 4];
    let mut modem = Modem::new(SegmentUart::new(stream, splits), VirtualClock::new(), cfg);
    let done = run(
        async {
            if modem.bring_up().await.is_err() && flags & 0x80 == 0 {
                return;
            }
            if modem.connect("ota.example.com", 80).await.is_err() {
                return;
            }
            if modem
                .write_all(b"GET / HTTP/1.1\r\nHost: ota.example.com\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut buf = vec![0u8; read_buf];
            let mut total = 0usize;
            for _ in 0..64 {
                match modem.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        assert!(n <= buf.len(), "read returned more than its buffer");
                        total += n;
                        assert!(total <= stream.len(), "more payload than the UART carried");
                    }
                }
            }
            modem.close().await;
        },
        10_000,
    );
    assert!(done.is_some(), "the driver waits on the UART without a deadline");
});
