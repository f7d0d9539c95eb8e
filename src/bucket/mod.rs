//! Buckets: one URL names where releases are published, whatever stores them.
//!
//! | URL | store |
//! |---|---|
//! | `file:///srv/ota`; relative: `file://./dist`, `file://../dist`, `file:dist`, `dist` | a local directory; a relative one is taken against the working directory for `--bucket` and against the profile's directory for `[release] bucket` |
//! | `s3://bucket/prefix` | S3 or an S3-compatible store (`--endpoint` or `AWS_ENDPOINT_URL` for MinIO, R2, Ceph, …) |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `az://container/prefix` | Azure Blob Storage (account from `AZURE_STORAGE_ACCOUNT_NAME`) |
//!
//! Credentials come from the standard variables of each cloud (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`), web identity and container credentials, and the instance metadata service on
//! a cloud machine: what object_store reads (not AWS profile files). They only ever travel
//! to the store: no message, report or object carries them.
//!
//! # Conditional writes
//!
//! The channel's manifest is the one mutable object, and two release jobs may race on it. It
//! is written with [`PutMode::Create`] when the channel has none and
//! [`PutMode::Update`] with the version read before otherwise, so the slower job's write
//! fails instead of silently replacing the faster one's:
//!
//! - S3: `If-None-Match: *` / `If-Match: <etag>` (object_store's default
//!   `S3ConditionalPut::ETagMatch`; AWS S3 honours both since 2024, so do MinIO and moto;
//!   an S3-compatible store that ignores them cannot stop a race, check yours).
//! - GCS: `ifGenerationMatch=0` / `ifGenerationMatch=<generation>`.
//! - Azure: `If-None-Match: *` / `If-Match: <etag>`.
//! - Local directory: object_store's `LocalFileSystem` creates with a hard link (atomic, fails
//!   if the file exists) but has no `Update`. otactl does it here: an exclusive `flock` on
//!   `<channel>/.manifest.json.lock` (the kernel drops it if the process dies, so a crash
//!   leaves no stale lock), then, holding it, re-read the manifest and compare it byte for
//!   byte with the one the release decided on; only if it is unchanged, write the new one to
//!   a staging file, fsync it, `rename` it over the manifest (atomic) and fsync the
//!   directory. Devices and `otactl serve` see the old manifest or the new one, never a
//!   mix. Local filesystems only: `flock` over NFS depends on the server.
//!
//! What is recorded once (an outcome report, a superseded manifest in a channel's history)
//! is written with [`PutMode::Create`] ([`Bucket::put_if_absent`]): a repeat changes
//! nothing, on every store.
//!
//! [`PutMode::Create`]: object_store::PutMode::Create
//! [`PutMode::Update`]: object_store::PutMode::Update

mod error;
mod local_cas;
mod location;
mod manifest;
mod objects;
mod open;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore};

pub use error::BucketError;
pub use location::Location;
pub use manifest::{Current, PutError};
pub use objects::ImageUpload;

use location::file_url;

/// Images above this go up in parts; it is also the part size, S3's smallest.
pub const MULTIPART_PART: usize = 5 * 1024 * 1024;

/// Which store a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { root: PathBuf },
    S3 { bucket: String },
    Gcs { bucket: String },
    Azure { container: String },
}

/// One level of a listing: what is directly under a folder of the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sub-folders, by name (`1.1.0`, not the whole path).
    pub folders: Vec<String>,
    /// Objects, by name, with their size.
    pub objects: Vec<(String, u64)>,
}

/// An opened bucket: the store and where in it this otactl writes. Cloning shares the
/// store (and its connections), so concurrent reads can each hold one.
#[derive(Clone)]
pub struct Bucket {
    url: String,
    kind: Kind,
    prefix: String,
    store: Arc<dyn ObjectStore>,
}

impl fmt::Debug for Bucket {
    // The store's own Debug would show its configuration, credentials included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// The bucket's URL as printed (`file:///…`, `s3://bucket/prefix`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store key of `rel` (a path relative to the bucket URL, `stable/manifest.json`).
    fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Where `rel` is, as a URL of the bucket's own kind.
    pub fn object_url(&self, rel: &str) -> String {
        match &self.kind {
            Kind::File { root } => file_url(&root.join(rel)),
            _ => format!("{}/{rel}", self.url),
        }
    }

    /// Content type and caching, where the store keeps them (a local directory does not:
    /// `otactl serve` sets both itself).
    fn attributes(&self, content_type: &'static str, cache_control: &'static str) -> Attributes {
        let mut attributes = Attributes::new();
        if !matches!(self.kind, Kind::File { .. }) {
            attributes.insert(Attribute::ContentType, content_type.into());
            attributes.insert(Attribute::CacheControl, cache_control.into());
        }
        attributes
    }
}
