//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::Lsn;

/// Everything that can go wrong in the write-ahead log.
///
/// Every variant names the file (and where it matters, the byte offset) it concerns, so an
/// operator can go straight to the damage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on a WAL file or directory failed.
    #[error("wal I/O error: {op} {path}: {source}")]
    Io {
        /// What was being done: "create", "write", "fsync", "read", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error, with its errno.
        #[source]
        source: io::Error,
    },

    /// A record or file header failed validation during recovery or reading.
    #[error("wal corruption in {path} at byte {offset}: {detail}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad frame (or 0 for a bad file header).
        offset: u64,
        /// What is wrong, in words.
        detail: String,
    },

    /// An earlier write or fsync failed and the records after the last durable LSN are not on
    /// disk. They are kept in memory and rewritten into a fresh file by the next sync.
    #[error("wal is not durable past LSN {durable}: {cause}")]
    NotDurable {
        /// The highest LSN that is known to be durable.
        durable: Lsn,
        /// The failure that stopped the sync.
        cause: Box<Error>,
    },

    /// A failure could not be repaired (see `WalOptions::retain_unsynced_bytes`); the log
    /// refuses all work until it is reopened.
    #[error("wal stopped: {0}")]
    Stopped(String),

    /// `append` was given no records.
    #[error("wal append of an empty batch")]
    EmptyBatch,

    /// One record is larger than the configured maximum.
    #[error("wal record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: usize,
        /// The configured maximum (`WalOptions::max_record_len`).
        max: usize,
    },

    /// The batch would need LSNs past the last one an append may assign (`u64::MAX - 1`).
    /// Only a directory holding a file named for a huge LSN, or a huge `next_lsn_floor`, can
    /// bring a log there; nothing was appended.
    #[error("wal has no LSNs left for a batch of {batch} records: the next LSN is {next}")]
    LsnExhausted {
        /// The LSN the batch's first record would have had.
        next: Lsn,
        /// How many records the batch held.
        batch: usize,
    },

    /// A reader asked for records that `truncate_before` already removed.
    #[error("wal records from LSN {requested} were truncated; the oldest kept is {oldest}")]
    Truncated {
        /// The LSN the reader asked for.
        requested: Lsn,
        /// The oldest LSN still in the log.
        oldest: Lsn,
    },

    /// Something other than this WAL's files sits where they should be.
    #[error("wal directory {path} is not usable: {detail}")]
    BadDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        detail: String,
    },

    /// A test log was told to fail (see `MemLog::set_failing`).
    #[error("wal unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error says stored bytes are damaged, as opposed to an operation failing.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
