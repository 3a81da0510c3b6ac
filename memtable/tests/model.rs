//! A proptest model of the hot tier: random writes, snapshot reads, scans, freezes and releases,
//! checked against plain `BTreeMap`s.
//!
//! The model keeps one map per memtable (the active one and each frozen one not yet released),
//! since releasing a frozen memtable removes exactly its versions from the tier. A read at a
//! snapshot takes, across the maps, the version with the highest seqno not above the snapshot;
//! on equal seqnos the newer memtable wins, and within one memtable the last write of a seqno.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use proptest::prelude::*;
use strata_memtable::{FrozenMemtable, HotTier};
use strata_tiering::{Change, Entry, Key, KeyRange, SeqNo, Tier, LATEST};

type Layer = BTreeMap<Vec<u8>, BTreeMap<SeqNo, Entry>>;

#[derive(Default)]
struct Model {
    /// Frozen layers, oldest first, each with the tier's handle on it.
    frozen: Vec<(Layer, Arc<FrozenMemtable>)>,
    active: Layer,
}

impl Model {
    fn apply(&mut self, changes: &[(Vec<u8>, Entry)]) {
        for (key, entry) in changes {
            self.active
                .entry(key.clone())
                .or_default()
                .insert(entry.seqno, entry.clone());
        }
    }

