//! The cold store as a [`Tier`]: what the Router and the conformance suite see.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use strata_tiering::{Change, Entry, EntryIter, Error, Health, KeyRange, SeqNo, Tier, TierStats};

use crate::store::{ColdStore, Trigger};

/// A [`ColdStore`] behind the [`Tier`] interface, with traffic counters.
#[derive(Debug)]
pub struct ColdTier {
    store: Arc<ColdStore>,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl ColdTier {
    /// Wraps a store, which the committer and the remote tier may share.
    pub fn new(store: impl Into<Arc<ColdStore>>) -> ColdTier {
        ColdTier {
            store: store.into(),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<ColdStore> {
        &self.store
    }
}

impl Tier for ColdTier {
    fn name(&self) -> &str {
        "cold"
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if strata_tiering::Key::validate(key).is_err() {
            return Ok(None);
        }
        Ok(self.store.get(key, snapshot)?)
    }

    /// Commits the batch at once, as one chunk file.
    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        self.store.commit(batch, Trigger::Apply, None)?;
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let items = self.store.scan(range, snapshot)?;
        Ok(Box::new(items.into_iter().map(Ok)))
    }

    /// Every applied batch is already a durable commit.
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn health(&self) -> Health {
        match self.store.fold_error() {
            Some(reason) => Health::Degraded {
                reason: format!("cold repository upkeep failed: {reason}"),
            },
            None => Health::Healthy,
        }
    }

    fn stats(&self) -> TierStats {
        TierStats {
            entries: self.store.chunk_count() as u64,
            live_keys: None,
            bytes: 0,
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}
