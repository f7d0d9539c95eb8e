//! The engine inside a product's own firmware: the example telemetry app
//! (`example-telemetry/src/app.rs`, the same file its chip build compiles) on the
//! bench's SIM7600 emulator, cellular network and flash, in virtual time. Its readings go to
//! its own server through the modem the engine also uses; the server's answer starts the
//! update; the new version confirms itself only once its own work goes through.

#[path = "../../example-telemetry/src/app.rs"]
mod telemetry;

use std::time::Duration;

use device_fw::esp::image::CHIP_ESP32;
use device_fw::esp::otadata::OtaState;
use device_fw::http::{HttpClient, Target};
use device_fw::modem::Modem;
use device_fw::ota::update::{Running, UpdateEvent};
use device_fw::socket::Socket;
use device_fw::updater::{Check, Settings, Updater};
use sim::device::{BootView, DeviceSetup, World, boot, identity, manifest_url, release};
use sim::flash::SimFlash;
use sim::scenario::ORIGIN_HOST;
use sim::time::{self, BenchClock};
use sim::trust::{NEW_PAYLOAD, NEW_VERSION, OLD_PAYLOAD, OLD_VERSION, app_image};
use sim::uart::{UartEnd, retune};
use telemetry::{Exit, Posted, Sensor, Telemetry};

const TELEMETRY_PATH: &str = "/telemetry";

fn telemetry_url() -> String {
    format!("http://{ORIGIN_HOST}{TELEMETRY_PATH}")
}

/// A thermometer whose reading climbs by 0.25 °C a minute.
struct Ramp(i32);

impl Sensor for Ramp {
    fn read_centi(&mut self) -> i32 {
        self.0 += 25;
        self.0
    }
}

/// The world for one boot, with the app's server answering readings with `reply`.
fn world(setup: &DeviceSetup, rel: &sim::device::Release, reply: &str) -> World {
    let world = World::new(setup, rel);
    world.origin.as_ref().unwrap().set_behaviour(|b| {
        b.report_path = TELEMETRY_PATH.into();
        b.post_reply = reply.as_bytes().to_vec();
    });
    world
}

/// The readings the server received, as `(version, seq)`.
fn readings(world: &World) -> Vec<(String, u64)> {
    world
        .origin
        .as_ref()
        .unwrap()
        .reports()
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_slice(body).expect("a reading is JSON");
            assert_eq!(v["device"], "bench-device-1");
            assert!(v["reading"].is_number(), "{v}");
            (v["version"].as_str().unwrap().to_owned(), v["seq"].as_u64().unwrap())
        })
        .collect()
}

fn settings<'a>(setup: &'a DeviceSetup, view: &'a BootView, manifest: &'a str) -> Settings<'a> {
    Settings {
        manifest_url: manifest,
        keys: &setup.keys,
        layout: setup.layout.clone(),
        download: setup.profile.download_config(),
        identity: identity(setup, view),
    }
}

fn http_for(setup: &DeviceSetup, world: &mut World, flash: &SimFlash) -> HttpClient<Modem<UartEnd, BenchClock>> {
    world.stall_with(flash);
    let uart = world.take_modem_uart().unwrap();
    HttpClient::new(Modem::new(uart, BenchClock, setup.modem_config()).with_uart_rate(retune))
}

