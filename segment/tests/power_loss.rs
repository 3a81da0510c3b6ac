//! Crash safety of segment installation, compaction and manifest updates: power is cut before
//! every single file operation of a scenario in turn, in each of `MemFs`'s crash modes, and the
//! disk that survives must open to the state before or after the operation in flight — never a
//! mix, never a quarantine, never a leftover temporary file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata_segment::{SegmentOptions, SegmentTier};
use strata_tiering::io::{CrashMode, Fs, PowerCutFs};
use strata_tiering::{Change, Entry, Key, KeyRange, Lsn, Tier, LATEST};

const DIR: &str = "/store/segments";

/// What a reader can observe: the flushed LSN and the readable value of every key.
type Observed = (Option<Lsn>, BTreeMap<Key, Entry>);

fn observe(tier: &SegmentTier) -> Observed {
    let values = tier
        .scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|(_, e)| !e.is_tombstone())
        .collect();
    (tier.flushed_lsn(), values)
}

fn k(prefix: &str, i: u64) -> Key {
    Key::new(format!("{prefix}{i:03}")).unwrap()
}

fn options() -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        ..SegmentOptions::default()
    }
}

/// Runs the scenario on `fs`. Returns, for each step, the operation count when it started and
/// what a reader observes once it finished. Step 0 is opening the empty directory.
fn scenario(fs: &PowerCutFs) -> Vec<(u64, Observed)> {
    let ops = || fs.ops();
    let shared: Arc<dyn Fs> = Arc::new(fs.clone());
    let mut steps = Vec::new();
    let start = ops();
    let tier = SegmentTier::open(Arc::clone(&shared), DIR, options()).unwrap();
    steps.push((start, observe(&tier)));
    let step = |steps: &mut Vec<(u64, Observed)>, f: &dyn Fn(&SegmentTier)| {
        let start = ops();
        f(&tier);
        steps.push((start, observe(&tier)));
    };
    step(&mut steps, &|t| {
        let a = (0..50).map(|i| (k("a", i), Entry::put(i + 1, "first")));
        t.ingest(a, Some(100)).unwrap();
    });
    step(&mut steps, &|t| {
        let b = (25..75).map(|i| (k("a", i), Entry::put(100 + i, "second")));
        t.ingest(b, Some(200)).unwrap();
    });
    step(&mut steps, &|t| {
        let mut batch: Vec<Change> = (0..10)
            .map(|i| Change::delete(k("a", i), 300 + i))
            .collect();
        batch.extend((0..10).map(|i| Change::put(k("b", i), 320 + i, "b")));
        t.apply(&batch).unwrap();
    });
    step(&mut steps, &|t| {
        t.set_oldest_snapshot(1_000);
        t.compact_all().unwrap();
    });
    step(&mut steps, &|t| {
        let d = (0..30).map(|i| (k("c", i), Entry::put(400 + i, "third")));
        t.ingest(d, Some(400)).unwrap();
    });
    step(&mut steps, &|t| {
        let e = (0..5).map(|i| (k("a", i * 10), Entry::put(500 + i, "fourth")));
        t.ingest(e, Some(500)).unwrap();
        t.compact().unwrap();
        t.compact_all().unwrap();
    });
    steps.push((ops() + 1, steps.last().unwrap().1.clone()));
    steps
}

#[test]
fn every_crash_point_leaves_the_old_or_the_new_state() {
    let reference = PowerCutFs::new(u64::MAX, CrashMode::DropUnsynced);
    let steps = scenario(&reference);
    let total = reference.ops();
    assert!(total > 60, "the scenario makes {total} file operations");
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::KeepPrefix { seed: 7 },
        CrashMode::GarbleTail { seed: 11 },
    ];
    for crash_at in 1..=total {
        // The step in flight at the crash: the last one started before the operation.
        let step = steps
            .iter()
            .rposition(|(start, _)| *start < crash_at)
            .unwrap();
        let before = if step == 0 {
            None
        } else {
            Some(&steps[step - 1].1)
        };
        let after = &steps[step].1;
        for mode in modes {
            let fs = PowerCutFs::new(crash_at, mode);
            scenario(&fs);
            let image = fs.image().unwrap();
            let tier = SegmentTier::open(Arc::new(image.clone()), DIR, options())
                .unwrap_or_else(|e| panic!("crash at op {crash_at} ({mode:?}): open failed: {e}"));
            let seen = observe(&tier);
            let empty: Observed = (None, BTreeMap::new());
            let old = before.unwrap_or(&empty);
            assert!(
                &seen == old || &seen == after,
                "crash at op {crash_at} ({mode:?}) during step {step}: neither the old nor the new state"
            );
            assert!(
                tier.health().is_healthy(),
                "crash at op {crash_at}: {}",
                tier.health()
            );
            let names = image.list_dir(Path::new(DIR)).unwrap();
            assert!(
                names.iter().all(|n| !n.ends_with(".tmp")),
                "crash at op {crash_at}: {names:?}"
            );
            let live: Vec<String> = tier
                .segments()
                .iter()
                .map(|s| s.path().file_name().unwrap().to_str().unwrap().to_owned())
                .collect();
            let on_disk: Vec<&String> = names.iter().filter(|n| n.ends_with(".seg")).collect();
            assert_eq!(
                on_disk.len(),
                live.len(),
                "crash at op {crash_at}: orphans {names:?}"
            );
            // The recovered tier takes writes again.
            tier.ingest(vec![(k("z", 0), Entry::put(10_000, "after"))], Some(10_000))
                .unwrap();
            assert_eq!(tier.flushed_lsn(), Some(10_000));
        }
    }
}
