//! Opening a segment directory: what a crash or damage left behind, and what becomes of it.
//!
//! 1. Temporary files (`*.seg.tmp`, `MANIFEST.tmp`) are removed: they belong to writes that
//!    never reached their rename, so nothing refers to them.
//! 2. `MANIFEST` is read and must pass every check: it is the one file whose loss cannot be
//!    guessed around, so a damaged manifest is an error, not a repair. A directory with segment
//!    files but no manifest is refused for the same reason. A directory with neither gets a
//!    fresh, empty manifest.
//! 3. Every live segment the manifest lists is opened and compared with its record (length,
//!    footer CRC, seqno range). One that is missing, damaged or different is quarantined:
//!    moved to `quarantine/` and fenced by the key range the manifest recorded. The tier still
//!    opens and serves everything else.
//! 4. Segment files the manifest does not list are removed. That is safe because the manifest
//!    is durable and is the truth: such a file is either the input of a compaction whose result
//!    the manifest already lists, or the output of an ingest or compaction whose manifest update
//!    never became durable. In the first case its data is in the compaction's output; in the
//!    second the flushed LSN was not advanced, so the data is still in the WAL to be replayed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_tiering::io::Fs;

use crate::error::{Result, SegmentError};
use crate::format::{file_name, parse_file_name, SegmentId, TEMP_SUFFIX};
use crate::manifest::{self, Manifest, SegmentRecord, MANIFEST_NAME};
use crate::options::SegmentOptions;
use crate::segment::Segment;
use crate::state::{move_to_quarantine, Problems, QuarantinedSegment, Version, QUARANTINE_DIR};

/// What opening found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub version: Version,
    pub next_id: SegmentId,
    pub generation: u64,
    pub problems: Problems,
}

pub(crate) fn open(fs: &Arc<dyn Fs>, dir: &Path, options: &SegmentOptions) -> Result<Opened> {
    if options.read_only {
        return open_read_only(fs.as_ref(), dir, options);
    }
    let fs_ref = fs.as_ref();
    fs_ref
        .create_dir_all(dir)
        .map_err(|e| SegmentError::io("create directory", dir, e))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs_ref
        .sync_dir(&parent)
        .map_err(|e| SegmentError::io("fsync directory", &parent, e))?;
    let names = fs_ref
        .list_dir(dir)
        .map_err(|e| SegmentError::io("list", dir, e))?;
    let mut dir_changed = false;
    let mut segment_files = BTreeSet::new();
    for name in &names {
        if let Some(stem) = name.strip_suffix(TEMP_SUFFIX) {
            if stem == MANIFEST_NAME || parse_file_name(stem).is_some() {
                let path = dir.join(name);
                fs_ref
                    .remove_file(&path)
                    .map_err(|e| SegmentError::io("remove", &path, e))?;
                dir_changed = true;
            }
        } else if let Some(id) = parse_file_name(name) {
            segment_files.insert(id);
        }
    }

    let manifest = match manifest::read(fs_ref, dir)? {
        Some(m) => m,
        None if !segment_files.is_empty() => {
            return Err(SegmentError::BadDirectory {
                path: dir.to_owned(),
                detail: format!(
                    "{} segment files but no {MANIFEST_NAME}; refusing to guess which are live",
                    segment_files.len()
                ),
            });
        }
        None => {
            let fresh = Manifest {
                flushed_lsn: None,
                next_segment_id: 1,
                generation: 1,
                records: Vec::new(),
            };
            manifest::write(fs_ref, dir, &fresh).map_err(|f| f.error)?;
            fresh
        }
    };
    let quarantined_files: BTreeSet<String> = fs_ref
        .list_dir(&dir.join(QUARANTINE_DIR))
        .unwrap_or_default()
        .into_iter()
        .collect();

    let mut version = Version {
        flushed_lsn: manifest.flushed_lsn,
        ..Version::default()
    };
    let mut changed = false;
    for record in &manifest.records {
        let name = file_name(record.id);
        let path = dir.join(&name);
        let present = segment_files.contains(&record.id);
        if record.quarantined {
            let where_now = if present {
                // Quarantined before a crash that came ahead of the move.
                move_to_quarantine(fs_ref, dir, &path).unwrap_or(path)
            } else {
                dir.join(QUARANTINE_DIR).join(&name)
            };
            version.quarantined.push(fence(
                record,
                where_now,
                "quarantined before this open".into(),
            ));
            continue;
        }
        if !present {
            let (where_now, reason) = if quarantined_files.contains(&name) {
                (
                    dir.join(QUARANTINE_DIR).join(&name),
                    "moved to quarantine just before a crash".to_owned(),
                )
            } else {
                (path, "the segment file is missing".to_owned())
            };
            version.quarantined.push(fence(record, where_now, reason));
            changed = true;
            continue;
        }
        match open_checked(fs_ref, &path, record, options) {
            Ok(seg) => version.segments.push(Arc::new(seg)),
            Err(e) if is_damage(&e) => {
                let mut reason = e.to_string();
                let where_now = match move_to_quarantine(fs_ref, dir, &path) {
                    Ok(p) => p,
                    Err(move_error) => {
                        reason.push_str(&format!("; could not move the file: {move_error}"));
                        path
                    }
                };
                version.quarantined.push(fence(record, where_now, reason));
                changed = true;
            }
            Err(e) => return Err(e),
        }
    }

    let referenced: BTreeSet<SegmentId> = manifest.records.iter().map(|r| r.id).collect();
    for id in segment_files.difference(&referenced) {
        let path = dir.join(file_name(*id));
        fs_ref
            .remove_file(&path)
            .map_err(|e| SegmentError::io("remove", &path, e))?;
        dir_changed = true;
    }
    if dir_changed {
        fs_ref
            .sync_dir(dir)
            .map_err(|e| SegmentError::io("fsync directory", dir, e))?;
    }
    let next_id = manifest
        .next_segment_id
        .max(segment_files.last().map_or(0, |id| id.saturating_add(1)));
    let mut problems = Problems::default();
    let mut generation = manifest.generation;
    if changed {
        generation += 1;
        let updated = Manifest {
            flushed_lsn: version.flushed_lsn,
            next_segment_id: next_id,
            generation,
            records: records_of(&version)?,
        };
        if let Err(f) = manifest::write(fs_ref, dir, &updated) {
            problems.manifest = Some(f.error.to_string());
        }
    }
    Ok(Opened {
        version,
        next_id,
        generation,
        problems,
    })
}

