//! The otactl rows of seed-cgnat on the whole shipped update path: the device fetches a
//! signed manifest from the bench origin, checks its signature, journals its progress a
//! sector at a time, downloads, reads the slot back to verify it and writes otadata, all
//! through the firmware's own `update()` and inside the scenario's virtual time. The CPU
//! work the host does for free (hashing, the signature check, AT parsing) is charged as the
//! chip would pay it ([`crate::cpu`]).
//!
//! The image is a valid ESP32 app image of exactly the row's size, so that the firmware's
//! structure checks pass; the manifest's bytes count in the row's airtime.

use std::time::Duration;

use device_fw::esp::boot::BootTarget;
use device_fw::esp::image::{CHIP_ESP32, build_test_image, reseal_test_image};
use device_fw::esp::partition::TABLE_OFFSET;
use device_fw::http::HttpClient;
use device_fw::modem::Modem;
use device_fw::ota::policy::DeviceIdentity;
use device_fw::ota::update::{UpdateEvent, update};
use device_fw::ota::{OtaEvent, SlotWriter, download};
use sha2::{Digest, Sha256};

use super::{
    RunResult, RunSpec, SeedForm, build_world, data_path_ram_bytes, device_modem_config, failed, modem_received,
    otactl_config,
};
use crate::cpu::{self, CpuFlash, CpuModel, CpuUart};
use crate::device::{DeviceSetup, MANIFEST_PATH, manifest_url, release, release_compressed, release_delta};
use crate::time::{self, BenchClock};

/// The version the bench device runs, and the one the release offers.
const RUNNING_VERSION: &str = "1.0.0";
const RELEASE_VERSION: &str = "1.1.0";

/// An ESP32 app image of exactly `len` bytes (a multiple of 16, as every size seed-cgnat
/// runs is), its payload drawn from `seed`.
pub fn app_image(len: usize, seed: u64) -> Vec<u8> {
    let payload = super::image(len, seed);
    // Header, segment header, descriptor and hash take a fixed share; pad to the exact size.
    let mut take = len.saturating_sub(400);
    loop {
        let img = build_test_image(CHIP_ESP32, RELEASE_VERSION, "field-logger", &payload[..take]);
        match img.len().cmp(&len) {
            std::cmp::Ordering::Equal => return img,
            std::cmp::Ordering::Less => take += (len - img.len()).max(1),
            std::cmp::Ordering::Greater => panic!("no app image of exactly {len} bytes"),
        }
    }
}

