//! The reference tier passes the conformance suite it defines.

use strata_tiering::{conformance, MemoryTier, Tier};

#[test]
fn memory_tier_passes_the_conformance_suite() {
    conformance::run(MemoryTier::new);
}

#[test]
fn checks_run_through_trait_objects() {
    // Tier crates call single checks on `&dyn Tier`, possibly held in an `Arc`.
    let tier: std::sync::Arc<dyn Tier> = std::sync::Arc::new(MemoryTier::with_name("shared"));
    conformance::snapshot_reads(tier.as_ref());
}

#[test]
fn check_names_are_unique() {
    let mut names: Vec<&str> = conformance::CHECKS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), conformance::CHECKS.len());
}
