//! One module per subcommand.

pub mod demo;
pub mod flash;
pub mod image;
pub mod image_diff;
pub mod keygen;
pub mod profile;
pub mod release;
pub mod rollout;
pub mod rom;
pub mod serve;
pub mod sim;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

use clap::Args;

/// Which channel of which bucket, for which devices: what every command that reads or
/// writes a channel's manifest takes.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Device profile: product, chip, board, channel, bucket, the public keys devices trust
    /// and the [rollout] thresholds.
    #[arg(long, value_name = "PROFILE")]
    pub profile: PathBuf,

    /// Channel [default: the profile's release.channel].
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,

    /// Bucket URL: file:///path (or a relative path), s3://bucket/prefix, gs://…, az://…
    /// [default: the profile's release.bucket].
    #[arg(long, value_name = "URL")]
    pub bucket: Option<String>,

    /// Endpoint of an S3-compatible store (MinIO, R2, Ceph) or of Azurite; AWS_ENDPOINT_URL
    /// works too.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

pub use crate::error_text::error_chain as chain;
