//! [`Store`]: the handle applications hold, and the reads and writes it offers.
//!
//! A `Store` is a cheap, cloneable handle on one open store directory. Every clone shares the
//! same tiers; the maintenance thread (if the store runs one) stops when the last clone goes.
//!
//! ```text
//!   Store ──► Inner ─┬─ router   classify, log, hot, fall-through reads, breakers
//!                    ├─ wal      <dir>/wal/
//!                    ├─ hot      memtable (logged writes) + cache (LOW writes, promotions)
//!                    ├─ warm     <dir>/segments/
//!                    ├─ cold     <dir>/cold.git  ◄── committer tails the WAL
//!                    └─ remote   pushes cold, verified
//! ```

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use strata_gitsync::{At, ColdTier, Committer, Remote, Version};
use strata_memtable::{CacheTier, FrozenMemtable, HotTier};
use strata_segment::SegmentTier;
use strata_tiering::clock::Clock;
use strata_tiering::router::{
    Class, Op, Pattern, ReadOptions, ReadOutcome, Receipt, Rule, Stage, StageReceipt,
};
use strata_tiering::{
    Criticality, Entry, EntryIter, Key, KeyRange, Lsn, Router, SeqNo, Tier, Value,
};
use strata_wal::{Log, Wal};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::maintain::{Nudge, Worker};
use crate::open::RecoveryReport;
use crate::scan::{Layer, Scan};

/// How a single write travels, beyond its key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The criticality to write at, instead of the one the rules give the key.
    pub criticality: Option<Criticality>,
    /// How long the value stays readable; it reads as absent afterwards.
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// Writes at `criticality`.
    pub fn criticality(criticality: Criticality) -> WriteOptions {
        WriteOptions {
            criticality: Some(criticality),
            ttl: None,
        }
    }

    /// Also expires the value after `ttl`.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> WriteOptions {
        self.ttl = Some(ttl);
        self
    }
}

