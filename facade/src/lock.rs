//! The store directory's lock: one writer process at a time.
//!
//! `<dir>/LOCK` is held with an exclusive `flock` for as long as the store is open for writing
//! and names the holder (`pid <n>`), so that a second opener — in this process or another —
//! gets an error saying who has it. The lock belongs to the open file, so it goes away with
//! the process however it ends: a crashed writer never leaves the directory locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the lock file in the store directory.
pub const LOCK_FILE: &str = "LOCK";

/// A held lock on a store directory; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`Error::Locked`] naming the holder.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| Error::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(strata_wal::io::FILE_MODE)
            .open(&path)
            .map_err(io("open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder may be writing its pid right now; an empty name is still an answer.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    dir: dir.to_owned(),
                    holder: if holder.is_empty() {
                        "another opener".into()
                    } else {
                        holder.chars().take(64).collect()
                    },
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(Error::Io {
                    op: "lock",
                    path,
                    source,
                })
            }
        }
        file.set_len(0).map_err(io("truncate"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
        file.write_all(format!("pid {}\n", std::process::id()).as_bytes())
            .map_err(io("write"))?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_in_the_same_process_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        let error = DirLock::acquire(dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Error::Locked { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }
}
