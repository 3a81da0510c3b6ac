//! The Router: classifies keys, sends writes as far down the tiers as their criticality asks,
//! reads through the tiers with promotion, and keeps the store serving when a tier fails.
//!
//! ```text
//!  write(ops) ─ classify ─┬─ LOW ───────────────────────────────► cache          (memory only)
//!                         └─ MEDIUM+ ─► Log.append ─► LSN ─► hot (+ cache copy, if cached)
//!                              │ log or warm failing (degraded)        │ owner flushes hot → warm
//!                              └─► fallback cache + replay queue       │ committer tails Log → cold
//!                                  drained in order on recovery        │ pusher → remote
//!  read(key) ─ fallback ─► hot ─► cache ─► warm ─► cold ─ promote a cold hit into cache
//! ```
//!
//! - [`rules`]: [`RuleSet`] — exact keys, glob [`Pattern`]s (syntax in [`pattern`]) and
//!   keyspace defaults, each carrying a [`Class`] (criticality, evictable, compressible, ttl);
//!   persisted as JSON.
//! - [`breaker`]: one [`CircuitBreaker`] per tier, on a [`Clock`](crate::clock::Clock) the tests
//!   control; every state change is a [`BreakerEvent`].
//! - [`watermark`]: the [`Stage`]s a write passes (memory, WAL, warm, cold, remote), their
//!   shared [`Watermarks`] and blocking waits; [`Downstream`] nudges later stages.
//! - [`Router`] itself, built with [`RouterBuilder`]: writes return a [`Receipt`] saying how far
//!   the write got; reads return a value or a [`ReadOutcome`]; degradation
//!   ([`DegradationLevel`]), health probes ([`Probe`]) and archival ([`Evictor`]).
//!
//! The Router knows tiers only through [`Tier`](crate::Tier), the log through
//! [`Log`](strata_wal::Log), and the owner's machinery through the small traits here, so it
//! can be tested with in-memory stand-ins for everything.
//!
//! # Sequence numbers
//!
//! A logged write's seqno is the LSN of its record. A LOW write never reaches the log; it takes
//! the log's last LSN at the time of the write, so versions from every tier still order
//! against each other, and at an equal seqno the cached LOW version is the newer one. The Router
//! must be the only writer of its log: it tells records it appended from records it did not by
//! the log's last LSN.

pub mod breaker;
pub mod pattern;
pub mod rules;
pub mod watermark;

mod archive;
mod base;
mod degrade;
mod health;
mod live_rules;
mod read;
mod write;

pub use self::archive::{ArchiveReport, Evictor, LsnTimeline, WriteTimes};
pub use self::base::{Router, RouterBuilder, RouterConfig, SyncMode};
pub use self::breaker::{BreakerConfig, BreakerEvent, BreakerState, CircuitBreaker, EventHub};
pub use self::degrade::{DegradationLevel, RecoveryReport};
pub use self::health::{HealthReport, Probe, ProbeResult};
pub use self::pattern::{Pattern, PatternKind, MAX_PATTERN_LEN};
pub use self::read::{ReadLevel, ReadOptions, ReadOutcome, Source};
pub use self::rules::{Class, Rule, RuleSet};
pub use self::watermark::{Downstream, NoDownstream, Stage, StageReceipt, Watermarks};
pub use self::write::{Op, Receipt, ReplayReport};

use std::fmt;

use crate::error::Error;

/// The parts of the store a circuit breaker can stand in front of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TierId {
    /// The write-ahead log.
    Log,
    /// Warm on-disk segments.
    Warm,
    /// The cold git repository.
    Cold,
    /// The git remote.
    Remote,
}

impl TierId {
    /// Every tier with a breaker.
    pub const ALL: [TierId; 4] = [TierId::Log, TierId::Warm, TierId::Cold, TierId::Remote];

    /// The lowercase name used in errors and events.
    pub fn as_str(self) -> &'static str {
        match self {
            TierId::Log => "log",
            TierId::Warm => "warm",
            TierId::Cold => "cold",
            TierId::Remote => "remote",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            TierId::Log => 0,
            TierId::Warm => 1,
            TierId::Cold => 2,
            TierId::Remote => 3,
        }
    }
}

impl fmt::Display for TierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error and its chain of sources on one line, for event causes and probe reports, which
/// outlive the error and so cannot hand the chain on.
pub(crate) fn describe(error: &Error) -> String {
    let mut out = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
