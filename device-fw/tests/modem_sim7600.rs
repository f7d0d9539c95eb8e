//! SIM7600 (`CIP*`) driver against scripted modem output built from the captured
//! transcripts (`docs/at-transcripts`) and the contract in `docs/at-dialects.md`.

#[path = "modem_support.rs"]
mod support;

use device_fw::modem::{CONNECT_BAD_HOST, CONNECT_NO_CODE, Dialect, ModemError, ModemInfo, ModemStats};
use device_fw::socket::{Socket, SocketError};
use support::*;
use tokio::time::Instant;

const D: Dialect = Dialect::Sim7600;
const REQ: &[u8] = b"GET /fw.bin HTTP/1.1\r\nHost: example.com\r\nRange: bytes=0-1999\r\n\r\n";

fn send_req() -> Script {
    Script::new()
        .expect(format!("AT+CIPSEND=0,{}\r", REQ.len()))
        .out("\r\n>")
        .expect(REQ)
        .out(format!("\r\nOK\r\n\r\n+CIPSEND: 0,{0},{0}\r\n", REQ.len()))
}

async fn read_all(m: &mut TestModem, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < want {
        let n = m.read(&mut buf).await.expect("read");
        assert!(n > 0, "unexpected end of stream after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Cold boot with the captured bytes: `AT` ignored until `RDY` (file 05), the exact boot
/// output of file 09 split mid-`SMS DONE`, echo on (`AT\r\r\nOK\r\n`, file 15), `SIM busy`
/// then unsolicited `+CPIN: READY` (files 04/05), searching then registered, `+NETOPEN: 0`
/// after `OK` (file 01).
#[tokio::test(start_paused = true)]
async fn cold_boot_bring_up_from_transcripts() {
    let uart = Script::new()
        .deaf()
        .sleep(2_500_000)
        .out(b"\x0d\x0a\x52\x44\x59\x0d\x0a\x0d\x0a\x2b\x43\x50\x49\x4e\x3a\x20\x52\x45\x41\x44\x59\x0d\x0a\x0d\x0a\x53\x4d\x53\x20\x44\x4f\x4e")
        .hear()
        .cmd("AT", "E\r\n\r\nPB DONE\r\nAT\r\r\nOK\r\n")
        .cmd("ATE0", "ATE0\r\r\nOK\r\n")
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CME ERROR: SIM busy\r\n")
        .sleep(400_000)
        .out("\r\n+CPIN: READY\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,2\r\n\r\nOK\r\n")
        // Not on LTE yet: 2G/3G are asked too.
        .cmd("AT+CGREG?", "\r\n+CGREG: 0,2\r\n\r\nOK\r\n")
        .cmd("AT+CREG?", "\r\n+CREG: 0,2\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\r\n+CSQ: 31,99\r\n\r\nOK\r\n")
        .cmd("AT+COPS?", "\r\n+COPS: 0,0,\"Mint\",7\r\n\r\nOK\r\n")
        .ok("AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"")
        .cmd("AT+NETOPEN", "\r\nOK\r\n")
        .sleep(800_000)
        .out("\r\n+NETOPEN: 0\r\n")
        .ok("AT+CIPRXGET=1")
        .build();
    let mut m = modem(&uart, D);
    let t0 = Instant::now();
    let info = m.bring_up().await.expect("bring-up");
    uart.assert_done();
    assert_eq!(
        info,
        ModemInfo {
            model: "SIMCOM_SIM7600G-H".try_into().unwrap(),
            rssi: 31,
            operator: "Mint".try_into().unwrap(),
            baud: 115_200,
            fast_baud_refused: false,
        }
    );
    // `AT` at 0, 1 and 2 s went unanswered; `RDY` at 2.5 s triggered the fourth at once.
    assert_eq!(uart.0.borrow().swallowed, b"AT\rAT\rAT\r");
    assert_eq!(
        m.stats(),
        ModemStats {
            commands: 18,
            urcs: 6,
            garbage_bytes: 0,
            restarts_seen: 1,
            payload_bytes: 0
        }
    );
    let took = t0.elapsed().as_secs_f64();
    assert!((4.5..6.0).contains(&took), "bring-up took {took} s of virtual time");
    assert!(!m.is_connected());
}

/// Download-shaped session: open (with `+CGEV` before `+CIPOPEN`), send the request at the
/// `>` prompt, poll (no data), wait for `+CIPRXGET: 1,0`, then two reads; the first reply
/// carries another `+CIPRXGET: 1,0` notice before its header. The payload is full of
/// `\r\nOK\r\n`, `+CIPRXGET: 1,0`, `RDY` and binary bytes. Played with every read size from
/// 1 byte (each byte boundary is a split) up, the payload must come through byte-exact.
#[tokio::test(start_paused = true)]
async fn payload_byte_exact_at_every_split() {
    let payload = nasty_payload(2000);
    for chunk in [1, 2, 3, 4, 5, 7, 11, 13, 17, 31, 64, 257, 5000] {
        let mut first = b"\r\n+CIPRXGET: 1,0\r\n".to_vec();
        first.extend(ciprxget(&payload[..1460], 540));
        let uart = up(D)
            .then(open_7600())
            .then(send_req())
            .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
            .sleep(200_000)
            .out("\r\n+CIPRXGET: 1,0\r\n")
            .cmd("AT+CIPRXGET=2,0,1460", first)
            .cmd("AT+CIPRXGET=2,0,1460", ciprxget(&payload[1460..], 0))
            .cmd("AT+CIPCLOSE=0", "\r\nOK\r\n\r\n+CIPCLOSE: 0,0\r\n")
            .chunk(chunk)
            .build();
        let mut m = modem(&uart, D);
        m.bring_up().await.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        m.connect("example.com", 80)
            .await
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        assert!(m.is_connected());
        m.write_all(REQ).await.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        let got = read_all(&mut m, payload.len()).await;
        assert!(
            got == payload,
            "chunk {chunk}: payload differs at byte {:?}",
            got.iter().zip(&payload).position(|(a, b)| a != b)
        );
        m.close().await;
        assert!(!m.is_connected());
        uart.assert_done();
        let st = m.stats();
        assert_eq!(st.payload_bytes, 2000, "chunk {chunk}");
        assert_eq!(
            st.garbage_bytes, 0,
            "chunk {chunk}: payload bytes leaked into the line parser"
        );
        assert_eq!(
            st.restarts_seen, 0,
            "chunk {chunk}: a payload `RDY` was taken for a reboot"
        );
    }
}

/// The block asked per read is min(buffer, read_block) and never more than 1460.
#[tokio::test(start_paused = true)]
async fn read_size_is_clamped_to_1460() {
    let data = [0x5au8; 100];
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(&data, 0))
        .sleep(10_000)
        .out("\r\n+CIPRXGET: 1,0\r\n")
        .cmd("AT+CIPRXGET=2,0,512", ciprxget(&data, 0))
        .sleep(10_000)
        .out("\r\n+CIPRXGET: 1,0\r\n")
        .cmd("AT+CIPRXGET=2,0,7", ciprxget(&data[..7], 0))
        .sleep(10_000)
        .out("\r\n+CIPRXGET: 1,0\r\n")
        .cmd("AT+CIPRXGET=2,0,1", ciprxget(&data[..1], 0))
        .build();
    let mut m = modem(&uart, D);
    assert_eq!(m.config().read_block, 1460);
    assert_eq!(D.max_read(), 1460);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.set_read_block(100_000);
    assert_eq!(m.config().read_block, 1460);
    let mut big = vec![0u8; 8192];
    assert_eq!(m.read(&mut big).await, Ok(100));
    m.set_read_block(512);
    assert_eq!(m.read(&mut big).await, Ok(100));
    assert_eq!(m.read(&mut big[..7]).await, Ok(7));
    m.set_read_block(0);
    assert_eq!(m.config().read_block, 1);
    assert_eq!(m.read(&mut big).await, Ok(1));
    uart.assert_done();
}

/// Remote FIN: `+IPCLOSE: 0,1` arrives while 1560 bytes are still in the modem. They are
/// read out, then the end of stream is `Ok(0)` (and stays so without further commands).
#[tokio::test(start_paused = true)]
async fn close_notice_with_data_remaining() {
    let data = nasty_payload(1560);
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .sleep(100_000)
        .out("\r\n+CIPRXGET: 1,0\r\n\r\n+IPCLOSE: 0,1\r\n")
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(&data[..1460], 100))
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(&data[1460..], 0))
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        // A new connection works afterwards; no CIPCLOSE for a link the modem closed.
        .then(open_7600())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let got = read_all(&mut m, data.len()).await;
    assert_eq!(got, data);
    assert!(!m.is_connected(), "close notice seen");
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(0));
    assert_eq!(m.read(&mut buf).await, Ok(0));
    m.connect("example.com", 80).await.unwrap();
    assert!(m.is_connected());
    uart.assert_done();
}

