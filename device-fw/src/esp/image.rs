//! ESP-IDF application images (`esptool elf2image` output, ESP-FORMATS.md §2): parsed and
//! checked the way the IDF bootloader checks them, before the device points otadata at a
//! freshly written slot.
//!
//! A download that passes the transport-level SHA-256 can still be the wrong file (another
//! chip's build, a bootloader, a truncated artifact from CI); flipping the boot slot to it
//! costs a rollback at best. So every failure the bootloader would hit has its own error.

use sha2::{Digest, Sha256};

/// `esp_image_header_t.magic`.
pub const IMAGE_MAGIC: u8 = 0xE9;
/// Image header plus extended header.
pub const HEADER_LEN: usize = 24;
pub const SEGMENT_HEADER_LEN: usize = 8;
/// `ESP_IMAGE_MAX_SEGMENTS`.
pub const MAX_SEGMENTS: usize = 16;
/// `ESP_APP_DESC_MAGIC_WORD`.
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
pub const APP_DESC_LEN: usize = 256;
/// The app descriptor opens segment 0: header + first segment header.
pub const APP_DESC_OFFSET: usize = HEADER_LEN + SEGMENT_HEADER_LEN;
/// Seed of the XOR checksum.
pub const CHECKSUM_SEED: u8 = 0xEF;
pub const HASH_LEN: usize = 32;

/// `esp_chip_id_t` values for the chips otactl targets.
pub const CHIP_ESP32: u16 = 0;
pub const CHIP_ESP32S2: u16 = 2;
pub const CHIP_ESP32C3: u16 = 5;
pub const CHIP_ESP32S3: u16 = 9;
pub const CHIP_ESP32C6: u16 = 13;
/// `ESP_CHIP_ID_INVALID`.
pub const CHIP_INVALID: u16 = 0xFFFF;

/// Why an image would not boot (or is not an app image at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The data ends before `needed` bytes (a header, the checksum or the hash).
    #[error(
        "image is truncated: {what} needs {needed} bytes but the image has {have}; the download or build is incomplete"
    )]
    Truncated {
        what: &'static str,
        needed: usize,
        have: usize,
    },
    /// First byte is not 0xE9.
    #[error(
        "image starts with 0x{0:02X}, not 0xE9: this is not an ESP app image (wrong file, or an .elf/.hex instead of the .bin)"
    )]
    BadMagic(u8),
    /// More segments than the bootloader loads.
    #[error("image header claims {0} segments, the bootloader allows at most 16; the image is corrupt")]
    TooManySegments(u8),
    /// `hash_appended` is neither 0 nor 1.
    #[error("image header hash_appended byte is {0}, only 0 or 1 are legal; the image is corrupt")]
    BadHashAppended(u8),
    /// chip_id 0xFFFF.
    #[error("image header has chip id 0xFFFF (invalid); rebuild the image for a concrete chip")]
    InvalidChipId,
    /// Built for another chip.
    #[error("image is built for chip id {found}, this device is chip id {expected}; build for the right target")]
    WrongChip { expected: u16, found: u16 },
    /// A segment's data runs past the end of the image.
    #[error("segment {index} ends at byte {end} but the image has {have} bytes; the image is truncated or corrupt")]
    SegmentOutOfBounds { index: usize, end: usize, have: usize },
    /// A segment length that is not a multiple of 4 (the bootloader copies words).
    #[error(
        "segment {index} is {len} bytes, not a multiple of 4; the bootloader rejects it, rebuild with esptool elf2image"
    )]
    SegmentLenNotAligned { index: usize, len: u32 },
    /// The XOR checksum byte does not match the segment data.
    #[error("image checksum is 0x{found:02X} but the segment data gives 0x{computed:02X}; the image is corrupt")]
    ChecksumMismatch { computed: u8, found: u8 },
    /// The appended SHA-256 does not match the image.
    #[error("image appended SHA-256 does not match its contents; the image is corrupt")]
    HashMismatch,
    /// Segment 0 does not start with an `esp_app_desc_t`.
    #[error(
        "no app descriptor (magic 0xABCD5432) at offset 0x20: not an ESP-IDF app (a bootloader, or a non-IDF build)"
    )]
    NoAppDescriptor,
    /// A descriptor string field without its NUL.
    #[error("app descriptor field `{0}` is not NUL-terminated; the image is corrupt")]
    AppDescStringNotTerminated(&'static str),
}

