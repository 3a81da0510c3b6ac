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
//! a memory buffer, and the io lock serialises file writes. Under `Interval` and `Never` a full
//! buffer is written by a background thread (`behind` module) rather than by the append that
//! filled it. Durability waits go through the
//! group-commit queue (`group` module): one leader writes and fsyncs everything buffered so far
//! for every appender waiting at that moment. The io side, with rollover and the repair after
//! a failed write or fsync, is in the `writer` module.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::behind::{Signal, WriteBehind};
use crate::error::{Error, Result};
use crate::format;
use crate::group::{CommitQueue, Turn};
use crate::io::{Fs, StdFs};
use crate::reader::{LogReader, ReaderFile};
use crate::recovery::{self, RecoveryMode, RecoveryReport};
use crate::writer::{hand_over_limit, IoState};
use crate::{Log, LogIter, Lsn};

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `append` returns after an fsync covering its batch (shared with concurrent appenders).
    #[default]
    Always,
    /// A background thread syncs at this interval; `append` returns once the batch is buffered.
    Interval(Duration),
    /// Only `sync` and `close` fsync; `append` returns once the batch is buffered.
    Never,
}

/// The longest a new group-commit leader waits for the appenders the last fsync released
/// (see [`CommitQueue::gather`]), however slow that fsync was.
const MAX_GATHER: Duration = Duration::from_millis(1);

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
    /// 256 KiB. Records in the buffer are lost if the process dies.
    pub write_buffer_size: usize,
    /// Under `Interval` and `Never`, how many bytes of records written since the last sync
    /// are kept in memory, so that a failed fsync can be repaired by rewriting them into a
    /// fresh file. Default: 8 MiB, small enough for the chunks to stay in the CPU cache as
    /// they are reused. If more than this is written without a sync and the next fsync fails,
    /// the log stops ([`Error::Stopped`]) until it is reopened.
    pub retain_unsynced_bytes: usize,
    /// The lowest LSN the next record may get. An owner whose later stages remember LSNs
    /// (a flushed or committed watermark) passes one above them, so that a log whose files
    /// were lost never hands out an LSN those stages have already seen. Default: 1.
    pub next_lsn_floor: Lsn,
    /// Extend each new file with zeros to `max_file_size` when it is created, so appends
    /// write over space the file already has and an fsync need not also record a new file
    /// size (on ext4 and XFS that makes a durable append markedly cheaper). The zeros are
    /// holes on filesystems that support them, so they take no disk space, and recovery trims
    /// them off. Used only under [`RecoveryMode::PointInTime`]: a torn write over zeros
    /// looks like a damaged record, which the stricter modes refuse (RocksDB makes the same
    /// choice for recycled logs). Under `Always`, zeros are also written a step (256 KiB)
    /// ahead of the records, so the filesystem allocates those blocks once per step rather
    /// than in the fsync of every page's first record; that step does take disk space.
    /// Default: true.
    pub preallocate: bool,
    /// How long a thread waiting for a group commit (an append under `Always`, or a `sync`)
    /// checks for its turn with the CPU yielded between checks before it sleeps: one waiter at
    /// a time, and the leader gathering the writers its last fsync released. Waking a
    /// sleeping thread on an idle CPU can take tens of microseconds on a virtual machine, a
    /// sizeable part of a fast fsync; this spends CPU time to save it. Zero makes every wait
    /// sleep. Default: 250 µs.
    pub group_commit_spin: Duration,
    /// Under `Interval` and `Never`, hand a full write buffer to a background thread that
    /// writes it to the OS while appends go on into the next buffer, rather than making the
    /// append that filled it wait for the write. An appender waits only when it has filled two
    /// buffers' worth before the first was taken. A failure of a background write is returned
    /// by the next `append`. Turn it off to have every write happen on an appending thread,
    /// in an order a test can count on. Default: true.
    pub write_behind: bool,
}

impl WalOptions {
    /// True if full buffers are written by the background thread (see [`WalOptions::write_behind`]).
    pub(crate) fn writes_behind(&self) -> bool {
        self.write_behind && self.sync_policy != SyncPolicy::Always
    }
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync_policy: SyncPolicy::Always,
            max_file_size: 64 << 20,
            recovery_mode: RecoveryMode::PointInTime,
            max_record_len: 257 << 20,
            write_buffer_size: 256 << 10,
            retain_unsynced_bytes: 8 << 20,
            next_lsn_floor: 1,
            preallocate: true,
            group_commit_spin: Duration::from_micros(250),
            write_behind: true,
        }
    }
}

