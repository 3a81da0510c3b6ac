//! The cold tier against the shared `Tier` conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use strata_gitsync::ColdTier;

#[test]
fn cold_tier_passes_the_conformance_suite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    strata_tiering::conformance::run(|| {
        let dir = tempfile::tempdir().unwrap();
        // A small keep_chunks makes the suite's batches go through folds too.
        let tier = ColdTier::new(common::open(&dir.path().join("cold.git"), 2));
        dirs.borrow_mut().push(dir);
        tier
    });
    for dir in dirs.into_inner() {
        common::assert_fsck_clean(&dir.path().join("cold.git"));
    }
}
