//! Trust and atomicity on the whole virtual device: signed releases only, never a brick,
//! rollback when a new app cannot confirm itself, and no retry of a version that failed.

use device_fw::esp::boot::{BootTarget, bootloader_boot, read_otadata, write_entry};
use device_fw::esp::image::CHIP_ESP32;
use device_fw::esp::otadata::{OtaSelectEntry, OtaState};
use device_fw::ota::update::UpdateEvent;
use sim::device::{AppRun, BootView, DeviceSetup, Release, World, boot, release, run_app};
use sim::flash::SimFlash;
use sim::time;
use sim::trust::{
    NEW_PAYLOAD, NEW_VERSION, OLD_PAYLOAD, OLD_VERSION, SWEEP_PAYLOAD, app_image, hostile_sweep, power_cut_sweep,
    rotated_release,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

async fn boot_ok(flash: &mut SimFlash, setup: &DeviceSetup) -> BootView {
    boot(flash, setup).await.expect("boots").expect("powered")
}

async fn app(flash: &mut SimFlash, setup: &DeviceSetup, view: &BootView, world: &mut World) -> (AppRun, Vec<String>) {
    let mut events = Vec::new();
    let run = run_app(flash, setup, view, world, &mut |e: UpdateEvent<'_>| {
        if !matches!(e, UpdateEvent::Download(_)) {
            events.push(format!("{e:?}"));
        }
    })
    .await;
    (run, events)
}

fn old_image() -> Vec<u8> {
    app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1)
}

#[test]
fn a_power_cut_at_any_flash_operation_never_bricks_and_the_update_completes() {
    let mut failures = Vec::new();
    let (clean, summary) = power_cut_sweep(2, SWEEP_PAYLOAD, |life| failures.push(format!("{life:?}")));
    assert!(clean.completed, "{clean:?}");
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(summary.cuts, clean.flash_ops);
    assert!(
        summary.cuts > 250,
        "every erase and program of a 68 KiB update: {}",
        summary.cuts
    );
    assert!(
        summary.block_erases >= 1,
        "a block erase is among the cuts: {summary:?}"
    );
    assert_eq!((summary.bricked, summary.wrong_image), (0, 0));
    assert_eq!(summary.completed, summary.cuts);
    // Most cuts land in the download, and those resume from the journal, not from byte 0.
    assert!(summary.resumed_from_journal * 2 > summary.cuts, "{summary:?}");
}

#[test]
fn hostile_releases_are_refused_each_for_its_own_reason_and_nothing_is_written() {
    let results = hostile_sweep();
    assert!(results.len() >= 20);
    let mut codes = std::collections::HashSet::new();
    for r in &results {
        assert!(r.rejected, "{r:?}");
        assert_eq!(r.error.as_deref(), Some(r.expected), "{r:?}");
        assert!(r.running_slot_intact, "{r:?}");
        assert!(codes.insert(r.expected), "two cases share {}", r.expected);
    }
}

#[test]
fn an_app_that_fails_its_self_test_is_rolled_back_and_not_retried_until_a_newer_release() {
    runtime().block_on(async {
        time::use_virtual_time();
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&old_image());
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);

        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(
            (view.version.as_str(), view.booted.target),
            (OLD_VERSION, BootTarget::Ota(0))
        );
        let (run, _) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rel)).await;
        assert!(matches!(run, AppRun::Activated(ref a) if a.slot == 1), "{run:?}");

        // The new app boots PENDING_VERIFY, cannot reach its origin, and refuses itself.
        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(view.version, NEW_VERSION);
        assert_eq!(view.booted.state, OtaState::PendingVerify);
        let (run, events) = app(&mut flash, &setup, &view, &mut World::origin_down(&setup)).await;
        assert!(matches!(run, AppRun::RollbackRequested), "{run:?}");
        assert!(events.iter().any(|e| e.contains("SelfTestFailed")), "{events:?}");

        // The bootloader goes back to the old app, which records the failed version and
        // refuses the same release.
        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(
            (view.version.as_str(), view.booted.target),
            (OLD_VERSION, BootTarget::Ota(0))
        );
        let (run, events) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rel)).await;
        assert!(
            events
                .iter()
                .any(|e| e.contains("RolledBack") && e.contains(NEW_VERSION)),
            "{events:?}"
        );
        assert!(
            matches!(run, AppRun::Idle { ref update_error } if update_error.as_deref() == Some("previously-failed")),
            "{run:?}"
        );

        // A newer release goes through.
        let fixed = release(app_image(CHIP_ESP32, "1.1.1", 0, NEW_PAYLOAD, 3), "1.1.1");
        let (run, _) = app(&mut flash, &setup, &view, &mut World::new(&setup, &fixed)).await;
        assert!(matches!(run, AppRun::Activated(_)), "{run:?}");
        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(view.version, "1.1.1");
        let (run, events) = app(&mut flash, &setup, &view, &mut World::new(&setup, &fixed)).await;
        assert!(events.iter().any(|e| e.contains("Confirmed")), "{events:?}");
        assert!(matches!(run, AppRun::Idle { .. }), "{run:?}");
        assert_eq!(boot_ok(&mut flash, &setup).await.booted.state, OtaState::Valid);
    });
}

