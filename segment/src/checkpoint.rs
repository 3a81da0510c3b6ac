//! Checkpoints of the segment directory: a consistent copy that costs no data copying.
//!
//! Segments are immutable once installed, so a checkpoint is a hard link of every live segment
//! (a copy where links are impossible) plus a manifest that lists exactly those segments:
//!
//! ```text
//!   <store>/segments/                         <dest>/
//!     MANIFEST  (generation g, flushed F)  ─►   MANIFEST  (same records, same F)
//!     00000000000000000007.seg  ══ link ══►     00000000000000000007.seg
//!     00000000000000000009.seg  ══ link ══►     00000000000000000009.seg
//! ```
//!
//! Both are taken under the install lock, so no flush or compaction can swap the segment set
//! between the links and the manifest. A compaction that finishes afterwards may delete the
//! originals: the links keep the checkpoint's copies alive. Where links are impossible (another
//! filesystem) the segments are copied, still under the install lock, so flushes and
//! compactions wait for the copy. Quarantined segments are kept as
//! fenced records, as in the live manifest, so a restored store refuses to serve their ranges
//! exactly as the original did.
//!
//! [`verify_dir`] checks a checkpoint (or any segment directory) without opening it as a tier:
//! the manifest must decode, and every live segment it lists must match its record and pass a
//! check of every block.

use std::path::{Path, PathBuf};

use strata_tiering::io::Fs;
use strata_tiering::Lsn;

use crate::error::{Result, SegmentError};
use crate::format::file_name;
use crate::manifest::{self, MANIFEST_NAME};
use crate::segment::{ReadMode, Segment};
use crate::state::{record_of, Inner};

/// What a checkpoint of the segment directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentCheckpoint {
    /// The flushed LSN its manifest records: the WAL from the next LSN on completes it.
    pub flushed_lsn: Option<Lsn>,
    /// Every file written, manifest last, with its length in bytes.
    pub files: Vec<(String, u64)>,
    /// Fenced (quarantined) segments recorded without a file.
    pub quarantined: usize,
}

/// Writes the checkpoint of `inner` into `dest`, which must be absent or empty.
pub(crate) fn checkpoint(inner: &Inner, dest: &Path) -> Result<SegmentCheckpoint> {
    let fs = inner.fs.as_ref();
    fs.create_dir_all(dest)
        .map_err(|e| SegmentError::io("create directory", dest, e))?;
    let existing = fs
        .list_dir(dest)
        .map_err(|e| SegmentError::io("list", dest, e))?;
    if !existing.is_empty() {
        return Err(SegmentError::io(
            "checkpoint into",
            dest,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "directory is not empty"),
        ));
    }
    let installer = inner.lock_install(false);
    let version = inner.current();
    let mut files = Vec::with_capacity(version.segments.len() + 1);
    for seg in &version.segments {
        let name = file_name(seg.id());
        let target = dest.join(&name);
        fs.hard_link(seg.path(), &target)
            .map_err(|e| SegmentError::io("link", &target, e))?;
        files.push((name, seg.file_len()));
    }
    let manifest = inner
        .build_manifest(&version, installer.generation)
        .map_err(|f| f.error)?;
    drop(installer);
    let bytes = manifest::encode(&manifest);
    manifest::write(fs, dest, &manifest).map_err(|f| f.error)?;
    files.push((MANIFEST_NAME.to_owned(), bytes.len() as u64));
    Ok(SegmentCheckpoint {
        flushed_lsn: version.flushed_lsn,
        files,
        quarantined: version.quarantined.len(),
    })
}

/// What [`verify_dir`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirVerification {
    /// The flushed LSN the manifest records.
    pub flushed_lsn: Option<Lsn>,
    /// Live segments checked.
    pub segments: usize,
    /// Versions they hold.
    pub entries: u64,
    /// Quarantined records (fenced ranges without a live file).
    pub quarantined: usize,
    /// Every problem, naming the file.
    pub problems: Vec<String>,
}

/// Checks the segment directory `dir` read-only: its manifest, and every block of every live
/// segment against the manifest's record. Fails only when the manifest is absent or unreadable;
/// damaged segments are listed in [`DirVerification::problems`].
pub fn verify_dir(fs: &dyn Fs, dir: &Path) -> Result<DirVerification> {
    let path = dir.join(MANIFEST_NAME);
    let manifest = manifest::read(fs, dir)?.ok_or_else(|| {
        SegmentError::io(
            "read",
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no manifest"),
        )
    })?;
    let mut report = DirVerification {
        flushed_lsn: manifest.flushed_lsn,
        ..DirVerification::default()
    };
    for record in &manifest.records {
        if record.quarantined {
            report.quarantined += 1;
            continue;
        }
        let seg_path: PathBuf = dir.join(file_name(record.id));
        let checked = Segment::open(fs, &seg_path, ReadMode::Mmap).and_then(|seg| {
            seg.verify()?;
            let found = record_of(&seg)?;
            if found != *record {
                return Err(SegmentError::corruption(
                    &seg_path,
                    0,
                    "the segment does not match its manifest record",
                ));
            }
            Ok(seg.footer().entry_count)
        });
        match checked {
            Ok(entries) => {
                report.segments += 1;
                report.entries += entries;
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    Ok(report)
}
