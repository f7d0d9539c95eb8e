//! The small objects written with a condition ([module docs](super#conditional-writes)):
//! the channel's manifest, read with its version and replaced only while the bucket still
//! holds that version, and what is recorded once, written only where nothing is.

use std::io;

use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};

use super::error::access_error;
use super::local_cas::{LocalPutError, replace_local};
use super::{Bucket, BucketError, Kind};

/// A manifest is at most 2 KiB; anything much larger at its key is not one, and is not read.
const MAX_MANIFEST_READ: u64 = 64 * 1024;

/// What a conditional write of the manifest found instead of what it expected.
#[derive(Debug)]
pub enum PutError {
    /// Someone else wrote the manifest since it was read: the release lost a race.
    Conflict {
        detail: String,
    },
    Bucket(BucketError),
}

impl From<BucketError> for PutError {
    fn from(e: BucketError) -> Self {
        PutError::Bucket(e)
    }
}

/// The manifest as read, and the version a conditional write must still find.
#[derive(Debug, Clone)]
pub struct Current {
    pub bytes: Vec<u8>,
    pub version: UpdateVersion,
}

impl Bucket {
    /// Reads the manifest at `rel`: `None` when the channel has none yet.
    pub async fn read_manifest(&self, rel: &str) -> Result<Option<Current>, BucketError> {
        self.read_small(rel, MAX_MANIFEST_READ).await
    }

    /// Reads the object at `rel` with the version a conditional write must find, if it is at
    /// most `max` bytes (a larger one is not what belongs there, and is not read); `None`
    /// when there is none.
    pub async fn read_small(&self, rel: &str, max: u64) -> Result<Option<Current>, BucketError> {
        let key = self.key(rel);
        let result = match self.store.get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(access_error("read", rel, &self.url, &e)),
        };
        if result.meta.size > max {
            return Err(BucketError::NotAManifest {
                key: rel.to_owned(),
                url: self.url.clone(),
                size: result.meta.size,
            });
        }
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| access_error("read", rel, &self.url, &e))?;
        Ok(Some(Current {
            bytes: bytes.to_vec(),
            version,
        }))
    }

    /// Writes a small object at `rel` unless one is there already: `true` when this call
    /// created it. The one write that never replaces anything, for what is recorded once
    /// (an outcome report, a superseded manifest).
    pub async fn put_if_absent(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &'static str,
    ) -> Result<bool, BucketError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes: self.attributes(content_type, "no-cache"),
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.key(rel), PutPayload::from(bytes.to_vec()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(access_error("write", rel, &self.url, &e)),
        }
    }

    /// Writes the manifest at `rel` if, and only if, the bucket still holds `expected`
    /// (`None`: no manifest). See the [module docs](super#conditional-writes) for how each store
    /// does it.
    pub async fn put_manifest(
        &self,
        rel: &str,
        bytes: &[u8],
        expected: Option<&Current>,
    ) -> Result<UpdateVersion, PutError> {
        let key = self.key(rel);
        if let (Kind::File { root }, Some(expected)) = (&self.kind, expected) {
            let path = root.join(rel);
            let bytes = bytes.to_vec();
            let expected = expected.bytes.clone();
            tokio::task::spawn_blocking(move || replace_local(&path, &bytes, &expected))
                .await
                .map_err(|e| PutError::Bucket(self.io_error("write", rel, &io::Error::other(e))))?
                .map_err(|e| match e {
                    LocalPutError::Conflict(detail) => PutError::Conflict { detail },
                    LocalPutError::Io(e) => PutError::Bucket(self.io_error("write", rel, &e)),
                })?;
            let meta = self
                .store
                .head(&key)
                .await
                .map_err(|e| access_error("read", rel, &self.url, &e))?;
            return Ok(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            });
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(current) => PutMode::Update(current.version.clone()),
        };
        // Devices must see a new release as soon as it is written.
        let attributes = self.attributes("application/json", "no-cache");
        let opts = PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        };
        match self.store.put_opts(&key, PutPayload::from(bytes.to_vec()), opts).await {
            Ok(result) => Ok(UpdateVersion {
                e_tag: result.e_tag,
                version: result.version,
            }),
            Err(object_store::Error::AlreadyExists { .. }) => Err(PutError::Conflict {
                detail: "a manifest appeared on the channel after this release found none".into(),
            }),
            Err(object_store::Error::Precondition { .. }) => Err(PutError::Conflict {
                detail: "the channel's manifest changed after this release read it".into(),
            }),
            Err(object_store::Error::NotFound { .. }) if expected.is_some() => Err(PutError::Conflict {
                detail: "the channel's manifest was deleted after this release read it".into(),
            }),
            Err(e) => Err(PutError::Bucket(access_error("write", rel, &self.url, &e))),
        }
    }

    fn io_error(&self, op: &'static str, rel: &str, e: &io::Error) -> BucketError {
        BucketError::Access {
            op,
            key: rel.to_owned(),
            url: self.url.clone(),
            reason: e.to_string(),
            help: "check that the directory is writable",
        }
    }
}
