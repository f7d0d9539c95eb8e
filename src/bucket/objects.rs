//! The other objects of a bucket: listing a folder, looking up a size, and uploading an
//! image (in parts above [`MULTIPART_PART`]).

use object_store::path::Path as ObjectPath;
use object_store::{PutOptions, PutPayload, WriteMultipart};

use super::error::access_error;
use super::{Bucket, BucketError, Listing, MULTIPART_PART};

/// Parts in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;

/// How an image upload went, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUpload {
    /// The same key with the same size was there: content-addressed, so it is this image.
    Present,
    Uploaded {
        multipart: bool,
    },
}

impl Bucket {
    /// What is directly under the folder `rel` (`stable/history`); an empty listing when
    /// there is no such folder. One listing request per 1,000 entries on the clouds.
    pub async fn list(&self, rel: &str) -> Result<Listing, BucketError> {
        let folder = self.key(rel.trim_end_matches('/'));
        let result = match self.store.list_with_delimiter(Some(&folder)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Listing::default()),
            Err(e) => return Err(access_error("list", rel, &self.url, &e)),
        };
        let name = |path: &ObjectPath| path.filename().map(str::to_owned);
        let mut listing = Listing {
            folders: result.common_prefixes.iter().filter_map(name).collect(),
            objects: result
                .objects
                .iter()
                .filter_map(|m| Some((name(&m.location)?, m.size)))
                .collect(),
        };
        listing.folders.sort();
        listing.objects.sort();
        Ok(listing)
    }

    /// The size of the object at `rel`, if there is one.
    pub async fn size_of(&self, rel: &str) -> Result<Option<u64>, BucketError> {
        match self.store.head(&self.key(rel)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(access_error("look up", rel, &self.url, &e)),
        }
    }

    /// Uploads an image to its content-addressed key, unless an object of the same size is
    /// there already (same key, same size: the same image). `progress` gets the bytes sent.
    pub async fn put_image(
        &self,
        rel: &str,
        bytes: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImageUpload, BucketError> {
        if self.size_of(rel).await? == Some(bytes.len() as u64) {
            progress(bytes.len() as u64);
            return Ok(ImageUpload::Present);
        }
        let key = self.key(rel);
        let failed = |e: object_store::Error| access_error("upload", rel, &self.url, &e);
        // Images never change under their key: caches may keep them for good.
        let attributes = self.attributes("application/octet-stream", "public, max-age=31536000, immutable");
        if bytes.len() <= MULTIPART_PART {
            let opts = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store
                .put_opts(&key, PutPayload::from(bytes.to_vec()), opts)
                .await
                .map_err(failed)?;
            progress(bytes.len() as u64);
            return Ok(ImageUpload::Uploaded { multipart: false });
        }
        let opts = object_store::PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = self.store.put_multipart_opts(&key, opts).await.map_err(failed)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
        let mut sent = 0u64;
        for part in bytes.chunks(MULTIPART_PART) {
            if let Err(e) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
                // Not visible either way: a multipart object appears only when completed.
                let _ = writer.abort().await;
                return Err(failed(e));
            }
            writer.write(part);
            sent += part.len() as u64;
            progress(sent.saturating_sub(part.len() as u64));
        }
        writer.finish().await.map_err(failed)?;
        progress(sent);
        Ok(ImageUpload::Uploaded { multipart: true })
    }
}
