//! `MemoryTier` against a plain model: random writes at increasing seqnos, checked by random
//! snapshot reads and prefix scans.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_tiering::{Change, Entry, Key, KeyRange, MemoryTier, SeqNo, Tier, LATEST};

/// Every version of every key, oldest first; `None` is a deletion.
type Model = BTreeMap<Vec<u8>, Vec<(SeqNo, Option<Vec<u8>>)>>;

#[derive(Clone, Debug)]
enum Op {
    /// Writes applied as one batch; `None` deletes.
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// A read of a key at a snapshot given as a fraction of the seqnos used so far.
    Get(Vec<u8>, Snap),
    /// A prefix scan at a snapshot.
    Scan(Vec<u8>, Snap),
}

#[derive(Clone, Copy, Debug)]
enum Snap {
    Latest,
    /// A point in `0..=next seqno`, scaled from this per-mille figure.
    At(u16),
}

/// Short keys over a tiny alphabet so that keys collide, share prefixes and hit 0x00 / 0xFF.
fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![0x00u8, 0x01, b'a', b'b', 0xFE, 0xFF]),
        1..4,
    )
}

fn snap() -> impl Strategy<Value = Snap> {
    prop_oneof![1 => Just(Snap::Latest), 3 => (0u16..=1000).prop_map(Snap::At)]
}

fn op() -> impl Strategy<Value = Op> {
    let write = (
        key_bytes(),
        prop::option::weighted(0.75, prop::collection::vec(any::<u8>(), 0..6)),
    );
    prop_oneof![
        3 => prop::collection::vec(write, 1..5).prop_map(Op::Batch),
        2 => (key_bytes(), snap()).prop_map(|(k, s)| Op::Get(k, s)),
        1 => (prop::collection::vec(prop::sample::select(vec![0x00u8, b'a', 0xFF]), 0..3), snap())
            .prop_map(|(p, s)| Op::Scan(p, s)),
    ]
}

fn model_entry(versions: &[(SeqNo, Option<Vec<u8>>)], snapshot: SeqNo) -> Option<Entry> {
    versions
        .iter()
        .rev()
        .find(|(s, _)| *s <= snapshot)
        .map(|(s, v)| match v {
            Some(v) => Entry::put(*s, v.clone()),
            None => Entry::tombstone(*s),
        })
}

fn resolve(snap: Snap, next: SeqNo) -> SeqNo {
    match snap {
        Snap::Latest => LATEST,
        Snap::At(per_mille) => next * SeqNo::from(per_mille) / 1000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_tier_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let tier = MemoryTier::new();
        let mut model = Model::new();
        let mut next: SeqNo = 1;
        for op in ops {
            match op {
                Op::Batch(writes) => {
                    let batch: Vec<Change> = writes
                        .iter()
                        .map(|(k, v)| {
                            let seqno = next;
                            next += 1;
                            model.entry(k.clone()).or_default().push((seqno, v.clone()));
                            let key = Key::new(k).unwrap();
                            match v {
                                Some(v) => Change::put(key, seqno, v.clone()),
                                None => Change::delete(key, seqno),
                            }
                        })
                        .collect();
                    tier.apply(&batch).unwrap();
                }
                Op::Get(k, s) => {
                    let snapshot = resolve(s, next);
                    let want = model.get(&k).and_then(|v| model_entry(v, snapshot));
                    prop_assert_eq!(tier.get(&k, snapshot).unwrap(), want, "get at {}", snapshot);
                }
                Op::Scan(prefix, s) => {
                    let snapshot = resolve(s, next);
                    let want: Vec<(Vec<u8>, Entry)> = model
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .filter_map(|(k, v)| Some((k.clone(), model_entry(v, snapshot)?)))
                        .collect();
                    let got: Vec<(Vec<u8>, Entry)> = tier
                        .scan(&KeyRange::prefix(&prefix), snapshot)
                        .unwrap()
                        .map(|item| {
                            let (k, e) = item.unwrap();
                            (k.as_bytes().to_vec(), e)
                        })
                        .collect();
                    prop_assert_eq!(got, want, "scan of prefix {:?} at {}", prefix, snapshot);
                }
            }
        }
        let versions: usize = model.values().map(Vec::len).sum();
        let live = model
            .values()
            .filter(|v| v.last().is_some_and(|(_, v)| v.is_some()))
            .count();
        let stats = tier.stats();
        prop_assert_eq!(stats.entries, versions as u64);
        prop_assert_eq!(stats.live_keys, Some(live as u64));
    }
}
