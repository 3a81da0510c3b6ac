//! Strata, through its public `strata::Store` API.
//!
//! Every key falls under the store's default class, MEDIUM (checked at open): writes go
//! through the WAL into the memtable, the maintenance thread flushes memtables into
//! memory-mapped warm segments, and nothing reaches git (that starts at HIGH).
//!
//! - `Bulk` mode: `wal_sync = "never"` (the WAL is written, fsync left to the OS); a put is
//!   `Store::put`, a batch is one atomic `strata::Batch`.
//! - `Durable` mode: the default `wal_sync = "always"`; `put` returns once the WAL record is
//!   fsynced (group commit), which the receipt confirms.
//! - `settle`: `Store::flush` (memtable → segment), `Store::compact` (merge segments), then
//!   `Store::maintain`, the pass the maintenance thread runs on its own every tick, which drops
//!   WAL files every stage is done with.
//! - `reopen`: `flush`, `close`, open again, so the reads after a reopen come from the warm
//!   segments rather than from a WAL replayed into the memtable (`close` only syncs the WAL).

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata::{Batch, Config, Criticality, KeyRange, Store};

use super::{timed, Engine, Mode, Res};

/// An open Strata store.
pub struct StrataEngine {
    dir: PathBuf,
    store: Option<Store>,
}

/// The configuration for `mode`: the defaults, with the WAL sync policy relaxed for `Bulk`.
fn config(mode: Mode) -> Config {
    let wal_sync = match mode {
        Mode::Bulk => "never",
        Mode::Durable => "always",
    };
    Config {
        wal_sync: wal_sync.into(),
        ..Config::default()
    }
}

fn open_store(dir: &Path, mode: Mode) -> Res<Store> {
    let store = Store::builder(dir).config(config(mode)).open()?;
    let class = store.class_of(b"0000000000000000");
    if class.criticality != Criticality::Medium {
        return Err(format!("keys classed {:?}, expected MEDIUM", class.criticality).into());
    }
    Ok(store)
}

/// Opens (creating) a store in `dir`.
pub fn open(dir: &Path, mode: Mode) -> Res<Box<dyn Engine>> {
    Ok(Box::new(StrataEngine {
        dir: dir.to_owned(),
        store: Some(open_store(dir, mode)?),
    }))
}

impl StrataEngine {
    fn store(&self) -> Res<&Store> {
        self.store
            .as_ref()
            .ok_or_else(|| "the store is closed".into())
    }
}

impl Engine for StrataEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.store()?.put(key, value)?;
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let mut batch = Batch::new();
        for (key, value) in pairs {
            batch.put(key, value.as_slice());
        }
        self.store()?.write(&batch)?;
        Ok(())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        let receipt = self.store()?.put(key, value)?;
        if !receipt.is_durable() {
            return Err(format!("a put under wal_sync=always was not durable: {receipt:?}").into());
        }
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.store()?.get(key)?.map(|value| value.len()))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for item in self.store()?.scan(&KeyRange::all())? {
            let (key, value) = item?;
            count += 1;
            bytes += (key.as_bytes().len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        let store = self.store()?;
        store.flush()?;
        store.compact()?;
        let report = store.maintain();
        if let Some(error) = report.errors.first() {
            return Err(format!("maintenance after settling: {error}").into());
        }
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        let store = self.store.take().ok_or("the store is closed")?;
        store.flush()?;
        store.close()?;
        let (store, took) = timed(|| open_store(&self.dir, Mode::Bulk))?;
        // Everything was flushed: the reads that follow must come from the warm segments.
        let replayed = store.recovery_report().records_replayed;
        self.store = Some(store);
        if replayed > 0 {
            return Err(format!("the reopen replayed {replayed} WAL records into memory").into());
        }
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        if let Some(store) = self.store.take() {
            store.close()?;
        }
        Ok(())
    }
}
