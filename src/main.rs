//! otactl: cellular OTA for ESP32 fleets, from CI to the bench.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bucket;
mod channel;
mod cli;
mod error_text;
mod flash;
mod image;
mod keys;
mod receiver;
mod release;
mod reports;
mod rollout;
mod watch;

#[derive(Debug, Parser)]
#[command(
    name = "otactl",
    version,
    about = "Cellular OTA for ESP32 fleets: release, flash, watch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Device profiles (profiles/*.toml).
    #[command(subcommand)]
    Profile(cli::profile::ProfileCommand),
    /// Generate the Ed25519 key pair releases are signed with.
    Keygen(cli::keygen::KeygenArgs),
    /// Check a published release (signed manifest and image) the way a device will.
    ///
    /// Exit status: 0 verified, 1 the release failed a check, 2 bad arguments or the
    /// manifest, image or a key could not be read.
    Verify(cli::verify::VerifyArgs),
    /// Turn a firmware ELF into the ESP-IDF app image releases ship, and check it.
    ///
    /// Exit status: 0 written, 1 the image is not acceptable (not an ESP firmware ELF for
    /// the chip, no app descriptor, too big for the slot), 2 bad arguments, or a file could
    /// not be read or written.
    Image(cli::image::ImageArgs),
    /// The whole product on the virtual bench: keys, two releases, a bucket served on
    /// loopback, a virtual device behind a NAT, the update watched to its confirm.
    ///
    /// No hardware, no account, no network beyond loopback. Exit status as `watch`.
    Demo(cli::demo::DemoArgs),
    /// Follow a bench device's console through an OTA, optionally triggering it.
    ///
    /// Exit status: 0 the device confirmed the (expected) version or is up to date, 3 it
    /// rolled back, 4 it rejected the release, 5 the download failed, 6 timeout, 7 the port
    /// could not be opened or did not come back after a reset, 8 the server's certificate
    /// was refused (or TLS could not be set up), 9 it is for another host, 10 it has
    /// expired, 2 bad arguments.
    Watch(cli::watch::WatchArgs),
    /// Build, sign and publish a release to a bucket (file://, s3://, gs://, az://).
    ///
    /// Exit status: 0 published, or the channel already holds this release; 1 refused (the
    /// image, its version, a downgrade, the channel's manifest, a lost race with another
    /// release); 2 bad arguments, a file, key, build, credentials or the bucket.
    Release(cli::release::ReleaseArgs),
    /// Stage a release across the fleet: set, pause, resume, halt, advance on the devices'
    /// reports, check (for cron), status.
    ///
    /// Exit status: 0 done or nothing to change; 1 refused (lowering without --force, a
    /// halted rollout, a failure rate above the threshold, a lost race); 2 arguments,
    /// profile, keys, bucket; 3 `check` halted the rollout; 4 `check`: it was halted
    /// already; 5 `advance`: too few judged reports yet.
    #[command(subcommand)]
    Rollout(cli::rollout::RolloutCommand),
    /// Flash a bench device for OTA: bootloader, the profile's partition table, erased
    /// otadata and the app in ota_0, verified, then reset into the app.
    ///
    /// Against `otactl sim rom` pass --before no-reset --after no-reset --no-stub.
    /// Exit status: 0 flashed; 1 refused (the image, wrong chip, a flash too small for the
    /// table) or a region did not read back as written; 2 bad arguments, a file, the port or
    /// the link to the device.
    Flash(cli::flash::FlashArgs),
    /// Serve a file:// bucket over HTTP (Range, conditional GET) for a bench device, and
    /// take the devices' outcome reports (POST /reports).
    ///
    /// Exit status: 0 stopped with Ctrl-C, 2 the bucket or the address cannot be used.
    Serve(cli::serve::ServeArgs),
    /// The virtual bench: a virtual device, or a chip in download mode, on a pseudo-terminal.
    #[command(subcommand)]
    Sim(cli::sim::SimCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => cli::profile::run(cmd),
        Command::Keygen(args) => cli::keygen::run(args),
        // Verify owns its output and exit status: scripts tell a bad release from a typo.
        Command::Verify(args) => return cli::verify::run(args),
        Command::Image(args) => return cli::image::run(args),
        Command::Watch(args) => return cli::watch::run(args),
        Command::Demo(args) => return cli::demo::run(args),
        Command::Release(args) => return cli::release::run(args),
        Command::Rollout(cmd) => return cli::rollout::run(cmd),
        Command::Serve(args) => return cli::serve::run(args),
        Command::Flash(args) => return cli::flash::run(args),
        Command::Sim(cmd) => cli::sim::run_cmd(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}