#[test]
fn a_reset_before_the_new_app_confirms_rolls_back_as_the_idf_bootloader_does() {
    runtime().block_on(async {
        time::use_virtual_time();
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&old_image());
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);
        let view = boot_ok(&mut flash, &setup).await;
        let (run, _) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rel)).await;
        assert!(matches!(run, AppRun::Activated(_)));
        let otadata = setup.layout.boot.otadata;
        // Activation is one entry in the other sector, NEW; the old one stays as it was.
        let entries = read_otadata(&mut flash, otadata).await.unwrap();
        assert_eq!(entries[0], OtaSelectEntry::new(1, OtaState::Valid));
        assert_eq!(entries[1], OtaSelectEntry::new(2, OtaState::New));

        // Boot: NEW becomes PENDING_VERIFY. The app crashes before confirming (no app run).
        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(
            (view.version.as_str(), view.booted.state),
            (NEW_VERSION, OtaState::PendingVerify)
        );
        // Next boot: PENDING_VERIFY becomes ABORTED and the old slot boots.
        let view = boot_ok(&mut flash, &setup).await;
        assert_eq!(
            (view.version.as_str(), view.booted.target),
            (OLD_VERSION, BootTarget::Ota(0))
        );
        let entries = read_otadata(&mut flash, otadata).await.unwrap();
        assert_eq!(entries[1].state, OtaState::Aborted);
        let (run, events) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rel)).await;
        assert!(events.iter().any(|e| e.contains("RolledBack")), "{events:?}");
        assert!(
            matches!(run, AppRun::Idle { ref update_error } if update_error.as_deref() == Some("previously-failed")),
            "{run:?}"
        );
    });
}

#[test]
fn a_rotated_key_is_accepted_by_devices_that_hold_it_and_only_by_them() {
    runtime().block_on(async {
        time::use_virtual_time();
        let rotated: Release = rotated_release();
        let mut setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 1, OLD_PAYLOAD, 1));
        let view = boot_ok(&mut flash, &setup).await;
        let (run, events) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rotated)).await;
        assert!(matches!(run, AppRun::Activated(_)), "{run:?}");
        assert!(events.iter().any(|e| e.contains("key: 1")), "{events:?}");

        // A device built before the rotation holds only the first key.
        setup.keys.truncate(1);
        let mut flash = setup.factory_flash(&app_image(CHIP_ESP32, OLD_VERSION, 1, OLD_PAYLOAD, 1));
        let view = boot_ok(&mut flash, &setup).await;
        let (run, _) = app(&mut flash, &setup, &view, &mut World::new(&setup, &rotated)).await;
        assert!(
            matches!(run, AppRun::Idle { ref update_error } if update_error.as_deref() == Some("unknown-key")),
            "{run:?}"
        );
    });
}

