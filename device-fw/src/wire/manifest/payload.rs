//! Reading a manifest's payload: its members by wire name, the `rollout`, `lzma` (the
//! compressed form) and `delta` objects, each member at most once; members of later firmware are skipped.

use super::{Alternate, Manifest, Patch};
use crate::wire::json::{JsonError, Reader, required, set_once};
use crate::wire::rollout::{self, RolloutError};

/// The payload's members by wire name; later schemas' members are skipped.
const STRING_FIELDS: [&str; 8] = [
    "product", "channel", "version", "chip", "board", "image", "sha256", "created",
];
const NUMBER_FIELDS: [&str; 3] = ["schema", "size", "secure_version"];

pub(super) fn read_payload(payload: &[u8]) -> Result<(Manifest<'_>, Option<RolloutError>), JsonError> {
    let mut strings = [None; STRING_FIELDS.len()];
    let mut numbers = [None; NUMBER_FIELDS.len()];
    let mut staged = None;
    let mut compressed = None;
    let mut delta = None;
    let mut r = Reader::new(payload);
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        if key == "lzma" {
            let read = read_alternate(&mut r)?;
            set_once(&mut compressed, "lzma", read)?;
        } else if key == "delta" {
            let read = read_patch(&mut r)?;
            set_once(&mut delta, "delta", read)?;
        } else if key == "rollout" {
            let read = rollout::read(&mut r)?;
            set_once(&mut staged, "rollout", read)?;
        } else if let Some(i) = STRING_FIELDS.iter().position(|f| *f == key) {
            set_once(&mut strings[i], STRING_FIELDS[i], r.string()?)?;
        } else if let Some(i) = NUMBER_FIELDS.iter().position(|f| *f == key) {
            set_once(&mut numbers[i], NUMBER_FIELDS[i], r.u32()?)?;
        } else {
            r.skip_value()?;
        }
    }
    r.end()?;
    let text = |i: usize| required(strings[i], STRING_FIELDS[i]);
    let number = |i: usize| required(numbers[i], NUMBER_FIELDS[i]);
    let (rollout, rollout_error) = match staged {
        None => (None, None),
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let manifest = Manifest {
        schema: number(0)?,
        product: text(0)?,
        channel: text(1)?,
        version: text(2)?,
        chip: text(3)?,
        board: text(4)?,
        image: text(5)?,
        size: number(1)?,
        sha256: text(6)?,
        secure_version: number(2)?,
        created: text(7)?,
        rollout,
        compressed,
        delta,
    };
    Ok((manifest, rollout_error))
}

/// An [`Alternate`] object; members of later firmware are skipped.
fn read_alternate<'a>(r: &mut Reader<'a>) -> Result<Alternate<'a>, JsonError> {
    let (mut image, mut size) = (None, None);
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        match key {
            "image" => set_once(&mut image, "image", r.string()?)?,
            "size" => set_once(&mut size, "size", r.u32()?)?,
            _ => r.skip_value()?,
        }
    }
    Ok(Alternate {
        image: required(image, "image")?,
        size: required(size, "size")?,
    })
}

/// A [`Patch`] object; members of later firmware are skipped.
fn read_patch<'a>(r: &mut Reader<'a>) -> Result<Patch<'a>, JsonError> {
    let (mut image, mut size, mut base_sha256, mut base_size) = (None, None, None, None);
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        match key {
            "image" => set_once(&mut image, "image", r.string()?)?,
            "size" => set_once(&mut size, "size", r.u32()?)?,
            "base_sha256" => set_once(&mut base_sha256, "base_sha256", r.string()?)?,
            "base_size" => set_once(&mut base_size, "base_size", r.u32()?)?,
            _ => r.skip_value()?,
        }
    }
    Ok(Patch {
        image: required(image, "image")?,
        size: required(size, "size")?,
        base_sha256: required(base_sha256, "base_sha256")?,
        base_size: required(base_size, "base_size")?,
    })
}
