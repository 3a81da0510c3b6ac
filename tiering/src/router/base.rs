//! The [`Router`] value: its parts, how it is built, its settings, rules and failure reports.
//!
//! The write, read, health and archival paths live in their own modules and are methods of
//! the same type.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use strata_wal::Log;

use super::archive::{LsnTimeline, WriteTimes};
use super::breaker::{BreakerConfig, CircuitBreaker, EventHub};
use super::degrade::{DegradationLevel, Pending, RecoveryReport};
use super::health::ProbeSlot;
use super::live_rules::LiveRules;
use super::pattern::Pattern;
use super::rules::{Class, Rule, RuleSet};
use super::watermark::{Downstream, NoDownstream, Stage, StageReceipt, Watermarks};
use super::{Evictor, Probe, TierId};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::tier::Tier;
use crate::types::{Entry, Key, Limits, Lsn};

/// Degradation levels by their index in [`Router::level`]'s atomic.
const LEVELS: [DegradationLevel; 3] = [
    DegradationLevel::Normal,
    DegradationLevel::ReadOnly,
    DegradationLevel::InMemory,
];

fn level_index(level: DegradationLevel) -> u8 {
    match level {
        DegradationLevel::Normal => 0,
        DegradationLevel::ReadOnly => 1,
        DegradationLevel::InMemory => 2,
    }
}

/// Whether a logged write waits for the log's fsync before it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Every write calls [`Log::sync`]; concurrent writers share one fsync. The receipt of a
    /// write that returns is durable unless the sync failed.
    #[default]
    PerWrite,
    /// Writes only append; the log's own policy decides when to sync. The receipt says
    /// whether the write happened to be synced already.
    LogPolicy,
}

/// The Router's settings; each field's default is given in its documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// Whether writes wait for an fsync.
    pub sync: SyncMode,
    /// The settings of every tier's breaker.
    pub breaker: BreakerConfig,
    /// Distinct keys the fallback cache may hold while degraded (1,000).
    pub fallback_capacity: usize,
    /// Changes the replay queue may hold while degraded (10,000).
    pub replay_capacity: usize,
    /// Changes per log append when draining the replay queue (100).
    pub drain_batch: usize,
    /// How often each health probe runs (30 s).
    pub health_interval: Duration,
    /// Warm tier size above which the oldest entries are archived (2 GiB).
    pub warm_capacity_bytes: u64,
    /// Entries archived per [`Router::archive_tick`] at most (1,000).
    pub archive_batch: usize,
    /// Size limits on written values.
    pub limits: Limits,
    /// Breaker events remembered in [`EventHub::recent`] (256).
    pub event_history: usize,
    /// Whether a version read from warm is copied into the cache (false). Versions read from
    /// cold always are.
    ///
    /// Warm segments are memory-mapped, so the page cache already keeps what warm reads
    /// touch. A copy in the cache would hold those bytes a second time, and its lookups cost
    /// about what the warm read they save does: on 1,000,000 keys read at random, copying
    /// each warm hit made reads 1.7 to 1.8 times slower. Turn it on where reading warm is
    /// slow, for example segments read through a filesystem that does not cache them.
    pub promote_from_warm: bool,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            sync: SyncMode::PerWrite,
            breaker: BreakerConfig::default(),
            fallback_capacity: 1_000,
            replay_capacity: 10_000,
            drain_batch: 100,
            health_interval: Duration::from_secs(30),
            warm_capacity_bytes: 2 << 30,
            archive_batch: 1_000,
            limits: Limits::default(),
            event_history: 256,
            promote_from_warm: false,
        }
    }
}

/// Assembles a [`Router`]. Only the hot tier, the cache and the log are required.
pub struct RouterBuilder {
    hot: Arc<dyn Tier>,
    cache: Arc<dyn Tier>,
    log: Arc<dyn Log>,
    warm: Option<Arc<dyn Tier>>,
    cold: Option<Arc<dyn Tier>>,
    clock: Arc<dyn Clock>,
    rules: RuleSet,
    rules_path: Option<PathBuf>,
    config: RouterConfig,
    downstream: Arc<dyn Downstream>,
    evictor: Option<Arc<dyn Evictor>>,
    write_times: Option<Arc<dyn WriteTimes>>,
    watermarks: Option<Arc<Watermarks>>,
}

