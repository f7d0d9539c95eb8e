//! `otactl image`: firmware ELF → ESP-IDF app image, with the checks a release will make
//! (app descriptor, chip, size against the OTA slot) run where the firmware is built.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use device_fw::esp::chip::Chip;
use device_fw::profile::Profile;
use miette::Diagnostic;
use serde_json::{Value, json};

use crate::image::{
    self, AppImageOut, FlashFreq, FlashMode, FlashSettings, FlashSize, ImageError, SectionClass, StaticRam,
};

/// Firmware ELFs, debug info included, stay far below this; a bigger file is the wrong one,
/// and reading it whole would only waste memory.
const MAX_ELF: u64 = 256 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("target").required(true).args(["profile", "chip"])),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct ImageArgs {
    #[command(subcommand)]
    action: Option<ImageAction>,

    /// The firmware ELF the build linked.
    #[arg(long, value_name = "FILE", required = true)]
    elf: Option<PathBuf>,

    /// Device profile: gives the chip and flash size, and the OTA slot the image must fit.
    #[arg(long, value_name = "PROFILE")]
    profile: Option<PathBuf>,

    /// Chip, when there is no profile: esp32, esp32s3, esp32c3, esp32c6.
    #[arg(long, value_name = "CHIP", value_parser = parse_chip)]
    chip: Option<Chip>,

    /// SPI flash mode written into the image header [default: dio].
    #[arg(long, value_name = "MODE", value_enum, ignore_case = true)]
    flash_mode: Option<FlashMode>,

    /// Flash size written into the image header [default: the profile's, else 4MB].
    #[arg(
        long,
        value_name = "SIZE",
        value_enum,
        ignore_case = true,
        conflicts_with = "profile"
    )]
    flash_size: Option<FlashSize>,

    /// SPI flash clock written into the image header [default: 40m].
    #[arg(long, value_name = "FREQ", value_enum, ignore_case = true)]
    flash_freq: Option<FlashFreq>,

    /// Where to write the image [default: the ELF's path with a .bin extension].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Fail unless the image fits this many bytes (decimal, 0x hex, or with a K/M suffix
    /// meaning KiB/MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_size: Option<u64>,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

impl ImageArgs {
    /// The ELF: clap requires `--elf` unless a subcommand is given.
    fn elf(&self) -> &Path {
        self.elf.as_deref().expect("clap requires --elf without a subcommand")
    }
}

fn parse_chip(text: &str) -> Result<Chip, String> {
    let name = text.to_ascii_lowercase().replace('-', "");
    Chip::from_name(&name).ok_or_else(|| {
        let known: Vec<_> = Chip::ALL.iter().map(|c| c.as_str()).collect();
        format!("unknown chip `{text}`; use one of {}", known.join(", "))
    })
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = if let Some(d) = t.strip_suffix("KiB").or_else(|| t.strip_suffix(['K', 'k'])) {
        (d, 1024)
    } else if let Some(d) = t.strip_suffix("MiB").or_else(|| t.strip_suffix('M')) {
        (d, 1024 * 1024)
    } else {
        (t, 1)
    };
    let value = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => digits.parse(),
    }
    .map_err(|_| format!("`{text}` is not a byte count; use e.g. 1966080, 0x1E0000, 1920K or 2M"))?;
    value.checked_mul(unit).ok_or_else(|| format!("`{text}` is too large"))
}