/// The notice can also come in the middle of the last read reply.
#[tokio::test(start_paused = true)]
async fn close_notice_inside_read_reply() {
    let data = b"HTTP/1.1 206 Partial Content\r\n\r\nOK\r\n".to_vec();
    let mut reply = b"\r\n+IPCLOSE: 0,1\r\n".to_vec();
    reply.extend(ciprxget(&data, 0));
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", reply)
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(data.len()));
    assert_eq!(&buf[..data.len()], &data[..]);
    assert_eq!(m.read(&mut buf).await, Ok(0));
    uart.assert_done();
}

/// Reset (`+IPCLOSE: 0,2`): whatever is left is asked for once, then `Closed`.
#[tokio::test(start_paused = true)]
async fn reset_gives_closed() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .sleep(3_000_000)
        .out("\r\n+IPCLOSE: 0,2\r\n")
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Closed));
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Closed));
    assert_eq!(m.write_all(b"x").await, Err(SocketError::Closed));
    uart.assert_done();
}

/// `+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`: reads end in `NetworkDown`, nothing works until
/// bring-up runs again (echo is still off, the packet network is reopened).
#[tokio::test(start_paused = true)]
async fn network_down_then_bring_up_again() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .sleep(1_000_000)
        .out("\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n")
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .ok("AT")
        .ok("ATE0")
        .then(bring_up_rest(D))
        .then(open_7600())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::NetworkDown));
    assert_eq!(m.read(&mut buf).await, Err(SocketError::NetworkDown));
    assert_eq!(m.write_all(b"x").await, Err(SocketError::NetworkDown));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::NetworkDown));
    m.close().await;
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::NetworkDown));
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    uart.assert_done();
}

