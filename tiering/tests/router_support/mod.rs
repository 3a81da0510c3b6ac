//! Stand-ins shared by the Router tests: a tier that fails on command and can be flushed and
//! evicted from, a recording downstream, and a harness wiring a Router over them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strata_tiering::clock::{Clock, ManualClock};
use strata_tiering::record::{self, Record};
use strata_tiering::router::{
    Class, Downstream, Evictor, Probe, Router, RouterConfig, RuleSet, Stage, TierId,
};
use strata_tiering::{
    Change, Criticality, Entry, EntryIter, Error, ErrorKind, Health, Key, KeyRange, Lsn,
    MemoryTier, SeqNo, Tier, TierStats, LATEST,
};
use strata_wal::{Log, MemLog};

/// A `MemoryTier` that fails reads or writes on command, and that a test can empty (a flush)
/// or drop entries from (an eviction).
pub struct FlakyTier {
    name: String,
    inner: RwLock<Arc<MemoryTier>>,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    pub gets: AtomicU64,
}

impl FlakyTier {
    pub fn new(name: &str) -> Arc<FlakyTier> {
        Arc::new(FlakyTier {
            name: name.to_owned(),
            inner: RwLock::new(Arc::new(MemoryTier::with_name(name))),
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            gets: AtomicU64::new(0),
        })
    }

    pub fn set_failing(&self, failing: bool) {
        self.fail_reads.store(failing, Ordering::SeqCst);
        self.fail_writes.store(failing, Ordering::SeqCst);
    }

    fn fail(&self) -> Error {
        Error::tier(&self.name, ErrorKind::Io, "injected failure")
    }

    fn current(&self) -> Arc<MemoryTier> {
        Arc::clone(&self.inner.read().unwrap())
    }

    /// The newest version of every key, ignoring injected failures.
    pub fn contents(&self) -> Vec<(Key, Entry)> {
        self.current()
            .scan(&KeyRange::all(), LATEST)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Empties the tier, returning what it held (newest version of each key).
    pub fn take(&self) -> Vec<Change> {
        let mut inner = self.inner.write().unwrap();
        let old = std::mem::replace(&mut *inner, Arc::new(MemoryTier::with_name(&self.name)));
        old.scan(&KeyRange::all(), LATEST)
            .unwrap()
            .map(|r| {
                let (k, e) = r.unwrap();
                Change::new(k, e)
            })
            .collect()
    }

    /// Drops the given versions (only where they are still the newest).
    pub fn remove(&self, gone: &[Change]) {
        let mut inner = self.inner.write().unwrap();
        let kept: Vec<Change> = inner
            .scan(&KeyRange::all(), LATEST)
            .unwrap()
            .map(|r| {
                let (k, e) = r.unwrap();
                Change::new(k, e)
            })
            .filter(|c| !gone.contains(c))
            .collect();
        let fresh = MemoryTier::with_name(&self.name);
        if !kept.is_empty() {
            fresh.apply(&kept).unwrap();
        }
        *inner = Arc::new(fresh);
    }
}

impl Tier for FlakyTier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(self.fail());
        }
        self.current().get(key, snapshot)
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(self.fail());
        }
        self.current().apply(batch)
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(self.fail());
        }
        let items: Vec<_> = self.current().scan(range, snapshot)?.collect();
        Ok(Box::new(items.into_iter()))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn health(&self) -> Health {
        Health::Healthy
    }

    fn stats(&self) -> TierStats {
        self.current().stats()
    }
}

/// An evictor dropping archived versions from a `FlakyTier`.
pub struct TierEvictor(pub Arc<FlakyTier>);

impl Evictor for TierEvictor {
    fn evict(&self, archived: &[Change]) -> Result<(), Error> {
        if self.0.fail_writes.load(Ordering::SeqCst) {
            return Err(Error::tier("warm", ErrorKind::Io, "eviction failed"));
        }
        self.0.remove(archived);
        Ok(())
    }
}

/// A probe failing while its tier is told to fail.
pub struct FlagProbe(pub Arc<FlakyTier>);

impl Probe for FlagProbe {
    fn probe(&self) -> Result<(), Error> {
        let t = &self.0;
        if t.fail_writes.load(Ordering::SeqCst) || t.fail_reads.load(Ordering::SeqCst) {
            return Err(Error::tier(t.name(), ErrorKind::Io, "probe failed"));
        }
        Ok(())
    }
}

/// Records every request.
#[derive(Default)]
pub struct RecordingDownstream(pub Mutex<Vec<(Stage, Lsn)>>);

impl Downstream for RecordingDownstream {
    fn request(&self, stage: Stage, lsn: Lsn) {
        self.0.lock().unwrap().push((stage, lsn));
    }
}

