//! The facade's one error type.

use std::path::PathBuf;

use strata_tiering::ErrorKind;

/// Everything that can go wrong opening and using a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another opener holds the store directory.
    #[error("store {dir} is locked by {holder}")]
    Locked {
        /// The store directory.
        dir: PathBuf,
        /// Who holds it, as the lock file says (`pid <n>`).
        holder: String,
    },

    /// The configuration could not be read or is invalid.
    #[error("configuration {path}: {detail}")]
    Config {
        /// The file, or the setting.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A tier, the router or a shared type reported an error.
    #[error(transparent)]
    Tiering(#[from] strata_tiering::Error),

    /// The write-ahead log reported an error.
    #[error(transparent)]
    Wal(#[from] strata_wal::Error),

    /// The cold or remote tier reported an error.
    #[error(transparent)]
    Cold(#[from] strata_gitsync::Error),

    /// The warm tier reported an error.
    #[error(transparent)]
    Warm(#[from] strata_segment::SegmentError),

    /// A transaction lost to a concurrent write; nothing of it was applied. Retrying it
    /// (see `Store::transact`) is the remedy.
    #[error("transaction conflict on {key:?}: it changed after the snapshot at LSN {snapshot}")]
    Conflict {
        /// The first key found changed.
        key: strata_tiering::Key,
        /// The transaction's snapshot.
        snapshot: u64,
    },

    /// A typed value could not be encoded or decoded.
    #[error("{op} {key:?} as {codec:?}: {detail}")]
    Codec {
        /// The key, when it is a valid one.
        key: Option<strata_tiering::Key>,
        /// The codec.
        codec: crate::typed::Codec,
        /// `encode` or `decode`.
        op: &'static str,
        /// What the codec said.
        detail: String,
    },

    /// The key the operation needs is absent.
    #[error("{key:?} not found")]
    NotFound {
        /// The key.
        key: strata_tiering::Key,
    },

    /// A line of an import could not be used; nothing of the import was written.
    #[error("import line {line}: {detail}")]
    Import {
        /// The line number, from 1.
        line: u64,
        /// What is wrong with it.
        detail: String,
    },

    /// A checkpoint is missing, incomplete, damaged, or cannot be written where asked.
    #[error("checkpoint {path}: {detail}")]
    Backup {
        /// The checkpoint directory, or the file in it.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The store was opened read-only and the operation would change it.
    #[error("store {dir} is open read-only: {op} is not allowed")]
    ReadOnly {
        /// The store directory.
        dir: PathBuf,
        /// The refused operation.
        op: &'static str,
    },

    /// Writes accepted while a tier was failing still wait in memory (the replay queue),
    /// not in the log: no sync can make them durable yet, and a close now would lose them.
    #[error("store {dir}: {queued} writes accepted while degraded are not in the log ({reason})")]
    NotLogged {
        /// The store directory.
        dir: PathBuf,
        /// How many queued writes the log does not hold.
        queued: usize,
        /// Why they could not be moved into it.
        reason: String,
    },

    /// The operation needs a remote and the store has none configured.
    #[error("store {dir} has no remote (set `remote` in its configuration)")]
    NoRemote {
        /// The store directory.
        dir: PathBuf,
    },
}

impl Error {
    /// The category of the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Locked { .. } => ErrorKind::Unavailable,
            Error::Config { .. } => ErrorKind::InvalidInput,
            Error::Io { .. } => ErrorKind::Io,
            Error::Tiering(e) => e.kind(),
            Error::Wal(_) => ErrorKind::Io,
            Error::Cold(e) => e.kind(),
            Error::Warm(e) => e.kind(),
            Error::NoRemote { .. } | Error::Import { .. } => ErrorKind::InvalidInput,
            Error::Backup { .. } => ErrorKind::Corruption,
            Error::ReadOnly { .. } | Error::NotLogged { .. } => ErrorKind::Unavailable,
            Error::Conflict { .. } => ErrorKind::Other,
            Error::NotFound { .. } | Error::Codec { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