/// Writes applied together: all of them or none, on recovery as on success.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub(crate) ops: Vec<(Vec<u8>, Option<Value>, Option<Duration>)>,
    pub(crate) criticality: Option<Criticality>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> &mut Batch {
        self.ops
            .push((key.as_ref().to_vec(), Some(value.into()), None));
        self
    }

    /// Sets `key` to `value` for `ttl`.
    pub fn put_with_ttl(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        ttl: Duration,
    ) -> &mut Batch {
        self.ops
            .push((key.as_ref().to_vec(), Some(value.into()), Some(ttl)));
        self
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Batch {
        self.ops.push((key.as_ref().to_vec(), None, None));
        self
    }

    /// Writes every key of the batch at `criticality` instead of its class.
    pub fn at(&mut self, criticality: Criticality) -> &mut Batch {
        self.criticality = Some(criticality);
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Everything an open store is made of; shared by every [`Store`] clone.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// `None` when the store is open read-only.
    pub _lock: Option<DirLock>,
    pub wal: Arc<Wal>,
    pub hot: Arc<HotTier>,
    pub cache: Arc<CacheTier>,
    pub warm: Arc<SegmentTier>,
    pub cold: Arc<ColdTier>,
    pub committer: Committer,
    pub remote: Option<Arc<Remote>>,
    pub router: Arc<Router>,
    /// Writers hold it shared; taking a snapshot or freezing the memtable holds it
    /// exclusively, so every LSN the log has handed out is in the hot tier at that moment.
    pub gate: RwLock<()>,
    /// Held by whoever runs maintenance or a forced stage, so they run one at a time.
    pub maintenance: Mutex<()>,
    /// Memtables frozen for a flush that has not reached warm yet, with the LSN each
    /// flushes through; oldest first.
    pub unflushed: Mutex<VecDeque<(Arc<FrozenMemtable>, Lsn)>>,
    pub nudge: Arc<Nudge>,
    /// Opened read-only: every change is refused, and nothing on disk is touched.
    pub read_only: bool,
    pub recovery: RecoveryReport,
    /// Set once the shutdown has been recorded, so dropping does not do it twice.
    pub closed: AtomicBool,
    /// Key and value bytes of logged writes since the store opened.
    pub user_bytes: AtomicU64,
    /// WAL bytes on disk when the store opened, and in files dropped since.
    pub wal_at_open: u64,
    pub wal_dropped: AtomicU64,
    /// Seqnos that snapshots and transactions read at; they bound the warm GC horizon.
    pub pins: Arc<crate::archive::Pins>,
    /// Warm compactions run in maintenance ticks, not on the warm tier's own thread.
    pub compact_in_maintenance: bool,
    /// When the last archival pass ran (the store's clock, unix ms).
    pub last_archive_ms: AtomicU64,
}

/// An open store. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    // Dropped before `inner`: stopping the maintenance thread releases its handle first.
    pub(crate) _worker: Option<Arc<Worker>>,
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn key_of(bytes: &[u8]) -> Result<Key> {
    Ok(Key::new(bytes)?)
}

impl Inner {
    pub(crate) fn write_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log position every version up to which is in the hot tier or below.
    pub(crate) fn stable_seqno(&self) -> SeqNo {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.wal.last_lsn()
    }

    fn expires_at(&self, ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|ttl| {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            self.clock.now_ms().saturating_add(ms)
        })
    }

    pub(crate) fn write(&self, batch: &Batch) -> Result<Receipt> {
        let _gate = self.write_gate();
        self.write_ungated(batch)
    }

    /// Fails with [`Error::ReadOnly`] if the store was opened read-only.
    pub(crate) fn writable(&self, op: &'static str) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                dir: self.dir.clone(),
                op,
            });
        }
        Ok(())
    }

    /// Writes a batch; the caller holds the write gate, shared or exclusive.
    pub(crate) fn write_ungated(&self, batch: &Batch) -> Result<Receipt> {
        self.writable("write")?;
        let mut ops = Vec::with_capacity(batch.ops.len());
        for (key, value, ttl) in &batch.ops {
            let key = key_of(key)?;
            ops.push(match value {
                Some(value) => Op::Put {
                    key,
                    value: value.clone(),
                    expires_at: self.expires_at(*ttl),
                },
                None => Op::delete(key),
            });
        }
        let receipt = self.router.write_with(&ops, batch.criticality)?;
        if receipt.lsn.is_some() {
            let bytes: usize = batch
                .ops
                .iter()
                .map(|(k, v, _)| k.len() + v.as_ref().map_or(0, Value::len))
                .sum();
            self.user_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        Ok(receipt)
    }

    /// WAL bytes written since the store opened, given the bytes its files hold now.
    pub(crate) fn wal_bytes_written(&self, on_disk: u64) -> u64 {
        (on_disk + self.wal_dropped.load(Ordering::Relaxed)).saturating_sub(self.wal_at_open)
    }

    /// The version of `key` visible at `snapshot`, looked up as the Router reads (fallback,
    /// hot, cache, warm, cold) but without promotion.
    pub(crate) fn entry_at(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        let key = key_of(key)?;
        let single = KeyRange::new(Bound::Included(key.clone()), Bound::Included(key.clone()));
        let queued = self
            .router
            .fallback_entries(&single)
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| e.seqno <= snapshot);
        if queued.is_some() {
            return Ok(queued);
        }
        let bytes = key.as_bytes();
        if self.router.classify(bytes).criticality == Criticality::Low {
            return Ok(self.cache.get(bytes, snapshot)?);
        }
        for tier in self.tiers() {
            if let Some(entry) = tier.get(bytes, snapshot)? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    fn tiers(&self) -> [&dyn Tier; 4] {
        [
            self.hot.as_ref(),
            self.cache.as_ref(),
            self.warm.as_ref(),
            self.cold.as_ref(),
        ]
    }

    pub(crate) fn live(&self, entry: Option<Entry>) -> Option<Value> {
        let entry = entry?;
        if entry.expires_at.is_some() && entry.is_expired_at(self.clock.now_ms()) {
            return None;
        }
        entry.value().cloned()
    }

    pub(crate) fn scan_at(&self, range: &KeyRange, snapshot: SeqNo) -> Result<Scan<'_>> {
        let fallback: Vec<(Key, Entry)> = self
            .router
            .fallback_entries(range)
            .into_iter()
            .filter(|(_, e)| e.seqno <= snapshot)
            .collect();
        let fallback: EntryIter<'_> = Box::new(fallback.into_iter().map(Ok));
        let mut sources = vec![
            (Layer::Fallback, fallback),
            (Layer::Hot, self.hot.scan(range, snapshot)?),
            (Layer::Cache, self.cache.scan(range, snapshot)?),
        ];
        for (layer, id, tier) in [
            (
                Layer::Warm,
                strata_tiering::router::TierId::Warm,
                self.warm.as_ref() as &dyn Tier,
            ),
            (
                Layer::Cold,
                strata_tiering::router::TierId::Cold,
                self.cold.as_ref(),
            ),
        ] {
            let breaker = self.router.breaker(id);
            if !breaker.allow() {
                return Err(strata_tiering::Error::TierUnavailable {
                    tier: tier.name().to_owned(),
                    key: None,
                    reason: format!("its circuit breaker is {}", breaker.state()),
                }
                .into());
            }
            sources.push((layer, tier.scan(range, snapshot)?));
        }
        let rules = Arc::new(self.router.rule_set());
        Ok(Scan::new(sources, rules, self.clock.now_ms()))
    }
}