/// The 24-byte `esp_image_header_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub segment_count: u8,
    pub spi_mode: u8,
    /// Low nibble flash speed, high nibble flash size.
    pub spi_speed_size: u8,
    pub entry_addr: u32,
    pub wp_pin: u8,
    pub spi_pin_drv: [u8; 3],
    pub chip_id: u16,
    pub min_chip_rev: u8,
    pub min_chip_rev_full: u16,
    pub max_chip_rev_full: u16,
    pub hash_appended: bool,
}

/// A segment: where it loads and where its data sits in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub load_addr: u32,
    /// Offset of the data (after the 8-byte segment header) from the image start.
    pub data_offset: usize,
    pub len: u32,
}

/// `esp_app_desc_t`, kept raw; the accessors decode fields on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppDesc {
    pub raw: [u8; APP_DESC_LEN],
}

impl AppDesc {
    fn word(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.raw[at], self.raw[at + 1], self.raw[at + 2], self.raw[at + 3]])
    }

    /// Field bytes up to the NUL (checked present by [`AppDesc::from_first_segment`] for the
    /// fields it names); `None` if not UTF-8.
    fn text(&self, at: usize, len: usize) -> Option<&str> {
        let field = &self.raw[at..at + len];
        let end = field.iter().position(|&b| b == 0).unwrap_or(len);
        core::str::from_utf8(&field[..end]).ok()
    }

    /// Anti-rollback version, compared against eFuse by the bootloader.
    pub fn secure_version(&self) -> u32 {
        self.word(4)
    }
    pub fn version(&self) -> Option<&str> {
        self.text(16, 32)
    }
    pub fn project_name(&self) -> Option<&str> {
        self.text(48, 32)
    }
    pub fn time(&self) -> Option<&str> {
        self.text(80, 16)
    }
    pub fn date(&self) -> Option<&str> {
        self.text(96, 16)
    }
    pub fn idf_ver(&self) -> Option<&str> {
        self.text(112, 32)
    }
    pub fn app_elf_sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.raw[144..176]);
        out
    }

    /// The descriptor that opens segment 0, checked. `raw` is asked for only when segment 0
    /// is long enough to hold one, so a caller never has to fetch bytes past a short segment.
    /// Shared by the in-RAM and the in-flash parsers so that both reject the same images.
    pub(crate) fn from_first_segment(
        segments: &[Segment],
        raw: impl FnOnce() -> [u8; APP_DESC_LEN],
    ) -> Result<Self, ImageError> {
        match segments.first() {
            Some(s) if s.len as usize >= APP_DESC_LEN => {}
            _ => return Err(ImageError::NoAppDescriptor),
        }
        let desc = AppDesc { raw: raw() };
        if desc.word(0) != APP_DESC_MAGIC {
            return Err(ImageError::NoAppDescriptor);
        }
        for (name, at, flen) in [("version", 16, 32), ("project_name", 48, 32), ("idf_ver", 112, 32)] {
            if !desc.raw[at..at + flen].contains(&0) {
                return Err(ImageError::AppDescStringNotTerminated(name));
            }
        }
        Ok(desc)
    }
}

impl Segment {
    /// Decodes the segment header found at `pos` and applies the checks the bootloader makes
    /// before it copies the data: a whole number of words, and data ending within the
    /// `have` bytes of the image.
    pub(crate) fn decode(
        index: usize,
        pos: usize,
        header: &[u8; SEGMENT_HEADER_LEN],
        have: usize,
    ) -> Result<Self, ImageError> {
        let load_addr = u32_at(header, 0);
        let len = u32_at(header, 4);
        if !len.is_multiple_of(4) {
            return Err(ImageError::SegmentLenNotAligned { index, len });
        }
        let data_offset = pos + SEGMENT_HEADER_LEN;
        let end = data_offset.saturating_add(len as usize);
        if end > have {
            return Err(ImageError::SegmentOutOfBounds { index, end, have });
        }
        Ok(Segment {
            load_addr,
            data_offset,
            len,
        })
    }

