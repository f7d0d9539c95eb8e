//! The ESP chips otactl knows, by the names profiles, manifests, espflash and esptool use.

use core::fmt;

use super::image::{CHIP_ESP32, CHIP_ESP32C3, CHIP_ESP32C6, CHIP_ESP32S3};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Chip {
    Esp32,
    Esp32s3,
    Esp32c3,
    Esp32c6,
}

impl Chip {
    pub const ALL: [Chip; 4] = [Chip::Esp32, Chip::Esp32s3, Chip::Esp32c3, Chip::Esp32c6];

    /// The name used in profiles, manifests and esptool (`esp32c3`).
    pub fn as_str(self) -> &'static str {
        match self {
            Chip::Esp32 => "esp32",
            Chip::Esp32s3 => "esp32s3",
            Chip::Esp32c3 => "esp32c3",
            Chip::Esp32c6 => "esp32c6",
        }
    }

    pub fn from_name(name: &str) -> Option<Chip> {
        Chip::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The `chip_id` an app image for this chip carries in its header.
    pub fn image_chip_id(self) -> u16 {
        match self {
            Chip::Esp32 => CHIP_ESP32,
            Chip::Esp32s3 => CHIP_ESP32S3,
            Chip::Esp32c3 => CHIP_ESP32C3,
            Chip::Esp32c6 => CHIP_ESP32C6,
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for chip in Chip::ALL {
            assert_eq!(Chip::from_name(chip.as_str()), Some(chip));
        }
        assert_eq!(Chip::from_name("ESP32"), None);
        assert_eq!(Chip::Esp32c3.image_chip_id(), 5);
    }
}
