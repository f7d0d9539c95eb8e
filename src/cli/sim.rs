//! `otactl sim device`: a virtual device on a pseudo-terminal, for trying `otactl watch`,
//! `otactl serve` and a release end to end without a board.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use device_fw::profile::Profile;
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use sim::net::{NatConfig, NatExpiry};
use sim::pty_device::{FactoryImage, PtyDeviceConfig, Stop, check_loopback_url, run, stop_on_signals};

use crate::keys::load_verifying_key;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run a virtual device whose console is a pseudo-terminal.
    ///
    /// The device runs the device core's app loop with the modem and NOR flash emulators,
    /// behind an emulated cellular link and carrier NAT, and fetches releases over real TCP
    /// from a server on this machine (loopback only). Its console appears at --link: open
    /// it with `otactl watch --port PATH` or any serial tool. Stop it with Ctrl-C.
    Device(Box<DeviceArgs>),
    /// Run an ESP32 / ESP32-C3 ROM serial loader (download mode) on a pseudo-terminal.
    ///
    /// It speaks the ROM's SLIP protocol in front of an emulated NOR flash, optionally kept
    /// in a file the virtual device boots from. A pseudo-terminal cannot reset the chip, so
    /// it is always in download mode. Once a flasher stub is uploaded it answers as the stub
    /// (without running it). esptool works against it with `--before no-reset --after
    /// no-reset`, with or without `--no-stub`. Stop it with Ctrl-C.
    Rom(super::rom::RomArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NatExpiryArg {
    /// Both ends get a reset (the field carrier).
    Reset,
    /// Later packets vanish silently.
    Drop,
}

#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Where the console appears: a symlink to the pseudo-terminal, replaced if it is a
    /// stale link and removed on exit.
    #[arg(long, value_name = "PATH")]
    link: PathBuf,
    /// The device's profile (chip, modem, NAT assumption, slots, channel, keys).
    #[arg(long, value_name = "P", default_value = "profiles/m5stack-core-sim7600.toml")]
    profile: PathBuf,
    /// Keep the flash in FILE: a restart of the process is a power cycle (a missing FILE
    /// is factory-flashed). Without it the flash lives and dies with the process.
    #[arg(long, value_name = "FILE")]
    flash: Option<PathBuf>,
    /// The bucket's base URL as the device reaches it, e.g. http://127.0.0.1:8080
    /// (default: the profile's release.device_url). Only this machine can be reached.
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,
    /// Carrier NAT idle timeout in seconds (default: the profile's
    /// network.nat_idle_timeout_s); 0 for a public-IP APN with no NAT.
    #[arg(long, value_name = "SECONDS")]
    nat_idle: Option<f64>,
    /// What the NAT does to a mapping it forgets.
    #[arg(long, value_enum, value_name = "HOW", default_value = "reset")]
    nat_expiry: NatExpiryArg,
    /// The console's UART rate; a host that opens the port at another rate reads garbage.
    #[arg(long, value_name = "N", default_value_t = 115_200)]
    baud: u32,
    /// Run the device's clock K times faster than the wall clock (1 to 1000), so a 60 s
    /// NAT timeout passes in seconds.
    #[arg(long, value_name = "K", default_value_t = 1.0)]
    time_scale: f64,
    /// A trusted release public key (SPKI PEM); repeatable, at most two (default: the
    /// profile's release.public_keys).
    #[arg(long = "key", value_name = "PUB")]
    keys: Vec<PathBuf>,
    /// The factory app flashed into a blank chip's ota_0 (an ESP-IDF app image); default:
    /// a small valid test app for the profile's chip.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// The version of the built-in factory test app.
    #[arg(long, value_name = "VERSION", default_value = "0.1.0", conflicts_with = "image")]
    factory_version: String,
    /// Make the port vanish and come back (a new pty under the same path) at every reset,
    /// as an ESP32-C3/S3 native USB port does; `--reenumerate=false` keeps one port, as a
    /// USB-UART bridge does.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    reenumerate: bool,
    /// Check the channel by itself this often, in the device's clock (default: the
    /// profile's update.check_every); 0s: only when told on the console.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    check_every: Option<Duration>,
    /// Bound of the random delay of each scheduled check (default: the profile's
    /// update.jitter, at most --check-every).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    jitter: Option<Duration>,
    /// Where the device POSTs its outcome reports, e.g. http://127.0.0.1:8080/reports
    /// (default: the profile's release.report_url). Only this machine can be reached.
    #[arg(long, value_name = "URL")]
    report_url: Option<String>,
    /// The device's id (its rollout cohort and the id its reports carry); the firmware
    /// derives it from the chip's MAC.
    #[arg(long, value_name = "ID", default_value = sim::device::BENCH_DEVICE_ID)]
    device_id: String,
    /// The CA certificates (PEM) the device checks `https://` servers against, as the
    /// firmware build compiles them in (default: the profile's release.ca_certs); the
    /// modem emulator stores them and does real TLS.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
}

