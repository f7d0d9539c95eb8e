//! SIM7080 (`CA*`) driver against scripted modem output (transcripts 18, 19, 25 and the
//! contract in `docs/at-dialects.md`).

#[path = "modem_support.rs"]
mod support;

use device_fw::modem::{CONNECT_NO_CODE, Dialect, ModemError, ModemInfo};
use device_fw::socket::{Socket, SocketError};
use support::*;

const D: Dialect = Dialect::Sim7080;

/// Cold boot: the first `AT` goes unanswered (file 24), then `RDY`, `+CFUN: 1`,
/// `+CPIN: READY`, `SMS Ready`; PDP context 0 comes up with `+APP PDP: 0,ACTIVE` after `OK`.
#[tokio::test(start_paused = true)]
async fn cold_boot_bring_up() {
    let uart = Script::new()
        .deaf()
        .sleep(1_200_000)
        .out("\r\nRDY\r\n")
        .hear()
        .cmd("AT", "\r\n+CFUN: 1\r\nAT\r\r\nOK\r\n\r\n+CPIN: READY\r\n")
        .cmd("ATE0", "ATE0\r\r\nOK\r\n\r\nSMS Ready\r\n")
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIM7080G\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,5\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
        .cmd("AT+COPS?", "\r\n+COPS: 0,0,\"1NCE\",9\r\n\r\nOK\r\n")
        .ok("AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"")
        .cmd("AT+CNACT=0,1", "\r\nOK\r\n")
        .sleep(700_000)
        .out("\r\n+APP PDP: 0,ACTIVE\r\n")
        .build();
    let mut m = modem(&uart, D);
    let info = m.bring_up().await.expect("bring-up");
    uart.assert_done();
    assert_eq!(
        info,
        ModemInfo {
            model: "SIM7080G".try_into().unwrap(),
            rssi: 18,
            operator: "1NCE".try_into().unwrap(),
            baud: 115_200,
            fast_baud_refused: false,
        }
    );
    assert_eq!(uart.0.borrow().swallowed, b"AT\rAT\r");
    let st = m.stats();
    assert_eq!((st.restarts_seen, st.garbage_bytes), (1, 0));
    // RDY, +CFUN: 1, +CPIN: READY, SMS Ready, +APP PDP.
    assert_eq!(st.urcs, 5);
}

/// `+CARECV: <n>,` carries the payload on the same line; the payload holds `\r\n\r\nOK\r\n`,
/// notices and `RDY`. Played at every read size from 1 byte up.
#[tokio::test(start_paused = true)]
async fn payload_byte_exact_at_every_split() {
    let payload = nasty_payload(3000);
    let req = b"GET / HTTP/1.1\r\n\r\n";
    for chunk in [1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 64, 1000] {
        let uart = up(D)
            .then(open_7080())
            .expect("AT+CASEND=0,18\r")
            .out("\r\n>")
            .expect(req)
            .out("\r\nOK\r\n")
            .cmd("AT+CARECV=0,1460", carecv(b""))
            .sleep(300_000)
            .out("\r\n+CADATAIND: 0\r\n")
            .cmd("AT+CARECV=0,1460", carecv(&payload[..1460]))
            .cmd("AT+CARECV=0,1460", carecv(&payload[1460..2920]))
            .cmd("AT+CARECV=0,1460", carecv(&payload[2920..]))
            .ok("AT+CACLOSE=0")
            .chunk(chunk)
            .build();
        let mut m = modem(&uart, D);
        m.bring_up().await.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        m.connect("example.com", 80)
            .await
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        m.write_all(req).await.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while got.len() < payload.len() {
            let n = m.read(&mut buf).await.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got == payload,
            "chunk {chunk}: payload differs at {:?}",
            got.iter().zip(&payload).position(|(a, b)| a != b)
        );
        m.close().await;
        uart.assert_done();
        let st = m.stats();
        assert_eq!(
            (st.payload_bytes, st.garbage_bytes, st.restarts_seen),
            (3000, 0, 0),
            "chunk {chunk}"
        );
    }
}

/// File 18: `+CADATAIND: 0` immediately followed by `+CASTATE: 0,0`, inside another
/// command's reply. What the modem still gives is read; then `Closed` (the SIM7080 may have
/// dropped data on close, so this is not a clean end of stream).
#[tokio::test(start_paused = true)]
async fn cadataind_castate_interleaved() {
    let data = nasty_payload(700);
    let mut reply = b"\r\n+CADATAIND: 0\r\n\r\n+CASTATE: 0,0\r\n".to_vec();
    reply.extend(carecv(&data[..500]));
    let uart = up(D)
        .then(open_7080())
        .cmd("AT+CARECV=0,500", reply)
        .cmd("AT+CARECV=0,1460", carecv(&data[500..]))
        .cmd("AT+CARECV=0,1460", "\r\nERROR\r\n")
        // Freed even though the modem closed it; `ERROR` (not open) is fine.
        .cmd("AT+CACLOSE=0", "\r\nERROR\r\n")
        .then(open_7080())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = vec![0u8; 2048];
    assert_eq!(m.read(&mut buf[..500]).await, Ok(500));
    assert_eq!(&buf[..500], &data[..500]);
    assert!(!m.is_connected());
    assert_eq!(m.read(&mut buf).await, Ok(200));
    assert_eq!(&buf[..200], &data[500..]);
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Closed));
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Closed));
    m.connect("example.com", 80).await.unwrap();
    uart.assert_done();
}