    /// Offset just past the data.
    pub fn end(&self) -> usize {
        self.data_offset + self.len as usize
    }
}

/// A checked app image. Everything the bootloader verifies has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImage {
    pub header: ImageHeader,
    pub segments: heapless::Vec<Segment, MAX_SEGMENTS>,
    pub app_desc: AppDesc,
    /// Offset of the checksum byte.
    pub checksum_offset: usize,
    pub checksum: u8,
    /// The appended SHA-256, if `hash_appended`.
    pub hash: Option<[u8; HASH_LEN]>,
    /// Image length: through the checksum, plus the hash if appended. Bytes after this (a
    /// signature block, or erased flash when reading a slot) are not part of the image.
    pub len: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `N` bytes at `at`; the caller has checked they are there.
fn array_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Fails unless an image of `have` bytes reaches `needed`.
pub(crate) fn need(have: usize, needed: usize, what: &'static str) -> Result<(), ImageError> {
    if have < needed {
        return Err(ImageError::Truncated { what, needed, have });
    }
    Ok(())
}

/// Folds segment data into the XOR checksum (start from [`CHECKSUM_SEED`]).
pub(crate) fn fold_checksum(checksum: u8, data: &[u8]) -> u8 {
    data.iter().fold(checksum, |c, b| c ^ b)
}

pub(crate) fn check_checksum(computed: u8, found: u8) -> Result<(), ImageError> {
    if found != computed {
        return Err(ImageError::ChecksumMismatch { computed, found });
    }
    Ok(())
}

/// Where the checksum byte goes for segment data ending at `end`: zero padding up to the
/// next `16k − 1`, so that the file is a multiple of 16 after it.
pub const fn checksum_offset(end: usize) -> usize {
    end | 0xF
}

impl ImageHeader {
    /// Decodes the 24-byte header, checking magic, segment count, chip id and hash flag.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        need(bytes.len(), HEADER_LEN, "image header")?;
        if bytes[0] != IMAGE_MAGIC {
            return Err(ImageError::BadMagic(bytes[0]));
        }
        if usize::from(bytes[1]) > MAX_SEGMENTS {
            return Err(ImageError::TooManySegments(bytes[1]));
        }
        let chip_id = u16_at(bytes, 12);
        if chip_id == CHIP_INVALID {
            return Err(ImageError::InvalidChipId);
        }
        let hash_appended = match bytes[23] {
            0 => false,
            1 => true,
            other => return Err(ImageError::BadHashAppended(other)),
        };
        Ok(ImageHeader {
            segment_count: bytes[1],
            spi_mode: bytes[2],
            spi_speed_size: bytes[3],
            entry_addr: u32_at(bytes, 4),
            wp_pin: bytes[8],
            spi_pin_drv: [bytes[9], bytes[10], bytes[11]],
            chip_id,
            min_chip_rev: bytes[14],
            min_chip_rev_full: u16_at(bytes, 15),
            max_chip_rev_full: u16_at(bytes, 17),
            hash_appended,
        })
    }

    /// Rejects an image built for another chip (the bootloader's `chip_id` check).
    pub fn check_chip(&self, expected: u16) -> Result<(), ImageError> {
        if self.chip_id != expected {
            return Err(ImageError::WrongChip {
                expected,
                found: self.chip_id,
            });
        }
        Ok(())
    }
}

