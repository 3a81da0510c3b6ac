//! Archival markers: `evict` makes the warm tier stop answering for versions the cold tier now
//! holds, leaves newer versions alone, survives a reopen, and lets compaction reclaim the
//! space; tombstones stay at the bottom when the owner says a lower tier needs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_segment::{CompactionOptions, SegmentOptions, SegmentTier};
use strata_tiering::io::{Fs, StdFs};
use strata_tiering::{Change, Entry, Key, KeyRange, Tier, LATEST};

fn options(drop_bottom_tombstones: bool) -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        compaction: CompactionOptions {
            drop_bottom_tombstones,
            ..CompactionOptions::default()
        },
        ..SegmentOptions::default()
    }
}

fn key(name: &str) -> Key {
    Key::new(name).unwrap()
}

fn keys(tier: &SegmentTier, snapshot: u64) -> Vec<String> {
    tier.scan(&KeyRange::all(), snapshot)
        .unwrap()
        .map(|r| String::from_utf8(r.unwrap().0.as_bytes().to_vec()).unwrap())
        .collect()
}

fn change(name: &str, entry: Entry) -> Change {
    Change::new(key(name), entry)
}

#[test]
fn evicted_versions_read_as_absent_and_newer_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let tier = SegmentTier::open(Arc::clone(&fs), dir.path(), options(true)).unwrap();
    tier.ingest(
        vec![
            (key("a"), Entry::put(1, "a1")),
            (key("b"), Entry::put(2, "b2")),
            (key("c"), Entry::tombstone(3)),
        ],
        Some(3),
    )
    .unwrap();
    tier.ingest(vec![(key("a"), Entry::put(5, "a5"))], Some(5))
        .unwrap();
    let before = tier.stats().bytes;

    // a@5 and c@3 are archived; b is archived at a stale seqno, so its newer warm version
    // must stay.
    tier.evict(&[
        change("a", Entry::put(5, "a5")),
        change("b", Entry::put(1, "b-old")),
        change("c", Entry::tombstone(3)),
    ])
    .unwrap()
    .expect("a marker segment");

    assert_eq!(tier.get(b"a", LATEST).unwrap(), None);
    assert_eq!(tier.get(b"c", LATEST).unwrap(), None);
    assert_eq!(tier.get(b"b", LATEST).unwrap(), Some(Entry::put(2, "b2")));
    assert_eq!(keys(&tier, LATEST), ["b"]);
    // A snapshot taken before the archived version still reads what it read.
    assert_eq!(tier.get(b"a", 4).unwrap(), Some(Entry::put(1, "a1")));
    // c's tombstone at 3 is archived too, so at 4 warm no longer answers for c either.
    assert_eq!(keys(&tier, 4), ["a", "b"]);
    assert_eq!(keys(&tier, 2), ["a", "b"]);
    assert_eq!(tier.segment_stats().archived, 3);
    // The reported size leaves out what the markers stand for (key and value bytes).
    assert_eq!(tier.segment_stats().archived_unreclaimed_bytes, 3 + 6 + 1);
    let files: u64 = tier.segments().iter().map(|s| s.file_len()).sum();
    assert!(files > before);
    assert_eq!(tier.stats().bytes, files - 10);

    // A newer write hides the marker again.
    tier.ingest(vec![(key("a"), Entry::put(9, "a9"))], Some(9))
        .unwrap();
    assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::put(9, "a9")));
    drop(tier);

    let tier = SegmentTier::open(fs, dir.path(), options(true)).unwrap();
    assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::put(9, "a9")));
    assert_eq!(tier.get(b"c", LATEST).unwrap(), None);
    assert_eq!(keys(&tier, LATEST), ["a", "b"]);
}

#[test]
fn compaction_reclaims_archived_versions_even_without_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let tier = SegmentTier::open(Arc::clone(&fs), dir.path(), options(false)).unwrap();
    let big = "x".repeat(1_000);
    let entries: Vec<(Key, Entry)> = (0..200u64)
        .map(|i| (key(&format!("k{i:04}")), Entry::put(i + 1, big.clone())))
        .collect();
    tier.ingest(entries.clone(), Some(200)).unwrap();
    let archived: Vec<Change> = entries[..150]
        .iter()
        .map(|(k, e)| Change::new(k.clone(), e.clone()))
        .collect();
    tier.evict(&archived).unwrap();
    assert_eq!(tier.segment_stats().archived_unreclaimed_bytes, 150 * 1_005);

    tier.compact_all().unwrap();
    // No horizon is set: only the archived copies go, and the markers stay to hide them from
    // nothing (they are harmless) until a horizon lets the bottom merge drop them.
    assert_eq!(keys(&tier, LATEST).len(), 50);
    let stats = tier.segment_stats();
    assert_eq!(stats.archived_unreclaimed_bytes, 0);
    assert!(
        tier.stats().bytes < 60 * 1_005,
        "archived values were not reclaimed: {} bytes",
        tier.stats().bytes
    );

    tier.set_oldest_snapshot(LATEST);
    tier.compact_all().unwrap();
    let stats = tier.segment_stats();
    assert_eq!(stats.entries, 50, "the markers are gone at the bottom");
    assert_eq!(tier.get(b"k0000", LATEST).unwrap(), None);
    assert_eq!(
        tier.get(b"k0199", LATEST).unwrap(),
        Some(Entry::put(200, big))
    );
}

#[test]
fn tombstones_stay_at_the_bottom_when_a_lower_tier_needs_them() {
    for drop_bottom_tombstones in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let tier = SegmentTier::open(fs, dir.path(), options(drop_bottom_tombstones)).unwrap();
        tier.ingest(vec![(key("a"), Entry::put(1, "a1"))], Some(1))
            .unwrap();
        tier.ingest(vec![(key("a"), Entry::tombstone(2))], Some(2))
            .unwrap();
        tier.set_oldest_snapshot(LATEST);
        tier.compact_all().unwrap();
        let kept = tier.get(b"a", LATEST).unwrap();
        if drop_bottom_tombstones {
            assert_eq!(kept, None);
            assert_eq!(tier.segment_stats().entries, 0);
        } else {
            assert_eq!(kept, Some(Entry::tombstone(2)));
            assert_eq!(
                tier.segment_stats().entries,
                1,
                "the older value is dropped"
            );
        }
    }
}
