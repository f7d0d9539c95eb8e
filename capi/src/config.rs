//! The firmware's settings, as C hands them over, checked and copied into the engine so that
//! nothing the caller passed has to outlive `otactl_init`.

use core::ffi::{CStr, c_char};

use device_fw::esp::chip::Chip;
use device_fw::modem::{Dialect, ModemConfig};
use device_fw::ota::engine::DownloadConfig;

/// Most trusted keys: the current release key and, during a rotation, its successor (as the
/// firmware build holds them).
pub const MAX_PUBLIC_KEYS: usize = 2;

/// The chip the firmware runs on (`otactl_config.chip`): what manifests and images must name.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipCode {
    Esp32 = 0,
    Esp32c3 = 5,
    Esp32s3 = 9,
    Esp32c6 = 13,
}

/// The modem's AT dialect (`otactl_config.dialect`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialectCode {
    Sim7600 = 1,
    Sim7080 = 2,
}

/// Settings. Fill with `otactl_config_default`, then set at least the strings, `chip`,
/// `dialect`, `flash_size`, `running_app_offset` and the keys.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct otactl_config {
    /// `http://host[:port]/path/manifest.json` (at most 255 bytes).
    pub manifest_url: *const c_char,
    /// What the manifest must name (at most 31 bytes each).
    pub product: *const c_char,
    pub channel: *const c_char,
    pub board: *const c_char,
    /// The device's stable id: its rollout cohort (at most 63 bytes).
    pub device_id: *const c_char,
    /// An `otactl_chip_code` value.
    pub chip: u32,
    /// An `otactl_dialect_code` value.
    pub dialect: u32,
    /// At most 63 printable ASCII characters without `"`.
    pub apn: *const c_char,
    /// The modem's UART rate after power-on.
    pub baud: u32,
    /// 0, or a rate to raise the link to with `AT+IPR` (needs `uart_set_baud`).
    pub fast_baud: u32,
    /// RTS/CTS wired: flash erases may overlap modem reads.
    pub rts_cts: bool,
    /// Flash chip size in bytes.
    pub flash_size: u32,
    /// Where the partition table is (0: ESP-IDF's default, 0x8000).
    pub partition_table_offset: u32,
    /// Flash address of the running app (`esp_ota_get_running_partition()->address`).
    pub running_app_offset: u32,
    /// `public_key_count` Ed25519 public keys, 32 bytes each, back to back.
    pub public_keys: *const u8,
    pub public_key_count: usize,
    /// The carrier NAT's idle timeout: every chunk is drained well inside it (2..=7440).
    pub nat_idle_timeout_s: u32,
    /// Share of the idle timeout a chunk may use, in thousandths (1..=1000).
    pub safety_permille: u32,
    /// Range request bounds in bytes (256 <= chunk_min <= chunk_max <= 16 MiB).
    pub chunk_min: u32,
    pub chunk_max: u32,
    /// Attempts without progress before a download gives up (0..=255).
    pub retries: u32,
    /// Backoff between such attempts, doubling from initial to max (ms, initial >= 1).
    pub backoff_initial_ms: u32,
    pub backoff_max_ms: u32,
}

// The profile's defaults (device-fw's profile reader is host-only); a test keeps them equal.
pub const DEFAULT_NAT_IDLE_TIMEOUT_S: u32 = 30;
pub const DEFAULT_SAFETY_PERMILLE: u32 = 500;
pub const DEFAULT_CHUNK_MIN: u32 = 4096;
pub const DEFAULT_CHUNK_MAX: u32 = 512 * 1024;
pub const DEFAULT_RETRIES: u32 = 12;
pub const DEFAULT_BACKOFF_INITIAL_MS: u32 = 500;
pub const DEFAULT_BACKOFF_MAX_MS: u32 = 30_000;
const DEFAULT_TABLE_OFFSET: u32 = 0x8000;

