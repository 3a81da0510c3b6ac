//! redb: a copy-on-write B-tree in one file, in Rust.
//!
//! - `Bulk` mode: every write transaction commits with `Durability::None` (no fsync; made
//!   durable by a later `Immediate` commit); `put` is grouped into transactions of 1,000
//!   (see [`Pending`]), a batch is one transaction.
//! - `Durable` mode: one transaction per put with the default durability (`Immediate`).
//! - Reads hold one read transaction's table for a whole read phase; any write ends it.
//! - `settle`: an empty `Immediate` commit, then `Database::compact` (a public API that
//!   gives freed pages back to the file system).

use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, TableDefinition};

use super::pending::Pending;
use super::{timed, Engine, Mode, Res};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// An open redb database.
pub struct RedbEngine {
    path: PathBuf,
    mode: Mode,
    /// `None` only between closing and reopening.
    db: Option<Database>,
    reader: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    pending: Pending,
}

fn open_db(path: &Path) -> Res<Database> {
    let db = Database::create(path)?;
    // Create the table, so that reads before any write find it.
    let txn = db.begin_write()?;
    txn.open_table(TABLE)?;
    txn.commit()?;
    Ok(db)
}

/// Opens (creating) `dir/data.redb`.
pub fn open(dir: &Path, mode: Mode) -> Res<Box<dyn Engine>> {
    let path = dir.join("data.redb");
    Ok(Box::new(RedbEngine {
        db: Some(open_db(&path)?),
        path,
        mode,
        reader: None,
        pending: Pending::default(),
    }))
}

impl RedbEngine {
    fn db(&self) -> Res<&Database> {
        self.db
            .as_ref()
            .ok_or_else(|| "the database is closed".into())
    }

    fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], durability: Durability) -> Res<()> {
        self.reader = None;
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (key, value) in pairs {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn relaxed(&self) -> Durability {
        match self.mode {
            Mode::Bulk => Durability::None,
            Mode::Durable => Durability::Immediate,
        }
    }

    fn reader(&mut self) -> Res<&ReadOnlyTable<&'static [u8], &'static [u8]>> {
        if self.reader.is_none() {
            self.reader = Some(self.db()?.begin_read()?.open_table(TABLE)?);
        }
        self.reader
            .as_ref()
            .ok_or_else(|| "no read transaction".into())
    }

    /// Commits what is pending and makes every earlier commit durable.
    fn persist(&mut self) -> Res<()> {
        let rest = self.pending.take();
        self.commit(&rest, Durability::Immediate)
    }
}

impl Engine for RedbEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        if let Some(batch) = self.pending.push(key, value) {
            self.commit(&batch, self.relaxed())?;
        }
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        self.commit(pairs, self.relaxed())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.commit(&[(key.to_vec(), value.to_vec())], Durability::Immediate)
    }

    fn finish(&mut self) -> Res<()> {
        let rest = self.pending.take();
        if !rest.is_empty() {
            self.commit(&rest, self.relaxed())?;
        }
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.reader()?.get(key)?.map(|guard| guard.value().len()))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for item in self.reader()?.range::<&[u8]>(..)? {
            let (key, value) = item?;
            count += 1;
            bytes += (key.value().len() + value.value().len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        self.persist()?;
        self.reader = None;
        let db = self.db.as_mut().ok_or("the database is closed")?;
        // `compact` returns whether it could do more; run it until it cannot.
        while db.compact()? {}
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        self.persist()?;
        self.reader = None;
        if let Some(db) = self.db.take() {
            db.close()?;
        }
        let (db, took) = timed(|| open_db(&self.path))?;
        self.db = Some(db);
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        self.persist()?;
        self.reader = None;
        if let Some(db) = self.db.take() {
            db.close()?;
        }
        Ok(())
    }
}
