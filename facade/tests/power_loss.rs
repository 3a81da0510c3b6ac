//! Power loss under the whole store. The WAL and the segments sit on a `PowerCutFs`; a
//! scenario of puts, deletes, batches, memtable flushes and compactions runs with the power
//! cut before each of its file operations in turn (WAL appends and fsyncs, segment writes and
//! installs, manifest updates, compaction outputs, file removals), in each crash mode by turn.
//! The store reopened on what survives must hold exactly the state before or after the
//! operation in flight: every acknowledged write, nothing half-applied, nothing invented.
//!
//! The git repository is not on the cut disk (libgit2 does its own I/O); its crash safety is
//! shown by the SIGKILL tests in `crash.rs` and in the gitsync crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata::tiering::clock::Clock;
use strata::wal::{CrashMode, Fs, PowerCutFs};
use strata::{Config, KeyRange, Store};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open_on(dir: &Path, fs: Arc<dyn Fs>, clock: &Arc<strata::tiering::clock::ManualClock>) -> Store {
    Store::builder(dir)
        .config(Config {
            memtable_flush_items: 1_000_000,
            ..Config::default()
        })
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .fs(fs)
        .open()
        .expect("open the store")
}

fn contents(store: &Store) -> Model {
    store
        .scan(&KeyRange::all())
        .unwrap()
        .map(|item| {
            let (key, value) = item.unwrap();
            (key.as_bytes().to_vec(), value.as_bytes().to_vec())
        })
        .collect()
}

/// Runs the scenario on `fs` in `dir`. Returns, for each step, the operation count when it
/// started and the state once it was acknowledged. Step 0 is opening the empty store.
fn scenario(dir: &Path, fs: &PowerCutFs) -> Vec<(u64, Model)> {
    let clock = common::clock();
    let store = open_on(dir, Arc::new(fs.clone()), &clock);
    let mut model = Model::new();
    let mut steps = vec![(0, model.clone())];
    let mut seed: u64 = 0x5eed;
    for i in 0..40u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (seed >> 33) % 10;
        let key = format!("k{:02}", (seed >> 40) % 12).into_bytes();
        let start = fs.ops();
        match pick {
            0..=4 => {
                let value = format!("v{i}").into_bytes();
                store.put(&key, value.as_slice()).unwrap();
                model.insert(key, value);
            }
            5 => {
                store.delete(&key).unwrap();
                model.remove(&key);
            }
            6 => {
                let mut batch = strata::Batch::new();
                for n in 0..3 {
                    let key = format!("b{:02}", (i + n) % 7).into_bytes();
                    let value = format!("batch{i}.{n}").into_bytes();
                    batch.put(&key, value.as_slice());
                    model.insert(key, value);
                }
                store.write(&batch).unwrap();
            }
            7 | 8 => {
                store.flush().unwrap();
            }
            _ => {
                store.compact().unwrap();
            }
        }
        steps.push((start, model.clone()));
    }
    store.drop_without_shutdown();
    steps
}

#[test]
fn every_cut_reopens_to_the_state_before_or_after_the_operation_in_flight() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = PowerCutFs::new(u64::MAX, CrashMode::DropUnsynced);
    let steps = scenario(reference_dir.path(), &reference);
    let total = reference.ops();
    let last = &steps.last().unwrap().1;
    assert!(
        total > 100,
        "the scenario makes only {total} file operations"
    );
    assert!(last.len() > 5, "the scenario leaves too little: {last:?}");
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::KeepPrefix { seed: 7 },
        CrashMode::GarbleTail { seed: 11 },
        CrashMode::ScatterPages { seed: 13 },
    ];
    for cut in 1..=total {
        let mode = modes[(cut % 4) as usize];
        let step = steps.iter().rposition(|(start, _)| *start < cut).unwrap();
        let after = &steps[step].1;
        let before = &steps[step.saturating_sub(1)].1;

        let dir = tempfile::tempdir().unwrap();
        let fs = PowerCutFs::new(cut, mode);
        scenario(dir.path(), &fs);
        let image = fs.image().unwrap();
        let clock = common::clock();
        let store = open_on(dir.path(), Arc::new(image.clone()), &clock);
        let seen = contents(&store);
        assert!(
            &seen == before || &seen == after,
            "cut before op {cut} ({mode:?}) in step {step}: {seen:?}\nbefore {before:?}\nafter {after:?}"
        );
        // The recovered store takes writes, flushes, and reopens with them and no damage
        // (the first open may report the torn tail it cut).
        store.put("after", "cut").unwrap();
        store.flush().unwrap();
        store.put("later", "still").unwrap();
        store.close().unwrap();
        let store = open_on(dir.path(), Arc::new(image), &clock);
        let mut expected = seen.clone();
        expected.insert(b"after".to_vec(), b"cut".to_vec());
        expected.insert(b"later".to_vec(), b"still".to_vec());
        assert_eq!(contents(&store), expected, "cut before op {cut} ({mode:?})");
        let report = store.verify().unwrap();
        assert!(
            report.is_clean(),
            "cut before op {cut} ({mode:?}): {report:?}"
        );
        store.close().unwrap();
    }
}
