//! The io side of the WAL: moving buffered chunks into files, rollover, fsync, and the repair
//! after a failed write or fsync.
//!
//! ```text
//!   pending: [chunk][chunk][chunk][chunk]      kept until an fsync covers them
//!             └─ written ─────┘└ unwritten┘
//!   files:   rolled (unsynced) ... active      fsynced together by the next sync
//! ```
//!
//! Under `Always` every append is synced, so a file is complete and durable when it is rolled.
//! Under `Interval` and `Never` a full file is rolled without an fsync (that would make
//! appends wait for the disk); its handle is kept and the next sync fsyncs it before the
//! active file. Chunks stay in memory until then, up to `retain_unsynced_bytes`.
//!
//! Under `Always`, a preallocated file also has zeros written ahead of its records after an
//! fsync, in steps of [`ZERO_AHEAD`]. A hole the size grew over has no disk blocks, so the
//! first fsync of a page there must also allocate its block and write that allocation out
//! (a journal commit, or the inode and bitmap blocks without a journal). Written zeros move
//! that cost to one fsync per step instead of one per page; under steady group commit it
//! made the median fsync about a quarter cheaper on ext4.
//!
//! When a write or fsync fails, every file holding only non-durable records is removed and
//! the pending chunks are written into a fresh file named by the first non-durable LSN; the
//! file that failed is never written or fsynced again. If chunks were already let go because
//! more than `retain_unsynced_bytes` was written without a sync, they cannot be rewritten:
//! the log then refuses all further work until it is reopened, and recovery decides from
//! what the disk holds.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::{self, FileHeader};
use crate::io::FsFile;
use crate::recovery::{RecoveryMode, TEMP_SUFFIX};
use crate::wal::{lock, Inner};
use crate::Lsn;
use crate::SyncPolicy;

/// How many emptied chunk buffers are kept for reuse.
const SPARE_BUFFERS: usize = 4;

/// How far past the end of its records a file under `Always` has zeros written (see the
/// module docs). Each step adds this many bytes to one fsync, and saves the fsyncs of the
/// pages it covers from writing out a block allocation.
const ZERO_AHEAD: u64 = 256 << 10;

/// Largest buffer allocated up front, whatever `write_buffer_size` says.
const MAX_BUFFER_CAPACITY: usize = 16 << 20;

/// Why the log counts as broken while a write or fsync is under way: seen only if that call
/// never returned.
const UNFINISHED: &str = "a write or fsync of a WAL file did not return (it panicked)";

/// Capacity of a new append buffer: the size that triggers a write, plus room for a record
/// of up to a quarter of it crossing that size, so that a buffer under `Never` is usually
/// not reallocated (and copied) when full.
pub(crate) fn buffer_capacity(options: &crate::WalOptions) -> usize {
    let size = options.write_buffer_size;
    let full = if options.writes_behind() {
        hand_over_limit(options)
    } else {
        size
    };
    full.saturating_add(size / 4).min(MAX_BUFFER_CAPACITY)
}

/// Under write-behind, the buffered bytes at which an appender waits for the writer thread to
/// take the buffer (see the `behind` module): two buffers' worth, so appends fill one while
/// the other is written.
pub(crate) fn hand_over_limit(options: &crate::WalOptions) -> usize {
    options.write_buffer_size.saturating_mul(2)
}

/// Encoded frames of whole batches, handed from the append side to the io side.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub bytes: Vec<u8>,
    pub first: Lsn,
    pub last: Lsn,
}

/// A WAL file open for appending.
#[derive(Debug)]
pub(crate) struct OpenFile {
    path: PathBuf,
    file: Box<dyn FsFile>,
    len: u64,
    /// Bytes from the start that hold records or written zeros; `u64::MAX` once no more
    /// zeros are to be written.
    zeroed: u64,
}

impl OpenFile {
    /// Once less than half a step of written zeros is left past the records, writes zeros
    /// from there to [`ZERO_AHEAD`] past the records, within the file's first `limit` bytes.
    ///
    /// Called right after an fsync, when the file holds nothing unsynced: on some
    /// filesystems a failed write clears the error a later fsync would have reported, and
    /// then it can hide no record. Only a speed-up: the file reads as zeros there anyway, so a
    /// failure ends it for this file, and any damage to the file's pages surfaces in the next
    /// fsync like that of any other write.
    fn zero_ahead(&mut self, limit: u64) {
        if self.len.saturating_add(ZERO_AHEAD / 2) <= self.zeroed {
            return;
        }
        let from = self.zeroed.max(self.len);
        let to = self.len.saturating_add(ZERO_AHEAD).min(limit);
        if to <= from || self.file.write_zeros(from, to - from).is_err() {
            self.zeroed = u64::MAX;
            return;
        }
        self.zeroed = to;
    }

