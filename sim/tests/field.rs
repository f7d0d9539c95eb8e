//! The device app with nobody at its console, in virtual time: scheduled checks that find a
//! release, update, confirm and report; `304` checks when nothing changed; rollout cohorts;
//! backoff kept across a reboot; the app's hook and `ota defer` holding an update.

use std::future::Future;

use device_fw::app::{AlwaysNow, Offer, Reboot, UpdateHook, run};
use device_fw::esp::image::CHIP_ESP32;
use device_fw::ota::schedule::Permission;
use device_fw::ota::update::Running;
use device_fw::wire::console::{Event, parse_event_line};
use device_fw::wire::report::{Outcome, Report};
use device_fw::wire::rollout::{DeviceList, Rollout, RolloutState};
use embedded_io_async::{Read, Write};
use sim::device::{BENCH_DEVICE_ID, DeviceSetup, Release, World, boot, manifest_url, release, release_staged};
use sim::flash::SimFlash;
use sim::time::{self, BenchClock};
use sim::trust::{NEW_PAYLOAD, NEW_VERSION, OLD_PAYLOAD, OLD_VERSION, app_image};
use sim::uart::{UartEnd, retune, uart};

const MINUTE_US: u64 = 60_000_000;
const REPORT_URL: &str = "http://ota.example.com/reports";

/// The host end of the console: it only listens (a field device has nobody there), or
/// sends a line when a test says so.
struct Console {
    end: UartEnd,
    pending: Vec<u8>,
}

impl Console {
    async fn send(&mut self, line: &str) {
        self.end.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    }

    async fn until(&mut self, stop: impl Fn(&Event<String>) -> bool) -> Vec<Event<String>> {
        let mut events = Vec::new();
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8(line).unwrap();
                if let Some(event) = parse_event_line(&line) {
                    let event = event.unwrap_or_else(|e| panic!("bad event line {line:?}: {e}"));
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return events;
                    }
                }
            }
            let mut buf = [0u8; 512];
            let n = self.end.read(&mut buf).await.unwrap();
            assert!(n > 0, "console closed after {events:#?}");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// A hook that says "later" until told otherwise.
struct Busy(bool);

impl UpdateHook for Busy {
    fn may_update(&mut self, offer: &Offer<'_>) -> Permission {
        if self.0 {
            Permission::Later {
                retry_at_us: Some(offer.now_us + 5 * MINUTE_US),
            }
        } else {
            Permission::Now
        }
    }
}

fn setup(check_every_min: u64, reports: bool) -> DeviceSetup {
    let mut setup = DeviceSetup::field();
    let every = std::time::Duration::from_secs(check_every_min * 60);
    setup.profile.update.check_every = device_fw::profile::Span(every);
    setup.profile.update.jitter = device_fw::profile::Span(std::time::Duration::ZERO);
    setup.profile.update.retry_after = device_fw::profile::Span(std::time::Duration::from_secs(3600));
    if reports {
        setup.profile.release.report_url = Some(REPORT_URL.to_owned());
    }
    setup
}

/// One life of the device: boot, then the app with `script` on its console.
async fn life<H, F, Fut>(
    flash: &mut SimFlash,
    setup: &DeviceSetup,
    world: &mut World,
    hook: &mut H,
    script: F,
) -> (Reboot, Vec<Event<String>>)
where
    H: UpdateHook,
    F: FnOnce(Console) -> Fut,
    Fut: Future<Output = Vec<Event<String>>>,
{
    let view = boot(flash, setup).await.unwrap().unwrap();
    let url = manifest_url();
    let cfg = setup.app_config(&url);
    let (mut device, host) = uart(12_000_000, 4096, 4096);
    let console = Console {
        end: host,
        pending: Vec::new(),
    };
    world.stall_with(flash);
    let modem = world.take_modem_uart().unwrap();
    let app = run(
        &mut device,
        modem,
        Some(retune),
        flash,
        BenchClock,
        &cfg,
        Running::from_booted(&view.booted),
        hook,
    );
    tokio::select! {
        reboot = app => (reboot, Vec::new()),
        events = script(console) => (Reboot::Requested, events),
    }
}

fn new_release() -> Release {
    release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION)
}

fn reports(world: &World) -> Vec<Report<String>> {
    let origin = world.origin.as_ref().unwrap();
    origin
        .reports()
        .iter()
        .map(|body| Report::parse(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body))))
        .collect()
}

/// Runs the app until it reboots by itself, with nobody at the console.
async fn unattended(flash: &mut SimFlash, setup: &DeviceSetup, world: &mut World) -> (Reboot, Vec<Event<String>>) {
    life(flash, setup, world, &mut AlwaysNow, |_console| std::future::pending()).await
}