impl Default for otactl_config {
    fn default() -> Self {
        otactl_config {
            manifest_url: core::ptr::null(),
            product: core::ptr::null(),
            channel: core::ptr::null(),
            board: core::ptr::null(),
            device_id: core::ptr::null(),
            chip: ChipCode::Esp32c3 as u32,
            dialect: DialectCode::Sim7600 as u32,
            apn: core::ptr::null(),
            baud: 115_200,
            fast_baud: 0,
            rts_cts: false,
            flash_size: 4 * 1024 * 1024,
            partition_table_offset: 0,
            running_app_offset: 0,
            public_keys: core::ptr::null(),
            public_key_count: 0,
            nat_idle_timeout_s: DEFAULT_NAT_IDLE_TIMEOUT_S,
            safety_permille: DEFAULT_SAFETY_PERMILLE,
            chunk_min: DEFAULT_CHUNK_MIN,
            chunk_max: DEFAULT_CHUNK_MAX,
            retries: DEFAULT_RETRIES,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
        }
    }
}

/// A setting that is wrong; small, so that checking costs no stack, and put in words for
/// the last-error text only when it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    Null(&'static str),
    NotUtf8(&'static str),
    Empty(&'static str),
    TooLong {
        field: &'static str,
        max: usize,
    },
    OutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    Chip(u32),
    Dialect(u32),
    Apn,
    KeyCount(usize),
    ZeroFlashSize,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ConfigError::Null(field) => write!(f, "{field} is NULL"),
            ConfigError::NotUtf8(field) => write!(f, "{field} is not UTF-8"),
            ConfigError::Empty(field) => write!(f, "{field} is empty"),
            ConfigError::TooLong { field, max } => write!(f, "{field} is longer than {max} bytes"),
            ConfigError::OutOfRange { field, value, min, max } => {
                write!(f, "{field} is {value}; use {min} to {max}")
            }
            ConfigError::Chip(x) => write!(f, "chip {x} is not an otactl_chip_code"),
            ConfigError::Dialect(x) => write!(f, "dialect {x} is not an otactl_dialect_code"),
            ConfigError::Apn => f.write_str("apn must be at most 63 printable ASCII characters without '\"'"),
            ConfigError::KeyCount(n) => write!(
                f,
                "public_keys must hold 1 to {MAX_PUBLIC_KEYS} keys (public_key_count is {n}, or public_keys is NULL)"
            ),
            ConfigError::ZeroFlashSize => f.write_str("flash_size is 0"),
        }
    }
}

/// The settings, owned.
#[derive(Debug)]
pub struct Settings {
    pub manifest_url: heapless::String<255>,
    pub product: heapless::String<31>,
    pub channel: heapless::String<31>,
    pub board: heapless::String<31>,
    pub device_id: heapless::String<63>,
    pub chip: Chip,
    pub modem: ModemConfig,
    pub download: DownloadConfig,
    pub flash_size: u32,
    pub table_offset: u32,
    pub running_app_offset: u32,
    pub keys: heapless::Vec<[u8; 32], MAX_PUBLIC_KEYS>,
}

/// Copies a C string into `N` bytes.
///
/// # Safety
/// `ptr` is NULL or points at a NUL-terminated string.
unsafe fn copy_str<const N: usize>(
    ptr: *const c_char,
    field: &'static str,
) -> Result<heapless::String<N>, ConfigError> {
    if ptr.is_null() {
        return Err(ConfigError::Null(field));
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller promised.
    let s = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| ConfigError::NotUtf8(field))?;
    if s.is_empty() {
        return Err(ConfigError::Empty(field));
    }
    heapless::String::try_from(s).map_err(|_| ConfigError::TooLong { field, max: N })
}

fn in_range(value: u32, range: core::ops::RangeInclusive<u32>, field: &'static str) -> Result<u32, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min: *range.start(),
            max: *range.end(),
        })
    }
}

