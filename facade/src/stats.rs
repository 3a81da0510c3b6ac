//! What `stats` and `health` report: sizes per tier, watermarks, breakers, commit and push
//! counters, and amplification.
//!
//! Write amplification is the bytes the store wrote to disk (WAL records, segment flushes and
//! compactions) over the bytes of keys and values it was asked to write at MEDIUM or above.
//! Space amplification is the warm tier's: the bytes of its segments over the bytes its
//! newest versions would take alone.

use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Serialize;
use strata_tiering::router::{Stage, TierId};
use strata_tiering::Tier;

use crate::store::Store;

/// The size of one tier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierSize {
    /// The tier: `hot`, `cache`, `wal`, `warm` or `cold`.
    pub tier: String,
    /// Versions or entries held (for cold: unfolded chunk files).
    pub entries: u64,
    /// Bytes held in memory or on disk.
    pub bytes: u64,
}

/// A watermark and what proves it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WatermarkStat {
    /// The stage.
    pub stage: String,
    /// Every LSN up to this has reached the stage.
    pub lsn: u64,
    /// The git commit (cold) or verified remote head (remote).
    pub evidence: Option<String>,
}

/// One tier's circuit breaker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BreakerStat {
    /// The tier.
    pub tier: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    /// Consecutive failures counted.
    pub failures: u32,
}

/// Commit counters of the cold tier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommitStat {
    /// Commits made since the store opened.
    pub commits: u64,
    /// Changes they held.
    pub changes: u64,
    /// Changes per commit.
    pub average_batch: f64,
    /// Commits by trigger: quiet period, maximum age, maximum size, forced.
    pub by_trigger: [u64; 4],
    /// Tuning advice derived from the counters.
    pub advice: Vec<String>,
    /// Changes read from the log, not yet committed.
    pub pending: usize,
}

/// Push counters of the remote tier.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PushStat {
    /// The remote, without credentials.
    pub url: String,
    /// Verified pushes.
    pub pushes: u64,
    /// Attempts that failed.
    pub failed_attempts: u64,
    /// Pushes given up.
    pub failed_pushes: u64,
    /// Merges of other writers' commits.
    pub merges: u64,
}

/// Everything [`Store::stats`] reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// `normal`, `read-only` or `in-memory`.
    pub level: String,
    /// The log's last LSN.
    pub last_lsn: u64,
    /// Per-stage watermarks, in pipeline order.
    pub watermarks: Vec<WatermarkStat>,
    /// Per-tier sizes.
    pub tiers: Vec<TierSize>,
    /// Per-tier breakers.
    pub breakers: Vec<BreakerStat>,
    /// Writes waiting in the replay queue, and keys in the fallback cache.
    pub queued: (usize, usize),
    /// Cold commit counters.
    pub commits: CommitStat,
    /// Remote push counters, if there is a remote.
    pub remote: Option<PushStat>,
    /// Live warm segments, and quarantined ones.
    pub segments: (usize, usize),
    /// Bytes written to disk per byte written by the application (see the module docs).
    pub write_amplification: f64,
    /// Warm bytes on disk per byte of newest versions.
    pub space_amplification: f64,
}

/// The bytes of every file under `path`.
pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

