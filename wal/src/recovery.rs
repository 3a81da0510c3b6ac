//! Recovery: what opening a WAL directory does to the files a crash left behind.
//!
//! Files are read oldest first. Every frame must carry the next LSN; a batch counts only once
//! its batch-end frame is read. A file that is not the last is read up to the first LSN of the
//! file after it: anything beyond is the unsynced tail of a file whose write or fsync failed and
//! whose records were rewritten into the next file, so it is superseded, not damage.
//!
//! The first frame that fails is handled by the [`RecoveryMode`]:
//!
//! | mode | torn tail of the last file | any other damage |
//! |---|---|---|
//! | `PointInTime` | truncated, reported | truncated there; later files set aside; reported |
//! | `TolerateCorruptedTail` | truncated, reported | error |
//! | `AbsoluteConsistency` | error | error |
//!
//! A torn tail is an incomplete frame at the end of the last file (its header or payload runs
//! past the end), a batch without its end frame there, or zero bytes from a frame boundary to
//! the end of the file. A frame that is complete but fails its checksum is never a torn tail.
//! Truncation always goes back to the start of the damaged batch, so a batch is all or nothing.
//!
//! Files set aside are renamed to `<name>.dropped`, not deleted, so an operator can still look
//! at them; their names keep counting toward the next LSN, so LSNs are never reused. For the
//! same reason a last file that holds no record is kept: its name may be the only record of
//! how far the LSNs went. The writer replaces it when it creates the file for that LSN.

use std::path::{Path, PathBuf};

use crate::cursor::{Damage, DamageKind, FrameCursor, Opened, Step};
use crate::error::{Error, Result};
use crate::format::{self, FILE_HEADER_LEN};
use crate::io::Fs;
use crate::Lsn;

/// Suffix of WAL files that point-in-time recovery set aside.
pub const DROPPED_SUFFIX: &str = ".dropped";
/// Suffix of a WAL file being created (header written, not yet renamed into place).
pub const TEMP_SUFFIX: &str = ".tmp";

/// How recovery treats damage (after RocksDB's WAL recovery modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Stop at the first bad record, truncate there and report what was dropped.
    #[default]
    PointInTime,
    /// Drop only an incomplete write at the very end of the log; any other damage is an error.
    TolerateCorruptedTail,
    /// Any bad byte is an error.
    AbsoluteConsistency,
}

/// Where recovery found damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageReport {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the bad frame (or 0 for a bad file header).
    pub offset: u64,
    /// What was wrong.
    pub detail: String,
    /// True if the damage has the shape a crash during an append leaves.
    pub torn_tail: bool,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// WAL files read.
    pub files_scanned: usize,
    /// Records kept.
    pub records: u64,
    /// LSN of the last record kept (0 if none).
    pub last_lsn: Lsn,
    /// Complete records dropped because they followed damage or belonged to a torn batch.
    pub dropped_records: u64,
    /// Bytes cut from the damaged file plus the size of files set aside.
    pub dropped_bytes: u64,
    /// The first damage found, if any.
    pub damage: Option<DamageReport>,
    /// Files renamed to `*.dropped`.
    pub set_aside: Vec<PathBuf>,
}

impl RecoveryReport {
    /// True if recovery found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.damage.is_none()
    }
}

/// The log as recovery left it.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every live WAL file, oldest first.
    pub files: Vec<(Lsn, PathBuf)>,
    /// The LSN the next record gets.
    pub next_lsn: Lsn,
    /// True if `next_lsn` does not follow the last kept record, so the next file must carry the
    /// follows-gap flag.
    pub gap_before_next: bool,
    /// What happened.
    pub report: RecoveryReport,
}

/// What reading one file found.
struct FileScan {
    records: u64,
    last_lsn: Option<Lsn>,
    /// Offset just after the last complete batch (0 if the header itself is bad).
    cut: u64,
    /// The file's length, or for a preallocated file the end of its last non-zero byte.
    file_len: u64,
    /// The LSN a following file must start with.
    next_expected: Lsn,
    damage: Option<(Damage, u64)>,
    /// A preallocated file whose records end before zeros that run to its end: the length
    /// to trim it to.
    zeros_from: Option<u64>,
}