impl RouterBuilder {
    /// Starts a Router over `hot` (the write buffer of logged writes), `cache` (LOW writes
    /// and promoted copies) and `log`.
    pub fn new(hot: Arc<dyn Tier>, cache: Arc<dyn Tier>, log: Arc<dyn Log>) -> RouterBuilder {
        RouterBuilder {
            hot,
            cache,
            log,
            warm: None,
            cold: None,
            clock: Arc::new(SystemClock),
            rules: RuleSet::new(),
            rules_path: None,
            config: RouterConfig::default(),
            downstream: Arc::new(NoDownstream),
            evictor: None,
            write_times: None,
            watermarks: None,
        }
    }

    /// The warm tier, read after hot and cache.
    #[must_use]
    pub fn warm(mut self, warm: Arc<dyn Tier>) -> Self {
        self.warm = Some(warm);
        self
    }

    /// The cold tier, read after warm and written by archival.
    #[must_use]
    pub fn cold(mut self, cold: Arc<dyn Tier>) -> Self {
        self.cold = Some(cold);
        self
    }

    /// The clock for breakers, expiry, probes and archival (the system clock by default).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The classification rules to start with.
    #[must_use]
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = rules;
        self
    }

    /// Where rule changes are persisted; without one they live in memory only.
    #[must_use]
    pub fn rules_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.rules_path = Some(path.into());
        self
    }

    /// The settings.
    #[must_use]
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Who to nudge when a write or a waiter needs a later stage soon.
    #[must_use]
    pub fn downstream(mut self, downstream: Arc<dyn Downstream>) -> Self {
        self.downstream = downstream;
        self
    }

    /// Drops archived entries from the warm tier; without one, archival does nothing.
    #[must_use]
    pub fn evictor(mut self, evictor: Arc<dyn Evictor>) -> Self {
        self.evictor = Some(evictor);
        self
    }

    /// When entries were written, for archival by age; by default the Router's own
    /// [`LsnTimeline`], which knows only writes made since it started.
    #[must_use]
    pub fn write_times(mut self, times: Arc<dyn WriteTimes>) -> Self {
        self.write_times = Some(times);
        self
    }

    /// Shares watermarks made beforehand (for instance set from the manifest and the git
    /// repository before the Router exists); by default the Router makes its own.
    #[must_use]
    pub fn watermarks(mut self, watermarks: Arc<Watermarks>) -> Self {
        self.watermarks = Some(watermarks);
        self
    }

    /// Builds the Router. Its WAL watermark starts at the log's synced LSN; the log itself is
    /// probed by a built-in health probe.
    pub fn build(self) -> Router {
        let events = Arc::new(EventHub::new(self.config.event_history));
        let breakers = TierId::ALL.map(|tier| {
            CircuitBreaker::new(
                tier,
                self.config.breaker.clone(),
                Arc::clone(&self.clock),
                Arc::clone(&events),
            )
        });
        let watermarks = self.watermarks.unwrap_or_default();
        watermarks.advance(Stage::Wal, self.log.synced_lsn(), None);
        let timeline = Arc::new(LsnTimeline::new(Arc::clone(&self.clock)));
        let write_times = self
            .write_times
            .unwrap_or_else(|| Arc::clone(&timeline) as Arc<dyn WriteTimes>);
        let now = self.clock.now_ms();
        let probes = vec![ProbeSlot::log(now, self.config.health_interval)];
        Router {
            hot: self.hot,
            cache: self.cache,
            log: self.log,
            warm: self.warm,
            cold: self.cold,
            clock: self.clock,
            rules: LiveRules::new(self.rules),
            rules_path: self.rules_path,
            config: self.config,
            breakers,
            events,
            watermarks,
            downstream: self.downstream,
            evictor: self.evictor,
            write_times,
            timeline,
            pending: Mutex::new(Pending::default()),
            level: AtomicU8::new(0),
            append_lock: Mutex::new(()),
            drain_lock: Mutex::new(()),
            probes: Mutex::new(probes),
            flushes: AtomicU64::new(0),
        }
    }
}

