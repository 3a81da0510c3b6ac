//! proptest: random puts, deletes, ingests (flushes with an LSN), `apply` batches, compactions,
//! GC horizons, clean reopens and power losses, against a model that keeps every version in a
//! `BTreeMap`.
//!
//! Without a GC horizon the tier must answer every get and scan, at every snapshot, exactly as
//! the model does. With one, it must agree at every snapshot at or above the horizon on what is
//! readable (a tombstone the tier dropped at the bottom reads as absent: both mean "no value").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use strata_segment::{SegmentOptions, SegmentTier, WriterOptions};
use strata_tiering::io::{CrashMode, Fs, MemFs};
use strata_tiering::{Change, Entry, Key, KeyRange, SeqNo, Tier, LATEST};

const DIR: &str = "/store/segments";

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    /// Flush the buffered changes with `ingest` and the current seqno as flushed LSN.
    Ingest,
    /// Flush the buffered changes with `Tier::apply`.
    Apply,
    Compact,
    CompactAll,
    /// Set the GC horizon this many seqnos below the latest.
    Horizon(u8),
    Reopen,
    PowerLoss,
    Check(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..24, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..24).prop_map(Op::Delete),
        3 => Just(Op::Ingest),
        2 => Just(Op::Apply),
        1 => Just(Op::Compact),
        1 => Just(Op::CompactAll),
        1 => any::<u8>().prop_map(Op::Horizon),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerLoss),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Check(a, b)),
    ]
}

/// Keys of several lengths, some sharing prefixes, so blocks split at varied places.
fn key(k: u8) -> Key {
    let text = match k % 3 {
        0 => format!("k{k:02}"),
        1 => format!("k{k:02}/{}", "x".repeat(usize::from(k))),
        _ => format!("k{:02}", k / 2),
    };
    Key::new(text).unwrap()
}

fn options(background: bool) -> SegmentOptions {
    SegmentOptions {
        writer: WriterOptions {
            block_size: 256,
            ..WriterOptions::default()
        },
        background_compaction: background,
        ..SegmentOptions::default()
    }
}

#[derive(Default)]
struct Model {
    versions: BTreeMap<Key, BTreeMap<SeqNo, Entry>>,
    horizon: Option<SeqNo>,
}

impl Model {
    fn get(&self, k: &Key, snapshot: SeqNo) -> Option<Entry> {
        self.versions
            .get(k)
            .and_then(|v| v.range(..=snapshot).next_back().map(|(_, e)| e.clone()))
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Vec<(Key, Entry)> {
        self.versions
            .iter()
            .filter(|(k, _)| range.contains(k.as_bytes()))
            .filter_map(|(k, _)| self.get(k, snapshot).map(|e| (k.clone(), e)))
            .collect()
    }

    /// What a reader can see: with a horizon, tombstones read as absent.
    fn readable(&self, entry: Option<Entry>) -> Option<Entry> {
        match self.horizon {
            Some(_) => entry.filter(|e| !e.is_tombstone()),
            None => entry,
        }
    }
}

fn check(tier: &SegmentTier, model: &Model, seqno: SeqNo, a: u8, b: u8) {
    let floor = model.horizon.unwrap_or(0);
    let snapshots = [
        LATEST,
        seqno,
        floor + u64::from(a) % (seqno.saturating_sub(floor) + 1),
        floor,
    ];
    for snapshot in snapshots {
        for k in 0..24 {
            let k = key(k);
            let got = model.readable(tier.get(k.as_bytes(), snapshot).unwrap());
            let want = model.readable(model.get(&k, snapshot));
            assert_eq!(got, want, "get {k:?} at {snapshot}");
        }
        let (lo, hi) = (key(a % 24), key(b % 24));
        let ranges = [
            KeyRange::all(),
            KeyRange::new(Bound::Included(lo.clone()), Bound::Excluded(hi.clone())),
            KeyRange::new(Bound::Excluded(lo), Bound::Included(hi)),
            KeyRange::prefix(b"k1"),
        ];
        for range in ranges {
            let got: Vec<(Key, Entry)> = tier
                .scan(&range, snapshot)
                .unwrap()
                .map(|r| r.unwrap())
                .filter(|(_, e)| model.horizon.is_none() || !e.is_tombstone())
                .collect();
            let want: Vec<(Key, Entry)> = model
                .scan(&range, snapshot)
                .into_iter()
                .filter(|(_, e)| model.horizon.is_none() || !e.is_tombstone())
                .collect();
            assert_eq!(got, want, "scan {range:?} at {snapshot}");
        }
    }
}

fn run(ops: Vec<Op>, background: bool) {
    let mut fs = MemFs::new();
    let open = |fs: &MemFs| {
        SegmentTier::open(Arc::new(fs.clone()), Path::new(DIR), options(background)).unwrap()
    };
    let mut tier = open(&fs);
    let mut model = Model::default();
    let mut pending: Vec<Change> = Vec::new();
    let mut seqno: SeqNo = 0;
    let mut flushed = None;
    for op in ops {
        match op {
            Op::Put(k, v) => {
                seqno += 1;
                pending.push(Change::put(key(k), seqno, v));
            }
            Op::Delete(k) => {
                seqno += 1;
                pending.push(Change::delete(key(k), seqno));
            }
            Op::Ingest | Op::Apply => {
                for c in &pending {
                    model
                        .versions
                        .entry(c.key.clone())
                        .or_default()
                        .insert(c.entry.seqno, c.entry.clone());
                }
                if matches!(op, Op::Apply) {
                    tier.apply(&pending).unwrap();
                } else {
                    // A frozen memtable hands over its contents in segment order.
                    let mut sorted: Vec<(Key, Entry)> = pending
                        .iter()
                        .map(|c| (c.key.clone(), c.entry.clone()))
                        .collect();
                    sorted.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.seqno.cmp(&x.1.seqno)));
                    tier.ingest(sorted, Some(seqno)).unwrap();
                    flushed = flushed.max(Some(seqno)).filter(|s| *s > 0);
                }
                pending.clear();
            }
            Op::Compact => {
                tier.compact().unwrap();
            }
            Op::CompactAll => {
                tier.compact_all().unwrap();
            }
            Op::Horizon(back) => {
                let h = seqno.saturating_sub(u64::from(back) % 8);
                let h = h.max(model.horizon.unwrap_or(0));
                model.horizon = Some(h);
                tier.set_oldest_snapshot(h);
            }
            Op::Reopen | Op::PowerLoss => {
                drop(tier);
                if matches!(op, Op::PowerLoss) {
                    // Every ingest and apply is durable when it returns: nothing may be lost.
                    fs = fs.crash(CrashMode::GarbleTail { seed: seqno });
                }
                tier = open(&fs);
                if let Some(h) = model.horizon {
                    tier.set_oldest_snapshot(h);
                }
                assert_eq!(tier.flushed_lsn(), flushed, "flushed LSN after reopen");
                assert!(tier.health().is_healthy(), "{}", tier.health());
                let names = fs.list_dir(Path::new(DIR)).unwrap();
                assert!(
                    names.iter().all(|n| !n.ends_with(".tmp")),
                    "temporary files left: {names:?}"
                );
            }
            Op::Check(a, b) => check(&tier, &model, seqno, a, b),
        }
    }
    check(&tier, &model, seqno, 3, 17);
    tier.compact_all().unwrap();
    check(&tier, &model, seqno, 5, 11);
    assert!(tier.health().is_healthy(), "{}", tier.health());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tier_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, false);
    }

    #[test]
    fn tier_matches_model_with_background_compaction(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, true);
    }
}
