//! The engines under comparison, behind one small trait.
//!
//! Each file here adapts one engine to [`Engine`]. An engine is opened on a directory in a
//! [`Mode`]: `Bulk` relaxes durability (no fsync per write; the engine's non-sync path) for
//! the fills, overwrites and reads; `Durable` is what `fillsync` uses, where every write is on
//! stable storage before the call returns. Workloads an engine cannot express (reads from the
//! raw append-only file, reopening an in-memory map) are left out via [`Engine::supports`].

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod btreemap;
pub mod fjall;
pub mod lmdb;
mod pending;
pub mod rawfile;
pub mod redb;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod sled;
pub mod sqlite;
pub mod strata;

/// The error type of every adapter: whatever the engine returned, boxed.
pub type BoxError = Box<dyn Error + Send + Sync>;
/// The result type of every adapter.
pub type Res<T> = Result<T, BoxError>;

/// How durable the engine's writes are while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No fsync per write: the engine's non-durable or bulk mode.
    Bulk,
    /// Every write is fsynced before the call returns.
    Durable,
}

/// Optional capabilities; everything else every engine does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Point reads and scans.
    Reads,
    /// Closing and opening again with the data still there.
    Reopen,
    /// Durable single writes.
    Sync,
}

/// One engine, open on one directory.
///
/// Writes through [`put`](Engine::put) may be grouped by the engine (the transactional
/// engines commit every 1,000 puts); [`finish`](Engine::finish) ends a write phase so
/// everything written is visible to reads, without forcing it to disk.
pub trait Engine {
    /// Whether the engine can run workloads needing `capability` (default: yes).
    fn supports(&self, _capability: Capability) -> bool {
        true
    }

    /// A non-durable single write (the engine's ordinary write path, durability relaxed).
    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()>;

    /// Writes `pairs` atomically as one batch or transaction, non-durably.
    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()>;

    /// A single write that is on stable storage when the call returns (engine opened in
    /// [`Mode::Durable`]).
    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()>;

    /// Ends a write phase: commits anything [`put`](Engine::put) still holds back.
    fn finish(&mut self) -> Res<()> {
        Ok(())
    }

    /// The length of `key`'s value, or `None` if it is absent.
    fn get(&mut self, key: &[u8]) -> Res<Option<usize>>;

    /// Reads every pair in key order; returns how many there were and the bytes read.
    fn scan(&mut self) -> Res<(u64, u64)>;

    /// What a user would call for the data to settle on disk: persist, flush memtables,
    /// compact where the engine offers it. Called before measuring bytes on disk.
    fn settle(&mut self) -> Res<()>;

    /// Closes the engine and opens it again on the same directory, in `Bulk` mode; returns
    /// how long the open took (the close before it is not counted).
    fn reopen(&mut self) -> Res<Duration>;

    /// Closes the engine, reporting any failure.
    fn close(self: Box<Self>) -> Res<()>;
}

/// How to open one engine.
#[derive(Clone, Copy)]
pub struct EngineSpec {
    /// The name used in `--engines` and in the reports.
    pub name: &'static str,
    /// Opens (creating) the engine in `dir`, which exists and is empty.
    pub open: fn(&Path, Mode) -> Res<Box<dyn Engine>>,
}

/// Every engine this build has, Strata first.
pub fn all() -> Vec<EngineSpec> {
    let mut specs = vec![
        EngineSpec {
            name: "strata",
            open: strata::open,
        },
        EngineSpec {
            name: "fjall",
            open: fjall::open,
        },
        EngineSpec {
            name: "redb",
            open: redb::open,
        },
        EngineSpec {
            name: "sled",
            open: sled::open,
        },
        EngineSpec {
            name: "lmdb",
            open: lmdb::open,
        },
        EngineSpec {
            name: "sqlite",
            open: sqlite::open,
        },
    ];
    #[cfg(feature = "rocksdb")]
    specs.push(EngineSpec {
        name: "rocksdb",
        open: rocksdb::open,
    });
    specs.push(EngineSpec {
        name: "rawfile",
        open: rawfile::open,
    });
    specs.push(EngineSpec {
        name: "btreemap",
        open: btreemap::open,
    });
    specs
}

/// Runs `open` and returns its result with how long it took.
pub fn timed<T>(open: impl FnOnce() -> Res<T>) -> Res<(T, Duration)> {
    let started = Instant::now();
    let value = open()?;
    Ok((value, started.elapsed()))
}

/// Bytes a directory tree takes: `(allocated, apparent)`. Allocated counts the filesystem
/// blocks (as `du` does), so sparse or preallocated files count for what they really use.
pub fn disk_usage(path: &Path) -> Res<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok((meta.blocks() * 512, meta.len()));
    }
    let (mut allocated, mut apparent) = (0, 0);
    for entry in std::fs::read_dir(path)? {
        let (a, b) = disk_usage(&entry?.path())?;
        allocated += a;
        apparent += b;
    }
    Ok((allocated, apparent))
}
