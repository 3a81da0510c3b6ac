//! LMDB through heed: a copy-on-write B+tree in one memory-mapped file.
//!
//! - `Bulk` mode: the environment opens with `MDB_NOSYNC` (commits write pages but never
//!   fsync); `put` is grouped into write transactions of 1,000 (see [`Pending`]), a batch is
//!   one write transaction.
//! - `Durable` mode: default flags; one write transaction per put, whose commit fsyncs.
//! - Reads hold one read transaction for a whole read phase, as LMDB's own db_bench port does;
//!   any write ends it.
//! - `settle`: `mdb_env_sync(force)`. LMDB reuses freed pages and has no in-place compaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use super::pending::Pending;
use super::{timed, Engine, Mode, Res};

/// The map reserved for the file: sparse, so only what is used takes disk.
const MAP_SIZE: usize = 64 << 30;

/// An open LMDB environment with its unnamed database.
pub struct LmdbEngine {
    dir: PathBuf,
    /// `None` only between closing and reopening.
    env: Option<Env>,
    db: Database<'static, Bytes, Bytes>,
    reader: Option<RoTxn<'static, WithTls>>,
    pending: Pending,
}

fn open_env(dir: &Path, mode: Mode) -> Res<(Env, Database<'static, Bytes, Bytes>)> {
    let mut options = EnvOpenOptions::new();
    options.map_size(MAP_SIZE).max_dbs(1);
    if mode == Mode::Bulk {
        // SAFETY: NO_SYNC only gives up durability across a crash, which `Bulk` mode asks for.
        unsafe { options.flags(EnvFlags::NO_SYNC) };
    }
    // SAFETY: the directory is this benchmark's own; nothing else maps the file.
    let env = unsafe { options.open(dir)? };
    let wtxn = env.write_txn()?;
    let db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> Res<_> {
            let db = opener.create_database::<Bytes, Bytes>(wtxn, None)?;
            Ok(CommitOrAbort::<_, ()>::Commit(db))
        })?
        .unwrap_commit();
    Ok((env, db))
}

/// Opens (creating) an environment in `dir`.
pub fn open(dir: &Path, mode: Mode) -> Res<Box<dyn Engine>> {
    let (env, db) = open_env(dir, mode)?;
    Ok(Box::new(LmdbEngine {
        dir: dir.to_owned(),
        env: Some(env),
        db,
        reader: None,
        pending: Pending::default(),
    }))
}

impl LmdbEngine {
    fn env(&self) -> Res<&Env> {
        self.env
            .as_ref()
            .ok_or_else(|| "the environment is closed".into())
    }

    fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        self.reader = None;
        let mut wtxn = self.env()?.write_txn()?;
        for (key, value) in pairs {
            self.db.put(&mut wtxn, key, value)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn reader(&mut self) -> Res<&RoTxn<'static, WithTls>> {
        if self.reader.is_none() {
            self.reader = Some(self.env()?.clone().static_read_txn()?);
        }
        self.reader
            .as_ref()
            .ok_or_else(|| "no read transaction".into())
    }

    /// Commits what is pending, syncs, and closes the environment, waiting until it is.
    fn shut(&mut self) -> Res<()> {
        self.finish()?;
        self.reader = None;
        if let Some(env) = self.env.take() {
            env.force_sync()?;
            env.prepare_for_closing().wait();
        }
        Ok(())
    }
}

impl Engine for LmdbEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        if let Some(batch) = self.pending.push(key, value) {
            self.commit(&batch)?;
        }
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        self.commit(pairs)
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.commit(&[(key.to_vec(), value.to_vec())])
    }

    fn finish(&mut self) -> Res<()> {
        let rest = self.pending.take();
        if !rest.is_empty() {
            self.commit(&rest)?;
        }
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        let db = self.db;
        let rtxn = self.reader()?;
        Ok(db.get(rtxn, key)?.map(<[u8]>::len))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let db = self.db;
        let rtxn = self.reader()?;
        let (mut count, mut bytes) = (0, 0);
        for item in db.iter(rtxn)? {
            let (key, value) = item?;
            count += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        self.finish()?;
        self.env()?.force_sync()?;
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        self.shut()?;
        let ((env, db), took) = timed(|| open_env(&self.dir, Mode::Bulk))?;
        self.env = Some(env);
        self.db = db;
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        self.shut()
    }
}
