//! The tier's shared state: the current segment set, the install lock that orders manifest
//! updates, and quarantine.
//!
//! ```text
//!  readers ──clone Arc──► current: RwLock<Arc<Version>>   (held for a pointer copy only)
//!                                   ▲ swapped after each manifest commit
//!  ingest / compaction / quarantine ─┴─ install: Mutex  ──► MANIFEST.tmp, fsync, rename, fsync dir
//! ```
//!
//! A [`Version`] is immutable; a change builds the next one, commits it to the manifest under the
//! install lock and then swaps it in. Readers take the current `Arc<Version>` and keep it for the
//! whole get or scan, so they see a whole segment set, never half of a change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use strata_tiering::io::Fs;
use strata_tiering::{Key, Lsn, SeqNo};

use crate::error::{Result, SegmentError};
use crate::format::SegmentId;
use crate::manifest::{self, Manifest, SegmentRecord, WriteFailure};
use crate::options::SegmentOptions;
use crate::segment::Segment;
use crate::stats::Counters;

/// The folder, inside the segment directory, that damaged segments are moved to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A segment that failed a check and was moved out of the live set.
///
/// Its key range stays fenced: reads that could have needed its versions fail with
/// [`SegmentError::Quarantined`] until the owner has rebuilt them (from the WAL and the cold
/// tier) and called [`SegmentTier::release_quarantine`](crate::SegmentTier::release_quarantine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedSegment {
    /// The segment's id.
    pub id: SegmentId,
    /// Where the file is now (inside `quarantine/`), or where it was if it could not be moved.
    pub path: PathBuf,
    /// Its smallest key.
    pub first_key: Key,
    /// Its largest key.
    pub last_key: Key,
    /// Lowest seqno it held.
    pub min_seqno: SeqNo,
    /// Highest seqno it held.
    pub max_seqno: SeqNo,
    /// Versions it held.
    pub entry_count: u64,
    /// Its length when it was installed.
    pub file_len: u64,
    /// Its footer's CRC32 when it was installed.
    pub footer_crc: u32,
    /// What was found wrong.
    pub reason: String,
}

impl QuarantinedSegment {
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        self.first_key.as_bytes() <= key && key <= self.last_key.as_bytes()
    }

    pub(crate) fn error_for(&self, key: &[u8]) -> SegmentError {
        SegmentError::Quarantined {
            path: self.path.clone(),
            key: crate::writer::key_for_error(key),
            min_seqno: self.min_seqno,
            max_seqno: self.max_seqno,
        }
    }

    pub(crate) fn record(&self) -> SegmentRecord {
        SegmentRecord {
            id: self.id,
            file_len: self.file_len,
            min_seqno: self.min_seqno,
            max_seqno: self.max_seqno,
            entry_count: self.entry_count,
            footer_crc: self.footer_crc,
            quarantined: true,
            first_key: self.first_key.clone(),
            last_key: self.last_key.clone(),
        }
    }
}

/// One immutable state of the tier.
#[derive(Debug, Clone, Default)]
pub(crate) struct Version {
    /// Live segments, oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// Quarantined segments whose key ranges are fenced.
    pub quarantined: Vec<QuarantinedSegment>,
    /// The flushed LSN.
    pub flushed_lsn: Option<Lsn>,
}

/// The manifest record of a live, non-empty segment.
pub(crate) fn record_of(seg: &Segment) -> Result<SegmentRecord> {
    let key = |k: Option<&[u8]>| {
        k.and_then(|k| Key::new(k).ok()).ok_or_else(|| {
            SegmentError::corruption(seg.path(), 0, "a live segment must hold at least one key")
        })
    };
    let footer = seg.footer();
    Ok(SegmentRecord {
        id: seg.id(),
        file_len: seg.file_len(),
        min_seqno: footer.min_seqno,
        max_seqno: footer.max_seqno,
        entry_count: footer.entry_count,
        footer_crc: seg.footer_crc(),
        quarantined: false,
        first_key: key(seg.first_key())?,
        last_key: key(seg.last_key())?,
    })
}

/// What the install lock guards.
#[derive(Debug)]
pub(crate) struct Installer {
    /// Generation of the last manifest written (or attempted).
    pub generation: u64,
}

/// Failures that leave the tier serving but impaired, reported by `health`.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    /// The last manifest update failed: memory and disk may disagree until the next succeeds.
    pub manifest: Option<String>,
    /// The last background compaction failed.
    pub compaction: Option<String>,
}

/// Everything the tier's handles, iterators and background thread share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub fs: Arc<dyn Fs>,
    pub dir: PathBuf,
    pub options: SegmentOptions,
    current: RwLock<Arc<Version>>,
    install: Mutex<Installer>,
    /// Held by the one compaction that may run at a time.
    pub compacting: Mutex<()>,
    pub next_id: AtomicU64,
    /// The oldest open snapshot plus one; 0 while the owner has set none (nothing is dropped).
    horizon_plus_one: AtomicU64,
    pub counters: Counters,
    pub problems: Mutex<Problems>,
    pub closing: AtomicBool,
}