impl Store {
    /// Opens the store in `dir`, creating it if needed, with the stored (or default)
    /// configuration and a maintenance thread. See [`StoreBuilder`](crate::StoreBuilder) for
    /// every setting.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        crate::StoreBuilder::new(dir).open()
    }

    /// A builder for opening `dir` with settings.
    pub fn builder(dir: impl AsRef<Path>) -> crate::StoreBuilder {
        crate::StoreBuilder::new(dir)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// What opening the store found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The Router underneath, for breaker events, watermarks and degradation.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Sets `key` to `value` at the criticality the rules give it.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<Receipt> {
        self.put_with(key, value, WriteOptions::default())
    }

    /// Sets `key` to `value` as `options` say.
    pub fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        options: WriteOptions,
    ) -> Result<Receipt> {
        let mut batch = Batch::new();
        match options.ttl {
            Some(ttl) => batch.put_with_ttl(key, value, ttl),
            None => batch.put(key, value),
        };
        batch.criticality = options.criticality;
        self.inner.write(&batch)
    }

    /// Deletes `key` at the criticality the rules give it.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<Receipt> {
        self.delete_with(key, WriteOptions::default())
    }

    /// Deletes `key` at `options.criticality` (the ttl is ignored).
    pub fn delete_with(&self, key: impl AsRef<[u8]>, options: WriteOptions) -> Result<Receipt> {
        let mut batch = Batch::new();
        batch.delete(key);
        batch.criticality = options.criticality;
        self.inner.write(&batch)
    }

    /// Applies a batch atomically.
    pub fn write(&self, batch: &Batch) -> Result<Receipt> {
        self.inner.write(batch)
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let key = key.as_ref();
        Key::validate(key)?;
        Ok(self.inner.router.get(key)?)
    }

    /// Reads `key` with options: a minimum tier, or a partial answer when a tier is down.
    pub fn read(&self, key: impl AsRef<[u8]>, options: ReadOptions) -> Result<ReadOutcome> {
        let key = key.as_ref();
        Key::validate(key)?;
        Ok(self.inner.router.read(key, options)?)
    }

    /// A consistent view of the store as it is now; it stays readable while writes go on.
    pub fn snapshot(&self) -> Snapshot {
        let pin = self.inner.pins.pin(|| self.inner.stable_seqno());
        Snapshot {
            seqno: pin.seqno(),
            _pin: Arc::new(pin),
            store: self.clone(),
        }
    }

    /// The live pairs of `range` in key order, as of the moment the scan starts.
    pub fn scan(&self, range: &KeyRange) -> Result<Scan<'_>> {
        let snapshot = self.inner.stable_seqno();
        self.inner.scan_at(range, snapshot)
    }

    /// The live pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Scan<'_>> {
        self.scan(&KeyRange::prefix(prefix.as_ref()))
    }

    /// Adds or replaces the classification rule for `pattern` (an exact key or a glob such
    /// as `task:*`, as [`Pattern::parse`] reads it). Persisted at once.
    pub fn classify(&self, pattern: &str, class: Class) -> Result<Option<Rule>> {
        self.inner.writable("classify")?;
        let pattern = Pattern::parse(pattern)?;
        Ok(self.inner.router.set_rule(Rule::new(pattern, class))?)
    }

    /// Sets the class of every key in keyspace `name` (keys `name:…`) that no more specific
    /// rule matches. Persisted at once.
    pub fn classify_keyspace(&self, name: &str, class: Class) -> Result<Option<Rule>> {
        self.inner.writable("classify")?;
        let pattern = Pattern::keyspace(name)?;
        Ok(self.inner.router.set_rule(Rule::new(pattern, class))?)
    }

    /// Removes the rule for `pattern`.
    pub fn unclassify(&self, pattern: &str) -> Result<Option<Rule>> {
        self.inner.writable("unclassify")?;
        let pattern = Pattern::parse(pattern)?;
        Ok(self.inner.router.remove_rule(&pattern)?)
    }

    /// The rules, in precedence order.
    pub fn rules(&self) -> Vec<Rule> {
        self.inner.router.list_rules()
    }

    /// The class the rules give `key`.
    pub fn class_of(&self, key: impl AsRef<[u8]>) -> Class {
        self.inner.router.classify(key.as_ref())
    }

    /// Every version of `key` the cold tier holds, oldest first, with its commit and time.
    /// Keys below HIGH reach the cold tier only by archival.
    pub fn history(&self, key: impl AsRef<[u8]>) -> Result<Vec<Version>> {
        let key = key.as_ref();
        Key::validate(key)?;
        Ok(self.inner.cold.store().history(key)?)
    }

    /// The value `key` had at a commit or a time, as the cold tier recorded it.
    pub fn get_at(&self, key: impl AsRef<[u8]>, at: At) -> Result<Option<Value>> {
        let key = key.as_ref();
        Key::validate(key)?;
        let entry = self.inner.cold.store().get_at(key, at)?;
        Ok(entry.and_then(|e| e.value().cloned()))
    }

    /// The cold-tier commit a revision names (a full or abbreviated id, a ref, `main~2`).
    pub fn resolve(&self, revision: &str) -> Result<strata_gitsync::Oid> {
        Ok(self.inner.cold.store().resolve(revision)?)
    }

    /// Makes everything acknowledged so far reach `stage`, and returns that stage's
    /// watermark and evidence: `Wal` syncs the log, `Warm` flushes the memtable, `Cold`
    /// commits to git, `Remote` commits and pushes, verified. Writes accepted while degraded
    /// are moved into the log first; while some cannot be, every stage but `Memory` fails with
    /// [`Error::NotLogged`].
    pub fn sync(&self, stage: Stage) -> Result<StageReceipt> {
        self.inner.force(stage)
    }

    /// Flushes the memtable into a warm segment (after syncing the log).
    pub fn flush(&self) -> Result<StageReceipt> {
        self.sync(Stage::Warm)
    }

    /// Fetches the remote and merges other writers' commits into the cold tier. Returns
    /// whether anything new arrived.
    pub fn pull(&self) -> Result<bool> {
        let remote = self.inner.remote.as_ref().ok_or_else(|| Error::NoRemote {
            dir: self.inner.dir.clone(),
        })?;
        self.inner.writable("pull")?;
        let _one = self.inner.lock_maintenance();
        Ok(remote.pull()?.is_some())
    }

    /// Merges warm segments into one and returns how many segments remain.
    pub fn compact(&self) -> Result<usize> {
        self.inner.writable("compact")?;
        self.sync(Stage::Warm)?;
        self.inner.update_gc_horizon();
        self.inner.warm.compact_all()?;
        Ok(self.inner.warm.segments().len())
    }

    /// Closes the store: stops maintenance, moves writes accepted while degraded into the log,
    /// syncs it and records a clean shutdown, reporting any failure. Writes that cannot reach
    /// the log yet are lost with the process: the close fails with [`Error::NotLogged`]
    /// naming how many, and records no clean shutdown. Other clones of this handle keep the
    /// store open; only the last one closes it. Dropping the last handle closes the store too,
    /// ignoring failures (the next open then treats the shutdown as unclean).
    pub fn close(self) -> Result<()> {
        let Store { _worker, inner } = self;
        drop(_worker);
        match Arc::try_unwrap(inner) {
            Ok(inner) => inner.shut_down(),
            Err(_) => Ok(()),
        }
    }

    /// Lets go of the store as a crash would: no final sync, flush, commit, push or
    /// clean-shutdown marker, and the lock is released once the last handle goes (other
    /// clones keep working until then, and do not shut down either). What was durable stays;
    /// the next open recovers as after a crash. For recovery tests.
    pub fn drop_without_shutdown(self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

/// A consistent, read-only view of the store at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    seqno: SeqNo,
    /// Keeps warm compactions from dropping versions this view can see.
    _pin: Arc<crate::archive::Pin>,
    store: Store,
}

impl Snapshot {
    /// The log position the view is taken at.
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }

    /// The value `key` had.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let inner = &self.store.inner;
        Ok(inner.live(inner.entry_at(key.as_ref(), self.seqno)?))
    }

    /// The live pairs of `range` as they were.
    pub fn scan(&self, range: &KeyRange) -> Result<Scan<'_>> {
        self.store.inner.scan_at(range, self.seqno)
    }

    /// The live pairs under `prefix` as they were.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Scan<'_>> {
        self.scan(&KeyRange::prefix(prefix.as_ref()))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            // Nobody is left to hear about a failure; the marker is then missing, and the
            // next open recovers as after a crash.
            let _ = self.shut_down();
        }
    }
}