/// A crash-safe write-ahead log in one directory. See the crate docs for the format.
#[derive(Debug)]
pub struct Wal {
    pub(crate) inner: Arc<Inner>,
    ticker: Option<Ticker>,
    writer: Option<WriteBehind>,
    report: RecoveryReport,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    pub(crate) append: Mutex<AppendState>,
    pub(crate) io: Mutex<IoState>,
    /// Mirror of `IoState::synced`, read without the io lock.
    pub(crate) synced: AtomicU64,
    commits: CommitQueue,
    /// How long the last group commit's write and fsync took: how long a new leader may
    /// wait, up to [`MAX_GATHER`], for released appenders to come back (see
    /// [`CommitQueue::gather`]).
    last_sync_nanos: AtomicU64,
    /// Set once a failure cannot be repaired; every later call fails with it.
    pub(crate) stopped: OnceLock<String>,
    /// Shared with the write-behind thread, once it runs (see the `behind` module).
    pub(crate) behind: OnceLock<Arc<Signal>>,
}

/// Everything the append lock guards.
#[derive(Debug)]
pub(crate) struct AppendState {
    pub(crate) next_lsn: Lsn,
    pub(crate) buffer: Vec<u8>,
    /// LSN of the first record in `buffer`.
    pub(crate) buffer_first: Lsn,
    /// Emptied chunk buffers, reused so appends do not keep touching fresh memory.
    pub(crate) spare: Vec<Vec<u8>>,
    /// Where the frames in `buffer` still without checksums start: fewer than
    /// [`format::SEAL_GROUP`] of them, sealed before the buffer leaves this state.
    pub(crate) unsealed: Vec<usize>,
}

impl AppendState {
    /// Appends a frame, checksumming frames a group at a time (see
    /// [`format::encode_unsealed_frame`]).
    fn push_frame(&mut self, lsn: Lsn, batch_end: bool, payload: &[u8]) {
        crate::prefetch::ahead_of_appends(&self.buffer);
        self.unsealed.push(self.buffer.len());
        format::encode_unsealed_frame(&mut self.buffer, lsn, batch_end, payload);
        if self.unsealed.len() == format::SEAL_GROUP {
            self.seal();
        }
    }

