//! SIM7600 `CIP*` sockets, byte for byte as `docs/at-dialects.md` says.

mod modem_harness;

use std::time::Duration;

use modem_harness::*;
use sim::modem::{Dialect, default_command_latency};
use sim::net::{Connection, NatConfig, NatExpiry};
use sim::pipe::PipeError;
use sim::time;

fn cfg() -> sim::modem::ModemEmulatorConfig {
    config(Dialect::Sim7600)
}

async fn open(b: &mut Bench) -> Connection {
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.dev.cmd("AT+CIPRXGET=1", "\r\nOK\r\n").await;
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n",
        )
        .await;
    accept(&mut b.origin).await
}

async fn read_cmd(b: &mut Bench, n: usize, data: &[u8], rest: usize) {
    b.dev
        .cmd(&format!("AT+CIPRXGET=2,0,{n}"), ciprxget_reply(data, rest))
        .await;
}

const NO_DATA: &[u8] = b"\r\n+IP ERROR: No data\r\n\r\nERROR\r\n";

#[tokio::test(start_paused = true)]
async fn open_send_read_close() {
    let mut b = ready(cfg(), no_nat()).await;
    b.dev.cmd("AT+NETOPEN?", "\r\n+NETOPEN: 0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.dev
        .cmd(
            "AT+NETOPEN",
            "\r\n+IP ERROR: Network is already opened\r\n\r\nERROR\r\n",
        )
        .await;
    b.dev.cmd("AT+NETOPEN?", "\r\n+NETOPEN: 1\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CIPRXGET=1", "\r\nOK\r\n").await;

    // OK at once, +CIPOPEN after the connect (one round trip, 2 × 40 ms).
    b.dev
        .cmd(&format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"), "\r\nOK\r\n")
        .await;
    let t0 = time::now();
    b.dev.expect("\r\n+CIPOPEN: 0,0\r\n").await;
    let waited = time::now() - t0;
    assert!(
        waited >= Duration::from_millis(78) && waited < Duration::from_millis(82),
        "+CIPOPEN after {waited:?}"
    );
    let mut conn = accept(&mut b.origin).await;
    b.dev
        .cmd("AT+CIPCLOSE?", "\r\n+CIPCLOSE: 1,0,0,0,0,0,0,0,0,0\r\n\r\nOK\r\n")
        .await;

    // Send: prompt, exactly n bytes, OK, then the +CIPSEND notice.
    let req = b"GET /fw.bin HTTP/1.1\r\nHost: origin.example\r\nRange: bytes=0-2999\r\n\r\n";
    b.dev.cmd(&format!("AT+CIPSEND=0,{}", req.len()), "\r\n>").await;
    b.dev.send(req).await;
    b.dev
        .expect(format!("\r\nOK\r\n\r\n+CIPSEND: 0,{0},{0}\r\n", req.len()))
        .await;
    assert_eq!(show(&conn_read(&mut conn, req.len()).await), show(req));

    // Receive: one notice, then reads with <read>,<rest>.
    let body = pattern(3000, 1);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    b.dev
        .cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,3000\r\n\r\nOK\r\n")
        .await;
    read_cmd(&mut b, 1000, &body[..1000], 2000).await;
    read_cmd(&mut b, 1460, &body[1000..2460], 540).await;
    b.dev
        .cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,540\r\n\r\nOK\r\n")
        .await;
    read_cmd(&mut b, 1460, &body[2460..], 0).await;
    b.dev.cmd("AT+CIPRXGET=2,0,64", NO_DATA).await;
    b.dev.cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,0\r\n\r\nOK\r\n").await;

    // Close: OK, +CIPCLOSE notice, FIN to the origin; a second close is refused.
    b.dev.cmd("AT+CIPCLOSE=0", "\r\nOK\r\n\r\n+CIPCLOSE: 0,0\r\n").await;
    let mut buf = [0u8; 16];
    assert_eq!(
        time::timeout(Duration::from_secs(1), conn.read(&mut buf))
            .await
            .unwrap(),
        Ok(0),
        "origin sees EOF"
    );
    b.dev.cmd("AT+CIPCLOSE=0", "\r\n+CIPCLOSE: 0,4\r\n\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPSEND=0,5", "\r\n+CIPERROR: 4\r\n\r\nERROR\r\n").await;
    b.dev
        .cmd("AT+CIPCLOSE?", "\r\n+CIPCLOSE: 0,0,0,0,0,0,0,0,0,0\r\n\r\nOK\r\n")
        .await;

    let s = b.modem.stats();
    assert_eq!((s.reads, s.bytes_read, s.discarded_bytes), (4, 3000, 0));
    b.dev.silent_for(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn data_ready_notice_once_until_read_empty() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(1600, 2);
    conn.write(&body[..500]).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    time::sleep(Duration::from_millis(200)).await;
    conn.write(&body[500..1000]).await.unwrap();
    b.dev.silent_for(Duration::from_millis(500)).await;
    // A partial read does not re-arm it.
    read_cmd(&mut b, 600, &body[..600], 400).await;
    conn.write(&body[1000..1200]).await.unwrap();
    b.dev.silent_for(Duration::from_millis(500)).await;
    read_cmd(&mut b, 1460, &body[600..1200], 0).await;
    // Read empty: the next arrival is announced again, once.
    conn.write(&body[1200..1400]).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    conn.write(&body[1400..]).await.unwrap();
    b.dev.silent_for(Duration::from_millis(500)).await;
    read_cmd(&mut b, 1460, &body[1200..], 0).await;
    assert_eq!(b.modem.stats().bytes_read, 1600);
}

#[tokio::test(start_paused = true)]
async fn reads_are_clamped_to_max_read() {
    let mut c = cfg();
    c.max_read = 500;
    let mut b = ready(c, no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(2000, 3);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    read_cmd(&mut b, 1460, &body[..500], 1500).await;
    read_cmd(&mut b, 5000, &body[500..1000], 1000).await;
    // Without a length: up to max_read.
    b.dev
        .cmd("AT+CIPRXGET=2,0", ciprxget_reply(&body[1000..1500], 500))
        .await;
    read_cmd(&mut b, 10, &body[1500..1510], 490).await;
    b.dev.cmd("AT+CIPRXGET=2,0,0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPRXGET=3,0,10", "\r\nERROR\r\n").await;
}

#[tokio::test(start_paused = true)]
async fn nat_reset_closes_the_link_and_throws_unread_data_away() {
    let nat = NatConfig {
        idle_timeout: Some(Duration::from_secs(5)),
        on_expiry: NatExpiry::Reset,
    };
    let mut b = ready(cfg(), nat).await;
    let mut conn = open(&mut b).await;
    let body = pattern(10_000, 4);
    conn.write(&body).await.unwrap();
    let t_sent = time::now();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    read_cmd(&mut b, 1000, &body[..1000], 9000).await;
    // The connection idles on the network while the data sits in the modem.
    b.dev.expect("\r\n+IPCLOSE: 0,2\r\n").await;
    let after = time::now() - t_sent;
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_millis(5100),
        "closed {after:?} after the data"
    );
    assert_eq!(b.modem.stats().discarded_bytes, 9000);
    b.dev.cmd("AT+CIPRXGET=2,0,1460", NO_DATA).await;
    b.dev.cmd("AT+CIPRXGET=4,0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPSEND=0,4", "\r\n+CIPERROR: 4\r\n\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPCLOSE=0", "\r\n+CIPCLOSE: 0,4\r\n\r\nERROR\r\n").await;
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Err(PipeError::Reset));
    // The link can be opened again.
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n",
        )
        .await;
}

#[tokio::test(start_paused = true)]
async fn peer_fin_keeps_unread_data_readable() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    let body = pattern(5000, 5);
    conn.write(&body).await.unwrap();
    conn.shutdown();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n\r\n+IPCLOSE: 0,1\r\n").await;
    b.dev
        .cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,5000\r\n\r\nOK\r\n")
        .await;
    let mut at = 0;
    while at < body.len() {
        let n = 1460.min(body.len() - at);
        read_cmd(&mut b, 1460, &body[at..at + n], body.len() - at - n).await;
        at += n;
    }
    b.dev.cmd("AT+CIPRXGET=2,0,1460", NO_DATA).await;
    b.dev.cmd("AT+CIPRXGET=4,0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPCLOSE=0", "\r\n+CIPCLOSE: 0,4\r\n\r\nERROR\r\n").await;
    let s = b.modem.stats();
    assert_eq!((s.bytes_read, s.discarded_bytes), (5000, 0));
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Ok(0), "the modem closes its side too");
}

