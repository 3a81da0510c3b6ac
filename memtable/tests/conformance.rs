//! The `Tier` conformance suite against the hot tier: as it is, and with every batch frozen
//! into its own memtable, so that every check also runs across the frozen layers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_memtable::HotTier;
use strata_tiering::{
    conformance, Change, Entry, EntryIter, Error, Health, KeyRange, SeqNo, Tier, TierStats,
};

#[test]
fn hot_tier_passes_the_conformance_suite() {
    conformance::run(HotTier::new);
}

/// A hot tier that freezes its active memtable after every batch and never releases one, so
/// reads always merge across many memtables.
struct FreezeEveryBatch(HotTier);

impl Tier for FreezeEveryBatch {
    fn name(&self) -> &str {
        "hot-freezing"
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        self.0.get(key, snapshot)
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        self.0.apply(batch)?;
        let _ = self.0.freeze();
        Ok(())
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        self.0.scan(range, snapshot)
    }

    fn flush(&self) -> Result<(), Error> {
        self.0.flush()
    }

    fn health(&self) -> Health {
        self.0.health()
    }

    fn stats(&self) -> TierStats {
        self.0.stats()
    }
}

#[test]
fn hot_tier_passes_with_every_batch_frozen() {
    conformance::run(|| FreezeEveryBatch(HotTier::new()));
}
