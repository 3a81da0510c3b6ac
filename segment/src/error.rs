//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use strata_tiering::{ErrorKind, SeqNo};

/// Everything that can go wrong in the warm tier.
///
/// Every variant names the file it concerns and, where it matters, the byte offset and the key,
/// so an operator can go straight to the damage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// An operating-system call on a segment file, the manifest or the directory failed.
    #[error("segment I/O error: {op} {path}: {source}")]
    Io {
        /// What was being done: "create", "write", "fsync", "rename", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error, with its errno.
        #[source]
        source: io::Error,
    },

    /// Stored bytes failed a check: a checksum, a length, the structure of a block.
    #[error("segment corruption in {path} at byte {offset}: {detail}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged block or section.
        offset: u64,
        /// What is wrong, in words.
        detail: String,
    },

    /// A writer was given entries out of order (keys must ascend, and a key's versions come
    /// newest first, each seqno once).
    #[error(
        "segment {path}: entry `{key}`@{seqno} is out of order after `{previous_key}`@{previous_seqno}"
    )]
    OutOfOrder {
        /// The segment being written.
        path: PathBuf,
        /// The rejected entry's key, escaped.
        key: String,
        /// The rejected entry's seqno.
        seqno: SeqNo,
        /// The key of the entry before it, escaped.
        previous_key: String,
        /// The seqno of the entry before it.
        previous_seqno: SeqNo,
    },

    /// An entry does not fit the format (a value of 4 GiB or more).
    #[error("segment {path}: entry `{key}` is too large: {detail}")]
    TooLarge {
        /// The segment being written.
        path: PathBuf,
        /// The entry's key, escaped.
        key: String,
        /// What does not fit.
        detail: String,
    },

    /// A read touched keys whose newest versions may have been in a quarantined segment, so
    /// the answer could be stale. It stays refused until the owner has rebuilt those versions
    /// and released the quarantine.
    #[error(
        "key `{key}` may have versions in quarantined segment {path} (seqnos {min_seqno}..={max_seqno}); \
         it must be rebuilt before the key can be read"
    )]
    Quarantined {
        /// Where the quarantined segment was moved.
        path: PathBuf,
        /// The key read (for a scan, the first key of the fenced range it reached), escaped.
        key: String,
        /// Lowest seqno the segment held.
        min_seqno: SeqNo,
        /// Highest seqno the segment held.
        max_seqno: SeqNo,
    },

    /// The directory holds something this crate cannot make sense of.
    #[error("segment directory {path} is not usable: {detail}")]
    BadDirectory {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        detail: String,
    },

    /// The tier was opened read-only (see [`SegmentOptions::read_only`]).
    ///
    /// [`SegmentOptions::read_only`]: crate::SegmentOptions::read_only
    #[error("segment directory {path} is open read-only: {op} is not allowed")]
    ReadOnly {
        /// The directory.
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
    },

    /// [`release_quarantine`](crate::SegmentTier::release_quarantine) named a segment that is
    /// not quarantined.
    #[error("segment {id} is not quarantined")]
    NotQuarantined {
        /// The id given.
        id: u64,
    },

    /// A compaction was stopped because the tier is closing.
    #[error("compaction cancelled: the segment tier is closing")]
    Cancelled,
}

impl SegmentError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SegmentError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        detail: impl Into<String>,
    ) -> Self {
        SegmentError::Corruption {
            path: path.into(),
            offset,
            detail: detail.into(),
        }
    }

    /// True when the error says stored bytes are damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            SegmentError::Corruption { .. } | SegmentError::Quarantined { .. }
        )
    }

    /// The [`ErrorKind`] this error maps to in a [`strata_tiering::Error`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            SegmentError::Io { source, .. } => ErrorKind::of_io(source),
            SegmentError::Corruption { .. } | SegmentError::Quarantined { .. } => {
                ErrorKind::Corruption
            }
            SegmentError::OutOfOrder { .. }
            | SegmentError::TooLarge { .. }
            | SegmentError::NotQuarantined { .. } => ErrorKind::InvalidInput,
            SegmentError::BadDirectory { .. } | SegmentError::ReadOnly { .. } => {
                ErrorKind::Unavailable
            }
            SegmentError::Cancelled => ErrorKind::Other,
        }
    }

    /// Wraps the error as a [`strata_tiering::Error`] of the tier named `tier`.
    pub fn into_tier_error(self, tier: &str) -> strata_tiering::Error {
        let kind = self.kind();
        strata_tiering::Error::tier(tier, kind, self)
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = SegmentError::io("fsync", "/d/x.seg", io::Error::from_raw_os_error(28));
        assert_eq!(e.kind(), ErrorKind::Full);
        assert!(e.to_string().contains("/d/x.seg"));
        let e = SegmentError::corruption("/d/x.seg", 4096, "block checksum mismatch");
        assert!(e.is_corruption());
        assert_eq!(e.kind(), ErrorKind::Corruption);
        assert!(e.to_string().contains("4096"));
        let tier = e.into_tier_error("warm");
        assert_eq!(tier.kind(), ErrorKind::Corruption);
        assert_eq!(tier.tier_name(), Some("warm"));
    }
}
