//! The app's console: command lines in, event lines out, through fixed buffers; and the
//! translation of the update's progress into those events.

use core::fmt::{self, Write as _};

use embedded_io_async::{Read, Write};

use crate::esp::boot::BootTarget;
use crate::esp::otadata::OtaState;
use crate::ota::engine::{DownloadError, OtaEvent};
use crate::ota::policy::Rejection;
use crate::ota::update::{UpdateError, UpdateEvent, UpdateSink};
use crate::wire::console::{Event, MAX_COMMAND_LINE, MAX_EVENT_LINE};

/// Longest free-text message in an event.
pub(crate) const MESSAGE_LEN: usize = 200;

/// Formats into a fixed buffer, cutting at the end (messages are for people; codes carry
/// the meaning).
pub(crate) struct Text<const N: usize>(heapless::String<N>);

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

pub(crate) fn text<const N: usize>(args: fmt::Arguments<'_>) -> heapless::String<N> {
    let mut t = Text(heapless::String::new());
    let _ = t.write_fmt(args);
    t.0
}

pub(crate) fn slot_name(target: BootTarget) -> heapless::String<8> {
    match target {
        BootTarget::Factory => text(format_args!("factory")),
        BootTarget::Ota(n) => text(format_args!("ota_{n}")),
    }
}

pub(crate) fn state_name(state: OtaState) -> &'static str {
    match state {
        OtaState::New => "new",
        OtaState::PendingVerify => "pending_verify",
        OtaState::Valid => "valid",
        OtaState::Invalid => "invalid",
        OtaState::Aborted => "aborted",
        OtaState::Undefined => "undefined",
        OtaState::Unknown(_) => "unknown",
    }
}

/// The console: command lines in, event lines out, through fixed buffers.
#[derive(Debug)]
pub struct Console<'c, Con> {
    io: &'c mut Con,
    pub line: [u8; MAX_COMMAND_LINE + 2],
    len: usize,
    /// Bytes read past the end of the last line.
    pending: [u8; 64],
    pending_at: usize,
    pending_len: usize,
    /// The current line overflowed: drop bytes until its end.
    overflow: bool,
    out: [u8; MAX_EVENT_LINE],
}

/// What the console read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Line(usize),
    TooLong,
    Closed,
}

impl<'c, Con: Read + Write> Console<'c, Con> {
    pub fn new(io: &'c mut Con) -> Self {
        Console {
            io,
            line: [0; MAX_COMMAND_LINE + 2],
            len: 0,
            pending: [0; 64],
            pending_at: 0,
            pending_len: 0,
            overflow: false,
            out: [0; MAX_EVENT_LINE],
        }
    }

    pub(crate) async fn emit(&mut self, event: &Event<&str>) {
        // Cannot fail: every event is built within MESSAGE_LEN-bounded strings.
        if let Ok(n) = event.write_line(&mut self.out) {
            let _ = self.io.write_all(&self.out[..n]).await;
            let _ = self.io.flush().await;
        }
    }

    /// A plain log line, for people.
    pub(crate) async fn log(&mut self, args: fmt::Arguments<'_>) {
        let line: heapless::String<MESSAGE_LEN> = text(args);
        let _ = self.io.write_all(line.as_bytes()).await;
        let _ = self.io.write_all(b"\r\n").await;
        let _ = self.io.flush().await;
    }

    /// Reads up to the next line ending.
    pub async fn read_line(&mut self) -> Input {
        loop {
            while self.pending_at < self.pending_len {
                let b = self.pending[self.pending_at];
                self.pending_at += 1;
                if b == b'\n' || b == b'\r' {
                    let n = self.len;
                    self.len = 0;
                    if core::mem::take(&mut self.overflow) {
                        return Input::TooLong;
                    }
                    if n > 0 {
                        return Input::Line(n);
                    }
                } else if self.len < self.line.len() {
                    self.line[self.len] = b;
                    self.len += 1;
                } else {
                    self.overflow = true;
                }
            }
            match self.io.read(&mut self.pending).await {
                Ok(0) | Err(_) => return Input::Closed,
                Ok(n) => {
                    self.pending_at = 0;
                    self.pending_len = n;
                }
            }
        }
    }
}

