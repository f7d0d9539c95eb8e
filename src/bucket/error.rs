//! What can go wrong with a bucket, in the words of the person who has to fix it.

use miette::Diagnostic;

pub(super) use crate::error_text::error_chain;

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

/// How an object_store error reads to the person who has to fix it.
pub(super) fn access_error(op: &'static str, key: &str, url: &str, e: &object_store::Error) -> BucketError {
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
