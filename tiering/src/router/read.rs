//! The read path: fallback cache, hot, cache, warm, cold — the first version found wins, and
//! one found in cold is promoted into the cache (one found in warm too, when
//! [`RouterConfig::promote_from_warm`](super::RouterConfig::promote_from_warm) says so).
//!
//! - LOW keys are read from the cache only, best effort.
//! - The hot tier is read before the cache: for a key that is not LOW, the cache holds either
//!   a copy of a version from below (never newer than the hot tier's) or a version written
//!   while the key was LOW, which the LOW contract allows to be lost at any time — reading the
//!   hot tier first treats it as evicted. That keeps the common read, a hot hit, to one lookup.
//! - A tombstone or an expired version ends the search: the key is absent, whatever lies below.
//! - A tier whose breaker is open is not called. A read that could not consult a tier that
//!   might hold a newer version fails with [`Error::TierUnavailable`], unless it allowed a
//!   partial answer, which then says which tiers it skipped.

use std::sync::atomic::Ordering;

use super::{Router, TierId};
use crate::error::Error;
use crate::record;
use crate::tier::Tier;
use crate::types::{Change, Criticality, Entry, EntryKind, Key, SeqNo, Value, LATEST};

/// The least durable place a read may answer from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadLevel {
    /// Anywhere, including writes not yet durable (LOW, degraded, unsynced).
    #[default]
    Any,
    /// Only versions synced in the log or stored below it: the fallback cache and the cache
    /// are skipped, and the hot tier is read at the log's synced LSN.
    Durable,
    /// Only the warm tier and below.
    Warm,
    /// Only the cold tier.
    Cold,
}

/// How to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Where the answer may come from.
    pub level: ReadLevel,
    /// Answer from the tiers that work when one is unavailable, instead of failing; the
    /// outcome lists the tiers skipped.
    pub allow_partial: bool,
}

/// Where a read found its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The fallback cache of writes accepted while degraded.
    Fallback,
    /// The hot tier.
    Hot,
    /// The cache of LOW writes and promoted copies.
    Cache,
    /// The warm tier.
    Warm,
    /// The cold tier.
    Cold,
}

/// The answer to [`Router::read`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The live version found: `None` when the key is absent, deleted or expired.
    pub entry: Option<Entry>,
    /// Where the deciding version was found (a tombstone or an expired version decides too).
    pub source: Option<Source>,
    /// Tiers not consulted because they were unavailable (only with
    /// [`ReadOptions::allow_partial`]); when not empty, a newer version may exist.
    pub skipped: Vec<TierId>,
    /// Whether the version was copied into the cache.
    pub promoted: bool,
}

impl ReadOutcome {
    /// The value found.
    pub fn value(&self) -> Option<&Value> {
        self.entry.as_ref().and_then(Entry::value)
    }
}

