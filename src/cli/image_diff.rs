//! `otactl image diff`: the patch a device running one image applies to get another
//! (the delta form `otactl release` publishes from the channel's previous release), made
//! by hand to see what an update would cost, or to serve one from elsewhere.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use device_fw::esp::image::AppImage;
use device_fw::ota::patch;
use device_fw::wire::{compressed, delta};
use miette::Diagnostic;
use serde_json::json;

/// Images larger than any app slot are the wrong file.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The image devices run now (the patch's base).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,

    /// The image they should run.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,

    /// Where to write the patch.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
enum DiffError {
    #[error("cannot read {path}: {reason}")]
    #[diagnostic(code(otactl::image::read), help("check the path"))]
    Read { path: String, reason: String },

    #[error("{path} is not an ESP-IDF app image: {reason}")]
    #[diagnostic(
        code(otactl::image::not_an_image),
        help(
            "pass the .bin files `otactl image` or `idf.py build` wrote (the app image, not a merged flash image or an ELF)"
        )
    )]
    NotAnImage { path: String, reason: String },

    #[error("--out {path} is one of the images")]
    #[diagnostic(code(otactl::image::out), help("pass --out with another file name"))]
    OutIsInput { path: String },

    #[error("the patch could not be made: {0}")]
    #[diagnostic(
        code(otactl::image::diff),
        help("this is a bug in otactl's patch encoder; report it with both images")
    )]
    Encode(String),

    #[error("cannot write the patch to {path}: {reason}")]
    #[diagnostic(code(otactl::image::write), help("check that the directory exists and is writable"))]
    Write { path: String, reason: String },
}

struct Made {
    from_len: usize,
    to_len: usize,
    patch_len: usize,
    compressed_len: usize,
}

pub fn run(args: DiffArgs) -> ExitCode {
    let m = match make(&args) {
        Ok(m) => m,
        Err(e) => {
            // 1: an input is not an image; 2: otactl could not do its job.
            let code = if matches!(e, DiffError::NotAnImage { .. }) {
                1
            } else {
                2
            };
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": e.to_string(), "help": e.help().map(|h| h.to_string())})
                );
            } else {
                eprintln!("{:?}", miette::Report::new(e));
            }
            return ExitCode::from(code);
        }
    };
    let ratio = m.patch_len as f64 / m.to_len as f64;
    if args.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "from": {"path": args.from.display().to_string(), "size": m.from_len},
                "to": {"path": args.to.display().to_string(), "size": m.to_len},
                "patch": {"path": args.out.display().to_string(), "size": m.patch_len},
                "compressed_size": m.compressed_len,
                "ratio_to_raw": (ratio * 1000.0).round() / 1000.0,
            })
        );
    } else {
        println!(
            "{}: {} bytes, {:.1} % of the {}-byte image (its compressed form: {} bytes); applies to {} ({} bytes) only",
            args.out.display(),
            m.patch_len,
            100.0 * ratio,
            m.to_len,
            m.compressed_len,
            args.from.display(),
            m.from_len
        );
    }
    ExitCode::SUCCESS
}

fn read_image(path: &Path) -> Result<Vec<u8>, DiffError> {
    let read = |reason: String| DiffError::Read {
        path: path.display().to_string(),
        reason,
    };
    let len = fs::metadata(path).map_err(|e| read(e.to_string()))?.len();
    if len > MAX_IMAGE {
        return Err(read(format!("{len} bytes, more than any app slot holds")));
    }
    let bytes = fs::read(path).map_err(|e| read(e.to_string()))?;
    AppImage::parse(&bytes).map_err(|e| DiffError::NotAnImage {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(bytes)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn make(args: &DiffArgs) -> Result<Made, DiffError> {
    if same_file(&args.out, &args.from) || same_file(&args.out, &args.to) {
        return Err(DiffError::OutIsInput {
            path: args.out.display().to_string(),
        });
    }
    let from = read_image(&args.from)?;
    let to = read_image(&args.to)?;
    let patch = delta::diff(&from, &to).map_err(|e| DiffError::Encode(e.to_string()))?;
    // What devices will do with it, before it is written: the device's own decoder.
    match patch::apply(&from, &patch) {
        Ok(made) if made == to => {}
        Ok(_) => return Err(DiffError::Encode("the patch does not rebuild --to".into())),
        Err(e) => return Err(DiffError::Encode(e.to_string())),
    }
    let compressed_len = compressed::compress(&to)
        .map_err(|e| DiffError::Encode(e.to_string()))?
        .len();
    let write = |reason: String| DiffError::Write {
        path: args.out.display().to_string(),
        reason,
    };
    // Written beside, then renamed: a failed write never leaves half a patch under the name.
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| write(e.to_string()))?;
    std::io::Write::write_all(&mut tmp, &patch).map_err(|e| write(e.to_string()))?;
    tmp.persist(&args.out).map_err(|e| write(e.error.to_string()))?;
    Ok(Made {
        from_len: from.len(),
        to_len: to.len(),
        patch_len: patch.len(),
        compressed_len,
    })
}
