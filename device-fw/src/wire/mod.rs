//! The formats host and device share: one definition, two users. The device parses them
//! without a heap; `otactl` (with the `std` feature) also writes them.

pub mod compressed;
pub mod console;

/// Which file of a release a device fetches: the image as it is, its compressed form
/// ([`compressed`]) or a patch from the running image ([`delta`]). The slot ends up with the
/// same signed image either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageForm {
    Raw,
    Compressed,
    Delta,
}
pub mod delta;
pub mod json;
pub(crate) mod json_out;
pub mod manifest;
pub mod report;
pub mod rollout;
pub mod semver;