    /// The layers newest first.
    fn layers(&self) -> impl Iterator<Item = &Layer> {
        std::iter::once(&self.active).chain(self.frozen.iter().rev().map(|(l, _)| l))
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Entry> {
        let mut best: Option<&Entry> = None;
        for layer in self.layers() {
            let found = layer
                .get(key)
                .and_then(|versions| versions.range(..=snapshot).next_back())
                .map(|(_, e)| e);
            if let Some(e) = found {
                if best.is_none_or(|b| e.seqno > b.seqno) {
                    best = Some(e);
                }
            }
        }
        best.cloned()
    }

    fn scan(&self, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, snapshot: SeqNo) -> Vec<(Key, Entry)> {
        let keys: std::collections::BTreeSet<&Vec<u8>> =
            self.layers().flat_map(|layer| layer.keys()).collect();
        keys.into_iter()
            .filter(|k| within(k, lo, hi))
            .filter_map(|k| Some((Key::new(k).unwrap(), self.get(k, snapshot)?)))
            .collect()
    }

    fn versions(&self) -> u64 {
        self.layers()
            .flat_map(|layer| layer.values())
            .map(|v| v.len() as u64)
            .sum()
    }
}

fn within(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

/// Flattens a layer the way `FrozenMemtable::iter` must: keys ascending, seqnos descending.
fn flattened(layer: &Layer) -> Vec<(Key, Entry)> {
    layer
        .iter()
        .flat_map(|(k, versions)| {
            versions
                .values()
                .rev()
                .map(move |e| (Key::new(k).unwrap(), e.clone()))
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    /// Writes at the next seqnos; `None` values are deletions.
    Batch(Vec<(Vec<u8>, Option<u8>)>),
    /// A write arriving late, with a seqno some way below the current one (possibly one already
    /// used for the key, with other content).
    Late(Vec<u8>, Option<u8>, SeqNo),
    /// A write reusing the key and seqno of an earlier write (picked modulo how many there
    /// were), usually with other content: replays and rewrites, within and across memtables.
    Rewrite(usize, Option<u8>),
    Get(Vec<u8>, SeqNo),
    Scan(Bound<Vec<u8>>, Bound<Vec<u8>>, SeqNo),
    Prefix(Vec<u8>, SeqNo),
    Freeze,
    /// Releases the frozen memtable at this position (modulo how many there are).
    Release(usize),
}

/// Short keys over a tiny alphabet with extreme bytes, so prefixes and bounds collide often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0x00u8, b'a', b'b', 0xFF]), 1..=3)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

/// A snapshot as an offset back from the current seqno; 0 means `LATEST`.
fn back() -> impl Strategy<Value = SeqNo> {
    prop_oneof![Just(0), 1..40u64]
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop::option::weighted(0.8, any::<u8>());
    prop_oneof![
        6 => prop::collection::vec((key(), value.clone()), 1..6).prop_map(Op::Batch),
        1 => (key(), value.clone(), 1..20u64).prop_map(|(k, v, back)| Op::Late(k, v, back)),
        1 => (any::<usize>(), value).prop_map(|(i, v)| Op::Rewrite(i, v)),
        4 => (key(), back()).prop_map(|(k, s)| Op::Get(k, s)),
        2 => (bound(), bound(), back()).prop_map(|(lo, hi, s)| Op::Scan(lo, hi, s)),
        2 => (prop::collection::vec(prop::sample::select(vec![0x00u8, b'a', 0xFF]), 0..3), back())
            .prop_map(|(p, s)| Op::Prefix(p, s)),
        1 => Just(Op::Freeze),
        1 => any::<usize>().prop_map(Op::Release),
    ]
}

fn entry(seqno: SeqNo, value: Option<u8>) -> Entry {
    match value {
        Some(v) => Entry::put(seqno, vec![v; usize::from(v % 5)]),
        None => Entry::tombstone(seqno),
    }
}

fn scan(tier: &HotTier, range: &KeyRange, snapshot: SeqNo) -> Vec<(Key, Entry)> {
    tier.scan(range, snapshot)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hot_tier_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let tier = HotTier::new();
        let mut model = Model::default();
        let mut seqno: SeqNo = 100;
        let mut history: Vec<(Vec<u8>, SeqNo)> = Vec::new();
        let snapshot_at = |seqno: SeqNo, back: SeqNo| if back == 0 { LATEST } else { seqno.saturating_sub(back) };
        for op in ops {
            match op {
                Op::Batch(writes) => {
                    let changes: Vec<(Vec<u8>, Entry)> = writes
                        .into_iter()
                        .map(|(k, v)| {
                            seqno += 1;
                            (k, entry(seqno, v))
                        })
                        .collect();
                    let batch: Vec<Change> = changes
                        .iter()
                        .map(|(k, e)| Change::new(Key::new(k).unwrap(), e.clone()))
                        .collect();
                    tier.apply(&batch).unwrap();
                    history.extend(changes.iter().map(|(k, e)| (k.clone(), e.seqno)));
                    model.apply(&changes);
                }
                Op::Late(k, v, back) => {
                    let change = (k, entry(seqno.saturating_sub(back), v));
                    tier.apply(&[Change::new(Key::new(&change.0).unwrap(), change.1.clone())]).unwrap();
                    model.apply(&[change]);
                }
                Op::Rewrite(i, v) => {
                    if !history.is_empty() {
                        let (k, s) = history[i % history.len()].clone();
                        let change = (k, entry(s, v));
                        tier.apply(&[Change::new(Key::new(&change.0).unwrap(), change.1.clone())]).unwrap();
                        model.apply(&[change]);
                    }
                }
                Op::Get(k, back) => {
                    let snapshot = snapshot_at(seqno, back);
                    prop_assert_eq!(tier.get(&k, snapshot).unwrap(), model.get(&k, snapshot), "get {:?} at {}", k, snapshot);
                }
                Op::Scan(lo, hi, back) => {
                    let snapshot = snapshot_at(seqno, back);
                    let range = KeyRange::new(
                        lo.clone().map(|k| Key::new(k).unwrap()),
                        hi.clone().map(|k| Key::new(k).unwrap()),
                    );
                    prop_assert_eq!(scan(&tier, &range, snapshot), model.scan(&lo, &hi, snapshot), "scan {:?} at {}", range, snapshot);
                }
                Op::Prefix(prefix, back) => {
                    let snapshot = snapshot_at(seqno, back);
                    let want: Vec<(Key, Entry)> = model
                        .scan(&Bound::Unbounded, &Bound::Unbounded, snapshot)
                        .into_iter()
                        .filter(|(k, _)| k.as_bytes().starts_with(&prefix))
                        .collect();
                    prop_assert_eq!(scan(&tier, &KeyRange::prefix(&prefix), snapshot), want, "prefix {:?}", prefix);
                }
                Op::Freeze => {
                    let active = std::mem::take(&mut model.active);
                    match tier.freeze() {
                        None => prop_assert!(active.is_empty()),
                        Some(frozen) => {
                            prop_assert_eq!(frozen.iter().collect::<Vec<_>>(), flattened(&active));
                            prop_assert_eq!(frozen.len(), active.values().map(|v| v.len() as u64).sum::<u64>());
                            let seqnos = active.values().flat_map(|v| v.keys().copied());
                            prop_assert_eq!(frozen.min_seqno(), seqnos.clone().min());
                            prop_assert_eq!(frozen.max_seqno(), seqnos.max());
                            model.frozen.push((active, frozen));
                        }
                    }
                }
                Op::Release(i) => {
                    if !model.frozen.is_empty() {
                        let (_, frozen) = model.frozen.remove(i % model.frozen.len());
                        prop_assert!(tier.release(&frozen));
                        prop_assert!(!tier.release(&frozen));
                    }
                }
            }
            prop_assert_eq!(tier.stats().entries, model.versions());
        }
        // A last full comparison at every snapshot the run touched.
        for snapshot in (90..=seqno + 1).chain([LATEST]) {
            prop_assert_eq!(
                scan(&tier, &KeyRange::all(), snapshot),
                model.scan(&Bound::Unbounded, &Bound::Unbounded, snapshot)
            );
        }
    }
}
