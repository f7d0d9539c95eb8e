//! The trust and atomicity proofs: a power cut at every flash operation of an update, and
//! hostile releases of every kind, each on the whole virtual device.

use std::time::Instant;

use device_fw::esp::boot::BootError;
use device_fw::esp::image::{APP_DESC_OFFSET, AppImage, CHIP_ESP32, CHIP_ESP32C3, build_test_image, reseal_test_image};
use device_fw::esp::otadata::SECTOR_LEN;
use device_fw::ota::update::UpdateEvent;
use device_fw::wire::manifest::{Manifest, write_hex};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::device::{
    AppRun, DeviceSetup, Release, World, boot, image_path, manifest_for, next_release_key, release, release_compressed,
    release_compressed_edited, release_delta, release_delta_edited, release_key, run_app, seal_payload, sign,
};
use crate::flash::SimFlash;
use crate::scenario::image as random_bytes;
use crate::time;

/// The version the factory image runs, and the one each release offers.
pub const OLD_VERSION: &str = "1.0.0";
pub const NEW_VERSION: &str = "1.1.0";
/// The bench's app images: small, so that a sweep over every flash operation stays quick.
pub const OLD_PAYLOAD: usize = 40 * 1024;
pub const NEW_PAYLOAD: usize = 60 * 1024;
/// The power-cut sweep's new image: just past one 64 KiB flash block, so that the sweep cuts
/// a block erase as well as sector erases and page programs.
pub const SWEEP_PAYLOAD: usize = 68 * 1024;
/// Boots after which a life that has not settled counts as not completed.
const MAX_BOOTS: u32 = 16;

/// An ESP32 app image with this version and anti-rollback counter.
pub fn app_image(chip_id: u16, version: &str, secure_version: u32, payload: usize, seed: u64) -> Vec<u8> {
    let mut img = build_test_image(chip_id, version, "field-logger", &random_bytes(payload, seed));
    img[APP_DESC_OFFSET + 4..APP_DESC_OFFSET + 8].copy_from_slice(&secure_version.to_le_bytes());
    reseal_test_image(&mut img);
    img
}

/// The image the field device runs before each update: [`OLD_VERSION`].
pub fn old_image() -> Vec<u8> {
    app_image(CHIP_ESP32, OLD_VERSION, 0, OLD_PAYLOAD, 1)
}

/// A new version made from [`old_image`]'s payload the way a code change makes one: its
/// bytes moved (the payload twice over, cut to `payload` bytes), a new 700-byte function
/// inserted, and a few address bytes changed every 2 KiB. So its patch has operations of
/// both kinds, reads the base at other offsets than it writes, and crosses segments.
pub fn changed_app_image(payload: usize) -> Vec<u8> {
    let base = random_bytes(OLD_PAYLOAD, 1);
    let mut body: Vec<u8> = base.iter().chain(&base).copied().take(payload).collect();
    let at = body.len() / 3;
    body.splice(at..at, random_bytes(700, 31));
    body.truncate(payload);
    for i in (100..body.len()).step_by(2048) {
        body[i] = body[i].wrapping_add(4);
    }
    let mut img = build_test_image(CHIP_ESP32, NEW_VERSION, "field-logger", &body);
    reseal_test_image(&mut img);
    img
}

/// An app image whose payload looks like code to a compressor: 1 KiB "functions" drawn from
/// a pool of 24, each copy slightly changed, so matches reach across segments and up to the
/// 32 KiB window, as in a real firmware image.
pub fn compressible_app_image(chip_id: u16, version: &str, payload: usize, seed: u64) -> Vec<u8> {
    let pool: Vec<Vec<u8>> = (0..24).map(|i| random_bytes(1024, seed * 100 + i)).collect();
    let picks = random_bytes(payload / 1024 + 1, seed + 7);
    let mut body = Vec::with_capacity(payload + 1024);
    for (n, pick) in picks.iter().enumerate() {
        let mut f = pool[usize::from(*pick) % pool.len()].clone();
        f[n % 1024] ^= 0x5A;
        body.extend_from_slice(&f);
    }
    body.truncate(payload);
    let mut img = build_test_image(chip_id, version, "field-logger", &body);
    reseal_test_image(&mut img);
    img
}

/// Which form of the release a device is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The image as it is (a manifest without `compressed`).
    Raw,
    /// The manifest also lists the compressed form, which the device takes.
    Compressed,
    /// The manifest also lists a patch from the image the device runs, which it takes.
    Delta,
}

