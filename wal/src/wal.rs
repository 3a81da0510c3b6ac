//! The file WAL: appends, group commit, rollover and the rules after a failed write or fsync.
//!
//! ```text
//!  append(batch) ──► [append lock] encode frames into `buffer`, assign LSNs
//!                         │
//!        sync / full buffer / Always policy
//!                         ▼
//!                   [io lock] take `buffer` ──► pending chunks ──► active file ──► fdatasync
//!                                               (kept until durable)
//! ```
//!
//! Two locks keep appenders from waiting on the disk: the append lock only guards encoding into
//! a memory buffer, and the io lock serialises file writes. Whoever takes the io lock writes
//! every record buffered so far and fsyncs once for all of them; appenders that queued on the
//! io lock meanwhile find their LSN already durable and return. That is the group commit.
//!
//! Chunks stay in memory until an fsync covers them. When a write or an fsync fails, the
//! active file is abandoned: it is never written or fsynced again, the error is returned,
//! and the next sync writes every pending chunk into a fresh file named by the first
//! non-durable LSN. Recovery reads the abandoned file only up to that LSN.
//!
//! A file is rolled once it reaches `max_file_size`; the old one is fsynced first, so pending
//! chunks always belong to the active file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{self, FileHeader};
use crate::group::{CommitQueue, Turn};
use crate::io::{Fs, FsFile, StdFs};
use crate::reader::{LogReader, ReaderFile};
use crate::recovery::{self, RecoveryMode, RecoveryReport, TEMP_SUFFIX};
use crate::{Log, LogIter, Lsn};

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `append` returns after an fsync covering its batch (shared with concurrent appenders).
    #[default]
    Always,
    /// A background thread syncs at this interval; `append` returns once the batch is buffered.
    Interval(Duration),
    /// Only `sync`, file rollover and `close` fsync; `append` returns once the batch is buffered.
    Never,
}

/// How many emptied chunk buffers are kept for reuse.
const SPARE_BUFFERS: usize = 4;

/// Settings of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When appends become durable. Default: `Always`.
    pub sync_policy: SyncPolicy,
    /// Size at which a new file is started. Default: 64 MiB.
    pub max_file_size: u64,
    /// What recovery does with damage. Default: `PointInTime`.
    pub recovery_mode: RecoveryMode,
    /// Largest record accepted, and largest length a reader will believe. Default: 257 MiB
    /// (a 256 MiB value plus its key and framing).
    pub max_record_len: usize,
    /// Under `Interval` and `Never`, buffered bytes that trigger a write to the OS. Default:
    /// 1 MiB. Records in the buffer are lost if the process dies.
    pub write_buffer_size: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync_policy: SyncPolicy::Always,
            max_file_size: 64 << 20,
            recovery_mode: RecoveryMode::PointInTime,
            max_record_len: 257 << 20,
            write_buffer_size: 1 << 20,
        }
    }
}

/// A crash-safe write-ahead log in one directory. See the crate docs for the format.
#[derive(Debug)]
pub struct Wal {
    inner: Arc<Inner>,
    ticker: Option<Ticker>,
    report: RecoveryReport,
}

#[derive(Debug)]
struct Inner {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: WalOptions,
    append: Mutex<AppendState>,
    io: Mutex<IoState>,
    /// Mirror of `IoState::synced`, read without the io lock.
    synced: AtomicU64,
    commits: CommitQueue,
}

#[derive(Debug)]
struct AppendState {
    next_lsn: Lsn,
    buffer: Vec<u8>,
    /// LSN of the first record in `buffer`.
    buffer_first: Lsn,
    /// Emptied chunk buffers, reused so appends do not keep touching fresh memory.
    spare: Vec<Vec<u8>>,
}

/// Encoded frames of whole batches, handed from the append side to the io side.
#[derive(Debug)]
struct Chunk {
    bytes: Vec<u8>,
    first: Lsn,
    last: Lsn,
}

