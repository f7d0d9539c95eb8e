//! Structure-aware: a whole modem session against a model modem that answers every command
//! as the dialect contract says, with the fuzzer putting unsolicited lines (`+CEREG:`,
//! `DST: 0`, `*PSUTTZ:`, `RDY`, data and close notices, line noise) at any line boundary,
//! choosing each read reply's size, the UART's read sizes, and replies that never come.
//! A known payload (fuzz-chosen bytes, which may themselves look like `OK` or a notice)
//! is served through the dialect's read command.
//!
//! Asserts: the bytes `Socket::read` returns are the payload, in order, each once (none
//! invented, repeated or skipped); when a read returns, every payload byte the UART has
//! handed the driver has been delivered (none acknowledged and then lost); an end of
//! stream comes only after the whole payload; the driver never waits without a deadline.
#![no_main]

use device_fw::modem::{Dialect, Modem, ModemConfig};
use device_fw::socket::Socket;
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::modem_model::{ModelUart, Session};
use otactl_fuzz::{VirtualClock, run};

fuzz_target!(|s: Session| {
    if s.payload.len() > 8192 {
        return;
    }
    let dialect = if s.sim7080 { Dialect::Sim7080 } else { Dialect::Sim7600 };
    let mut cfg = ModemConfig::new(dialect, "iot.1nce.net").expect("fixed APN");
    cfg.read_block = usize::from(s.read_block);
    let uart = ModelUart::new(&s);
    let model = uart.model.clone();
    let mut modem = Modem::new(uart, VirtualClock::new(), cfg);
    let mut delivered: Vec<u8> = Vec::new();
    let mut eof = false;
    let done = run(
        async {
            if modem.bring_up().await.is_err() {
                return;
            }
            if modem.connect("ota.example.com", 80).await.is_err() {
                return;
            }
            if modem.write_all(b"GET /image.bin HTTP/1.1\r\n\r\n").await.is_err() {
                return;
            }
            for i in 0..256 {
                let size = s
                    .reads
                    .get(i % s.reads.len().max(1))
                    .map_or(1460, |&n| usize::from(n % 2048) + 1);
                let mut buf = vec![0u8; size];
                match modem.read(&mut buf).await {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        assert!(n <= size, "read returned more than its buffer");
                        delivered.extend_from_slice(&buf[..n]);
                        let m = model.borrow();
                        let payload = &m.payload[..];
                        assert!(
                            payload.starts_with(&delivered),
                            "delivered bytes are not the payload in order (at {} of {})",
                            delivered.len(),
                            payload.len()
                        );
                        let handed = m.handed;
                        assert_eq!(
                            delivered.len(),
                            handed,
                            "the UART handed the driver {handed} payload bytes, it delivered {}",
                            delivered.len()
                        );
                    }
                    Err(_) => break,
                }
            }
        },
        10_000,
    );
    assert!(done.is_some(), "the driver waits on the UART without a deadline");
    let m = model.borrow();
    if eof && m.restarts == 0 {
        assert_eq!(
            delivered.len(),
            m.payload.len(),
            "end of stream before the whole payload was delivered"
        );
    }
});
