//! The fewer-bytes benchmark: what each form of a release (raw, compressed, a patch from
//! the image before) costs over the air for pairs of real firmware images, beside detools'
//! patches of the same pair (the format ESP-IDF's `esp_delta_ota` applies), and the virtual
//! time of the field device's whole update in each form.

use std::path::{Path, PathBuf};
use std::process::Command;

use device_fw::wire::{ImageForm, compressed, delta};
use serde::Serialize;

use crate::scenario::{self, RunSpec, SeedForm, Strategy};
use crate::trust::{Form, life_carrying};

/// Two images: the one devices run and the one they update to.
#[derive(Debug, Clone)]
pub struct Pair {
    pub name: String,
    pub base: PathBuf,
    pub new: PathBuf,
}

/// The commit `.ci/firmware` builds the code-change pair's base from.
pub const BASE_COMMIT: &str = "20a0baf1";

/// The pairs `.ci/firmware` leaves in `target`: per chip, a configuration change (another
/// APN, server and NAT timeout, the same code) and a code change (from [`BASE_COMMIT`] to
/// this build).
pub fn default_pairs(target: &Path) -> Vec<Pair> {
    let pairs = target.join("fewer-bytes");
    ["esp32c3", "esp32c6"]
        .iter()
        .flat_map(|chip| {
            let this = target.join(format!("firmware-{chip}.bin"));
            [
                Pair {
                    name: format!("otactl-fw-{chip}: configuration change"),
                    base: this.clone(),
                    new: pairs.join(format!("firmware-{chip}-config.bin")),
                },
                Pair {
                    name: format!("otactl-fw-{chip}: code change since {BASE_COMMIT}"),
                    base: pairs.join(format!("firmware-{chip}-{BASE_COMMIT}.bin")),
                    new: this,
                },
            ]
        })
        .collect()
}

/// Parses `NAME=BASE:NEW`.
pub fn parse_pair(text: &str) -> Result<Pair, String> {
    let (name, paths) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: give a pair as NAME=BASE.bin:NEW.bin"))?;
    let (base, new) = paths
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: give a pair as NAME=BASE.bin:NEW.bin"))?;
    Ok(Pair {
        name: name.to_owned(),
        base: base.into(),
        new: new.into(),
    })
}

/// detools' patch sizes for a pair, with the compression `esp_delta_ota` devices apply
/// (heatshrink) and its strongest (lzma).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Detools {
    pub heatshrink: usize,
    pub lzma: usize,
}

/// The command the bench runs for detools' patches (`pip install detools`).
pub const DETOOLS: &str = "python3 -m detools create_patch --compression {heatshrink,lzma} BASE NEW PATCH";

/// Runs detools on the pair; an error says what is missing.
pub fn detools(pair: &Pair) -> Result<Detools, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let size = |compression: &str| -> Result<usize, String> {
        let out = dir.path().join(format!("patch.{compression}"));
        let run = Command::new("python3")
            .args(["-m", "detools", "create_patch", "--compression", compression])
            .arg(&pair.base)
            .arg(&pair.new)
            .arg(&out)
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        if !run.status.success() {
            return Err(format!(
                "detools create_patch --compression {compression} failed (install it: pip install detools): {}",
                String::from_utf8_lossy(&run.stderr).trim()
            ));
        }
        Ok(std::fs::metadata(&out)
            .map_err(|e| format!("{}: {e}", out.display()))?
            .len() as usize)
    };
    Ok(Detools {
        heatshrink: size("heatshrink")?,
        lzma: size("lzma")?,
    })
}

/// One row of the benchmark: a pair in one form.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub pair: String,
    pub form: ImageForm,
    pub bytes: usize,
    pub ratio_to_raw: f64,
    /// Patches only: detools' on the same pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detools_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detools_lzma_bytes: Option<usize>,
    /// The seed field case (seed-cgnat: SIM7600 at 115200 baud behind a 59 s NAT) fetching
    /// this form: the download's virtual time, and over the raw image's.
    pub seed_virtual_s: f64,
    pub seed_time_ratio_to_raw: f64,
    /// Response body bytes of the field device's whole update (boot, bring-up, manifest,
    /// download, checks, reboot, confirm), and its virtual time.
    pub body_bytes_sent: u64,
    pub update_virtual_s: f64,
    /// This form's whole update over the raw image's.
    pub time_ratio_to_raw: f64,
    pub completed: bool,
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

