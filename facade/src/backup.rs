//! Backups: consistent checkpoints of a live store, their verification, and restoring one.
//!
//! A checkpoint is a directory:
//!
//! ```text
//!   <dest>/
//!     segments/MANIFEST, segments/<id>.seg   hard links of the live segments (copies across
//!                                            filesystems), and a manifest listing exactly them
//!     wal/<first lsn>.wal ...                a copy of the log from the oldest record any tier
//!                                            still needs, through every record durable at the call
//!     cold.bundle                            a git bundle (v2) of the cold repository
//!     config.json, rules.json                the store's settings and classification rules
//!     CHECKPOINT.json                        written last: what the checkpoint holds (below)
//! ```
//!
//! `CHECKPOINT.json` is the commit point: a directory without it is an unfinished checkpoint
//! and is never restored. It records the watermarks at the checkpoint, the cold repository's
//! identity (which a bundle does not carry), and every file with its length and, for all but
//! the segments (whose blocks carry their own CRC32s), its CRC32.
//!
//! # Why it is consistent
//!
//! The checkpoint holds the maintenance lock throughout, so no memtable flush, commit, push,
//! pull or log truncation runs while it is taken; writes go on. The segments are linked at
//! a flushed LSN `F`; the log copy, taken after, starts at or before both `F + 1` and the
//! committer's resume point (the log is never truncated past either), and ends at or after the
//! last LSN durable when the call began. The bundle holds the commits up to the committed
//! watermark. Opening a restored store therefore replays `F + 1 ..` into the memtable and
//! resumes the committer from its own watermark, exactly as after a crash at the moment of the
//! copy. LOW writes live only in memory and are not in a checkpoint.
//!
//! On the store's own filesystem the segments of a checkpoint are the store's files under a
//! second name: they cost no space, and they share the store's media. Copy a checkpoint to
//! other media to survive the loss of the disk. Verification unpacks the bundle into a
//! scratch repository under the system's temporary directory, which needs room for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use strata_gitsync::bundle;
use strata_gitsync::{ColdOptions, ColdStore};
use strata_tiering::clock::Clock;
use strata_tiering::router::Stage;
use strata_tiering::Lsn;
use strata_wal::{Fs, StdFs};

use crate::config::CONFIG_FILE;
use crate::error::{Error, Result};
use crate::open::{StoreBuilder, COLD_DIR, RULES_FILE};
use crate::store::Store;

/// The file that completes a checkpoint.
pub const CHECKPOINT_FILE: &str = "CHECKPOINT.json";
/// The cold repository's bundle inside a checkpoint.
pub const BUNDLE_FILE: &str = "cold.bundle";
/// The format version of `CHECKPOINT.json` this crate writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;

const SEGMENTS_DIR: &str = "segments";
const WAL_DIR: &str = "wal";

/// What `CHECKPOINT.json` says about a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT`].
    pub format: u32,
    /// When it was taken, in unix milliseconds of the store's clock.
    pub created_ms: u64,
    /// The store directory it was taken from.
    pub source: PathBuf,
    /// Watermarks at the checkpoint: flushed into the segments, durable in the log copy,
    /// committed to the cold repository, pushed to the remote.
    pub flushed_lsn: Lsn,
    /// Every LSN up to this one is in the log copy.
    pub wal_synced_lsn: Lsn,
    /// The first LSN of the log copy (0 when it is empty).
    pub wal_first_lsn: Lsn,
    /// The committed watermark of the bundled repository.
    pub committed_lsn: Lsn,
    /// The pushed watermark.
    pub pushed_lsn: Lsn,
    /// The cold repository's writer id.
    pub cold_writer: String,
    /// Whether other writers' versions are in the repository.
    pub cold_shared: bool,
    /// How far the committer had examined the log.
    pub cold_examined_lsn: Lsn,
    /// The commit the cold branch pointed at, if any.
    pub cold_head: Option<String>,
    /// Every file of the checkpoint except this one, by path relative to it.
    pub files: Vec<CheckpointFile>,
}

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// Path relative to the checkpoint directory, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub len: u64,
    /// CRC32 of the whole file; absent for segments, whose blocks are checked instead.
    pub crc32: Option<u32>,
}

