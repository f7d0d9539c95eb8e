//! The bench runs the chip as the firmware drives it: a flash operation (esp-storage is
//! synchronous) holds the whole device, and the UART receives into the peripheral's
//! 128-byte FIFO, which drops what arrives while it is full unless RTS/CTS hold the modem.
//! These tests fail if the bench goes back to overlapping flash work with modem traffic,
//! or to a receive buffer the chip does not have.

use std::time::Duration;

use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::NorFlash;
use sim::flash::{FlashTiming, SECTOR, SimFlash};
use sim::modem::Dialect;
use sim::scenario::{self, RunSpec, Strategy};
use sim::time;
use sim::uart::{CHIP_RX_FIFO, UartEnd, chip_uart};

const ERASE: Duration = FlashTiming::ESP32_TYPICAL.erase_sector;

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(async {
            time::use_virtual_time();
            fut.await
        })
}

/// A chip: its flash and its UART end tied to the same CPU; and the modem's end.
fn chip(baud: u32, flow_control: bool) -> (SimFlash, UartEnd, UartEnd) {
    let flash = SimFlash::new(4 * SECTOR, FlashTiming::ESP32_TYPICAL);
    let (device, modem) = chip_uart(baud, flow_control, 1024);
    (flash.clone(), device.stalled_by(flash.cpu()), modem)
}

#[test]
fn no_at_command_leaves_while_the_flash_works() {
    block_on(async {
        let (mut flash, mut device, mut modem) = chip(115_200, true);
        // The engine's pattern: the slot's flash work joined with the next modem read.
        let (erased, sent) = tokio::join!(flash.erase(0, SECTOR as u32), async {
            device.write_all(b"AT+CIPRXGET=2,0,1460\r").await
        });
        erased.unwrap();
        sent.unwrap();
        let mut buf = [0u8; 32];
        let n = modem.read(&mut buf).await.unwrap();
        assert!(n > 0);
        // 21 bytes at 86.8 µs each, sent only once the 45 ms erase has ended.
        let sent_for = Duration::from_micros(21 * 87);
        assert!(
            time::now() >= ERASE + sent_for - Duration::from_micros(20),
            "the command overlapped the erase: on the wire by {:?}",
            time::now()
        );
        assert_eq!(flash.cpu().held(), ERASE);
    });
}

/// A 1460-byte reply that starts as the device begins an erase: what the FIFO keeps.
fn reply_during_an_erase(baud: u32, flow_control: bool) -> (Vec<u8>, u64) {
    block_on(async {
        let (mut flash, mut device, modem) = chip(baud, flow_control);
        let reply: Vec<u8> = (0..1460u32).map(|i| (i % 251) as u8).collect();
        let sent = reply.clone();
        let sender = tokio::spawn(async move { modem.tx.write(&sent).await });
        flash.erase(0, SECTOR as u32).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1460];
        let deadline = time::now() + Duration::from_millis(500);
        while time::now() < deadline {
            match time::timeout(Duration::from_millis(50), device.read(&mut buf)).await {
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        sender.await.unwrap().unwrap();
        (got, device.rx_control().bytes_lost())
    })
}

#[test]
fn without_rts_cts_a_reply_during_an_erase_loses_what_the_fifo_cannot_hold() {
    for baud in [115_200u32, 921_600] {
        let (got, lost) = reply_during_an_erase(baud, false);
        let arrived_during_erase = (ERASE.as_secs_f64() * f64::from(baud) / 10.0) as u64;
        let expected_lost = arrived_during_erase.min(1460) - CHIP_RX_FIFO as u64;
        assert!(
            lost.abs_diff(expected_lost) <= 1,
            "{baud} baud: lost {lost}, expected about {expected_lost}"
        );
        assert_eq!(got.len() as u64 + lost, 1460, "{baud} baud");
        // The FIFO kept the first bytes; the lost ones are a gap after them.
        assert_eq!(
            got[..CHIP_RX_FIFO],
            (0..CHIP_RX_FIFO as u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()[..]
        );
    }
}

#[test]
fn with_rts_cts_a_full_fifo_holds_the_modem_and_nothing_is_lost() {
    for baud in [115_200u32, 921_600] {
        let (got, lost) = reply_during_an_erase(baud, true);
        assert_eq!(lost, 0, "{baud} baud");
        assert_eq!(
            got,
            (0..1460u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
            "{baud} baud"
        );
    }
}

/// The shipped configurations (both profiles' modems, the power-on rate and
/// `modem.fast_baud`, no RTS/CTS) never make the modem send into a full FIFO.
#[test]
fn the_engine_never_loses_a_uart_byte_without_rts_cts() {
    for dialect in [Dialect::Sim7600, Dialect::Sim7080] {
        for fast_baud in [None, Some(921_600)] {
            let mut spec = RunSpec::seed(Strategy::Otactl);
            spec.dialect = dialect;
            spec.fast_baud = fast_baud;
            spec.flow_control = false;
            let r = scenario::run(&spec);
            assert_eq!((r.outcome, r.slot_matches), ("updated", true), "{r:?}");
            assert_eq!(r.uart_bytes_lost, 0, "{dialect:?} {fast_baud:?}: {r:?}");
        }
    }
}

/// On a chip whose flash driver blocks, RTS/CTS cannot buy overlap: a bench that lets
/// flash work run beside the modem's reply again would make the flow-controlled row
/// faster, as it once was (24.18 s against 26.74 s).
#[test]
fn rts_cts_buys_no_overlap_on_a_blocking_chip() {
    for fast_baud in [None, Some(921_600)] {
        let mut plain = RunSpec::seed(Strategy::Otactl);
        plain.fast_baud = fast_baud;
        let mut rtscts = plain.clone();
        rtscts.flow_control = true;
        let (a, b) = (scenario::run(&plain), scenario::run(&rtscts));
        assert_eq!((a.outcome, b.outcome), ("updated", "updated"));
        let gap = (a.virtual_s - b.virtual_s).abs() / a.virtual_s;
        assert!(
            gap < 0.001,
            "{fast_baud:?}: {} s without, {} s with RTS/CTS",
            a.virtual_s,
            b.virtual_s
        );
    }
}

/// Faults that make the modem talk out of turn (bursts of notices, garbage, reboots) may
/// arrive while the flash holds the CPU; without RTS/CTS the engine's reads must still
/// never overflow the FIFO.
#[test]
fn random_faults_without_rts_cts_lose_no_uart_byte() {
    for seed in 0..40 {
        let mut spec = scenario::random_fault_spec(seed);
        spec.flow_control = false;
        let r = scenario::run(&spec);
        assert_eq!((r.outcome, r.slot_matches), ("updated", true), "seed {seed}: {r:?}");
        assert_eq!(r.uart_bytes_lost, 0, "seed {seed}: {r:?}");
    }
}