#[derive(Debug)]
struct IoState {
    /// Every WAL file, oldest first; the active file is the last.
    files: Vec<(Lsn, PathBuf)>,
    active: Option<ActiveFile>,
    /// Chunks not yet durable; `pending[..written]` are in the active file.
    pending: Vec<Chunk>,
    written: usize,
    /// Highest LSN handed to the OS in a sound file.
    flushed: Lsn,
    /// Highest LSN made durable.
    synced: Lsn,
    /// Set when a write or fsync failed; the active file must not be used again.
    broken: Option<String>,
    /// The next file must carry the follows-gap flag.
    gap_pending: bool,
}

#[derive(Debug)]
struct ActiveFile {
    path: PathBuf,
    first: Lsn,
    file: Box<dyn FsFile>,
    len: u64,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        Wal::open_with_fs(Arc::new(StdFs), dir, options)
    }

    /// Opens the WAL in `dir` through the given filesystem.
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<Wal> {
        let dir = dir.as_ref().to_owned();
        if options.max_record_len > u32::MAX as usize {
            return Err(Error::BadDirectory {
                path: dir,
                detail: format!(
                    "max_record_len {} does not fit a frame",
                    options.max_record_len
                ),
            });
        }
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs.sync_dir(&parent)
            .map_err(|e| Error::io("fsync directory", &parent, e))?;
        let recovered = recovery::recover(
            fs.as_ref(),
            &dir,
            options.recovery_mode,
            options.max_record_len,
        )?;
        // Not `report.last_lsn`: when truncation removed every record, the LSNs before
        // `next_lsn` are still spent and count as durable (nothing of them can be lost).
        let last = recovered.next_lsn - 1;
        let inner = Arc::new(Inner {
            fs,
            dir,
            append: Mutex::new(AppendState {
                next_lsn: recovered.next_lsn,
                buffer: Vec::with_capacity(options.write_buffer_size),
                buffer_first: recovered.next_lsn,
                spare: Vec::new(),
            }),
            io: Mutex::new(IoState {
                files: recovered.files,
                active: None,
                pending: Vec::new(),
                written: 0,
                flushed: last,
                synced: last,
                broken: None,
                gap_pending: recovered.gap_before_next,
            }),
            synced: AtomicU64::new(last),
            commits: CommitQueue::default(),
            options,
        });
        let ticker = match inner.options.sync_policy {
            SyncPolicy::Interval(every) => Some(Ticker::start(Arc::downgrade(&inner), every)),
            _ => None,
        };
        Ok(Wal {
            inner,
            ticker,
            report: recovered.report,
        })
    }

    /// What recovery found when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The log's files, oldest first, each with its first LSN.
    pub fn files(&self) -> Vec<(Lsn, PathBuf)> {
        lock(&self.inner.io).files.clone()
    }

    /// Makes everything appended durable, stops the interval thread and closes the log.
    pub fn close(mut self) -> Result<Lsn> {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
        self.inner.sync()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
        // Hand buffered records to the OS so a clean exit keeps them even under `Never`;
        // durability was promised only by the policy, so errors here have no one to go to.
        let mut io = lock(&self.inner.io);
        let sync = self.inner.options.sync_policy != SyncPolicy::Never;
        let _ = self.inner.write_out(&mut io, sync);
    }
}

impl Log for Wal {
    fn append(&self, batch: &[&[u8]]) -> Result<Lsn> {
        self.inner.append(batch)
    }

    fn sync(&self) -> Result<Lsn> {
        self.inner.sync()
    }

    fn read_from(&self, lsn: Lsn) -> Result<LogIter> {
        self.inner.read_from(lsn)
    }

    fn truncate_before(&self, lsn: Lsn) -> Result<()> {
        self.inner.truncate_before(lsn)
    }

    fn last_lsn(&self) -> Lsn {
        lock(&self.inner.append).next_lsn - 1
    }

    fn synced_lsn(&self) -> Lsn {
        self.inner.synced.load(Ordering::Acquire)
    }
}