impl Settings {
    /// Checks and copies `c`.
    ///
    /// # Safety
    /// The string pointers are NULL or NUL-terminated; `public_keys` is NULL or points at
    /// `public_key_count * 32` readable bytes.
    pub unsafe fn from_c(c: &otactl_config) -> Result<Settings, ConfigError> {
        // SAFETY (all five): the caller's promise about the string pointers.
        let manifest_url = unsafe { copy_str(c.manifest_url, "manifest_url") }?;
        let product = unsafe { copy_str(c.product, "product") }?;
        let channel = unsafe { copy_str(c.channel, "channel") }?;
        let board = unsafe { copy_str(c.board, "board") }?;
        let device_id = unsafe { copy_str(c.device_id, "device_id") }?;
        // SAFETY: as above.
        let apn: heapless::String<63> = unsafe { copy_str(c.apn, "apn") }?;
        let chip = match c.chip {
            x if x == ChipCode::Esp32 as u32 => Chip::Esp32,
            x if x == ChipCode::Esp32c3 as u32 => Chip::Esp32c3,
            x if x == ChipCode::Esp32s3 as u32 => Chip::Esp32s3,
            x if x == ChipCode::Esp32c6 as u32 => Chip::Esp32c6,
            x => return Err(ConfigError::Chip(x)),
        };
        let dialect = match c.dialect {
            x if x == DialectCode::Sim7600 as u32 => Dialect::Sim7600,
            x if x == DialectCode::Sim7080 as u32 => Dialect::Sim7080,
            x => return Err(ConfigError::Dialect(x)),
        };
        let mut modem = ModemConfig::new(dialect, &apn).map_err(|_| ConfigError::Apn)?;
        modem.baud = in_range(c.baud, 1200..=5_000_000, "baud")?;
        modem.fast_baud = match c.fast_baud {
            0 => None,
            rate => Some(in_range(rate, 1200..=5_000_000, "fast_baud")?),
        };
        let nat = in_range(c.nat_idle_timeout_s, 2..=7440, "nat_idle_timeout_s")?;
        let safety = in_range(c.safety_permille, 1..=1000, "safety_permille")?;
        let chunk_min = in_range(c.chunk_min, 256..=16 * 1024 * 1024, "chunk_min")?;
        let chunk_max = in_range(c.chunk_max, chunk_min..=16 * 1024 * 1024, "chunk_max")?;
        let retries = in_range(c.retries, 0..=255, "retries")? as u8;
        let backoff_initial = in_range(c.backoff_initial_ms, 1..=u32::MAX, "backoff_initial_ms")?;
        let backoff_max = in_range(c.backoff_max_ms, backoff_initial..=u32::MAX, "backoff_max_ms")?;
        let download = DownloadConfig::for_profile(
            nat,
            safety,
            chunk_min,
            chunk_max,
            modem.baud,
            retries,
            backoff_initial,
            backoff_max,
            c.rts_cts,
        );
        if c.public_keys.is_null() || c.public_key_count == 0 || c.public_key_count > MAX_PUBLIC_KEYS {
            return Err(ConfigError::KeyCount(c.public_key_count));
        }
        // SAFETY: non-NULL and `public_key_count * 32` bytes long, as the caller promised.
        let raw = unsafe { core::slice::from_raw_parts(c.public_keys, c.public_key_count * 32) };
        let mut keys = heapless::Vec::new();
        for key in raw.chunks_exact(32) {
            let mut k = [0u8; 32];
            k.copy_from_slice(key);
            // At most MAX_PUBLIC_KEYS, checked above.
            let _ = keys.push(k);
        }
        if c.flash_size == 0 {
            return Err(ConfigError::ZeroFlashSize);
        }
        Ok(Settings {
            manifest_url,
            product,
            channel,
            board,
            device_id,
            chip,
            modem,
            download,
            flash_size: c.flash_size,
            table_offset: if c.partition_table_offset == 0 {
                DEFAULT_TABLE_OFFSET
            } else {
                c.partition_table_offset
            },
            running_app_offset: c.running_app_offset,
            keys,
        })
    }
}
