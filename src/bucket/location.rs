//! Bucket URLs: parsing one into a [`Location`], and printing it back.

use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use reqwest::Url;

use super::{BucketError, Kind};

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

pub(super) fn file_url(path: &Path) -> String {
    Url::from_file_path(path).map_or_else(|()| format!("file://{}", path.display()), |u| u.to_string())
}