impl Inner {
    pub fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        options: SegmentOptions,
        version: Version,
        next_id: SegmentId,
        generation: u64,
        problems: Problems,
    ) -> Inner {
        Inner {
            fs,
            dir,
            options,
            current: RwLock::new(Arc::new(version)),
            install: Mutex::new(Installer { generation }),
            compacting: Mutex::new(()),
            next_id: AtomicU64::new(next_id),
            horizon_plus_one: AtomicU64::new(0),
            counters: Counters::default(),
            problems: Mutex::new(problems),
            closing: AtomicBool::new(false),
        }
    }

    /// The current segment set.
    pub fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set_current(&self, version: Version) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(version);
    }

    /// Takes the install lock, counting the wait as a stall when `stall` is set.
    pub fn lock_install(&self, stall: bool) -> MutexGuard<'_, Installer> {
        let started = Instant::now();
        let guard = lock(&self.install);
        if stall {
            self.counters.record_stall(started.elapsed());
        }
        guard
    }

    pub fn gc_horizon(&self) -> Option<SeqNo> {
        self.horizon_plus_one.load(Ordering::Acquire).checked_sub(1)
    }

    pub fn set_gc_horizon(&self, oldest_snapshot: SeqNo) {
        self.horizon_plus_one
            .store(oldest_snapshot.saturating_add(1), Ordering::Release);
    }

    pub fn allocate_id(&self) -> SegmentId {
        self.next_id.fetch_add(1, Ordering::AcqRel)
    }

    /// Writes `version` as the manifest (under the install lock the caller holds).
    pub fn write_manifest(
        &self,
        installer: &mut Installer,
        version: &Version,
    ) -> Result<(), WriteFailure> {
        installer.generation += 1;
        let result = self
            .build_manifest(version, installer.generation)
            .and_then(|m| manifest::write(self.fs.as_ref(), &self.dir, &m));
        lock(&self.problems).manifest = result.as_ref().err().map(|f| f.error.to_string());
        result
    }

    pub(crate) fn build_manifest(
        &self,
        version: &Version,
        generation: u64,
    ) -> Result<Manifest, WriteFailure> {
        let mut records = Vec::with_capacity(version.segments.len() + version.quarantined.len());
        for seg in &version.segments {
            records.push(record_of(seg).map_err(|e| e.into_failure(false))?);
        }
        records.extend(version.quarantined.iter().map(QuarantinedSegment::record));
        Ok(Manifest {
            flushed_lsn: version.flushed_lsn,
            next_segment_id: self.next_id.load(Ordering::Acquire),
            generation,
            records,
        })
    }

    /// Moves a damaged live segment out of the live set and into `quarantine/`, and records
    /// that in the manifest. The in-memory fence takes effect even if the manifest update
    /// fails: wrong data is never served. Does nothing if the segment is no longer live.
    pub fn quarantine(&self, seg: &Arc<Segment>, why: &SegmentError) {
        let mut installer = self.lock_install(false);
        let current = self.current();
        let Some(pos) = current.segments.iter().position(|s| s.id() == seg.id()) else {
            return;
        };
        let mut reason = why.to_string();
        let moved = if self.options.read_only {
            Ok(seg.path().to_owned())
        } else {
            move_to_quarantine(self.fs.as_ref(), &self.dir, seg.path())
        };
        let path = match moved {
            Ok(path) => path,
            Err(e) => {
                reason.push_str(&format!("; could not move the file: {e}"));
                seg.path().to_owned()
            }
        };
        let Ok(record) = record_of(seg) else {
            return;
        };
        let mut next = Version::clone(&current);
        next.segments.remove(pos);
        next.quarantined.push(QuarantinedSegment {
            id: record.id,
            path,
            first_key: record.first_key,
            last_key: record.last_key,
            min_seqno: record.min_seqno,
            max_seqno: record.max_seqno,
            entry_count: record.entry_count,
            file_len: record.file_len,
            footer_crc: record.footer_crc,
            reason,
        });
        // A failure is recorded in `problems` and reported by `health`; the next successful
        // manifest update writes the quarantine too. A reader leaves the manifest to its owner.
        if !self.options.read_only {
            let _ = self.write_manifest(&mut installer, &next);
        }
        self.set_current(next);
    }
}

impl SegmentError {
    fn into_failure(self, maybe_installed: bool) -> WriteFailure {
        WriteFailure {
            error: self,
            maybe_installed,
        }
    }
}

/// Renames `path` into `<dir>/quarantine/` (under a fresh name if one is taken) and makes both
/// directories durable. Returns the new path.
pub(crate) fn move_to_quarantine(fs: &dyn Fs, dir: &Path, path: &Path) -> Result<PathBuf> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs.create_dir_all(&qdir)
        .map_err(|e| SegmentError::io("create directory", &qdir, e))?;
    let taken = fs
        .list_dir(&qdir)
        .map_err(|e| SegmentError::io("list", &qdir, e))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment")
        .to_owned();
    let mut target_name = name.clone();
    let mut n = 1;
    while taken.contains(&target_name) {
        target_name = format!("{name}.{n}");
        n += 1;
    }
    let target = qdir.join(target_name);
    fs.rename(path, &target)
        .map_err(|e| SegmentError::io("rename", path, e))?;
    fs.sync_dir(&qdir)
        .map_err(|e| SegmentError::io("fsync directory", &qdir, e))?;
    fs.sync_dir(dir)
        .map_err(|e| SegmentError::io("fsync directory", dir, e))?;
    Ok(target)
}

/// Locks a mutex, carrying on after a panic elsewhere: every critical section here leaves its
/// state consistent before anything that can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
