//! Checkpoints: a hard-linked copy of the live segments and their manifest outlives the
//! compaction that deletes the originals, opens as a tier with the same contents, and
//! `verify_dir` names a damaged file in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use strata_segment::{verify_dir, SegmentOptions, SegmentTier};
use strata_tiering::io::{Fs, MemFs, StdFs};
use strata_tiering::{Entry, Key, KeyRange, Tier, LATEST};

fn options() -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        ..SegmentOptions::default()
    }
}

fn fill(tier: &SegmentTier, segments: u64) {
    for n in 0..segments {
        let entries: Vec<(Key, Entry)> = (0..100u64)
            .map(|i| {
                let key = Key::new(format!("k{i:04}")).unwrap();
                (key, Entry::put(n * 100 + i + 1, format!("v{n}-{i}")))
            })
            .collect();
        tier.ingest(entries, Some(n + 1)).unwrap();
    }
}

fn contents(tier: &SegmentTier) -> Vec<(Key, Entry)> {
    tier.scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_checkpoint_outlives_compaction_and_reopens_with_the_same_contents() {
    let live = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let tier = SegmentTier::open(Arc::clone(&fs), live.path(), options()).unwrap();
    fill(&tier, 3);
    let before = contents(&tier);

    let dest = backups.path().join("segments");
    let checkpoint = tier.checkpoint(&dest).unwrap();
    assert_eq!(checkpoint.flushed_lsn, Some(3));
    assert_eq!(checkpoint.files.len(), 4, "three segments and the manifest");
    assert_eq!(checkpoint.files.last().unwrap().0, "MANIFEST");

    // Compaction replaces the three originals; the links keep the checkpoint whole.
    tier.compact_all().unwrap();
    fill(&tier, 1);
    let report = verify_dir(fs.as_ref(), &dest).unwrap();
    assert_eq!(report.segments, 3);
    assert_eq!(report.entries, 300);
    assert_eq!(report.flushed_lsn, Some(3));
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let restored = SegmentTier::open(Arc::clone(&fs), &dest, options()).unwrap();
    assert_eq!(restored.flushed_lsn(), Some(3));
    assert_eq!(contents(&restored), before);
    drop(restored);

    // A second checkpoint into a directory that is not empty is refused.
    let err = tier.checkpoint(&dest).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    // A damaged block in the checkpoint is named by the verification.
    let damaged = dest.join(&checkpoint.files[1].0);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&damaged)
        .unwrap();
    let mut byte = [0u8];
    file.read_at(&mut byte, 64).unwrap();
    file.write_at(&[byte[0] ^ 0x5A], 64).unwrap();
    let report = verify_dir(fs.as_ref(), &dest).unwrap();
    assert_eq!(report.segments, 2);
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0].contains(&checkpoint.files[1].0),
        "{:?}",
        report.problems
    );
}

#[test]
fn without_hard_links_a_checkpoint_copies() {
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());
    let tier = SegmentTier::open(Arc::clone(&fs), "/live", options()).unwrap();
    fill(&tier, 2);
    tier.checkpoint("/backup").unwrap();
    let report = verify_dir(fs.as_ref(), "/backup".as_ref()).unwrap();
    assert_eq!((report.segments, report.entries), (2, 200));
    let restored = SegmentTier::open(Arc::clone(&fs), "/backup", options()).unwrap();
    assert_eq!(contents(&restored), contents(&tier));
    // An empty directory has no manifest to trust.
    fs.create_dir_all("/empty".as_ref()).unwrap();
    assert!(verify_dir(fs.as_ref(), "/empty".as_ref()).is_err());
}
