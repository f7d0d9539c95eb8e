//! Start-of-app duties, after the bootloader chose what runs: a freshly updated app tests
//! itself and confirms (or refuses) itself, and a version the bootloader rolled back from
//! is recorded, so that it is not installed again.

use embedded_storage_async::nor_flash::NorFlash;

use super::{UpdateError, UpdateEvent, UpdateLayout, UpdateSink};
use crate::esp::boot::{BootTarget, Booted, mark_invalid, mark_valid, read_otadata, slot_state};
use crate::esp::otadata::OtaState;
use crate::esp::slot_image::check_slot_image;
use crate::http::{HttpClient, HttpError, Target};
use crate::socket::Socket;

/// What the app runs, as the bootloader started it: the bench takes it from its boot step,
/// the firmware from the bootloader's choice and its own app descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running<'a> {
    pub target: BootTarget,
    /// The otadata state of the running slot's entry (`Undefined` when none selects it).
    pub state: OtaState,
    pub version: &'a str,
    pub secure_version: u32,
}

impl<'a> Running<'a> {
    pub fn from_booted(booted: &'a Booted) -> Self {
        Running {
            target: booted.target,
            state: booted.state,
            version: booted.image.app_desc.version().unwrap_or(""),
            secure_version: booted.image.app_desc.secure_version(),
        }
    }
}

/// What the app found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootReport {
    /// Nothing pending.
    Steady,
    /// First boot of an update: the self-test passed and the app marked itself valid.
    Confirmed,
    /// First boot of an update and the self-test failed: marked invalid; reboot now.
    RollbackRequested,
}

/// Start-of-app duties: confirm (or refuse) a freshly updated app after its self-test, and
/// remember a version the bootloader rolled back from, so it is not installed again.
///
/// `self_test_passed` is the outcome of the app's own test (modem answers, origin
/// reachable); it is only consulted when the running app is PENDING_VERIFY.
pub async fn after_boot<F: NorFlash, U: UpdateSink>(
    flash: &mut F,
    layout: &UpdateLayout,
    booted: &Running<'_>,
    self_test_passed: impl core::future::Future<Output = bool>,
    events: &mut U,
) -> Result<BootReport, UpdateError<F::Error>> {
    let entries = read_otadata(flash, layout.boot.otadata)
        .await
        .map_err(UpdateError::Flash)?;
    let count = layout.boot.ota.len();
    for other in (0..count).filter(|&i| booted.target != BootTarget::Ota(i)) {
        if !matches!(
            slot_state(&entries, count, other),
            Some(OtaState::Aborted | OtaState::Invalid)
        ) {
            continue;
        }
        let slot = layout.boot.ota[other];
        let Ok(image) = check_slot_image(flash, slot, u64::from(slot.size), layout.boot.chip_id).await else {
            continue;
        };
        let Some(failed) = image.app_desc.version() else {
            continue;
        };
        let state = layout.journal.load(flash).await.map_err(UpdateError::Journal)?;
        if state.failed_version.as_deref() != Some(failed) {
            layout
                .journal
                .record_failed_version(flash, failed)
                .await
                .map_err(UpdateError::Journal)?;
            events.event(UpdateEvent::RolledBack { failed_version: failed }).await;
        }
    }

    // PENDING_VERIFY is what a rollback-enabled bootloader hands over; NEW reaches the app
    // only from a bootloader built without rollback, and is judged the same way.
    if !matches!(booted.state, OtaState::PendingVerify | OtaState::New) {
        return Ok(BootReport::Steady);
    }
    let version = booted.version;
    if self_test_passed.await {
        mark_valid(flash, layout.boot.otadata)
            .await
            .map_err(UpdateError::Flash)?;
        events.event(UpdateEvent::Confirmed { version }).await;
        Ok(BootReport::Confirmed)
    } else {
        mark_invalid(flash, layout.boot.otadata)
            .await
            .map_err(UpdateError::Flash)?;
        events.event(UpdateEvent::SelfTestFailed).await;
        Ok(BootReport::RollbackRequested)
    }
}

/// The self-test a freshly updated app runs before it confirms itself: the modem carries
/// a request to the origin and an answer comes back (any HTTP status: reachability is the
/// question, not the manifest).
pub async fn self_test<S: Socket>(http: &mut HttpClient<S>, manifest_url: &str) -> bool {
    let Ok(url) = Target::parse(manifest_url) else {
        return false;
    };
    let answered = match http.get(&url, Some((0, Some(0)))).await {
        Ok(_) => true,
        Err(e) => matches!(
            e,
            HttpError::ClientError(_)
                | HttpError::ServerError(_)
                | HttpError::UnexpectedStatus(_)
                | HttpError::RangeNotSatisfiable { .. }
        ),
    };
    http.close().await;
    answered
}
