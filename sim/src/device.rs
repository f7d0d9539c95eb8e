//! The virtual device: the device core's whole update life on the bench. Factory flash, the
//! ESP-IDF bootloader's boot step, the app's start duties (confirm or roll back), updates
//! from a signed release, reboots, and power cuts that can land on any flash operation.
//!
//! A power cut stops everything: flash, modem, network. So each boot builds a fresh world
//! (origin, network, modem) around the one flash chip, which alone keeps its contents.

use std::time::Duration;

use device_fw::app::AppConfig;
use device_fw::esp::boot::{BootError, BootTarget, Booted, bootloader_boot};
use device_fw::esp::chip::Chip;
use device_fw::esp::partition::{PartitionTable, TABLE_OFFSET};
use device_fw::http::HttpClient;
use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig};
use device_fw::ota::policy::DeviceIdentity;
use device_fw::ota::update::{
    Activated, BootReport, Running, UpdateError, UpdateEvent, UpdateLayout, after_boot, self_test, update,
};
use device_fw::profile::Profile;
use device_fw::wire::manifest::{Alternate, MAX_ENVELOPE, MAX_PAYLOAD, Manifest, Patch, seal, write_hex};
use device_fw::wire::rollout::Rollout;
use device_fw::wire::{compressed, delta};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::flash::{FlashError, FlashTiming, SimFlash};
use crate::modem::{Dialect as EmuDialect, ModemEmulatorConfig, spawn_modem};
use crate::net::{NatConfig, NatExpiry, NetConfig, Network};
use crate::origin::{OriginBehaviour, OriginHandle, spawn_origin};
use crate::scenario::{FLASH_BYTES, ORIGIN_HOST, profile_for};
use crate::time::{self, BenchClock};
use crate::uart::{UartEnd, chip_uart, retune};

pub const PRODUCT: &str = "field-logger";
pub const CHANNEL: &str = "stable";
pub const MANIFEST_PATH: &str = "/fleet/stable/manifest.json";
/// The bench device's id, in place of the one the firmware derives from the chip's MAC.
pub const BENCH_DEVICE_ID: &str = "bench-device-1";
/// Where `otactl release` puts an image: content-addressed, beside the channels.
pub fn image_path(sha256: &[u8; 32]) -> String {
    let mut hex = [0u8; 64];
    format!("/fleet/images/{}.bin", write_hex(sha256, &mut hex))
}
pub fn manifest_url() -> String {
    format!("http://{ORIGIN_HOST}{MANIFEST_PATH}")
}

/// The bench's release key and its successor (rotation), fixed so runs are reproducible.
pub fn release_key() -> SigningKey {
    SigningKey::from_bytes(&[0x11; 32])
}
pub fn next_release_key() -> SigningKey {
    SigningKey::from_bytes(&[0x22; 32])
}

/// A device as it leaves the factory: profile, trusted keys, partition table.
#[derive(Debug, Clone)]
pub struct DeviceSetup {
    pub profile: Profile,
    pub keys: Vec<[u8; 32]>,
    pub table: PartitionTable,
    pub layout: UpdateLayout,
    /// The id the device's cohort and reports come from (the firmware derives it from the
    /// chip's MAC).
    pub device_id: String,
    /// The CA certificate (PEM) `https://` servers are checked against, as the firmware
    /// build compiles it in.
    pub ca_cert: Option<&'static [u8]>,
}

impl DeviceSetup {
    /// The field device (M5Stack Core, ESP32, SIM7600), trusting the bench's two keys.
    pub fn field() -> Self {
        let profile = profile_for(EmuDialect::Sim7600);
        let table = PartitionTable::otactl_two_ota();
        let layout = UpdateLayout::from_table(&table, profile.device.chip).expect("otactl layout carries updates");
        DeviceSetup {
            keys: vec![
                release_key().verifying_key().to_bytes(),
                next_release_key().verifying_key().to_bytes(),
            ],
            profile,
            table,
            layout,
            device_id: BENCH_DEVICE_ID.to_owned(),
            ca_cert: None,
        }
    }

