//! SQLite (bundled, through rusqlite): one `WITHOUT ROWID` table `kv(k BLOB PRIMARY KEY, v)`.
//!
//! The database runs in WAL journal mode, the usual setup for an embedded key-value use.
//!
//! - `Bulk` mode: `synchronous = OFF` (no fsync at commit); `put` is grouped into
//!   transactions of 1,000 (see [`Pending`]), a batch is one transaction.
//! - `Durable` mode: `synchronous = FULL`, one transaction per put (its commit fsyncs the WAL).
//! - Reads are autocommit `SELECT`s through a cached prepared statement.
//! - `settle`: `PRAGMA wal_checkpoint(TRUNCATE)`, moving the WAL into the main file. No
//!   `VACUUM`: SQLite reuses freed pages, and few applications vacuum routinely.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::pending::Pending;
use super::{timed, Engine, Mode, Res};

/// An open SQLite connection.
pub struct SqliteEngine {
    path: PathBuf,
    /// `None` only between closing and reopening.
    conn: Option<Connection>,
    pending: Pending,
}

fn open_conn(path: &Path, mode: Mode) -> Res<Connection> {
    let conn = Connection::open(path)?;
    let synchronous = match mode {
        Mode::Bulk => "OFF",
        Mode::Durable => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;"
    ))?;
    Ok(conn)
}

/// Opens (creating) `dir/data.sqlite`.
pub fn open(dir: &Path, mode: Mode) -> Res<Box<dyn Engine>> {
    let path = dir.join("data.sqlite");
    Ok(Box::new(SqliteEngine {
        conn: Some(open_conn(&path, mode)?),
        path,
        pending: Pending::default(),
    }))
}

impl SqliteEngine {
    fn conn(&mut self) -> Res<&mut Connection> {
        self.conn
            .as_mut()
            .ok_or_else(|| "the connection is closed".into())
    }

    fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let txn = self.conn()?.transaction()?;
        {
            let mut insert =
                txn.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            for (key, value) in pairs {
                insert.execute(params![key, value])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn shut(&mut self) -> Res<()> {
        self.finish()?;
        if let Some(conn) = self.conn.take() {
            conn.close().map_err(|(_, e)| e)?;
        }
        Ok(())
    }
}

impl Engine for SqliteEngine {
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
        let conn = self.conn()?;
        let mut insert = conn.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
        // Autocommit: the statement is its own transaction.
        insert.execute(params![key, value])?;
        Ok(())
    }

    fn finish(&mut self) -> Res<()> {
        let rest = self.pending.take();
        if !rest.is_empty() {
            self.commit(&rest)?;
        }
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        let conn = self.conn()?;
        let mut select = conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
        let len = select
            .query_row([key], |row| Ok(row.get_ref(0)?.as_blob()?.len()))
            .optional()?;
        Ok(len)
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let conn = self.conn()?;
        let mut select = conn.prepare_cached("SELECT k, v FROM kv ORDER BY k")?;
        let mut rows = select.query([])?;
        let (mut count, mut bytes) = (0, 0);
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_blob()?;
            let value = row.get_ref(1)?.as_blob()?;
            count += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok((count, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        self.finish()?;
        self.conn()?
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        self.shut()?;
        let (conn, took) = timed(|| open_conn(&self.path, Mode::Bulk))?;
        self.conn = Some(conn);
        Ok(took)
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        self.shut()
    }
}