pub fn run_cmd(cmd: SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Device(args) => device(*args),
        SimCommand::Rom(args) => super::rom::run_cmd(args),
    }
}

/// The CA file's bytes, checked to hold a certificate the modem can use; kept for the
/// process's life, as the firmware keeps its compiled-in copy.
fn read_ca_cert(path: &std::path::Path, from: &str) -> Result<&'static [u8]> {
    let pem = std::fs::read(path).map_err(|e| miette!("{from} {}: cannot read it: {e}", path.display()))?;
    sim::tls::client_config(&pem, rustls::DEFAULT_VERSIONS).map_err(|e| {
        miette!(
            help = "pass the PEM certificate of the CA that signed the server's certificate",
            "{from} {}: {e}",
            path.display()
        )
    })?;
    Ok(Box::leak(pem.into_boxed_slice()))
}

fn device(args: DeviceArgs) -> Result<()> {
    let profile = Profile::load(&args.profile).map_err(|e| {
        miette!(
            help = "pass --profile with a file from profiles/, or run from the repository root",
            "{e}"
        )
    })?;
    let keys = trusted_keys(&args, &profile)?;

    if !(1.0..=sim::time::MAX_TIME_SCALE).contains(&args.time_scale) {
        return Err(miette!(
            help = "1 is real time; 20 makes a 60 s NAT timeout pass in 3 s",
            "--time-scale {} is outside 1..=1000",
            args.time_scale
        ));
    }
    if !device_fw::profile::STANDARD_BAUDS.contains(&args.baud) {
        return Err(miette!(
            help = format!("use one of {:?}", device_fw::profile::STANDARD_BAUDS),
            "--baud {} is not a standard UART rate",
            args.baud
        ));
    }
    let idle_timeout = match args.nat_idle {
        None => Some(profile.nat_idle_timeout()),
        Some(0.0) => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => return Err(miette!("--nat-idle {s} must be a number of seconds, or 0 for no NAT")),
    };

    if !device_fw::wire::rollout::device_id_ok(&args.device_id) {
        return Err(miette!(
            help = "use 1 to 32 lowercase letters, digits, '-', '_' or '.'",
            "--device-id {:?} is not a device id",
            args.device_id
        ));
    }
    let mut profile = profile;
    if let Some(every) = args.check_every {
        profile.update.check_every = device_fw::profile::Span(every);
        if args.jitter.is_none() && profile.update.jitter.0 > every {
            profile.update.jitter = device_fw::profile::Span(every);
        }
    }
    if let Some(jitter) = args.jitter {
        profile.update.jitter = device_fw::profile::Span(jitter);
    }
    if let Some(url) = &args.report_url {
        check_loopback_url(url).map_err(|e| {
            miette!(
                help = "run the report receiver on this machine (otactl serve) and pass e.g. --report-url http://127.0.0.1:8080/reports",
                "--report-url: {e}"
            )
        })?;
        profile.release.report_url = Some(url.clone());
    }
    let mut cfg = PtyDeviceConfig::new(&args.link, profile, keys);
    cfg.device_id = args.device_id;
    if let Some(path) = &args.ca_cert {
        cfg.ca_cert = Some(read_ca_cert(path, "--ca-cert")?);
    } else if !cfg.profile.release.ca_certs.is_empty() {
        let base = args.profile.parent().unwrap_or(std::path::Path::new("."));
        let mut bundle = Vec::new();
        for file in &cfg.profile.release.ca_certs {
            bundle.extend_from_slice(read_ca_cert(&base.join(file), "release.ca_certs")?);
        }
        cfg.ca_cert = Some(Box::leak(bundle.into_boxed_slice()));
    }
    if let Some(url) = args.bucket_url {
        check_loopback_url(&url).map_err(|e| {
            miette!(
                help =
                    "serve the bucket on this machine (otactl serve) and pass e.g. --bucket-url http://127.0.0.1:8080",
                "--bucket-url: {e}"
            )
        })?;
        cfg.bucket_url = url;
    } else if let Err(e) = check_loopback_url(&cfg.bucket_url) {
        eprintln!(
            "warning: the profile's release.device_url cannot be reached from the virtual device ({e}); \
             `ota update` needs a URL or --bucket-url http://127.0.0.1:PORT"
        );
    }
    cfg.nat = NatConfig {
        idle_timeout,
        on_expiry: match args.nat_expiry {
            NatExpiryArg::Reset => NatExpiry::Reset,
            NatExpiryArg::Drop => NatExpiry::Drop,
        },
    };
    cfg.console_baud = args.baud;
    cfg.time_scale = args.time_scale;
    cfg.flash_file = args.flash;
    cfg.reenumerate = args.reenumerate;
    cfg.factory = match &args.image {
        Some(path) => FactoryImage::Image(
            std::fs::read(path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read the factory image {}", path.display()))?,
        ),
        None => FactoryImage::Test {
            version: args.factory_version,
        },
    };
    cfg.log = Some(Arc::new(|note: &str| eprintln!("sim device: {note}")));
    eprintln!(
        "sim device: {} {} on {:?}, NAT idle {}, manifest {}, time x{}",
        cfg.profile.device.product,
        cfg.profile.device.chip,
        cfg.profile.modem.dialect,
        cfg.nat
            .idle_timeout
            .map_or("none".to_owned(), |d| format!("{} s", d.as_secs_f64())),
        cfg.manifest_url(),
        cfg.time_scale
    );

    let stop = Stop::new();
    stop_on_signals(stop.clone())
        .into_diagnostic()
        .wrap_err("cannot install the Ctrl-C handler")?;
    run(&cfg, &stop).map_err(|e| miette!("{}", crate::error_text::error_chain(&e)))?;
    eprintln!("sim device: stopped");
    Ok(())
}

/// `--key` files, else the profile's `release.public_keys` (relative to the profile).
fn trusted_keys(args: &DeviceArgs, profile: &Profile) -> Result<Vec<[u8; 32]>> {
    let paths: Vec<PathBuf> = if args.keys.is_empty() {
        let base = args.profile.parent().unwrap_or(Path::new("."));
        profile.release.public_keys.iter().map(|k| base.join(k)).collect()
    } else {
        args.keys.clone()
    };
    if paths.is_empty() {
        return Err(miette!(
            help = "make a key pair with `otactl keygen` and pass --key keys/otactl.pub",
            "no trusted release key: the profile lists none and no --key was given"
        ));
    }
    if paths.len() > 2 {
        return Err(miette!(
            help = "a device trusts the current key and, during a rotation, its successor",
            "{} keys given; the firmware holds at most two",
            paths.len()
        ));
    }
    paths
        .iter()
        .map(|p| {
            load_verifying_key(p)
                .map(|k| k.to_bytes())
                .map_err(|e| miette::Report::new(e).wrap_err("cannot load a trusted release key (--key)"))
        })
        .collect()
}