impl Form {
    /// The sweep's new image and its release in this form: random bytes for the raw form
    /// (as before), a code-like image for the compressed one, so that its back-references
    /// reach into the slot.
    fn release(self, payload: usize) -> (Vec<u8>, Release) {
        match self {
            Form::Raw => {
                let new = app_image(CHIP_ESP32, NEW_VERSION, 0, payload, 2);
                (new.clone(), release(new, NEW_VERSION))
            }
            Form::Compressed => {
                let new = compressible_app_image(CHIP_ESP32, NEW_VERSION, payload, 2);
                (new.clone(), release_compressed(new, NEW_VERSION))
            }
            Form::Delta => {
                let new = changed_app_image(payload);
                (new.clone(), release_delta(&old_image(), new, NEW_VERSION))
            }
        }
    }
}

/// How one device life (factory image → update → confirmed) went.
#[derive(Debug, Clone, Serialize)]
pub struct Life {
    /// The flash operation the power was cut at, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_at: Option<u64>,
    pub boots: u32,
    /// No bootable image after a boot.
    pub bricked: bool,
    /// A boot started an image that is neither the old nor the new signed one.
    pub wrong_image: bool,
    /// The new version runs, confirmed VALID.
    pub completed: bool,
    /// Download restarts from a journaled offset.
    pub resumed_from_journal: u32,
    pub flash_ops: u64,
    /// Of those, 64 KiB block erases.
    pub block_erases: u64,
    pub virtual_s: f64,
    /// Response body bytes the origin sent, manifests included: what the update cost over
    /// the air.
    pub body_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One life of the field device updating from [`OLD_VERSION`] to [`NEW_VERSION`] (an image
/// of `payload` bytes and its headers), with the power cut during flash operation `cut_at`
/// (counted from the first boot).
pub fn life(cut_at: Option<u64>, payload: usize) -> Life {
    life_in(Form::Raw, cut_at, payload)
}

/// [`life`] with the release offered in `form`.
pub fn life_in(form: Form, cut_at: Option<u64>, payload: usize) -> Life {
    time::run_virtual(life_async(cut_at, old_image(), form.release(payload)))
}

/// An uncut life of the device running [`old_image`], offered `rel` (whose image is `new`).
pub fn life_with_release(new: Vec<u8>, rel: Release) -> Life {
    time::run_virtual(life_async(None, old_image(), (new, rel)))
}

/// An uncut life whose new image carries `body` (e.g. a real firmware's bytes) as its
/// payload, released in `form`: what the update of such an image costs on the field device.
/// For [`Form::Delta`] the device runs an image carrying `base_body` (the firmware the
/// patch is made from); otherwise [`old_image`].
pub fn life_carrying(form: Form, base_body: &[u8], body: &[u8]) -> Life {
    let wrap = |version: &str, body: &[u8]| {
        let mut image = build_test_image(CHIP_ESP32, version, "field-logger", body);
        reseal_test_image(&mut image);
        image
    };
    let new = wrap(NEW_VERSION, body);
    let (old, rel) = match form {
        Form::Raw => (old_image(), release(new.clone(), NEW_VERSION)),
        Form::Compressed => (old_image(), release_compressed(new.clone(), NEW_VERSION)),
        Form::Delta => {
            let old = wrap(OLD_VERSION, base_body);
            let rel = release_delta(&old, new.clone(), NEW_VERSION);
            (old, rel)
        }
    };
    time::run_virtual(life_async(None, old, (new, rel)))
}

async fn life_async(cut_at: Option<u64>, old: Vec<u8>, (new, rel): (Vec<u8>, Release)) -> Life {
    let setup = DeviceSetup::field();
    let known = [Sha256::digest(&old).into(), Sha256::digest(&new).into()];
    let mut flash = setup.factory_flash(&old);
    if let Some(op) = cut_at {
        flash.cut_power_at(op);
    }
    let start = time::now();
    let mut life = Life {
        cut_at,
        boots: 0,
        bricked: false,
        wrong_image: false,
        completed: false,
        resumed_from_journal: 0,
        flash_ops: 0,
        block_erases: 0,
        virtual_s: 0.0,
        body_bytes: 0,
        error: None,
    };
    while life.boots < MAX_BOOTS {
        life.boots += 1;
        let view = match boot(&mut flash, &setup).await {
            Ok(Some(view)) => view,
            Ok(None) => {
                flash.power_on();
                continue;
            }
            Err(BootError::NoBootableApp) => {
                life.bricked = true;
                break;
            }
            Err(e) => {
                life.error = Some(format!("boot: {e}"));
                break;
            }
        };
        if !known.contains(&view.sha256) {
            life.wrong_image = true;
            break;
        }
        let mut world = World::new(&setup, &rel);
        let mut resumed = 0;
        let mut events = |e: UpdateEvent<'_>| {
            if matches!(e, UpdateEvent::Resuming { .. }) {
                resumed += 1;
            }
        };
        let run = run_app(&mut flash, &setup, &view, &mut world, &mut events).await;
        life.resumed_from_journal += resumed;
        life.body_bytes += world.origin.as_ref().map_or(0, |o| o.stats().body_bytes_sent);
        match run {
            AppRun::PowerLost => flash.power_on(),
            AppRun::RollbackRequested | AppRun::Activated(_) => {}
            AppRun::Idle { update_error } => {
                if view.version == NEW_VERSION {
                    life.completed = confirmed_on_next_boot(&mut flash, &setup).await;
                } else {
                    life.error = Some(format!("update refused: {update_error:?}"));
                }
                break;
            }
            AppRun::Failed(e) => {
                life.error = Some(e);
                break;
            }
        }
    }
    life.flash_ops = flash.stats().ops;
    life.block_erases = flash.stats().block_erases;
    life.virtual_s = (time::now() - start).as_secs_f64();
    life
}

/// The settled state survives a plain reboot: the new version boots again, VALID.
async fn confirmed_on_next_boot(flash: &mut SimFlash, setup: &DeviceSetup) -> bool {
    matches!(
        boot(flash, setup).await,
        Ok(Some(v)) if v.version == NEW_VERSION && v.booted.state == device_fw::esp::otadata::OtaState::Valid
    )
}

/// The power-cut sweep's summary line.
#[derive(Debug, Clone, Serialize)]
pub struct PowerCutSummary {
    pub scenario: &'static str,
    pub form: Form,
    pub image_bytes: usize,
    /// Flash operations (erases and programs) of an uncut update, first boot to confirm.
    pub flash_ops: u64,
    /// Of those, 64 KiB block erases (each one of the cuts).
    pub block_erases: u64,
    /// Operation indices swept: a cut at each of them in turn.
    pub cuts: u64,
    pub bricked: u64,
    pub wrong_image: u64,
    pub completed: u64,
    /// Cuts after which the download carried on from the journal rather than byte 0.
    pub resumed_from_journal: u64,
    pub max_boots: u32,
    pub wall_s: f64,
}

/// Sweeps a power cut over every flash operation of an update to an image of `payload`
/// bytes (plus headers), on `jobs` threads.
pub fn power_cut_sweep(jobs: usize, payload: usize, on_failure: impl FnMut(&Life)) -> (Life, PowerCutSummary) {
    power_cut_sweep_in(Form::Raw, jobs, payload, on_failure)
}

/// [`power_cut_sweep`] with the release offered in `form`.
pub fn power_cut_sweep_in(
    form: Form,
    jobs: usize,
    payload: usize,
    mut on_failure: impl FnMut(&Life),
) -> (Life, PowerCutSummary) {
    let wall = Instant::now();
    let clean = life_in(form, None, payload);
    let ops = clean.flash_ops;
    let next = std::sync::atomic::AtomicU64::new(0);
    let lives = std::sync::Mutex::new(Vec::with_capacity(ops as usize));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let op = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if op >= ops {
                        break;
                    }
                    let l = life_in(form, Some(op), payload);
                    lives.lock().expect("results lock").push(l);
                }
            });
        }
    });
    let mut lives = lives.into_inner().expect("results lock");
    lives.sort_by_key(|l| l.cut_at);
    let mut summary = PowerCutSummary {
        scenario: "power-cut",
        form,
        image_bytes: form.release(payload).0.len(),
        flash_ops: ops,
        block_erases: clean.block_erases,
        cuts: lives.len() as u64,
        bricked: 0,
        wrong_image: 0,
        completed: 0,
        resumed_from_journal: 0,
        max_boots: 0,
        wall_s: 0.0,
    };
    for l in &lives {
        summary.bricked += u64::from(l.bricked);
        summary.wrong_image += u64::from(l.wrong_image);
        summary.completed += u64::from(l.completed);
        summary.resumed_from_journal += u64::from(l.resumed_from_journal > 0);
        summary.max_boots = summary.max_boots.max(l.boots);
        if !l.completed || l.bricked || l.wrong_image {
            on_failure(l);
        }
    }
    summary.wall_s = wall.elapsed().as_secs_f64();
    (clean, summary)
}