    pub fn chip(&self) -> Chip {
        self.profile.device.chip
    }

    /// The profile's modem settings, for the bench's SIM7600 emulator.
    pub fn modem_config(&self) -> ModemConfig {
        let mut cfg = self.profile.modem_config().expect("bench profiles have a valid APN");
        cfg.dialect = DeviceDialect::Sim7600;
        cfg.ca_cert = self.ca_cert;
        cfg
    }

    /// What the firmware's build would give the app, from the profile.
    pub fn app_config<'a>(&'a self, manifest_url: &'a str) -> AppConfig<'a> {
        AppConfig {
            product: &self.profile.device.product,
            channel: &self.profile.release.channel,
            board: &self.profile.device.board,
            chip: self.chip(),
            project: "field-logger",
            manifest_url,
            keys: &self.keys,
            download: self.profile.download_config(),
            layout: self.layout.clone(),
            modem: self.modem_config(),
            device_id: &self.device_id,
            update: self.profile.update_policy(),
            report_url: self.profile.release.report_url.as_deref(),
        }
    }

    /// A blank chip with the partition table and `app` in ota_0, otadata erased: what
    /// `otactl flash` leaves. Written without flash timing or operation counts.
    pub fn factory_flash(&self, app: &[u8]) -> SimFlash {
        let flash = SimFlash::new(FLASH_BYTES, FlashTiming::ESP32_TYPICAL);
        flash.load(TABLE_OFFSET as usize, &self.table.to_bytes().expect("table encodes"));
        flash.load(self.layout.boot.ota[0].offset as usize, app);
        flash
    }
}

/// What the origin serves for one release.
#[derive(Debug, Clone)]
pub struct Release {
    pub manifest: Vec<u8>,
    pub image: Vec<u8>,
    pub image_path: String,
    /// The compressed form's path and bytes, when the manifest lists one.
    pub compressed: Option<(String, Vec<u8>)>,
    /// The patch's path and bytes, when the manifest lists one.
    pub delta: Option<(String, Vec<u8>)>,
}

/// The manifest fields for `image`, as `otactl release` would fill them.
pub fn manifest_for<'a>(image: &[u8], version: &'a str, sha_hex: &'a str, image_ref: &'a str) -> Manifest<'a> {
    Manifest {
        schema: 1,
        product: PRODUCT,
        channel: CHANNEL,
        version,
        chip: "esp32",
        board: "m5stack-core",
        image: image_ref,
        size: image.len() as u32,
        sha256: sha_hex,
        secure_version: 0,
        created: "2026-11-24T04:00:00Z",
        rollout: None,
        compressed: None,
        delta: None,
    }
}

/// Signs `manifest` (validated first) with `keys` into an envelope.
pub fn sign(manifest: &Manifest<'_>, keys: &[&SigningKey]) -> Vec<u8> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = manifest.encode(&mut payload).expect("bench manifests are valid");
    seal_payload(&payload[..n], keys)
}

/// Signs raw payload bytes, valid or not: what a careless or hostile signer could publish.
pub fn seal_payload(payload: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_ENVELOPE];
    let n = seal(payload, keys, &mut out).expect("payload fits");
    out.truncate(n);
    out
}

/// A correctly signed release of `image` at `version`, for every device.
pub fn release(image: Vec<u8>, version: &str) -> Release {
    release_staged(image, version, None)
}

/// A correctly signed release of `image` at `version` with a staged `rollout`.
pub fn release_staged(image: Vec<u8>, version: &str, rollout: Option<Rollout<'_>>) -> Release {
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let mut hex = [0u8; 64];
    let sha_hex = write_hex(&sha, &mut hex).to_owned();
    let image_path = image_path(&sha);
    let image_ref = format!("..{}", &image_path["/fleet".len()..]);
    let manifest = Manifest {
        rollout,
        ..manifest_for(&image, version, &sha_hex, &image_ref)
    };
    let manifest = sign(&manifest, &[&release_key()]);
    Release {
        manifest,
        image,
        image_path,
        compressed: None,
        delta: None,
    }
}

