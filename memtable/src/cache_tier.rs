//! `CacheTier`: the bounded [`HotCache`] seen through the [`Tier`] contract.
//!
//! The Router keeps two things in the hot level: the memtable (durable writes on their way to
//! warm segments) and this cache (LOW writes, which never leave memory, and copies of values
//! read from lower tiers). Which keys the cache may evict is the owner's policy, given as a
//! predicate: a LOW key whose rule says "not evictable" is pinned.

use std::fmt;
use std::sync::Arc;

use strata_tiering::{Change, Entry, EntryIter, Error, Health, KeyRange, SeqNo, Tier, TierStats};

use crate::cache::{CacheConfig, HotCache, InsertOutcome};

/// Decides whether the cache may evict a key.
pub type EvictablePolicy = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// A [`HotCache`] that implements [`Tier`].
pub struct CacheTier {
    cache: HotCache,
    evictable: EvictablePolicy,
}

impl CacheTier {
    /// A cache with these bounds; every key evictable.
    pub fn new(config: CacheConfig) -> CacheTier {
        CacheTier::with_policy(config, Arc::new(|_| true))
    }

    /// A cache with these bounds, pinning the keys `evictable` rejects.
    pub fn with_policy(config: CacheConfig, evictable: EvictablePolicy) -> CacheTier {
        CacheTier {
            cache: HotCache::with_config(config),
            evictable,
        }
    }

    /// The cache itself.
    pub fn cache(&self) -> &HotCache {
        &self.cache
    }
}

impl fmt::Debug for CacheTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheTier")
            .field("cache", &self.cache)
            .finish()
    }
}

impl Tier for CacheTier {
    fn name(&self) -> &str {
        "cache"
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        // The cache keeps one version per key; an older snapshot must look further down.
        Ok(self.cache.get(key).filter(|entry| entry.seqno <= snapshot))
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        for change in batch {
            let evictable = (self.evictable)(change.key.as_bytes());
            match self
                .cache
                .insert(change.key.clone(), change.entry.clone(), evictable)?
            {
                InsertOutcome::Stored | InsertOutcome::Stale | InsertOutcome::Refused => {}
            }
        }
        Ok(())
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        let entries = self
            .cache
            .entries(|key| range.contains(key))
            .into_iter()
            .filter(move |(_, entry)| entry.seqno <= snapshot)
            .map(Ok);
        Ok(Box::new(entries))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn health(&self) -> Health {
        Health::Healthy
    }

    fn stats(&self) -> TierStats {
        let stats = self.cache.stats();
        TierStats {
            entries: stats.items,
            live_keys: None,
            bytes: stats.bytes,
            reads: stats.hits + stats.misses,
            writes: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_tiering::{Key, LATEST};

    #[test]
    fn pinned_keys_survive_pressure_and_scans_see_the_cache() {
        let tier = CacheTier::with_policy(
            CacheConfig {
                max_bytes: u64::MAX,
                max_items: 4,
            },
            Arc::new(|key: &[u8]| !key.starts_with(b"pin:")),
        );
        let put = |k: &str, s: u64| Change::put(Key::new(k.as_bytes()).unwrap(), s, &b"v"[..]);
        tier.apply(&[put("pin:a", 1)]).unwrap();
        for i in 0..20 {
            tier.apply(&[put(&format!("x{i}"), 2 + i)]).unwrap();
        }
        assert!(tier.get(b"pin:a", LATEST).unwrap().is_some());
        assert_eq!(tier.get(b"pin:a", 0).unwrap(), None);
        let keys: Vec<Key> = tier
            .scan(&KeyRange::all(), LATEST)
            .unwrap()
            .map(|item| item.unwrap().0)
            .collect();
        assert_eq!(keys.len(), 4);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