#[test]
fn the_boot_step_follows_the_idf_bootloader() {
    runtime().block_on(async {
        let setup = DeviceSetup::field();
        let layout = &setup.layout.boot;
        let old = old_image();
        let new = app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2);

        // Blank otadata, no factory app: ota_0 boots and is recorded as seq 1, VALID.
        let mut flash = setup.factory_flash(&old);
        let booted = bootloader_boot(&mut flash, layout).await.unwrap();
        assert_eq!(booted.target, BootTarget::Ota(0));
        let entries = read_otadata(&mut flash, layout.otadata).await.unwrap();
        assert_eq!(
            entries,
            [OtaSelectEntry::new(1, OtaState::Valid), OtaSelectEntry::ERASED]
        );
        let ops = flash.stats().ops;
        // A settled device boots without writing anything.
        bootloader_boot(&mut flash, layout).await.unwrap();
        assert_eq!(flash.stats().ops, ops);

        // The selected slot holds no valid image: the bootloader falls back to another slot.
        write_entry(&mut flash, layout.otadata, 1, &OtaSelectEntry::new(2, OtaState::Valid))
            .await
            .unwrap();
        let booted = bootloader_boot(&mut flash, layout).await.unwrap();
        assert_eq!(booted.target, BootTarget::Ota(0));

        // With an image there, seq 2 selects ota_1; seq 3 (in sector 0) selects ota_0 again.
        flash.load(layout.ota[1].offset as usize, &new);
        assert_eq!(
            bootloader_boot(&mut flash, layout).await.unwrap().target,
            BootTarget::Ota(1)
        );
        write_entry(&mut flash, layout.otadata, 0, &OtaSelectEntry::new(3, OtaState::Valid))
            .await
            .unwrap();
        assert_eq!(
            bootloader_boot(&mut flash, layout).await.unwrap().target,
            BootTarget::Ota(0)
        );

        // An INVALID newest entry is skipped: the older valid one decides.
        write_entry(
            &mut flash,
            layout.otadata,
            0,
            &OtaSelectEntry::new(3, OtaState::Invalid),
        )
        .await
        .unwrap();
        assert_eq!(
            bootloader_boot(&mut flash, layout).await.unwrap().target,
            BootTarget::Ota(1)
        );

        // A bad CRC makes an entry invalid too.
        let mut bad = OtaSelectEntry::new(5, OtaState::Valid);
        bad.crc ^= 1;
        write_entry(&mut flash, layout.otadata, 0, &bad).await.unwrap();
        assert_eq!(
            bootloader_boot(&mut flash, layout).await.unwrap().target,
            BootTarget::Ota(1)
        );

        // Nothing bootable anywhere: reported, not guessed.
        let mut blank = SimFlash::new(sim::scenario::FLASH_BYTES, sim::flash::FlashTiming::ESP32_TYPICAL);
        assert!(matches!(
            bootloader_boot(&mut blank, layout).await,
            Err(device_fw::esp::boot::BootError::NoBootableApp)
        ));
    });
}

#[test]
fn the_update_state_machine_has_a_fixed_size() {
    // Everything one update holds across its awaits (manifest buffers, journal and slot
    // check windows, the download engine's two receive buffers) lives in its future: no
    // heap. Measured with the bench's drivers; the README states the figure.
    runtime().block_on(async {
        time::use_virtual_time();
        let setup = DeviceSetup::field();
        let mut flash = setup.factory_flash(&old_image());
        let rel = release(app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2), NEW_VERSION);
        let view = boot_ok(&mut flash, &setup).await;
        let mut world = World::new(&setup, &rel);
        let mut http = world.connect().await.unwrap();
        let mut events = |_: UpdateEvent<'_>| {};
        let fut = sim::device::attempt_update(&mut flash, &setup, &view, &mut http, &mut events);
        let bytes = std::mem::size_of_val(&fut);
        println!("update future: {bytes} bytes");
        // The raw data path in 16 KiB, and the compressed form's decoder on top (its figure
        // is tested in tests/compressed.rs).
        let decoder = device_fw::ota::inflating::DECODER_RAM_BYTES;
        assert!(bytes < 16 * 1024 + decoder, "{bytes} with a {decoder}-byte decoder");
        drop(fut);
    });
}
