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

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use miette::Diagnostic;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
    WriteMultipart,
};
use reqwest::Url;

/// Images above this go up in parts; it is also the part size, S3's smallest.
pub const MULTIPART_PART: usize = 5 * 1024 * 1024;
/// Parts in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;
/// A manifest is at most 2 KiB; anything much larger at its key is not one, and is not read.
const MAX_MANIFEST_READ: u64 = 64 * 1024;
/// How long a local release waits for another one holding the channel's lock: the lock is
/// held for a read, a small write and a rename, so a longer wait means something is stuck.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Which store a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { root: PathBuf },
    S3 { bucket: String },
    Gcs { bucket: String },
    Azure { container: String },
}

/// Why a bucket could not be opened or used. None of these carries a credential.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum BucketError {
    #[error("`{url}` is not a bucket URL: {reason}")]
    #[diagnostic(
        code(otactl::bucket::url),
        help("use file:///path (or a relative path), s3://bucket/prefix, gs://bucket/prefix or az://container/prefix")
    )]
    BadUrl { url: String, reason: String },

    #[error("--endpoint applies to s3:// and az:// buckets, not to {url}")]
    #[diagnostic(code(otactl::bucket::endpoint), help("drop --endpoint"))]
    EndpointNotApplicable { url: String },

    #[error("the endpoint {endpoint} is plain http:// on a non-loopback address")]
    #[diagnostic(
        code(otactl::bucket::http),
        help(
            "credentials and uploads would cross the network unencrypted; use https://, or set AWS_ALLOW_HTTP=true (AZURE_ALLOW_HTTP=true) if that is really wanted"
        )
    )]
    PlainHttp { endpoint: String },

    #[error("no credentials for the S3 endpoint {endpoint}")]
    #[diagnostic(
        code(otactl::bucket::credentials),
        help(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a local S3-compatible server takes any static pair); otactl does not ask a cloud metadata service for a local endpoint"
        )
    )]
    NoCredentials { endpoint: String },

    #[error("cannot set up the {url} bucket: {reason}")]
    #[diagnostic(
        code(otactl::bucket::config),
        help("check the URL and the credential variables of its cloud (AWS_*, GOOGLE_*, AZURE_*)")
    )]
    Config { url: String, reason: String },

    #[error("cannot {op} {key} in {url}: {reason}")]
    #[diagnostic(code(otactl::bucket::access), help("{help}"))]
    Access {
        op: &'static str,
        key: String,
        url: String,
        reason: String,
        help: &'static str,
    },

    #[error("{key} in {url} is {size} bytes: not a manifest (at most 2048) or a report (at most 512)")]
    #[diagnostic(
        code(otactl::bucket::not_a_manifest),
        help("something else was written where otactl keeps its manifests and reports; move it away")
    )]
    NotAManifest { key: String, url: String, size: u64 },
}

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

/// One level of a listing: what is directly under a folder of the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sub-folders, by name (`1.1.0`, not the whole path).
    pub folders: Vec<String>,
    /// Objects, by name, with their size.
    pub objects: Vec<(String, u64)>,
}

/// How an image upload went, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUpload {
    /// The same key with the same size was there: content-addressed, so it is this image.
    Present,
    Uploaded {
        multipart: bool,
    },
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

/// A parsed bucket URL, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub kind: Kind,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
}

impl Location {
    /// Parses `text`; relative local paths are taken against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Location, BucketError> {
        let bad = |reason: &str| BucketError::BadUrl {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let local = |path: PathBuf| Location {
            kind: Kind::File {
                root: normalize(&base.join(path)),
            },
            prefix: String::new(),
        };
        if let Some(rest) = text.strip_prefix("file://") {
            // `.` and `..` are no host names, so `file://./dist` can only mean a relative
            // path: the one relative form a profile's `file://` bucket can take.
            if rest == "." || rest == ".." || rest.starts_with("./") || rest.starts_with("../") {
                return Ok(local(PathBuf::from(rest)));
            }
            if !rest.starts_with('/') && !rest.starts_with("localhost/") {
                return Err(bad(
                    "a file:// URL takes an absolute path (file:///srv/ota); write a relative one as file://./dist, file:dist or dist",
                ));
            }
            let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
            let path = url
                .to_file_path()
                .map_err(|()| bad("it does not name a local directory"))?;
            return Ok(local(path));
        }
        if let Some(rest) = text.strip_prefix("file:") {
            return Ok(local(PathBuf::from(rest)));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            if text.contains(':') && !text.starts_with('.') && !text.starts_with('/') {
                return Err(bad("unknown scheme"));
            }
            return Ok(local(PathBuf::from(text)));
        };
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(bad("the bucket name is missing"));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            ObjectPath::parse(&prefix).map_err(|e| bad(&format!("the prefix is not a valid object path: {e}")))?;
        }
        let kind = match scheme {
            "s3" | "s3a" => Kind::S3 { bucket: name.into() },
            "gs" => Kind::Gcs { bucket: name.into() },
            "az" | "azure" => Kind::Azure { container: name.into() },
            _ => return Err(bad("unknown scheme")),
        };
        Ok(Location { kind, prefix })
    }

    /// The URL as otactl prints it (local paths absolute).
    pub fn url(&self) -> String {
        let with_prefix = |scheme: &str, name: &str| {
            if self.prefix.is_empty() {
                format!("{scheme}://{name}")
            } else {
                format!("{scheme}://{name}/{}", self.prefix)
            }
        };
        match &self.kind {
            Kind::File { root } => file_url(root),
            Kind::S3 { bucket } => with_prefix("s3", bucket),
            Kind::Gcs { bucket } => with_prefix("gs", bucket),
            Kind::Azure { container } => with_prefix("az", container),
        }
    }
}