/// `RDY` while a read waits: the modem rebooted, everything is `ModemLost` until bring-up,
/// which must cope with echo being back on (and a `+CIPEVENT` between command and echo,
/// as in file 03).
#[tokio::test(start_paused = true)]
async fn rdy_mid_read_is_modem_lost() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .sleep(1_000_000)
        .out("\r\nRDY\r\n\r\n+CPIN: READY\r\n")
        .cmd("AT", "AT\r\r\nOK\r\n\r\nSMS DONE\r\n")
        .cmd("ATE0", "\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\nATE0\r\r\nOK\r\n")
        .then(bring_up_rest(D))
        .out("\r\nPB DONE\r\n")
        .then(open_7600())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::ModemLost));
    assert!(!m.is_connected());
    let before = uart.0.borrow().written.len();
    assert_eq!(m.read(&mut buf).await, Err(SocketError::ModemLost));
    assert_eq!(m.write_all(b"x").await, Err(SocketError::ModemLost));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ModemLost));
    assert_eq!(uart.0.borrow().written.len(), before, "nothing is sent to a lost modem");
    assert_eq!(m.stats().restarts_seen, 1);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    assert!(m.is_connected());
    uart.assert_done();
}

/// `RDY` where a read reply's header should be.
#[tokio::test(start_paused = true)]
async fn rdy_inside_read_reply_is_modem_lost() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", "\r\nRDY\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::ModemLost));
    uart.assert_done();
}

