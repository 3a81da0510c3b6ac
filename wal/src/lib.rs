//! `strata-wal`: the write-ahead log at the bottom of the Strata store, usable on its own.
//!
//! Every write at MEDIUM criticality or above goes through a [`Log`] first and gets its LSN
//! (log sequence number) there; the WAL is the one source of truth from which the warm, cold
//! and remote tiers each resume after a crash, from their own watermark.
//!
//! ```text
//!   Router ──append──► Log (this crate) ──read_from(watermark)──► memtable flush, git committer
//!                        │
//!                        └─ files: wal/00000000000000000001.wal, ...   (named by first LSN)
//! ```
//!
//! This crate depends on nothing else in the workspace. It provides:
//! - the [`Log`] trait and two implementations: [`Wal`], the file log, and [`MemLog`], an
//!   in-memory log for tests of the crates above;
//! - group commit: concurrent appenders share one fsync ([`SyncPolicy`]);
//! - write-behind under `Interval` and `Never`: a full buffer is written to the OS by a
//!   background thread while appends go on into the next ([`WalOptions::write_behind`]);
//! - files preallocated with zeros under point-in-time recovery, so a durable append does not
//!   also commit a new file size ([`WalOptions::preallocate`]);
//! - recovery with RocksDB's three modes ([`RecoveryMode`]) and a [`RecoveryReport`];
//! - the I/O seam ([`Fs`]) that all file I/O of the store goes through, with a fault-injecting
//!   ([`FaultyFs`]) and a power-losing ([`MemFs`]) implementation for tests.
//!
//! The byte format is in [`format`]. A record is opaque bytes: what it means is the caller's
//! business. One process at a time may open a WAL directory; the store's directory lock
//! guarantees that.
//!
//! # Durability rules
//! - A file is created as a temporary file, fsynced, renamed into place, and the directory
//!   fsynced; removals are followed by a directory fsync.
//! - An LSN is reported durable only after an fsync that covered it returned success.
//! - After a failed write or fsync the file is abandoned, the error is returned, and the
//!   records not yet durable are written by the next sync into a fresh file. They are
//!   never reported durable on the strength of a second fsync of the failed file.
//!   A record whose append returned an error may still become durable through that
//!   later sync; it is never acknowledged before it is.

mod behind;
mod copy;
mod cursor;
mod error;
mod fault;
pub mod format;
mod group;
pub mod io;
mod memfs;
mod memlog;
mod powercut;
mod prefetch;
mod reader;
mod recovery;
mod wal;
mod writer;

pub use crate::copy::{read_dir, WalCheckpoint};
pub use crate::error::{Error, Result};
pub use crate::fault::{errno, CallHook, FaultyFs, FsEvent, FsOp};
pub use crate::io::{Fs, FsFile, StdFs};
pub use crate::memfs::{CrashMode, MemFs};
pub use crate::memlog::MemLog;
pub use crate::powercut::PowerCutFs;
pub use crate::reader::LogReader;
pub use crate::recovery::{DamageReport, RecoveryMode, RecoveryReport};
pub use crate::wal::{SyncPolicy, Wal, WalOptions};

/// A log sequence number. The first record of a log gets 1; 0 means "no record".
pub type Lsn = u64;

/// The records of a log from some LSN on, as `(lsn, record)` pairs in LSN order.
pub type LogIter = Box<dyn Iterator<Item = Result<(Lsn, Vec<u8>)>> + Send>;

/// An ordered, durable stream of records: the contract between the WAL and its consumers.
pub trait Log: Send + Sync {
    /// Appends a batch of records as one atomic unit and returns the LSN of its last record.
    /// The records get consecutive LSNs. Whether the batch is durable on return depends on the
    /// implementation's sync policy; [`Log::synced_lsn`] says for sure.
    fn append(&self, batch: &[&[u8]]) -> Result<Lsn>;

    /// Makes every record appended so far durable and returns the durable LSN. Concurrent
    /// callers share one fsync.
    fn sync(&self) -> Result<Lsn>;

    /// Iterates records with LSN `lsn` or later, up to the last record appended before the
    /// call. Asking for records already removed by [`Log::truncate_before`] is an error.
    fn read_from(&self, lsn: Lsn) -> Result<LogIter>;

    /// Drops records before `lsn` where that can be done by removing whole files (or, for an
    /// in-memory log, exactly). Records at `lsn` and after are always kept.
    fn truncate_before(&self, lsn: Lsn) -> Result<()>;

    /// LSN of the last record appended (0 if none).
    fn last_lsn(&self) -> Lsn;

    /// LSN up to which records are durable (0 if none).
    fn synced_lsn(&self) -> Lsn;
}