    /// Cuts off the preallocated zeros past the last record. Only tidiness: recovery reads
    /// those zeros as the file's end and trims them itself, so a failure changes nothing.
    fn trim(&mut self) {
        if self.file.len().is_ok_and(|len| len > self.len) {
            let _ = self.file.set_len(self.len);
        }
    }
}

/// Everything the io lock guards.
#[derive(Debug)]
pub(crate) struct IoState {
    /// Every WAL file, oldest first; the active file is the last.
    pub files: Vec<(Lsn, PathBuf)>,
    active: Option<OpenFile>,
    /// Files rolled away while holding records not yet durable.
    rolled: Vec<OpenFile>,
    /// Chunks not yet durable; `pending[..written]` are in files.
    pending: Vec<Chunk>,
    written: usize,
    pending_bytes: usize,
    /// Highest LSN handed to the OS in a sound file.
    pub flushed: Lsn,
    /// Highest LSN made durable.
    pub synced: Lsn,
    /// Highest LSN whose chunk was let go before it was durable (0: none).
    released: Lsn,
    /// Set when a write or fsync failed; the files it touched must not be used again.
    pub broken: Option<String>,
    /// The next file must carry the follows-gap flag.
    gap_pending: bool,
}

impl IoState {
    pub(crate) fn new(files: Vec<(Lsn, PathBuf)>, last: Lsn, gap_pending: bool) -> IoState {
        IoState {
            files,
            active: None,
            rolled: Vec::new(),
            pending: Vec::new(),
            written: 0,
            pending_bytes: 0,
            flushed: last,
            synced: last,
            released: 0,
            broken: None,
            gap_pending,
        }
    }
}

impl IoState {
    /// How many bytes of `path` hold records, if it is the file being appended to (whose
    /// length on disk may include preallocated zeros).
    pub(crate) fn written_len(&self, path: &std::path::Path) -> Option<u64> {
        self.active
            .as_ref()
            .filter(|active| active.path == path)
            .map(|active| active.len)
    }
}

impl Inner {
    /// Moves buffered records into files and, if `sync`, makes them durable.
    pub(crate) fn write_out(&self, io: &mut IoState, sync: bool) -> Result<()> {
        if let Some(reason) = self.stopped.get() {
            return Err(Error::Stopped(reason.clone()));
        }
        if let Some(chunk) = self.take_buffer() {
            io.pending_bytes += chunk.bytes.len();
            io.pending.push(chunk);
            if let Some(behind) = self.behind.get() {
                // Before any file is written: appenders held back by a full buffer go on.
                behind.notify_taken();
            }
        }
        self.write_pending(io, sync).map_err(|error| {
            if matches!(error, Error::Stopped(_)) {
                return error;
            }
            if io.broken.is_none() {
                io.broken = Some(error.to_string());
            }
            Error::NotDurable {
                durable: io.synced,
                cause: Box::new(error),
            }
        })
    }