/// No data within the read deadline: `Timeout` after exactly `read_timeout_us`; the next
/// read asks the modem first (a data notice may have been lost).
#[tokio::test(start_paused = true)]
async fn read_timeout_then_poll_first() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(b"late", 0))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let timeout = m.config().read_timeout_us;
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Timeout));
    assert_eq!(t0.elapsed().as_micros() as u64, timeout);
    assert!(m.is_connected(), "a timeout does not close the socket");
    assert_eq!(m.read(&mut buf).await, Ok(4));
    assert_eq!(&buf[..4], b"late");
    uart.assert_done();
}

/// A modem that stops answering mid-session is `ModemLost` after the command deadline.
#[tokio::test(start_paused = true)]
async fn silent_modem_is_lost_after_command_timeout() {
    let uart = up(D).expect("AT+CIPOPEN=0,\"TCP\",\"example.com\",80\r").build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    let t0 = Instant::now();
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ModemLost));
    assert_eq!(t0.elapsed().as_micros() as u64, m.config().command_timeout_us);
    uart.assert_done();
}

/// `OK` to `CIPOPEN` but no `+CIPOPEN` within the connect deadline: `Timeout`, and the
/// attempt is cancelled with `CIPCLOSE` so the link is free.
#[tokio::test(start_paused = true)]
async fn connect_timeout_cancels_attempt() {
    let uart = up(D)
        .cmd("AT+CIPOPEN=0,\"TCP\",\"example.com\",80", "\r\nOK\r\n")
        .expect("AT+CIPCLOSE=0\r")
        .sleep(1)
        .out("\r\n+CIPCLOSE: 0,4\r\n\r\nERROR\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    let t0 = Instant::now();
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::Timeout));
    assert!(t0.elapsed().as_micros() as u64 >= m.config().connect_timeout_us);
    assert!(!m.is_connected());
    uart.assert_done();
}

/// Error replies map to specific socket errors.
#[tokio::test(start_paused = true)]
async fn socket_error_replies() {
    let uart = up(D)
        // Immediate failure (file 06 form): `+CIPOPEN: 0,<err>` + ERROR, no OK.
        .cmd(
            "AT+CIPOPEN=0,\"TCP\",\"example.com\",80",
            "\r\n+CIPOPEN: 0,1\r\n\r\nERROR\r\n",
        )
        // Failure reported later.
        .cmd("AT+CIPOPEN=0,\"TCP\",\"example.com\",80", "\r\nOK\r\n")
        .sleep(2_000_000)
        .out("\r\n+CIPOPEN: 0,4\r\n")
        // Bare ERROR.
        .cmd("AT+CIPOPEN=0,\"TCP\",\"example.com\",80", "\r\nERROR\r\n")
        // Connected, then the send finds the network gone (file 01).
        .then(open_7600())
        .cmd("AT+CIPSEND=0,5", "\r\n+CIPERROR: 4\r\n\r\nERROR\r\n")
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ConnectFailed(1)));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::ConnectFailed(4)));
    assert_eq!(
        m.connect("example.com", 80).await,
        Err(SocketError::ConnectFailed(CONNECT_NO_CODE))
    );
    assert_eq!(
        m.connect("", 80).await,
        Err(SocketError::ConnectFailed(CONNECT_BAD_HOST))
    );
    assert_eq!(
        m.connect("evil\",1\r\nAT+CFUN=0", 80).await,
        Err(SocketError::ConnectFailed(CONNECT_BAD_HOST))
    );
    let mut buf = [0u8; 8];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::NotConnected));
    assert_eq!(m.write_all(b"hello").await, Err(SocketError::NotConnected));
    m.connect("example.com", 80).await.unwrap();
    assert_eq!(m.write_all(b"hello").await, Err(SocketError::NetworkDown));
    assert_eq!(m.connect("example.com", 80).await, Err(SocketError::NetworkDown));
    uart.assert_done();
}

