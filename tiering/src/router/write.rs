//! The write path: classify, log, apply to hot, acknowledge with a [`Receipt`]; the degraded
//! path into the replay queue, and draining it back into the log.
//!
//! A logged write is applied to the hot tier only after the log has given it an LSN, so the
//! hot tier never holds a version the log might not. If the cache holds a copy of a written
//! key, the new version goes there too, so the copy never outlives the hot tier's version
//! once that is flushed away.

use std::sync::{MutexGuard, PoisonError, TryLockError};

use super::degrade::{DegradationLevel, RecoveryReport};
use super::watermark::Stage;
use super::{Router, SyncMode, TierId};
use crate::error::Error;
use crate::record::{self, Record};
use crate::types::{Change, Criticality, Entry, Key, Lsn, SeqNo, Value, LATEST};

/// One operation of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key.
    Put {
        /// The key.
        key: Key,
        /// Its new value.
        value: Value,
        /// When the value stops being readable, in unix milliseconds.
        expires_at: Option<u64>,
    },
    /// Deletes a key.
    Delete {
        /// The key.
        key: Key,
    },
}

impl Op {
    /// Sets `key` to `value`.
    pub fn put(key: Key, value: impl Into<Value>) -> Op {
        Op::Put {
            key,
            value: value.into(),
            expires_at: None,
        }
    }

    /// Deletes `key`.
    pub fn delete(key: Key) -> Op {
        Op::Delete { key }
    }

    /// The key written.
    pub fn key(&self) -> &Key {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }

    fn entry(&self) -> Entry {
        match self {
            Op::Put {
                value, expires_at, ..
            } => Entry {
                seqno: 0,
                kind: crate::types::EntryKind::Value(value.clone()),
                expires_at: *expires_at,
            },
            Op::Delete { .. } => Entry::tombstone(0),
        }
    }
}

/// What an acknowledged write has reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The highest criticality among the written keys.
    pub criticality: Criticality,
    /// The version number of the write's last change. For a LOW or degraded write it is
    /// provisional: the log's last LSN when the write was accepted.
    pub seqno: SeqNo,
    /// The LSN of the write's last log record, for writes the log took.
    pub lsn: Option<Lsn>,
    /// The furthest stage known to hold the write when it returned.
    pub confirmed: Stage,
    /// The stage the write will eventually reach (memory for LOW, warm for MEDIUM, cold for
    /// HIGH, remote for CRITICAL).
    pub target: Stage,
    /// Set when the write was accepted while degraded: it is in memory only, queued for the
    /// log.
    pub degraded: Option<DegradationLevel>,
    /// The git commit holding the write, if it was committed already.
    pub commit: Option<String>,
    /// The verified remote head holding the write, if it was pushed already.
    pub remote_head: Option<String>,
}

impl Receipt {
    /// Whether the write is synced in the log (or further).
    pub fn is_durable(&self) -> bool {
        self.confirmed >= Stage::Wal
    }

    /// The stages the write still has to pass, in order.
    pub fn pending_stages(&self) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| *s > self.confirmed && *s <= self.target)
            .collect()
    }
}

/// What [`Router::replay_log`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Changes applied to the hot tier.
    pub changes: u64,
    /// Probe records skipped.
    pub probes: u64,
    /// The last LSN read (0 if none).
    pub last_lsn: Lsn,
}

fn target(criticality: Criticality) -> Stage {
    match criticality {
        Criticality::Low => Stage::Memory,
        Criticality::Medium => Stage::Warm,
        Criticality::High => Stage::Cold,
        Criticality::Critical => Stage::Remote,
    }
}

/// How a logged batch ended.
struct Logged {
    last: Lsn,
    durable: bool,
}

impl Router {
    /// Sets `key` to `value`.
    pub fn put(&self, key: &Key, value: impl Into<Value>) -> Result<Receipt, Error> {
        self.write(&[Op::put(key.clone(), value)])
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &Key) -> Result<Receipt, Error> {
        self.write(&[Op::delete(key.clone())])
    }

    /// Writes a batch. The logged part (keys at MEDIUM and above) is one log append, atomic
    /// on recovery; LOW keys go to the cache only, after it. The receipt speaks for the logged
    /// part when there is one.
    pub fn write(&self, ops: &[Op]) -> Result<Receipt, Error> {
        self.write_with(ops, None)
    }

