//! The journal's recovery scan (`Journal::load`) over arbitrary flash contents: either raw
//! fuzz bytes at the start of each of its four sectors, or a journal the real writer made
//! with fuzz-chosen patches over it.
//!
//! Input: mode (1 byte); raw: the bytes, spread over the sectors; patched: pairs of
//! `offset (2), length (1), bytes`.
//!
//! Asserts: no panic and no error on a flash that works; it never erases or programs
//! outside its partition (guard sectors on both sides stay untouched); what it returns is
//! within the record limits; afterwards the journal works: a progress saved then loads
//! back exactly, with no reset reported.
#![no_main]

use std::cell::RefCell;

use device_fw::ota::journal::{Journal, Progress, VERSION_MAX};
use device_fw::ota::schedule::ScheduleRecord;
use device_fw::wire::ImageForm;
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::flash::{RamFlash, SECTOR};
use otactl_fuzz::{Bytes, run};

const SECTORS: usize = 4;
/// One guard sector before and one after the partition.
const START: usize = SECTOR;

fn journal() -> Journal {
    Journal::new(START as u32..(START + SECTORS * SECTOR) as u32).expect("aligned")
}

fn progress(seed: u8, written: u32) -> Progress {
    Progress {
        image_sha256: [seed; 32],
        slot: seed % 2,
        image_size: 233_040,
        written: written % 233_041,
        prefix_sha256: [seed ^ 0x5a; 32],
        form: [ImageForm::Raw, ImageForm::Compressed, ImageForm::Delta][usize::from(seed >> 1) % 3],
        fetched: written % 233_041,
    }
}

/// The flash after `saves` saves by the real writer. The writer is deterministic, so each
/// of the 128 states is made once and copied afterwards: making one anew took most of an
/// input's time (every save re-scans the journal), leaving little for the scan under test.
fn written_journal(saves: usize) -> Vec<u8> {
    thread_local! {
        static MADE: RefCell<Vec<Option<Vec<u8>>>> = RefCell::new(vec![None; 128]);
    }
    MADE.with_borrow_mut(|made| {
        made[saves]
            .get_or_insert_with(|| {
                let mut flash = RamFlash::new((SECTORS + 2) * SECTOR);
                let j = journal();
                run(
                    async {
                        for i in 0..saves {
                            let _ = j.save_progress(&mut flash, &progress(i as u8, (i as u32) * 4096)).await;
                            if i % 7 == 0 {
                                let _ = j.record_failed_version(&mut flash, "1.4.2-rc.1").await;
                            }
                            if i % 11 == 0 {
                                let rec = ScheduleRecord {
                                    attempts: i as u32,
                                    ..ScheduleRecord::default()
                                };
                                let _ = j.save_schedule(&mut flash, &rec).await;
                            }
                        }
                    },
                    10,
                )
                .expect("RAM flash never waits");
                flash.bytes
            })
            .clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let mut flash = RamFlash::new((SECTORS + 2) * SECTOR);
    let j = journal();
    if mode & 1 == 0 {
        let raw = b.rest();
        let per = raw.len().div_ceil(SECTORS).max(1);
        for (i, part) in raw.chunks(per).enumerate() {
            let at = START + i * SECTOR;
            let n = part.len().min(SECTOR);
            flash.bytes[at..at + n].copy_from_slice(&part[..n]);
        }
    } else {
        // A journal that has moved on through a few sectors, then damage.
        let saves = usize::from(b.u8() % 128);
        flash.bytes.copy_from_slice(&written_journal(saves));
        while !b.rest_is_empty() {
            let off = usize::from(b.u16()) % (SECTORS * SECTOR);
            let len = usize::from(b.u8());
            let bytes = b.take(len);
            let at = START + off;
            let end = (at + bytes.len()).min(START + SECTORS * SECTOR);
            flash.bytes[at..end].copy_from_slice(&bytes[..end - at]);
        }
    }
    flash.touched = None;
    let guard_before = flash.bytes[..START].to_vec();
    let guard_after = flash.bytes[START + SECTORS * SECTOR..].to_vec();
    run(
        async {
            let state = j.load(&mut flash).await.expect("load on a working flash");
            if let Some(p) = state.progress {
                assert!(p.written <= p.image_size, "progress past its image");
            }
            assert!(state.failed_version.as_ref().is_none_or(|v| v.len() <= VERSION_MAX));
            if let Some((lo, hi)) = flash.touched {
                assert!(
                    lo >= START && hi <= START + SECTORS * SECTOR,
                    "touched {lo:#x}..{hi:#x}"
                );
            }
            let p = progress(0xA5, 12_345);
            j.save_progress(&mut flash, &p).await.expect("save after recovery");
            let after = j.load(&mut flash).await.expect("load after save");
            assert_eq!(after.progress, Some(p), "a saved progress did not load back");
            assert_eq!(after.reset, None, "a reset reported after the journal was repaired");
            assert_eq!(
                after.failed_version, state.failed_version,
                "a save lost the failed version"
            );
            assert_eq!(after.schedule, state.schedule, "a save lost the schedule");
        },
        10,
    )
    .expect("RAM flash never waits");
    assert_eq!(
        flash.bytes[..START],
        guard_before[..],
        "guard sector before the journal changed"
    );
    assert_eq!(
        flash.bytes[START + SECTORS * SECTOR..],
        guard_after[..],
        "guard sector after the journal changed"
    );
});
