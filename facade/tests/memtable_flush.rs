//! A frozen memtable flushed into a warm segment: every version arrives, the flushed LSN is
//! recorded with it, and reads through the warm tier see what the hot tier held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_memtable::HotTier;
use strata_segment::{SegmentOptions, SegmentTier};
use strata_tiering::io::StdFs;
use strata_tiering::{Change, Entry, Key, KeyRange, Tier, LATEST};

#[test]
fn a_frozen_memtable_becomes_a_segment_with_its_flushed_lsn() {
    let hot = HotTier::new();
    let mut seqno = 0;
    for round in 0..3 {
        let batch: Vec<Change> = (0..500)
            .map(|i| {
                seqno += 1;
                let key = Key::new(format!("key{:04}", i % 300)).unwrap();
                let entry = if i % 7 == 0 && round == 2 {
                    Entry::tombstone(seqno)
                } else {
                    Entry::put(seqno, format!("v{seqno}"))
                };
                Change { key, entry }
            })
            .collect();
        hot.apply(&batch).unwrap();
    }
    let expected: Vec<(Key, Entry)> = hot
        .scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();

    let frozen = hot.freeze().expect("the memtable holds data");
    let dir = tempfile::tempdir().unwrap();
    let warm = SegmentTier::open(
        Arc::new(StdFs),
        dir.path().join("segments"),
        SegmentOptions::default(),
    )
    .unwrap();
    warm.ingest(frozen.iter(), frozen.max_seqno()).unwrap();
    assert!(hot.release(&frozen));
    assert_eq!(warm.flushed_lsn(), Some(seqno));

    let flushed: Vec<(Key, Entry)> = warm
        .scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        flushed, expected,
        "the warm tier answers as the hot tier did"
    );
    // Older versions came along too: a snapshot read below the last round still works.
    let old = warm.get(b"key0000", 600).unwrap().unwrap();
    assert!(old.seqno <= 600 && !old.is_tombstone());
}
