//! Locks on the cold repository: git's lock files a crash leaves behind, and the store's own
//! advisory locks that keep pack upkeep apart from commits.
//!
//! ```text
//!   <repo>/refs/heads/main.lock, config.lock, ...   git's: created for an update, renamed
//!                                                   into place; a crash leaves them
//!   <repo>/strata-commits, strata-maintenance       the store's: flock, never removed
//! ```

use std::path::Path;

use crate::error::{Error, Result};

/// Advisory locks (`flock`, held while the returned file is open) that keep pack upkeep apart
/// from commits and from itself, across handles and processes:
///
/// ```text
///   strata-commits       shared: a commit installing its pack and moving the branch
///                        exclusive: a full repack (which removes every pack it did not
///                        write, so no commit may be between its pack and its branch update)
///   strata-maintenance   exclusive: a merge of packs or a full repack (two merges of the same
///                        packs would write the same pack); a merge that finds it taken skips
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Guard {
    /// Shared `strata-commits`.
    Commit,
    /// Exclusive `strata-commits`.
    AllCommits,
    /// Exclusive `strata-maintenance`, waiting for it.
    Maintenance,
}

/// Takes `guard` on the repository at `path`, waiting for it.
pub fn guard(path: &Path, guard: Guard) -> Result<std::fs::File> {
    let name = match guard {
        Guard::Commit | Guard::AllCommits => "strata-commits",
        Guard::Maintenance => "strata-maintenance",
    };
    let file = guard_file(path, name)?;
    let locked = match guard {
        Guard::Commit => file.lock_shared(),
        Guard::AllCommits | Guard::Maintenance => file.lock(),
    };
    locked.map_err(|source| lock_error(path, name, source))?;
    Ok(file)
}

/// Exclusive `strata-maintenance` if no one holds it, `None` if someone does.
pub fn try_maintenance_guard(path: &Path) -> Result<Option<std::fs::File>> {
    let name = "strata-maintenance";
    let file = guard_file(path, name)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(lock_error(path, name, source)),
    }
}

fn guard_file(path: &Path, name: &str) -> Result<std::fs::File> {
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(name))
        .map_err(|source| lock_error(path, name, source))
}

fn lock_error(path: &Path, name: &str, source: std::io::Error) -> Error {
    Error::Io {
        op: "lock",
        path: path.join(name),
        source,
    }
}

/// How old a git lock file must be before the store takes it for a crash's leftover. An update
/// holds its lock for a write, an fsync and a rename; git's lock files name no owner.
pub const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes the lock file `lock` if it is older than [`STALE_LOCK`]; whether it did.
pub fn clear_stale_lock(lock: &Path) -> Result<bool> {
    clear_lock_older_than(lock, STALE_LOCK)
}

/// Removes git's lock files in the repository at `path` whatever their age: the config's,
/// `HEAD`'s, `packed-refs`' and every reference's. Only for an owner that knows no one else
/// can be updating the repository (the store holds its directory's lock when it calls this at
/// open), so that it recovers from a crash at once instead of after [`STALE_LOCK`].
pub fn clear_git_locks(path: &Path) -> Result<()> {
    clear_repository_locks(path, std::time::Duration::ZERO)
}

/// Removes git's lock files in the repository at `path` older than `age`.
pub(crate) fn clear_repository_locks(path: &Path, age: std::time::Duration) -> Result<()> {
    for lock in ["config.lock", "HEAD.lock", "packed-refs.lock"] {
        clear_lock_older_than(&path.join(lock), age)?;
    }
    clear_ref_locks(&path.join("refs"), age)
}

fn clear_lock_older_than(lock: &Path, older_than: std::time::Duration) -> Result<bool> {
    let age = match std::fs::metadata(lock).and_then(|m| m.modified()) {
        Ok(modified) => modified.elapsed().unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                op: "inspect lock",
                path: lock.to_path_buf(),
                source,
            })
        }
    };
    if age < older_than {
        return Ok(false);
    }
    match std::fs::remove_file(lock) {
        Ok(()) => Ok(true),
        // Another handle cleared it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(Error::Io {
            op: "remove stale lock",
            path: lock.to_path_buf(),
            source,
        }),
    }
}

/// Removes every `*.lock` file under `dir` (the references) older than `age`.
fn clear_ref_locks(dir: &Path, age: std::time::Duration) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            clear_ref_locks(&path, age)?;
        } else if path.extension().is_some_and(|e| e == "lock") {
            clear_lock_older_than(&path, age)?;
        }
    }
    Ok(())
}
