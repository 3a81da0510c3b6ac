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

    /// The write-ahead log failed while the Router was using it. The log's own error is the
    /// [`source`](std::error::Error::source), as for [`Error::Tier`].
    #[error("log {op} failed{}", for_key(key.as_ref()))]
    Log {
        /// What the Router was doing: `append`, `sync`, `read`, `probe`.
        op: &'static str,
        /// The first key of the write concerned, when there was one.
        key: Option<Key>,
        /// The log's own error.
        #[source]
        source: strata_wal::Error,
    },

    /// A tier was not called because its circuit breaker is open, or was skipped by a read
    /// that could not be answered without it.
    #[error("tier `{tier}` is unavailable{}: {reason}", for_key(key.as_ref()))]
    TierUnavailable {
        /// The tier's name.
        tier: String,
        /// The key being read or written, when there was one.
        key: Option<Key>,
        /// Why the tier was not used.
        reason: String,
    },

    /// A classification pattern could not be parsed.
    #[error("invalid classification pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The rejected pattern, escaped and truncated.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The key is reserved for the store's own records and cannot be written or read.
    #[error("key `{0}` is reserved for the store's own use")]
    ReservedKey(Key),

    /// A write arrived while the store is degraded and its replay queue is full. The write
    /// was not accepted in any form.
    #[error("write of key `{key}` refused: the replay queue is full ({capacity} changes)")]
    ReplayQueueFull {
        /// The first key of the refused write.
        key: Key,
        /// The queue's bound, in changes.
        capacity: usize,
    },

    /// A write arrived while the store is degraded and the fallback cache already holds as
    /// many distinct keys as it may. The write was not accepted in any form.
    #[error("write of key `{key}` refused: the fallback cache is full ({capacity} keys)")]
    FallbackFull {
        /// The first key of the write that did not fit.
        key: Key,
        /// The cache's bound, in keys.
        capacity: usize,
    },

    /// A wait for a durability stage ran out of time.
    #[error("timed out after {waited_ms} ms waiting for stage {stage} to reach LSN {lsn} (it is at {reached})")]
    WaitTimeout {
        /// The stage waited for.
        stage: &'static str,
        /// The LSN it had to reach.
        lsn: crate::Lsn,
        /// Where it was when the wait gave up.
        reached: crate::Lsn,
        /// How long the wait lasted.
        waited_ms: u64,
    },

    /// Reading or writing the persisted classification rules failed.
    #[error("classification rules at {}: {op} failed", path.display())]
    RulesIo {
        /// The rules file.
        path: std::path::PathBuf,
        /// What was being done: `create`, `write`, `fsync`, `rename`, `read`.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Persisted classification rules do not parse.
    #[error("classification rules ({origin}): {detail}")]
    BadRules {
        /// Where they came from: the file's path, or `in memory`.
        origin: String,
        /// What is wrong with them.
        detail: String,
    },

    /// A write carried no operations.
    #[error("a write must carry at least one operation")]
    EmptyWrite,
}

/// Renders ` for key `k`` for messages that may or may not concern one key.
fn for_key(key: Option<&Key>) -> String {
    key.map_or_else(String::new, |k| format!(" for key `{k}`"))
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
            Error::Log { source, .. } => wal_kind(source),
            Error::TierUnavailable { .. } => ErrorKind::Unavailable,
            Error::InvalidPattern { .. } | Error::ReservedKey(_) | Error::EmptyWrite => {
                ErrorKind::InvalidInput
            }
            Error::ReplayQueueFull { .. } | Error::FallbackFull { .. } => ErrorKind::Full,
            Error::WaitTimeout { .. } => ErrorKind::Timeout,
            Error::RulesIo { .. } => ErrorKind::Io,
            Error::BadRules { .. } => ErrorKind::Corruption,
        }
    }

    /// The name of the tier that failed, for tier errors (`log` for the write-ahead log).
    pub fn tier_name(&self) -> Option<&str> {
        match self {
            Error::Tier { tier, .. } | Error::TierUnavailable { tier, .. } => Some(tier),
            Error::Log { .. } => Some("log"),
            _ => None,
        }
    }
}

/// Sorts the log's errors into kinds, so the log's circuit breaker can treat them like any
/// tier's.
fn wal_kind(error: &strata_wal::Error) -> ErrorKind {
    use strata_wal::Error as W;
    match error {
        W::Io { source, .. } => ErrorKind::of_io(source),
        W::NotDurable { cause, .. } => match wal_kind(cause) {
            ErrorKind::Full => ErrorKind::Full,
            _ => ErrorKind::Io,
        },
        W::Corruption { .. } => ErrorKind::Corruption,
        W::Stopped(_) | W::Unavailable(_) => ErrorKind::Unavailable,
        W::EmptyBatch | W::RecordTooLarge { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
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
    /// A wait for something to happen ran out of time.
    Timeout,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The kind of a failed operating-system call: [`Full`](ErrorKind::Full) when the disk or
    /// the user's quota is out of space (ENOSPC, EDQUOT), [`Io`](ErrorKind::Io) otherwise.
    pub fn of_io(error: &std::io::Error) -> ErrorKind {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match error.raw_os_error() {
            Some(ENOSPC | EDQUOT) => ErrorKind::Full,
            _ if error.kind() == std::io::ErrorKind::StorageFull => ErrorKind::Full,
            _ => ErrorKind::Io,
        }
    }

    /// A short lowercase description, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Io => "I/O error",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Full => "full",
            ErrorKind::Timeout => "timed out",
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
    fn router_errors_name_what_and_where() {
        let key = Key::new("task:1").unwrap();
        let e = Error::Log {
            op: "append",
            key: Some(key.clone()),
            source: strata_wal::Error::Unavailable("disk gone".into()),
        };
        assert_eq!(e.to_string(), "log append failed for key `task:1`");
        assert_eq!(
            e.source().unwrap().to_string(),
            "wal unavailable: disk gone"
        );
        assert_eq!(
            (e.kind(), e.tier_name()),
            (ErrorKind::Unavailable, Some("log"))
        );
        let e = Error::TierUnavailable {
            tier: "warm".into(),
            key: Some(key.clone()),
            reason: "its circuit breaker is open".into(),
        };
        assert_eq!(
            e.to_string(),
            "tier `warm` is unavailable for key `task:1`: its circuit breaker is open"
        );
        assert_eq!(e.tier_name(), Some("warm"));
        let full = Error::ReplayQueueFull { key, capacity: 10 };
        assert_eq!(full.kind(), ErrorKind::Full);
        assert!(full.to_string().contains("task:1") && full.to_string().contains("10"));
        assert_eq!(Error::EmptyWrite.kind(), ErrorKind::InvalidInput);
        assert_eq!(ErrorKind::Timeout.to_string(), "timed out");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