pub fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// The rules the tests use: `low:*` LOW, `med:*` MEDIUM, `high:*` HIGH, `crit:*` CRITICAL.
pub fn rules() -> RuleSet {
    let mut rules = RuleSet::new();
    rules.add("low:*", Class::new(Criticality::Low)).unwrap();
    rules.add("med:*", Class::new(Criticality::Medium)).unwrap();
    rules.add("high:*", Class::new(Criticality::High)).unwrap();
    rules
        .add("crit:*", Class::new(Criticality::Critical))
        .unwrap();
    rules
}

/// A Router over stand-ins, with the parts kept for the test to poke at.
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub log: Arc<MemLog>,
    pub hot: Arc<FlakyTier>,
    pub cache: Arc<FlakyTier>,
    pub warm: Arc<FlakyTier>,
    pub cold: Arc<FlakyTier>,
    pub downstream: Arc<RecordingDownstream>,
    pub router: Router,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(RouterConfig::default())
    }

    pub fn with_config(config: RouterConfig) -> Harness {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let log = Arc::new(MemLog::new());
        let warm = FlakyTier::new("warm");
        let cold = FlakyTier::new("cold");
        Harness::assemble(clock, log, warm, cold, config)
    }

    /// A Router over the given durable parts, with a fresh hot tier and cache.
    pub fn assemble(
        clock: Arc<ManualClock>,
        log: Arc<MemLog>,
        warm: Arc<FlakyTier>,
        cold: Arc<FlakyTier>,
        config: RouterConfig,
    ) -> Harness {
        let hot = FlakyTier::new("hot");
        let cache = FlakyTier::new("cache");
        let downstream = Arc::new(RecordingDownstream::default());
        let router = Router::builder(
            Arc::clone(&hot) as Arc<dyn Tier>,
            Arc::clone(&cache) as Arc<dyn Tier>,
            Arc::clone(&log) as Arc<dyn Log>,
        )
        .warm(Arc::clone(&warm) as Arc<dyn Tier>)
        .cold(Arc::clone(&cold) as Arc<dyn Tier>)
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .rules(rules())
        .config(config)
        .downstream(Arc::clone(&downstream) as Arc<dyn Downstream>)
        .evictor(Arc::new(TierEvictor(Arc::clone(&warm))))
        .build();
        router.add_probe(TierId::Warm, Arc::new(FlagProbe(Arc::clone(&warm))));
        router.add_probe(TierId::Cold, Arc::new(FlagProbe(Arc::clone(&cold))));
        Harness {
            clock,
            log,
            hot,
            cache,
            warm,
            cold,
            downstream,
            router,
        }
    }

    /// Rebuilds the Router as after a crash: same log, warm and cold; new hot tier, cache and
    /// breakers; the log replayed from the start.
    pub fn restart(self) -> Harness {
        let h = Harness::assemble(
            self.clock,
            self.log,
            self.warm,
            self.cold,
            self.router.config().clone(),
        );
        h.router.replay_log(1).unwrap();
        h
    }

    /// Flushes the hot tier into warm as the owner would, reporting the outcome. Returns
    /// whether it worked.
    pub fn flush(&self) -> bool {
        if self.warm.fail_writes.load(Ordering::SeqCst) {
            let err = Error::tier("warm", ErrorKind::Io, "flush failed");
            self.router.report_failure(TierId::Warm, &err);
            return false;
        }
        // This stand-in moves versions out of hot before warm holds them (nothing runs
        // concurrently here), and notes the flush first all the same.
        self.router.note_flush();
        let changes = self.hot.take();
        let top = changes.iter().map(|c| c.entry.seqno).max().unwrap_or(0);
        if !changes.is_empty() {
            self.warm.apply(&changes).unwrap();
        }
        self.router.watermarks().advance(Stage::Warm, top, None);
        self.router.report_success(TierId::Warm);
        true
    }

    /// Passes enough time for open breakers to go half-open, and probes twice to close them.
    pub fn heal(&self) {
        self.clock.advance(60_000);
        self.router.health_tick();
        self.router.health_tick();
    }
}

/// Every record in the log, decoded.
pub fn log_records(log: &MemLog) -> Vec<(Lsn, Record)> {
    log.read_from(1)
        .unwrap()
        .map(|r| {
            let (lsn, bytes) = r.unwrap();
            (lsn, record::decode_any(lsn, &bytes).unwrap())
        })
        .collect()
}

/// The changes in the log, probes left out.
pub fn logged_changes(log: &MemLog) -> Vec<(Criticality, Change)> {
    log_records(log)
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Change {
                criticality,
                change,
            } => Some((criticality, change)),
            Record::Probe => None,
        })
        .collect()
}

/// The number of proptest cases: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
