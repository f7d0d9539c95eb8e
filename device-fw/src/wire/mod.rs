//! The formats host and device share: one definition, two users. The device parses them
//! without a heap; `otactl` (with the `std` feature) also writes them.

pub mod console;
pub mod json;
pub mod manifest;
pub mod semver;