/// Boots and runs the app for at most `limit` of virtual time; `None`: still running then.
/// `during` runs beside it (to change what the server says mid-run).
async fn session(
    flash: &mut SimFlash,
    setup: &DeviceSetup,
    world: &mut World,
    limit: Duration,
    during: impl std::future::Future<Output = ()>,
) -> (BootView, Option<Exit>, Vec<String>) {
    let view = boot(flash, setup).await.unwrap().unwrap();
    let url = manifest_url();
    let tele_url = telemetry_url();
    let cfg = settings(setup, &view, &url);
    let mut updater = Updater::new(&cfg, Running::from_booted(&view.booted));
    let mut http = http_for(setup, world, flash);
    let telemetry = Telemetry {
        url: &tele_url,
        device_id: &setup.device_id,
        version: &view.version,
    };
    let mut events = Vec::new();
    let mut sink = |e: UpdateEvent<'_>| events.push(format!("{e:?}"));
    let mut sensor = Ramp(2000);
    let app = telemetry::run(
        &mut http,
        flash,
        &BenchClock,
        &mut updater,
        &telemetry,
        &mut sensor,
        &mut sink,
    );
    let (exit, ()) = tokio::join!(time::timeout(limit, app), during);
    (view.clone(), exit.ok(), events)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[test]
fn telemetry_goes_on_the_server_starts_the_update_and_the_new_app_confirms_itself() {
    time::run_virtual(async {
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);

        // Three minutes of readings, then the server says "update".
        let mut w = world(&setup, &rel, "ok");
        let origin = w.origin.clone().unwrap();
        let switch = async move {
            time::sleep(Duration::from_secs(150)).await;
            origin.set_behaviour(|b| b.post_reply = b"update\n".to_vec());
        };
        let (view, exit, events) = session(&mut flash, &setup, &mut w, minutes(30), switch).await;
        assert_eq!(view.version, OLD_VERSION);
        assert_eq!(exit, Some(Exit::Updated), "{events:#?}");
        let sent = readings(&w);
        let seqs: Vec<u64> = sent.iter().map(|(_, s)| *s).collect();
        assert_eq!(seqs, [0, 1, 2, 3], "one reading a minute until the answer said update");
        assert!(sent.iter().all(|(v, _)| v == OLD_VERSION));
        assert!(events.iter().any(|e| e.starts_with("Activated")), "{events:#?}");

        // The new version boots pending verification, its first reading is its self-test,
        // and it goes on posting.
        let mut w = world(&setup, &rel, "ok");
        let (view, exit, events) = session(&mut flash, &setup, &mut w, minutes(5), async {}).await;
        assert_eq!(
            (view.version.as_str(), view.booted.state),
            (NEW_VERSION, OtaState::PendingVerify)
        );
        assert_eq!(exit, None, "the app runs until something asks for a reset: {events:#?}");
        assert!(events.iter().any(|e| e.starts_with("Confirmed")), "{events:#?}");
        let sent = readings(&w);
        assert!(sent.len() >= 5, "{sent:?}");
        assert!(sent.iter().all(|(v, _)| v == NEW_VERSION));

        let view = boot(&mut flash, &setup).await.unwrap().unwrap();
        assert_eq!(
            (view.version.as_str(), view.booted.state),
            (NEW_VERSION, OtaState::Valid)
        );
    });
}

#[test]
fn a_new_app_whose_readings_fail_rolls_back_and_the_old_one_keeps_posting() {
    time::run_virtual(async {
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);

        let mut w = world(&setup, &rel, "update");
        let (_, exit, events) = session(&mut flash, &setup, &mut w, minutes(30), async {}).await;
        assert_eq!(exit, Some(Exit::Updated), "{events:#?}");

        // After the update the server refuses readings: the new app's own work fails.
        let mut w = world(&setup, &rel, "ok");
        w.origin.as_ref().unwrap().set_behaviour(|b| b.fail_next = u32::MAX);
        let (view, exit, events) = session(&mut flash, &setup, &mut w, minutes(5), async {}).await;
        assert_eq!(view.version, NEW_VERSION);
        assert_eq!(exit, Some(Exit::RolledBack), "{events:#?}");
        assert!(events.iter().any(|e| e.starts_with("SelfTestFailed")), "{events:#?}");

        // The old app runs again, remembers the failed version, and goes on posting even
        // though the server still says "update": the same release is not installed again.
        let mut w = world(&setup, &rel, "update");
        let (view, exit, events) = session(&mut flash, &setup, &mut w, minutes(5), async {}).await;
        assert_eq!(view.version, OLD_VERSION);
        assert_eq!(exit, None, "{events:#?}");
        assert!(
            events
                .iter()
                .any(|e| e.contains("RolledBack") && e.contains(NEW_VERSION)),
            "{events:#?}"
        );
        assert!(!events.iter().any(|e| e.starts_with("Activated")), "{events:#?}");
        let sent = readings(&w);
        assert!(
            sent.len() >= 5 && sent.iter().all(|(v, _)| v == OLD_VERSION),
            "{sent:?}"
        );
    });
}

