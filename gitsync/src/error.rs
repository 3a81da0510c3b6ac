//! The crate's one error type.

use std::path::PathBuf;

use strata_tiering::ErrorKind;

/// Everything that can go wrong in the cold and remote tiers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A libgit2 call failed.
    #[error("git: {op}: {source}")]
    Git {
        /// What was being done.
        op: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },

    /// Another writer moved the branch between our read and our update. Retrying (after
    /// re-reading the branch) is safe.
    #[error("git: {reference} moved from {expected} to {found} while committing; retry")]
    Conflict {
        /// The reference.
        reference: String,
        /// The value the update was based on.
        expected: String,
        /// The value found.
        found: String,
    },

    /// Something stored in the repository is not what this crate writes.
    #[error("cold repository {path}: {detail}")]
    Corrupt {
        /// The repository, or the path inside its tree.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A change could not be encoded or decoded.
    #[error("cold tier: {0}")]
    Tiering(#[from] strata_tiering::Error),

    /// Reading the write-ahead log failed.
    #[error("cold tier: reading the log: {0}")]
    Log(#[from] strata_wal::Error),

    /// The remote could not be reached, or a transfer failed. The URL is shown without
    /// credentials.
    #[error("remote {url}: {op}: {detail}")]
    Remote {
        /// The remote, credentials removed.
        url: String,
        /// What was being done.
        op: String,
        /// What went wrong (credentials removed).
        detail: String,
    },

    /// The remote refused to update its branch for a reason other than a race with another
    /// writer: a hook declined, or a rule forbids.
    #[error("remote {url}: push of {commit} rejected: {reason}")]
    Rejected {
        /// The remote, credentials removed.
        url: String,
        /// The commit that was pushed.
        commit: String,
        /// The remote's reason.
        reason: String,
    },

    /// After a push, the remote's branch is not the commit pushed.
    #[error("remote {url}: pushed {pushed}, but the remote's branch is at {found}")]
    Unverified {
        /// The remote, credentials removed.
        url: String,
        /// The commit pushed.
        pushed: String,
        /// What the remote's branch points at.
        found: String,
    },

    /// A file operation failed.
    #[error("cold tier: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn git(op: impl Into<String>, source: git2::Error) -> Self {
        Error::Git {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// True when retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// The category the Router and its breakers act on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Git { source, .. } => match source.class() {
                git2::ErrorClass::Os | git2::ErrorClass::Filesystem => ErrorKind::Io,
                git2::ErrorClass::Net | git2::ErrorClass::Ssh | git2::ErrorClass::Http => {
                    ErrorKind::Unavailable
                }
                git2::ErrorClass::Odb | git2::ErrorClass::Object => ErrorKind::Corruption,
                _ => ErrorKind::Other,
            },
            Error::Conflict { .. } | Error::Remote { .. } | Error::Unverified { .. } => {
                ErrorKind::Unavailable
            }
            Error::Rejected { .. } => ErrorKind::Other,
            Error::Corrupt { .. } => ErrorKind::Corruption,
            Error::Tiering(e) => e.kind(),
            Error::Log(_) | Error::Io { .. } => ErrorKind::Io,
        }
    }
}

impl From<Error> for strata_tiering::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Tiering(inner) => inner,
            other => strata_tiering::Error::tier("cold", other.kind(), other),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
