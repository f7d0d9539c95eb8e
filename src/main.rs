//! otactl: cellular OTA for ESP32 fleets, from CI to the bench.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod keys;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => cli::profile::run(cmd),
        Command::Keygen(args) => cli::keygen::run(args),
        // Verify owns its output and exit status: scripts tell a bad release from a typo.
        Command::Verify(args) => return cli::verify::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}
