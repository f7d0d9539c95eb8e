//! AT engine behaviour common to both dialects: RAM bound, configuration, stale replies,
//! boot noise, UART failures, error texts.

#[path = "modem_support.rs"]
mod support;

use device_fw::modem::{DRIVER_RAM_BYTES, Dialect, Modem, ModemConfig, ModemError};
use device_fw::socket::{Socket, SocketError};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use support::*;

#[test]
fn driver_ram_stays_under_the_documented_figure() {
    let own = core::mem::size_of::<Modem<(), ()>>();
    assert!(
        own <= DRIVER_RAM_BYTES,
        "driver state is {own} bytes, documented bound {DRIVER_RAM_BYTES}"
    );
    let with_handles = core::mem::size_of::<Modem<FakeUart, TestClock>>();
    let handles = core::mem::size_of::<FakeUart>() + core::mem::size_of::<TestClock>();
    assert!(
        with_handles <= DRIVER_RAM_BYTES + handles,
        "{with_handles} > {DRIVER_RAM_BYTES} + {handles}"
    );
    // The bound is tight enough to mean something: the two fixed buffers alone are 544 B.
    assert!(own >= 544 && DRIVER_RAM_BYTES <= 1024);
}

#[test]
fn config_defaults_and_apn_validation() {
    let c = ModemConfig::new(Dialect::Sim7600, "iot.1nce.net").unwrap();
    assert_eq!(c.read_block, 1460);
    assert_eq!(c.effective_read_block(), 1460);
    assert!(c.read_timeout_us > 0 && c.command_timeout_us > 0 && c.connect_timeout_us >= c.command_timeout_us);
    assert_eq!(ModemConfig::new(Dialect::Sim7080, "").unwrap().apn, "");
    assert_eq!(ModemConfig::new(Dialect::Sim7080, "a\"b"), Err(ModemError::InvalidApn));
    assert_eq!(
        ModemConfig::new(Dialect::Sim7080, "tab\there"),
        Err(ModemError::InvalidApn)
    );
    assert_eq!(
        ModemConfig::new(Dialect::Sim7080, &"x".repeat(64)),
        Err(ModemError::InvalidApn)
    );
    assert!(ModemConfig::new(Dialect::Sim7080, &"x".repeat(63)).is_ok());
    let mut c = ModemConfig::new(Dialect::Sim7080, "apn").unwrap();
    c.read_block = 0;
    assert_eq!(c.effective_read_block(), 1);
    c.read_block = 1461;
    assert_eq!(c.effective_read_block(), 1460);
}

#[test]
fn error_messages_say_what_to_do() {
    let cases = [
        (ModemError::NoResponse { secs: 30 }, "baud"),
        (ModemError::InvalidApn, "apn"),
        (ModemError::Restarted { times: 4 }, "supply"),
        (
            ModemError::SimNotReady {
                reply: "SIM not inserted".try_into().unwrap(),
                secs: 30,
            },
            "inserted",
        ),
        (ModemError::NotRegistered { stat: 2, secs: 120 }, "antenna"),
        (
            ModemError::AttachFailed {
                command: "+NETOPEN",
                code: 1,
            },
            "APN",
        ),
        (ModemError::Uart(ErrorKind::Other), "UART"),
    ];
    for (e, hint) in cases {
        assert!(e.to_string().contains(hint), "{e:?} → {e}");
    }
}

/// The modem answers the first `AT` after the driver already sent a second one: two `OK`s
/// arrive. The second must not be taken for the answer to `ATE0` (that would shift every
/// later answer by one and lose the model name).
#[tokio::test(start_paused = true)]
async fn late_ok_during_sync_is_not_misattributed() {
    let uart = Script::new()
        .expect("AT\r")
        .sleep(1_050_000)
        .out("AT\r\r\nOK\r\n")
        .expect("AT\r")
        .sleep(20_000)
        .out("AT\r\r\nOK\r\n")
        .cmd("ATE0", "ATE0\r\r\nOK\r\n")
        .then(bring_up_rest(Dialect::Sim7600))
        .build();
    let mut m = modem(&uart, Dialect::Sim7600);
    let info = m.bring_up().await.unwrap();
    assert_eq!(info.model, "SIMCOM_SIM7600G-H");
    assert_eq!(info.rssi, 23);
    uart.assert_done();
}

/// UART noise before `RDY` (a modem powering up) is counted, then bring-up proceeds.
#[tokio::test(start_paused = true)]
async fn noise_during_boot() {
    let uart = Script::new()
        .deaf()
        .sleep(500_000)
        .out(b"\x00\xf0\xff~\xff\x03\r\nRDY\r\n")
        .hear()
        .then(sync_echo_on())
        .then(bring_up_rest(Dialect::Sim7080))
        .chunk(3)
        .build();
    let mut m = modem(&uart, Dialect::Sim7080);
    m.bring_up().await.unwrap();
    uart.assert_done();
    let st = m.stats();
    assert_eq!(st.garbage_bytes, 6);
    assert_eq!(st.restarts_seen, 1);
}

/// Lines that are not `\r\n`-framed the usual way still parse: echo with a bare `\r`,
/// a prompt with a trailing blank, notices glued to each other.
#[tokio::test(start_paused = true)]
async fn unusual_framing() {
    let uart = Script::new()
        .cmd("AT", "AT\r\r\nOK\r\n")
        .cmd("ATE0", "ATE0\r\r\nOK\r\n")
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\n+CSQ: 23,99\n\nOK\n")
        .cmd("AT+COPS?", "\r\n+COPS: 0,0,\"Mint\",7\r\n\r\nOK\r\n")
        .ok("AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"")
        .cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n")
        .ok("AT+CIPRXGET=1")
        .then(open_7600())
        .expect("AT+CIPSEND=0,2\r")
        .out("\r\n> ")
        .expect("hi")
        .out("\r\nOK\r\n\r\n+CIPSEND: 0,2,2\r\n+CIPRXGET: 1,0\r\n")
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(b"ok", 0))
        .build();
    let mut m = modem(&uart, Dialect::Sim7600);
    assert_eq!(m.bring_up().await.unwrap().rssi, 23);
    m.connect("example.com", 80).await.unwrap();
    m.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(2));
    uart.assert_done();
    assert_eq!(m.stats().garbage_bytes, 0);
}

/// A UART that fails.
#[derive(Debug)]
struct BrokenUart;

impl ErrorType for BrokenUart {
    type Error = ErrorKind;
}

impl Read for BrokenUart {
    async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, ErrorKind> {
        Err(ErrorKind::Other)
    }
}

impl Write for BrokenUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn uart_failure() {
    let cfg = ModemConfig::new(Dialect::Sim7600, "apn").unwrap();
    let mut m = Modem::new(BrokenUart, TestClock::new(), cfg);
    assert_eq!(m.bring_up().await, Err(ModemError::Uart(ErrorKind::Other)));
    let mut buf = [0u8; 8];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::ModemLost));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ModemLost));
    let _ = m.into_inner();
}
