//! Ordered scans across every tier, merged into one view at a snapshot.
//!
//! ```text
//!   fallback ─┐  (writes accepted while degraded)
//!   hot ──────┤
//!   cache ────┼─► k-way merge by key ─► per key, the first tier in this order that holds
//!   warm ─────┤                          a version decides; tombstones and expired
//!   cold ─────┘                          versions hide the key
//! ```
//!
//! The order is the one point reads use, so a scan and a `get` of the same key at the same
//! moment agree. A key the rules class LOW is decided by the fallback and the cache only, as
//! its reads are. Each tier's own scan is already ordered; the merge holds one pending item
//! per tier, so a scan streams however large the range.

use std::iter::Peekable;

use strata_tiering::router::{Class, RuleSet};
use strata_tiering::{Criticality, EntryIter, Key, Value};

use crate::error::Result;

/// Which tier an item came from, in the order that decides a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Layer {
    Fallback,
    Hot,
    Cache,
    Warm,
    Cold,
}

impl Layer {
    fn serves_low(self) -> bool {
        matches!(self, Layer::Fallback | Layer::Cache)
    }
}

/// The live key-value pairs of a range, in key order. Items are errors when a tier failed
/// mid-scan; the scan ends after the first one.
pub struct Scan<'a> {
    sources: Vec<(Layer, Peekable<EntryIter<'a>>)>,
    rules: std::sync::Arc<RuleSet>,
    now_ms: u64,
    failed: bool,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(
        sources: Vec<(Layer, EntryIter<'a>)>,
        rules: std::sync::Arc<RuleSet>,
        now_ms: u64,
    ) -> Scan<'a> {
        Scan {
            sources: sources
                .into_iter()
                .map(|(layer, iter)| (layer, iter.peekable()))
                .collect(),
            rules,
            now_ms,
            failed: false,
        }
    }

    fn is_low(&self, key: &Key) -> bool {
        let class: Class = self.rules.classify(key.as_bytes());
        class.criticality == Criticality::Low
    }

    /// The smallest key at the head of any source, or the first error found there.
    fn next_key(&mut self) -> Option<Result<Key>> {
        let mut smallest: Option<Key> = None;
        for (_, source) in &mut self.sources {
            match source.peek() {
                None => {}
                Some(Err(_)) => {
                    return source
                        .next()
                        .and_then(|item| item.err())
                        .map(|e| Err(e.into()));
                }
                Some(Ok((key, _))) if smallest.as_ref().is_none_or(|s| key < s) => {
                    smallest = Some(key.clone());
                }
                Some(Ok(_)) => {}
            }
        }
        smallest.map(Ok)
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Key, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let key = match self.next_key()? {
                Ok(key) => key,
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            };
            let low = self.is_low(&key);
            let mut decided = None;
            for (layer, source) in &mut self.sources {
                let here = matches!(source.peek(), Some(Ok((k, _))) if *k == key);
                if !here {
                    continue;
                }
                let taken = source.next();
                if decided.is_none() && (!low || layer.serves_low()) {
                    decided = taken.and_then(|item| item.ok()).map(|(_, entry)| entry);
                }
            }
            if strata_tiering::record::is_reserved(key.as_bytes()) {
                continue;
            }
            let Some(entry) = decided else { continue };
            if entry.expires_at.is_some() && entry.is_expired_at(self.now_ms) {
                continue;
            }
            if let Some(value) = entry.value() {
                return Some(Ok((key, value.clone())));
            }
        }
    }
}