    /// Checksums every frame in `buffer` still without one.
    pub(crate) fn seal(&mut self) {
        format::seal_frames(&mut self.buffer, &self.unsealed);
        self.unsealed.clear();
    }
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
            options.next_lsn_floor,
            true,
        )?;
        // Not `report.last_lsn`: when truncation removed every record, the LSNs before
        // `next_lsn` are still spent and count as durable (nothing of them can be lost).
        let last = recovered.next_lsn - 1;
        let inner = Arc::new(Inner {
            fs,
            dir,
            append: Mutex::new(AppendState {
                next_lsn: recovered.next_lsn,
                buffer: Vec::with_capacity(crate::writer::buffer_capacity(&options)),
                buffer_first: recovered.next_lsn,
                spare: Vec::new(),
                unsealed: Vec::with_capacity(format::SEAL_GROUP),
            }),
            io: Mutex::new(IoState::new(
                recovered.files,
                last,
                recovered.gap_before_next,
            )),
            synced: AtomicU64::new(last),
            commits: CommitQueue::new(options.group_commit_spin),
            last_sync_nanos: AtomicU64::new(0),
            stopped: OnceLock::new(),
            behind: OnceLock::new(),
            options,
        });
        let ticker = match inner.options.sync_policy {
            SyncPolicy::Interval(every) => Some(Ticker::start(Arc::downgrade(&inner), every)),
            _ => None,
        };
        let mut writer = None;
        if inner.options.writes_behind() {
            let signal = Arc::new(Signal::default());
            writer = WriteBehind::start(Arc::downgrade(&inner), Arc::clone(&signal));
            if writer.is_some() {
                let _ = inner.behind.set(signal);
            }
        }
        Ok(Wal {
            inner,
            ticker,
            writer,
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

    /// Ends the active file: records appended from now on go into a new one, so that every
    /// record already written sits in files [`Log::truncate_before`] can remove whole. An
    /// owner that has just made a span of records redundant (a flushed memtable) rolls so that
    /// the span's space comes back without waiting for the file to fill. Does nothing when the
    /// newest file holds no record yet, or while a failed write waits for its repair.
    pub fn roll(&self) -> Result<()> {
        if let Some(reason) = self.inner.stopped.get() {
            return Err(Error::Stopped(reason.clone()));
        }
        let mut io = lock(&self.inner.io);
        self.inner.roll(&mut io)
    }

    /// The log's files, oldest first, each with its first LSN.
    pub fn files(&self) -> Vec<(Lsn, PathBuf)> {
        lock(&self.inner.io).files.clone()
    }

    /// The bytes the log's files hold up to their last record: the file being appended to
    /// counts as far as its records go, not its preallocated length. (On a filesystem with
    /// holes most of the zeros take no space; under `Always` the step written ahead does.)
    /// A file that cannot be read counts as empty.
    pub fn record_bytes(&self) -> u64 {
        let io = lock(&self.inner.io);
        io.files
            .iter()
            .map(|(_, path)| match io.written_len(path) {
                Some(len) => len,
                None => self
                    .inner
                    .fs
                    .open_read(path)
                    .and_then(|file| file.len())
                    .unwrap_or(0),
            })
            .sum()
    }

    /// Makes everything appended durable, stops the interval thread and closes the log.
    pub fn close(mut self) -> Result<Lsn> {
        self.stop_threads();
        self.inner.sync()
    }
}

impl Wal {
    /// Stops the interval and write-behind threads; from here on only the caller writes.
    fn stop_threads(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
        if let Some(writer) = self.writer.take() {
            writer.stop();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop_threads();
        // Hand buffered records to the OS so a clean exit keeps them even under `Never`;
        // durability was promised only by the policy, so errors here have no one to go to.
        let mut io = lock(&self.inner.io);
        let sync = self.inner.options.sync_policy != SyncPolicy::Never;
        let _ = self.inner.write_out(&mut io, sync);
        self.inner.trim_active(&mut io);
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
        if let Some(reason) = self.stopped.get() {
            return Err(Error::Stopped(reason.clone()));
        }
        let max = self.options.max_record_len;
        if let Some(record) = batch.iter().find(|r| r.len() > max) {
            return Err(Error::RecordTooLarge {
                len: record.len(),
                max,
            });
        }
        let behind = self.behind.get();
        let (last, buffered, takes_seen) = {
            let mut state = lock(&self.append);
            let first = state.next_lsn;
            // `u64::MAX` itself is never assigned, so that `next_lsn` always fits.
            let Some(next) = first.checked_add(batch.len() as u64) else {
                return Err(Error::LsnExhausted {
                    next: first,
                    batch: batch.len(),
                });
            };
            if state.buffer.is_empty() {
                state.buffer_first = first;
            }
            for (i, record) in batch.iter().enumerate() {
                state.push_frame(first + i as u64, i + 1 == batch.len(), record);
            }
            state.next_lsn = next;
            let takes_seen = behind.map_or(0, |b| b.takes());
            (state.next_lsn - 1, state.buffer.len(), takes_seen)
        };
        self.commits.note_append();
        match self.options.sync_policy {
            SyncPolicy::Always => {
                self.sync_to(last, true)?;
            }
            SyncPolicy::Interval(_) | SyncPolicy::Never => {
                if buffered >= self.options.write_buffer_size {
                    match behind.filter(|b| b.running()) {
                        Some(behind) => {
                            behind.hand_over(buffered, hand_over_limit(&self.options), takes_seen);
                        }
                        None => {
                            let mut io = lock(&self.io);
                            self.write_out(&mut io, false)?;
                        }
                    }
                }
                if let Some(failure) = behind.and_then(|b| b.take_failure()) {
                    return Err(failure);
                }
            }
        }
        Ok(last)
    }

    fn sync(&self) -> Result<Lsn> {
        let last = lock(&self.append).next_lsn - 1;
        self.sync_to(last, false)
    }

    /// Returns once `lsn` is durable, leading a group commit if no sync is running.
    /// `appender` says the caller waits for its own append (see [`CommitQueue::wait`]).
    fn sync_to(&self, lsn: Lsn, appender: bool) -> Result<Lsn> {
        match self.commits.wait(lsn, &self.synced, appender) {
            Turn::Done => Ok(self.synced.load(Ordering::Acquire)),
            Turn::Lead(mut leadership) => {
                let last = Duration::from_nanos(self.last_sync_nanos.load(Ordering::Relaxed));
                self.commits.gather(last.min(MAX_GATHER));
                let mut io = lock(&self.io);
                if io.synced < lsn {
                    let start = Instant::now();
                    self.write_out(&mut io, true)?;
                    let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    self.last_sync_nanos.store(took, Ordering::Relaxed);
                }
                leadership.succeeded();
                Ok(io.synced)
            }
        }
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
            // The file being appended to is read only as far as its records went: past them
            // lie preallocated zeros, which a roll or close may trim away mid-read.
            files.push(ReaderFile::open(
                self.fs.as_ref(),
                path,
                next_first,
                self.options.max_record_len,
                io.written_len(path),
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
                // Checked before waiting too: a stop sent before this thread first took the
                // lock woke nobody, and waiting then would hold up the log's drop for `every`.
                if *stopped {
                    return;
                }
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
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
