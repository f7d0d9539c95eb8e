//! One update, end to end, as the device runs it: manifest → checks → journaled download
//! into the inactive slot → image checks → activation; and, after the reboot, the
//! self-test that confirms the new app or the record of a version that rolled back.
//!
//! Nothing touches flash before the manifest's signature and every policy check passed;
//! nothing touches otadata before the written image passed the bootloader's own checks and
//! matched the signed version. The running slot is never written.

mod boot;

use sha2::{Digest, Sha256};

pub use self::boot::{BootReport, Running, after_boot, self_test};
use super::engine::{Checkpoint, DownloadConfig, DownloadError, EventSink, ImageTarget, Mark, OtaEvent, download};
use super::inflating::{FormWriter, InflatingWriter};
use super::journal::{Journal, JournalError, JournalState, Progress, resume_point};
use super::policy::{DeviceIdentity, Rejection, check_manifest};
use super::slot::{Slot, SlotWriter};
use crate::clock::Clock;
use crate::esp::boot::{BootError, BootLayout, BootTarget, set_boot_slot};
use crate::esp::chip::Chip;
use crate::esp::image::ImageError;
use crate::esp::partition::{PartitionTable, SUBTYPE_APP_FACTORY, SUBTYPE_OTACTL_JOURNAL, TYPE_APP, TYPE_OTACTL};
use crate::esp::slot_image::{SlotImageError, check_slot_image};
use crate::http::{Fetched, HttpClient, HttpError, Target, Validators, resolve_reference};
use crate::socket::{Socket, SocketError};
use crate::wire::manifest::{MAX_ENVELOPE, Manifest, ManifestError, Patch, PayloadBuf, open};
use crate::wire::{ImageForm, delta};
use embedded_storage_async::nor_flash::NorFlash;

/// Where the update machinery lives in flash.
#[derive(Debug, Clone)]
pub struct UpdateLayout {
    pub boot: BootLayout,
    pub journal: Journal,
}

/// Why a partition table cannot carry updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("partition table has no otadata partition; add `otadata, data, ota, 0xD000, 0x2000`")]
    NoOtaData,
    #[error("partition table has fewer than two OTA app slots; add ota_0 and ota_1")]
    TooFewSlots,
    #[error("partition table has no otastate partition (type 0x40) for the OTA journal")]
    NoJournal,
    #[error("otastate partition: {0}")]
    Journal(#[from] super::journal::LayoutError),
}

impl UpdateLayout {
    /// Reads the layout from the partition table, as the firmware does at start.
    pub fn from_table(table: &PartitionTable, chip: Chip) -> Result<Self, LayoutError> {
        let otadata = table.otadata().ok_or(LayoutError::NoOtaData)?.offset;
        let mut ota = heapless::Vec::new();
        for n in 0..table.ota_slot_count().min(crate::esp::boot::MAX_OTA_SLOTS) {
            if let Some(e) = table.ota_slot(n) {
                // Bounded by MAX_OTA_SLOTS above.
                let _ = ota.push(Slot {
                    offset: e.offset,
                    size: e.size,
                });
            }
        }
        if ota.len() < 2 {
            return Err(LayoutError::TooFewSlots);
        }
        let factory = table.find(TYPE_APP, SUBTYPE_APP_FACTORY).map(|e| Slot {
            offset: e.offset,
            size: e.size,
        });
        let journal = table
            .find(TYPE_OTACTL, SUBTYPE_OTACTL_JOURNAL)
            .ok_or(LayoutError::NoJournal)?;
        Ok(UpdateLayout {
            boot: BootLayout {
                otadata,
                ota,
                factory,
                chip_id: chip.image_chip_id(),
            },
            journal: Journal::new(journal.offset..journal.offset + journal.size)?,
        })
    }
}