impl Checkpoint {
    /// Total bytes of the checkpoint's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Reads `CHECKPOINT.json` of the checkpoint at `dir`.
    pub fn read(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(backup_error(
                    dir,
                    format!("no {CHECKPOINT_FILE}: not a checkpoint, or one that never finished"),
                ))
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&text)
            .map_err(|e| backup_error(&path, format!("unreadable: {e}")))?;
        if checkpoint.format != CHECKPOINT_FORMAT {
            return Err(backup_error(
                &path,
                format!(
                    "format {} (this version reads {CHECKPOINT_FORMAT})",
                    checkpoint.format
                ),
            ));
        }
        Ok(checkpoint)
    }
}

/// What [`verify_backup`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The checkpoint's description.
    pub checkpoint: Checkpoint,
    /// Segments checked block by block.
    pub segments: usize,
    /// Log records read back.
    pub wal_records: u64,
    /// Commits and objects of the bundle read back.
    pub cold_commits: usize,
    /// Objects of the bundle re-hashed.
    pub cold_objects: usize,
    /// Every problem, one line each, naming the file.
    pub problems: Vec<String>,
}

impl BackupReport {
    /// Whether the checkpoint can be restored as it is.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn backup_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::Backup {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// The CRC32 of the file at `path`, read 1 MiB at a time (a bundle can be large).
fn crc_of(path: &Path) -> Result<u32> {
    let mut file = std::fs::File::open(path).map_err(io("open", path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("read", path)(e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    StdFs.sync_dir(dir).map_err(io("fsync directory", dir))
}

/// Writes `bytes` to `dir/name` through a temporary file, fsynced and renamed.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    crate::config::write_durably(dir, &temp, &dir.join(name), bytes)
}

fn empty_or_absent(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(backup_error(dir, "the directory is not empty"));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            op: "list",
            path: dir.to_owned(),
            source,
        }),
    }
}