    /// Writes a batch as [`write`](Self::write) does, at `criticality` for every key when it
    /// is given, instead of each key's class. Reads still classify keys by the rules: a key
    /// written LOW that the rules do not class LOW is read from the cache only if the hot
    /// tier and the tiers below hold nothing for it.
    pub fn write_with(
        &self,
        ops: &[Op],
        criticality: Option<Criticality>,
    ) -> Result<Receipt, Error> {
        let first = ops.first().ok_or(Error::EmptyWrite)?;
        for op in ops {
            if record::is_reserved(op.key().as_bytes()) {
                return Err(Error::ReservedKey(op.key().clone()));
            }
            if let Op::Put { key, value, .. } = op {
                self.config.limits.check_value(key, value)?;
            }
        }
        let mut low = Vec::new();
        let mut logged = Vec::new();
        for op in ops {
            let criticality =
                criticality.unwrap_or_else(|| self.classify(op.key().as_bytes()).criticality);
            let change = Change::new(op.key().clone(), op.entry());
            if criticality == Criticality::Low {
                low.push(change);
            } else {
                logged.push((criticality, change));
            }
        }
        let criticality = logged
            .iter()
            .map(|(c, _)| *c)
            .max()
            .unwrap_or(Criticality::Low);
        let mut receipt = Receipt {
            criticality,
            seqno: 0,
            lsn: None,
            confirmed: Stage::Memory,
            target: target(criticality),
            degraded: None,
            commit: None,
            remote_head: None,
        };
        if !logged.is_empty() {
            self.write_logged(logged, &mut receipt, first.key())?;
        }
        if !low.is_empty() {
            let seqno = self.log.last_lsn();
            for change in &mut low {
                change.entry.seqno = seqno;
            }
            self.cache.apply(&low)?;
            if receipt.lsn.is_none() && receipt.degraded.is_none() {
                receipt.seqno = seqno;
            }
        }
        Ok(receipt)
    }

    fn write_logged(
        &self,
        changes: Vec<(Criticality, Change)>,
        receipt: &mut Receipt,
        first: &Key,
    ) -> Result<(), Error> {
        if self.is_degraded() || !self.breaker(TierId::Log).is_closed() {
            return self.write_degraded(changes, receipt, true);
        }
        match self.log_and_apply(changes, first)? {
            Ok(logged) => {
                self.fill_receipt(receipt, &logged);
                Ok(())
            }
            Err(changes) => self.write_degraded(changes, receipt, false),
        }
    }

    /// Appends `changes` to the log and applies them to the hot tier. Gives the changes back
    /// when the log did not take them.
    #[allow(clippy::type_complexity)]
    fn log_and_apply(
        &self,
        mut changes: Vec<(Criticality, Change)>,
        first: &Key,
    ) -> Result<Result<Logged, Vec<(Criticality, Change)>>, Error> {
        let records: Vec<Vec<u8>> = changes
            .iter()
            .map(|(c, change)| record::encode(*c, &change.key, &change.entry))
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let n = refs.len() as u64;
        let appended = {
            let _guard = self
                .append_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let before = self.log.last_lsn();
            match self.log.append(&refs) {
                Ok(last) => Ok(last),
                // The file log can fail an append after giving the records LSNs (its write or
                // fsync failed); it keeps them and writes them with the next sync.
                Err(source) => match self.log.last_lsn() {
                    after if after == before + n => Err((Some(after), source)),
                    _ => Err((None, source)),
                },
            }
        };
        let last = match appended {
            Ok(last) => {
                self.breaker(TierId::Log).record_success();
                last
            }
            Err((taken, source)) => {
                let error = Error::Log {
                    op: "append",
                    key: Some(first.clone()),
                    source,
                };
                self.on_failure(TierId::Log, &error);
                match taken {
                    Some(last) => last,
                    None => {
                        self.enter(DegradationLevel::InMemory);
                        return Ok(Err(changes));
                    }
                }
            }
        };
        let first_lsn = last + 1 - n;
        for ((_, change), lsn) in changes.iter_mut().zip(first_lsn..) {
            change.entry.seqno = lsn;
        }
        let batch: Vec<Change> = changes.into_iter().map(|(_, c)| c).collect();
        self.apply_logged(&batch)?;
        let synced = match self.config.sync {
            SyncMode::PerWrite => self.sync_log(Some(first)),
            SyncMode::LogPolicy => None,
        };
        let synced = synced.unwrap_or_else(|| {
            let synced = self.log.synced_lsn();
            self.watermarks.advance(Stage::Wal, synced, None);
            synced
        });
        self.timeline.record(last);
        Ok(Ok(Logged {
            last,
            durable: synced >= last,
        }))
    }