impl Store {
    /// The store's statistics.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let router = &inner.router;
        let watermarks = Stage::ALL
            .iter()
            .map(|stage| {
                let receipt = router.watermarks().receipt(*stage);
                WatermarkStat {
                    stage: stage.as_str().to_owned(),
                    lsn: receipt.lsn,
                    evidence: receipt.evidence,
                }
            })
            .collect();
        let warm = inner.warm.segment_stats();
        let wal_bytes = inner.wal.record_bytes();
        let hot = inner.hot.stats();
        let cache = inner.cache.cache().stats();
        let cold = inner.cold.stats();
        let tiers = vec![
            TierSize {
                tier: "hot".into(),
                entries: hot.entries,
                bytes: inner.hot.approximate_bytes(),
            },
            TierSize {
                tier: "cache".into(),
                entries: cache.items,
                bytes: cache.bytes,
            },
            TierSize {
                tier: "wal".into(),
                entries: inner.wal.files().len() as u64,
                bytes: wal_bytes,
            },
            TierSize {
                tier: "warm".into(),
                entries: warm.entries,
                bytes: warm.live_bytes,
            },
            TierSize {
                tier: "cold".into(),
                entries: cold.entries,
                bytes: dir_bytes(inner.cold.store().path()),
            },
        ];
        let breakers = TierId::ALL
            .iter()
            .map(|tier| {
                let breaker = router.breaker(*tier);
                BreakerStat {
                    tier: tier.as_str().to_owned(),
                    state: breaker.state().as_str().to_owned(),
                    failures: breaker.failures(),
                }
            })
            .collect();
        let metrics = inner.committer.metrics();
        let commits = CommitStat {
            commits: metrics.commits,
            changes: metrics.changes,
            average_batch: metrics.average_batch(),
            by_trigger: [metrics.quiet, metrics.age, metrics.size, metrics.manual],
            advice: metrics.advice(),
            pending: inner.committer.pending_changes(),
        };
        let remote = inner.remote.as_ref().map(|remote| {
            let m = remote.metrics();
            PushStat {
                url: remote.url().to_owned(),
                pushes: m.pushes,
                failed_attempts: m.failed_attempts,
                failed_pushes: m.failed_pushes,
                merges: m.merges,
            }
        });
        let user = inner.user_bytes.load(Ordering::Relaxed);
        let written = inner.wal_bytes_written(wal_bytes)
            + warm.ingested_bytes
            + warm.compaction_written_bytes;
        Stats {
            level: router.level().as_str().to_owned(),
            last_lsn: strata_wal::Log::last_lsn(inner.wal.as_ref()),
            watermarks,
            tiers,
            breakers,
            queued: (router.queued(), router.fallback_len()),
            commits,
            remote,
            segments: (warm.segments, warm.quarantined),
            write_amplification: if user == 0 {
                0.0
            } else {
                written as f64 / user as f64
            },
            space_amplification: warm.space_amplification,
        }
    }
}

/// One tier's health: its own report and its breaker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TierHealth {
    /// The tier.
    pub tier: String,
    /// `healthy`, or `degraded: …` / `failed: …` with the reason.
    pub status: String,
    /// Its breaker's state, for the tiers that have one.
    pub breaker: Option<String>,
}

/// What [`Store::health`] reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreHealth {
    /// Whether every tier is healthy and every breaker closed.
    pub healthy: bool,
    /// `normal`, `read-only` or `in-memory`.
    pub level: String,
    /// Per tier, hot to remote.
    pub tiers: Vec<TierHealth>,
    /// The last breaker state changes, oldest first: `tier from → to (cause)`.
    pub recent_events: Vec<String>,
}

impl Store {
    /// Each tier's health and breaker, the degradation level and recent breaker events. It
    /// reads what the tiers and breakers already know; the health probes run on their own
    /// schedule (see [`Store::maintain`]).
    pub fn health(&self) -> StoreHealth {
        let inner = &self.inner;
        let router = &inner.router;
        let breaker = |tier: TierId| Some(router.breaker(tier).state().as_str().to_owned());
        let mut tiers = vec![
            TierHealth {
                tier: "hot".into(),
                status: inner.hot.health().to_string(),
                breaker: None,
            },
            TierHealth {
                tier: "wal".into(),
                status: "healthy".into(),
                breaker: breaker(TierId::Log),
            },
            TierHealth {
                tier: "warm".into(),
                status: inner.warm.health().to_string(),
                breaker: breaker(TierId::Warm),
            },
            TierHealth {
                tier: "cold".into(),
                status: inner.cold.health().to_string(),
                breaker: breaker(TierId::Cold),
            },
        ];
        if let Some(remote) = &inner.remote {
            let failed = remote.metrics().failed_pushes;
            tiers.push(TierHealth {
                tier: "remote".into(),
                status: if failed == 0 {
                    "healthy".into()
                } else {
                    format!("degraded: {failed} pushes failed since the store opened")
                },
                breaker: breaker(TierId::Remote),
            });
        }
        let healthy = router.level().as_str() == "normal"
            && tiers.iter().all(|t| {
                t.status == "healthy" && t.breaker.as_deref().is_none_or(|b| b == "closed")
            });
        let recent_events = router
            .events()
            .recent()
            .into_iter()
            .map(|event| {
                let mut line = format!(
                    "{} {} → {}",
                    event.tier,
                    event.from.as_str(),
                    event.to.as_str()
                );
                if let Some(cause) = event.cause {
                    line.push_str(&format!(" ({cause})"));
                }
                line
            })
            .collect();
        StoreHealth {
            healthy,
            level: router.level().as_str().to_owned(),
            tiers,
            recent_events,
        }
    }
}
