//! Both emulators: echo, boot, bring-up answers, command framing and pacing.

mod modem_harness;

use std::time::Duration;

use modem_harness::*;
use sim::modem::{Dialect, default_command_latency};
use sim::time;

const DIALECTS: [Dialect; 2] = [Dialect::Sim7600, Dialect::Sim7080];

#[tokio::test(start_paused = true)]
async fn echo_is_on_at_power_on_until_ate0() {
    for dialect in DIALECTS {
        let mut b = bench(config(dialect), no_nat());
        b.dev.expect(boot_lines(dialect)).await;
        b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
        b.dev.cmd("AT+CSQ", "AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n").await;
        b.dev.cmd("ATE0", "ATE0\r\r\nOK\r\n").await;
        b.dev.cmd("AT", "\r\nOK\r\n").await;
        b.dev.cmd("ATE1", "\r\nOK\r\n").await;
        b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
    }
}

#[tokio::test(start_paused = true)]
async fn sim7600_boot_is_silent_then_rdy_then_late_lines() {
    let mut cfg = config(Dialect::Sim7600);
    cfg.boot_time = Duration::from_secs(3);
    cfg.late_urc_delay = Duration::from_secs(2);
    let mut b = bench(cfg, no_nat());
    let t0 = time::now();
    // Commands during boot get no reply at all, not even an echo.
    for _ in 0..5 {
        b.dev.send("AT\r").await;
        b.dev.silent_for(Duration::from_millis(500)).await;
    }
    let early = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n";
    b.dev.expect(early).await;
    let rdy_at = time::now() - t0;
    let want = Duration::from_secs(3) + wire(early.len());
    assert!(
        rdy_at.abs_diff(want) < Duration::from_micros(5),
        "RDY complete at {rdy_at:?}, want {want:?}"
    );
    b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
    let late = b"\r\nSMS DONE\r\n\r\nPB DONE\r\n";
    b.dev.expect(late).await;
    let late_at = time::now() - t0;
    let want = Duration::from_secs(5) + wire(late.len());
    assert!(
        late_at.abs_diff(want) < Duration::from_micros(5),
        "late lines complete at {late_at:?}, want {want:?}"
    );
    b.dev.silent_for(Duration::from_secs(30)).await;
    assert_eq!(b.modem.stats().urcs_sent, 4);
    assert_eq!(b.modem.stats().commands, 1, "boot-time commands are not taken up");
}