/// Writes go out in chunks of at most 1460 bytes, each after its own `>` prompt.
#[tokio::test(start_paused = true)]
async fn write_chunks_of_1460() {
    let data = nasty_payload(3000);
    let uart = up(D)
        .then(open_7600())
        .expect("AT+CIPSEND=0,1460\r")
        .out("\r\n>")
        .expect(&data[..1460])
        .out("\r\nOK\r\n\r\n+CIPSEND: 0,1460,1460\r\n")
        .expect("AT+CIPSEND=0,1460\r")
        // A data notice just before the prompt.
        .out("\r\n+CIPRXGET: 1,0\r\n\r\n> ")
        .expect(&data[1460..2920])
        .out("\r\nOK\r\n")
        .out("\r\n+CIPSEND: 0,1460,1460\r\n")
        .expect("AT+CIPSEND=0,80\r")
        .out("\r\n>")
        .expect(&data[2920..])
        .out("\r\nOK\r\n\r\n+CIPSEND: 0,80,80\r\n")
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(b"HTTP", 0))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.write_all(&data).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(4));
    uart.assert_done();
}

/// A reply longer than asked for is read out (the stream stays in step) and reported.
#[tokio::test(start_paused = true)]
async fn overlong_read_reply_is_protocol_error() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,4", ciprxget(b"0123456789", 0))
        .cmd("AT+CIPRXGET=2,0,4", ciprxget(b"abcd", 0))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Protocol));
    assert_eq!(m.read(&mut buf).await, Ok(4));
    assert_eq!(&buf, b"abcd");
    uart.assert_done();
}

