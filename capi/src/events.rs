//! What the engine reports while it works, as one flat C struct: a kind code, three numbers
//! whose meaning the kind gives, and an optional text. Flat, so that a C firmware can log or
//! forward any event with one `printf` and never has to follow nested pointers.

use core::ffi::c_char;
use core::fmt::Write as _;

use device_fw::modem::ModemInfo;
use device_fw::ota::engine::OtaEvent;
use device_fw::ota::update::{UpdateEvent, UpdateSink};

use crate::io::Io;

/// Longest event text, NUL included (versions are at most 31 bytes; error texts are cut).
pub const EVENT_TEXT_BYTES: usize = 96;

/// The kind of an [`otactl_event`]; `values[i]` below are its numbers, unused ones 0.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The modem is up: values = [baud, rssi (0..31, 99 unknown), 0], text = model.
    ModemUp = 1,
    /// values = [manifest bytes, 0, 0].
    ManifestFetched = 2,
    /// Signature good, every policy check passed: values = [image size, key index, 0],
    /// text = version.
    ManifestAccepted = 3,
    /// A journaled download carries on: values = [offset, 0, 0].
    Resuming = 4,
    /// values = [offset, length, 0].
    ChunkRequested = 5,
    /// values = [bytes written, total, drain rate in bytes/s].
    Progress = 6,
    /// The connection died mid-chunk: values = [offset, quiet µs (UINT64_MAX: not a quiet
    /// loss), NAT idle µs the next chunks are sized for], text = why.
    ConnectionLost = 7,
    /// values = [offset, 0, 0].
    Resumed = 8,
    /// The server ignored Range: values = [bytes skipped, 0, 0].
    RangeIgnored = 9,
    ModemRecovered = 10,
    /// values = [µs before the retry, 0, 0].
    Backoff = 11,
    /// text = version.
    ImageVerified = 12,
    /// otadata now selects the new slot: values = [slot index, 0, 0], text = version.
    Activated = 13,
    /// The new app passed its self-test and is marked valid: text = version.
    Confirmed = 14,
    /// The self-test failed and the app marked itself invalid; reboot to roll back.
    SelfTestFailed = 15,
    /// A version that never confirmed was rolled back from: text = that version.
    RolledBack = 16,
    /// The origin said the manifest has not changed.
    ManifestUnchanged = 17,
}

/// One event. `text` is NULL or a NUL-terminated string valid only during the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct otactl_event {
    pub kind: EventKind,
    pub values: [u64; 3],
    pub text: *const c_char,
}

/// Builds one event's text in a stack buffer, so that no event needs heap or engine state.
struct Text {
    buf: heapless::String<{ EVENT_TEXT_BYTES - 1 }>,
}

impl Text {
    fn of(args: core::fmt::Arguments<'_>) -> Self {
        let mut text = Text {
            buf: heapless::String::new(),
        };
        // Cut, not failed, when longer than the buffer.
        let _ = text.write_fmt(args);
        text
    }
}

impl core::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.buf.push(c).is_err() {
                return Err(core::fmt::Error);
            }
        }
        Ok(())
    }
}

/// Calls the event callback with `kind`, `values` and, when given, `text`.
pub fn emit(io: &Io, kind: EventKind, values: [u64; 3], text: Option<core::fmt::Arguments<'_>>) {
    let mut bytes = [0u8; EVENT_TEXT_BYTES];
    let ptr = match text {
        Some(args) => {
            let text = Text::of(args);
            let s = text.buf.as_bytes();
            // The buffer is one longer than the text, so the NUL always fits.
            bytes[..s.len()].copy_from_slice(s);
            bytes.as_ptr().cast::<c_char>()
        }
        None => core::ptr::null(),
    };
    io.emit(&otactl_event {
        kind,
        values,
        text: ptr,
    });
}

pub fn modem_up(io: &Io, info: &ModemInfo) {
    emit(
        io,
        EventKind::ModemUp,
        [u64::from(info.baud), u64::from(info.rssi), 0],
        Some(format_args!("{}", info.model)),
    );
}

/// The core's update events, turned into [`otactl_event`]s.
pub struct Sink<'a>(pub &'a Io);

impl UpdateSink for Sink<'_> {
    async fn event(&mut self, event: UpdateEvent<'_>) {
        let io = self.0;
        match event {
            UpdateEvent::ManifestFetched { bytes } => emit(io, EventKind::ManifestFetched, [bytes as u64, 0, 0], None),
            UpdateEvent::ManifestUnchanged => emit(io, EventKind::ManifestUnchanged, [0; 3], None),
            UpdateEvent::ManifestAccepted { version, size, key } => emit(
                io,
                EventKind::ManifestAccepted,
                [u64::from(size), key as u64, 0],
                Some(format_args!("{version}")),
            ),
            UpdateEvent::Resuming { offset } => emit(io, EventKind::Resuming, [u64::from(offset), 0, 0], None),
            UpdateEvent::Download(d) => download(io, d),
            UpdateEvent::ImageVerified { version } => {
                emit(io, EventKind::ImageVerified, [0; 3], Some(format_args!("{version}")))
            }
            UpdateEvent::Activated { slot, version } => emit(
                io,
                EventKind::Activated,
                [slot as u64, 0, 0],
                Some(format_args!("{version}")),
            ),
            UpdateEvent::Confirmed { version } => {
                emit(io, EventKind::Confirmed, [0; 3], Some(format_args!("{version}")))
            }
            UpdateEvent::SelfTestFailed => emit(io, EventKind::SelfTestFailed, [0; 3], None),
            UpdateEvent::RolledBack { failed_version } => emit(
                io,
                EventKind::RolledBack,
                [0; 3],
                Some(format_args!("{failed_version}")),
            ),
            // An event this version does not know yet is left out rather than mislabelled.
            _ => {}
        }
    }
}

fn download(io: &Io, event: OtaEvent) {
    match event {
        OtaEvent::ChunkRequested { offset, len } => emit(io, EventKind::ChunkRequested, [offset, len, 0], None),
        OtaEvent::Progress {
            written,
            total,
            rate_bps,
            ..
        } => emit(io, EventKind::Progress, [written, total, u64::from(rate_bps)], None),
        OtaEvent::ConnectionLost {
            offset,
            error,
            quiet_us,
            nat_idle_us,
        } => emit(
            io,
            EventKind::ConnectionLost,
            [offset, quiet_us.unwrap_or(u64::MAX), nat_idle_us],
            Some(format_args!("{error}")),
        ),
        OtaEvent::Resumed { offset } => emit(io, EventKind::Resumed, [offset, 0, 0], None),
        OtaEvent::RangeIgnored { skip } => emit(io, EventKind::RangeIgnored, [skip, 0, 0], None),
        OtaEvent::ModemRecovered => emit(io, EventKind::ModemRecovered, [0; 3], None),
        OtaEvent::Backoff { us } => emit(io, EventKind::Backoff, [us, 0, 0], None),
        _ => {}
    }
}
