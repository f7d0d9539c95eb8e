//! The delta form a release publishes: the patch from the channel's current release to the
//! new image, when the bucket still holds that release's image (docs/fewer-bytes.md).

use device_fw::wire::delta;
use sha2::{Digest, Sha256};

use super::{Progress, ReleaseError, Report};
use crate::bucket::Bucket;
use crate::channel::Held;
use crate::image;

/// A patch to publish beside a release.
pub(super) struct PatchFile {
    pub key: String,
    pub bytes: Vec<u8>,
    pub base_sha256: String,
    pub base_size: u32,
    pub base_version: String,
}

/// The patch from the channel's current release to `new`, if the manifest verified, its
/// image is still in the bucket with the hash the manifest signed, and the patch is smaller
/// than the compressed form (`compressed_len`); otherwise devices take the compressed form,
/// and the step says why.
pub(super) fn patch_from_previous(
    runtime: &tokio::runtime::Runtime,
    bucket: &Bucket,
    previous: Option<&Held>,
    new: &[u8],
    compressed_len: usize,
    progress: &mut dyn Progress,
    report: &mut Report,
) -> Result<Option<PatchFile>, ReleaseError> {
    let Some(facts) = previous.filter(|h| h.verified).and_then(|h| h.facts.as_ref()) else {
        return Ok(None);
    };
    let mut skip = |progress: &mut dyn Progress, why: String| {
        let why = format!("no patch from {}: {why}", facts.version);
        progress.step("delta", why.clone());
        report.delta_skipped = Some(why);
        Ok(None)
    };
    let Some(key) = facts.image.strip_prefix("../") else {
        return skip(progress, format!("its image {} is not in this bucket", facts.image));
    };
    let base = match runtime.block_on(bucket.read_small(key, u64::from(u32::MAX)))? {
        Some(current) => current.bytes,
        None => return skip(progress, format!("{key} is no longer in the bucket")),
    };
    let base_sha256 = image::hex(&Sha256::digest(&base));
    if base_sha256 != facts.sha256 || base.len() as u64 != u64::from(facts.size) {
        return skip(
            progress,
            format!(
                "{key} is not the image its manifest signed (SHA-256 {base_sha256}, {} bytes)",
                base.len()
            ),
        );
    }
    let bytes = delta::diff(&base, new).map_err(ReleaseError::Delta)?;
    if bytes.len() >= compressed_len {
        return skip(
            progress,
            format!(
                "the patch ({} bytes) is no smaller than the compressed form ({compressed_len})",
                bytes.len()
            ),
        );
    }
    let new_sha256 = image::hex(&Sha256::digest(new));
    let key = format!("images/{new_sha256}.from-{}.otd", &base_sha256[..16]);
    progress.step(
        "delta",
        format!(
            "{key}: {} bytes from {} ({:.1} % of the image)",
            bytes.len(),
            facts.version,
            100.0 * bytes.len() as f64 / new.len() as f64
        ),
    );
    Ok(Some(PatchFile {
        key,
        bytes,
        base_sha256,
        base_size: facts.size,
        base_version: facts.version.clone(),
    }))
}

/// The patch a held manifest lists, as a release run again finds it.
pub(super) enum ListedPatch {
    /// In the bucket with the listed size.
    Present { key: String, size: u32 },
    /// Missing, and made again from its base: to upload.
    Restored { key: String, bytes: Vec<u8> },
}

/// The patch the channel's held manifest lists for the image it already holds (`image`),
/// made again from the base it names if it went missing: a release run again restores a
/// patch object as it does the image. `None` when the manifest lists none, or when its base
/// is gone or the patch made again differs from the listed size (then the step warns: a
/// device running that base would fail to fetch it until the next release).
pub(super) fn listed_patch(
    runtime: &tokio::runtime::Runtime,
    bucket: &Bucket,
    held: Option<&Held>,
    image: &[u8],
    progress: &mut dyn Progress,
) -> Result<Option<ListedPatch>, ReleaseError> {
    let Some((listed, size, base_sha256, _)) = held
        .filter(|h| h.verified)
        .and_then(|h| h.facts.as_ref())
        .and_then(|f| f.delta.clone())
    else {
        return Ok(None);
    };
    let Some(key) = listed.strip_prefix("../").map(str::to_owned) else {
        return Ok(None);
    };
    if runtime.block_on(bucket.size_of(&key))? == Some(u64::from(size)) {
        return Ok(Some(ListedPatch::Present { key, size }));
    }
    let base_key = format!("images/{base_sha256}.bin");
    let base = match runtime.block_on(bucket.read_small(&base_key, u64::from(u32::MAX)))? {
        Some(current) if image::hex(&Sha256::digest(&current.bytes)) == base_sha256 => current.bytes,
        _ => {
            progress.warn(format!(
                "the manifest lists the patch {key}, which is missing, and its base {base_key} is gone; devices running that base fail to fetch it until the next release"
            ));
            return Ok(None);
        }
    };
    let bytes = delta::diff(&base, image).map_err(ReleaseError::Delta)?;
    if bytes.len() != size as usize {
        progress.warn(format!(
            "the patch {key} is missing, and made again it is {} bytes where the manifest lists {size}; not restored",
            bytes.len()
        ));
        return Ok(None);
    }
    Ok(Some(ListedPatch::Restored { key, bytes }))
}