    fn take_buffer(&self) -> Option<Chunk> {
        let mut state = lock(&self.append);
        if state.buffer.is_empty() {
            return None;
        }
        state.seal();
        let fresh = state
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(buffer_capacity(&self.options)));
        let bytes = std::mem::replace(&mut state.buffer, fresh);
        let chunk = Chunk {
            bytes,
            first: state.buffer_first,
            last: state.next_lsn - 1,
        };
        state.buffer_first = state.next_lsn;
        if let Some(behind) = self.behind.get() {
            // Under the append lock, so an appender's count read under it is exact.
            behind.count_take();
        }
        Some(chunk)
    }

    fn write_pending(&self, io: &mut IoState, sync: bool) -> Result<()> {
        if io.broken.is_some() {
            if io.released > io.synced {
                // Records let go of unsynced were in the failed files only: no fresh file
                // can hold them, and no sync may ever count them durable.
                return Err(self.stop_for_released_records(io));
            }
            if io.pending.is_empty() {
                // Nothing is waiting to become durable: just never touch those files again.
                io.active = None;
                io.rolled.clear();
                io.broken = None;
            } else {
                self.replace_broken_files(io)?;
            }
        }
        let full = io
            .active
            .as_ref()
            .is_some_and(|a| a.len >= self.options.max_file_size);
        if full && io.written < io.pending.len() {
            if let Some(mut old) = io.active.take() {
                old.trim();
                if io.synced < io.flushed {
                    io.rolled.push(old);
                }
            }
        }
        while io.written < io.pending.len() {
            if io.active.is_none() {
                let first = io.pending[io.written].first;
                io.active = Some(self.create_file(io, first)?);
            }
            let chunk = &io.pending[io.written];
            if let Some(active) = io.active.as_mut() {
                // Until the write returns, the file counts as failed: a write that never
                // returns (a panic in an `Fs`) may have left part of the chunk in it, and the
                // next writer must start a fresh file instead of appending after those bytes.
                io.broken = Some(UNFINISHED.to_owned());
                let written = active.file.append(&chunk.bytes);
                io.broken = None;
                written.map_err(|e| Error::io("write", &active.path, e))?;
                active.len += chunk.bytes.len() as u64;
            }
            io.flushed = chunk.last;
            io.written += 1;
        }
        if sync && io.synced < io.flushed {
            self.fsync_files(io)?;
            if self.preallocates() && self.options.sync_policy == SyncPolicy::Always {
                if let Some(active) = io.active.as_mut() {
                    active.zero_ahead(self.options.max_file_size);
                }
            }
        } else {
            self.release_over_budget(io);
        }
        Ok(())
    }

    /// Starts a new, empty file at the next LSN (see [`crate::Wal::roll`]). A record buffered
    /// but not yet taken has an LSN past `flushed`, so it lands in the new file.
    ///
    /// Everything written is made durable first: a crash must never find the new file's
    /// durable header after an old file whose tail it lost, which recovery would rightly
    /// take for damage. If creating the file fails, the log is marked broken, so the next
    /// write goes to a fresh file instead of the old one (whose LSNs a half-created file may
    /// now claim).
    pub(crate) fn roll(&self, io: &mut IoState) -> Result<()> {
        if io.broken.is_some() {
            return Ok(());
        }
        if io.synced < io.flushed || io.written < io.pending.len() {
            self.write_out(io, true)?;
        }
        let first = io.flushed + 1;
        if io.files.last().is_none_or(|(lsn, _)| *lsn >= first) {
            return Ok(());
        }
        match self.create_file(io, first) {
            Ok(fresh) => {
                // Everything in the old file is durable: nothing is left to fsync in it.
                if let Some(mut old) = io.active.replace(fresh) {
                    old.trim();
                }
                Ok(())
            }
            Err(error) => {
                io.broken = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// True if new files are extended with zeros up front (see [`WalOptions::preallocate`]).
    ///
    /// [`WalOptions::preallocate`]: crate::WalOptions::preallocate
    fn preallocates(&self) -> bool {
        self.options.preallocate && self.options.recovery_mode == RecoveryMode::PointInTime
    }

    /// Trims the zeros past the records of the active file, for a clean close.
    pub(crate) fn trim_active(&self, io: &mut IoState) {
        if io.broken.is_none() {
            if let Some(active) = io.active.as_mut() {
                active.trim();
            }
        }
    }

    /// Fsyncs the rolled files and the active one; on success everything written is durable.
    fn fsync_files(&self, io: &mut IoState) -> Result<()> {
        // As for a write (see `write_pending`): an fsync that never returns counts as failed.
        io.broken = Some(UNFINISHED.to_owned());
        let synced = io
            .rolled
            .iter_mut()
            .chain(io.active.as_mut())
            .try_for_each(|file| {
                file.file
                    .sync_data()
                    .map_err(|e| Error::io("fsync", &file.path, e))
            });
        io.broken = None;
        synced?;
        io.rolled.clear();
        io.synced = io.flushed;
        io.released = 0;
        let written = io.written;
        self.recycle(io, written);
        self.synced.store(io.synced, Ordering::Release);
        if let Some(behind) = self.behind.get() {
            // A background write's failure that this fsync made moot is not reported.
            behind.clear_failure(io.synced);
        }
        Ok(())
    }

    /// Lets go of the oldest written chunks while more than `retain_unsynced_bytes` wait for a
    /// sync, so a log that is never synced does not grow in memory without bound.
    fn release_over_budget(&self, io: &mut IoState) {
        let budget = self.options.retain_unsynced_bytes;
        let mut count = 0;
        let mut bytes = io.pending_bytes;
        while count < io.written && bytes > budget {
            bytes -= io.pending[count].bytes.len();
            io.released = io.pending[count].last;
            count += 1;
        }
        self.recycle(io, count);
    }

    /// Drops the first `count` pending chunks, keeping a few buffers for reuse.
    fn recycle(&self, io: &mut IoState, count: usize) {
        if count == 0 {
            return;
        }
        let mut state = lock(&self.append);
        for chunk in io.pending.drain(..count) {
            io.pending_bytes -= chunk.bytes.len();
            if state.spare.len() < SPARE_BUFFERS
                && chunk.bytes.capacity() <= buffer_capacity(&self.options)
            {
                let mut bytes = chunk.bytes;
                bytes.clear();
                state.spare.push(bytes);
            }
        }
        io.written -= count;
    }

    /// Abandons every file holding only non-durable records after a failure, and starts a
    /// fresh file for all pending chunks. Files that failed are never written or fsynced again.
    fn replace_broken_files(&self, io: &mut IoState) -> Result<()> {
        let first = io.pending[0].first;
        io.rolled.clear();
        io.active = None;
        let doomed: Vec<PathBuf> = io
            .files
            .iter()
            .filter(|(lsn, _)| *lsn >= first)
            .map(|(_, path)| path.clone())
            .collect();
        for path in &doomed {
            self.fs
                .remove_file(path)
                .map_err(|e| Error::io("remove", path, e))?;
            io.files.retain(|(_, p)| p != path);
        }
        if !doomed.is_empty() {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        io.written = 0;
        io.flushed = io.synced;
        io.active = Some(self.create_file(io, first)?);
        io.broken = None;
        Ok(())
    }

    /// Stops the log after a failure in files that held records no longer kept in memory
    /// (see `WalOptions::retain_unsynced_bytes`), and returns the error saying so.
    fn stop_for_released_records(&self, io: &IoState) -> Error {
        let reason = format!(
            "a write or fsync failed after records up to LSN {} had been written without a \
             sync and were no longer held in memory ({}); reopen the log to recover what the \
             disk holds",
            io.released,
            io.broken.as_deref().unwrap_or("unknown failure")
        );
        let _ = self.stopped.set(reason.clone());
        Error::Stopped(reason)
    }

    /// Creates the file for records from `first`: header into a temporary file, fsync, rename,
    /// fsync of the directory, so a crash never leaves a file with a torn header.
    fn create_file(&self, io: &mut IoState, first: Lsn) -> Result<OpenFile> {
        let name = format::file_name(first);
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let preallocate = self.preallocates();
        let header = format::encode_file_header(FileHeader {
            first_lsn: first,
            follows_gap: io.gap_pending,
            preallocated: preallocate,
        });
        // A file of this name can only be one recovery kept with no record in it (its name
        // is the LSN floor); the rename below replaces it atomically.
        let replaces_empty = io.files.iter().any(|(lsn, _)| *lsn == first);
        let fs = self.fs.as_ref();
        // A leftover from a creation that failed half-way holds a header at most.
        let _ = fs.remove_file(&temp);
        let mut file = fs
            .create_new(&temp)
            .map_err(|e| Error::io("create", &temp, e))?;
        file.append(&header)
            .map_err(|e| Error::io("write", &temp, e))?;
        if preallocate {
            file.preallocate(self.options.max_file_size)
                .map_err(|e| Error::io("preallocate", &temp, e))?;
        }
        file.sync_data().map_err(|e| Error::io("fsync", &temp, e))?;
        fs.rename(&temp, &path)
            .map_err(|e| Error::io("rename", &temp, e))?;
        // Known from here on even if the directory fsync fails: a repair must find it and
        // remove or replace it, or records written elsewhere at its LSNs would be shadowed by
        // an empty file at recovery.
        if !replaces_empty {
            io.files.push((first, path.clone()));
        }
        fs.sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        io.gap_pending = false;
        Ok(OpenFile {
            path,
            file,
            len: header.len() as u64,
            zeroed: header.len() as u64,
        })
    }
}