/// Classifies keys and routes reads and writes through the tiers (see the
/// [module documentation](super)).
pub struct Router {
    pub(super) hot: Arc<dyn Tier>,
    pub(super) cache: Arc<dyn Tier>,
    pub(super) log: Arc<dyn Log>,
    pub(super) warm: Option<Arc<dyn Tier>>,
    pub(super) cold: Option<Arc<dyn Tier>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) rules: LiveRules,
    rules_path: Option<PathBuf>,
    pub(super) config: RouterConfig,
    breakers: [CircuitBreaker; 4],
    events: Arc<EventHub>,
    pub(super) watermarks: Arc<Watermarks>,
    pub(super) downstream: Arc<dyn Downstream>,
    pub(super) evictor: Option<Arc<dyn Evictor>>,
    pub(super) write_times: Arc<dyn WriteTimes>,
    pub(super) timeline: Arc<LsnTimeline>,
    pub(super) pending: Mutex<Pending>,
    /// The degradation level as its index in [`LEVELS`]. It is never normal while the replay
    /// queue holds anything, so the normal paths test this one atomic and take the pending
    /// lock only when degraded. It is an atomic rather than part of [`Pending`] so that
    /// failures can raise it while a drain holds the pending lock.
    level: AtomicU8,
    /// Held around each append so that, when one fails, the log's last LSN tells whether the
    /// records went in regardless (and must not be queued too).
    pub(super) append_lock: Mutex<()>,
    /// Held for a whole drain of the replay queue, so only one runs at a time.
    pub(super) drain_lock: Mutex<()>,
    pub(super) probes: Mutex<Vec<ProbeSlot>>,
    /// Counts [`Router::note_flush`] calls: a promotion that sees it unchanged knows no
    /// version left the hot tier for warm while it ran.
    pub(super) flushes: AtomicU64,
}

impl Router {
    /// A builder over the required parts.
    pub fn builder(hot: Arc<dyn Tier>, cache: Arc<dyn Tier>, log: Arc<dyn Log>) -> RouterBuilder {
        RouterBuilder::new(hot, cache, log)
    }

    /// Tells the Router that versions are about to leave the hot tier for warm. The owner
    /// calls it once the flushed versions are readable in warm and before the hot tier lets
    /// go of them, and the same before any other move of versions from hot to warm.
    ///
    /// A promotion from warm copies what it read into the cache and then looks again for a
    /// newer version: in the hot tier only, unless a flush was noted meanwhile, when the
    /// newer version may have moved to warm and warm is read again.
    pub fn note_flush(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
    }

    /// The settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The class of `key` under the current rules.
    pub fn classify(&self, key: &[u8]) -> Class {
        self.rules.with(|rules| rules.classify(key))
    }

    /// A copy of the current rules.
    pub fn rule_set(&self) -> RuleSet {
        RuleSet::clone(&self.rules.snapshot())
    }

    /// The current rules, in precedence order.
    pub fn list_rules(&self) -> Vec<Rule> {
        self.rules.snapshot().list().into_iter().cloned().collect()
    }

    /// Adds or replaces a rule, persisting the new rules first when the Router has a rules
    /// path; if that fails, nothing changes. Returns the rule replaced.
    ///
    /// A rule change does not move data already written. A key that becomes LOW is read
    /// from the cache only, so its logged versions are no longer seen; versions written while
    /// a key was LOW stay in the cache only, and once it is no longer LOW a version in the
    /// hot tier wins over them, as if they had been evicted (which the LOW contract allows).
    pub fn set_rule(&self, rule: Rule) -> Result<Option<Rule>, Error> {
        self.change_rules(|rules| rules.insert(rule))
    }

    /// Removes the rule for `pattern`, persisting as [`set_rule`](Self::set_rule) does.
    pub fn remove_rule(&self, pattern: &Pattern) -> Result<Option<Rule>, Error> {
        self.change_rules(|rules| rules.remove(pattern))
    }

    /// Changes the class of keys no rule matches, persisting as [`set_rule`](Self::set_rule).
    pub fn set_default_class(&self, class: Class) -> Result<(), Error> {
        self.change_rules(|rules| rules.set_default(class))
    }

    fn change_rules<T>(&self, change: impl FnOnce(&mut RuleSet) -> T) -> Result<T, Error> {
        self.rules.change(change, |next| match &self.rules_path {
            Some(path) => next.save(path),
            None => Ok(()),
        })
    }

    /// The stage watermarks, to share with the threads that advance them.
    pub fn watermarks(&self) -> &Arc<Watermarks> {
        &self.watermarks
    }

    /// The watermark `stage` has reached, for callers that only want the number.
    pub fn watermark(&self, stage: Stage) -> Lsn {
        self.watermarks.get(stage)
    }

    /// Where breaker events go.
    pub fn events(&self) -> &Arc<EventHub> {
        &self.events
    }

    /// The breaker of `tier`.
    pub fn breaker(&self, tier: TierId) -> &CircuitBreaker {
        // `TierId::index` covers the array exactly.
        &self.breakers[tier.index()]
    }

    /// The current degradation level.
    pub fn level(&self) -> DegradationLevel {
        let index = usize::from(self.level.load(Ordering::Acquire));
        LEVELS
            .get(index)
            .copied()
            .unwrap_or(DegradationLevel::InMemory)
    }