/// What a device reports while it updates (the console turns these into event lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateEvent<'a> {
    ManifestFetched {
        bytes: usize,
    },
    /// A conditional check found the manifest as it was (`304 Not Modified`).
    ManifestUnchanged,
    /// Signature good (by trusted key number `key`) and every policy check passed.
    ManifestAccepted {
        version: &'a str,
        size: u32,
        key: usize,
    },
    /// A journaled download of this image is carried on from `offset`.
    Resuming {
        offset: u32,
    },
    Download(OtaEvent),
    /// The written image passed the hash, structure and version checks.
    ImageVerified {
        version: &'a str,
    },
    Activated {
        slot: usize,
        version: &'a str,
    },
    /// The app booted after an update passed its self-test and marked itself valid.
    Confirmed {
        version: &'a str,
    },
    /// The self-test failed: the app marked itself invalid; the next boot rolls back.
    SelfTestFailed,
    /// A version that was booted but never confirmed has been rolled back from.
    RolledBack {
        failed_version: &'a str,
    },
}

/// Receives [`UpdateEvent`]s; async, so that a console can write each one out.
pub trait UpdateSink {
    async fn event(&mut self, event: UpdateEvent<'_>);
}

impl UpdateSink for () {
    async fn event(&mut self, _: UpdateEvent<'_>) {}
}

impl<T: FnMut(UpdateEvent<'_>)> UpdateSink for T {
    async fn event(&mut self, event: UpdateEvent<'_>) {
        self(event)
    }
}

struct DownloadEvents<'s, U>(&'s mut U);

impl<U: UpdateSink> EventSink for DownloadEvents<'_, U> {
    async fn event(&mut self, event: OtaEvent) {
        self.0.event(UpdateEvent::Download(event)).await;
    }
}

/// Why an update did not happen. Every variant leaves the running slot and otadata as they
/// were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError<E> {
    #[error("manifest could not be fetched: {0}")]
    ManifestFetch(HttpError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("image location in the manifest is not a usable URL: {0}")]
    ImageUrl(HttpError),
    #[error(transparent)]
    Download(DownloadError<E>),
    #[error("downloaded image would not boot: {0}")]
    Image(ImageError),
    #[error(
        "the app descriptor's version differs from the signed manifest's; the release was built from other sources"
    )]
    AppVersionMismatch,
    #[error("the app descriptor's secure_version differs from the signed manifest's")]
    SecureVersionMismatch,
    #[error(transparent)]
    Journal(JournalError<E>),
    #[error(transparent)]
    Boot(BootError<E>),
    #[error("flash operation failed: {0:?}")]
    Flash(E),
    #[error("the device is running the factory app or no OTA slot is free to write")]
    NoInactiveSlot,
}

impl<E> UpdateError<E> {
    /// Stable short name for console events and benchmarks: one per reason.
    pub fn code(&self) -> &'static str {
        match self {
            // A certificate problem is named as such: retrying cannot fix it, and "unreachable"
            // would send people looking at the network.
            UpdateError::ManifestFetch(HttpError::Socket(SocketError::Tls(t))) => t.code(),
            UpdateError::ManifestFetch(_) => "manifest-unreachable",
            UpdateError::Manifest(m) => match m {
                ManifestError::TooLarge { .. } => "manifest-too-large",
                ManifestError::Malformed(_) => "manifest-malformed",
                ManifestError::WrongPayloadType => "manifest-wrong-type",
                ManifestError::PayloadNotBase64 => "manifest-payload-not-base64",
                ManifestError::PayloadTooLarge => "manifest-payload-too-large",
                ManifestError::Unsigned => "manifest-unsigned",
                ManifestError::SignatureMalformed => "signature-malformed",
                ManifestError::UnknownKey => "unknown-key",
                ManifestError::BadSignature => "bad-signature",
                ManifestError::PayloadMalformed(_) => "manifest-payload-malformed",
                ManifestError::UnsupportedSchema { .. } => "unsupported-schema",
                ManifestError::FieldTooLong { .. } => "field-too-long",
                ManifestError::FieldInvalid { .. } => "field-invalid",
                ManifestError::BadVersion(_) => "bad-version",
                ManifestError::BadSha256 => "bad-sha256-field",
                ManifestError::ZeroSize => "zero-size",
                ManifestError::BadCreated => "bad-created",
                _ => "manifest-invalid",
            },
            UpdateError::Rejected(r) => r.code(),
            UpdateError::ImageUrl(_) => "image-url-invalid",
            UpdateError::Download(d) => match d {
                DownloadError::HashMismatch => "hash-mismatch",
                DownloadError::SizeMismatch { .. } => "size-mismatch",
                DownloadError::Refused(HttpError::Socket(SocketError::Tls(t))) => t.code(),
                DownloadError::Refused(_) => "image-refused",
                DownloadError::RetriesExhausted { .. } => "download-gave-up",
                DownloadError::Compressed(_) | DownloadError::Lzma(_) => "compressed-image-corrupt",
                DownloadError::Patch(_) => "patch-corrupt",
                _ => "download-failed",
            },
            UpdateError::Image(i) => match i {
                ImageError::BadMagic(_) => "image-bad-magic",
                ImageError::WrongChip { .. } => "image-wrong-chip",
                ImageError::ChecksumMismatch { .. } => "image-bad-checksum",
                ImageError::HashMismatch => "image-bad-appended-sha256",
                ImageError::NoAppDescriptor => "image-no-app-descriptor",
                ImageError::Truncated { .. } => "image-truncated",
                ImageError::TooManySegments(_) => "image-too-many-segments",
                ImageError::SegmentOutOfBounds { .. } => "image-segment-out-of-bounds",
                ImageError::SegmentLenNotAligned { .. } => "image-segment-misaligned",
                _ => "image-invalid",
            },
            UpdateError::AppVersionMismatch => "app-version-mismatch",
            UpdateError::SecureVersionMismatch => "secure-version-mismatch",
            UpdateError::Journal(_) => "journal-failed",
            UpdateError::Boot(_) => "otadata-write-failed",
            UpdateError::Flash(_) => "flash-failed",
            UpdateError::NoInactiveSlot => "no-inactive-slot",
        }
    }
}

