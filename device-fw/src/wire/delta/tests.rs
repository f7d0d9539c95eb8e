use super::*;
use crate::ota::patch::{ApplyError, apply};

/// Code-like bytes: words from a small vocabulary, so that edits leave matches around.
fn image(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&((x % 97) as u32 * 0x0101).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_patch_turns_the_base_into_the_new_image() {
    let base = image(1, 100_000);
    let mut new = base.clone();
    // An insertion (everything after it moves), a changed run and a cut at the end.
    new.splice(30_000..30_000, image(7, 1_500));
    for b in &mut new[60_000..60_400] {
        *b = b.wrapping_add(3);
    }
    new.truncate(97_001);
    let patch = diff(&base, &new).unwrap();
    assert_eq!(apply(&base, &patch).unwrap(), new);
    assert!(patch.len() < new.len() / 10, "{} bytes", patch.len());
}

#[test]
fn unrelated_images_and_empty_ones_patch_too() {
    for (base, new) in [
        (image(1, 20_000), image(2, 33_333)),
        (Vec::new(), image(3, 5_000)),
        (image(4, 5_000), Vec::new()),
        (image(5, 4_096), image(5, 4_096)),
    ] {
        let patch = diff(&base, &new).unwrap();
        assert_eq!(apply(&base, &patch).unwrap(), new);
    }
}

#[test]
fn a_patch_refuses_another_base() {
    let base = image(1, 10_000);
    let mut new = base.clone();
    new[5] ^= 1;
    let patch = diff(&base, &new).unwrap();
    let mut other = base.clone();
    other[9_999] ^= 1;
    assert_eq!(apply(&other, &patch), Err(ApplyError::Delta(DeltaError::WrongBase)));
}

#[test]
fn operations_are_read_back_as_written() {
    let mut bytes = Vec::new();
    let mut cursor = 8192;
    let written = [
        Operation::Add {
            base_at: 8000,
            len: 100,
        },
        Operation::Literal { len: 3 },
        Operation::Add { base_at: 0, len: 1 },
        Operation::Add {
            base_at: 300_000,
            len: 4095,
        },
    ];
    for op in written {
        push_op_header(&mut bytes, op, &mut cursor);
        let len = match op {
            Operation::Add { len, .. } | Operation::Literal { len } => len,
        };
        bytes.extend(std::iter::repeat_n(0xAA, len as usize));
    }
    let mut ops = Operations::new(bytes.len(), 8192);
    let mut read = Vec::new();
    while let Some((op, _)) = ops.next_op(&bytes).unwrap() {
        read.push(op);
    }
    assert_eq!(read, written);
}

#[test]
fn malformed_operations_are_refused() {
    // An empty operation, a data run past the segment, a seek before the base's start,
    // and a varint that never ends.
    for bytes in [
        &[0u8][..],
        &[0x09, 1, 2],
        &[0x02, 0x7F, 0xAA],
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    ] {
        let mut ops = Operations::new(bytes.len(), 0);
        assert_eq!(ops.next_op(bytes), Err(DeltaError::BadOperation), "{bytes:?}");
    }
}