#[tokio::test(start_paused = true)]
async fn sim7080_boot_lines() {
    let mut cfg = config(Dialect::Sim7080);
    cfg.boot_time = Duration::from_secs(2);
    let mut b = bench(cfg, no_nat());
    b.dev.send("AT\r").await;
    b.dev.silent_for(Duration::from_millis(1990)).await;
    b.dev
        .expect(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n")
        .await;
    b.dev.silent_for(Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn bring_up_answers() {
    for (dialect, model) in [(Dialect::Sim7600, "SIMCOM_SIM7600G-H"), (Dialect::Sim7080, "SIM7080G")] {
        let mut cfg = config(dialect);
        cfg.operator = "Skinny".into();
        cfg.rssi = 17;
        let mut b = ready(cfg, no_nat()).await;
        b.dev.cmd("AT+CMEE=2", "\r\nOK\r\n").await;
        b.dev.cmd("AT+CGMM", format!("\r\n{model}\r\n\r\nOK\r\n")).await;
        b.dev.cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n").await;
        b.dev.cmd("AT+CSQ", "\r\n+CSQ: 17,99\r\n\r\nOK\r\n").await;
        b.dev.cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n").await;
        b.dev.cmd("AT+COPS?", "\r\n+COPS: 0,0,\"Skinny\",7\r\n\r\nOK\r\n").await;
        b.dev.cmd("AT+CGDCONT=1,\"IP\",\"m2m.example\"", "\r\nOK\r\n").await;
        b.dev
            .cmd("AT+CGDCONT?", "\r\n+CGDCONT: 1,\"IP\",\"m2m.example\"\r\n\r\nOK\r\n")
            .await;
        b.dev.cmd("at+csq", "\r\n+CSQ: 17,99\r\n\r\nOK\r\n").await;
        // Unknown or malformed commands, and the other dialect's commands.
        b.dev.cmd("AT+NOSUCH", "\r\nERROR\r\n").await;
        b.dev.cmd("ATI", "\r\nERROR\r\n").await;
        b.dev.cmd("AT+CMEE=7", "\r\nERROR\r\n").await;
        let other = if dialect == Dialect::Sim7600 {
            "AT+CNACT=0,1"
        } else {
            "AT+NETOPEN"
        };
        b.dev.cmd(other, "\r\nERROR\r\n").await;
        // Noise before a command and a stray line feed are skipped.
        b.dev.cmd("\n\u{1}xyAT", "\r\nOK\r\n").await;
        b.dev.send("junk noise\r").await;
        b.dev.cmd("\nAT", "\r\nOK\r\n").await;
        assert_eq!(
            b.modem.stats().commands,
            16,
            "ATE0 + 15 commands; the junk line is not one"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn commands_written_in_pieces_are_accepted() {
    let mut b = ready(config(Dialect::Sim7600), no_nat()).await;
    b.dev.send("AT+C").await;
    b.dev.silent_for(Duration::from_millis(50)).await;
    b.dev.send("S").await;
    b.dev.silent_for(Duration::from_millis(50)).await;
    let t0 = time::now();
    b.dev.send("Q\r").await;
    let reply = b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n";
    b.dev.expect(reply).await;
    let took = time::now() - t0;
    let want = wire(2) + default_command_latency() + wire(reply.len());
    assert!(
        took.abs_diff(want) < Duration::from_micros(5),
        "took {took:?}, want {want:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn commands_arriving_together_are_answered_one_at_a_time() {
    for dialect in DIALECTS {
        let mut b = ready(config(dialect), no_nat()).await;
        let latency = default_command_latency();
        let t0 = time::now();
        let batch = "AT+CSQ\rAT+CPIN?\rAT\r";
        b.dev.send(batch).await;
        let r1 = b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n";
        let r2 = b"\r\n+CPIN: READY\r\n\r\nOK\r\n";
        let r3 = b"\r\nOK\r\n";
        b.dev.expect(r1).await;
        let t1 = time::now();
        b.dev.expect(r2).await;
        let t2 = time::now();
        b.dev.expect(r3).await;
        let t3 = time::now();
        let tol = Duration::from_micros(5);
        // The three commands arrive in one write (the modem sees them when it ends).
        let want1 = wire(batch.len()) + latency + wire(r1.len());
        assert!(
            (t1 - t0).abs_diff(want1) < tol,
            "first answer after {:?}, want {want1:?}",
            t1 - t0
        );
        // Each later command waits for the previous answer, then costs the latency.
        let want2 = latency + wire(r2.len());
        assert!(
            (t2 - t1).abs_diff(want2) < tol,
            "second answer {:?} after the first, want {want2:?}",
            t2 - t1
        );
        let want3 = latency + wire(r3.len());
        assert!(
            (t3 - t2).abs_diff(want3) < tol,
            "third answer {:?} after the second, want {want3:?}",
            t3 - t2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn injected_lines_and_noise_go_out_when_idle() {
    for dialect in DIALECTS {
        let mut b = ready(config(dialect), no_nat()).await;
        b.modem.inject_urc("+CMTI: \"SM\",4");
        b.modem.inject_garbage(b"\x00\xfe~");
        b.dev.expect(b"\r\n+CMTI: \"SM\",4\r\n\x00\xfe~").await;
        // Between the lines of a reply: the info line, then the notice, then OK.
        b.dev.send("AT+CSQ\r").await;
        time::sleep(default_command_latency() + wire(8) + wire(4)).await;
        b.modem.inject_urc("+CGEV: NW PDN DEACT 1");
        b.dev
            .expect(b"\r\n+CSQ: 20,99\r\n\r\n+CGEV: NW PDN DEACT 1\r\n\r\nOK\r\n")
            .await;
        assert_eq!(b.modem.stats().urcs_sent, 4 + 2);
    }
}

#[tokio::test(start_paused = true)]
async fn reboot_by_command() {
    let mut b = ready(config(Dialect::Sim7600), no_nat()).await;
    b.dev.cmd("AT+CRESET", "\r\nOK\r\n").await;
    b.dev.send("AT\r").await;
    b.dev.silent_for(Duration::from_millis(900)).await;
    b.dev.expect(boot_lines(Dialect::Sim7600)).await;
    b.dev.cmd("AT", "AT\r\r\nOK\r\n").await;
    assert_eq!(b.modem.stats().resets, 1);

    let mut b = ready(config(Dialect::Sim7080), no_nat()).await;
    b.dev.cmd("AT+CFUN=1,1", "\r\nOK\r\n").await;
    b.dev.silent_for(Duration::from_millis(900)).await;
    b.dev.expect(boot_lines(Dialect::Sim7080)).await;
    assert_eq!(b.modem.stats().resets, 1);
}
