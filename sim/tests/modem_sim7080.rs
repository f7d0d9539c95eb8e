//! SIM7080 `CA*` sockets, byte for byte as `docs/at-dialects.md` says.

mod modem_harness;

use std::time::Duration;

use modem_harness::*;
use sim::modem::{Dialect, default_command_latency};
use sim::net::{Connection, NatConfig, NatExpiry};
use sim::pipe::PipeError;
use sim::time;

fn cfg() -> sim::modem::ModemEmulatorConfig {
    config(Dialect::Sim7080)
}

fn caopen() -> String {
    format!("AT+CAOPEN=0,0,\"TCP\",\"{HOST}\",{PORT}")
}

async fn open(b: &mut Bench) -> Connection {
    b.dev.cmd("AT+CNACT=0,1", "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n").await;
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n").await;
    accept(&mut b.origin).await
}

async fn read_cmd(b: &mut Bench, n: usize, data: &[u8]) {
    b.dev.cmd(&format!("AT+CARECV=0,{n}"), carecv_reply(data)).await;
}

const EMPTY: &[u8] = b"\r\n+CARECV: 0\r\n\r\nOK\r\n";

#[tokio::test(start_paused = true)]
async fn open_send_read_close() {
    let mut b = ready(cfg(), no_nat()).await;
    b.dev.cmd("AT+CNACT?", "\r\n+CNACT: 0,0,\"0.0.0.0\"\r\n\r\n+CNACT: 1,0,\"0.0.0.0\"\r\n\r\n+CNACT: 2,0,\"0.0.0.0\"\r\n\r\n+CNACT: 3,0,\"0.0.0.0\"\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n").await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nERROR\r\n").await;

    // CAOPEN holds its answer until the connect is done: latency, then one round trip.
    let t0 = time::now();
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n").await;
    let took = time::now() - t0;
    let want = wire(caopen().len() + 1)
        + default_command_latency()
        + Duration::from_millis(80)
        + wire("\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n".len());
    assert!(
        took.abs_diff(want) < Duration::from_micros(10),
        "CAOPEN took {took:?}, want {want:?}"
    );
    let mut conn = accept(&mut b.origin).await;
    b.dev.cmd("AT+CASTATE?", "\r\n+CASTATE: 0,1\r\n\r\nOK\r\n").await;

    b.dev
        .cmd("AT+CASEND=?", "\r\n+CASEND: (0-12),(1-1460),(100-10000)\r\n\r\nOK\r\n")
        .await;
    let req = b"GET /fw.bin HTTP/1.1\r\nHost: origin.example\r\nRange: bytes=0-2999\r\n\r\n";
    b.dev.cmd(&format!("AT+CASEND=0,{}", req.len()), "\r\n>").await;
    b.dev.send(req).await;
    b.dev.expect("\r\nOK\r\n").await;
    assert_eq!(show(&conn_read(&mut conn, req.len()).await), show(req));
    b.dev
        .cmd("AT+CAACK=0", format!("\r\n+CAACK: {},0\r\n\r\nOK\r\n", req.len()))
        .await;

    let body = pattern(3000, 11);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    b.dev.cmd("AT+CARECV?", "\r\n+CARECV: 0,3000\r\n\r\nOK\r\n").await;
    read_cmd(&mut b, 1000, &body[..1000]).await;
    read_cmd(&mut b, 1460, &body[1000..2460]).await;
    read_cmd(&mut b, 1460, &body[2460..]).await;
    b.dev.cmd("AT+CARECV=0,100", EMPTY).await;
    b.dev.cmd("AT+CARECV=0,0", "\r\nERROR\r\n").await;

    b.dev.cmd("AT+CACLOSE=0", "\r\nOK\r\n").await;
    let mut buf = [0u8; 8];
    assert_eq!(
        time::timeout(Duration::from_secs(1), conn.read(&mut buf))
            .await
            .unwrap(),
        Ok(0),
        "origin sees EOF"
    );
    b.dev.cmd("AT+CACLOSE=0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CASTATE?", "\r\n+CASTATE: 0,0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CARECV=0,100", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CASEND=0,5", "\r\nERROR\r\n").await;

    let s = b.modem.stats();
    assert_eq!((s.reads, s.bytes_read, s.discarded_bytes), (4, 3000, 0));
    b.dev.silent_for(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn data_ready_notice_once_until_read_empty() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(1400, 12);
    conn.write(&body[..400]).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    conn.write(&body[400..800]).await.unwrap();
    b.dev.silent_for(Duration::from_millis(500)).await;
    read_cmd(&mut b, 500, &body[..500]).await;
    b.dev.silent_for(Duration::from_millis(500)).await;
    read_cmd(&mut b, 500, &body[500..800]).await;
    conn.write(&body[800..]).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    read_cmd(&mut b, 1460, &body[800..]).await;
    b.dev.silent_for(Duration::from_millis(500)).await;
}

#[tokio::test(start_paused = true)]
async fn reads_are_clamped_to_max_read() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(4000, 13);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    read_cmd(&mut b, 4000, &body[..1460]).await;
    read_cmd(&mut b, 1461, &body[1460..2920]).await;
    read_cmd(&mut b, 1460, &body[2920..]).await;
}

#[tokio::test(start_paused = true)]
async fn peer_close_throws_unread_data_away() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    conn.write(&pattern(2000, 14)).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    time::sleep(Duration::from_secs(1)).await;
    conn.shutdown();
    b.dev.expect("\r\n+CASTATE: 0,0\r\n").await;
    assert_eq!(b.modem.stats().discarded_bytes, 2000);
    b.dev.cmd("AT+CARECV=0,1460", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CASTATE?", "\r\n+CASTATE: 0,0\r\n\r\nOK\r\n").await;
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Ok(0));
    // The same id opens again.
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n").await;
}