/// The slot an update writes: the next `ota_N` after the running one, as
/// `esp_ota_get_next_update_partition` picks it.
pub fn inactive_slot(layout: &BootLayout, running: BootTarget) -> Option<usize> {
    let count = layout.ota.len();
    match running {
        BootTarget::Ota(i) if count >= 2 => Some((i + 1) % count),
        BootTarget::Factory if count >= 1 => Some(0),
        _ => None,
    }
}

/// Reads the manifest body (at most [`MAX_ENVELOPE`] bytes) into `buf`; `Ok(None)` when
/// `known` validators were given and the origin says the manifest has not changed.
async fn fetch_manifest<S: Socket, C: Clock, E>(
    http: &mut HttpClient<S>,
    clock: &C,
    cfg: &DownloadConfig,
    url: &str,
    known: Option<&Validators>,
    buf: &mut [u8; MAX_ENVELOPE],
) -> Result<Option<usize>, UpdateError<E>> {
    let parsed = Target::parse(url).map_err(UpdateError::ManifestFetch)?;
    let mut backoff = cfg.backoff_initial_us;
    let mut attempt = 0u8;
    loop {
        let result: Result<Result<Option<usize>, ManifestError>, HttpError> = async {
            let head = match known {
                Some(known) => match http.get_if_changed(&parsed, known).await? {
                    Fetched::NotModified => return Ok(Ok(None)),
                    Fetched::Changed(head) => head,
                },
                None => http.get(&parsed, None).await?,
            };
            if let Some(len) = head.content_length
                && len > MAX_ENVELOPE as u64
            {
                return Ok(Err(ManifestError::TooLarge { len: len as usize }));
            }
            let mut len = 0;
            loop {
                if len == buf.len() {
                    // Body longer than a manifest can be; the connection is dropped.
                    http.close().await;
                    return Ok(Err(ManifestError::TooLarge { len: len + 1 }));
                }
                let n = http.read_body(&mut buf[len..]).await?;
                if n == 0 {
                    return Ok(Ok(Some(len)));
                }
                len += n;
            }
        }
        .await;
        match result {
            Ok(Ok(len)) => return Ok(len),
            Ok(Err(e)) => return Err(UpdateError::Manifest(e)),
            Err(e) if !e.is_retryable() || attempt >= cfg.retries => return Err(UpdateError::ManifestFetch(e)),
            Err(_) => {
                attempt += 1;
                http.close().await;
                let _ = http.socket().recover().await;
                if !http.socket().listen(backoff).await {
                    clock.sleep_us(backoff).await;
                }
                backoff = (backoff * 2).min(cfg.backoff_max_us);
            }
        }
    }
}

