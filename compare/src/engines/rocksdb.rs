//! RocksDB (through the `rocksdb` crate), built only with `--features rocksdb`.
//!
//! Default options with LZ4 compression, as db_bench runs it.
//!
//! - `Bulk` mode: `WriteOptions::default()` (the WAL is written, not synced); a batch is one
//!   `WriteBatch`.
//! - `Durable` mode: `WriteOptions::set_sync(true)` per put.
//! - `settle`: `DB::flush` (memtable → SST) and a full `compact_range`.
//! - `reopen`: drop the handle and open again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rocksdb::{DBCompressionType, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::{timed, Engine, Mode, Res};

/// An open RocksDB database.
pub struct RocksEngine {
    dir: PathBuf,
    /// `None` only between closing and reopening.
    db: Option<DB>,
    relaxed: WriteOptions,
    synced: WriteOptions,
}

fn open_db(dir: &Path) -> Res<DB> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(DBCompressionType::Lz4);
    Ok(DB::open(&options, dir)?)
}

/// Opens (creating) a database in `dir`; the mode only changes what `put_sync` does.
pub fn open(dir: &Path, _mode: Mode) -> Res<Box<dyn Engine>> {
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    Ok(Box::new(RocksEngine {
        dir: dir.to_owned(),
        db: Some(open_db(dir)?),
        relaxed: WriteOptions::default(),
        synced,
    }))
}

impl RocksEngine {
    fn db(&self) -> Res<&DB> {
        self.db
            .as_ref()
            .ok_or_else(|| "the database is closed".into())
    }
}

impl Engine for RocksEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db()?.put_opt(key, value, &self.relaxed)?;
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let mut batch = WriteBatch::default();
        for (key, value) in pairs {
            batch.put(key, value);
        }
        self.db()?.write_opt(batch, &self.relaxed)?;
        Ok(())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db()?.put_opt(key, value, &self.synced)?;
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db()?.get_pinned(key)?.map(|value| value.len()))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for item in self.db()?.iterator(IteratorMode::Start) {
            let (key, value) = item?;
            count += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        let db = self.db()?;
        db.flush()?;
        db.compact_range::<&[u8], &[u8]>(None, None);
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
