//! The device's driver against the emulators playing what real modems do that the contract
//! does not promise against: notices inside a reply, restarts without `RDY`, registration on
//! 2G/3G only, a connect answered after a long stall, plain `ERROR` where `+CME ERROR` was
//! asked for. Each quirk is played at every point of an answer the driver can be waiting at,
//! with the UART handing the driver 1, 7 and 64 bytes per read, with echo off and with a
//! modem that keeps echo on.

mod modem_harness;

use std::time::Duration;

use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig, ModemError, ModemInfo};
use device_fw::socket::{Socket, SocketError};
use modem_harness::*;
use sim::modem::{BootOutput, Dialect, ModemEmulatorConfig, RegisteredOn, ReplyPoint};
use sim::net::{Connection, Listener};
use sim::time::{self, BenchClock};

type Driver = Modem<ChunkedUart, BenchClock>;

const DIALECTS: [Dialect; 2] = [Dialect::Sim7600, Dialect::Sim7080];
const READ_SIZES: [usize; 3] = [1, 7, 64];
const POINTS: [ReplyPoint; 4] = [
    ReplyPoint::BeforeEcho,
    ReplyPoint::AfterEcho,
    ReplyPoint::BeforeFinal,
    ReplyPoint::AfterFinal,
];
/// Time-zone and network notices from the logs, and one the driver has never heard of.
const NOTICES: [&str; 4] = [
    "DST: 0",
    "*PSUTTZ: 2026,12,7,6,41,32,\"+04\",0",
    "+CTZV: +04,0",
    "+CIEV: 10,\"26201\",\"1NCE\"",
];

/// Every combination of the emulator's echo and the driver's read size.
fn variants() -> impl Iterator<Item = (bool, usize)> {
    [false, true]
        .into_iter()
        .flat_map(|echo| READ_SIZES.into_iter().map(move |n| (echo, n)))
}

fn emulator(dialect: Dialect, keeps_echo: bool) -> ModemEmulatorConfig {
    let mut cfg = config(dialect);
    cfg.keeps_echo = keeps_echo;
    cfg
}

fn driver(dialect: Dialect, uart: sim::uart::UartEnd, max_read: usize) -> Driver {
    let d = match dialect {
        Dialect::Sim7600 => DeviceDialect::Sim7600,
        Dialect::Sim7080 => DeviceDialect::Sim7080,
    };
    let mut cfg = ModemConfig::new(d, "m2m.example").unwrap();
    cfg.baud = BAUD;
    Modem::new(ChunkedUart { uart, max_read }, BenchClock, cfg)
}

fn model(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sim7600 => "SIMCOM_SIM7600G-H",
        Dialect::Sim7080 => "SIM7080G",
    }
}

async fn bring_up(m: &mut Driver, case: &str) -> ModemInfo {
    time::timeout(Duration::from_secs(600), m.bring_up())
        .await
        .unwrap_or_else(|_| panic!("{case}: bring-up hung"))
        .unwrap_or_else(|e| panic!("{case}: bring-up failed: {e}"))
}

/// Reads until `want` bytes came, failing on anything else.
async fn read_exactly(m: &mut Driver, want: usize, case: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    while got.len() < want {
        match m.read(&mut buf).await {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!("{case}: read gave {other:?} after {} of {want} bytes", got.len()),
        }
    }
    got
}

/// Connects, has the origin send `data` and reads it back byte-exact.
async fn session(origin: &mut Listener, m: &mut Driver, data: &[u8], case: &str) -> Connection {
    m.connect(HOST, PORT)
        .await
        .unwrap_or_else(|e| panic!("{case}: connect failed: {e}"));
    let conn = accept(origin).await;
    conn.write(data).await.unwrap();
    let got = read_exactly(m, data.len(), case).await;
    assert!(got == data, "{case}: payload differs");
    conn
}

