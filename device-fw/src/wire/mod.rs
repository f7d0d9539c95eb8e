//! The formats host and device share: one definition, two users. The device parses them
//! without a heap; `otactl` (with the `std` feature) also writes them.

pub mod compressed;
pub mod console;
pub mod json;
pub(crate) mod json_out;
pub mod manifest;
pub mod report;
pub mod rollout;
pub mod semver;
