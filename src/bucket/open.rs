//! Opening a bucket: the object_store client for each kind of store, and the checks on its
//! endpoint and credentials before anything is sent.

use std::fs;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use reqwest::Url;

use super::error::error_chain;
use super::{Bucket, BucketError, Kind, Location};

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
}