/// A notice between a command and its answer is never the answer: the model (a bare line)
/// and every prefixed answer of bring-up come through whatever notice lands wherever.
#[tokio::test(start_paused = true)]
async fn notices_inside_a_reply_are_not_the_answer() {
    const COMMANDS: [&str; 6] = ["AT+CGMM", "AT+CPIN?", "AT+CEREG?", "AT+CSQ", "AT+COPS?", "AT+CMEE=2"];
    let mut cases = 0;
    for dialect in DIALECTS {
        for (echo, read_size) in variants() {
            for (i, point) in POINTS.into_iter().enumerate() {
                let case = format!("{dialect:?} echo {echo} read {read_size} {point:?}");
                let mut cfg = emulator(dialect, echo);
                cfg.rssi = 17;
                let b = bench(cfg, no_nat());
                // The model gets all four notices at this point; the other answers one each.
                for notice in NOTICES {
                    b.modem.inject_in_reply("AT+CGMM", point, notice);
                }
                for (k, cmd) in COMMANDS[1..].iter().enumerate() {
                    b.modem.inject_in_reply(cmd, point, NOTICES[(i + k) % NOTICES.len()]);
                }
                let mut m = driver(dialect, b.dev.uart, read_size);
                let info = bring_up(&mut m, &case).await;
                assert_eq!(info.model, model(dialect), "{case}");
                assert_eq!((info.rssi, info.operator.as_str()), (17, "otactl sim"), "{case}");
                assert_eq!(m.stats().restarts_seen, 1, "{case}: only the power-on boot");
                assert!(m.stats().urcs >= 9, "{case}: the notices were seen as notices");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 4);
}

/// Where a restart can hit: inside the answer to a read (at each point), or while the
/// driver waits for a data notice with nothing in flight.
#[derive(Debug, Clone, Copy)]
enum RestartAt {
    Reply(ReplyPoint),
    Idle,
}

const RESTARTS: [RestartAt; 5] = [
    RestartAt::Reply(ReplyPoint::BeforeEcho),
    RestartAt::Reply(ReplyPoint::AfterEcho),
    RestartAt::Reply(ReplyPoint::BeforeFinal),
    RestartAt::Reply(ReplyPoint::AfterFinal),
    RestartAt::Idle,
];

/// A restart that prints no `RDY` (only its other boot lines, or only noise) mid-session is
/// noticed within a few reads, not one 20 s timeout after another: the driver says
/// `ModemLost`, stops claiming a connection, and recovers as after `RDY`.
///
/// Not played: a SIM7600 that keeps echo on and whose boot lines are lost to noise. Nothing it
/// says then differs from a quiet connection (a read of a link it no longer has answers
/// `+IP ERROR: No data`, as an empty one does); that restart shows at the next connect.
#[tokio::test(start_paused = true)]
async fn a_restart_without_rdy_is_noticed_and_recovered() {
    let noise = BootOutput::Garbage(b"\x00\xf8\xff~\x80\r\n\xfe".to_vec());
    let mut cases = 0;
    for dialect in DIALECTS {
        for output in [BootOutput::WithoutRdy, noise.clone()] {
            for (echo, read_size) in variants() {
                if echo && dialect == Dialect::Sim7600 && output != BootOutput::WithoutRdy {
                    continue;
                }
                for at in RESTARTS {
                    let case = format!("{dialect:?} {output:?} echo {echo} read {read_size} {at:?}");
                    restart_case(dialect, output.clone(), echo, read_size, at, &case).await;
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 2 * 2 * 6 * 5 - 3 * 5);
}

async fn restart_case(dialect: Dialect, output: BootOutput, echo: bool, read_size: usize, at: RestartAt, case: &str) {
    let mut b = bench(emulator(dialect, echo), no_nat());
    let mut m = driver(dialect, b.dev.uart, read_size);
    bring_up(&mut m, case).await;
    let first = pattern(3000, 1);
    let conn = session(&mut b.origin, &mut m, &first, case).await;
    match at {
        RestartAt::Reply(point) => b.modem.restart_in_reply(read_command(dialect), point, output),
        RestartAt::Idle => b.modem.reset_printing(output),
    }
    // More data makes the driver ask (for `Idle` the modem is restarting already, and the
    // connection may be gone).
    let _ = conn.write(b"more").await;
    let mut outcomes = Vec::new();
    let mut buf = vec![0u8; 2048];
    let t0 = time::now();
    loop {
        let r = m.read(&mut buf).await;
        outcomes.push(r);
        match r {
            Err(SocketError::ModemLost) => break,
            // The answer that carried the data went out before the restart.
            Ok(_) | Err(SocketError::Timeout) if outcomes.len() < 4 => {}
            _ => panic!("{case}: reads gave {outcomes:?}"),
        }
    }
    let timeouts = outcomes.iter().filter(|r| **r == Err(SocketError::Timeout)).count();
    assert!(timeouts <= 1, "{case}: {outcomes:?}");
    assert!(time::now() - t0 <= Duration::from_secs(30), "{case}: noticed late");
    assert!(!m.is_connected(), "{case}");
    assert!(m.stats().restarts_seen >= 1, "{case}");
    assert_eq!(b.modem.stats().resets, 1, "{case}");
    m.recover().await.unwrap_or_else(|e| panic!("{case}: recover: {e}"));
    let again = pattern(2000, 2);
    session(&mut b.origin, &mut m, &again, case).await;
}

/// A module that fell back from LTE registers on 2G/3G; bring-up takes that at the first
/// poll rather than waiting for `+CEREG` until its deadline.
#[tokio::test(start_paused = true)]
async fn registration_on_2g_3g_is_accepted() {
    let mut cases = 0;
    for dialect in DIALECTS {
        for radio in [RegisteredOn::Packet2g3g, RegisteredOn::CircuitOnly] {
            for (echo, read_size) in variants() {
                let case = format!("{dialect:?} {radio:?} echo {echo} read {read_size}");
                let mut cfg = emulator(dialect, echo);
                cfg.registered_on = radio;
                let mut b = bench(cfg, no_nat());
                let mut m = driver(dialect, b.dev.uart, read_size);
                let t0 = time::now();
                bring_up(&mut m, &case).await;
                let took = time::now() - t0;
                assert!(took < Duration::from_secs(5), "{case}: bring-up took {took:?}");
                session(&mut b.origin, &mut m, b"HTTP/1.1 206 Partial Content\r\n", &case).await;
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 2 * 6);
}

/// Still searching everywhere: the deadline holds and the error says so.
#[tokio::test(start_paused = true)]
async fn no_registration_anywhere_ends_at_the_deadline() {
    for dialect in DIALECTS {
        let b = bench(config(dialect), no_nat());
        b.modem.deregister(2);
        let mut m = driver(dialect, b.dev.uart, 64);
        let t0 = time::now();
        let e = m.bring_up().await.unwrap_err();
        assert_eq!(e, ModemError::NotRegistered { stat: 2, secs: 120 }, "{dialect:?}");
        let took = time::now() - t0;
        assert!(
            took >= Duration::from_secs(120) && took < Duration::from_secs(125),
            "{took:?}"
        );
    }
}

/// SIM7080: a connect answered only after 75 s (seen in the logs: `+CAOPEN: 0,2`). At the
/// 60 s deadline the driver sends the close, which the modem takes up only after the connect:
/// the late result and its `OK` come first and are not taken for the close's answer. A late
/// failure is reported with the modem's code, a late success was closed (`Timeout`); the
/// modem is not lost and the next connect works.
#[tokio::test(start_paused = true)]
async fn a_connect_answered_late_is_closed_and_its_code_kept() {
    let mut cases = 0;
    for late in [Some(2u8), None] {
        for (echo, read_size) in variants() {
            for point in POINTS {
                let case = format!("late {late:?} echo {echo} read {read_size} notice {point:?}");
                let mut b = bench(emulator(Dialect::Sim7080, echo), no_nat());
                let mut m = driver(Dialect::Sim7080, b.dev.uart, read_size);
                bring_up(&mut m, &case).await;
                b.modem.stall_next_connect(Duration::from_secs(75), late);
                b.modem.inject_in_reply("AT+CAOPEN", point, "+CTZV: +04,0");
                b.modem.inject_in_reply("AT+CACLOSE", point, "DST: 0");
                let t0 = time::now();
                let got = m.connect(HOST, PORT).await;
                let took = time::now() - t0;
                let want = match late {
                    Some(code) => Err(SocketError::ConnectFailed(code.into())),
                    None => Err(SocketError::Timeout),
                };
                assert_eq!(got, want, "{case}");
                assert!(
                    took >= Duration::from_secs(75) && took < Duration::from_secs(80),
                    "{case}: took {took:?}"
                );
                if late.is_none() {
                    // Connected late, then closed by the driver: the origin sees it end.
                    let mut conn = accept(&mut b.origin).await;
                    let mut buf = [0u8; 8];
                    let end = time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
                    assert_eq!(end, Ok(Ok(0)), "{case}: the late connection was not closed");
                }
                assert_eq!(b.modem.stats().resets, 0, "{case}");
                session(&mut b.origin, &mut m, b"after the stall", &case).await;
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 4);
}

/// SIM7600: the connect's `OK` comes at once and `+CIPOPEN` not within the deadline. The
/// attempt is closed at 60 s; a failure that comes out while it is being closed is reported
/// with the modem's code. The modem is not lost and the next connect works.
#[tokio::test(start_paused = true)]
async fn a_sim7600_connect_that_stalls_is_closed() {
    let just_late = Duration::from_millis(60_010);
    let stalls = [
        (Duration::from_secs(75), Some(1u8), Err(SocketError::Timeout)),
        (Duration::from_secs(75), None, Err(SocketError::Timeout)),
        (just_late, Some(1), Err(SocketError::ConnectFailed(1))),
    ];
    let mut cases = 0;
    for (delay, late, want) in stalls {
        for (echo, read_size) in variants() {
            for point in POINTS {
                let case = format!("{delay:?} {late:?} echo {echo} read {read_size} notice {point:?}");
                let mut b = bench(emulator(Dialect::Sim7600, echo), no_nat());
                let mut m = driver(Dialect::Sim7600, b.dev.uart, read_size);
                bring_up(&mut m, &case).await;
                b.modem.stall_next_connect(delay, late);
                b.modem.inject_in_reply("AT+CIPCLOSE", point, "+CTZV: +04,0");
                let t0 = time::now();
                assert_eq!(m.connect(HOST, PORT).await, want, "{case}");
                let took = time::now() - t0;
                assert!(
                    took >= Duration::from_secs(60) && took < Duration::from_secs(62),
                    "{case}: {took:?}"
                );
                // Past the stall: nothing the attempt left behind gets in the way.
                time::sleep(Duration::from_secs(20)).await;
                session(&mut b.origin, &mut m, b"after the stall", &case).await;
                assert_eq!(b.modem.stats().resets, 0, "{case}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * 6 * 4);
}

/// A boot notice mid-session with no restart behind it (a SIM refresh also says
/// `+CPIN: READY`) is taken for one: a bring-up more than needed, and no worse. Bring-up
/// closes the link the modem still holds, so the next connect does not find it busy.
#[tokio::test(start_paused = true)]
async fn a_boot_notice_without_a_restart_costs_a_bring_up_not_the_link() {
    let mut cases = 0;
    for dialect in DIALECTS {
        for (echo, read_size) in variants() {
            for point in POINTS {
                let case = format!("{dialect:?} echo {echo} read {read_size} {point:?}");
                let mut b = bench(emulator(dialect, echo), no_nat());
                let mut m = driver(dialect, b.dev.uart, read_size);
                bring_up(&mut m, &case).await;
                let conn = session(&mut b.origin, &mut m, &pattern(500, 3), &case).await;
                b.modem.inject_in_reply(read_command(dialect), point, "+CPIN: READY");
                conn.write(b"more").await.unwrap();
                let mut buf = [0u8; 64];
                let mut outcomes = Vec::new();
                while outcomes.last() != Some(&Err(SocketError::ModemLost)) {
                    assert!(outcomes.len() < 3, "{case}: {outcomes:?}");
                    outcomes.push(m.read(&mut buf).await);
                }
                assert!(!m.is_connected(), "{case}");
                m.recover().await.unwrap_or_else(|e| panic!("{case}: recover: {e}"));
                session(&mut b.origin, &mut m, b"still works", &case).await;
                assert_eq!(b.modem.stats().resets, 0, "{case}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 4);
}

fn read_command(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sim7600 => "AT+CIPRXGET=2",
        Dialect::Sim7080 => "AT+CARECV",
    }
}

/// `AT+CPIN?` answered with a plain `ERROR` (firmware where it ignores `AT+CMEE`): not
/// retried as if the SIM were busy, but the end of bring-up, naming the command.
#[tokio::test(start_paused = true)]
async fn a_plain_error_ends_the_step_and_names_the_command() {
    let mut cases = 0;
    for dialect in DIALECTS {
        for (echo, read_size) in variants() {
            for point in POINTS {
                let case = format!("{dialect:?} echo {echo} read {read_size} notice {point:?}");
                let mut cfg = emulator(dialect, echo);
                cfg.plain_error = vec!["+CPIN".into()];
                let b = bench(cfg, no_nat());
                b.modem
                    .inject_in_reply("AT+CPIN?", point, "*PSUTTZ: 2026,12,7,6,41,32,\"+04\",0");
                let mut m = driver(dialect, b.dev.uart, read_size);
                let t0 = time::now();
                let e = m.bring_up().await.unwrap_err();
                assert_eq!(
                    e,
                    ModemError::CommandFailed {
                        command: "AT+CPIN?",
                        reply: "ERROR".try_into().unwrap()
                    },
                    "{case}"
                );
                assert!(e.to_string().contains("AT+CPIN?"), "{case}: {e}");
                let took = time::now() - t0;
                assert!(took < Duration::from_secs(5), "{case}: took {took:?}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 4);
}