/// Turns the update's progress into console events.
pub(crate) struct Sink<'a, 'c, Con> {
    pub(crate) console: &'a mut Console<'c, Con>,
    pub(crate) manifest_url: &'a str,
    /// A version the start duties found rolled back from: reported after the boot.
    pub(crate) rolled_back: Option<heapless::String<32>>,
}

impl<Con: Read + Write> UpdateSink for Sink<'_, '_, Con> {
    async fn event(&mut self, event: UpdateEvent<'_>) {
        let c = &mut *self.console;
        match event {
            UpdateEvent::ManifestFetched { bytes } => {
                c.emit(&Event::ManifestFetched {
                    url: self.manifest_url,
                    bytes: bytes as u32,
                })
                .await
            }
            UpdateEvent::ManifestAccepted { version, size, key } => {
                c.emit(&Event::ManifestVerified {
                    version,
                    size,
                    key: key as u8,
                })
                .await
            }
            UpdateEvent::Resuming { offset } => c.emit(&Event::Resuming { offset }).await,
            UpdateEvent::Download(d) => match d {
                OtaEvent::Progress {
                    written,
                    total,
                    rate_bps,
                    chunk,
                } => {
                    c.emit(&Event::Progress {
                        offset: written,
                        total,
                        rate: rate_bps,
                        chunk,
                    })
                    .await
                }
                OtaEvent::ConnectionLost {
                    offset,
                    error,
                    quiet_us,
                    nat_idle_us,
                } => {
                    let error: heapless::String<MESSAGE_LEN> = text(format_args!("{error}"));
                    c.emit(&Event::ConnectionDropped {
                        offset,
                        error: &error,
                        quiet_ms: quiet_us.map(|us| us / 1000),
                        nat_idle_ms: nat_idle_us / 1000,
                    })
                    .await
                }
                OtaEvent::Resumed { offset } => c.emit(&Event::Resumed { offset }).await,
                OtaEvent::RangeIgnored { skip } => {
                    c.log(format_args!("ota: server ignored Range, skipping {skip} bytes"))
                        .await
                }
                OtaEvent::ModemRecovered => c.log(format_args!("ota: modem brought up again")).await,
                OtaEvent::Backoff { us } => {
                    c.log(format_args!("ota: no progress, retrying in {} ms", us / 1000))
                        .await
                }
                _ => {}
            },
            UpdateEvent::ImageVerified { version } => c.emit(&Event::VerifyOk { version }).await,
            UpdateEvent::Activated { slot, version } => {
                let slot = slot_name(BootTarget::Ota(slot));
                c.emit(&Event::Activated { slot: &slot, version }).await
            }
            UpdateEvent::Confirmed { version } => c.emit(&Event::Confirmed { version }).await,
            UpdateEvent::SelfTestFailed => {
                c.emit(&Event::SelfTestFailed {
                    message: "the modem or the origin did not answer",
                })
                .await
            }
            UpdateEvent::RolledBack { failed_version } => {
                self.rolled_back = heapless::String::try_from(failed_version).ok();
                c.emit(&Event::RolledBack { failed_version }).await
            }
            UpdateEvent::ManifestUnchanged => c.emit(&Event::ManifestUnchanged { url: self.manifest_url }).await,
        }
    }
}

/// The event that reports a failed update, by where it failed.
pub(crate) async fn report_failure<Con: Read + Write, E: fmt::Debug>(
    console: &mut Console<'_, Con>,
    error: &UpdateError<E>,
    running_version: &str,
) {
    let reason = error.code();
    let message: heapless::String<MESSAGE_LEN> = text(format_args!("{error}"));
    let message = message.as_str();
    let event = match error {
        UpdateError::Rejected(Rejection::NotNewer) => Event::UpToDate {
            version: running_version,
        },
        UpdateError::Manifest(_) | UpdateError::Rejected(_) | UpdateError::ImageUrl(_) => {
            Event::ManifestRejected { reason, message }
        }
        UpdateError::Download(DownloadError::HashMismatch | DownloadError::SizeMismatch { .. })
        | UpdateError::Image(_)
        | UpdateError::AppVersionMismatch
        | UpdateError::SecureVersionMismatch => Event::VerifyFailed { reason, message },
        _ => Event::UpdateFailed { reason, message },
    };
    console.emit(&event).await;
}