/// `a/./b/../c` → `a/c` without touching the filesystem (the directory may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn file_url(path: &Path) -> String {
    Url::from_file_path(path).map_or_else(|()| format!("file://{}", path.display()), |u| u.to_string())
}

/// Loopback only: the one place where plain HTTP and missing credentials are a test bench,
/// not a mistake.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Few, short retries: a release run by a person or a CI job should say an endpoint is
/// unreachable in seconds, not after object_store's default three minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// How an object_store error reads to the person who has to fix it.
fn access_error(op: &'static str, key: &str, url: &str, e: &object_store::Error) -> BucketError {
    use object_store::Error as E;
    let help = match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "the credentials were refused: check them, and that they may read and write this bucket and prefix"
        }
        E::NotFound { .. } => "check the bucket name; otactl creates objects, not buckets",
        _ => "check the URL, the endpoint and the network; for a local directory, that it is writable",
    };
    BucketError::Access {
        op,
        key: key.to_owned(),
        url: url.to_owned(),
        reason: error_chain(e),
        help,
    }
}

/// The error and its sources on one line: object_store's top-level messages alone often say
/// just "Generic S3 error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl Bucket {
    /// Opens the bucket `location`. `create` makes a missing local directory (a release
    /// does; a dry run sees a missing one as empty and creates nothing).
    pub fn open(location: &Location, endpoint: Option<&str>, create: bool) -> Result<Bucket, BucketError> {
        let url = location.url();
        let config = |e: object_store::Error| BucketError::Config {
            url: url.clone(),
            reason: error_chain(&e),
        };
        if endpoint.is_some() && !matches!(location.kind, Kind::S3 { .. } | Kind::Azure { .. }) {
            return Err(BucketError::EndpointNotApplicable { url });
        }
        let store: Arc<dyn ObjectStore> = match &location.kind {
            Kind::File { root } => {
                if !root.is_dir() && !create {
                    Arc::new(InMemory::new())
                } else {
                    fs::create_dir_all(root).map_err(|e| BucketError::Access {
                        op: "create",
                        key: String::new(),
                        url: url.clone(),
                        reason: e.to_string(),
                        help: "check that the directory can be made and written",
                    })?;
                    Arc::new(LocalFileSystem::new_with_prefix(root).map_err(config)?)
                }
            }
            Kind::S3 { bucket } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry());
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(endpoint) = builder.get_config_value(&AmazonS3ConfigKey::Endpoint) {
                    let parsed = Url::parse(&endpoint).map_err(|e| BucketError::BadUrl {
                        url: endpoint.clone(),
                        reason: format!("the endpoint is not a URL: {e}"),
                    })?;
                    let loopback = is_loopback(&parsed);
                    if parsed.scheme() == "http" {
                        if loopback {
                            builder = builder.with_allow_http(true);
                        } else if !env_set("AWS_ALLOW_HTTP") {
                            return Err(BucketError::PlainHttp { endpoint });
                        }
                    }
                    let has_credentials = builder.get_config_value(&AmazonS3ConfigKey::AccessKeyId).is_some()
                        || builder.get_config_value(&AmazonS3ConfigKey::SkipSignature).as_deref() == Some("true")
                        || env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
                        || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                        || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
                    if loopback && !has_credentials {
                        return Err(BucketError::NoCredentials { endpoint });
                    }
                }
                Arc::new(builder.build().map_err(config)?)
            }
            Kind::Gcs { bucket } => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .build()
                    .map_err(config)?,
            ),
            Kind::Azure { container } => {
                let mut builder = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(retry());
                if let Some(endpoint) = endpoint {
                    let parsed = Url::parse(endpoint).map_err(|e| BucketError::BadUrl {
                        url: endpoint.to_owned(),
                        reason: format!("the endpoint is not a URL: {e}"),
                    })?;
                    if parsed.scheme() == "http" {
                        if is_loopback(&parsed) {
                            builder = builder.with_allow_http(true);
                        } else if !env_set("AZURE_ALLOW_HTTP") {
                            return Err(BucketError::PlainHttp {
                                endpoint: endpoint.to_owned(),
                            });
                        }
                    }
                    builder = builder.with_endpoint(endpoint.to_owned());
                }
                Arc::new(builder.build().map_err(config)?)
            }
        };
        Ok(Bucket {
            url,
            kind: location.kind.clone(),
            prefix: location.prefix.clone(),
            store,
        })
    }

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

    /// The size of the object at `rel`, if there is one.
    pub async fn size_of(&self, rel: &str) -> Result<Option<u64>, BucketError> {
        match self.store.head(&self.key(rel)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(access_error("look up", rel, &self.url, &e)),
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

    /// Writes the manifest at `rel` if, and only if, the bucket still holds `expected`
    /// (`None`: no manifest). See the module docs for how each store does it.
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

enum LocalPutError {
    Conflict(String),
    Io(io::Error),
}

impl From<io::Error> for LocalPutError {
    fn from(e: io::Error) -> Self {
        LocalPutError::Io(e)
    }
}

/// The local directory's compare-and-swap (module docs): replaces `path` with `bytes` only
/// if it still holds `expected`.
fn replace_local(path: &Path, bytes: &[u8], expected: &[u8]) -> Result<(), LocalPutError> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("the manifest path has no directory"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("the manifest path has no file name"))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{name}.lock")))?;
    let started = Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LocalPutError::Conflict(format!(
                    "another release has held the channel's lock for {} s",
                    LOCK_WAIT.as_secs()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    match fs::read(path) {
        Ok(now) if now == expected => {}
        Ok(_) => {
            return Err(LocalPutError::Conflict(
                "the channel's manifest changed after this release read it".into(),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LocalPutError::Conflict(
                "the channel's manifest was deleted after this release read it".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let staging = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&staging, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&staging);
        return Err(e.into());
    }
    // The rename is durable once the directory is.
    File::open(dir)?.sync_all()?;
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Location, BucketError> {
        Location::parse(text, Path::new("/srv/project"))
    }

    #[test]
    fn local_forms() {
        let root = |l: Location| match l.kind {
            Kind::File { root } => root,
            other => panic!("{other:?}"),
        };
        assert_eq!(root(parse("file:///srv/ota").unwrap()), Path::new("/srv/ota"));
        assert_eq!(root(parse("file:///srv/my%20ota/").unwrap()), Path::new("/srv/my ota"));
        assert_eq!(root(parse("file:dist").unwrap()), Path::new("/srv/project/dist"));
        assert_eq!(root(parse("file://./dist").unwrap()), Path::new("/srv/project/dist"));
        assert_eq!(root(parse("file://../dist").unwrap()), Path::new("/srv/dist"));
        assert_eq!(root(parse("dist").unwrap()), Path::new("/srv/project/dist"));
        assert_eq!(root(parse("./dist/../out").unwrap()), Path::new("/srv/project/out"));
        assert_eq!(root(parse("/srv/ota").unwrap()), Path::new("/srv/ota"));
        assert!(parse("file://dist").is_err(), "a host-relative file URL is ambiguous");
        assert_eq!(parse("file:///srv/ota").unwrap().url(), "file:///srv/ota");
    }

    #[test]
    fn cloud_forms() {
        let s3 = parse("s3://fleet-ota/prod/eu/").unwrap();
        assert_eq!(
            s3.kind,
            Kind::S3 {
                bucket: "fleet-ota".into()
            }
        );
        assert_eq!(s3.prefix, "prod/eu");
        assert_eq!(s3.url(), "s3://fleet-ota/prod/eu");
        assert_eq!(parse("gs://b").unwrap().kind, Kind::Gcs { bucket: "b".into() });
        assert_eq!(parse("az://c/p").unwrap().kind, Kind::Azure { container: "c".into() });
        assert!(parse("ftp://x/y").is_err());
        assert!(parse("s3:///prefix").is_err());
        assert!(parse("").is_err());
        assert!(parse("http:x").is_err());
    }

    #[test]
    fn local_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        fs::write(&path, b"one").unwrap();
        assert!(matches!(
            replace_local(&path, b"two", b"zero"),
            Err(LocalPutError::Conflict(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(replace_local(&path, b"two", b"one").is_ok());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            replace_local(&path, b"three", b"two"),
            Err(LocalPutError::Conflict(_))
        ));
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, [".manifest.json.lock"], "no staging file is left behind");
    }
}
