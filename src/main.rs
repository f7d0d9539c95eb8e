//! otactl: cellular OTA for ESP32 fleets, from CI to the bench.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => cli::profile::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}
