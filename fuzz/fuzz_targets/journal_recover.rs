//! Structure-aware: the real journal writer saves a fuzz-chosen sequence of records into a
//! RAM flash, optionally losing power at a fuzz-chosen operation (which lands only part of
//! its bytes), then a fuzz-chosen region is damaged (erased to 0xFF, cleared to 0x00,
//! overwritten, or copied from elsewhere in the partition, as a stuck page or a torn
//! copy would), and the journal is loaded.
//!
//! Asserts: recovery never returns a value it did not write: each key's recovered value is
//! its initial one or one that was saved (attempted, for the save the power cut hit).
//! Keys are judged one by one: the journal keeps the newest good record per key, so a
//! damaged newer record of one key falls back to an older one of that key alone.
//! Without damage (only a power cut) the recovered values are the last ones saved, or,
//! for the key whose save was cut, that save's value or the one before.
#![no_main]

use arbitrary::Arbitrary;
use device_fw::ota::journal::{Journal, Progress};
use device_fw::ota::schedule::ScheduleRecord;
use device_fw::wire::ImageForm;
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::flash::{Cut, RamFlash, SECTOR};
use otactl_fuzz::run;

#[derive(Debug, Clone, Arbitrary)]
enum Op {
    Progress {
        seed: u8,
        size: u32,
        written: u32,
    },
    Clear,
    Failed(u8),
    Schedule {
        attempts: u32,
        failures: u16,
        day: u8,
        awake: u32,
    },
    /// The same record again, many times: fills sectors and makes the writer move on.
    Burst(u8),
}

#[derive(Debug, Arbitrary)]
enum Damage {
    Erase,
    Zero,
    Write(Vec<u8>),
    CopyFrom(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    sectors: u8,
    ops: Vec<Op>,
    cut: Option<(u16, u8)>,
    damage: Option<(u16, u8, Damage)>,
}

const VERSIONS: [&str; 5] = ["1.0.0", "1.4.2", "2.0.0-rc.1+build.7", "0.0.1", "10.20.30-alpha"];

#[derive(Debug, Default)]
struct Seen {
    progress: Vec<Option<Progress>>,
    failed: Vec<Option<String>>,
    schedule: Vec<ScheduleRecord>,
}

fn progress(seed: u8, size: u32, written: u32) -> Progress {
    let size = size.max(1);
    Progress {
        image_sha256: [seed; 32],
        slot: seed & 1,
        image_size: size,
        written: written.min(size),
        prefix_sha256: [seed.wrapping_mul(31); 32],
        form: [ImageForm::Raw, ImageForm::Compressed, ImageForm::Delta][usize::from(seed >> 1) % 3],
        fetched: written.min(size) / 2,
    }
}

fuzz_target!(|input: Input| {
    let sectors = 2 + usize::from(input.sectors % 3);
    let size = sectors * SECTOR;
    let j = Journal::new(0..size as u32).expect("aligned");
    let mut flash = RamFlash::new(size);
    if let Some((at, keep)) = input.cut {
        flash.cut = Some(Cut {
            at: u32::from(at % 2048),
            keep: usize::from(keep) * 4,
        });
    }
    let mut seen = Seen {
        progress: vec![None],
        failed: vec![None],
        schedule: vec![ScheduleRecord::default()],
    };
    // The key whose save the power cut hit, and what was saved before it.
    let mut ops = Vec::new();
    for op in input.ops.iter().take(64) {
        match op {
            Op::Burst(n) => {
                for _ in 0..(*n % 48) {
                    ops.push(Op::Clear);
                }
            }
            other => ops.push(other.clone()),
        }
    }
    // Enough to wrap a three-sector journal, few enough to keep a run fast.
    ops.truncate(160);
    let mut cut_hit = false;
    run(
        async {
            for op in &ops {
                if flash.cut.is_some_and(|c| flash.ops > c.at) {
                    break;
                }
                let r = match op {
                    Op::Progress { seed, size, written } => {
                        let p = progress(*seed, *size, *written);
                        seen.progress.push(Some(p));
                        j.save_progress(&mut flash, &p).await.map(|_| ())
                    }
                    Op::Clear => {
                        seen.progress.push(None);
                        j.clear_progress(&mut flash).await.map(|_| ())
                    }
                    Op::Failed(i) => {
                        let v = VERSIONS[usize::from(*i) % VERSIONS.len()];
                        seen.failed.push(Some(v.to_string()));
                        j.record_failed_version(&mut flash, v).await.map(|_| ())
                    }
                    Op::Schedule {
                        attempts,
                        failures,
                        day,
                        awake,
                    } => {
                        let rec = ScheduleRecord {
                            attempts: *attempts,
                            failures: *failures,
                            day_attempts: *day,
                            day_awake_s: *awake,
                        };
                        seen.schedule.push(rec);
                        j.save_schedule(&mut flash, &rec).await.map(|_| ())
                    }
                    Op::Burst(_) => unreachable!(),
                };
                if r.is_err() {
                    cut_hit = true;
                    break;
                }
            }
        },
        10,
    )
    .expect("RAM flash never waits");
    let damaged = input.damage.is_some();
    if let Some((off, len, how)) = &input.damage {
        let at = usize::from(*off) % size;
        let end = (at + usize::from(*len) + 1).min(size);
        match how {
            Damage::Erase => flash.bytes[at..end].fill(0xFF),
            Damage::Zero => flash.bytes[at..end].fill(0),
            Damage::Write(bytes) => {
                for (cell, b) in flash.bytes[at..end].iter_mut().zip(bytes.iter().cycle()) {
                    *cell = *b;
                }
            }
            Damage::CopyFrom(from) => {
                let from = usize::from(*from) % size;
                let n = (end - at).min(size - from);
                let src = flash.bytes[from..from + n].to_vec();
                flash.bytes[at..at + n].copy_from_slice(&src);
            }
        }
    }
    // Power is back.
    flash.cut = None;
    let state = run(async { j.load(&mut flash).await }, 10)
        .expect("RAM flash never waits")
        .expect("load on a working flash");
    assert!(
        seen.progress.contains(&state.progress),
        "recovered progress {:?} was never written",
        state.progress
    );
    let failed = state.failed_version.as_ref().map(|v| v.as_str().to_string());
    assert!(
        seen.failed.contains(&failed),
        "recovered failed version {failed:?} was never written"
    );
    assert!(
        seen.schedule.contains(&state.schedule),
        "recovered schedule {:?} was never written",
        state.schedule
    );
    if !damaged {
        // Only a power cut: the last value of every key, or for the key that was being
        // saved when the power went, the one before.
        let last_two = |n: usize| n.saturating_sub(if cut_hit { 2 } else { 1 });
        assert!(
            seen.progress[last_two(seen.progress.len())..].contains(&state.progress),
            "a power cut lost progress: got {:?}, saved {:?}",
            state.progress,
            seen.progress.last()
        );
        assert!(
            seen.failed[last_two(seen.failed.len())..].contains(&failed),
            "a power cut lost the failed version: got {failed:?}"
        );
        assert!(
            seen.schedule[last_two(seen.schedule.len())..].contains(&state.schedule),
            "a power cut lost the schedule: got {:?}",
            state.schedule
        );
    }
});