impl Inner {
    fn append(&self, batch: &[&[u8]]) -> Result<Lsn> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let max = self.options.max_record_len;
        if let Some(record) = batch.iter().find(|r| r.len() > max) {
            return Err(Error::RecordTooLarge {
                len: record.len(),
                max,
            });
        }
        let (last, buffered) = {
            let mut state = lock(&self.append);
            let first = state.next_lsn;
            if state.buffer.is_empty() {
                state.buffer_first = first;
            }
            for (i, record) in batch.iter().enumerate() {
                format::encode_frame(
                    &mut state.buffer,
                    first + i as u64,
                    i + 1 == batch.len(),
                    record,
                );
            }
            state.next_lsn += batch.len() as u64;
            (state.next_lsn - 1, state.buffer.len())
        };
        match self.options.sync_policy {
            SyncPolicy::Always => {
                self.sync_to(last)?;
            }
            SyncPolicy::Interval(_) | SyncPolicy::Never => {
                if buffered >= self.options.write_buffer_size {
                    let mut io = lock(&self.io);
                    self.write_out(&mut io, false)?;
                }
            }
        }
        Ok(last)
    }

    fn sync(&self) -> Result<Lsn> {
        let last = lock(&self.append).next_lsn - 1;
        self.sync_to(last)
    }

    /// Returns once `lsn` is durable, leading a group commit if no sync is running.
    fn sync_to(&self, lsn: Lsn) -> Result<Lsn> {
        match self.commits.wait(lsn, &self.synced) {
            Turn::Done => Ok(self.synced.load(Ordering::Acquire)),
            Turn::Lead(_leadership) => {
                let mut io = lock(&self.io);
                if io.synced < lsn {
                    self.write_out(&mut io, true)?;
                }
                Ok(io.synced)
            }
        }
    }

    fn take_buffer(&self) -> Option<Chunk> {
        let mut state = lock(&self.append);
        if state.buffer.is_empty() {
            return None;
        }
        let capacity = self
            .options
            .write_buffer_size
            .min(state.buffer.len().max(4096));
        let bytes = std::mem::replace(&mut state.buffer, Vec::with_capacity(capacity));
        let chunk = Chunk {
            bytes,
            first: state.buffer_first,
            last: state.next_lsn - 1,
        };
        state.buffer_first = state.next_lsn;
        Some(chunk)
    }

    /// Moves buffered records into the active file and, if `sync`, makes them durable.
    fn write_out(&self, io: &mut IoState, sync: bool) -> Result<()> {
        if let Some(chunk) = self.take_buffer() {
            io.pending.push(chunk);
        }
        self.write_pending(io, sync).map_err(|error| {
            if io.broken.is_none() {
                io.broken = Some(error.to_string());
            }
            Error::NotDurable {
                durable: io.synced,
                cause: Box::new(error),
            }
        })
    }

    fn write_pending(&self, io: &mut IoState, sync: bool) -> Result<()> {
        if io.broken.is_some() && !io.pending.is_empty() {
            self.replace_broken_file(io)?;
        }
        let rollover = io
            .active
            .as_ref()
            .is_some_and(|a| a.len >= self.options.max_file_size && io.written < io.pending.len());
        if rollover {
            self.fsync_active(io)?;
            io.active = None;
        }
        while io.written < io.pending.len() {
            if io.active.is_none() {
                let first = io.pending[io.written].first;
                io.active = Some(self.create_file(io, first)?);
            }
            let chunk = &io.pending[io.written];
            let (bytes, last) = (&chunk.bytes, chunk.last);
            if let Some(active) = io.active.as_mut() {
                active
                    .file
                    .append(bytes)
                    .map_err(|e| Error::io("write", &active.path, e))?;
                active.len += bytes.len() as u64;
            }
            io.flushed = last;
            io.written += 1;
        }
        if sync && io.synced < io.flushed {
            self.fsync_active(io)?;
        }
        Ok(())
    }

    /// Fsyncs the active file; on success everything written is durable.
    fn fsync_active(&self, io: &mut IoState) -> Result<()> {
        if let Some(active) = io.active.as_mut() {
            active
                .file
                .sync_data()
                .map_err(|e| Error::io("fsync", &active.path, e))?;
        }
        io.synced = io.flushed;
        let mut state = lock(&self.append);
        for chunk in io.pending.drain(..io.written) {
            if state.spare.len() < SPARE_BUFFERS {
                let mut bytes = chunk.bytes;
                bytes.clear();
                state.spare.push(bytes);
            }
        }
        drop(state);
        io.written = 0;
        self.synced.store(io.synced, Ordering::Release);
        Ok(())
    }

    /// Abandons the active file after a failure and writes every pending chunk into a fresh
    /// one. The abandoned file is not written or fsynced again.
    fn replace_broken_file(&self, io: &mut IoState) -> Result<()> {
        let first = io.pending[0].first;
        if let Some(active) = io.active.take() {
            // A file that starts with the first non-durable LSN holds nothing durable, and its
            // name is needed for the fresh file.
            if active.first == first {
                drop(active.file);
                self.fs
                    .remove_file(&active.path)
                    .map_err(|e| Error::io("remove", &active.path, e))?;
                io.files.retain(|(lsn, _)| *lsn != first);
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
            }
        }
        io.written = 0;
        io.flushed = io.synced;
        let active = self.create_file(io, first)?;
        io.active = Some(active);
        io.broken = None;
        Ok(())
    }

    /// Creates the file for records from `first`: header into a temporary file, fsync, rename,
    /// fsync of the directory, so a crash never leaves a file with a torn header.
    fn create_file(&self, io: &mut IoState, first: Lsn) -> Result<ActiveFile> {
        let name = format::file_name(first);
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let header = format::encode_file_header(FileHeader {
            first_lsn: first,
            follows_gap: io.gap_pending,
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
        file.sync_data().map_err(|e| Error::io("fsync", &temp, e))?;
        fs.rename(&temp, &path)
            .map_err(|e| Error::io("rename", &temp, e))?;
        fs.sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        if !replaces_empty {
            io.files.push((first, path.clone()));
        }
        io.gap_pending = false;
        Ok(ActiveFile {
            path,
            first,
            file,
            len: header.len() as u64,
        })
    }

    fn read_from(&self, lsn: Lsn) -> Result<LogIter> {
        let from = lsn.max(1);
        let mut io = lock(&self.io);
        if io.broken.is_none() {
            // Readers see what was appended before they started. A failure here is the
            // appenders' to report; the reader still gets everything already written.
            let _ = self.write_out(&mut io, false);
        }
        let upto = io.flushed;
        let oldest = io.files.first().map_or(upto + 1, |(first, _)| *first);
        if from < oldest && from <= upto {
            return Err(Error::Truncated {
                requested: from,
                oldest,
            });
        }
        let mut files = Vec::new();
        for (i, (first, path)) in io.files.iter().enumerate() {
            let next_first = io.files.get(i + 1).map(|(lsn, _)| *lsn);
            if next_first.is_some_and(|next| next <= from) || *first > upto {
                continue;
            }
            files.push(ReaderFile::open(
                self.fs.as_ref(),
                path,
                next_first,
                self.options.max_record_len,
            )?);
        }
        Ok(Box::new(LogReader::new(files, from, upto)))
    }

    fn truncate_before(&self, lsn: Lsn) -> Result<()> {
        let mut io = lock(&self.io);
        let mut removed = false;
        while io.files.len() >= 2 && io.files[1].0 <= lsn {
            let (_, path) = io.files.remove(0);
            self.fs
                .remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            removed = true;
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        Ok(())
    }
}

/// Background thread of `SyncPolicy::Interval`.
#[derive(Debug)]
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<()>,
}

impl Ticker {
    fn start(inner: Weak<Inner>, every: Duration) -> Ticker {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let (flag, wake) = &*signal;
            let mut stopped = lock(flag);
            loop {
                let (guard, _) = wake
                    .wait_timeout(stopped, every)
                    .unwrap_or_else(PoisonError::into_inner);
                stopped = guard;
                if *stopped {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                // A failed sync leaves the log broken; the next append or sync reports it.
                let _ = inner.sync();
            }
        });
        Ticker { stop, handle }
    }

    fn stop(self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        let _ = self.handle.join();
    }
}

/// Locks a mutex, carrying on after a panic elsewhere: every critical section here leaves its
/// state consistent before anything that can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
