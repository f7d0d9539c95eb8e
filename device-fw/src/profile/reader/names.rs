//! The closed sets a profile names by spelling: chips and modem dialects.
//!
//! These are the profile's words. The includer maps them onto its own types (`Chip`,
//! `Dialect` in the parent module) both ways, so a profile on the host holds the crate's
//! types while the spellings, and the lists that help text shows, exist only here.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// `T::ALL` mapped through `T::as_str`, at compile time.
macro_rules! spellings {
    ($t:ty, $n:literal) => {{
        let mut out = [""; $n];
        let mut i = 0;
        while i < $n {
            out[i] = <$t>::ALL[i].as_str();
            i += 1;
        }
        out
    }};
}

/// A chip a profile may name. The variants are named as the crate's `esp::chip::Chip`
/// variants, so generated code can write `Chip::{name:?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChipName {
    Esp32,
    Esp32s3,
    Esp32c3,
    Esp32c6,
}

impl ChipName {
    pub const ALL: [ChipName; 4] = [ChipName::Esp32, ChipName::Esp32s3, ChipName::Esp32c3, ChipName::Esp32c6];
    /// Every spelling, in the order of [`ChipName::ALL`] (serde's "expected one of" list).
    pub const NAMES: [&'static str; 4] = spellings!(ChipName, 4);

    /// As profiles, manifests, espflash and esptool spell it (`esp32c3`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ChipName::Esp32 => "esp32",
            ChipName::Esp32s3 => "esp32s3",
            ChipName::Esp32c3 => "esp32c3",
            ChipName::Esp32c6 => "esp32c6",
        }
    }

    /// The Rust target a firmware for this chip is built for. The Xtensa chips need
    /// Espressif's toolchain; otactl's own firmware builds for the RISC-V ones.
    pub const fn target(self) -> &'static str {
        match self {
            ChipName::Esp32 => "xtensa-esp32-none-elf",
            ChipName::Esp32s3 => "xtensa-esp32s3-none-elf",
            ChipName::Esp32c3 => "riscv32imc-unknown-none-elf",
            ChipName::Esp32c6 => "riscv32imac-unknown-none-elf",
        }
    }

    /// `"esp32"`, `"esp32s3"`, … as help text lists them.
    pub fn choices() -> String {
        quoted_list(&Self::NAMES, ", ")
    }
}

impl fmt::Display for ChipName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ChipName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        by_spelling(d, &ChipName::ALL, &ChipName::NAMES)
    }
}

/// A modem AT dialect a profile may name. The variants are named as the crate's
/// `modem::Dialect` variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DialectName {
    Sim7600,
    Sim7080,
}

impl DialectName {
    pub const ALL: [DialectName; 2] = [DialectName::Sim7600, DialectName::Sim7080];
    /// Every spelling, in the order of [`DialectName::ALL`].
    pub const NAMES: [&'static str; 2] = spellings!(DialectName, 2);

    /// As a profile spells it (`sim7600`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DialectName::Sim7600 => "sim7600",
            DialectName::Sim7080 => "sim7080",
        }
    }

    /// `"sim7600" or "sim7080"`, as help text lists them.
    pub fn choices() -> String {
        quoted_list(&Self::NAMES, " or ")
    }
}

impl fmt::Display for DialectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DialectName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        by_spelling(d, &DialectName::ALL, &DialectName::NAMES)
    }
}

fn quoted_list(names: &[&str], separator: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    quoted.join(separator)
}

/// Reads a string and finds it among `names`, or says which spellings there are in serde's
/// words (`unknown variant`), which the error locator turns into the key's help.
fn by_spelling<'de, D: Deserializer<'de>, T: Copy>(
    d: D,
    all: &[T],
    names: &'static [&'static str],
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    names
        .iter()
        .position(|n| *n == text)
        .map(|i| all[i])
        .ok_or_else(|| serde::de::Error::unknown_variant(&text, names))
}
