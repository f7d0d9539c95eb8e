//! The device app over its console, as a person or `otactl watch` drives it: commands in,
//! `@ota` events out, an update end to end, the reboot, the self-test and the confirm.

use device_fw::app::{AlwaysNow, Reboot, run};
use device_fw::esp::image::CHIP_ESP32;
use device_fw::ota::update::Running;
use device_fw::wire::console::{Event, parse_event_line};
use embedded_io_async::{Read, Write};
use sim::device::{DeviceSetup, World, boot, manifest_url, release};
use sim::flash::SimFlash;
use sim::time::{self, BenchClock};
use sim::trust::{NEW_PAYLOAD, NEW_VERSION, OLD_PAYLOAD, OLD_VERSION, app_image};
use sim::uart::{UartEnd, retune, uart};

/// The host side of the console: sends command lines, collects event lines.
struct Host {
    end: UartEnd,
    pending: Vec<u8>,
    /// Every line seen, events and plain log lines alike.
    seen: Vec<String>,
}

impl Host {
    async fn send(&mut self, line: &str) {
        self.end.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    }

    /// Reads lines until an event matches `stop`; returns the events read on the way.
    async fn until(&mut self, stop: impl Fn(&Event<String>) -> bool) -> Vec<Event<String>> {
        let mut events = Vec::new();
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8(line).unwrap();
                self.seen.push(line.trim_end().to_owned());
                if let Some(event) = parse_event_line(&line) {
                    let event = event.unwrap_or_else(|e| panic!("bad event line {line:?}: {e}"));
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return events;
                    }
                }
            }
            let mut buf = [0u8; 256];
            let n = self.end.read(&mut buf).await.unwrap();
            assert!(n > 0, "console closed; seen {:#?}", self.seen);
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

fn console() -> (UartEnd, Host) {
    // USB-Serial-JTAG runs at USB full speed: the console never paces the app.
    let (device, host) = uart(12_000_000, 4096, 4096);
    (
        device,
        Host {
            end: host,
            pending: Vec::new(),
            seen: Vec::new(),
        },
    )
}

/// Boots, runs the app while `script` drives the console, returns why the app reset.
async fn session<F, Fut>(flash: &mut SimFlash, setup: &DeviceSetup, world: &mut World, script: F) -> (Reboot, Host)
where
    F: FnOnce(Host) -> Fut,
    Fut: std::future::Future<Output = Host>,
{
    let view = boot(flash, setup).await.unwrap().unwrap();
    let url = manifest_url();
    let mut cfg = setup.app_config(&url);
    // These sessions are driven from the console alone (the schedule has its own tests).
    cfg.update.check_every_us = 0;
    let (mut device_console, host) = console();
    world.stall_with(flash);
    let modem = world.take_modem_uart().unwrap();
    let running = Running::from_booted(&view.booted);
    let mut hook = AlwaysNow;
    let app = run(
        &mut device_console,
        modem,
        Some(retune),
        flash,
        BenchClock,
        &cfg,
        running,
        &mut hook,
    );
    let (reboot, host) = tokio::join!(app, script(host));
    (reboot, host)
}

fn is<F: Fn(&Event<String>) -> bool>(f: F) -> F {
    f
}

