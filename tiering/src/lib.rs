//! Shared vocabulary and the tier contract of the Strata tiered key-value store.
//!
//! Strata keeps data in levels — a hot in-memory tier, warm on-disk segments, a cold git
//! repository and a git remote — and a key's [`Criticality`] decides how far down its writes
//! travel. This crate is the common ground those levels stand on:
//!
//! - the types every tier exchanges: [`Key`], [`Value`], versioned [`Entry`]s ordered by
//!   [`SeqNo`] (the write-ahead log's [`Lsn`]), [`Change`] batches, [`KeyRange`]s and the crate's
//!   one [`Error`];
//! - the [`Tier`] trait each level implements, and the [`conformance`] suite each implementation
//!   is tested against;
//! - [`MemoryTier`], the reference implementation the suite is checked with;
//! - the [`router`]: the [`Router`] that classifies keys and sends reads and writes through the
//!   tiers, with its circuit breakers, degraded modes, stage watermarks and archival. It needs
//!   nothing but the [`Tier`] contract and the log.
//!
//! Tier crates depend on this one and never on each other.

pub mod clock;
pub mod conformance;
pub mod record;
pub mod router;

/// The I/O seam every on-disk tier writes through, defined in `strata-wal` (the lowest crate)
/// and re-exported here so tier crates need no other dependency. Tests put
/// [`FaultyFs`](io::FaultyFs) or the power-losing [`MemFs`](io::MemFs) behind it.
pub mod io {
    pub use strata_wal::io::{Fs, FsFile, StdFs, FILE_MODE};
    pub use strata_wal::{errno, CrashMode, FaultyFs, FsEvent, FsOp, MemFs, PowerCutFs};
}
mod error;
mod memory;
mod range;
mod tier;
mod types;

pub use error::{Error, ErrorKind};
pub use memory::MemoryTier;
pub use range::{ByteBounds, KeyRange};
pub use router::{Router, RouterBuilder};
pub use tier::{EntryIter, Health, Tier, TierStats};
pub use types::{
    escape_bytes, Change, Criticality, Entry, EntryKind, Key, Limits, Lsn, SeqNo, Value,
    DEFAULT_MAX_VALUE_LEN, INLINE_KEY_LEN, LATEST, MAX_KEY_LEN,
};
