//! `otactl profile check`: validate profiles before they reach a release job or a device.

use std::path::PathBuf;

use clap::Subcommand;
use device_fw::profile::Profile;
use miette::{Result, miette};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Check one or more profiles and print what the OTA engine will do with each.
    Check {
        /// Profile files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Check { files } => check(&files),
    }
}

fn check(files: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    for file in files {
        match Profile::load(file) {
            Ok(p) => {
                let cfg = p.download_config();
                println!("{}: ok", file.display());
                let fast = p
                    .modem
                    .fast_baud
                    .map(|f| format!(" (raised to {f} after power-on)"))
                    .unwrap_or_default();
                println!(
                    "  {} for {} on {} with {:?} at {} baud{fast}, APN {:?}",
                    p.device.product, p.device.chip, p.device.board, p.modem.dialect, p.modem.baud, p.modem.apn
                );
                println!(
                    "  NAT idle {} s, each Range chunk drains within {:.0} s ({}..{} bytes)",
                    p.network.nat_idle_timeout_s,
                    p.idle_budget().as_secs_f64(),
                    cfg.policy.min_chunk,
                    cfg.policy.max_chunk
                );
                println!(
                    "  OTA slots: ota_0 {}, ota_1 {}; journal {}",
                    p.slots.ota_0, p.slots.ota_1, p.slots.otastate
                );
                match &p.release.device_url {
                    Some(url) => println!(
                        "  devices follow {url}/{}/manifest.json, trusting {} key(s)",
                        p.release.channel,
                        p.release.public_keys.len()
                    ),
                    None => println!(
                        "  channel {}; no release.device_url yet (needed to build firmware)",
                        p.release.channel
                    ),
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        return Err(miette!("{failed} of {} profiles are invalid", files.len()));
    }
    Ok(())
}