#[tokio::test(start_paused = true)]
async fn nat_reset_closes_and_throws_unread_data_away() {
    let nat = NatConfig {
        idle_timeout: Some(Duration::from_secs(5)),
        on_expiry: NatExpiry::Reset,
    };
    let mut b = ready(cfg(), nat).await;
    let mut conn = open(&mut b).await;
    let body = pattern(3000, 15);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    read_cmd(&mut b, 1000, &body[..1000]).await;
    b.dev.expect("\r\n+CASTATE: 0,0\r\n").await;
    assert_eq!(b.modem.stats().discarded_bytes, 2000);
    b.dev.cmd("AT+CARECV=0,1460", "\r\nERROR\r\n").await;
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Err(PipeError::Reset));
}

#[tokio::test(start_paused = true)]
async fn network_lost_then_reactivate() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    conn.write(&pattern(900, 16)).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    b.modem.network_lost();
    b.dev.expect("\r\n+CASTATE: 0,0\r\n\r\n+APP PDP: 0,DEACTIVE\r\n").await;
    assert_eq!(b.modem.stats().discarded_bytes, 900);
    b.dev.cmd("AT+CARECV=0,100", "\r\nERROR\r\n").await;
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,21\r\n\r\nOK\r\n").await;
    open(&mut b).await;
}

#[tokio::test(start_paused = true)]
async fn open_failures() {
    let mut b = ready(cfg(), no_nat()).await;
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,21\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CNACT=0,0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n").await;
    b.dev
        .cmd(
            &format!("AT+CAOPEN=0,0,\"TCP\",\"{HOST}\",81"),
            "\r\n+CAOPEN: 0,23\r\n\r\nOK\r\n",
        )
        .await;
    b.dev
        .cmd(&format!("AT+CAOPEN=0,0,\"UDP\",\"{HOST}\",{PORT}"), "\r\nERROR\r\n")
        .await;
    b.dev
        .cmd(&format!("AT+CAOPEN=13,0,\"TCP\",\"{HOST}\",{PORT}"), "\r\nERROR\r\n")
        .await;
    b.net.set_down(true);
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,21\r\n\r\nOK\r\n").await;
    b.net.set_down(false);
    b.dev.cmd(&caopen(), "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n").await;
    let mut conn = accept(&mut b.origin).await;
    b.dev.cmd(&caopen(), "\r\nERROR\r\n").await;
    // The SIM7000 form without the PDP index, on another id.
    b.dev
        .cmd(
            &format!("AT+CAOPEN=1,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\n+CAOPEN: 1,0\r\n\r\nOK\r\n",
        )
        .await;
    accept(&mut b.origin).await;
    b.dev
        .cmd("AT+CASTATE?", "\r\n+CASTATE: 0,1\r\n\r\n+CASTATE: 1,1\r\n\r\nOK\r\n")
        .await;
    // Deactivating the context closes the sockets.
    b.dev
        .cmd("AT+CNACT=0,0", "\r\nOK\r\n\r\n+APP PDP: 0,DEACTIVE\r\n")
        .await;
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Ok(0));
    b.dev.cmd("AT+CASTATE?", "\r\n+CASTATE: 0,0\r\n\r\nOK\r\n").await;
}

#[tokio::test(start_paused = true)]
async fn injected_lines_never_split_a_payload() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(2920, 17);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    // Inject while the `+CARECV: 1460,` header is on the wire, then while the payload is.
    for (i, into_reply) in [8, 500].into_iter().enumerate() {
        b.dev.send("AT+CARECV=0,1460\r").await;
        time::sleep(default_command_latency() + wire(into_reply)).await;
        b.modem.inject_urc("+CMTI: \"SM\",4");
        b.modem.inject_garbage(b"\r\n\x00");
        let mut want = carecv_reply(&body[i * 1460..(i + 1) * 1460]);
        let ok_at = want.len() - b"\r\nOK\r\n".len();
        want.splice(ok_at..ok_at, b"\r\n+CMTI: \"SM\",4\r\n\r\n\x00".iter().copied());
        b.dev.expect(want).await;
    }
}

#[tokio::test(start_paused = true)]
async fn modem_reset_mid_session() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    conn.write(&pattern(1200, 18)).await.unwrap();
    b.dev.expect("\r\n+CADATAIND: 0\r\n").await;
    b.modem.reset();
    b.dev.send("AT\r").await;
    b.dev.silent_for(Duration::from_millis(990)).await;
    b.dev.expect(boot_lines(Dialect::Sim7080)).await;
    let s = b.modem.stats();
    assert_eq!((s.resets, s.discarded_bytes), (1, 1200));
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Err(PipeError::Reset));
    b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
    b.dev
        .cmd("AT+CASTATE?", "AT+CASTATE?\r\r\n+CASTATE: 0,0\r\n\r\nOK\r\n")
        .await;
    b.dev
        .cmd(&caopen(), format!("{}\r\r\n+CAOPEN: 0,21\r\n\r\nOK\r\n", caopen()))
        .await;
}
