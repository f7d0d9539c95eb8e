//! The engine for an app that owns its own work: three calls and the settings they share.
//!
//! [`Updater`] is what a product's firmware keeps beside its own code. The app owns the
//! modem driver ([`crate::modem::Modem`] behind an [`HttpClient`]), the flash and the clock,
//! and lends them to the updater for one call at a time:
//!
//! - [`Updater::start`] once after every boot: a freshly updated app runs its self-test
//!   (the app's own work included) and is confirmed or marked for rollback; a version the
//!   bootloader rolled back from is remembered so it is not installed again.
//! - [`Updater::check`] whenever the app likes (a conditional GET: an unchanged manifest
//!   costs a `304`): is there a signed release for this device?
//! - [`Updater::update`]: download into the inactive slot (journaled, resumed after a power
//!   cut), verify, activate. The app reboots when it returns `Ok`.
//!
//! Every call leaves the modem as the app expects it between updates: up, registered, in
//! command mode, with no connection of the updater's open, so the app's next request opens
//! its own ([`HttpClient::post`], [`HttpClient::post_for_reply`], [`HttpClient::get`]).
//! Events arrive through an [`UpdateSink`] the app implements (or a closure).
//!
//! The layer under it is public for an app with its own transport: [`crate::ota::slot`]
//! (the slot writer), [`crate::ota::journal`], [`crate::esp::slot_image`] (the bootloader's
//! checks) and [`crate::esp::boot`] (otadata: activate, mark valid or invalid).
//!
//! # RAM
//!
//! An `Updater` is its settings' reference, the running app's description and the last
//! manifest's validators ([`crate::http::VALIDATORS_RAM`]); `size_of::<Updater>()` stays
//! under [`UPDATER_RAM_BYTES`] (checked at compile time). A check or an update needs
//! [`ManifestBufs`] (about 4 KiB) in its future while it runs, and the slot writer's
//! 256-byte stage; nothing is allocated.

use core::future::Future;

use embedded_storage_async::nor_flash::NorFlash;

use crate::clock::Clock;
use crate::http::{HttpClient, HttpError, Validators};
use crate::ota::engine::DownloadConfig;
use crate::ota::policy::{DeviceIdentity, Rejection};
use crate::ota::update::{
    Activated, BootReport, ManifestBufs, Running, Source, UpdateError, UpdateLayout, UpdateSink, after_boot, install,
    judge,
};
use crate::socket::Socket;

/// Upper bound of `size_of::<Updater>()` on a 64-bit host (less on the 32-bit chips).
pub const UPDATER_RAM_BYTES: usize = 512;

const _: () = assert!(core::mem::size_of::<Updater<'static>>() <= UPDATER_RAM_BYTES);

/// What the updater knows about the device and its fleet: the profile's settings.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// `<device_url>/<channel>/manifest.json`.
    pub manifest_url: &'a str,
    /// Trusted release keys: the current one and, during a rotation, its successor.
    pub keys: &'a [[u8; 32]],
    /// Where otadata, the OTA slots and the journal are ([`UpdateLayout::from_table`]).
    pub layout: UpdateLayout,
    /// Chunk sizes, deadlines and retries of the download.
    pub download: DownloadConfig,
    /// Product, channel, chip, board, running version and device id: what a release must
    /// match. `failed_version` and `slot_size` are filled in from the journal and the
    /// layout at every check.
    pub identity: DeviceIdentity<'a>,
}

/// What [`Updater::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The manifest has not changed since the last check (`304`).
    Unchanged,
    /// A signed release this device would install.
    Available { version: heapless::String<32>, size: u32 },
    /// A correctly signed release that is not for this device (already running it, another
    /// product, a rollout that does not include it yet, …).
    NotForThisDevice(Rejection),
}

/// The engine as a device app keeps it. See the module docs.
#[derive(Debug)]
pub struct Updater<'a> {
    settings: &'a Settings<'a>,
    running: Running<'a>,
    /// Validators of the manifest last judged not for this device, so that the next check
    /// is conditional. `None` after a verdict that could turn into an update.
    known: Option<Validators>,
}

