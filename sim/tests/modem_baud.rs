//! Raising the modem UART's rate (`modem.fast_baud`, `AT+IPR`): the emulator byte for byte,
//! then the device's driver against it through every way the two ends can disagree.

mod modem_harness;

use std::time::Duration;

use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig, ModemInfo};
use modem_harness::*;
use sim::modem::{Dialect, IprBehaviour};
use sim::time::{self, BenchClock};
use sim::uart::{UartEnd, retune};

const FAST: u32 = 921_600;

#[tokio::test(start_paused = true)]
async fn the_emulator_answers_ipr_at_the_old_rate_then_hears_only_the_new_one() {
    let mut b = ready(config(Dialect::Sim7600), no_nat()).await;
    b.dev.cmd("AT+IPR=12345", "\r\nERROR\r\n").await;
    b.dev.cmd("AT+IPR=921600", "\r\nOK\r\n").await;
    // Still at 115200 here: the modem hears noise and says nothing.
    b.dev.send("AT\r").await;
    b.dev.silent_for(Duration::from_secs(1)).await;
    b.dev.uart.set_baud(FAST);
    b.dev.cmd("AT", "\r\nOK\r\n").await;
    b.dev.cmd("AT+IPR?", "\r\n+IPR: 921600\r\n\r\nOK\r\n").await;
    // A restart brings the power-on rate back.
    b.modem.reset();
    b.dev.uart.set_baud(BAUD);
    b.dev.expect(boot_lines(Dialect::Sim7600)).await;
    b.dev.cmd("AT+IPR?", "AT+IPR?\r\r\n+IPR: 115200\r\n\r\nOK\r\n").await;
}

fn driver_config(fast: Option<u32>) -> ModemConfig {
    let mut cfg = ModemConfig::new(DeviceDialect::Sim7600, "m2m.example").unwrap();
    cfg.baud = BAUD;
    cfg.fast_baud = fast;
    cfg
}

fn driver(uart: UartEnd, fast: Option<u32>) -> Modem<UartEnd, BenchClock> {
    Modem::new(uart, BenchClock, driver_config(fast)).with_uart_rate(retune)
}

async fn bring_up(modem: &mut Modem<UartEnd, BenchClock>) -> ModemInfo {
    time::timeout(Duration::from_secs(120), modem.bring_up())
        .await
        .expect("bring-up hung")
        .expect("bring-up failed")
}

#[tokio::test(start_paused = true)]
async fn bring_up_raises_the_link_to_the_fast_rate() {
    let b = bench(config(Dialect::Sim7600), no_nat());
    let mut modem = driver(b.dev.uart, Some(FAST));
    let info = bring_up(&mut modem).await;
    assert_eq!((info.baud, info.fast_baud_refused), (FAST, false));
    assert_eq!(modem.baud(), FAST);
    // The link works at the new rate: a later bring-up (after a network loss) talks at once.
    let info = bring_up(&mut modem).await;
    assert_eq!(info.baud, FAST);
    assert_eq!(b.modem.stats().resets, 0);
}

#[tokio::test(start_paused = true)]
async fn a_modem_that_refuses_or_ignores_ipr_stays_at_its_power_on_rate() {
    for behaviour in [IprBehaviour::Refuses, IprBehaviour::Ignores] {
        let mut cfg = config(Dialect::Sim7600);
        cfg.ipr = behaviour;
        let b = bench(cfg, no_nat());
        let mut modem = driver(b.dev.uart, Some(FAST));
        let info = bring_up(&mut modem).await;
        assert_eq!((info.baud, info.fast_baud_refused), (BAUD, true), "{behaviour:?}");
        // Not asked again at the next bring-up.
        let commands = b.modem.stats().commands;
        let info = bring_up(&mut modem).await;
        assert_eq!((info.baud, info.fast_baud_refused), (BAUD, true), "{behaviour:?}");
        let per_bring_up = b.modem.stats().commands - commands;
        let again = b.modem.stats().commands;
        bring_up(&mut modem).await;
        assert_eq!(b.modem.stats().commands - again, per_bring_up, "{behaviour:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_modem_restart_drops_it_to_its_power_on_rate_and_bring_up_follows_and_raises_again() {
    let b = bench(config(Dialect::Sim7600), no_nat());
    let mut modem = driver(b.dev.uart, Some(FAST));
    assert_eq!(bring_up(&mut modem).await.baud, FAST);
    b.modem.reset();
    let info = bring_up(&mut modem).await;
    assert_eq!((info.baud, info.fast_baud_refused), (FAST, false));
    assert_eq!(b.modem.stats().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn a_chip_restart_finds_the_modem_still_at_the_fast_rate_without_restarting_it() {
    let b = bench(config(Dialect::Sim7600), no_nat());
    let mut modem = driver(b.dev.uart, Some(FAST));
    assert_eq!(bring_up(&mut modem).await.baud, FAST);
    // The chip resets (an update was activated): its UART starts at the power-on rate
    // again, the modem keeps running at the fast one.
    let uart = modem.into_inner();
    uart.set_baud(BAUD);
    let mut modem = driver(uart, Some(FAST));
    let info = bring_up(&mut modem).await;
    assert_eq!((info.baud, info.fast_baud_refused), (FAST, false));
    assert_eq!(b.modem.stats().resets, 0, "the modem was not restarted");
}

#[tokio::test(start_paused = true)]
async fn without_a_way_to_retune_the_uart_the_fast_rate_is_not_asked_for() {
    let b = bench(config(Dialect::Sim7600), no_nat());
    let mut modem = Modem::new(b.dev.uart, BenchClock, driver_config(Some(FAST)));
    let info = bring_up(&mut modem).await;
    assert_eq!((info.baud, info.fast_baud_refused), (BAUD, false));
}
