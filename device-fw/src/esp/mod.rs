//! ESP-IDF on-flash formats the OTA core must read and write itself: the app image
//! ([`image`]), the partition table ([`partition`]) and the otadata boot selector
//! ([`otadata`]).
//!
//! They are implemented from `docs/ESP-FORMATS.md` §2–§3, byte for byte as ESP-IDF and
//! esptool lay them out, so the device can check a downloaded image before it flips the
//! boot slot, and the host tools can build the same bytes without esptool.

pub mod boot;
pub mod chip;
pub mod image;
pub mod otadata;
pub mod partition;
pub mod slot_image;