impl Router {
    /// The value of `key`, or `None` when it is absent. Fails if a tier that might hold the
    /// key is unavailable.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, Error> {
        // The common case, a hit in the hot tier, skips building a `ReadOutcome`.
        let plain = !self.is_degraded()
            && !record::is_reserved(key)
            && self.classify(key).criticality != Criticality::Low;
        if plain {
            if let Some(entry) = self.hot.get(key, LATEST)? {
                return Ok(self.live(entry));
            }
        }
        let outcome = self.read(key, ReadOptions::default())?;
        Ok(outcome.entry.and_then(|e| self.live(e)))
    }

    /// The value of a version, unless it is a tombstone or has expired.
    fn live(&self, entry: Entry) -> Option<Value> {
        if entry
            .expires_at
            .is_some_and(|_| entry.is_expired_at(self.clock.now_ms()))
        {
            return None;
        }
        match entry.kind {
            EntryKind::Value(v) => Some(v),
            EntryKind::Tombstone => None,
        }
    }

    /// Reads `key` as `options` say.
    pub fn read(&self, key: &[u8], options: ReadOptions) -> Result<ReadOutcome, Error> {
        if record::is_reserved(key) {
            return Err(Error::ReservedKey(Key::from_valid(key)));
        }
        let level = options.level;
        if level == ReadLevel::Any {
            if self.is_degraded() {
                let queued = self.lock_pending().lookup(key).cloned();
                if let Some(entry) = queued {
                    return Ok(self.decide(entry, Source::Fallback));
                }
            }
            if self.classify(key).criticality == Criticality::Low {
                let found = self.cache.get(key, LATEST)?;
                return Ok(match found {
                    Some(entry) => self.decide(entry, Source::Cache),
                    None => ReadOutcome::default(),
                });
            }
        }
        if level <= ReadLevel::Durable {
            let snapshot = match level {
                ReadLevel::Any => LATEST,
                _ => self.log.synced_lsn(),
            };
            if let Some(entry) = self.hot.get(key, snapshot)? {
                return Ok(self.decide(entry, Source::Hot));
            }
        }
        if level == ReadLevel::Any {
            if let Some(entry) = self.cache.get(key, LATEST)? {
                return Ok(self.decide(entry, Source::Cache));
            }
        }
        self.read_below(key, options)
    }

    /// Reads the warm and cold tiers, promoting a value found in cold (or, if so configured,
    /// in warm).
    fn read_below(&self, key: &[u8], options: ReadOptions) -> Result<ReadOutcome, Error> {
        let mut skipped = Vec::new();
        for (id, source) in [(TierId::Warm, Source::Warm), (TierId::Cold, Source::Cold)] {
            if id == TierId::Warm && options.level > ReadLevel::Warm {
                continue;
            }
            let Some(tier) = self.lower(id) else {
                continue;
            };
            let breaker = self.breaker(id);
            if !breaker.allow() {
                if !options.allow_partial {
                    return Err(Error::TierUnavailable {
                        tier: tier.name().to_owned(),
                        key: Key::new(key).ok(),
                        reason: format!("its circuit breaker is {}", breaker.state()),
                    });
                }
                skipped.push(id);
                continue;
            }
            // Read before the tier is: see `promote`.
            let flushes = self.flushes.load(Ordering::SeqCst);
            match tier.get(key, LATEST) {
                Ok(None) => breaker.record_success(),
                Ok(Some(entry)) => {
                    breaker.record_success();
                    let mut outcome = self.decide(entry, source);
                    let promotes = id == TierId::Cold || self.config.promote_from_warm;
                    if let (Some(found), true) = (&outcome.entry, promotes) {
                        outcome.promoted = self.promote(key, found, id, flushes);
                    }
                    outcome.skipped = skipped;
                    return Ok(outcome);
                }
                Err(error) => {
                    self.on_failure(id, &error);
                    if !options.allow_partial {
                        return Err(error);
                    }
                    skipped.push(id);
                }
            }
        }
        Ok(ReadOutcome {
            skipped,
            ..ReadOutcome::default()
        })
    }

    fn lower(&self, id: TierId) -> Option<&dyn Tier> {
        match id {
            TierId::Warm => self.warm.as_deref(),
            TierId::Cold => self.cold.as_deref(),
            TierId::Log | TierId::Remote => None,
        }
    }

    /// Turns the version found into an answer: tombstones and expired versions read as absent.
    fn decide(&self, entry: Entry, source: Source) -> ReadOutcome {
        let expired = entry
            .expires_at
            .is_some_and(|_| entry.is_expired_at(self.clock.now_ms()));
        let live = !entry.is_tombstone() && !expired;
        ReadOutcome {
            entry: live.then_some(entry),
            source: Some(source),
            skipped: Vec::new(),
            promoted: false,
        }
    }

    /// Copies `entry`, found in `from`, into the cache; best effort. `flushes` is the
    /// Router's flush count as it was before `from` was read.
    ///
    /// A write may land between the read below and the copy, and the hot tier may even be
    /// flushed in between, which would leave the copy older than the key's newest version.
    /// Writes update cached copies after applying to the hot tier, so looking again from the
    /// top after copying catches every such write: a newer version is then copied over.
    /// The hot tier is always looked at again. Warm is too when the version came from cold,
    /// or when a flush was noted since `from` was read: a flush notes itself before the hot
    /// tier lets go of anything, so if the hot tier no longer holds a newer version because
    /// it was flushed, the count read after looking at hot has moved.
    fn promote(&self, key: &[u8], entry: &Entry, from: TierId, flushes: u64) -> bool {
        let Ok(key) = Key::new(key) else {
            return false;
        };
        if self
            .cache
            .apply(&[Change::new(key.clone(), entry.clone())])
            .is_err()
        {
            return false;
        }
        if let Some(newer) = self.newest_above(&key, entry.seqno, from, flushes) {
            // The cache just took a write, so it is very unlikely to refuse this one; a cache
            // that does is failing as a whole, and its owner's error handling is the remedy.
            let _ = self.cache.apply(&[Change::new(key, newer)]);
        }
        true
    }

    /// A version of `key` newer than `seqno` in the hot tier or, where it may have moved
    /// since (see [`Router::promote`]), the tiers down to `from`.
    fn newest_above(&self, key: &Key, seqno: SeqNo, from: TierId, flushes: u64) -> Option<Entry> {
        let bytes = key.as_bytes();
        if let Some(found) = self.hot.get(bytes, LATEST).ok().flatten() {
            return (found.seqno > seqno).then_some(found);
        }
        if from == TierId::Warm && self.flushes.load(Ordering::SeqCst) == flushes {
            return None;
        }
        let mut below: Vec<&dyn Tier> = self.lower(TierId::Warm).into_iter().collect();
        if from == TierId::Cold {
            below.extend(self.lower(TierId::Cold));
        }
        below
            .into_iter()
            .find_map(|t| t.get(bytes, LATEST).ok().flatten())
            .filter(|e| e.seqno > seqno)
    }
}
