//! The crate's one error type.
//!
//! Validation failures (bad keys, oversized values, unknown names) and failures reported by tier
//! backends share one enum so the Router can treat every tier alike. Each error carries an
//! [`ErrorKind`]; a circuit breaker decides what counts as a tier failure by kind alone, without
//! knowing the backend's own error types.

use std::fmt;

use crate::types::Key;

/// Everything that can go wrong in this crate or in a [`Tier`](crate::Tier) implementation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key was empty; keys are at least one byte long.
    #[error("invalid key: keys must be at least 1 byte long, got an empty key")]
    EmptyKey,

    /// A key was longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("invalid key: key is {len} bytes, over the {max}-byte limit")]
    KeyTooLong {
        /// Length of the rejected key in bytes.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },

    /// A value was larger than the configured [`Limits::max_value_len`](crate::Limits).
    #[error("value for key `{key}` is {len} bytes, over the {max}-byte limit")]
    ValueTooLarge {
        /// The key the value was written under.
        key: Key,
        /// Length of the rejected value in bytes.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },

    /// A criticality name was not one of `low`, `medium`, `high`, `critical`.
    ///
    /// Holds the rejected text, escaped and truncated so a hostile input cannot flood a log.
    #[error("unknown criticality `{0}`: expected one of low, medium, high, critical")]
    UnknownCriticality(String),

    /// A WAL record does not decode as a change (see [`record`](crate::record)).
    #[error("malformed change record at LSN {lsn}: {detail}")]
    BadRecord {
        /// The record's LSN.
        lsn: crate::Lsn,
        /// What is wrong with it.
        detail: String,
    },

    /// A tier backend failed.
    ///
    /// The underlying cause is available through [`std::error::Error::source`] rather than
    /// repeated in the message, so error reporters that walk the chain print it once.
    #[error("tier `{tier}` failed: {kind}")]
    Tier {
        /// Name of the failing tier, as returned by [`Tier::name`](crate::Tier::name).
        tier: String,
        /// What sort of failure it was.
        kind: ErrorKind,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Builds an [`Error::Tier`] for the tier named `tier`.
    ///
    /// `source` may be any error, or a plain message (`&str` / `String`).
    pub fn tier(
        tier: impl Into<String>,
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Tier {
            tier: tier.into(),
            kind,
            source: source.into(),
        }
    }

    /// The kind of failure, for callers that decide by category (retry, trip a breaker, give up).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::EmptyKey
            | Error::KeyTooLong { .. }
            | Error::ValueTooLarge { .. }
            | Error::UnknownCriticality(_) => ErrorKind::InvalidInput,
            Error::BadRecord { .. } => ErrorKind::Corruption,
            Error::Tier { kind, .. } => *kind,
        }
    }

    /// The name of the tier that failed, for tier errors.
    pub fn tier_name(&self) -> Option<&str> {
        match self {
            Error::Tier { tier, .. } => Some(tier),
            _ => None,
        }
    }
}

/// The category of an [`Error`].
///
/// Backends map their own errors onto these so that the Router and its circuit breakers can act
/// on them without depending on any backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller passed something invalid; retrying the same call fails the same way, and it
    /// says nothing about the health of a tier.
    InvalidInput,
    /// An operating-system I/O call failed.
    Io,
    /// Stored data failed a check (checksum, framing, format).
    Corruption,
    /// The tier cannot serve requests right now (closed, not yet opened, remote unreachable).
    Unavailable,
    /// The tier ran out of space or hit a capacity bound.
    Full,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A short lowercase description, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Io => "I/O error",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Full => "full",
            ErrorKind::Other => "other error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn validation_errors_are_invalid_input() {
        assert_eq!(Error::EmptyKey.kind(), ErrorKind::InvalidInput);
        let e = Error::KeyTooLong {
            len: 70_000,
            max: 65_536,
        };
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("70000"));
        assert!(e.to_string().contains("65536"));
        assert_eq!(
            Error::UnknownCriticality("x".into()).kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(Error::EmptyKey.tier_name(), None);
    }

    #[test]
    fn value_too_large_names_key_and_sizes() {
        let key = Key::new(b"user:\x00\xff").unwrap();
        let e = Error::ValueTooLarge {
            key,
            len: 10,
            max: 5,
        };
        let msg = e.to_string();
        assert!(msg.contains(r"user:\x00\xff"), "{msg}");
        assert!(msg.contains("10") && msg.contains('5'), "{msg}");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn tier_error_keeps_kind_name_and_source() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::tier("warm", ErrorKind::Io, io);
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.tier_name(), Some("warm"));
        assert_eq!(e.to_string(), "tier `warm` failed: I/O error");
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");

        let e = Error::tier("cold", ErrorKind::Unavailable, "remote unreachable");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.source().unwrap().to_string(), "remote unreachable");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