/// Noise between replies is counted and skipped, never fatal: control/8-bit bytes, a
/// printable junk line, noise glued to a line, a run longer than the receive buffer.
#[tokio::test(start_paused = true)]
async fn garbage_between_replies() {
    let mut long = vec![0xaau8; 300];
    long.extend_from_slice(b"\r\n");
    // Printable, longer than the receive buffer, no line end for 300 bytes.
    let mut overlong = vec![b'U'; 300];
    overlong.extend_from_slice(b"\r\n");
    let uart = sync_echo_on()
        .ok("AT+CMEE=2")
        .out(b"\x00\xff\xfe\r\n")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n~~~~\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .out(long)
        .cmd("AT+CEREG?", b"\r\n\x00\x00+CEREG: 0,1\x00\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\r\n+CSQ: 23,99\r\n\r\n+QIURC: \"recv\",0\r\n\r\nOK\r\n")
        .out(overlong)
        .cmd("AT+COPS?", "\r\n+COPS: 0\r\n\r\nOK\r\n")
        .ok("AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"")
        .cmd(
            "AT+NETOPEN",
            "\r\n+IP ERROR: Network is already opened\r\n\r\nERROR\r\n",
        )
        .ok("AT+CIPRXGET=1")
        .build();
    let mut m = modem(&uart, D);
    let info = m.bring_up().await.expect("noise is not fatal");
    assert_eq!(info.model, "SIMCOM_SIM7600G-H");
    assert_eq!(info.rssi, 23);
    assert_eq!(info.operator, "");
    uart.assert_done();
    let st = m.stats();
    // 3 + 4 ("~~~~") + 300 + 2 (glued in front of `+CEREG`) + 1 + 300 (overlong line).
    assert_eq!(st.garbage_bytes, 610);
    // `+QIURC` (unknown notice) and `+IP ERROR` (detail of the refused NETOPEN).
    assert_eq!(st.urcs, 2);
}

/// Bring-up failures name the cause.
#[tokio::test(start_paused = true)]
async fn bring_up_errors() {
    // Nothing answers: NoResponse after the boot timeout, `AT` sent once a second.
    let uart = Script::new().deaf().build();
    let mut m = modem(&uart, D);
    let t0 = Instant::now();
    let e = m.bring_up().await.unwrap_err();
    assert_eq!(e, ModemError::NoResponse { secs: 30 });
    assert_eq!(t0.elapsed().as_secs(), 30);
    assert_eq!(uart.count_written("AT\r"), 30);
    assert!(e.to_string().contains("wiring"), "{e}");

    // PIN-locked SIM.
    let uart = sync_echo_on()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n")
        .build();
    let e = modem(&uart, D).bring_up().await.unwrap_err();
    assert_eq!(e, ModemError::SimLocked("SIM PIN".try_into().unwrap()));
    uart.assert_done();

    // No SIM: retried once a second until the boot timeout, then the last answer.
    let mut s = sync_echo_on()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n");
    for _ in 0..4 {
        s = s.cmd("AT+CPIN?", "\r\n+CME ERROR: SIM not inserted\r\n");
    }
    let uart = s.build();
    let mut m = modem_with(&uart, D, |c| c.boot_timeout_us = 3_000_000);
    let e = m.bring_up().await.unwrap_err();
    assert_eq!(
        e,
        ModemError::SimNotReady {
            reply: "SIM not inserted".try_into().unwrap(),
            secs: 3
        }
    );
    uart.assert_done();

    // Registration denied.
    let uart = sync_echo_on()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,3\r\n\r\nOK\r\n")
        .build();
    assert_eq!(modem(&uart, D).bring_up().await, Err(ModemError::RegistrationDenied));
    uart.assert_done();

    // Still searching when the registration deadline passes.
    let mut s = sync_echo_on()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    for _ in 0..3 {
        s = s
            .cmd("AT+CEREG?", "\r\n+CEREG: 0,2\r\n\r\nOK\r\n")
            .cmd("AT+CGREG?", "\r\n+CGREG: 0,2\r\n\r\nOK\r\n")
            .cmd("AT+CREG?", "\r\n+CREG: 0,2\r\n\r\nOK\r\n");
    }
    let uart = s.build();
    let mut m = modem_with(&uart, D, |c| c.register_timeout_us = 2_000_000);
    assert_eq!(m.bring_up().await, Err(ModemError::NotRegistered { stat: 2, secs: 2 }));
    uart.assert_done();

    // The PDP context refused.
    let uart = sync_echo_on()
        .ok("AT+CMEE=2")
        .cmd("AT+CGMM", "\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n")
        .cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        .cmd("AT+CEREG?", "\r\n+CEREG: 0,5\r\n\r\nOK\r\n")
        .cmd("AT+CSQ", "\r\n+CSQ: 99,99\r\n\r\nOK\r\n")
        .cmd("AT+COPS?", "\r\n+COPS: 0,0,\"Mint\",7\r\n\r\nOK\r\n")
        .cmd(
            "AT+CGDCONT=1,\"IP\",\"iot.1nce.net\"",
            "\r\n+CME ERROR: operation not allowed\r\n",
        )
        .build();
    assert_eq!(
        modem(&uart, D).bring_up().await,
        Err(ModemError::CommandFailed {
            command: "AT+CGDCONT",
            reply: "operation not allowed".try_into().unwrap()
        })
    );
    uart.assert_done();

    // NETOPEN fails asynchronously.
    let uart = sync_echo_on()
        .then(bring_up_pre_attach(D))
        .cmd("AT+NETOPEN", "\r\nOK\r\n")
        .sleep(1_000_000)
        .out("\r\n+NETOPEN: 1\r\n")
        .build();
    assert_eq!(
        modem(&uart, D).bring_up().await,
        Err(ModemError::AttachFailed {
            command: "+NETOPEN",
            code: 1
        })
    );
    uart.assert_done();

    // Plain ERROR to NETOPEN (file 02) and the network is not open.
    let uart = sync_echo_on()
        .then(bring_up_pre_attach(D))
        .cmd("AT+NETOPEN", "\r\nERROR\r\n")
        .cmd("AT+NETOPEN?", "\r\n+NETOPEN: 0\r\n\r\nOK\r\n")
        .build();
    assert_eq!(
        modem(&uart, D).bring_up().await,
        Err(ModemError::CommandFailed {
            command: "AT+NETOPEN",
            reply: "ERROR".try_into().unwrap()
        })
    );
    uart.assert_done();

    // Plain ERROR, but it is open: fine.
    let uart = sync_echo_on()
        .then(bring_up_pre_attach(D))
        .cmd("AT+NETOPEN", "\r\nERROR\r\n")
        .cmd("AT+NETOPEN?", "\r\n+NETOPEN: 1\r\n\r\nOK\r\n")
        .ok("AT+CIPRXGET=1")
        .build();
    modem(&uart, D).bring_up().await.unwrap();
    uart.assert_done();
}

/// A modem that keeps rebooting during bring-up.
#[tokio::test(start_paused = true)]
async fn restart_loop_during_bring_up() {
    let mut s = Script::new();
    for _ in 0..4 {
        s = s.then(sync_echo_on()).ok("AT+CMEE=2").cmd("AT+CGMM", "\r\nRDY\r\n");
    }
    let uart = s.build();
    let mut m = modem(&uart, D);
    assert_eq!(m.bring_up().await, Err(ModemError::Restarted { times: 4 }));
    assert_eq!(m.stats().restarts_seen, 4);
    uart.assert_done();
}

/// A data notice between the payload and `OK` means more arrived after this read: the next
/// read asks at once instead of waiting for a notice that already came.
#[tokio::test(start_paused = true)]
async fn notice_after_payload_means_more() {
    let mut first = ciprxget(b"part1", 0);
    first.truncate(first.len() - 6);
    first.extend_from_slice(b"\r\n\r\n+CIPRXGET: 1,0\r\n\r\nOK\r\n");
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", first)
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(b"part2", 0))
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(5));
    let t0 = Instant::now();
    assert_eq!(m.read(&mut buf).await, Ok(5));
    assert_eq!(&buf[..5], b"part2");
    assert_eq!(t0.elapsed().as_micros(), 0, "no waiting");
    uart.assert_done();
}