/// Records each programmed sector in the journal.
struct JournalCheckpoint<'j> {
    journal: &'j Journal,
    image_sha256: [u8; 32],
    slot: u8,
    image_size: u32,
    form: ImageForm,
}

impl<F: NorFlash> Checkpoint<F> for JournalCheckpoint<'_> {
    async fn programmed(&mut self, flash: &mut F, mark: Mark) -> Result<(), F::Error> {
        let progress = Progress {
            image_sha256: self.image_sha256,
            slot: self.slot,
            image_size: self.image_size,
            written: mark.written,
            prefix_sha256: mark.prefix_sha256,
            form: self.form,
            fetched: mark.fetched,
        };
        match self.journal.save_progress(flash, &progress).await {
            Ok(_) => Ok(()),
            Err(JournalError::Flash(e)) => Err(e),
            // A journal that cannot take the record costs the resume point, not the update.
            Err(_) => Ok(()),
        }
    }
}

/// A finished, activated update: reboot to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub slot: usize,
    pub version: heapless::String<32>,
}

/// Buffers a manifest is read and opened in; the parsed manifest borrows from them.
#[derive(Debug)]
pub struct ManifestBufs {
    envelope: [u8; MAX_ENVELOPE],
    payload: PayloadBuf,
}

impl Default for ManifestBufs {
    fn default() -> Self {
        ManifestBufs {
            envelope: [0; MAX_ENVELOPE],
            payload: PayloadBuf::default(),
        }
    }
}

/// A correctly signed release, and whether this device would install it.
#[derive(Debug, Clone)]
pub struct Judged<'b> {
    pub manifest: Manifest<'b>,
    /// Trusted key that verified it.
    pub key: usize,
    /// The `ota_N` slot it would go to.
    pub target: usize,
    /// The slot of the running app: the base a patch is applied to.
    pub running: Option<Slot>,
    pub journal: JournalState,
    /// `Ok` when every policy check passed.
    pub verdict: Result<(), Rejection>,
}

/// Where to fetch a manifest from and what this device trusts: the inputs every check and
/// update shares.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub manifest_url: &'a str,
    pub keys: &'a [[u8; 32]],
    /// Validators of the last copy judged: the check is a conditional GET that ends at
    /// `304 Not Modified` when nothing changed.
    pub known: Option<&'a Validators>,
}

/// Fetches the manifest, checks its signature and judges it against this device: every
/// check that comes before the first flash write (`ota check` stops here). A signature or
/// format problem is an error; a signed release that is not for this device comes back
/// with its [`Judged::verdict`]. `Ok(None)`: [`Source::known`] was given and the manifest
/// has not changed since.
#[allow(clippy::too_many_arguments)]
pub async fn judge<'b, S, F, C, U>(
    http: &mut HttpClient<S>,
    flash: &mut F,
    clock: &C,
    cfg: &DownloadConfig,
    layout: &UpdateLayout,
    device: &DeviceIdentity<'_>,
    running: BootTarget,
    source: Source<'_>,
    bufs: &'b mut ManifestBufs,
    events: &mut U,
) -> Result<Option<Judged<'b>>, UpdateError<F::Error>>
where
    S: Socket,
    F: NorFlash,
    C: Clock,
    U: UpdateSink,
{
    let target = inactive_slot(&layout.boot, running).ok_or(UpdateError::NoInactiveSlot)?;
    let slot = layout.boot.ota[target];
    let fetched = fetch_manifest(http, clock, cfg, source.manifest_url, source.known, &mut bufs.envelope).await?;
    let Some(len) = fetched else {
        events.event(UpdateEvent::ManifestUnchanged).await;
        return Ok(None);
    };
    events.event(UpdateEvent::ManifestFetched { bytes: len }).await;
    let (manifest, key) = open(&bufs.envelope[..len], source.keys, &mut bufs.payload)?;
    let journal = layout.journal.load(flash).await.map_err(UpdateError::Journal)?;
    let device = DeviceIdentity {
        failed_version: journal.failed_version.as_deref(),
        slot_size: slot.size,
        ..*device
    };
    let verdict = check_manifest(&manifest, &device);
    if verdict.is_ok() {
        events
            .event(UpdateEvent::ManifestAccepted {
                version: manifest.version,
                size: manifest.size,
                key,
            })
            .await;
    }
    let running = match running {
        BootTarget::Ota(i) => layout.boot.ota.get(i).copied(),
        BootTarget::Factory => layout.boot.factory,
    };
    Ok(Some(Judged {
        manifest,
        key,
        target,
        running,
        journal,
        verdict,
    }))
}