impl AppImage {
    /// Parses and verifies an app image at the start of `bytes` (trailing bytes are
    /// ignored). Checks run in bootloader order: header, segments, checksum, hash, then the
    /// app descriptor.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let header = ImageHeader::parse(bytes)?;
        let mut segments = heapless::Vec::new();
        let mut checksum = CHECKSUM_SEED;
        let mut pos = HEADER_LEN;
        for index in 0..usize::from(header.segment_count) {
            need(bytes.len(), pos + SEGMENT_HEADER_LEN, "segment header")?;
            let segment = Segment::decode(index, pos, &array_at(bytes, pos), bytes.len())?;
            checksum = fold_checksum(checksum, &bytes[segment.data_offset..segment.end()]);
            pos = segment.end();
            // Cannot fail: segment_count ≤ MAX_SEGMENTS was checked.
            let _ = segments.push(segment);
        }
        let checksum_offset = checksum_offset(pos);
        need(bytes.len(), checksum_offset + 1, "checksum byte")?;
        check_checksum(checksum, bytes[checksum_offset])?;
        let mut len = checksum_offset + 1;
        let hash = if header.hash_appended {
            need(bytes.len(), len + HASH_LEN, "appended SHA-256")?;
            let mut stored = [0u8; HASH_LEN];
            stored.copy_from_slice(&bytes[len..len + HASH_LEN]);
            if Sha256::digest(&bytes[..len])[..] != stored {
                return Err(ImageError::HashMismatch);
            }
            len += HASH_LEN;
            Some(stored)
        } else {
            None
        };
        let app_desc = AppDesc::from_first_segment(&segments, || array_at(bytes, APP_DESC_OFFSET))?;
        Ok(AppImage {
            header,
            segments,
            app_desc,
            checksum_offset,
            checksum,
            hash,
            len,
        })
    }

    /// Rejects an image built for another chip (the bootloader's `chip_id` check).
    pub fn check_chip(&self, expected: u16) -> Result<(), ImageError> {
        self.header.check_chip(expected)
    }
}

#[cfg(any(test, feature = "std"))]
extern crate std;

/// Builds a valid app image (§2) for tests: one DROM segment holding a 256-byte app
/// descriptor then `payload` (zero-padded to a multiple of 4), zero padding, checksum byte,
/// appended SHA-256. `version` and `project` must be ≤ 31 bytes.
#[cfg(any(test, feature = "std"))]
pub fn build_test_image(chip_id: u16, version: &str, project: &str, payload: &[u8]) -> std::vec::Vec<u8> {
    assert!(
        version.len() < 32 && project.len() < 32,
        "version/project must be at most 31 bytes"
    );
    let desc = build_test_app_desc(version, project, 0);

    let mut seg = std::vec::Vec::from(desc);
    seg.extend_from_slice(payload);
    seg.resize(seg.len().next_multiple_of(4), 0);
    let load_addr: u32 = if chip_id == CHIP_ESP32 {
        0x3F40_0020
    } else {
        0x3C00_0020
    };

    let mut img = std::vec::Vec::with_capacity(seg.len() + 96);
    img.extend_from_slice(&[IMAGE_MAGIC, 1, 0x02, 0x20]); // 1 segment, DIO, 4 MB @ 40 MHz
    img.extend_from_slice(&0x4008_0000u32.to_le_bytes()); // entry
    img.extend_from_slice(&[0xEE, 0, 0, 0]); // wp_pin disabled, pin drive
    img.extend_from_slice(&chip_id.to_le_bytes());
    img.push(0); // min_chip_rev
    img.extend_from_slice(&0u16.to_le_bytes()); // min_chip_rev_full
    img.extend_from_slice(&0xFFFFu16.to_le_bytes()); // max_chip_rev_full
    img.extend_from_slice(&[0, 0, 0, 0, 1]); // reserved, hash_appended
    img.extend_from_slice(&load_addr.to_le_bytes());
    img.extend_from_slice(&(seg.len() as u32).to_le_bytes());
    img.extend_from_slice(&seg);
    img.resize(checksum_offset(img.len()) + 1 + HASH_LEN, 0);
    reseal_test_image(&mut img);
    img
}

