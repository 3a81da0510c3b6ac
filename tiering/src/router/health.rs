//! Health checks: probes run on the Router's clock, and their results feed the breakers.
//!
//! Each tier may have probes (the owner's: segment checksums for warm, the git repository for
//! cold, the remote). The log has a built-in one: append a [probe record](crate::record) and
//! sync it, which exercises exactly what a write needs.
//!
//! [`Router::health_tick`] runs, for each probe, when:
//! - its breaker is closed and the probe's interval (default 30 s) has passed since it last ran;
//! - its breaker is half-open — on every tick, since a probe is the trial call that can
//!   close it;
//! - never while its breaker is open: an open breaker means the tier is left alone until its
//!   timeout runs out.
//!
//! After probing, a degraded store tries to drain its replay queue.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::breaker::BreakerState;
use super::degrade::{DegradationLevel, RecoveryReport};
use super::watermark::Stage;
use super::{Router, TierId};
use crate::error::Error;
use crate::record;

/// A health check of one tier.
pub trait Probe: Send + Sync {
    /// Checks the tier; an error counts as a failure of the tier.
    fn probe(&self) -> Result<(), Error>;
}

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// The tier probed.
    pub tier: TierId,
    /// Why the probe failed; `None` when it passed.
    pub error: Option<String>,
}

/// What [`Router::health_tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// The probes run, in registration order.
    pub results: Vec<ProbeResult>,
    /// The degradation level afterwards.
    pub level: DegradationLevel,
    /// The recovery attempt made, if the store was degraded.
    pub recovery: Option<RecoveryReport>,
}

#[derive(Clone)]
enum ProbeKind {
    Log,
    Custom(Arc<dyn Probe>),
}

/// A registered probe and when it is next due.
pub(crate) struct ProbeSlot {
    tier: TierId,
    kind: ProbeKind,
    interval_ms: u64,
    next_due_ms: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ProbeSlot {
    /// The built-in log probe, due at once.
    pub fn log(now_ms: u64, interval: Duration) -> ProbeSlot {
        ProbeSlot {
            tier: TierId::Log,
            kind: ProbeKind::Log,
            interval_ms: millis(interval),
            next_due_ms: now_ms,
        }
    }

    /// An owner's probe, due at once.
    pub fn custom(
        tier: TierId,
        probe: Arc<dyn Probe>,
        now_ms: u64,
        interval: Duration,
    ) -> ProbeSlot {
        ProbeSlot {
            tier,
            kind: ProbeKind::Custom(probe),
            interval_ms: millis(interval),
            next_due_ms: now_ms,
        }
    }
}

impl Router {
    /// Runs the probes that are due and feeds their results to the breakers; then, if the
    /// store is degraded, tries to recover. Call it periodically (every second or so); each
    /// probe keeps to its own interval.
    pub fn health_tick(&self) -> HealthReport {
        let now = self.clock.now_ms();
        let due: Vec<(usize, TierId, ProbeKind)> = {
            let probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
            probes
                .iter()
                .enumerate()
                .filter(|(_, slot)| match self.breaker(slot.tier).state() {
                    BreakerState::Open => false,
                    BreakerState::HalfOpen => true,
                    BreakerState::Closed => now >= slot.next_due_ms,
                })
                .map(|(i, slot)| (i, slot.tier, slot.kind.clone()))
                .collect()
        };
        // Probes run without the registry lock: they may be slow, and may register others.
        let mut results = Vec::with_capacity(due.len());
        for (_, tier, kind) in &due {
            let outcome = match kind {
                ProbeKind::Log => self.probe_log(),
                ProbeKind::Custom(probe) => probe.probe(),
            };
            let error = match outcome {
                Ok(()) => {
                    self.breaker(*tier).record_success();
                    None
                }
                Err(error) => {
                    self.on_failure(*tier, &error);
                    Some(super::describe(&error))
                }
            };
            results.push(ProbeResult { tier: *tier, error });
        }
        {
            let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
            for (i, _, _) in &due {
                if let Some(slot) = probes.get_mut(*i) {
                    slot.next_due_ms = now.saturating_add(slot.interval_ms);
                }
            }
        }
        let recovery = self.is_degraded().then(|| self.try_recover());
        HealthReport {
            results,
            level: self.level(),
            recovery,
        }
    }

    /// Appends a probe record and syncs it.
    fn probe_log(&self) -> Result<(), Error> {
        let probe = record::encode_probe();
        let fail = |op, source| Error::Log {
            op,
            key: None,
            source,
        };
        {
            let _guard = self
                .append_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.log
                .append(&[probe.as_slice()])
                .map_err(|e| fail("probe append", e))?;
        }
        let synced = self.log.sync().map_err(|e| fail("probe sync", e))?;
        self.watermarks.advance(Stage::Wal, synced, None);
        Ok(())
    }
}

impl std::fmt::Debug for ProbeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSlot")
            .field("tier", &self.tier)
            .field("interval_ms", &self.interval_ms)
            .field("next_due_ms", &self.next_due_ms)
            .finish()
    }
}