    /// Applies logged changes to the hot tier, and to the cache for keys it holds.
    fn apply_logged(&self, batch: &[Change]) -> Result<(), Error> {
        self.hot.apply(batch)?;
        let mut cached = Vec::new();
        for change in batch {
            if self.cache.get(change.key.as_bytes(), LATEST)?.is_some() {
                cached.push(change.clone());
            }
        }
        if !cached.is_empty() {
            self.cache.apply(&cached)?;
        }
        if let Some(last) = batch.iter().map(|c| c.entry.seqno).max() {
            self.watermarks.advance(Stage::Memory, last, None);
        }
        Ok(())
    }

    fn fill_receipt(&self, receipt: &mut Receipt, logged: &Logged) {
        receipt.seqno = logged.last;
        receipt.lsn = Some(logged.last);
        receipt.confirmed = if logged.durable {
            Stage::Wal
        } else {
            Stage::Memory
        };
        if logged.durable {
            for stage in [Stage::Warm, Stage::Cold, Stage::Remote] {
                if stage > receipt.target || self.watermarks.get(stage) < logged.last {
                    break;
                }
                let reached = self.watermarks.receipt(stage);
                receipt.confirmed = stage;
                match stage {
                    Stage::Cold => receipt.commit = reached.evidence,
                    Stage::Remote => receipt.remote_head = reached.evidence,
                    _ => {}
                }
            }
        }
        if receipt.criticality == Criticality::Critical && receipt.confirmed < Stage::Remote {
            self.downstream.request(Stage::Remote, logged.last);
        }
    }

    fn write_degraded(
        &self,
        changes: Vec<(Criticality, Change)>,
        receipt: &mut Receipt,
        may_drain: bool,
    ) -> Result<(), Error> {
        if may_drain {
            // A drain already running on another thread will reach this write's turn; the
            // writer does not wait for it.
            let exclusive = match self.drain_lock.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(exclusive) = exclusive {
                self.drain(&exclusive);
            }
        }
        let mut pending = self.lock_pending();
        // The breakers are looked at as well as the level: a failure can trip one between a
        // drain's last check and its return to normal, and the logged path would then send
        // this write straight back here, again and again.
        let healthy =
            self.breaker(TierId::Log).is_closed() && self.breaker(TierId::Warm).is_closed();
        if may_drain && pending.is_empty() && !self.is_degraded() && healthy {
            drop(pending);
            let first = changes.first().map(|(_, c)| c.key.clone());
            return match first {
                Some(first) => self.write_logged(changes, receipt, &first),
                None => Ok(()),
            };
        }
        // Raised before the write joins the queue, so that no reader or writer sees a queued
        // write while the level still says normal.
        if !self.is_degraded() {
            let log_ok = self.breaker(TierId::Log).is_closed();
            self.enter(if log_ok && !self.breaker(TierId::Warm).is_closed() {
                DegradationLevel::ReadOnly
            } else {
                DegradationLevel::InMemory
            });
        }
        let seqno = self.log.last_lsn();
        let changes = changes
            .into_iter()
            .map(|(c, mut change)| {
                change.entry.seqno = seqno;
                (c, change)
            })
            .collect();
        pending.admit(
            changes,
            self.config.replay_capacity,
            self.config.fallback_capacity,
        )?;
        receipt.seqno = seqno;
        receipt.degraded = Some(self.level());
        Ok(())
    }