/// The three rows of a pair; `detools` is `None` when it is not installed.
pub fn measure(pair: &Pair, detools: Option<Detools>) -> Result<Vec<Row>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (base, new) = (read(&pair.base)?, read(&pair.new)?);
    let packed = compressed::compress(&new).map_err(|e| e.to_string())?;
    let patch = delta::diff(&base, &new).map_err(|e| e.to_string())?;
    let mut rows: Vec<Row> = Vec::new();
    let (mut raw_s, mut raw_seed_s) = (0.0, 0.0);
    let image: std::sync::Arc<[u8]> = new.clone().into();
    for (form, bench_form, seed_form, bytes) in [
        (ImageForm::Raw, Form::Raw, SeedForm::Raw, new.len()),
        (
            ImageForm::Compressed,
            Form::Compressed,
            SeedForm::Compressed,
            packed.len(),
        ),
        (
            ImageForm::Delta,
            Form::Delta,
            SeedForm::Delta {
                base: base.clone().into(),
            },
            patch.len(),
        ),
    ] {
        let seed = scenario::run(&RunSpec {
            image_bytes: new.len(),
            image: Some(image.clone()),
            form: seed_form,
            ..RunSpec::seed(Strategy::Otactl)
        });
        if seed.outcome != "updated" || !seed.slot_matches {
            return Err(format!(
                "the seed case in the {form:?} form did not update: {:?}",
                seed.error
            ));
        }
        let life = life_carrying(bench_form, &base, &new);
        if form == ImageForm::Raw {
            (raw_s, raw_seed_s) = (life.virtual_s, seed.virtual_s);
        }
        rows.push(Row {
            scenario: "fewer-bytes",
            pair: pair.name.clone(),
            form,
            bytes,
            ratio_to_raw: round(bytes as f64 / new.len() as f64, 3),
            detools_bytes: (form == ImageForm::Delta)
                .then_some(detools.map(|d| d.heatshrink))
                .flatten(),
            detools_lzma_bytes: (form == ImageForm::Delta).then_some(detools.map(|d| d.lzma)).flatten(),
            seed_virtual_s: round(seed.virtual_s, 2),
            seed_time_ratio_to_raw: round(seed.virtual_s / raw_seed_s, 3),
            body_bytes_sent: life.body_bytes,
            update_virtual_s: round(life.virtual_s, 2),
            time_ratio_to_raw: round(life.virtual_s / raw_s, 3),
            completed: life.completed,
        });
    }
    Ok(rows)
}

/// The goals over all rows, each with whether it was met: the compressed form at
/// most 0.60 of raw; for a small change (the configuration-change pairs) a patch at most
/// 0.15 of raw and the seed case's download in at most 0.15 of the raw image's time; every
/// patch no larger than detools' heatshrink patch and within 2x of its lzma patch.
pub fn goals(rows: &[Row]) -> serde_json::Value {
    let small = |r: &&Row| r.pair.contains("configuration change");
    let of = |form: ImageForm| rows.iter().filter(move |r| r.form == form);
    let deltas_vs_detools = |f: &dyn Fn(&Row, usize, usize) -> bool| {
        of(ImageForm::Delta).all(|r| match (r.detools_bytes, r.detools_lzma_bytes) {
            (Some(h), Some(l)) => f(r, h, l),
            _ => false,
        })
    };
    serde_json::json!({
        "compressed_le_0_60_of_raw": of(ImageForm::Compressed).all(|r| r.ratio_to_raw <= 0.60),
        "small_change_delta_le_0_15_of_raw": of(ImageForm::Delta).filter(small).all(|r| r.ratio_to_raw <= 0.15),
        "small_change_seed_time_le_0_15_of_raw": of(ImageForm::Delta).filter(small).all(|r| r.seed_time_ratio_to_raw <= 0.15),
        "delta_le_detools_heatshrink": deltas_vs_detools(&|r, h, _| r.bytes <= h),
        "delta_within_2x_detools_lzma": deltas_vs_detools(&|r, _, l| r.bytes <= 2 * l),
    })
}