/// Runs one update from `manifest_url`. On success otadata selects the new slot (state
/// NEW): the caller reboots.
#[allow(clippy::too_many_arguments)]
pub async fn update<S, F, C, U>(
    http: &mut HttpClient<S>,
    flash: &mut F,
    clock: &C,
    cfg: &DownloadConfig,
    layout: &UpdateLayout,
    device: &DeviceIdentity<'_>,
    running: BootTarget,
    keys: &[[u8; 32]],
    manifest_url: &str,
    events: &mut U,
) -> Result<Activated, UpdateError<F::Error>>
where
    S: Socket,
    F: NorFlash,
    C: Clock,
    U: UpdateSink,
{
    let mut bufs = ManifestBufs::default();
    let source = Source {
        manifest_url,
        keys,
        known: None,
    };
    let judged = judge(
        http, flash, clock, cfg, layout, device, running, source, &mut bufs, events,
    )
    .await?
    .ok_or(UpdateError::ManifestFetch(HttpError::UnexpectedStatus(304)))?;
    install(http, flash, clock, cfg, layout, manifest_url, &judged, events).await
}

/// Carries a judged release through: journaled download into the inactive slot, image
/// checks, activation. Refuses a release whose verdict is not `Ok`. `manifest_url` is the
/// one it was fetched from (its `image` reference is relative to it).
#[allow(clippy::too_many_arguments)]
pub async fn install<S, F, C, U>(
    http: &mut HttpClient<S>,
    flash: &mut F,
    clock: &C,
    cfg: &DownloadConfig,
    layout: &UpdateLayout,
    manifest_url: &str,
    judged: &Judged<'_>,
    events: &mut U,
) -> Result<Activated, UpdateError<F::Error>>
where
    S: Socket,
    F: NorFlash,
    C: Clock,
    U: UpdateSink,
{
    let Judged {
        manifest,
        target,
        running,
        journal,
        verdict,
        ..
    } = judged;
    let (manifest, target) = (*manifest, *target);
    (*verdict)?;
    let slot = layout.boot.ota[target];
    let sha256 = manifest.sha256_bytes()?;

    // The fewest bytes over the air, the same signed image in the slot: a patch when the
    // device runs the image it is made from, else the compressed form, else the image.
    let base = match (manifest.delta, *running) {
        (Some(patch), Some(running)) => running_image_is(flash, running, &patch)
            .await
            .map_err(UpdateError::Flash)?
            .then_some((patch, running)),
        _ => None,
    };
    let (form, fetch_ref, fetch_size) = match (base, manifest.compressed) {
        (Some((patch, _)), _) => (ImageForm::Delta, patch.image, patch.size),
        (None, Some(c)) => (ImageForm::Compressed, c.image, c.size),
        (None, None) => (ImageForm::Raw, manifest.image, manifest.size),
    };
    let image_url = resolve_reference(manifest_url, fetch_ref).map_err(UpdateError::ImageUrl)?;

    // Carry on a journaled download of this same image in the same form, if its prefix
    // still checks out.
    let saved = journal.progress.filter(|p| p.form == form);
    let (written, hasher) = match &saved {
        Some(p) => resume_point(flash, target as u8, slot, p, &sha256, manifest.size)
            .await
            .map_err(UpdateError::Flash)?,
        None => (0, Sha256::new()),
    };
    let fetched = saved.filter(|_| written > 0).map_or(0, |p| p.fetched);
    if written > 0 {
        events.event(UpdateEvent::Resuming { offset: written }).await;
    }
    let mut checkpoint = JournalCheckpoint {
        journal: &layout.journal,
        image_sha256: sha256,
        slot: target as u8,
        image_size: manifest.size,
        form,
    };
    let image = ImageTarget {
        url: image_url.as_str(),
        size: Some(u64::from(fetch_size)),
        sha256: Some(sha256),
    };
    let mut sink = DownloadEvents(events);
    // One writer type for both forms, so the download loop is compiled once; it lives in
    // this future either way, the decoder's buffers beside the slot writer's.
    let mut writer: FormWriter<&mut F> = match base {
        Some((patch, running)) => FormWriter::Compressed(InflatingWriter::resume_delta(
            &mut *flash,
            slot,
            running,
            delta::Header {
                raw_size: manifest.size,
                base_size: patch.base_size,
                base_sha256: patch.base_sha256_bytes()?,
            },
            written,
            fetched,
        )),
        None if form == ImageForm::Compressed => FormWriter::Compressed(InflatingWriter::resume(
            &mut *flash,
            slot,
            manifest.size,
            written,
            fetched,
        )),
        None => FormWriter::Raw(SlotWriter::resume(&mut *flash, slot, written)),
    };
    let result = download(
        http,
        &mut writer,
        clock,
        cfg,
        &image,
        hasher,
        &mut sink,
        &mut checkpoint,
    )
    .await;
    match result {
        Ok(_) => {}
        Err(
            e @ (DownloadError::HashMismatch
            | DownloadError::Compressed(_)
            | DownloadError::Lzma(_)
            | DownloadError::Patch(_)),
        ) => {
            // What was written is not the signed image; the next attempt starts clean.
            let _ = layout.journal.clear_progress(flash).await;
            return Err(UpdateError::Download(e));
        }
        Err(e) => return Err(UpdateError::Download(e)),
    }

    verify_written_image(flash, slot, &manifest, layout.boot.chip_id).await?;
    events
        .event(UpdateEvent::ImageVerified {
            version: manifest.version,
        })
        .await;

    set_boot_slot(flash, layout.boot.otadata, layout.boot.ota.len(), target)
        .await
        .map_err(UpdateError::Boot)?;
    // Activation is done; a cut before this clear only leaves a stale resume point, which a
    // later update re-verifies before trusting.
    layout
        .journal
        .clear_progress(flash)
        .await
        .map_err(UpdateError::Journal)?;
    events
        .event(UpdateEvent::Activated {
            slot: target,
            version: manifest.version,
        })
        .await;
    let mut version = heapless::String::new();
    // Manifest versions are at most 31 bytes.
    let _ = version.push_str(manifest.version);
    Ok(Activated { slot: target, version })
}