/// Empty buffer: `+CARECV: 0`, then wait for `+CADATAIND: 0` (arriving split in two).
#[tokio::test(start_paused = true)]
async fn waits_for_cadataind() {
    let uart = up(D)
        .then(open_7080())
        .cmd("AT+CARECV=0,1460", carecv(b""))
        .sleep(5_000_000)
        .out("\r\n+CADAT")
        .sleep(1_000)
        .out("AIND: 0\r\n")
        .cmd("AT+CARECV=0,1460", carecv(b"HTTP/1.1 206"))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let t0 = tokio::time::Instant::now();
    assert_eq!(m.read(&mut buf).await, Ok(12));
    assert_eq!(&buf[..12], b"HTTP/1.1 206");
    assert!(t0.elapsed().as_millis() >= 5_001);
    uart.assert_done();
}

/// PDP context dropped while waiting: `NetworkDown`.
#[tokio::test(start_paused = true)]
async fn pdp_deactivated_is_network_down() {
    let uart = up(D)
        .then(open_7080())
        .cmd("AT+CARECV=0,1460", carecv(b""))
        .sleep(2_000_000)
        .out("\r\n+APP PDP: 0,DEACTIVE\r\n")
        .cmd("AT+CARECV=0,1460", "\r\nERROR\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = vec![0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::NetworkDown));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::NetworkDown));
    uart.assert_done();
}

/// Sends go out at most 1460 bytes per `CASEND` (file 25: `(1-1460)`).
#[tokio::test(start_paused = true)]
async fn send_chunks_of_1460() {
    let data = nasty_payload(3000);
    let uart = up(D)
        .then(open_7080())
        .expect("AT+CASEND=0,1460\r")
        .out("\r\n>")
        .expect(&data[..1460])
        .out("\r\nOK\r\n")
        .expect("AT+CASEND=0,1460\r")
        .out("\r\n> ")
        .expect(&data[1460..2920])
        .out("\r\nOK\r\n\r\n+CASEND: 0,0,1460\r\n")
        .expect("AT+CASEND=0,80\r")
        .out("\r\n>")
        .expect(&data[2920..])
        .out("\r\nOK\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.write_all(&data).await.unwrap();
    uart.assert_done();
}

/// Connect results: `+CAOPEN: 0,<result>` with a non-zero result, bare `ERROR`, and a
/// send refused with `ERROR` (the connection is gone).
#[tokio::test(start_paused = true)]
async fn connect_and_send_errors() {
    let uart = up(D)
        .cmd(
            "AT+CAOPEN=0,0,\"TCP\",\"example.com\",80",
            "\r\n+CAOPEN: 0,1\r\n\r\nOK\r\n",
        )
        .cmd("AT+CAOPEN=0,0,\"TCP\",\"example.com\",80", "\r\nERROR\r\n")
        // Result after the OK.
        .cmd("AT+CAOPEN=0,0,\"TCP\",\"example.com\",80", "\r\nOK\r\n")
        .sleep(100_000)
        .out("\r\n+CAOPEN: 0,0\r\n")
        .cmd("AT+CASEND=0,3", "\r\nERROR\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ConnectFailed(1)));
    assert_eq!(
        m.connect("example.com", 80).await,
        Err(SocketError::ConnectFailed(CONNECT_NO_CODE))
    );
    m.connect("example.com", 80).await.unwrap();
    assert_eq!(m.write_all(b"abc").await, Err(SocketError::Closed));
    assert!(!m.is_connected());
    uart.assert_done();
}

/// `AT+CNACT=0,1` answers `ERROR` when the context is already active: checked with
/// `AT+CNACT?`, accepted when active, reported when not.
#[tokio::test(start_paused = true)]
async fn cnact_already_active() {
    let uart = sync_echo_on()
        .then(bring_up_pre_attach(D))
        .cmd("AT+CNACT=0,1", "\r\nERROR\r\n")
        .cmd(
            "AT+CNACT?",
            "\r\n+CNACT: 0,1,\"10.32.131.231\"\r\n+CNACT: 1,0,\"0.0.0.0\"\r\n\r\nOK\r\n",
        )
        .build();
    modem(&uart, D).bring_up().await.expect("already active is fine");
    uart.assert_done();

    let uart = sync_echo_on()
        .then(bring_up_pre_attach(D))
        .cmd("AT+CNACT=0,1", "\r\n+CME ERROR: operation not allowed\r\n")
        .cmd(
            "AT+CNACT?",
            "\r\n+CNACT: 0,0,\"0.0.0.0\"\r\n+CNACT: 1,0,\"0.0.0.0\"\r\n\r\nOK\r\n",
        )
        .build();
    assert_eq!(
        modem(&uart, D).bring_up().await,
        Err(ModemError::CommandFailed {
            command: "AT+CNACT=0,1",
            reply: "operation not allowed".try_into().unwrap()
        })
    );
    uart.assert_done();

    // Second bring-up on a running modem: the context is still active from the first.
    let uart = up(D)
        .ok("AT")
        .ok("ATE0")
        .then(bring_up_pre_attach(D))
        .cmd("AT+CNACT=0,1", "\r\nERROR\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.bring_up().await.unwrap();
    uart.assert_done();
}

/// `RDY` in place of a read reply: `ModemLost`; bring-up works again with echo back on.
#[tokio::test(start_paused = true)]
async fn rdy_is_modem_lost() {
    let uart = up(D)
        .then(open_7080())
        .cmd("AT+CARECV=0,1460", "\r\nRDY\r\n\r\n+CFUN: 1\r\n")
        .then(up(D))
        .then(open_7080())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = vec![0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::ModemLost));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ModemLost));
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    uart.assert_done();
}

/// Read size: min(buffer, read_block), at most 1460.
#[tokio::test(start_paused = true)]
async fn read_size_is_clamped_to_1460() {
    let uart = up(D)
        .then(open_7080())
        .cmd("AT+CARECV=0,1460", carecv(b"abc"))
        .sleep(1)
        .out("\r\n+CADATAIND: 0\r\n")
        .cmd("AT+CARECV=0,3", carecv(b"def"))
        .cmd("AT+CARECV=0,3", carecv(b"g"))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.set_read_block(9999);
    let mut buf = vec![0u8; 9999];
    assert_eq!(m.read(&mut buf).await, Ok(3));
    // A full block: there may be more, so the next read asks at once.
    assert_eq!(m.read(&mut buf[..3]).await, Ok(3));
    assert_eq!(m.read(&mut buf[..3]).await, Ok(1));
    assert_eq!(&buf[..1], b"g");
    uart.assert_done();
}
