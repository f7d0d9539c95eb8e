//! otactl: cellular OTA for ESP32 fleets, from CI to the bench.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod image;
mod keys;
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
    /// Follow a bench device's console through an OTA, optionally triggering it.
    ///
    /// Exit status: 0 the device confirmed the (expected) version or is up to date, 3 it
    /// rolled back, 4 it rejected the release, 5 the download failed, 6 timeout, 7 the port
    /// could not be opened or did not come back after a reset, 2 bad arguments.
    Watch(cli::watch::WatchArgs),
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}