/// Whether the running slot holds the image a patch is made from: its first `base_size`
/// bytes hash to `base_sha256`. Read only when a release offers a patch, so a check that
/// finds nothing new costs no flash reads.
async fn running_image_is<F: NorFlash>(flash: &mut F, running: Slot, patch: &Patch<'_>) -> Result<bool, F::Error> {
    let Ok(want) = patch.base_sha256_bytes() else {
        return Ok(false);
    };
    if patch.base_size > running.size {
        return Ok(false);
    }
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 256];
    let mut at = 0;
    while at < patch.base_size {
        let n = (patch.base_size - at).min(buf.len() as u32);
        flash.read(running.offset + at, &mut buf[..n as usize]).await?;
        hasher.update(&buf[..n as usize]);
        at += n;
    }
    Ok(<[u8; 32]>::from(hasher.finalize()) == want)
}

/// The bootloader's checks on the written image, and its descriptor against the manifest.
async fn verify_written_image<F: NorFlash>(
    flash: &mut F,
    slot: Slot,
    manifest: &Manifest<'_>,
    chip_id: u16,
) -> Result<(), UpdateError<F::Error>> {
    let image = match check_slot_image(flash, slot, u64::from(manifest.size), chip_id).await {
        Ok(image) => image,
        Err(SlotImageError::Image(e)) => return Err(UpdateError::Image(e)),
        Err(SlotImageError::Flash(e)) => return Err(UpdateError::Flash(e)),
        Err(_) => {
            return Err(UpdateError::Rejected(Rejection::TooLarge {
                size: manifest.size,
                slot: slot.size,
            }));
        }
    };
    if image.app_desc.version() != Some(manifest.version) {
        return Err(UpdateError::AppVersionMismatch);
    }
    if image.app_desc.secure_version() != manifest.secure_version {
        return Err(UpdateError::SecureVersionMismatch);
    }
    Ok(())
}