#[test]
fn an_update_over_the_console_from_command_to_confirmed() {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            time::use_virtual_time();
            let setup = DeviceSetup::field();
            let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
            let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);

            let mut world = World::new(&setup, &rel);
            let image_len = rel.image.len() as u64;
            let (reboot, host) = session(&mut flash, &setup, &mut world, |mut host| async move {
                let start = host.until(is(|e| matches!(e, Event::ModemUp { .. }))).await;
                assert!(
                    matches!(&start[0], Event::Boot { version, slot, state }
                        if version == OLD_VERSION && slot == "ota_0" && state == "valid"),
                    "{start:?}"
                );
                host.send("version").await;
                let e = host.until(is(|e| matches!(e, Event::Version { .. }))).await;
                assert!(matches!(e.last(), Some(Event::Version { version, chip, .. }) if version == OLD_VERSION && chip == "esp32"));
                host.send("format c:").await;
                host.until(is(|e| matches!(e, Event::CommandError { .. }))).await;
                host.send("ota check").await;
                let e = host.until(is(|e| matches!(e, Event::Check { .. }))).await;
                assert!(
                    matches!(e.last(), Some(Event::Check { available, update: true, .. }) if available == NEW_VERSION),
                    "{e:?}"
                );
                host.send("ota status").await;
                let e = host.until(is(|e| matches!(e, Event::Status { .. }))).await;
                assert!(matches!(e.last(), Some(Event::Status { resume_offset: None, .. })), "{e:?}");
                host.send("ota update").await;
                let e = host.until(is(|e| matches!(e, Event::Rebooting { .. }))).await;
                let names: Vec<String> = e
                    .iter()
                    .map(|e| format!("{e:?}").split([' ', '{']).next().unwrap().to_owned())
                    .collect();
                for want in ["ManifestFetched", "ManifestVerified", "Progress", "VerifyOk", "Activated", "Rebooting"] {
                    assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
                }
                let last_progress = e.iter().rev().find_map(|e| match e {
                    Event::Progress { offset, total, .. } => Some((*offset, *total)),
                    _ => None,
                });
                assert_eq!(last_progress, Some((image_len, image_len)));
                host
            })
            .await;
            assert_eq!(reboot, Reboot::Activated);
            // The transcript, for a person reading the test output (`--nocapture`).
            for line in &host.seen {
                println!("{line}");
            }

            // The new app boots PENDING_VERIFY, passes its self-test and confirms itself.
            let mut world = World::new(&setup, &rel);
            let (reboot, host) = session(&mut flash, &setup, &mut world, |mut host| async move {
                let e = host.until(is(|e| matches!(e, Event::Confirmed { .. }))).await;
                assert!(
                    matches!(&e[0], Event::Boot { version, slot, state }
                        if version == NEW_VERSION && slot == "ota_1" && state == "pending_verify"),
                    "{e:?}"
                );
                host.send("ota update").await;
                let e = host.until(is(|e| matches!(e, Event::UpToDate { .. }))).await;
                assert!(matches!(e.last(), Some(Event::UpToDate { version }) if version == NEW_VERSION));
                host.send("reboot").await;
                host.until(is(|e| matches!(e, Event::Rebooting { .. }))).await;
                host
            })
            .await;
            assert_eq!(reboot, Reboot::Requested);
            for line in &host.seen {
                println!("{line}");
            }
            let view = boot(&mut flash, &setup).await.unwrap().unwrap();
            assert_eq!(view.version, NEW_VERSION);
            assert_eq!(view.booted.state, device_fw::esp::otadata::OtaState::Valid);
        });
}

#[test]
fn a_refused_release_is_reported_with_its_reason_and_the_app_keeps_serving() {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            time::use_virtual_time();
            let setup = DeviceSetup::field();
            let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
            // A release whose app descriptor says 1.2.0 under a manifest that says 1.1.0.
            let rel = release(app_image(CHIP_ESP32, "1.2.0", 0, NEW_PAYLOAD, 2), NEW_VERSION);
            let mut world = World::new(&setup, &rel);
            let (reboot, _) = session(&mut flash, &setup, &mut world, |mut host| async move {
                host.until(is(|e| matches!(e, Event::ModemUp { .. }))).await;
                host.send("ota update").await;
                let e = host.until(is(|e| matches!(e, Event::VerifyFailed { .. }))).await;
                assert!(
                    matches!(e.last(), Some(Event::VerifyFailed { reason, .. }) if reason == "app-version-mismatch"),
                    "{e:?}"
                );
                host.send("ota update http://ota.example.com/no/such/manifest.json")
                    .await;
                let e = host
                    .until(is(|e| {
                        matches!(e, Event::UpdateFailed { .. } | Event::ManifestRejected { .. })
                    }))
                    .await;
                assert!(
                    matches!(e.last(), Some(Event::UpdateFailed { reason, .. }) if reason == "manifest-unreachable"),
                    "{e:?}"
                );
                host.send("ota confirm").await;
                host.until(is(|e| matches!(e, Event::Confirmed { .. }))).await;
                host.send("reboot").await;
                host.until(is(|e| matches!(e, Event::Rebooting { .. }))).await;
                host
            })
            .await;
            assert_eq!(reboot, Reboot::Requested);
            assert_eq!(boot(&mut flash, &setup).await.unwrap().unwrap().version, OLD_VERSION);
        });
}