/// Why `otactl image` stopped: the image is not acceptable (exit 1), or otactl could not
/// read or write what it was given (exit 2).
#[derive(Debug, thiserror::Error, Diagnostic)]
enum CommandError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] ImageError),

    #[error("cannot read the ELF {path}: {reason}")]
    #[diagnostic(
        code(otactl::image::read),
        help("check the path; cargo puts the ELF in target/<target>/release/")
    )]
    Read { path: String, reason: String },

    #[error("{path} is {size} bytes, far more than any firmware ELF")]
    #[diagnostic(code(otactl::image::read), help("check the path: this is not a firmware ELF"))]
    ElfTooLarge { path: String, size: u64 },

    #[error("{0}")]
    #[diagnostic(
        code(otactl::image::profile),
        help("fix the profile; `otactl profile check` shows every problem")
    )]
    Profile(String),

    #[error("the profile {path} has {what}")]
    #[diagnostic(
        code(otactl::image::profile),
        help("otactl image needs a chip, flash size and ota_0/ota_1 it supports")
    )]
    ProfileUnsupported { path: String, what: String },

    #[error("the output {path} is the ELF itself")]
    #[diagnostic(code(otactl::image::out), help("pass --out with another file name"))]
    OutIsElf { path: String },

    #[error("cannot write the image to {path}: {reason}")]
    #[diagnostic(code(otactl::image::write), help("check that the directory exists and is writable"))]
    Write { path: String, reason: String },
}

impl CommandError {
    fn exit_code(&self) -> u8 {
        match self {
            CommandError::Image(_) => 1,
            _ => 2,
        }
    }
}

/// A size the image must not exceed, and what it is, for the report.
#[derive(Debug, Clone)]
struct Limit {
    bytes: u64,
    what: String,
}

/// Everything learned, whether or not the image was acceptable; both output forms are
/// built from it.
#[derive(Debug, Default)]
struct Outcome {
    image: Option<AppImageOut>,
    static_ram: Option<StaticRam>,
    written: Option<PathBuf>,
    limits: Vec<Limit>,
}

/// What else `otactl image` does with images.
#[derive(Debug, clap::Subcommand)]
pub enum ImageAction {
    /// Make the patch that turns one app image into another (the delta form devices apply).
    Diff(super::image_diff::DiffArgs),
}

pub fn run(args: ImageArgs) -> ExitCode {
    if let Some(ImageAction::Diff(diff)) = args.action {
        return super::image_diff::run(diff);
    }
    let mut outcome = Outcome::default();
    let result = make(&args, &mut outcome);
    if args.json {
        println!("{}", to_json(&args, &outcome, result.as_ref().err()));
    } else {
        print_report(&args, &outcome);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if !args.json {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(code)
        }
    }
}

fn make(args: &ImageArgs, outcome: &mut Outcome) -> Result<(), CommandError> {
    let mut profile_flash: (Option<FlashMode>, Option<FlashFreq>) = (None, None);
    let (chip, profile_size) = match (&args.profile, args.chip) {
        (Some(path), _) => {
            let profile = Profile::load(path).map_err(|e| CommandError::Profile(e.to_string()))?;
            let unsupported = |what: String| CommandError::ProfileUnsupported {
                path: path.display().to_string(),
                what,
            };
            let size = FlashSize::from_bytes(profile.flash.size.bytes())
                .ok_or_else(|| unsupported(format!("a {} flash", profile.flash.size)))?;
            // The profile spells mode and clock as esptool does, like the flags.
            profile_flash = (
                clap::ValueEnum::from_str(profile.flash.mode.as_str(), true).ok(),
                clap::ValueEnum::from_str(profile.flash.freq.as_str(), true).ok(),
            );
            // The device writes the two slots in turn: the image must fit the smaller one.
            let slot = (0..2)
                .map(|n| profile.ota_slot(n).map(|s| (n, s.size)))
                .collect::<Option<Vec<_>>>()
                .and_then(|slots| slots.into_iter().min_by_key(|&(_, size)| size))
                .ok_or_else(|| unsupported("no ota_0/ota_1 slots".into()))?;
            outcome.limits.push(Limit {
                bytes: slot.1.into(),
                what: format!("OTA slot ota_{} of {}", slot.0, path.display()),
            });
            (profile.device.chip, Some(size))
        }
        (None, Some(chip)) => (chip, None),
        (None, None) => unreachable!("clap requires --profile or --chip"),
    };
    if let Some(bytes) = args.max_size {
        outcome.limits.insert(
            0,
            Limit {
                bytes,
                what: "--max-size".into(),
            },
        );
    }
    let flash = FlashSettings {
        mode: args.flash_mode.or(profile_flash.0).unwrap_or_default(),
        size: args.flash_size.or(profile_size).unwrap_or_default(),
        freq: args.flash_freq.or(profile_flash.1).unwrap_or_default(),
    };
    let out_path = args.out.clone().unwrap_or_else(|| args.elf().with_extension("bin"));
    if same_file(&out_path, args.elf()) {
        return Err(CommandError::OutIsElf {
            path: out_path.display().to_string(),
        });
    }

    let elf = read_elf(args.elf())?;
    let image = image::elf_to_app_image(&elf, chip, flash)?;
    outcome.static_ram = Some(image::static_ram(&elf, chip)?);
    let checked = outcome
        .limits
        .iter()
        .try_for_each(|limit| image.check_fits(limit.bytes, limit.what.clone()));
    outcome.image = Some(image);
    checked?;

    // Only an acceptable image is written: CI must not pick up one a device would refuse.
    let bytes = &outcome.image.as_ref().expect("set above").bytes;
    fs::write(&out_path, bytes).map_err(|e| CommandError::Write {
        path: out_path.display().to_string(),
        reason: e.to_string(),
    })?;
    outcome.written = Some(out_path);
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn read_elf(path: &Path) -> Result<Vec<u8>, CommandError> {
    let read = |e: std::io::Error| CommandError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let size = fs::metadata(path).map_err(read)?.len();
    if size > MAX_ELF {
        return Err(CommandError::ElfTooLarge {
            path: path.display().to_string(),
            size,
        });
    }
    fs::read(path).map_err(read)
}

fn class_name(class: SectionClass) -> &'static str {
    match class {
        SectionClass::Data => "data",
        SectionClass::Bss => "bss",
        SectionClass::Iram => "iram",
        SectionClass::Rtc => "rtc",
        SectionClass::FlashCode => "flash_code",
        SectionClass::FlashRodata => "flash_rodata",
        SectionClass::Psram => "psram",
        SectionClass::NotCounted => "not_counted",
    }
}