#[test]
fn between_engine_calls_the_app_has_the_modem_for_its_own_requests() {
    time::run_virtual(async {
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);
        let mut w = world(&setup, &rel, "ok");
        let view = boot(&mut flash, &setup).await.unwrap().unwrap();
        let url = manifest_url();
        let tele_url = telemetry_url();
        let cfg = settings(&setup, &view, &url);
        let mut updater = Updater::new(&cfg, Running::from_booted(&view.booted));
        let mut http = http_for(&setup, &mut w, &flash);
        http.socket().bring_up().await.unwrap();
        // The power-on `RDY` bring-up synced with.
        let restarts_at_start = http.socket().stats().restarts_seen;
        let telemetry = Telemetry {
            url: &tele_url,
            device_id: &setup.device_id,
            version: &view.version,
        };

        let found = updater
            .check(&mut http, &mut flash, &BenchClock, &mut ())
            .await
            .unwrap();
        assert!(
            matches!(&found, Check::Available { version, .. } if version == NEW_VERSION),
            "{found:?}"
        );
        assert!(
            !http.socket().is_connected(),
            "the check leaves no connection of its own open"
        );
        assert_eq!(
            telemetry::post_reading(&mut http, &telemetry, 0, 2100).await,
            Posted::Ok
        );

        // A failed update (the origin is down for it) leaves the modem just as usable.
        w.origin.as_ref().unwrap().set_behaviour(|b| b.fail_next = 1000);
        let failed = updater.update(&mut http, &mut flash, &BenchClock, &mut ()).await;
        assert!(failed.is_err());
        assert!(!http.socket().is_connected());
        w.origin.as_ref().unwrap().set_behaviour(|b| b.fail_next = 0);
        assert_eq!(
            telemetry::post_reading(&mut http, &telemetry, 1, 2125).await,
            Posted::Ok
        );

        // The app's own GET on the same client, then the update itself.
        let manifest = Target::parse(&url).unwrap();
        assert_eq!(http.get(&manifest, None).await.unwrap().status, 200);
        http.close().await;
        let activated = updater
            .update(&mut http, &mut flash, &BenchClock, &mut ())
            .await
            .unwrap();
        assert_eq!(activated.version.as_str(), NEW_VERSION);
        assert!(!http.socket().is_connected());
        assert_eq!(
            telemetry::post_reading(&mut http, &telemetry, 2, 2150).await,
            Posted::Ok
        );
        assert_eq!(
            http.socket().stats().restarts_seen,
            restarts_at_start,
            "nothing was taken for a restart"
        );
        assert_eq!(readings(&w).len(), 3);
    });
}

#[test]
fn a_request_after_a_bare_sleep_finds_its_closed_connection_and_opens_a_new_one() {
    time::run_virtual(async {
        // The origin ends the kept-alive connection after 5 s; an app that sleeps instead
        // of listening reads that close notice only when it sends again. The refused send
        // is the closed link, not a lost network: the request goes out on a new connection.
        let setup = DeviceSetup::field();
        let flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1));
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);
        let mut w = world(&setup, &rel, "ok");
        let tele_url = telemetry_url();
        let mut http = http_for(&setup, &mut w, &flash);
        http.socket().bring_up().await.unwrap();
        let telemetry = Telemetry {
            url: &tele_url,
            device_id: &setup.device_id,
            version: OLD_VERSION,
        };
        for seq in 0..3 {
            assert_eq!(
                telemetry::post_reading(&mut http, &telemetry, seq, 2100).await,
                Posted::Ok
            );
            time::sleep(minutes(1)).await;
        }
        let seqs: Vec<u64> = readings(&w).iter().map(|(_, s)| *s).collect();
        assert_eq!(seqs, [0, 1, 2]);
    });
}