/// A correctly signed release of `image` at `version` that also lists its compressed form
/// ([`device_fw::wire::compressed`]), as `otactl release` publishes it.
pub fn release_compressed(image: Vec<u8>, version: &str) -> Release {
    release_compressed_edited(image, version, |_| {})
}

/// [`release_compressed`] with the manifest edited before it is signed.
pub fn release_compressed_edited(image: Vec<u8>, version: &str, edit: impl FnOnce(&mut Manifest<'_>)) -> Release {
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let mut hex = [0u8; 64];
    let sha_hex = write_hex(&sha, &mut hex).to_owned();
    let image_path = image_path(&sha);
    let image_ref = format!("..{}", &image_path["/fleet".len()..]);
    let packed = compressed::compress(&image).expect("bench images compress");
    let packed_path = image_path.replace(".bin", ".otz2");
    let packed_ref = format!("..{}", &packed_path["/fleet".len()..]);
    let mut manifest = Manifest {
        compressed: Some(Alternate {
            image: &packed_ref,
            size: packed.len() as u32,
        }),
        ..manifest_for(&image, version, &sha_hex, &image_ref)
    };
    edit(&mut manifest);
    let manifest = sign(&manifest, &[&release_key()]);
    Release {
        manifest,
        image,
        image_path,
        compressed: Some((packed_path, packed)),
        delta: None,
    }
}

/// [`release_compressed`] plus a patch from `base` (what `otactl release` publishes when
/// the channel's previous image is in the bucket): a device running `base` takes the patch.
pub fn release_delta(base: &[u8], image: Vec<u8>, version: &str) -> Release {
    release_delta_edited(base, image, version, |_| {})
}

/// [`release_delta`] with the manifest edited before it is signed.
pub fn release_delta_edited(
    base: &[u8],
    image: Vec<u8>,
    version: &str,
    edit: impl FnOnce(&mut Manifest<'_>),
) -> Release {
    let with_compressed = release_compressed(image.clone(), version);
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let mut hex = [0u8; 64];
    let sha_hex = write_hex(&sha, &mut hex).to_owned();
    let base_sha: [u8; 32] = Sha256::digest(base).into();
    let mut base_hex = [0u8; 64];
    let base_sha_hex = write_hex(&base_sha, &mut base_hex).to_owned();
    let image_path = with_compressed.image_path.clone();
    let image_ref = format!("..{}", &image_path["/fleet".len()..]);
    let (packed_path, packed) = with_compressed.compressed.clone().expect("listed");
    let packed_ref = format!("..{}", &packed_path["/fleet".len()..]);
    let patch = delta::diff(base, &image).expect("bench images patch");
    let patch_path = image_path.replace(".bin", &format!(".from-{}.otd", &base_sha_hex[..16]));
    let patch_ref = format!("..{}", &patch_path["/fleet".len()..]);
    let mut manifest = Manifest {
        compressed: Some(Alternate {
            image: &packed_ref,
            size: packed.len() as u32,
        }),
        delta: Some(Patch {
            image: &patch_ref,
            size: patch.len() as u32,
            base_sha256: &base_sha_hex,
            base_size: base.len() as u32,
        }),
        ..manifest_for(&image, version, &sha_hex, &image_ref)
    };
    edit(&mut manifest);
    Release {
        manifest: sign(&manifest, &[&release_key()]),
        image,
        image_path,
        compressed: Some((packed_path, packed)),
        delta: Some((patch_path, patch)),
    }
}

/// Everything around the device for one boot.
#[allow(missing_debug_implementations)]
pub struct World {
    pub net: Network,
    /// `None` when the origin host does not answer (connections are refused).
    pub origin: Option<OriginHandle>,
    device_uart: Option<UartEnd>,
    /// The driver settings for the modem this world runs (the profile's).
    modem_cfg: ModemConfig,
}

impl World {
    /// An origin serving `release`.
    pub fn new(setup: &DeviceSetup, release: &Release) -> Self {
        Self::build(setup, Some(release))
    }

    /// No origin: what a freshly updated app whose network path is broken sees.
    pub fn origin_down(setup: &DeviceSetup) -> Self {
        Self::build(setup, None)
    }

    fn build(setup: &DeviceSetup, release: Option<&Release>) -> Self {
        let net = Network::new(NetConfig::lte(NatConfig {
            idle_timeout: Some(Duration::from_secs(u64::from(setup.profile.network.nat_idle_timeout_s))),
            on_expiry: NatExpiry::Reset,
        }));
        let origin = release.map(|release| {
            let origin = spawn_origin(net.listen(ORIGIN_HOST, 80), OriginBehaviour::default());
            origin.put(MANIFEST_PATH, release.manifest.clone());
            origin.put(&release.image_path, release.image.clone());
            for (path, bytes) in release.compressed.iter().chain(&release.delta) {
                origin.put(path, bytes.clone());
            }
            origin
        });
        // The chip's own receive path: the 128-byte FIFO, lossy without RTS/CTS.
        let (device_uart, modem_uart) = chip_uart(setup.profile.modem.baud, setup.profile.modem.rts_cts, 1024);
        spawn_modem(ModemEmulatorConfig::new(EmuDialect::Sim7600), modem_uart, net.clone());
        World {
            net,
            origin,
            device_uart: Some(device_uart),
            modem_cfg: setup.modem_config(),
        }
    }

    /// The device's end of the modem UART, for an app that drives the modem itself.
    pub fn take_modem_uart(&mut self) -> Option<UartEnd> {
        self.device_uart.take()
    }

    /// Makes `flash` stall the device's end of the modem UART while it works, as the chip's
    /// blocking flash driver does (see [`crate::time::Stall`]).
    pub fn stall_with(&mut self, flash: &SimFlash) {
        self.device_uart = self.device_uart.take().map(|u| u.stalled_by(flash.cpu()));
    }

    /// Brings the modem up and hands the app its HTTP client.
    pub async fn connect(&mut self) -> Result<HttpClient<Modem<UartEnd, BenchClock>>, String> {
        let uart = self.device_uart.take().ok_or("the modem UART is already in use")?;
        let mut modem = Modem::new(uart, BenchClock, self.modem_cfg.clone()).with_uart_rate(retune);
        match time::timeout(Duration::from_secs(120), modem.bring_up()).await {
            Ok(Ok(_)) => Ok(HttpClient::new(modem)),
            other => Err(format!("modem bring-up failed: {other:?}")),
        }
    }
}

/// What the bootloader started, as the bench sees it.
#[derive(Debug, Clone)]
pub struct BootView {
    pub booted: Booted,
    pub version: String,
    /// SHA-256 of the booted image's bytes, read back from the slot.
    pub sha256: [u8; 32],
}

/// Runs the bootloader; `Ok(None)` when the power died during its otadata writes.
pub async fn boot(flash: &mut SimFlash, setup: &DeviceSetup) -> Result<Option<BootView>, BootError<FlashError>> {
    match bootloader_boot(flash, &setup.layout.boot).await {
        Ok(booted) => {
            let bytes = flash.snapshot(booted.slot.offset as usize, booted.image.len);
            Ok(Some(BootView {
                version: booted.image.app_desc.version().unwrap_or("").to_owned(),
                sha256: Sha256::digest(&bytes).into(),
                booted,
            }))
        }
        Err(_) if !flash.is_powered() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The identity the app reports from what booted.
pub fn identity<'a>(setup: &'a DeviceSetup, view: &'a BootView) -> DeviceIdentity<'a> {
    DeviceIdentity {
        product: &setup.profile.device.product,
        channel: &setup.profile.release.channel,
        chip: setup.chip(),
        board: &setup.profile.device.board,
        running_version: &view.version,
        secure_version: view.booted.image.app_desc.secure_version(),
        failed_version: None,
        slot_size: 0,
        device_id: &setup.device_id,
    }
}

/// One app run: start duties, then (if nothing pending) one update attempt.
#[derive(Debug)]
pub enum AppRun {
    /// The power died somewhere in the run.
    PowerLost,
    /// The self-test failed and the app marked itself invalid: reboot.
    RollbackRequested,
    /// Up to date (or the release was refused) and confirmed: nothing more to do.
    Idle {
        update_error: Option<String>,
    },
    /// An update was activated: reboot.
    Activated(Activated),
    Failed(String),
}

/// Runs the app after a boot: confirm/rollback duties, then an update attempt.
pub async fn run_app(
    flash: &mut SimFlash,
    setup: &DeviceSetup,
    view: &BootView,
    world: &mut World,
    events: &mut impl FnMut(UpdateEvent<'_>),
) -> AppRun {
    world.stall_with(flash);
    let mut http = match world.connect().await {
        Ok(http) => http,
        Err(e) => return AppRun::Failed(e),
    };
    let url = manifest_url();
    let running = Running::from_booted(&view.booted);
    let started = after_boot(flash, &setup.layout, &running, self_test(&mut http, &url), events).await;
    if !flash.is_powered() {
        return AppRun::PowerLost;
    }
    match started {
        Ok(BootReport::RollbackRequested) => return AppRun::RollbackRequested,
        Ok(_) => {}
        Err(e) => return AppRun::Failed(format!("start duties: {e}")),
    }
    let result = attempt_update(flash, setup, view, &mut http, events).await;
    if !flash.is_powered() {
        return AppRun::PowerLost;
    }
    match result {
        Ok(activated) => AppRun::Activated(activated),
        Err(e) => AppRun::Idle {
            update_error: Some(e.code().to_owned()),
        },
    }
}

/// One update attempt from the bench's manifest URL.
pub async fn attempt_update(
    flash: &mut SimFlash,
    setup: &DeviceSetup,
    view: &BootView,
    http: &mut HttpClient<Modem<UartEnd, BenchClock>>,
    events: &mut impl FnMut(UpdateEvent<'_>),
) -> Result<Activated, UpdateError<FlashError>> {
    let running = view.booted.target;
    debug_assert!(matches!(running, BootTarget::Ota(_) | BootTarget::Factory));
    update(
        http,
        flash,
        &BenchClock,
        &setup.profile.download_config(),
        &setup.layout,
        &identity(setup, view),
        running,
        &setup.keys,
        &manifest_url(),
        events,
    )
    .await
}

/// Feeds `file[writer.fetched()..]` to `writer` in pieces of varying size (1 to 1,461
/// bytes), as the modem hands them over, stopping early at the first piece that starts at or
/// past `stop_after`: the decoders' tests drive a writer as the engine does, without a
/// network. Returns the last resume point and the hash.
pub async fn feed_in_pieces<W: device_fw::ota::ImageSink<Flash = SimFlash>>(
    writer: &mut W,
    file: &[u8],
    mut hasher: Sha256,
    stop_after: Option<usize>,
) -> Result<(Option<device_fw::ota::Mark>, Sha256), device_fw::ota::DownloadError<FlashError>> {
    let mut at = writer.fetched() as usize;
    let mut mark = None;
    let mut piece = 1;
    while at < file.len() {
        if stop_after.is_some_and(|n| at >= n) {
            break;
        }
        let end = (at + piece).min(file.len());
        writer.erase_ahead(&file[at..end]).await?;
        if let Some(m) = writer.take(&file[at..end], &mut hasher).await? {
            mark = Some(m);
        }
        at = end;
        piece = piece * 7 % 1461 + 1;
    }
    Ok((mark, hasher))
}
