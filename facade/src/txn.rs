//! Optimistic transactions.
//!
//! A transaction reads from a snapshot taken when it begins, buffers its writes, and applies
//! them at commit as one atomic batch — or fails with [`Error::Conflict`] and applies nothing:
//!
//! - **snapshot isolation** (the default): the commit fails if another write changed a key
//!   this transaction writes after its snapshot (no lost updates);
//! - **serializable**: it also fails if another write changed a key this transaction read
//!   (the read set is validated), so no write skew either.
//!
//! Commits validate and write while holding the store's write gate exclusively, so no write
//! can land between the check and the batch. [`Store::transact`] retries a transaction body on
//! conflict.
//!
//! Conflicts are found by version numbers, which logged writes take from the WAL. A LOW or
//! degraded write takes the log's last LSN instead, so a conflict with one that was not
//! followed by a logged write before the commit is not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::PoisonError;
use std::time::Duration;

use strata_tiering::router::Receipt;
use strata_tiering::{Criticality, Key, KeyRange, SeqNo, Value, LATEST};

use crate::archive::Pin;
use crate::error::{Error, Result};
use crate::store::{Batch, Store};

/// How strictly a transaction is checked at commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Fails on a concurrent write to a key it writes.
    #[default]
    Snapshot,
    /// Also fails on a concurrent write to a key it read.
    Serializable,
}

/// A transaction in progress; nothing is written until [`commit`](Transaction::commit).
#[derive(Debug)]
pub struct Transaction {
    store: Store,
    snapshot: SeqNo,
    /// Keeps warm compactions from dropping versions the snapshot can see.
    _pin: Pin,
    isolation: Isolation,
    writes: BTreeMap<Vec<u8>, Option<(Value, Option<Duration>)>>,
    reads: BTreeSet<Vec<u8>>,
    criticality: Option<Criticality>,
}

impl Store {
    /// Begins a transaction with snapshot isolation.
    pub fn transaction(&self) -> Transaction {
        self.transaction_with(Isolation::Snapshot)
    }

    /// Begins a transaction with the given isolation.
    pub fn transaction_with(&self, isolation: Isolation) -> Transaction {
        let pin = self.inner.pins.pin(|| self.inner.stable_seqno());
        Transaction {
            snapshot: pin.seqno(),
            _pin: pin,
            store: self.clone(),
            isolation,
            writes: BTreeMap::new(),
            reads: BTreeSet::new(),
            criticality: None,
        }
    }

    /// Runs `body` in a transaction and commits it, starting over on a conflict, at most
    /// `attempts` times; returns the body's result and the commit's receipt (`None` when the
    /// body wrote nothing). Any other error ends it at once.
    pub fn transact<T>(
        &self,
        isolation: Isolation,
        attempts: u32,
        mut body: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<Receipt>)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.transaction_with(isolation);
            let outcome = body(&mut tx).and_then(|value| Ok((value, tx.commit()?)));
            match outcome {
                Err(Error::Conflict { .. }) if attempt < attempts.max(1) => continue,
                other => return other,
            }
        }
    }
}

impl Transaction {
    /// The snapshot the transaction reads.
    pub fn snapshot(&self) -> SeqNo {
        self.snapshot
    }

    /// The value of `key`: this transaction's own write if it made one, otherwise the
    /// snapshot's.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let key = key.as_ref();
        Key::validate(key)?;
        if let Some(write) = self.writes.get(key) {
            return Ok(write.as_ref().map(|(value, _)| value.clone()));
        }
        self.reads.insert(key.to_vec());
        let inner = &self.store.inner;
        Ok(inner.live(inner.entry_at(key, self.snapshot)?))
    }

    /// The live pairs under `prefix` as the snapshot has them, with this transaction's own
    /// writes applied; every key returned joins the read set.
    pub fn scan_prefix(&mut self, prefix: impl AsRef<[u8]>) -> Result<Vec<(Key, Value)>> {
        let range = KeyRange::prefix(prefix.as_ref());
        let mut found: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        for item in self.store.inner.scan_at(&range, self.snapshot)? {
            let (key, value) = item?;
            found.insert(key.as_bytes().to_vec(), value);
        }
        for (key, write) in self.writes.range(prefix.as_ref().to_vec()..) {
            if !range.contains(key) {
                break;
            }
            match write {
                Some((value, _)) => found.insert(key.clone(), value.clone()),
                None => found.remove(key),
            };
        }
        self.reads.extend(found.keys().cloned());
        found
            .into_iter()
            .map(|(key, value)| Ok((Key::new(key)?, value)))
            .collect()
    }

    /// Sets `key` to `value` at commit.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> &mut Transaction {
        self.writes
            .insert(key.as_ref().to_vec(), Some((value.into(), None)));
        self
    }

    /// Sets `key` to `value` for `ttl` at commit.
    pub fn put_with_ttl(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        ttl: Duration,
    ) -> &mut Transaction {
        self.writes
            .insert(key.as_ref().to_vec(), Some((value.into(), Some(ttl))));
        self
    }

    /// Deletes `key` at commit.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Transaction {
        self.writes.insert(key.as_ref().to_vec(), None);
        self
    }

    /// Writes every key at `criticality` instead of its class.
    pub fn at(&mut self, criticality: Criticality) -> &mut Transaction {
        self.criticality = Some(criticality);
        self
    }

    /// Validates and applies the writes as one atomic batch. Returns `None` when the
    /// transaction wrote nothing.
    pub fn commit(self) -> Result<Option<Receipt>> {
        if self.writes.is_empty() {
            return Ok(None);
        }
        let mut batch = Batch::new();
        if let Some(criticality) = self.criticality {
            batch.at(criticality);
        }
        for (key, write) in &self.writes {
            match write {
                Some((value, Some(ttl))) => batch.put_with_ttl(key, value.clone(), *ttl),
                Some((value, None)) => batch.put(key, value.clone()),
                None => batch.delete(key),
            };
        }
        let inner = &self.store.inner;
        let _exclusive = inner.gate.write().unwrap_or_else(PoisonError::into_inner);
        let checked = match self.isolation {
            Isolation::Snapshot => self.writes.keys().collect::<Vec<_>>(),
            Isolation::Serializable => self.writes.keys().chain(&self.reads).collect(),
        };
        for key in checked {
            let newest = inner.entry_at(key, LATEST)?;
            if newest.is_some_and(|entry| entry.seqno > self.snapshot) {
                return Err(Error::Conflict {
                    key: Key::new(key.as_slice())?,
                    snapshot: self.snapshot,
                });
            }
        }
        inner.write_ungated(&batch).map(Some)
    }
}