    /// Whether the store is degraded (writes at MEDIUM and above go to the replay queue).
    pub fn is_degraded(&self) -> bool {
        self.level.load(Ordering::Acquire) != 0
    }

    /// Raises the degradation level to at least `level`.
    pub(super) fn enter(&self, level: DegradationLevel) {
        self.level.fetch_max(level_index(level), Ordering::AcqRel);
    }

    /// Returns to normal operation; the caller holds the pending lock and has seen the queue
    /// empty.
    pub(super) fn leave(&self) {
        self.level.store(0, Ordering::Release);
    }

    /// Changes waiting in the replay queue.
    pub fn queued(&self) -> usize {
        self.lock_pending().queued_changes()
    }

    /// Keys held by the fallback cache.
    pub fn fallback_len(&self) -> usize {
        self.lock_pending().fallback_len()
    }

    /// The writes accepted while degraded and not yet in the log: the newest queued version
    /// of each key in `range`, in key order (empty when the store is not degraded).
    pub fn fallback_entries(&self, range: &crate::range::KeyRange) -> Vec<(Key, Entry)> {
        if !self.is_degraded() {
            return Vec::new();
        }
        self.lock_pending().entries_in(range)
    }

    /// Reports a failure of `tier` seen outside the Router (a failed flush into warm, a failed
    /// commit or push). Opening the warm breaker degrades the store to read-only; opening the
    /// log's, to in-memory.
    pub fn report_failure(&self, tier: TierId, error: &Error) {
        self.on_failure(tier, error);
    }

    /// Reports a success of `tier` seen outside the Router; if it closes a breaker the store
    /// was degraded by, the replay queue is drained.
    pub fn report_success(&self, tier: TierId) -> Option<RecoveryReport> {
        self.breaker(tier).record_success();
        self.is_degraded().then(|| self.try_recover())
    }

    /// Blocks until `stage` has passed `lsn`, for at most `timeout` (real time).
    ///
    /// For the WAL stage the Router syncs the log itself; for later stages it first asks the
    /// [`Downstream`] to hurry.
    pub fn wait_for(
        &self,
        stage: Stage,
        lsn: Lsn,
        timeout: Duration,
    ) -> Result<StageReceipt, Error> {
        if self.watermarks.get(stage) >= lsn {
            return Ok(self.watermarks.receipt(stage));
        }
        match stage {
            Stage::Memory => {}
            Stage::Wal => {
                if self.breaker(TierId::Log).allow() {
                    self.sync_log(None);
                }
            }
            Stage::Warm | Stage::Cold | Stage::Remote => self.downstream.request(stage, lsn),
        }
        self.watermarks.wait_for(stage, lsn, timeout)
    }

    /// Syncs the log and advances the WAL watermark; returns the synced LSN, or `None` when
    /// the sync failed (the failure is counted against the log's breaker).
    pub(super) fn sync_log(&self, key: Option<&crate::types::Key>) -> Option<Lsn> {
        match self.log.sync() {
            Ok(synced) => {
                self.breaker(TierId::Log).record_success();
                self.watermarks.advance(Stage::Wal, synced, None);
                Some(synced)
            }
            Err(source) => {
                let error = Error::Log {
                    op: "sync",
                    key: key.cloned(),
                    source,
                };
                self.on_failure(TierId::Log, &error);
                None
            }
        }
    }

    /// Counts a failure against `tier`'s breaker and degrades if the breaker is no longer
    /// closed.
    pub(super) fn on_failure(&self, tier: TierId, error: &Error) {
        let breaker = self.breaker(tier);
        if !breaker.record_failure(error) || breaker.is_closed() {
            return;
        }
        match tier {
            TierId::Log => self.enter(DegradationLevel::InMemory),
            TierId::Warm => self.enter(DegradationLevel::ReadOnly),
            TierId::Cold | TierId::Remote => {}
        }
    }

    pub(super) fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a health probe for `tier`, run every [`RouterConfig::health_interval`].
    pub fn add_probe(&self, tier: TierId, probe: Arc<dyn Probe>) {
        self.add_probe_every(tier, probe, self.config.health_interval);
    }

    /// Registers a health probe for `tier`, run every `interval`.
    pub fn add_probe_every(&self, tier: TierId, probe: Arc<dyn Probe>, interval: Duration) {
        let now = self.clock.now_ms();
        self.probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ProbeSlot::custom(tier, probe, now, interval));
    }
}
