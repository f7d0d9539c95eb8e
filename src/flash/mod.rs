//! `otactl flash`: a bench device set up for OTA from its first boot, through the espflash
//! library. The command line, progress display and report are `cli/flash.rs`.
//!
//! A fresh flash is more than the app: the device's OTA core finds its slots in the
//! partition table, so the table is built from the same profile the firmware was built for
//! ([`device_fw::profile::Profile::partition_table`]), and otadata is erased so that the
//! bootloader starts the app just written to `ota_0` whatever an earlier firmware had
//! selected. Everything that can be checked without the device (profile, image, slot size,
//! bootloader file) is checked before the port is opened; everything about the device
//! (chip, flash size) before the first byte is written.
//!
//! - [`port`]: which port, opening it, and what to say when that fails.
//! - [`plan`]: the segments: bootloader, partition table, otadata, journal, app.
//! - [`write`]: writing them through the ROM loader, compressed, and the MD5 check.

pub mod plan;
pub mod port;
pub mod write;

use device_fw::esp::chip::Chip;
use device_fw::esp::image::ImageError as ParseError;
use miette::Diagnostic;

use crate::image::ImageError;

/// Why `otactl flash` stopped. [`FlashError::exit_code`] sorts them: 1 when the device or the
/// image was refused (or the flash did not read back as written), 2 when otactl could not
/// do the work (arguments, files, the port, the link).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum FlashError {
    #[error("{0}")]
    #[diagnostic(
        code(otactl::flash::profile),
        help("fix the profile; `otactl profile check` shows every problem")
    )]
    Profile(String),

    #[error("cannot read the {what} {path}: {reason}")]
    #[diagnostic(code(otactl::flash::read), help("check the path"))]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },

    #[error("{path} is {size} bytes, more than any {what}")]
    #[diagnostic(code(otactl::flash::read), help("check the path: this is not the file you meant"))]
    FileTooLarge {
        what: &'static str,
        path: String,
        size: u64,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] ImageError),

    #[error("{path} is not an app image a bootloader would start: {error}")]
    #[diagnostic(
        code(otactl::flash::bad_image),
        help(
            "pass the app .bin (from `otactl image`, `espflash save-image` or ESP-IDF's build/<app>.bin) with --image, or the firmware ELF with --elf; a merged image (bootloader + table + app) is not an app image"
        )
    )]
    BadImage { path: String, error: ParseError },

    #[error("{path} is an app image for {image}, but the profile is for {profile}")]
    #[diagnostic(
        code(otactl::flash::image_chip),
        help("build the firmware for the profile's chip, or pass the profile of the board it was built for")
    )]
    ImageWrongChip { path: String, image: String, profile: Chip },

    #[error("the bootloader {path} cannot be flashed: {reason}")]
    #[diagnostic(code(otactl::flash::bootloader))]
    BadBootloader {
        path: String,
        reason: String,
        #[help]
        help: String,
    },

    #[error("espflash has no bootloader for {chip} with a {xtal} crystal: {reason}")]
    #[diagnostic(
        code(otactl::flash::bootloader),
        help("build the ESP-IDF bootloader for this board and pass it with --bootloader")
    )]
    NoBundledBootloader { chip: String, xtal: String, reason: String },

    #[error("no serial port to flash: {seen}")]
    #[diagnostic(code(otactl::flash::no_port))]
    NoPort {
        seen: String,
        #[help]
        help: String,
    },

    #[error("more than one board is connected: {list}")]
    #[diagnostic(
        code(otactl::flash::many_ports),
        help("otactl never guesses which one to write: pass --port with one of them")
    )]
    ManyPorts { list: String },

    #[error("the serial port {port} does not exist")]
    #[diagnostic(code(otactl::flash::port_not_found))]
    PortNotFound {
        port: String,
        #[help]
        help: String,
    },

    #[error("the serial port {port} is in use by another program")]
    #[diagnostic(
        code(otactl::flash::port_busy),
        help(
            "close the serial monitor, `otactl watch`, esptool or espflash that has it open (`fuser -v {port}` names it), then run again"
        )
    )]
    PortBusy { port: String },

    #[error("permission denied opening the serial port {port}")]
    #[diagnostic(
        code(otactl::flash::port_permission),
        help(
            "add yourself to the group that owns the port (`ls -l {port}`: dialout on Debian/Ubuntu/Fedora, uucp on Arch): `sudo usermod -aG dialout $USER`, then log out and in again"
        )
    )]
    PortPermission { port: String },

    #[error("cannot open the serial port {port}: {reason}")]
    #[diagnostic(
        code(otactl::flash::port_open),
        help("check that {port} is a serial port (`ls -l {port}`) and that the board is plugged in")
    )]
    PortOpen { port: String, reason: String },

    #[error("{port} has no DTR/RTS lines, so otactl cannot {what}")]
    #[diagnostic(code(otactl::flash::no_modem_lines))]
    NoModemLines {
        port: String,
        what: String,
        #[help]
        help: String,
    },

    #[error("no answer from a ROM loader on {port}")]
    #[diagnostic(code(otactl::flash::no_response))]
    NoResponse {
        port: String,
        #[help]
        help: String,
    },

    #[error("the flasher stub did not start on {port}")]
    #[diagnostic(
        code(otactl::flash::stub),
        help(
            "the ROM loader answered, then went quiet: the flasher stub espflash uploads to RAM did not send its greeting. Retry (a reset or a noisy line during the upload does this); if it persists, pass --no-stub: otactl then writes through the ROM loader, compressed, on every chip. `otactl sim rom` answers as the stub once it is uploaded, so there this means the emulator's log says why it did not start"
        )
    )]
    StubNotStarted { port: String },

    #[error("the link to the device failed while {phase}: {reason}")]
    #[diagnostic(code(otactl::flash::link))]
    Link {
        phase: String,
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("the device on {port} is {found}, but the profile {profile} is for {expected}")]
    #[diagnostic(
        code(otactl::flash::wrong_chip),
        help("pass the profile of this board, or connect the board the profile describes; nothing was written")
    )]
    WrongChip {
        port: String,
        found: String,
        expected: Chip,
        profile: String,
    },

    #[error("the device's flash is {device}, but the profile's partition table needs {needs}")]
    #[diagnostic(
        code(otactl::flash::flash_too_small),
        help(
            "the profile describes a board with a larger flash: use a profile whose [flash] size and [slots] fit this chip; nothing was written"
        )
    )]
    FlashTooSmall { device: String, needs: String },

    #[error("{segment} at {addr:#x} did not read back as written (MD5 {found}, expected {expected})")]
    #[diagnostic(
        code(otactl::flash::verify),
        help(
            "run again; if it fails again, lower --baud (e.g. 460800 or 115200), try another cable or port, and check the board's power supply"
        )
    )]
    VerifyFailed {
        segment: String,
        addr: u32,
        expected: String,
        found: String,
    },
}

impl FlashError {
    /// 1: refused or not written as asked (the image, the device, the read-back); 2: otactl
    /// could not do the work.
    pub fn exit_code(&self) -> u8 {
        match self {
            FlashError::Image(_)
            | FlashError::BadImage { .. }
            | FlashError::ImageWrongChip { .. }
            | FlashError::BadBootloader { .. }
            | FlashError::WrongChip { .. }
            | FlashError::FlashTooSmall { .. }
            | FlashError::VerifyFailed { .. } => 1,
            _ => 2,
        }
    }
}

pub use crate::error_text::error_chain as chain;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