#[test]
fn a_device_nobody_touches_finds_the_release_updates_confirms_and_reports() {
    time::run_virtual(async {
        let setup = setup(10, true);
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = new_release();

        // First life: the boot check finds 1.1.0 and installs it; no command is ever sent.
        let started = time::now();
        let mut world = World::new(&setup, &rel);
        let (reboot, _) = unattended(&mut flash, &setup, &mut world).await;
        assert_eq!(reboot, Reboot::Activated);
        assert!(
            time::now() - started < std::time::Duration::from_secs(600),
            "within the first check"
        );
        assert!(reports(&world).is_empty(), "an activation is not an outcome yet");

        // Second life: the new app confirms itself and reports it; then its checks find
        // nothing new, the second one as a 304.
        let mut world = World::new(&setup, &rel);
        let (_, events) = life(&mut flash, &setup, &mut world, &mut AlwaysNow, |mut c| async move {
            let mut seen = c.until(|e| matches!(e, Event::Reported { .. })).await;
            seen.extend(c.until(|e| matches!(e, Event::Check { .. })).await);
            seen.extend(c.until(|e| matches!(e, Event::ManifestUnchanged { .. })).await);
            seen
        })
        .await;
        assert!(
            matches!(&events[0], Event::Boot { version, state, .. } if version == NEW_VERSION && state == "pending_verify"),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Confirmed { version } if version == NEW_VERSION))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Check { reason: Some(r), update: false, .. } if r == "not-newer"))
        );
        let sent = reports(&world);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let r = &sent[0];
        assert_eq!(
            (r.device.as_str(), r.version.as_str(), r.outcome, r.attempt),
            (BENCH_DEVICE_ID, NEW_VERSION, Outcome::Confirmed, 1)
        );
        let origin = world.origin.as_ref().unwrap().stats();
        assert!(origin.not_modified >= 1, "{origin:?}");
    });
}

#[test]
fn a_device_outside_the_rollout_waits_and_a_listed_one_takes_it() {
    time::run_virtual(async {
        let setup = setup(10, false);
        let image = app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2);
        let nobody = Rollout {
            percent: 0,
            state: RolloutState::Active,
            devices: DeviceList::Ids(&[]),
        };
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let mut world = World::new(&setup, &release_staged(image.clone(), NEW_VERSION, Some(nobody)));
        let (_, events) = life(&mut flash, &setup, &mut world, &mut AlwaysNow, |mut c| async move {
            let mut seen = c.until(|e| matches!(e, Event::Check { .. })).await;
            seen.extend(c.until(|e| matches!(e, Event::ManifestUnchanged { .. })).await);
            seen
        })
        .await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Check { reason: Some(r), .. } if r == "outside-cohort")),
            "{events:?}"
        );
        assert!(!events.iter().any(|e| matches!(e, Event::Activated { .. })));

        let listed = [BENCH_DEVICE_ID];
        let pilot = Rollout {
            devices: DeviceList::Ids(&listed),
            ..nobody
        };
        let mut world = World::new(&setup, &release_staged(image, NEW_VERSION, Some(pilot)));
        let (reboot, _) = unattended(&mut flash, &setup, &mut world).await;
        assert_eq!(reboot, Reboot::Activated);
    });
}

#[test]
fn a_failed_attempt_backs_off_and_the_backoff_survives_a_reboot() {
    time::run_virtual(async {
        let setup = setup(10, true);
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        // The manifest names one image, the bucket holds another: every download fails
        // its hash.
        let mut rel = new_release();
        let other = app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 3);
        rel.image = other;
        let mut world = World::new(&setup, &rel);
        let (_, events) = life(&mut flash, &setup, &mut world, &mut AlwaysNow, |mut c| async move {
            let mut seen = c.until(|e| matches!(e, Event::Reported { .. })).await;
            seen.extend(c.until(|e| matches!(e, Event::UpdateHeld { .. })).await);
            seen
        })
        .await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::VerifyFailed { reason, .. } if reason == "hash-mismatch")),
            "{events:?}"
        );
        let held = events.iter().rev().find_map(|e| match e {
            Event::UpdateHeld { reason, retry_in_s, .. } => Some((reason.clone(), *retry_in_s)),
            _ => None,
        });
        assert!(
            matches!(&held, Some((r, Some(s))) if r == "backoff" && *s <= 3600 && *s > 3000),
            "{held:?}"
        );
        let sent = reports(&world);
        assert_eq!(
            sent.iter()
                .map(|r| (r.outcome, r.reason.as_deref()))
                .collect::<Vec<_>>(),
            [(Outcome::Rejected, Some("hash-mismatch"))]
        );

        // A reboot (a crash loop, a power cut) does not reset the backoff.
        let mut world = World::new(&setup, &rel);
        let (_, events) = life(&mut flash, &setup, &mut world, &mut AlwaysNow, |mut c| async move {
            c.until(|e| matches!(e, Event::UpdateHeld { .. })).await
        })
        .await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::UpdateHeld { reason, .. } if reason == "backoff")),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(e, Event::Progress { .. })),
            "no download while backed off"
        );
    });
}

#[test]
fn the_app_and_ota_defer_hold_a_scheduled_update() {
    time::run_virtual(async {
        let setup = setup(10, false);
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = new_release();
        let mut world = World::new(&setup, &rel);
        let mut busy = Busy(true);
        let (_, events) = life(&mut flash, &setup, &mut world, &mut busy, |mut c| async move {
            c.until(|e| matches!(e, Event::UpdateHeld { .. })).await
        })
        .await;
        assert!(
            matches!(events.last(), Some(Event::UpdateHeld { reason, retry_in_s: Some(300), .. }) if reason == "deferred"),
            "{events:?}"
        );

        // `ota defer` on the console holds it too; `ota defer 0` lets it go.
        let mut world = World::new(&setup, &rel);
        let (reboot, events) = life(&mut flash, &setup, &mut world, &mut AlwaysNow, |mut c| async move {
            // Sent at boot, so the line waits for the app loop and comes before the check.
            c.until(|e| matches!(e, Event::Boot { .. })).await;
            c.send("ota defer 30").await;
            let mut seen = c.until(|e| matches!(e, Event::Deferred { .. })).await;
            seen.extend(c.until(|e| matches!(e, Event::UpdateHeld { .. })).await);
            seen
        })
        .await;
        assert_eq!(reboot, Reboot::Requested);
        assert!(
            matches!(events.last(), Some(Event::UpdateHeld { reason, .. }) if reason == "deferred"),
            "{events:?}"
        );
    });
}
