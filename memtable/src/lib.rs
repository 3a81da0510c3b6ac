//! `strata-memtable`: the hot tier of the Strata store.
//!
//! ```text
//!                    Router (strata-tiering)
//!             apply / get / scan │        ▲ promote on read
//!  ┌─────────────────────────────▼────────┴───────────────────────────┐
//!  │ hot tier (this crate)                                            │
//!  │                                                                  │
//!  │  HotTier ─ implements Tier                     HotCache          │
//!  │   ├ active Memtable    ◄── writes             LOW entries and    │
//!  │   ├ FrozenMemtable     ┐                      read promotions,   │
//!  │   └ FrozenMemtable ... ┘ reads: active, then  CLOCK eviction,    │
//!  │        │                 frozen newest first  pinned entries     │
//!  └────────┼─────────────────────────────────────────────────────────┘
//!           │ freeze → iter() (every version, sorted) → release once flushed
//!           ▼
//!   warm tier (strata-segment): sorted segment files
//! ```
//!
//! - [`Memtable`]: a concurrent sorted write buffer holding every version of every key, ordered
//!   by seqno (MVCC). Point reads and ordered range/prefix scans at a snapshot see, per key, the
//!   newest version with `seqno <= snapshot`; deletions are tombstones. It counts its memory
//!   approximately and [`freeze`](Memtable::freeze)s into a [`FrozenMemtable`], whose
//!   [`iter`](FrozenMemtable::iter) feeds a segment writer every version in sorted order.
//! - [`HotTier`]: the active memtable plus the frozen ones not yet flushed, as a
//!   [`Tier`](strata_tiering::Tier). Its owner polls [`should_flush`](HotTier::should_flush),
//!   calls [`freeze`](HotTier::freeze), writes the result to the warm tier and
//!   [`release`](HotTier::release)s it.
//! - [`HotCache`]: a bounded cache of LOW-criticality entries and of entries promoted by reads,
//!   whose eviction never drops a pinned entry. It is separate from the tier: the owner decides
//!   what goes where.
//!
//! The crate depends only on `strata-tiering`.
//!
//! # Why a locked B-tree rather than a lock-free skip list
//!
//! Each memtable is a `BTreeMap` behind an `RwLock`, keyed by the user key with the key's
//! versions as the value (the newest inline, older ones in a side vector). A lock-free skip list
//! (RocksDB's, or `crossbeam-skiplist` as fjall uses) lets readers and writers run with no lock
//! at all, but point reads dominate the hot tier, and the B-tree serves them with few cache
//! misses and searches by a borrowed `&[u8]`, where a skip list ordered by `(key, seqno)` costs a
//! pointer hop per level and an owned search key. The `memtable` benchmark puts a memtable get
//! at about 0.7× a plain `BTreeMap<Vec<u8>, Vec<u8>>` get, which takes no lock and returns a
//! reference where the memtable clones the entry. The price is that both sides take the lock,
//! so each holds it only briefly, and readers never block writers for long:
//!
//! - a point read holds the read lock for one lookup;
//! - a scan copies at most 256 keys per hold of the read lock and resumes after the last key
//!   copied, so a slow consumer of a scan never holds the lock;
//! - a writer holds the write lock for at most 256 changes at a time.
//!
//! Batches stay atomic for readers although neither side holds the lock throughout. Each batch
//! gets a commit stamp, published after its last change is in; a read considers only versions
//! whose stamp is published, and a scan fixes the published stamp when it starts. Stamps are
//! internal and separate from seqnos, which arrive in any order.

mod cache;
mod cache_tier;
mod cursor;
mod frozen;
mod memtable;
mod merge;
mod tier;
mod versions;

pub use cache::{
    CacheConfig, CacheStats, HotCache, InsertOutcome, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ITEMS,
};
pub use cache_tier::{CacheTier, EvictablePolicy};
pub use cursor::Scan;
pub use frozen::{FrozenIter, FrozenMemtable};
pub use memtable::Memtable;
pub use tier::{HotTier, DEFAULT_FLUSH_BYTES, DEFAULT_FLUSH_ITEMS};
