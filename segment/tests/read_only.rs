//! A read-only tier beside the directory's owner: it sees the segment set of its open, keeps
//! serving it while the owner compacts, changes nothing on disk (not even what a crash left),
//! and refuses every change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_segment::{SegmentError, SegmentOptions, SegmentTier};
use strata_tiering::io::{Fs, StdFs};
use strata_tiering::{Entry, Key, KeyRange, Tier, LATEST};

fn options(read_only: bool) -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        read_only,
        ..SegmentOptions::default()
    }
}

fn contents(tier: &SegmentTier) -> Vec<(Key, Entry)> {
    tier.scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names = StdFs.list_dir(dir).unwrap();
    names.sort();
    names
}

#[test]
fn a_reader_sees_its_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let owner = SegmentTier::open(Arc::clone(&fs), dir.path(), options(false)).unwrap();
    for n in 0..3u64 {
        let entries = (0..50u64).map(|i| {
            let key = Key::new(format!("k{i:03}")).unwrap();
            (key, Entry::put(n * 50 + i + 1, format!("v{n}")))
        });
        owner.ingest(entries, Some(n + 1)).unwrap();
    }
    // What an owner's crash could leave: a temporary file and an unreferenced segment.
    std::fs::write(dir.path().join("00000000000000000099.seg.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("00000000000000000098.seg"), b"orphan").unwrap();
    let before = listing(dir.path());

    let reader = SegmentTier::open(Arc::clone(&fs), dir.path(), options(true)).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(listing(dir.path()), before, "a reader removes nothing");
    assert_eq!(reader.flushed_lsn(), Some(3));
    let seen = contents(&reader);
    assert_eq!(seen, contents(&owner));

    // The owner compacts and deletes the inputs; the reader keeps its view.
    owner.compact_all().unwrap();
    assert_eq!(contents(&reader), seen);
    assert_eq!(reader.segments().len(), 3);
    // A new reader sees the new set.
    let fresh = SegmentTier::open(Arc::clone(&fs), dir.path(), options(true)).unwrap();
    assert_eq!(fresh.segments().len(), 1);

    for result in [
        reader.ingest(Vec::new(), Some(9)).map(drop),
        reader.compact_all().map(drop),
        reader.compact().map(drop),
        reader.release_quarantine(1),
    ] {
        assert!(
            matches!(result, Err(SegmentError::ReadOnly { .. })),
            "{result:?}"
        );
    }
    let change = strata_tiering::Change::new(Key::new("x").unwrap(), Entry::put(999, "y"));
    assert!(reader.apply(&[change]).is_err());
}

#[test]
fn a_reader_of_a_missing_directory_sees_nothing_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("segments");
    let reader = SegmentTier::open(Arc::new(StdFs), &missing, options(true)).unwrap();
    assert!(contents(&reader).is_empty());
    assert!(!missing.exists());
}