/// One hostile release and what the device made of it.
#[derive(Debug, Clone, Serialize)]
pub struct HostileResult {
    pub case: &'static str,
    pub rejected: bool,
    /// The device's error code (the console's reason).
    pub error: Option<String>,
    /// The code this case must produce.
    pub expected: &'static str,
    /// Running slot bytes and otadata unchanged, and the old version still boots.
    pub running_slot_intact: bool,
}

/// What the origin serves and how the device stands, for one case.
#[derive(Debug, Clone)]
pub struct Stage {
    pub release: Release,
    /// A version the device's journal already records as failed.
    pub failed_before: Option<&'static str>,
}

fn sha_hex(bytes: &[u8]) -> String {
    let mut hex = [0u8; 64];
    write_hex(&Sha256::digest(bytes), &mut hex).to_owned()
}

/// The image reference a release of `image` carries (relative to the manifest).
fn image_ref(image: &[u8]) -> String {
    format!("..{}", &image_path(&Sha256::digest(image).into())["/fleet".len()..])
}

/// A release of `image` whose manifest is `edit`ed before signing with `key`; signed raw
/// (without the host's validation), as a hostile or broken publisher could.
fn staged(image: Vec<u8>, key: &SigningKey, edit: impl FnOnce(&mut Manifest<'_>)) -> Stage {
    let sha = sha_hex(&image);
    let reference = image_ref(&image);
    let mut m = manifest_for(&image, NEW_VERSION, &sha, &reference);
    m.secure_version = 1;
    edit(&mut m);
    let payload = serde_json::to_vec(&m).expect("manifest serialises");
    Stage {
        release: Release {
            manifest: seal_payload(&payload, &[key]),
            image_path: image_path(&Sha256::digest(&image).into()),
            image,
            compressed: None,
            delta: None,
        },
        failed_before: None,
    }
}

fn new_image() -> Vec<u8> {
    app_image(CHIP_ESP32, NEW_VERSION, 1, NEW_PAYLOAD, 2)
}

/// A signed release with a patch from the image the hostile cases' device runs, the
/// patch's bytes then changed by `corrupt` (size kept, as the manifest signed it).
fn staged_patch(corrupt: impl FnOnce(&mut Vec<u8>)) -> Stage {
    let running = app_image(CHIP_ESP32, OLD_VERSION, 1, OLD_PAYLOAD, 1);
    let mut release = release_delta_edited(&running, new_image(), NEW_VERSION, |m| m.secure_version = 1);
    let (_, patch) = release.delta.as_mut().expect("a patch");
    corrupt(patch);
    Stage {
        release,
        failed_before: None,
    }
}

/// A signed release listing its compressed form, `corrupt` applied to that form.
fn staged_compressed(corrupt: impl FnOnce(&mut Vec<u8>)) -> Stage {
    let mut release = release_compressed_edited(new_image(), NEW_VERSION, |m| m.secure_version = 1);
    let (_, packed) = release.compressed.as_mut().expect("a compressed form");
    corrupt(packed);
    Stage {
        release,
        failed_before: None,
    }
}

fn with_manifest(mut stage: Stage, f: impl FnOnce(&mut serde_json::Value)) -> Stage {
    let mut v: serde_json::Value = serde_json::from_slice(&stage.release.manifest).expect("envelope is JSON");
    f(&mut v);
    stage.release.manifest = serde_json::to_vec(&v).expect("envelope serialises");
    stage
}

/// A valid image, then `corrupt` applied to it, then signed as it stands.
fn signed_broken_image(corrupt: impl FnOnce(&mut Vec<u8>)) -> Stage {
    let mut img = new_image();
    corrupt(&mut img);
    staged(img, &release_key(), |_| {})
}

pub type CaseBuilder = fn() -> Stage;

/// Every hostile case: name, the error it must produce, and how to stage it.
pub fn hostile_cases() -> Vec<(&'static str, &'static str, CaseBuilder)> {
    vec![
        ("bad-signature", "bad-signature", || {
            // The payload of one signed manifest under the signature of another.
            let honest = staged(new_image(), &release_key(), |_| {});
            let other = staged(new_image(), &release_key(), |m| m.version = "9.9.9");
            let payload =
                serde_json::from_slice::<serde_json::Value>(&other.release.manifest).unwrap()["payload"].clone();
            with_manifest(honest, |v| v["payload"] = payload)
        }),
        ("unknown-key", "unknown-key", || {
            staged(new_image(), &SigningKey::from_bytes(&[0x99; 32]), |_| {})
        }),
        ("truncated-manifest", "manifest-malformed", || {
            let mut s = staged(new_image(), &release_key(), |_| {});
            let half = s.release.manifest.len() / 2;
            s.release.manifest.truncate(half);
            s
        }),
        ("field-over-limit", "field-too-long", || {
            staged(new_image(), &release_key(), |m| {
                m.board = "m5stack-core-with-a-board-name-too-long"
            })
        }),
        ("wrong-product", "wrong-product", || {
            staged(new_image(), &release_key(), |m| m.product = "water-meter")
        }),
        ("wrong-chip", "wrong-chip", || {
            staged(new_image(), &release_key(), |m| m.chip = "esp32c3")
        }),
        ("wrong-board", "wrong-board", || {
            staged(new_image(), &release_key(), |m| m.board = "esp32-devkitc")
        }),
        ("downgrade", "not-newer", || {
            let img = app_image(CHIP_ESP32, "0.9.0", 1, NEW_PAYLOAD, 3);
            staged(img, &release_key(), |m| m.version = "0.9.0")
        }),
        ("lower-secure-version", "secure-version-too-low", || {
            let img = app_image(CHIP_ESP32, NEW_VERSION, 0, NEW_PAYLOAD, 2);
            staged(img, &release_key(), |m| m.secure_version = 0)
        }),
        ("oversize-image", "image-too-large", || {
            staged(new_image(), &release_key(), |m| m.size = 0x20_0000)
        }),
        ("hash-mismatch", "hash-mismatch", || {
            let mut s = staged(new_image(), &release_key(), |_| {});
            let mid = s.release.image.len() / 2;
            s.release.image[mid] ^= 0x01;
            s
        }),
        ("patch-with-a-broken-operation", "patch-corrupt", || {
            staged_patch(|p| {
                // The first segment's DEFLATE made to say "literal of 0 bytes, then stop".
                let header = device_fw::wire::delta::HEADER_LEN;
                let len = usize::from(u16::from_le_bytes([p[header], p[header + 1]]));
                let stored = [0x01, 0x01, 0x00, 0xFE, 0xFF, 0x01];
                let mut first = vec![0u8; len];
                first[..stored.len()].copy_from_slice(&stored);
                p[header + 2..header + 2 + len].copy_from_slice(&first);
            })
        }),
        ("undecodable-compressed-form", "compressed-image-corrupt", || {
            staged_compressed(|p| {
                // The first segment's range coder made to start with a byte LZMA never
                // writes there.
                p[device_fw::wire::compressed::HEADER_LEN + 2] = 0x80;
            })
        }),
        ("server-length-differs", "size-mismatch", || {
            let mut s = staged(new_image(), &release_key(), |_| {});
            s.release.image.extend_from_slice(&[0u8; 16]);
            s
        }),
        ("truncated-image", "image-segment-out-of-bounds", || {
            signed_broken_image(|img| img.truncate(img.len() * 3 / 5))
        }),
        ("wrong-image-magic", "image-bad-magic", || {
            signed_broken_image(|img| img[0] = 0xE8)
        }),
        ("wrong-chip-id-in-image", "image-wrong-chip", || {
            staged(
                app_image(CHIP_ESP32C3, NEW_VERSION, 1, NEW_PAYLOAD, 2),
                &release_key(),
                |_| {},
            )
        }),
        ("bad-checksum-byte", "image-bad-checksum", || {
            signed_broken_image(|img| {
                let cs = AppImage::parse(img).unwrap().checksum_offset;
                img[cs] ^= 0xFF;
                // Re-hash so that only the checksum is wrong, as the bootloader checks it first.
                let hash = Sha256::digest(&img[..cs + 1]);
                img[cs + 1..cs + 33].copy_from_slice(&hash);
            })
        }),
        ("bad-appended-sha256", "image-bad-appended-sha256", || {
            signed_broken_image(|img| {
                let last = img.len() - 1;
                img[last] ^= 0x01;
            })
        }),
        ("app-descriptor-missing", "image-no-app-descriptor", || {
            signed_broken_image(|img| {
                img[APP_DESC_OFFSET..APP_DESC_OFFSET + 4].fill(0);
                reseal_test_image(img);
            })
        }),
        ("app-version-differs", "app-version-mismatch", || {
            staged(
                app_image(CHIP_ESP32, "1.2.0", 1, NEW_PAYLOAD, 2),
                &release_key(),
                |_| {},
            )
        }),
        ("secure-version-differs", "secure-version-mismatch", || {
            staged(new_image(), &release_key(), |m| m.secure_version = 2)
        }),
        ("previously-failed-version", "previously-failed", || Stage {
            failed_before: Some(NEW_VERSION),
            ..staged(new_image(), &release_key(), |_| {})
        }),
        ("replayed-from-another-channel", "wrong-channel", || {
            staged(new_image(), &release_key(), |m| m.channel = "beta")
        }),
        ("newer-schema", "unsupported-schema", || {
            staged(new_image(), &release_key(), |m| m.schema = 2)
        }),
        ("unsigned-manifest", "manifest-unsigned", || {
            with_manifest(staged(new_image(), &release_key(), |_| {}), |v| {
                v["signatures"] = serde_json::json!([])
            })
        }),
        ("wrong-payload-type", "manifest-wrong-type", || {
            with_manifest(staged(new_image(), &release_key(), |_| {}), |v| {
                v["payloadType"] = serde_json::json!("application/json")
            })
        }),
        ("oversized-manifest", "manifest-too-large", || {
            let mut s = staged(new_image(), &release_key(), |_| {});
            s.release.manifest = vec![b' '; 64 * 1024];
            s
        }),
    ]
}

/// Runs one hostile case on a device running [`OLD_VERSION`] (secure_version 1).
pub fn hostile(case: &'static str, expected: &'static str, build: CaseBuilder) -> HostileResult {
    time::run_virtual(async move {
        let setup = DeviceSetup::field();
        let old = app_image(CHIP_ESP32, OLD_VERSION, 1, OLD_PAYLOAD, 1);
        let mut flash = setup.factory_flash(&old);
        let stage = build();
        let mut result = HostileResult {
            case,
            rejected: false,
            error: None,
            expected,
            running_slot_intact: false,
        };
        // First boot settles otadata (the bootloader records ota_0 as booted).
        let Ok(Some(view)) = boot(&mut flash, &setup).await else {
            result.error = Some("factory image did not boot".into());
            return result;
        };
        if let Some(v) = stage.failed_before {
            setup
                .layout
                .journal
                .record_failed_version(&mut flash, v)
                .await
                .expect("journal writes");
        }
        let running = setup.layout.boot.ota[0];
        let otadata = setup.layout.boot.otadata;
        let before = (
            flash.snapshot(running.offset as usize, running.size as usize),
            flash.snapshot(otadata as usize, 2 * SECTOR_LEN as usize),
        );
        let mut world = World::new(&setup, &stage.release);
        match run_app(&mut flash, &setup, &view, &mut world, &mut |_| {}).await {
            AppRun::Idle { update_error } => {
                result.rejected = update_error.is_some();
                result.error = update_error;
            }
            AppRun::Activated(_) => result.error = Some("activated".into()),
            other => result.error = Some(format!("{other:?}")),
        }
        let after = (
            flash.snapshot(running.offset as usize, running.size as usize),
            flash.snapshot(otadata as usize, 2 * SECTOR_LEN as usize),
        );
        let reboots_old = matches!(boot(&mut flash, &setup).await, Ok(Some(v)) if v.version == OLD_VERSION);
        result.running_slot_intact = before == after && reboots_old;
        result
    })
}

/// All hostile cases, in order.
pub fn hostile_sweep() -> Vec<HostileResult> {
    hostile_cases()
        .into_iter()
        .map(|(case, expected, build)| hostile(case, expected, build))
        .collect()
}

/// A release signed by the successor key only: what a device sees after a key rotation.
pub fn rotated_release() -> Release {
    let img = new_image();
    let sha = sha_hex(&img);
    let reference = image_ref(&img);
    let mut m = manifest_for(&img, NEW_VERSION, &sha, &reference);
    m.secure_version = 1;
    Release {
        manifest: sign(&m, &[&next_release_key()]),
        image_path: image_path(&Sha256::digest(&img).into()),
        image: img,
        compressed: None,
        delta: None,
    }
}