/// Data and the close notice both land inside an empty read's reply: the data is still
/// read out before the end of stream.
#[tokio::test(start_paused = true)]
async fn close_notice_inside_empty_read_reply() {
    let uart = up(D)
        .then(open_7600())
        .cmd(
            "AT+CIPRXGET=2,0,1460",
            format!("\r\n+CIPRXGET: 1,0\r\n\r\n+IPCLOSE: 0,1\r\n{NO_DATA_7600}"),
        )
        .cmd("AT+CIPRXGET=2,0,1460", ciprxget(b"tail", 0))
        .cmd("AT+CIPRXGET=2,0,1460", NO_DATA_7600)
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Ok(4));
    assert_eq!(&buf[..4], b"tail");
    assert_eq!(m.read(&mut buf).await, Ok(0));
    uart.assert_done();
}

/// Bringing the modem up again while a connection is open closes it first, so the link is
/// free for the next connect.
#[tokio::test(start_paused = true)]
async fn bring_up_while_connected_closes_first() {
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPCLOSE=0", "\r\nOK\r\n\r\n+CIPCLOSE: 0,0\r\n")
        .ok("AT")
        .ok("ATE0")
        .then(bring_up_rest(D))
        .then(open_7600())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.bring_up().await.unwrap();
    assert!(!m.is_connected());
    m.connect("example.com", 80).await.unwrap();
    uart.assert_done();
}

/// A modem that announces data with every empty reply does not make a read spin: after a
/// few empty answers the driver waits for a fresh notice, and the read deadline holds.
#[tokio::test(start_paused = true)]
async fn announcing_modem_does_not_spin() {
    let lying = format!("\r\n+CIPRXGET: 1,0\r\n{NO_DATA_7600}");
    let uart = up(D)
        .then(open_7600())
        .cmd("AT+CIPRXGET=2,0,1460", lying.as_str())
        .cmd("AT+CIPRXGET=2,0,1460", lying.as_str())
        .cmd("AT+CIPRXGET=2,0,1460", lying.as_str())
        .build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Timeout));
    uart.assert_done();
}
