//! sled 0.34: a lock-free Bw-tree-like store with a log-structured page cache, in Rust.
//!
//! - `Bulk` mode: `Db::insert` / `Db::apply_batch`, with sled's default background flush
//!   every 500 ms (no fsync per write).
//! - `Durable` mode: `insert` then `Db::flush` before the next write. On Linux sled's flush
//!   writes with `pwrite` + `sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)`, not `fsync`: it
//!   neither flushes the device's write cache nor commits file metadata, so its `fillsync` is
//!   weaker (and cheaper) than the other engines'.
//! - `settle`: `Db::flush`. sled has no user-facing compaction call; its segment cleaner
//!   runs by itself.
//! - `reopen`: drop the handle (which flushes) and open again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sled::{Batch, Db};

use super::{timed, Engine, Mode, Res};

/// An open sled database.
pub struct SledEngine {
    dir: PathBuf,
    /// `None` only between closing and reopening.
    db: Option<Db>,
}

fn open_db(dir: &Path) -> Res<Db> {
    Ok(sled::Config::new().path(dir).open()?)
}

/// Opens (creating) a database in `dir`; the mode only changes what `put_sync` does.
pub fn open(dir: &Path, _mode: Mode) -> Res<Box<dyn Engine>> {
    Ok(Box::new(SledEngine {
        dir: dir.to_owned(),
        db: Some(open_db(dir)?),
    }))
}

impl SledEngine {
    fn db(&self) -> Res<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| "the database is closed".into())
    }
}

impl Engine for SledEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db()?.insert(key, value)?;
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let mut batch = Batch::default();
        for (key, value) in pairs {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.db()?.apply_batch(batch)?;
        Ok(())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        let db = self.db()?;
        db.insert(key, value)?;
        db.flush()?;
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db()?.get(key)?.map(|value| value.len()))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for item in self.db()?.iter() {
            let (key, value) = item?;
            count += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        self.db()?.flush()?;
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        if let Some(db) = self.db.take() {
            db.flush()?;
        }
        let (db, took) = timed(|| open_db(&self.dir))?;
        self.db = Some(db);
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        if let Some(db) = self.db.take() {
            db.flush()?;
        }
        Ok(())
    }
}