impl Store {
    /// Writes a consistent checkpoint of the store into `dest` (absent or empty) while writes
    /// go on. See the [module documentation](self) for its layout and why it is consistent.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<Checkpoint> {
        self.checkpoint_with_progress(dest, &mut |_| {})
    }

    /// [`checkpoint`](Store::checkpoint), naming each step to `progress` as it starts.
    pub fn checkpoint_with_progress(
        &self,
        dest: impl AsRef<Path>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Checkpoint> {
        let dest = dest.as_ref();
        self.inner.writable("checkpoint")?;
        empty_or_absent(dest)?;
        strata_wal::io::create_private_dir_all(dest).map_err(io("create", dest))?;
        let inner = &self.inner;
        let _one = inner.lock_maintenance();
        let mut files = Vec::new();

        progress("linking segments");
        let segments = inner.warm.checkpoint(dest.join(SEGMENTS_DIR))?;
        for (name, len) in &segments.files {
            let path = format!("{SEGMENTS_DIR}/{name}");
            let crc32 = if name.ends_with(".seg") {
                None
            } else {
                Some(crc_of(&dest.join(&path))?)
            };
            files.push(CheckpointFile {
                path,
                len: *len,
                crc32,
            });
        }

        progress("copying the log");
        let wal = inner.wal.checkpoint(dest.join(WAL_DIR))?;
        for (name, len, crc32) in &wal.files {
            files.push(CheckpointFile {
                path: format!("{WAL_DIR}/{name}"),
                len: *len,
                crc32: Some(*crc32),
            });
        }

        progress("bundling the cold repository");
        let cold = inner.cold.store();
        let bundled = cold.bundle(&dest.join(BUNDLE_FILE))?;
        files.push(CheckpointFile {
            path: BUNDLE_FILE.into(),
            len: bundled.bytes,
            crc32: Some(crc_of(&dest.join(BUNDLE_FILE))?),
        });

        progress("copying settings");
        for name in [CONFIG_FILE, RULES_FILE] {
            let source = inner.dir.join(name);
            match std::fs::read(&source) {
                Ok(bytes) => {
                    write_atomically(dest, name, &bytes)?;
                    files.push(CheckpointFile {
                        path: name.into(),
                        len: bytes.len() as u64,
                        crc32: Some(crc32fast::hash(&bytes)),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("read", &source)(e)),
            }
        }

        let checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT,
            created_ms: inner.clock.now_ms(),
            source: inner.dir.clone(),
            flushed_lsn: segments.flushed_lsn.unwrap_or(0),
            wal_synced_lsn: wal.synced_lsn,
            wal_first_lsn: wal.first_lsn,
            committed_lsn: cold.committed_lsn(),
            pushed_lsn: inner.router.watermarks().get(Stage::Remote),
            cold_writer: cold.writer_id().to_owned(),
            cold_shared: cold.is_shared(),
            cold_examined_lsn: cold.examined_lsn()?,
            cold_head: bundled.reference("HEAD").map(|id| id.to_string()),
            files,
        };
        let text = serde_json::to_vec_pretty(&checkpoint)
            .map_err(|e| backup_error(dest, format!("cannot describe it: {e}")))?;
        write_atomically(dest, CHECKPOINT_FILE, &text)?;
        Ok(checkpoint)
    }
}

/// Checks the checkpoint at `dir` without changing it: every file's length and CRC32, every
/// block of every segment, every log record, and every object of the bundle (unpacked into a
/// scratch repository under the system's temporary directory, then removed). Problems are
/// collected, not returned as errors; an error means the checkpoint is not one at all.
pub fn verify_backup(dir: impl AsRef<Path>) -> Result<BackupReport> {
    verify_backup_with_progress(dir, &mut |_| {})
}

/// [`verify_backup`], naming each step to `progress` as it starts.
pub fn verify_backup_with_progress(
    dir: impl AsRef<Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<BackupReport> {
    let dir = dir.as_ref();
    let checkpoint = Checkpoint::read(dir)?;
    let mut report = BackupReport {
        checkpoint: checkpoint.clone(),
        segments: 0,
        wal_records: 0,
        cold_commits: 0,
        cold_objects: 0,
        problems: Vec::new(),
    };
    let problems = &mut report.problems;

    progress("checking files");
    for file in &checkpoint.files {
        let path = dir.join(&file.path);
        if file
            .path
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        {
            problems.push(format!("{}: not a path inside the checkpoint", file.path));
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() != file.len => problems.push(format!(
                "{}: {} bytes, {} expected",
                path.display(),
                meta.len(),
                file.len
            )),
            Ok(_) => {
                if let Some(expected) = file.crc32 {
                    match crc_of(&path) {
                        Ok(found) if found == expected => {}
                        Ok(found) => problems.push(format!(
                            "{}: CRC32 {found:08x}, {expected:08x} expected",
                            path.display()
                        )),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }

    progress("checking segments");
    match strata_segment::verify_dir(&StdFs, &dir.join(SEGMENTS_DIR)) {
        Ok(found) => {
            report.segments = found.segments;
            problems.extend(found.problems);
            if found.flushed_lsn.unwrap_or(0) != checkpoint.flushed_lsn {
                problems.push(format!(
                    "segments: the manifest says flushed through LSN {}, the checkpoint {}",
                    found.flushed_lsn.unwrap_or(0),
                    checkpoint.flushed_lsn
                ));
            }
        }
        Err(e) => problems.push(format!("segments: {e}")),
    }

    progress("reading the log");
    verify_wal(dir, &checkpoint, &mut report);

    progress("unpacking the bundle");
    verify_bundle(dir, &checkpoint, &mut report);
    Ok(report)
}

fn verify_wal(dir: &Path, checkpoint: &Checkpoint, report: &mut BackupReport) {
    let wal_dir = dir.join(WAL_DIR);
    let max_record_len = strata_wal::WalOptions::default().max_record_len;
    let (found, reader) = match strata_wal::read_dir(&StdFs, &wal_dir, 0, max_record_len) {
        Ok(read) => read,
        Err(e) => {
            report.problems.push(format!("wal: {e}"));
            return;
        }
    };
    if let Some(damage) = &found.damage {
        report.problems.push(format!(
            "wal: {} at offset {}: {}",
            damage.path.display(),
            damage.offset,
            damage.detail
        ));
    }
    let mut last = 0;
    for record in reader {
        match record {
            Ok((lsn, _)) => {
                last = lsn;
                report.wal_records += 1;
            }
            Err(e) => {
                report.problems.push(format!("wal: {e}"));
                return;
            }
        }
    }
    // LSNs can be spent without a record (a log whose files were lost restarts above the
    // watermarks), so only a log that holds records yet stops short is missing some.
    if last > 0 && last < checkpoint.wal_synced_lsn {
        report.problems.push(format!(
            "wal: ends at LSN {last}, the checkpoint holds every LSN up to {}",
            checkpoint.wal_synced_lsn
        ));
    }
}

fn verify_bundle(dir: &Path, checkpoint: &Checkpoint, report: &mut BackupReport) {
    let scratch = scratch_dir();
    let repo = scratch.join(COLD_DIR);
    let result = (|| -> Result<(usize, usize)> {
        let info = bundle::unbundle(&dir.join(BUNDLE_FILE), &repo)?;
        let head = info.reference("HEAD").map(|id| id.to_string());
        if head != checkpoint.cold_head {
            return Err(backup_error(
                &dir.join(BUNDLE_FILE),
                format!(
                    "its HEAD is {head:?}, the checkpoint says {:?}",
                    checkpoint.cold_head
                ),
            ));
        }
        let clock: Arc<dyn Clock> = Arc::new(strata_tiering::clock::SystemClock);
        let options = ColdOptions {
            writer_id: Some(checkpoint.cold_writer.clone()),
            ..ColdOptions::default()
        };
        let cold = ColdStore::open(&repo, options, clock)?;
        let verified = cold.verify()?;
        Ok((verified.commits, verified.objects))
    })();
    match result {
        Ok((commits, objects)) => {
            report.cold_commits = commits;
            report.cold_objects = objects;
        }
        Err(e) => report.problems.push(format!("cold: {e}")),
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A directory of its own under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("strata-verify-{}-{nanos}", std::process::id()))
}

/// What restoring a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The checkpoint's own check, done first.
    pub verified: BackupReport,
    /// Files linked or copied into the store directory.
    pub files: usize,
    /// Bytes of them.
    pub bytes: u64,
    /// How long it took, the check included.
    pub duration: std::time::Duration,
}

impl StoreBuilder {
    /// Creates a store in the builder's directory (absent or empty) from the checkpoint at
    /// `checkpoint`, then opens it with the builder's settings (its own configuration, if
    /// given, replaces the checkpoint's). The checkpoint is verified first and refused with
    /// [`Error::Backup`] if anything in it is wrong; it is never changed.
    ///
    /// The restored store keeps the writer id of the store the checkpoint came from, so it
    /// takes that store's place: do not run both against one remote (a store that should sit
    /// beside another is made with [`clone_from`](StoreBuilder::clone_from), which gets an id
    /// of its own).
    pub fn restore_from(self, checkpoint: impl AsRef<Path>) -> Result<(Store, RestoreReport)> {
        self.restore_from_with_progress(checkpoint, &mut |_| {})
    }

    /// [`restore_from`](StoreBuilder::restore_from), naming each step to `progress`.
    pub fn restore_from_with_progress(
        self,
        checkpoint: impl AsRef<Path>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(Store, RestoreReport)> {
        let started = Instant::now();
        let source = checkpoint.as_ref();
        let dir = self.dir().to_owned();
        empty_or_absent(&dir)?;
        let verified = verify_backup_with_progress(source, progress)?;
        if let Some(first) = verified.problems.first() {
            return Err(backup_error(
                source,
                format!(
                    "not restored: {} problem(s), the first: {first}",
                    verified.problems.len()
                ),
            ));
        }
        strata_wal::io::create_private_dir_all(&dir).map_err(io("create", &dir))?;
        let lock = crate::lock::DirLock::acquire(&dir)?;
        progress("restoring files");
        let mut files = 0;
        let mut bytes = 0;
        for file in &verified.checkpoint.files {
            if file.path == BUNDLE_FILE {
                continue;
            }
            let from = source.join(&file.path);
            let to = dir.join(&file.path);
            if let Some(parent) = to.parent() {
                strata_wal::io::create_private_dir_all(parent).map_err(io("create", parent))?;
            }
            // Segments are never written after they are made: a link is as good as a copy.
            // The log's last file will be appended to, so the log is always copied.
            if file.path.starts_with(&format!("{SEGMENTS_DIR}/")) {
                StdFs.hard_link(&from, &to).map_err(io("link", &to))?;
            } else {
                strata_wal::io::copy_file(&StdFs, &from, &to).map_err(io("copy", &to))?;
            }
            files += 1;
            bytes += file.len;
        }
        for sub in [SEGMENTS_DIR, WAL_DIR] {
            let path = dir.join(sub);
            strata_wal::io::create_private_dir_all(&path).map_err(io("create", &path))?;
            sync_dir(&path)?;
        }
        progress("unpacking the cold repository");
        let repo = dir.join(COLD_DIR);
        let c = &verified.checkpoint;
        bundle::unbundle(&source.join(BUNDLE_FILE), &repo)?;
        bundle::adopt_identity(&repo, &c.cold_writer, c.cold_shared, c.cold_examined_lsn)?;
        // The checkpoint was just checked whole: the first open need not check it again.
        crate::open::mark_clean(&dir)?;
        sync_dir(&dir)?;
        drop(lock);
        progress("opening");
        let store = self.open()?;
        Ok((
            store,
            RestoreReport {
                verified,
                files,
                bytes,
                duration: started.elapsed(),
            },
        ))
    }
}