/// An `esp_app_desc_t` (ESP-FORMATS.md §2.6) as a build writes it, for test images and
/// test ELFs: magic, `secure_version`, version and project (each at most 31 bytes), a build
/// time and date, an IDF version, and the chip-revision bounds left open.
#[cfg(any(test, feature = "std"))]
pub fn build_test_app_desc(version: &str, project: &str, secure_version: u32) -> [u8; APP_DESC_LEN] {
    let mut desc = [0u8; APP_DESC_LEN];
    desc[0..4].copy_from_slice(&APP_DESC_MAGIC.to_le_bytes());
    desc[4..8].copy_from_slice(&secure_version.to_le_bytes());
    desc[16..16 + version.len()].copy_from_slice(version.as_bytes());
    desc[48..48 + project.len()].copy_from_slice(project.as_bytes());
    desc[80..88].copy_from_slice(b"00:00:00");
    desc[96..107].copy_from_slice(b"Jan  1 2026");
    desc[112..116].copy_from_slice(b"v5.4");
    desc[178..180].copy_from_slice(&0xFFFFu16.to_le_bytes());
    desc
}

/// Recomputes the checksum byte and appended SHA-256 of a test image in place, after a
/// test changed segment data or header bytes, so that only the intended corruption shows.
/// The segment table must still be walkable.
#[cfg(any(test, feature = "std"))]
pub fn reseal_test_image(img: &mut [u8]) {
    let mut checksum = CHECKSUM_SEED;
    let mut pos = HEADER_LEN;
    for _ in 0..img[1] {
        let len = u32_at(img, pos + 4) as usize;
        pos += SEGMENT_HEADER_LEN;
        checksum = fold_checksum(checksum, &img[pos..pos + len]);
        pos += len;
    }
    let cs = checksum_offset(pos);
    img[cs] = checksum;
    if img[23] == 1 {
        let hash = Sha256::digest(&img[..cs + 1]);
        img[cs + 1..cs + 1 + HASH_LEN].copy_from_slice(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn image() -> Vec<u8> {
        build_test_image(CHIP_ESP32S3, "1.2.3", "otactl-demo", b"hello, world!")
    }

    #[test]
    fn build_parse_round_trip() {
        let img = image();
        // 24 header + 8 seg header + 256 desc + 16 payload (13 → padded 16) = 304; checksum
        // at 319, hash 320..352.
        assert_eq!(img.len(), 352);
        assert_eq!(img.len() % 16, 0);
        let p = AppImage::parse(&img).unwrap();
        assert_eq!(p.len, img.len());
        assert_eq!(p.checksum_offset, 319);
        assert_eq!(p.header.chip_id, CHIP_ESP32S3);
        assert!(p.header.hash_appended);
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].load_addr, 0x3C00_0020);
        assert_eq!(p.segments[0].data_offset, 0x20);
        assert_eq!(p.segments[0].len, 272);
        assert_eq!(&img[0x20 + 256..0x20 + 256 + 13], b"hello, world!");
        assert_eq!(p.app_desc.version(), Some("1.2.3"));
        assert_eq!(p.app_desc.project_name(), Some("otactl-demo"));
        assert_eq!(p.app_desc.idf_ver(), Some("v5.4"));
        assert_eq!(p.app_desc.secure_version(), 0);
        assert_eq!(p.hash.unwrap()[..], Sha256::digest(&img[..320])[..]);
        assert_eq!(p.check_chip(CHIP_ESP32S3), Ok(()));
        assert_eq!(
            p.check_chip(CHIP_ESP32C3),
            Err(ImageError::WrongChip {
                expected: CHIP_ESP32C3,
                found: CHIP_ESP32S3
            })
        );
        // Trailing erased flash (reading a slot) is not part of the image.
        let mut slot = img.clone();
        slot.resize(4096, 0xFF);
        assert_eq!(AppImage::parse(&slot).unwrap().len, img.len());
    }

    #[test]
    fn checksum_placement_edge_cases() {
        assert_eq!(checksum_offset(304), 319);
        assert_eq!(checksum_offset(319), 319);
        assert_eq!(checksum_offset(320), 335);
        // Payload sizes that shift where the checksum lands all round-trip.
        for n in 0..40 {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let img = build_test_image(CHIP_ESP32, "v", "p", &payload);
            assert_eq!(img.len() % 16, 0);
            let p = AppImage::parse(&img).unwrap();
            assert_eq!(p.segments[0].load_addr, 0x3F40_0020);
            assert_eq!(p.len, img.len());
        }
    }

    #[test]
    fn secure_version_is_read() {
        let mut img = image();
        img[0x20 + 4..0x20 + 8].copy_from_slice(&7u32.to_le_bytes());
        reseal_test_image(&mut img);
        assert_eq!(AppImage::parse(&img).unwrap().app_desc.secure_version(), 7);
    }

    #[test]
    fn no_hash_image() {
        let mut img = image();
        img[23] = 0;
        img.truncate(img.len() - HASH_LEN);
        let p = AppImage::parse(&img).unwrap();
        assert_eq!(p.hash, None);
        assert_eq!(p.len, img.len());
    }

    #[test]
    fn each_corruption_has_its_own_error() {
        let good = image();
        let corrupt = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut img = good.clone();
            f(&mut img);
            AppImage::parse(&img).unwrap_err()
        };
        let resealed = |f: &dyn Fn(&mut Vec<u8>)| {
            corrupt(&|img: &mut Vec<u8>| {
                f(img);
                reseal_test_image(img);
            })
        };

        assert_eq!(corrupt(&|i| i[0] = 0x7F), ImageError::BadMagic(0x7F));
        assert_eq!(corrupt(&|i| i[1] = 17), ImageError::TooManySegments(17));
        assert_eq!(corrupt(&|i| i[23] = 2), ImageError::BadHashAppended(2));
        assert_eq!(corrupt(&|i| i[12..14].fill(0xFF)), ImageError::InvalidChipId);
        assert_eq!(
            corrupt(&|i| i[28..32].copy_from_slice(&0x1000u32.to_le_bytes())),
            ImageError::SegmentOutOfBounds {
                index: 0,
                end: 0x20 + 0x1000,
                have: 352
            }
        );
        assert_eq!(
            corrupt(&|i| i[28..32].copy_from_slice(&270u32.to_le_bytes())),
            ImageError::SegmentLenNotAligned { index: 0, len: 270 }
        );
        // One payload bit: the checksum catches it first.
        let e = corrupt(&|i| i[0x20 + 256] ^= 0x01);
        assert!(matches!(e, ImageError::ChecksumMismatch { .. }), "{e:?}");
        // Header bytes are outside the checksum; only the hash covers them.
        assert_eq!(corrupt(&|i| i[4] ^= 0x01), ImageError::HashMismatch);
        assert_eq!(corrupt(&|i| i[340] ^= 0x01), ImageError::HashMismatch);
        assert_eq!(resealed(&|i| i[0x20] = 0), ImageError::NoAppDescriptor);
        assert_eq!(
            resealed(&|i| i[0x20 + 16..0x20 + 48].fill(b'x')),
            ImageError::AppDescStringNotTerminated("version")
        );
        assert_eq!(
            resealed(&|i| i[0x20 + 48..0x20 + 80].fill(b'x')),
            ImageError::AppDescStringNotTerminated("project_name")
        );
        // Truncations at every stage.
        for (cut, what) in [
            (10, "image header"),
            (HEADER_LEN + 4, "segment header"),
            (319, "checksum byte"),
            (340, "appended SHA-256"),
        ] {
            match AppImage::parse(&good[..cut]) {
                Err(ImageError::Truncated { what: w, have, .. }) => assert_eq!((w, have), (what, cut)),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let e = AppImage::parse(&good[..200]).unwrap_err();
        assert!(matches!(e, ImageError::SegmentOutOfBounds { index: 0, .. }), "{e:?}");
    }

    #[test]
    fn zero_segments_has_no_descriptor() {
        let mut img = image();
        // Keep the header, drop the segment: checksum (seed only) at 31, then the hash.
        img[1] = 0;
        img.truncate(32 + HASH_LEN);
        reseal_test_image(&mut img);
        assert_eq!(AppImage::parse(&img), Err(ImageError::NoAppDescriptor));
    }
}