/// The ELF hash the descriptor records. espflash fills it in only for ESP-IDF's
/// `.flash.appdesc`; esp-hal's descriptor leaves it zero, which means "not recorded".
fn elf_sha256(i: &AppImageOut) -> Option<String> {
    let hash = i.app_desc.app_elf_sha256();
    (hash != [0; 32]).then(|| image::hex(&hash))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 * 100.0 / whole as f64
}

fn to_json(args: &ImageArgs, o: &Outcome, error: Option<&CommandError>) -> Value {
    let mut out = json!({
        "ok": error.is_none(),
        "elf": args.elf().display().to_string(),
        "image": o.written.as_ref().map(|p| p.display().to_string()),
        "limits": o.limits.iter().map(|l| json!({
            "what": l.what,
            "bytes": l.bytes,
            "fits": o.image.as_ref().map(|i| i.size() <= l.bytes),
        })).collect::<Vec<_>>(),
    });
    if let Some(i) = &o.image {
        out["size"] = json!(i.size());
        out["sha256"] = json!(i.sha256_hex());
        out["chip"] = json!(i.chip.as_str());
        out["chip_id"] = json!(i.chip.image_chip_id());
        out["entry"] = json!(format!("{:#010x}", i.entry));
        out["version"] = json!(i.version);
        out["project"] = json!(i.project);
        out["secure_version"] = json!(i.secure_version);
        out["idf_ver"] = json!(i.idf_ver);
        out["app_elf_sha256"] = json!(elf_sha256(i));
        out["flash"] = json!({
            "mode": i.flash.mode.to_string(),
            "size": i.flash.size.to_string(),
            "freq": i.flash.freq.to_string(),
        });
        out["segments"] = i
            .segments
            .iter()
            .map(|s| {
                json!({
                    "load_addr": format!("{:#010x}", s.load_addr),
                    "len": s.len,
                    "region": s.region,
                })
            })
            .collect();
    }
    if let Some(ram) = &o.static_ram {
        out["static_ram"] = json!({
            "total": ram.total(),
            "data": ram.data,
            "bss": ram.bss,
            "iram": ram.iram,
            "rtc": ram.rtc,
            "psram": ram.psram,
            "flash_code": ram.flash_code,
            "flash_rodata": ram.flash_rodata,
            "sections": ram.sections.iter().map(|s| json!({
                "name": s.name,
                "addr": format!("{:#010x}", s.addr),
                "size": s.size,
                "class": class_name(s.class),
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(e) = error {
        out["error"] = json!(e.to_string());
        out["help"] = json!(e.help().map(|h| h.to_string()));
        out["exit_code"] = json!(e.exit_code());
    }
    out
}

fn print_report(args: &ImageArgs, o: &Outcome) {
    let (Some(i), Some(ram)) = (&o.image, &o.static_ram) else {
        return;
    };
    println!("elf         {}", args.elf().display());
    match &o.written {
        Some(path) => println!("image       {} ({} bytes)", path.display(), i.size()),
        None => println!("image       not written ({} bytes)", i.size()),
    }
    println!("sha256      {}", i.sha256_hex());
    println!(
        "elf sha256  {}",
        elf_sha256(i).unwrap_or_else(|| "not recorded in the app descriptor".into())
    );
    println!(
        "app         {} {} (secure_version {}, IDF {})",
        i.project,
        i.version,
        i.secure_version,
        if i.idf_ver.is_empty() { "-" } else { &i.idf_ver }
    );
    println!(
        "chip        {} (chip id {}), entry {:#010x}",
        i.chip,
        i.chip.image_chip_id(),
        i.entry
    );
    println!("flash       {}, {}, {}", i.flash.mode, i.flash.size, i.flash.freq);
    println!("segments    {}", i.segments.len());
    for (n, s) in i.segments.iter().enumerate() {
        println!("  {n:>2}  {:<7} {:#010x}  {:>8} bytes", s.region, s.load_addr, s.len);
    }
    println!(
        "static RAM  {} bytes: .data {}, .bss {}, IRAM code {}, RTC {}{}",
        ram.total(),
        ram.data,
        ram.bss,
        ram.iram,
        ram.rtc,
        if ram.psram > 0 {
            format!(" (+ PSRAM {})", ram.psram)
        } else {
            String::new()
        }
    );
    println!(
        "flash-mapped {} bytes: code {}, rodata {}",
        ram.flash_mapped(),
        ram.flash_code,
        ram.flash_rodata
    );
    for limit in &o.limits {
        let verdict = if i.size() <= limit.bytes {
            "fits"
        } else {
            "DOES NOT FIT"
        };
        println!(
            "limit       {}: {} bytes, image uses {:.1}%: {verdict}",
            limit.what,
            limit.bytes,
            percent(i.size(), limit.bytes)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_in_every_spelling_people_use() {
        assert_eq!(parse_bytes("1966080"), Ok(1_966_080));
        assert_eq!(parse_bytes("0x1E0000"), Ok(0x1E_0000));
        assert_eq!(parse_bytes("1920K"), Ok(1920 * 1024));
        assert_eq!(parse_bytes("1920KiB"), Ok(1920 * 1024));
        assert_eq!(parse_bytes("2M"), Ok(2 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("99999999999999999999M").is_err());
    }

    #[test]
    fn chips_parse_as_espressif_writes_them() {
        assert_eq!(parse_chip("esp32c3"), Ok(Chip::Esp32c3));
        assert_eq!(parse_chip("ESP32-C3"), Ok(Chip::Esp32c3));
        assert!(
            parse_chip("esp8266")
                .unwrap_err()
                .contains("esp32, esp32s3, esp32c3, esp32c6")
        );
    }

    #[test]
    fn flash_settings_print_as_they_are_typed() {
        let defaults = FlashSettings::default();
        assert_eq!(
            (
                defaults.mode.to_string(),
                defaults.size.to_string(),
                defaults.freq.to_string()
            ),
            ("dio".into(), "4MB".into(), "40m".into())
        );
        assert_eq!(FlashSize::from_bytes(16 << 20), Some(FlashSize::Mb16));
        assert_eq!(FlashSize::from_bytes(3 << 20), None);
    }
}