    /// Drains the replay queue into the log if the log and warm breakers are closed, and
    /// returns to normal operation once it is empty.
    pub fn try_recover(&self) -> RecoveryReport {
        let exclusive = self
            .drain_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (drained, stopped_by) = self.drain(&exclusive);
        drop(exclusive);
        RecoveryReport {
            drained,
            remaining: self.lock_pending().queued_changes(),
            level: self.level(),
            stopped_by,
        }
    }

    /// Moves queued writes into the log, a batch at a time. The pending lock is held only to
    /// look at and trim the queue, never across a log append, so readers of the fallback
    /// cache and writers joining the queue are not held up by a slow log; holding the drain
    /// lock (`_exclusive`) is what keeps two drains from sending the same batch.
    fn drain(&self, _exclusive: &MutexGuard<'_, ()>) -> (usize, Option<String>) {
        let mut drained = 0;
        let mut stopped_by = None;
        loop {
            let blocked = [TierId::Log, TierId::Warm]
                .into_iter()
                .find(|t| !self.breaker(*t).is_closed());
            if let Some(tier) = blocked {
                stopped_by = Some(format!(
                    "the {tier} breaker is {}",
                    self.breaker(tier).state()
                ));
                break;
            }
            let (writes, batch) = {
                let pending = self.lock_pending();
                let writes = pending.next_batch(self.config.drain_batch.max(1));
                let batch: Vec<(Criticality, Change)> = pending
                    .front(writes)
                    .flat_map(|q| q.changes.iter().cloned())
                    .collect();
                (writes, batch)
            };
            let size = batch.len();
            let critical = batch.iter().any(|(c, _)| *c == Criticality::Critical);
            let Some(first) = batch.first().map(|(_, c)| c.key.clone()) else {
                break;
            };
            match self.log_and_apply(batch, &first) {
                Ok(Ok(logged)) => {
                    self.lock_pending().pop_front(writes);
                    drained += size;
                    if critical {
                        self.downstream.request(Stage::Remote, logged.last);
                    }
                    if !logged.durable {
                        stopped_by = Some("the log did not sync".to_owned());
                        break;
                    }
                }
                Ok(Err(_)) => {
                    stopped_by = Some("the log refused an append".to_owned());
                    break;
                }
                Err(error) => {
                    // The log holds the batch; only the hot tier failed. Queuing it again
                    // would log it twice, and replay will restore it to the hot tier.
                    self.lock_pending().pop_front(writes);
                    drained += size;
                    stopped_by = Some(super::describe(&error));
                    break;
                }
            }
        }
        let pending = self.lock_pending();
        let healthy =
            self.breaker(TierId::Log).is_closed() && self.breaker(TierId::Warm).is_closed();
        if pending.is_empty() && healthy {
            self.leave();
        }
        (drained, stopped_by)
    }

    /// Replays the log from `from` into the hot tier, as after a restart: every change record,
    /// at its LSN; probe records are skipped. Returns what was replayed.
    pub fn replay_log(&self, from: Lsn) -> Result<ReplayReport, Error> {
        let records = self.log.read_from(from).map_err(|source| Error::Log {
            op: "read",
            key: None,
            source,
        })?;
        let report = self.replay(records)?;
        self.watermarks
            .advance(Stage::Wal, self.log.synced_lsn(), None);
        Ok(report)
    }

    /// Replays log records read elsewhere (a log this Router does not own, such as one read
    /// beside its writer) into the hot tier, as [`replay_log`](Router::replay_log) does.
    pub fn replay(
        &self,
        records: impl IntoIterator<Item = Result<(Lsn, Vec<u8>), strata_wal::Error>>,
    ) -> Result<ReplayReport, Error> {
        const CHUNK: usize = 256;
        let mut report = ReplayReport::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in records {
            let (lsn, bytes) = item.map_err(|source| Error::Log {
                op: "read",
                key: None,
                source,
            })?;
            report.last_lsn = lsn;
            match record::decode_any(lsn, &bytes)? {
                Record::Probe => report.probes += 1,
                Record::Change { change, .. } => {
                    chunk.push(change);
                    report.changes += 1;
                }
            }
            if chunk.len() >= CHUNK {
                self.apply_logged(&chunk)?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            self.apply_logged(&chunk)?;
        }
        Ok(report)
    }
}