#[tokio::test(start_paused = true)]
async fn injected_lines_never_split_a_payload() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    let body = pattern(2920, 6);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    // The reply is a 28-byte header, 1460 payload bytes and OK: inject while the header is
    // on the wire, then while the payload is.
    for (i, into_reply) in [10, 700].into_iter().enumerate() {
        let data = &body[i * 1460..(i + 1) * 1460];
        b.dev.send("AT+CIPRXGET=2,0,1460\r").await;
        time::sleep(default_command_latency() + wire(into_reply)).await;
        b.modem.inject_urc("+CMTI: \"SM\",4");
        b.modem.inject_garbage(b"\xff\x00noise");
        b.modem.inject_urc("SMS DONE");
        let mut want = format!("\r\n+CIPRXGET: 2,0,1460,{}\r\n", 1460 - i * 1460).into_bytes();
        want.extend_from_slice(data);
        want.extend_from_slice(b"\r\n+CMTI: \"SM\",4\r\n\xff\x00noise\r\nSMS DONE\r\n\r\nOK\r\n");
        b.dev.expect(want).await;
    }
}

#[tokio::test(start_paused = true)]
async fn back_to_back_reads_cost_latency_plus_wire_time() {
    let mut b = ready(cfg(), no_nat()).await;
    let conn = open(&mut b).await;
    const N: usize = 40;
    let body = pattern(64 * N, 7);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    let t0 = time::now();
    let mut wire_bytes = 0;
    for i in 0..N {
        let cmd = "AT+CIPRXGET=2,0,64\r";
        let reply = ciprxget_reply(&body[i * 64..(i + 1) * 64], 64 * (N - i - 1));
        b.dev.send(cmd).await;
        b.dev.expect(&reply).await;
        wire_bytes += cmd.len() + reply.len();
    }
    let took = time::now() - t0;
    let want = default_command_latency() * N as u32 + wire(wire_bytes);
    assert!(
        took.abs_diff(want) < Duration::from_micros(5) * N as u32,
        "{N} reads took {took:?}, want {want:?}"
    );
    // Cross-check with the seed: a 64-byte read cycle with a 6-digit <rest> plus 0.803 ms
    // of flash work is the field's 29.01 ms.
    let cycle = default_command_latency() + wire(19 + 98) + Duration::from_micros(803);
    assert!(
        cycle.abs_diff(Duration::from_micros(29_012)) < Duration::from_micros(2),
        "seed cycle {cycle:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn modem_reset_mid_session() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    let body = pattern(2000, 8);
    conn.write(&body).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    read_cmd(&mut b, 500, &body[..500], 1500).await;
    b.modem.inject_urc("+CMTI: \"SM\",1");
    b.modem.reset();
    let t0 = time::now();
    assert_eq!(b.modem.stats().discarded_bytes, 1500);
    assert_eq!(b.modem.stats().resets, 1);
    // Silent for boot_time: no echo, no answer, queued notices forgotten.
    b.dev.send("AT\r").await;
    b.dev.silent_for(Duration::from_millis(990)).await;
    b.dev.expect(boot_lines(Dialect::Sim7600)).await;
    let booted = time::now() - t0;
    assert!(
        booted.abs_diff(Duration::from_secs(1) + wire(boot_lines(Dialect::Sim7600).len())) < Duration::from_micros(5)
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        conn.read(&mut buf).await,
        Err(PipeError::Reset),
        "the origin's connection is gone"
    );
    // Everything forgotten: echo on, PDP down, link closed, manual receive off.
    b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
    b.dev.cmd("ATE0", "ATE0\r\r\nOK\r\n").await;
    b.dev.cmd("AT+NETOPEN?", "\r\n+NETOPEN: 0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CIPRXGET=4,0", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\n+CIPOPEN: 0,4\r\n\r\nERROR\r\n",
        )
        .await;
    b.dev.cmd("AT+CIPRXGET=1", "\r\nOK\r\n").await;
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n",
        )
        .await;
    let conn = accept(&mut b.origin).await;
    conn.write(b"again").await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    read_cmd(&mut b, 64, b"again", 0).await;
}

