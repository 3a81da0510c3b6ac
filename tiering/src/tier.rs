//! The `Tier` contract: a key-value view of one level of the store.
//!
//! Every tier — hot memtable, warm segments, cold git, the remote — implements this trait and is
//! checked against the same suite in [`conformance`](crate::conformance). The Router composes
//! tiers only through it, so it must be object safe.

use std::fmt;

use crate::error::Error;
use crate::range::KeyRange;
use crate::types::{Change, Entry, Key, SeqNo};

/// The items of a [`Tier::scan`]: ascending keys, each with its newest visible version.
///
/// Items are fallible so that a tier reading from disk can report a failure part way through.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<(Key, Entry), Error>> + Send + 'a>;

/// One level of the store, holding versioned entries.
///
/// Versions are ordered by [`SeqNo`], never by arrival: a tier keeps the version with the highest
/// seqno as the newest even when an older one is applied after it (replaying a log and filling a
/// tier from below may deliver them out of order). Applying a change the tier already holds
/// leaves it holding one copy, so replaying a log over a tier is harmless.
///
/// Tiers do not interpret [`Entry::expires_at`]; they store and return it, and the reader
/// decides with its own clock. Nor do they enforce size limits: that happens before a write
/// reaches any tier (see [`Limits`](crate::Limits)).
pub trait Tier: Send + Sync {
    /// A short name for the tier, used in errors, logs and metrics.
    fn name(&self) -> &str;

    /// The newest version of `key` with `seqno <= snapshot`.
    ///
    /// A deletion is returned as `Some` of a tombstone, so that a tier above can shadow older
    /// values below it; `None` means this tier knows nothing of the key at that snapshot. A byte
    /// string that cannot be a key (empty, too long) is simply absent.
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error>;

    /// Applies a batch of changes.
    ///
    /// Atomic for readers: a concurrent `get` or `scan` sees either every change of the batch or
    /// none of them. A batch may hold several versions of one key.
    fn apply(&self, batch: &[Change]) -> Result<(), Error>;

    /// The keys in `range`, in ascending order, each exactly once with its newest version at
    /// `snapshot`; tombstones are included as tombstones, keys with no version at or below
    /// `snapshot` are left out.
    ///
    /// The scan reflects whole batches only, as for [`apply`](Self::apply).
    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error>;

    /// Makes everything applied so far as durable as this tier can make it. A no-op for
    /// in-memory tiers.
    fn flush(&self) -> Result<(), Error>;

    /// Whether the tier is serving requests normally.
    fn health(&self) -> Health;

    /// Counters describing the tier's contents and traffic.
    fn stats(&self) -> TierStats;
}

/// A tier's own view of whether it works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Serving normally.
    Healthy,
    /// Serving, but impaired (slow, read-only, retrying a remote).
    Degraded {
        /// What is wrong.
        reason: String,
    },
    /// Not serving.
    Failed {
        /// What is wrong.
        reason: String,
    },
}

impl Health {
    /// Whether the tier reports itself fully healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Degraded { reason } => write!(f, "degraded: {reason}"),
            Health::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// Counters describing a tier. All are best effort and may lag concurrent writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Versions held, tombstones included.
    pub entries: u64,
    /// Keys whose newest version is a value, for tiers that can tell cheaply.
    pub live_keys: Option<u64>,
    /// Approximate space used, in bytes.
    pub bytes: u64,
    /// `get` and `scan` calls served.
    pub reads: u64,
    /// Changes applied.
    pub writes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_is_object_safe_and_shareable() {
        fn check<T: Send + Sync + ?Sized>() {}
        check::<dyn Tier>();
        let _: Option<Box<dyn Tier>> = None;
        let _: Option<std::sync::Arc<dyn Tier>> = None;
    }

    #[test]
    fn health_reports() {
        assert!(Health::Healthy.is_healthy());
        let degraded = Health::Degraded {
            reason: "read-only".into(),
        };
        assert!(!degraded.is_healthy());
        assert_eq!(degraded.to_string(), "degraded: read-only");
        let failed = Health::Failed {
            reason: "disk gone".into(),
        };
        assert!(!failed.is_healthy());
        assert_eq!(failed.to_string(), "failed: disk gone");
    }
}
