//! Reading a log one does not own, and copying a live log.
//!
//! [`read_dir`] reads the WAL in a directory without opening it as a [`Wal`]: nothing on disk
//! changes, a torn or damaged tail is reported rather than cut, and the reader stops at the
//! last sound record. It serves checks of a checkpoint's copy and readers that sit beside the
//! process that owns the log.
//!
//! [`Wal::checkpoint`] copies a live log. Under the I/O lock (so no write or removal is under
//! way) it opens every file and notes its length; the copy then reads those prefixes while
//! appends carry on (for the file being appended to, the length is where its records end, not
//! its preallocated size). Files are append-only, so a prefix never changes, and an open
//! handle keeps its file readable even if a truncation removes it meanwhile:
//!
//! ```text
//!   wal/00…001.wal  [ sealed ................ ]   copied whole
//!   wal/00…734.wal  [ records ........ | new appends → ]
//!                                       ^ length noted under the lock: the copy stops here
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{Fs, FsFile};
use crate::reader::{LogReader, ReaderFile};
use crate::recovery::{recover, RecoveryMode, RecoveryReport};
use crate::wal::{lock, Wal};
use crate::Lsn;

/// Reads the WAL in `dir` from `from` on, changing nothing. The report says what a recovery
/// would find (`damage` set if the log does not end cleanly); the reader yields every record
/// up to the last sound one.
pub fn read_dir(
    fs: &dyn Fs,
    dir: &Path,
    from: Lsn,
    max_record_len: usize,
) -> Result<(RecoveryReport, LogReader)> {
    let recovered = recover(fs, dir, RecoveryMode::PointInTime, max_record_len, 1, false)?;
    let upto = recovered.report.last_lsn;
    let from = from.max(1);
    let mut files = Vec::new();
    for (i, (first, path)) in recovered.files.iter().enumerate() {
        let next_first = recovered.files.get(i + 1).map(|(lsn, _)| *lsn);
        if next_first.is_some_and(|next| next <= from) || *first > upto {
            continue;
        }
        files.push(ReaderFile::open(
            fs,
            path,
            next_first,
            max_record_len,
            None,
        )?);
    }
    Ok((recovered.report, LogReader::new(files, from, upto)))
}

/// What [`Wal::checkpoint`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// The first LSN of the oldest file copied (0 if the log had no file).
    pub first_lsn: Lsn,
    /// Every LSN up to this one was durable before the copy began, and is in it.
    pub synced_lsn: Lsn,
    /// The files, oldest first, with the bytes copied of each and their CRC32 (computed
    /// while copying, so a checker of the copy need not read it again to get it).
    pub files: Vec<(String, u64, u32)>,
}

impl Wal {
    /// Copies the log into `dest` (absent or empty): a prefix of it that holds every record
    /// durable when the call began. Appends carry on meanwhile; see the [module docs](self).
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<WalCheckpoint> {
        let dest = dest.as_ref();
        let inner = &self.inner;
        let synced_lsn = crate::Log::sync(self)?;
        let fs = inner.fs.as_ref();
        fs.create_dir_all(dest)
            .map_err(|e| Error::io("create directory", dest, e))?;
        if !fs
            .list_dir(dest)
            .map_err(|e| Error::io("list", dest, e))?
            .is_empty()
        {
            return Err(Error::io(
                "checkpoint into",
                dest,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "directory is not empty"),
            ));
        }
        let sources: Vec<(Lsn, PathBuf, Box<dyn FsFile>, u64)> = {
            let io = lock(&inner.io);
            let mut sources = Vec::with_capacity(io.files.len());
            for (first, path) in &io.files {
                let file = fs.open_read(path).map_err(|e| Error::io("open", path, e))?;
                let len = match io.written_len(path) {
                    Some(len) => len,
                    None => file.len().map_err(|e| Error::io("stat", path, e))?,
                };
                sources.push((*first, path.clone(), file, len));
            }
            sources
        };
        let mut copied = WalCheckpoint {
            first_lsn: sources.first().map_or(0, |(first, ..)| *first),
            synced_lsn,
            files: Vec::with_capacity(sources.len()),
        };
        let mut buf = vec![0u8; 1 << 20];
        for (first, path, source, len) in sources {
            let name = crate::format::file_name(first);
            let target = dest.join(&name);
            let mut out = fs
                .create_new(&target)
                .map_err(|e| Error::io("create", &target, e))?;
            let mut offset = 0u64;
            let mut crc = crc32fast::Hasher::new();
            while offset < len {
                let want = usize::try_from(len - offset).map_or(buf.len(), |n| n.min(buf.len()));
                source
                    .read_exact_at(&mut buf[..want], offset)
                    .map_err(|e| Error::io("read", &path, e))?;
                crc.update(&buf[..want]);
                out.append(&buf[..want])
                    .map_err(|e| Error::io("write", &target, e))?;
                offset += want as u64;
            }
            out.sync_data()
                .map_err(|e| Error::io("fsync", &target, e))?;
            copied.files.push((name, len, crc.finalize()));
        }
        fs.sync_dir(dest)
            .map_err(|e| Error::io("fsync directory", dest, e))?;
        Ok(copied)
    }
}
