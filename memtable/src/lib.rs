//! `strata-memtable`: the hot tier of the Strata store.
//!
//! ```text
//!   Router ──put/get──► [hot: memtable + bounded cache] ──freeze/flush──► warm (strata-segment)
//! ```
//!
//! It will hold the sorted in-memory write buffer (MVCC by sequence number, frozen into an
//! immutable memtable for flushing) and the bounded cache for LOW-criticality entries and
//! entries promoted by reads, implementing `strata_tiering::Tier`. The crate depends only on
//! `strata-tiering`. It has no code yet: the hot tier lands with its own issue.