/// Recovers the WAL in `dir`, repairing it as `mode` allows; with `repair` unset nothing is
/// changed on disk and the returned files still hold whatever damage was reported.
pub(crate) fn recover(
    fs: &dyn Fs,
    dir: &Path,
    mode: RecoveryMode,
    max_record_len: usize,
    next_lsn_floor: Lsn,
    repair: bool,
) -> Result<Recovered> {
    let names = fs.list_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut files = Vec::new();
    let mut floor: Lsn = next_lsn_floor.max(1);
    let mut dir_changed = false;
    for name in names {
        if let Some(lsn) = format::parse_file_name(&name) {
            floor = floor.max(lsn);
            files.push((lsn, dir.join(&name)));
        } else if let Some(lsn) = name
            .strip_suffix(DROPPED_SUFFIX)
            .and_then(format::parse_file_name)
        {
            floor = floor.max(lsn);
        } else if name
            .strip_suffix(TEMP_SUFFIX)
            .and_then(format::parse_file_name)
            .is_some()
        {
            // A file whose creation did not finish: it holds a header at most.
            let path = dir.join(&name);
            if repair {
                fs.remove_file(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                dir_changed = true;
            }
        }
    }
    files.sort();

    let mut report = RecoveryReport::default();
    let mut kept: Vec<(Lsn, PathBuf)> = Vec::new();
    let mut trims: Vec<(PathBuf, u64)> = Vec::new();
    let mut expected: Option<Lsn> = None;
    let mut last_lsn: Lsn = 0;
    for index in 0..files.len() {
        let (name_lsn, path) = &files[index];
        let next_first = files.get(index + 1).map(|(lsn, _)| *lsn);
        let is_last = next_first.is_none();
        report.files_scanned += 1;
        let scan = scan_file(
            fs,
            path,
            (*name_lsn, next_first),
            expected,
            max_record_len,
            repair,
        )?;
        report.records += scan.records;
        if let Some(lsn) = scan.last_lsn {
            last_lsn = lsn;
        }
        let Some((damage, torn_batch_records)) = scan.damage else {
            kept.push((*name_lsn, path.clone()));
            if let Some(len) = scan.zeros_from {
                trims.push((path.clone(), len));
            }
            // A file with no record (only ever the last: the writer replaces it when it
            // creates the file for that LSN) does not move where the records end, so the gap
            // mark it may carry is carried over to its replacement.
            if scan.records > 0 || expected.is_none() {
                expected = Some(scan.next_expected);
            }
            continue;
        };
        let torn_tail = is_last && damage.kind.is_torn_write();
        let detail = damage.kind.describe();
        let refuse = match mode {
            RecoveryMode::AbsoluteConsistency => true,
            RecoveryMode::TolerateCorruptedTail => !torn_tail,
            RecoveryMode::PointInTime => false,
        };
        if refuse {
            return Err(Error::Corruption {
                path: path.clone(),
                offset: damage.offset,
                detail,
            });
        }
        report.damage = Some(DamageReport {
            path: path.clone(),
            offset: damage.offset,
            detail,
            torn_tail,
        });
        report.dropped_records += torn_batch_records;
        report.dropped_bytes += scan.file_len - scan.cut.min(scan.file_len);
        if scan.cut > FILE_HEADER_LEN as u64 {
            if repair {
                truncate(fs, path, scan.cut)?;
            }
            kept.push((*name_lsn, path.clone()));
            expected = Some(scan.next_expected);
        } else if repair {
            set_aside(fs, path, &mut report)?;
        }
        for (_, later) in &files[index + 1..] {
            let (records, bytes) = count_records(fs, later, max_record_len);
            report.dropped_records += records;
            report.dropped_bytes += bytes;
            if repair {
                set_aside(fs, later, &mut report)?;
            }
        }
        dir_changed = true;
        break;
    }
    report.last_lsn = last_lsn;

    // The previous process may have died with records in the page cache, in any file (under
    // `Never` a full file is rolled without an fsync): make them durable now, before anything
    // is built on them. Files without dirty pages cost next to nothing.
    // A preallocated file's zeros are trimmed off at the same time: they were only ever
    // room for appends, and this file will not be appended to again.
    for (_, path) in kept.iter().filter(|_| repair) {
        let mut file = fs
            .open_write(path)
            .map_err(|e| Error::io("open", path, e))?;
        if let Some((_, len)) = trims.iter().find(|(trimmed, _)| trimmed == path) {
            file.set_len(*len)
                .map_err(|e| Error::io("truncate", path, e))?;
        }
        file.sync_data().map_err(|e| Error::io("fsync", path, e))?;
    }
    if dir_changed && repair {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }

    let next_lsn = floor.max(last_lsn.saturating_add(1));
    Ok(Recovered {
        files: kept,
        next_lsn,
        // `expected` is where the kept files end; any other start must be marked as deliberate.
        gap_before_next: expected.is_some_and(|end| end != next_lsn),
        report,
    })
}

/// Reads one file (named by its first LSN, followed by a file starting at `next_first`),
/// checking LSN continuity with the file before it. Only with `repair` does it look for
/// preallocated zeros a crash left in a file that is not the last, which only a repair trims.
fn scan_file(
    fs: &dyn Fs,
    path: &Path,
    (name_lsn, next_first): (Lsn, Option<Lsn>),
    expected: Option<Lsn>,
    max_record_len: usize,
    repair: bool,
) -> Result<FileScan> {
    let mut scan = FileScan {
        records: 0,
        last_lsn: None,
        cut: 0,
        file_len: 0,
        next_expected: name_lsn,
        damage: None,
        zeros_from: None,
    };
    let (mut cursor, header) = match FrameCursor::open(fs, path, max_record_len)? {
        Opened::Ready { cursor, header } => (cursor, header),
        Opened::BadHeader(damage) => {
            scan.file_len = fs
                .open_read(path)
                .and_then(|f| f.len())
                .map_err(|e| Error::io("stat", path, e))?;
            scan.damage = Some((damage, 0));
            return Ok(scan);
        }
    };
    scan.file_len = cursor.file_len();
    let header_problem = if header.first_lsn != name_lsn {
        Some(format!(
            "file header says first LSN {}, the file name says {name_lsn}",
            header.first_lsn
        ))
    } else {
        match expected {
            Some(e) if name_lsn != e && !(header.follows_gap && name_lsn > e) => Some(format!(
                "LSN gap: the previous file ends before LSN {e}, this file starts at {name_lsn}"
            )),
            _ => None,
        }
    };
    if let Some(detail) = header_problem {
        scan.damage = Some((
            Damage {
                offset: 0,
                kind: DamageKind::Corrupt(detail),
            },
            0,
        ));
        return Ok(scan);
    }

    scan.cut = cursor.position();
    let mut next = name_lsn;
    let mut open_batch: u64 = 0;
    loop {
        if next_first == Some(next) && open_batch == 0 {
            // The rest of this file is superseded by the next one, or is preallocated space
            // that a roll did not get to trim before a crash.
            let end = cursor.position();
            let untrimmed = repair && header.preallocated && end < cursor.file_len();
            if untrimmed && cursor.rest_is_zero(end)? {
                scan.zeros_from = Some(end);
            }
            break;
        }
        let step = cursor.next_frame()?;
        let damage = match step {
            Step::End if open_batch == 0 => {
                if cursor.position() < cursor.file_len() {
                    scan.zeros_from = Some(cursor.position());
                }
                break;
            }
            Step::End => Damage {
                offset: scan.cut,
                kind: DamageKind::Incomplete("batch (its last record is missing)".into()),
            },
            Step::Damage(damage) => damage,
            Step::Frame { offset, header, .. } => {
                let beyond_next = next_first.is_some_and(|first| header.lsn >= first);
                // No append assigns `u64::MAX` (see `Error::LsnExhausted`): such a frame was
                // not written by this log, and the LSN after it would not fit.
                if header.lsn == Lsn::MAX {
                    Damage {
                        offset,
                        kind: DamageKind::Corrupt(format!(
                            "LSN {} is past the last LSN an append assigns",
                            header.lsn
                        )),
                    }
                } else if header.lsn != next || beyond_next {
                    Damage {
                        offset,
                        kind: DamageKind::Corrupt(format!(
                            "expected LSN {next}, found LSN {}",
                            header.lsn
                        )),
                    }
                } else {
                    next += 1;
                    open_batch += 1;
                    if header.batch_end {
                        scan.records += open_batch;
                        scan.last_lsn = Some(header.lsn);
                        scan.cut = cursor.position();
                        open_batch = 0;
                    }
                    continue;
                }
            }
        };
        if header.preallocated {
            // What is cut off is what was written, not the zeros that were only room for it.
            scan.file_len = cursor.written_end(scan.cut)?;
        }
        scan.damage = Some((damage, open_batch));
        scan.next_expected = next - open_batch;
        return Ok(scan);
    }
    scan.next_expected = next;
    Ok(scan)
}

/// Counts the complete records of a file that is being set aside (best effort: stops at the
/// first damage), and returns them with the file's size.
fn count_records(fs: &dyn Fs, path: &Path, max_record_len: usize) -> (u64, u64) {
    let Ok(Opened::Ready { mut cursor, .. }) = FrameCursor::open(fs, path, max_record_len) else {
        let bytes = fs.open_read(path).and_then(|f| f.len()).unwrap_or(0);
        return (0, bytes);
    };
    let bytes = cursor.file_len();
    let mut records = 0;
    while let Ok(Step::Frame { .. }) = cursor.next_frame() {
        records += 1;
    }
    (records, bytes)
}

fn truncate(fs: &dyn Fs, path: &Path, len: u64) -> Result<()> {
    let mut file = fs
        .open_write(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.set_len(len)
        .map_err(|e| Error::io("truncate", path, e))?;
    file.sync_data().map_err(|e| Error::io("fsync", path, e))
}

fn set_aside(fs: &dyn Fs, path: &Path, report: &mut RecoveryReport) -> Result<()> {
    let mut target = path.as_os_str().to_owned();
    target.push(DROPPED_SUFFIX);
    let target = PathBuf::from(target);
    fs.rename(path, &target)
        .map_err(|e| Error::io("rename", path, e))?;
    report.set_aside.push(target);
    Ok(())
}