#[tokio::test(start_paused = true)]
async fn network_lost_closes_everything() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    conn.write(&pattern(700, 9)).await.unwrap();
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    b.modem.network_lost();
    b.dev.expect("\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n").await;
    assert_eq!(b.modem.stats().discarded_bytes, 700);
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Err(PipeError::Reset));
    b.dev.cmd("AT+NETOPEN?", "\r\n+NETOPEN: 0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CIPSEND=0,10", "\r\n+CIPERROR: 4\r\n\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPRXGET=4,0", "\r\nERROR\r\n").await;
    b.modem.network_lost();
    b.dev.silent_for(Duration::from_secs(1)).await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n",
        )
        .await;
    accept(&mut b.origin).await;
}

#[tokio::test(start_paused = true)]
async fn open_failures() {
    let mut b = ready(cfg(), no_nat()).await;
    let open_cmd = |port: u16| format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",{port}");
    // Before NETOPEN: network not opened.
    b.dev.cmd(&open_cmd(PORT), "\r\n+CIPOPEN: 0,2\r\n\r\nERROR\r\n").await;
    b.dev.cmd("AT+NETCLOSE", "\r\n+NETCLOSE: 2\r\n\r\nERROR\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.dev.cmd("AT+CIPRXGET=1", "\r\nOK\r\n").await;
    // Wrong parameters.
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"UDP\",\"{HOST}\",{PORT}"),
            "\r\n+CIPOPEN: 0,3\r\n\r\nERROR\r\n",
        )
        .await;
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=0,\"TCP\",\"{HOST}\",70000"),
            "\r\n+CIPOPEN: 0,3\r\n\r\nERROR\r\n",
        )
        .await;
    b.dev
        .cmd(&format!("AT+CIPOPEN=10,\"TCP\",\"{HOST}\",{PORT}"), "\r\nERROR\r\n")
        .await;
    // Nobody listens: OK, then the failure after the round trip.
    b.dev.cmd(&open_cmd(81), "\r\nOK\r\n\r\n+CIPOPEN: 0,1\r\n").await;
    // Packet network down.
    b.net.set_down(true);
    b.dev.cmd(&open_cmd(PORT), "\r\nOK\r\n\r\n+CIPOPEN: 0,1\r\n").await;
    b.net.set_down(false);
    b.dev.cmd(&open_cmd(PORT), "\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n").await;
    let mut conn = accept(&mut b.origin).await;
    // Link busy.
    b.dev.cmd(&open_cmd(PORT), "\r\n+CIPOPEN: 0,4\r\n\r\nERROR\r\n").await;
    // Another link works alongside.
    b.dev
        .cmd(
            &format!("AT+CIPOPEN=3,\"TCP\",\"{HOST}\",{PORT}"),
            "\r\nOK\r\n\r\n+CIPOPEN: 3,0\r\n",
        )
        .await;
    let _second = accept(&mut b.origin).await;
    b.dev
        .cmd("AT+CIPCLOSE?", "\r\n+CIPCLOSE: 1,0,0,1,0,0,0,0,0,0\r\n\r\nOK\r\n")
        .await;
    // NETCLOSE closes all links.
    b.dev.cmd("AT+NETCLOSE", "\r\nOK\r\n\r\n+NETCLOSE: 0\r\n").await;
    let mut buf = [0u8; 8];
    assert_eq!(conn.read(&mut buf).await, Ok(0));
    b.dev
        .cmd("AT+CIPCLOSE?", "\r\n+CIPCLOSE: 0,0,0,0,0,0,0,0,0,0\r\n\r\nOK\r\n")
        .await;
}

