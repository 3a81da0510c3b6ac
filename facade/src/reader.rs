//! The log of a read-only store: the writer's WAL is read where it lies and never opened for
//! writing, while the store itself runs on an empty log in memory that nothing appends to.
//!
//! ```text
//!   <dir>/wal/*.wal ──read_dir (no repair)──► records after the flushed LSN ──► memtable
//!   in-memory log (MemFs), starting above every LSN seen ──► Router (writes refused above it)
//! ```
//!
//! The in-memory log starts above every LSN the warm, cold and on-disk logs hold, so the
//! store's snapshots cover everything replayed.

use std::path::Path;
use std::sync::Arc;

use strata_tiering::Lsn;
use strata_wal::{LogReader, MemFs, StdFs, SyncPolicy, Wal, WalOptions};

use crate::error::Result;

/// The in-memory log and the records to replay: those of `<dir>/wal` after `flushed`.
pub(crate) fn log_beside_writer(
    dir: &Path,
    flushed: Lsn,
    floor: Lsn,
) -> Result<(Arc<Wal>, Option<LogReader>)> {
    let options = WalOptions::default();
    let wal_dir = dir.join("wal");
    // The writer may remove a file it has truncated between the listing and the read.
    let mut attempt = 0;
    let (found, records) = loop {
        attempt += 1;
        match strata_wal::read_dir(&StdFs, &wal_dir, flushed + 1, options.max_record_len) {
            Ok(read) => break read,
            Err(_) if attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let memory = Wal::open_with_fs(
        Arc::new(MemFs::new()),
        "/wal",
        WalOptions {
            sync_policy: SyncPolicy::Never,
            next_lsn_floor: floor.max(found.last_lsn + 1),
            // An in-memory log: no write worth a thread of its own.
            write_behind: false,
            ..options
        },
    )?;
    Ok((Arc::new(memory), Some(records)))
}
