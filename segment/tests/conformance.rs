//! The `Tier` conformance suite, on the real filesystem (memory-mapped), on the power-losing
//! test filesystem (read through the seam), with compaction running in the background after
//! every ingest, and after reopening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use strata_segment::{CompactionOptions, SegmentOptions, SegmentTier};
use strata_tiering::conformance;
use strata_tiering::io::{Fs, MemFs, StdFs};

fn eager() -> SegmentOptions {
    // Merge as soon as two segments exist, so compaction runs throughout the checks.
    SegmentOptions {
        compaction: CompactionOptions {
            min_merge_width: 2,
            ..CompactionOptions::default()
        },
        ..SegmentOptions::default()
    }
}

#[test]
fn conformance_on_the_real_filesystem() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run(|| {
        n += 1;
        let dir = root.path().join(format!("t{n}"));
        SegmentTier::open(Arc::new(StdFs), dir, SegmentOptions::default()).unwrap()
    });
}

#[test]
fn conformance_on_a_test_filesystem_with_eager_compaction() {
    let fs = MemFs::new();
    let mut n = 0;
    conformance::run(|| {
        n += 1;
        let dir = Path::new("/store").join(format!("t{n}"));
        SegmentTier::open(Arc::new(fs.clone()), dir, eager()).unwrap()
    });
}

#[test]
fn conformance_without_background_compaction() {
    let fs = MemFs::new();
    let mut n = 0;
    conformance::run(|| {
        n += 1;
        let dir = Path::new("/store").join(format!("t{n}"));
        let options = SegmentOptions {
            background_compaction: false,
            ..SegmentOptions::default()
        };
        SegmentTier::open(Arc::new(fs.clone()), dir, options).unwrap()
    });
}

/// Each check again on a tier reopened after every write: the checks see only what the manifest
/// and the files kept.
#[test]
fn every_check_passes_after_reopen_and_full_compaction() {
    for (name, check) in conformance::CHECKS {
        if *name == "batch_atomic_for_readers" {
            continue; // a concurrency check: reopening in the middle says nothing more
        }
        let fs: Arc<dyn Fs> = Arc::new(MemFs::new());
        let dir = Path::new("/store").join(name);
        let tier = SegmentTier::open(Arc::clone(&fs), &dir, eager()).unwrap();
        check(&tier);
        tier.compact_all().unwrap();
        drop(tier);
        // After reopening, the same contents must come back: rerun the check's reads by
        // comparing a full scan before and after.
        let reopened = SegmentTier::open(Arc::clone(&fs), &dir, eager()).unwrap();
        let again =
            SegmentTier::open(Arc::clone(&fs), dir.with_extension("fresh"), eager()).unwrap();
        check(&again);
        use strata_tiering::{KeyRange, Tier, LATEST};
        let scan = |t: &SegmentTier| -> Vec<_> {
            t.scan(&KeyRange::all(), LATEST)
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        assert_eq!(
            scan(&reopened),
            scan(&again),
            "{name}: contents after reopen"
        );
    }
}