impl<'a> Updater<'a> {
    /// An updater for the app `running` (from the bootloader's choice:
    /// [`Running::from_booted`] on the bench, the firmware's boot glue on the chip).
    pub fn new(settings: &'a Settings<'a>, running: Running<'a>) -> Self {
        Updater {
            settings,
            running,
            known: None,
        }
    }

    /// Start duties, once after every boot. `self_test` is the app's own test (its server
    /// answers, its sensors read); it is awaited only on the first boot of an update. On
    /// [`BootReport::RollbackRequested`] the app resets the chip: the bootloader starts the
    /// previous app.
    pub async fn start<F, U>(
        &mut self,
        flash: &mut F,
        self_test: impl Future<Output = bool>,
        events: &mut U,
    ) -> Result<BootReport, UpdateError<F::Error>>
    where
        F: NorFlash,
        U: UpdateSink,
    {
        after_boot(flash, &self.settings.layout, &self.running, self_test, events).await
    }

    /// Fetches and judges the manifest: every check that comes before the first flash
    /// write. Nothing is written.
    pub async fn check<S, F, C, U>(
        &mut self,
        http: &mut HttpClient<S>,
        flash: &mut F,
        clock: &C,
        events: &mut U,
    ) -> Result<Check, UpdateError<F::Error>>
    where
        S: Socket,
        F: NorFlash,
        C: Clock,
        U: UpdateSink,
    {
        let mut bufs = ManifestBufs::default();
        let result = self.judge(http, flash, clock, &mut bufs, events).await;
        http.close().await;
        let judged = match result? {
            None => return Ok(Check::Unchanged),
            Some(judged) => judged,
        };
        Ok(match judged.verdict {
            Ok(()) => Check::Available {
                version: short(judged.manifest.version),
                size: judged.manifest.size,
            },
            Err(rejection) => Check::NotForThisDevice(rejection),
        })
    }

    /// Fetches the manifest and, if the release is for this device, installs it: journaled
    /// download into the inactive slot, the bootloader's checks, activation. On `Ok` the app
    /// reboots into the new version, which confirms itself in its [`Updater::start`].
    pub async fn update<S, F, C, U>(
        &mut self,
        http: &mut HttpClient<S>,
        flash: &mut F,
        clock: &C,
        events: &mut U,
    ) -> Result<Activated, UpdateError<F::Error>>
    where
        S: Socket,
        F: NorFlash,
        C: Clock,
        U: UpdateSink,
    {
        let mut bufs = ManifestBufs::default();
        // An update always reads the manifest whole: a 304 would leave nothing to install.
        self.known = None;
        let result = async {
            let judged = self.judge(http, flash, clock, &mut bufs, events).await?;
            let judged = judged.ok_or(UpdateError::ManifestFetch(HttpError::UnexpectedStatus(304)))?;
            judged.verdict?;
            let s = self.settings;
            install(
                http,
                flash,
                clock,
                &s.download,
                &s.layout,
                s.manifest_url,
                &judged,
                events,
            )
            .await
        }
        .await;
        http.close().await;
        result
    }

    /// [`judge`] with this updater's settings; keeps the validators of a release that is
    /// not for this device, so the next check is conditional.
    async fn judge<'b, S, F, C, U>(
        &mut self,
        http: &mut HttpClient<S>,
        flash: &mut F,
        clock: &C,
        bufs: &'b mut ManifestBufs,
        events: &mut U,
    ) -> Result<Option<crate::ota::update::Judged<'b>>, UpdateError<F::Error>>
    where
        S: Socket,
        F: NorFlash,
        C: Clock,
        U: UpdateSink,
    {
        let s = self.settings;
        let source = Source {
            manifest_url: s.manifest_url,
            keys: s.keys,
            known: self.known.as_ref(),
        };
        let judged = judge(
            http,
            flash,
            clock,
            &s.download,
            &s.layout,
            &s.identity,
            self.running.target,
            source,
            bufs,
            events,
        )
        .await?;
        match &judged {
            Some(j) if j.verdict.is_err() => self.known = Some(http.validators().clone()),
            Some(_) => self.known = None,
            None => {}
        }
        Ok(judged)
    }
}

/// A manifest version (at most 31 bytes) as an owned string.
fn short(version: &str) -> heapless::String<32> {
    let mut s = heapless::String::new();
    let _ = s.push_str(version);
    s
}