#[tokio::test(start_paused = true)]
async fn send_payload_is_binary_and_exact() {
    let mut b = ready(cfg(), no_nat()).await;
    let mut conn = open(&mut b).await;
    let payload = pattern(1500, 10);
    b.dev.cmd("AT+CIPSEND=0,1500", "\r\n>").await;
    // In pieces, with what looks like commands inside.
    b.dev.send(&payload[..700]).await;
    b.dev.send(b"AT\r").await;
    b.dev.send(&payload[703..]).await;
    b.dev.expect("\r\nOK\r\n\r\n+CIPSEND: 0,1500,1500\r\n").await;
    let mut want = payload.clone();
    want[700..703].copy_from_slice(b"AT\r");
    assert_eq!(show(&conn_read(&mut conn, 1500).await), show(&want));
    b.dev.cmd("AT+CIPSEND=0,1501", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+CIPSEND=0,0", "\r\nERROR\r\n").await;
}

/// Reads one `CIPRXGET=2` reply whose numbers the test does not know in advance, skipping
/// data-ready notices. Returns (data, rest).
async fn read_any(b: &mut Bench, n: usize) -> (Vec<u8>, usize) {
    b.dev.send(format!("AT+CIPRXGET=2,0,{n}\r")).await;
    loop {
        let mut head = b.dev.read_n(2).await;
        assert_eq!(show(&head), "\\r\\n");
        while !head.ends_with(b"\r\n") || head.len() < 4 {
            head.extend(b.dev.read_n(1).await);
        }
        let text = String::from_utf8(head[2..head.len() - 2].to_vec()).unwrap();
        if text == "+CIPRXGET: 1,0" {
            continue;
        }
        let nums: Vec<usize> = text
            .strip_prefix("+CIPRXGET: 2,0,")
            .unwrap_or_else(|| panic!("{text}"))
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let data = b.dev.read_n(nums[0]).await;
        b.dev.expect("\r\nOK\r\n").await;
        return (data, nums[1]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_stalls_the_origin_and_loses_nothing() {
    let mut c = cfg();
    c.rx_buffer = 4096;
    let nat = NatConfig {
        idle_timeout: Some(Duration::from_secs(5)),
        on_expiry: NatExpiry::Reset,
    };
    let mut b = ready(c, nat).await;
    let conn = open(&mut b).await;
    let body = pattern(30_000, 19);
    let sent = body.clone();
    // More than fits: the write is still stalled when the NAT resets the link.
    let origin = tokio::spawn(async move { conn.write(&sent).await });
    b.dev.expect("\r\n+CIPRXGET: 1,0\r\n").await;
    time::sleep(Duration::from_secs(1)).await;
    b.dev
        .cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,4096\r\n\r\nOK\r\n")
        .await;
    let mut got = Vec::new();
    while got.len() < 20_000 {
        let (data, rest) = read_any(&mut b, 1460).await;
        assert!(
            rest + data.len() <= 4096,
            "more than the buffer held: {} + {rest}",
            data.len()
        );
        got.extend(data);
    }
    // Stop reading with a full buffer: the link idles, the NAT resets it, the modem notices
    // although the buffer is full and throws away what it held.
    time::sleep(Duration::from_secs(1)).await;
    b.dev
        .cmd("AT+CIPRXGET=4,0", "\r\n+CIPRXGET: 4,0,4096\r\n\r\nOK\r\n")
        .await;
    b.dev.expect("\r\n+IPCLOSE: 0,2\r\n").await;
    assert_eq!(show(&got), show(&body[..got.len()]));
    assert_eq!(b.modem.stats().discarded_bytes, 4096);
    assert_eq!(b.modem.stats().bytes_read, got.len() as u64);
    assert_eq!(origin.await.unwrap(), Err(PipeError::Reset));
}