/// Reads the directory as it is, for a reader beside its owner: nothing is removed, moved or
/// rewritten, and damage is fenced in memory only. The owner may install a compaction and
/// delete its inputs between this reading the manifest and opening a segment it lists; the
/// manifest is then read again, since it already lists the compaction's output.
fn open_read_only(fs: &dyn Fs, dir: &Path, options: &SegmentOptions) -> Result<Opened> {
    const ATTEMPTS: usize = 50;
    for _ in 0..ATTEMPTS {
        let Some(manifest) = manifest::read(fs, dir)? else {
            return Ok(Opened {
                version: Version::default(),
                next_id: 1,
                generation: 0,
                problems: Problems::default(),
            });
        };
        let mut version = Version {
            flushed_lsn: manifest.flushed_lsn,
            ..Version::default()
        };
        let mut vanished = false;
        for record in &manifest.records {
            let name = file_name(record.id);
            if record.quarantined {
                let path = dir.join(QUARANTINE_DIR).join(&name);
                let reason = "quarantined by the directory's owner".to_owned();
                version.quarantined.push(fence(record, path, reason));
                continue;
            }
            let path = dir.join(&name);
            match open_checked(fs, &path, record, options) {
                Ok(seg) => version.segments.push(Arc::new(seg)),
                Err(SegmentError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    vanished = true;
                    break;
                }
                Err(e) if is_damage(&e) => {
                    version.quarantined.push(fence(record, path, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        if !vanished {
            return Ok(Opened {
                version,
                next_id: manifest.next_segment_id,
                generation: manifest.generation,
                problems: Problems::default(),
            });
        }
    }
    Err(SegmentError::BadDirectory {
        path: dir.to_owned(),
        detail: format!("its segment set changed under {ATTEMPTS} reads in a row"),
    })
}

/// Opens a live segment and checks it against its manifest record.
fn open_checked(
    fs: &dyn Fs,
    path: &Path,
    record: &SegmentRecord,
    options: &SegmentOptions,
) -> Result<Segment> {
    let seg = Segment::open(fs, path, options.read_mode)?;
    let footer = seg.footer();
    let matches = seg.file_len() == record.file_len
        && seg.footer_crc() == record.footer_crc
        && footer.min_seqno == record.min_seqno
        && footer.max_seqno == record.max_seqno
        && footer.entry_count == record.entry_count
        && seg.first_key() == Some(record.first_key.as_bytes())
        && seg.last_key() == Some(record.last_key.as_bytes());
    if !matches {
        return Err(SegmentError::corruption(
            path,
            0,
            "the file does not match its manifest record",
        ));
    }
    if options.verify_on_open {
        seg.verify()?;
    }
    Ok(seg)
}

/// Whether an open failure means the file is damaged (rather than the disk failing now).
fn is_damage(e: &SegmentError) -> bool {
    e.is_corruption() || matches!(e, SegmentError::BadDirectory { .. })
}

fn fence(record: &SegmentRecord, path: PathBuf, reason: String) -> QuarantinedSegment {
    QuarantinedSegment {
        id: record.id,
        path,
        first_key: record.first_key.clone(),
        last_key: record.last_key.clone(),
        min_seqno: record.min_seqno,
        max_seqno: record.max_seqno,
        entry_count: record.entry_count,
        file_len: record.file_len,
        footer_crc: record.footer_crc,
        reason,
    }
}

fn records_of(version: &Version) -> Result<Vec<SegmentRecord>> {
    let mut records = Vec::new();
    for seg in &version.segments {
        records.push(crate::state::record_of(seg)?);
    }
    records.extend(version.quarantined.iter().map(QuarantinedSegment::record));
    Ok(records)
}