/// Runs one otactl row through the firmware's `update()`.
pub async fn run(spec: &RunSpec) -> RunResult {
    let model = CpuModel::ESP32C3;
    let setup = DeviceSetup::field();
    // A real firmware's bytes ride as the payload of an ESP32 app image, as in the field
    // device's sweeps; a patch's base likewise, in the running slot.
    let wrap = |version: &str, body: &[u8]| {
        let mut image = build_test_image(CHIP_ESP32, version, "field-logger", body);
        reseal_test_image(&mut image);
        image
    };
    let image = match &spec.image {
        Some(body) => wrap(RELEASE_VERSION, body),
        None => app_image(spec.image_bytes, spec.image_seed),
    };
    let (rel, base) = match &spec.form {
        SeedForm::Raw => (release(image.clone(), RELEASE_VERSION), None),
        SeedForm::Compressed => (release_compressed(image.clone(), RELEASE_VERSION), None),
        SeedForm::Delta { base } => {
            let base = wrap(RUNNING_VERSION, base);
            (release_delta(&base, image.clone(), RELEASE_VERSION), Some(base))
        }
    };
    let world = build_world(spec, &image);
    world.origin.put(MANIFEST_PATH, rel.manifest.clone());
    world.origin.put(&rel.image_path, rel.image.clone());
    for (path, bytes) in rel.compressed.iter().chain(&rel.delta) {
        world.origin.put(path, bytes.clone());
    }
    world
        .flash
        .load(TABLE_OFFSET as usize, &setup.table.to_bytes().expect("table encodes"));
    let slot = setup.layout.boot.ota[1];
    let running = setup.layout.boot.ota[0];
    if let Some(base) = &base {
        world.flash.load(running.offset as usize, base);
    }

    let cpu = world.flash.cpu();
    let uart_rx = world.device_uart.rx_control();
    let uart = CpuUart {
        uart: world.device_uart,
        cpu: cpu.clone(),
        model,
    };
    let mut modem = Modem::new(uart, BenchClock, device_modem_config(spec)).with_uart_rate(cpu::retune);
    let bring_up = time::timeout(Duration::from_secs(120), modem.bring_up()).await;
    if !matches!(bring_up, Ok(Ok(_))) {
        return failed(spec, format!("modem bring-up failed: {bring_up:?}"));
    }

    let url = match spec.tls {
        Some(_) => manifest_url().replacen("http://", "https://", 1),
        None => manifest_url(),
    };
    let start = time::now();
    let mut http = HttpClient::new(modem);
    let mut cfg = otactl_config(spec);
    cfg.uart_bytes_per_sec = http.socket().baud() / 10;
    let ram = {
        let mut probe: SlotWriter<_, 256> = SlotWriter::new(world.flash.clone(), slot);
        let (mut no_events, mut no_journal) = ((), ());
        let fut = download(
            &mut http,
            &mut probe,
            &BenchClock,
            &cfg,
            &device_fw::ota::ImageTarget {
                url: "",
                size: None,
                sha256: None,
            },
            Sha256::new(),
            &mut no_events,
            &mut no_journal,
        );
        data_path_ram_bytes(std::mem::size_of_val(&fut))
    };

    let mut flash = CpuFlash {
        flash: world.flash.clone(),
        slot: (slot.offset, slot.size),
        base: base.is_some().then_some((running.offset, running.size)),
        model,
        decode_ns_per_byte: match spec.form {
            SeedForm::Raw => 0.0,
            SeedForm::Compressed => model.lzma_ns_per_byte,
            SeedForm::Delta { .. } => model.patch_ns_per_byte,
        },
    };
    let device = DeviceIdentity {
        product: &setup.profile.device.product,
        channel: &setup.profile.release.channel,
        chip: setup.chip(),
        board: &setup.profile.device.board,
        running_version: RUNNING_VERSION,
        secure_version: 0,
        failed_version: None,
        slot_size: 0,
        device_id: &setup.device_id,
    };
    let (mut chunks, mut resumes, mut written) = (0u32, 0u32, 0u64);
    let trace = spec.trace;
    let mut events = |e: UpdateEvent<'_>| {
        match &e {
            // The signature check follows at once, before any other I/O.
            UpdateEvent::ManifestFetched { .. } => model.charge_verify(&cpu),
            UpdateEvent::Download(OtaEvent::ChunkRequested { .. }) => chunks += 1,
            UpdateEvent::Download(OtaEvent::Resumed { .. }) => resumes += 1,
            UpdateEvent::Download(OtaEvent::Progress { written: w, .. }) => written = *w,
            _ => {}
        }
        if trace {
            eprintln!("[{:>9.3} s] {e:?}", time::now().as_secs_f64());
        }
    };
    let result = time::timeout(
        spec.deadline,
        update(
            &mut http,
            &mut flash,
            &BenchClock,
            &cfg,
            &setup.layout,
            &device,
            BootTarget::Ota(0),
            &setup.keys,
            &url,
            &mut events,
        ),
    )
    .await;
    world.flash.cpu().wait().await;
    let virtual_s = (time::now() - start).as_secs_f64();
    let (outcome, error) = match result {
        Ok(Ok(_)) => ("updated", None),
        Ok(Err(e)) => ("failed", Some(format!("{e:?}"))),
        Err(_) => ("failed", Some("deadline passed".to_owned())),
    };
    if outcome == "updated" {
        written = image.len() as u64;
    }
    RunResult {
        outcome,
        virtual_s,
        bytes_written: written,
        ratio: virtual_s / spec.uart_limit_s(),
        nat_drops: world.net.stats().nat_expiries,
        airtime_overhead: modem_received(&world.modem) as f64 / image.len() as f64,
        tls: super::TlsCost::of(spec, &world.modem),
        chunks: Some(chunks),
        resumes,
        requests: Some(chunks),
        faults: 0,
        uart_bytes_lost: uart_rx.bytes_lost(),
        error,
        slot_matches: world.flash.snapshot(slot.offset as usize, image.len()) == image,
        data_path_ram_bytes: Some(ram),
        ..RunResult::new(spec)
    }
}

/// The CPU model the otactl rows of seed-cgnat are charged with, and its sources.
pub fn cpu_model_json() -> serde_json::Value {
    serde_json::json!({
        "model": CpuModel::ESP32C3,
        "sources": CpuModel::SOURCES,
        "cpu_hz": cpu::CPU_HZ,
        "charged": "SHA-256 per byte programmed into or read back from the target slot; decoding per image byte of the compressed form or a patch; one Ed25519 verify per manifest; one AT line per \\n the device reads",
    })
}

/// Whether `spec` runs on the whole shipped path: the otactl rows of seed-cgnat.
pub fn applies(spec: &RunSpec) -> bool {
    spec.strategy == super::Strategy::Otactl && spec.scenario == "seed-cgnat" && spec.faults == super::Faults::None
}
