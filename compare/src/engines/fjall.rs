//! fjall 3 (an LSM tree in Rust), one keyspace `default`.
//!
//! - `Bulk` mode: `Keyspace::insert` and `WriteBatch::commit` with fjall's default
//!   durability, `PersistMode::Buffer`-equivalent: the journal is handed to the OS on every
//!   write, never fsynced (the same as RocksDB's default and Strata's `wal_sync = never`).
//! - `Durable` mode: `insert` then `Database::persist(PersistMode::SyncData)` (fdatasync of
//!   the journal) before the next write.
//! - `settle`: `persist(SyncAll)`, then wait until no flush or compaction is running. fjall
//!   has no public manual flush or compaction (`major_compact` is `#[doc(hidden)]`), so an
//!   ordinary user leaves that to its background workers.
//! - `reopen`: drop the handles (which persists the journal) and open again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{timed, Engine, Mode, Res};

/// An open fjall database and its keyspace.
pub struct FjallEngine {
    dir: PathBuf,
    db: Option<(Database, Keyspace)>,
}

fn open_db(dir: &Path) -> Res<(Database, Keyspace)> {
    let db = Database::builder(dir).open()?;
    let keyspace = db.keyspace("default", KeyspaceCreateOptions::default)?;
    Ok((db, keyspace))
}

/// Opens (creating) a database in `dir`; the mode only changes what `put_sync` does.
pub fn open(dir: &Path, _mode: Mode) -> Res<Box<dyn Engine>> {
    Ok(Box::new(FjallEngine {
        dir: dir.to_owned(),
        db: Some(open_db(dir)?),
    }))
}

impl FjallEngine {
    fn db(&self) -> Res<&(Database, Keyspace)> {
        self.db
            .as_ref()
            .ok_or_else(|| "the database is closed".into())
    }
}

impl Engine for FjallEngine {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.db()?.1.insert(key, value)?;
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let (db, keyspace) = self.db()?;
        let mut batch = db.batch();
        for (key, value) in pairs {
            batch.insert(keyspace, key.as_slice(), value.as_slice());
        }
        batch.commit()?;
        Ok(())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        let (db, keyspace) = self.db()?;
        keyspace.insert(key, value)?;
        db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.db()?.1.get(key)?.map(|value| value.len()))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for guard in self.db()?.1.iter() {
            let (key, value) = guard.into_inner()?;
            count += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        let (db, _) = self.db()?;
        db.persist(PersistMode::SyncAll)?;
        // Quiet for 3 polls in a row, or give up after a minute.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet = 0;
        while quiet < 3 && Instant::now() < deadline {
            if db.outstanding_flushes() == 0 && db.active_compactions() == 0 {
                quiet += 1;
            } else {
                quiet = 0;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        drop(self.db.take());
        let (db, took) = timed(|| open_db(&self.dir))?;
        self.db = Some(db);
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        if let Some((db, _)) = self.db.take() {
            db.persist(PersistMode::SyncAll)?;
        }
        Ok(())
    }
}
