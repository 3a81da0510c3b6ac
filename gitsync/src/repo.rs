//! The bare repository: creating it, configuring it safely, and writing one commit as one pack.
//!
//! ```text
//!   new objects of a commit ──► built in memory (`staging`) ──► one .pack + .idx (fsynced)
//!                                                          │
//!   refs/heads/main ──compare-and-swap──────────────────────┘ (only after the pack is durable)
//! ```
//!
//! A crash before the ref moves leaves an unreferenced pack and the old head; after, the new
//! head with all its objects durable. Nothing is ever written through a work tree or an index,
//! and no loose objects are produced.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::OnceLock;

use git2::{ErrorCode, Oid, Repository, RepositoryInitOptions, Signature};
use strata_tiering::io::{Fs, StdFs};

use crate::error::{Error, Result};

/// The branch the cold tier commits to.
pub const BRANCH: &str = "refs/heads/main";

/// Pack files libgit2 keeps open at once, whatever the number of packs on disk; beyond it the
/// least recently used pack is closed (its maps are reopened on demand).
pub const MAX_OPEN_PACKS: usize = 64;

/// How long libgit2 waits to connect to a remote, in milliseconds.
const REMOTE_CONNECT_TIMEOUT_MS: c_int = 10_000;
/// How long libgit2 waits for a remote to answer, in milliseconds.
const REMOTE_IO_TIMEOUT_MS: c_int = 60_000;

/// Sets libgit2's process-wide options once: fsync of objects and refs, the open-pack bound,
/// remote timeouts, and no user or system configuration.
///
/// libgit2 does not fsync objects, packs, refs or their directories unless told to.
fn configure_libgit2() -> Result<()> {
    static RESULT: OnceLock<i32> = OnceLock::new();
    let code = *RESULT.get_or_init(|| {
        // SAFETY: `git_libgit2_opts` is variadic; each call below passes exactly the arguments
        // its option documents (noted at each call). The options write libgit2 globals;
        // `OnceLock` makes these the only writes, before this crate opens any repository, and
        // the path given to GIT_OPT_SET_SEARCH_PATH is a static string (libgit2 copies it).
        #[allow(unsafe_code)]
        unsafe {
            libgit2_sys::init();
            let fsync = libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as c_int,
                1 as c_int,
            );
            // Same argument: GIT_OPT_SET_MWINDOW_FILE_LIMIT takes one size_t.
            let packs = libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_MWINDOW_FILE_LIMIT as c_int,
                MAX_OPEN_PACKS,
            );
            // The timeout options take one int each, in milliseconds: a remote that accepts
            // a connection and then says nothing must not hang a push for ever.
            let connect = libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_SERVER_CONNECT_TIMEOUT as c_int,
                REMOTE_CONNECT_TIMEOUT_MS,
            );
            let server = libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_SERVER_TIMEOUT as c_int,
                REMOTE_IO_TIMEOUT_MS,
            );
            // GIT_OPT_SET_SEARCH_PATH takes a level (int) and a NUL-terminated path, here an
            // empty static string: the user's and the system's git configuration never reach
            // the cold repository (an `fsync` or `hooksPath` set there, say).
            let mut search = 0;
            for level in [
                libgit2_sys::GIT_CONFIG_LEVEL_PROGRAMDATA,
                libgit2_sys::GIT_CONFIG_LEVEL_SYSTEM,
                libgit2_sys::GIT_CONFIG_LEVEL_XDG,
                libgit2_sys::GIT_CONFIG_LEVEL_GLOBAL,
            ] {
                search = search.min(libgit2_sys::git_libgit2_opts(
                    libgit2_sys::GIT_OPT_SET_SEARCH_PATH as c_int,
                    level as c_int,
                    c"".as_ptr(),
                ));
            }
            // One int: objects read from packs are not hashed again on every read. Packs carry
            // a CRC per object and zlib's checksum, and `git fsck` (and `verify`) still hash
            // everything; re-hashing each tree on each lookup was most of a fold's time.
            let verify = libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION as c_int,
                0 as c_int,
            );
            fsync
                .min(packs)
                .min(connect)
                .min(server)
                .min(search)
                .min(verify)
        }
    });
    if code < 0 {
        return Err(Error::corrupt(
            "libgit2",
            format!("cannot enable fsync (error {code})"),
        ));
    }
    Ok(())
}

/// Opens the bare repository at `path`, creating and configuring it if it does not exist.
pub fn open_or_init(path: &Path) -> Result<Repository> {
    configure_libgit2()?;
    // Locks a crash left behind would fail every later update of what they guard.
    clear_repository_locks(path, STALE_LOCK)?;
    check_pack_indexes(path)?;
    let repo = if path.join("HEAD").exists() {
        Repository::open_bare(path)
            .map_err(|e| Error::git(format!("open {}", path.display()), e))?
    } else {
        let mut options = RepositoryInitOptions::new();
        // libgit2's own minimal template, not the one the machine's git installation may
        // have: the same few files everywhere, and no sample hooks (tens of KiB in a store
        // whose hooks never run).
        options
            .bare(true)
            .initial_head("main")
            .mkpath(true)
            .external_template(false);
        Repository::init_opts(path, &options)
            .map_err(|e| Error::git(format!("create {}", path.display()), e))?
    };
    configure(&repo)?;
    Ok(repo)
}

/// A fresh handle on the repository at `path`, which this process opened with
/// [`open_or_init`] before. It skips the crash checks and settings of a first open: its caller
/// has just rewritten the packs itself (a merge), and only needs a handle that no longer maps
/// the removed ones. Opening with those checks cost 10 ms after a merge of 33 packs.
pub fn reopen(path: &Path) -> Result<Repository> {
    Repository::open_bare(path).map_err(|e| Error::git(format!("reopen {}", path.display()), e))
}

/// Settings that keep the repository safe and lean whatever tool opens it later.
fn configure(repo: &Repository) -> Result<()> {
    let mut config = repo.config().map_err(|e| Error::git("open config", e))?;
    let settings: [(&str, &str); 6] = [
        // A repack tries each object against its ten neighbours for a delta. Chunk files are
        // large and each unlike the others, so those tries cost most of a repack's time and
        // save next to nothing; capping the window at 64 KiB keeps the tries among the small
        // objects (bucket trees, state blobs) where deltas pay. Measured: a third less
        // repack time, the same pack size.
        ("pack.windowMemory", "65536"),
        // No hook in the repository ever runs, whoever planted it.
        ("core.hooksPath", "/dev/null"),
        ("core.fsync", "all"),
        ("core.fsyncMethod", "fsync"),
        // Repacking is the tier's own maintenance.
        ("gc.auto", "0"),
        ("receive.fsckObjects", "true"),
    ];
    for (name, value) in settings {
        if config.get_string(name).ok().as_deref() != Some(value) {
            config
                .set_str(name, value)
                .map_err(|e| Error::git(format!("set {name}"), e))?;
        }
    }
    Ok(())
}

/// The commit `BRANCH` points at, if any.
pub fn head(repo: &Repository) -> Result<Option<Oid>> {
    head_of(repo, BRANCH)
}

/// The commit reference `name` points at, if it exists.
pub fn head_of(repo: &Repository, name: &str) -> Result<Option<Oid>> {
    match repo.refname_to_id(name) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(Error::git(format!("read {name}"), e)),
    }
}

/// What a new commit holds.
pub struct NewCommit<'a> {
    /// The commit it follows (the current head), or `None` for the first one.
    pub parent: Option<Oid>,
    /// Further parents (a merge).
    pub other_parents: &'a [Oid],
    /// The full message, trailers included.
    pub message: &'a str,
    /// Author and committer.
    pub signature: &'a Signature<'static>,
}

pub use crate::locks::{clear_git_locks, clear_stale_lock, STALE_LOCK};
pub(crate) use crate::locks::{clear_repository_locks, guard, try_maintenance_guard, Guard};
pub use crate::staging::{write_commit, Staging};

pub use crate::branch::move_branch;

/// Opens the existing repository at `path` to read it, writing nothing: no lock is cleared, no
/// setting written, no index rebuilt. Every pack index is still checked before libgit2 reads
/// through it, and a damaged one is an error naming it.
pub fn open_for_reading(path: &Path) -> Result<Repository> {
    configure_libgit2()?;
    for (pack, len) in packs(path)? {
        let idx = pack.with_extension("idx");
        match index_is_sound(&pack, len, &idx) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::corrupt(
                    &idx,
                    "damaged pack index (a writable open rebuilds it)",
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Repository::open_bare(path).map_err(|e| Error::git(format!("open {}", path.display()), e))
}

/// Whether the index `idx` of `pack` (`len` bytes) is sound: its checksum, the pack checksum
/// it records, and every offset inside the pack. A missing index counts as sound (the pack is
/// invisible to readers).
fn index_is_sound(pack: &Path, len: u64, idx: &Path) -> Result<bool> {
    let bytes = match std::fs::read(idx) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(source) => {
            return Err(Error::Io {
                op: "read pack index",
                path: idx.to_path_buf(),
                source,
            })
        }
    };
    let trailer = pack_trailer(pack);
    Ok(
        crate::packread::parse_index(idx, &bytes).is_ok_and(|(entries, checksum)| {
            trailer == Some(checksum)
                && entries
                    .iter()
                    .all(|e| e.offset >= 12 && e.offset.saturating_add(20) < len)
        }),
    )
}

/// Checks every pack index before libgit2 reads through any: an index whose checksum fails,
/// which names another pack, or whose offsets point outside its pack is damage that libgit2
/// does not survive (it reads wherever a bad offset points). Such an index is moved aside
/// (`.idx.damaged`) and rebuilt from its pack by libgit2's indexer, which checks every
/// object; if the pack itself is damaged too, opening fails with an error naming it.
fn check_pack_indexes(path: &Path) -> Result<()> {
    for (pack, len) in packs(path)? {
        let idx = pack.with_extension("idx");
        if !index_is_sound(&pack, len, &idx)? {
            reindex(path, &pack, &idx)?;
        }
    }
    Ok(())
}

/// The last 20 bytes of the pack at `pack`: its checksum.
fn pack_trailer(pack: &Path) -> Option<[u8; 20]> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(pack).ok()?;
    file.seek(SeekFrom::End(-20)).ok()?;
    let mut trailer = [0u8; 20];
    file.read_exact(&mut trailer).ok()?;
    Some(trailer)
}

/// Rebuilds the index of `pack` with libgit2's indexer, after moving the damaged `idx` aside.
fn reindex(path: &Path, pack: &Path, idx: &Path) -> Result<()> {
    use std::io::Write;
    let aside = idx.with_extension("idx.damaged");
    std::fs::rename(idx, &aside).map_err(|source| Error::Io {
        op: "move a damaged pack index aside",
        path: idx.to_path_buf(),
        source,
    })?;
    let bytes = std::fs::read(pack).map_err(|source| Error::Io {
        op: "read pack",
        path: pack.to_path_buf(),
        source,
    })?;
    let rebuilt = (|| {
        let repo = Repository::open_bare(path)?;
        let odb = repo.odb()?;
        let mut writer = odb.packwriter()?;
        writer
            .write_all(&bytes)
            .map_err(|e| git2::Error::from_str(&e.to_string()))?;
        writer.commit().map(drop)
    })();
    rebuilt.map_err(|e| {
        Error::corrupt(
            pack,
            format!(
                "its index was damaged (moved to {}) and the pack cannot be indexed again: {e}",
                aside.display()
            ),
        )
    })?;
    sync_dir(&StdFs, &path.join("objects/pack"))
}

/// What [`repack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepackReport {
    /// Pack files before.
    pub packs_before: usize,
    /// Pack files after (1, or 0 for an empty repository).
    pub packs_after: usize,
    /// Bytes of the `.pack` files before.
    pub bytes_before: u64,
    /// Bytes of the `.pack` files after.
    pub bytes_after: u64,
}

/// The `.pack` files of the repository at `path`, with their sizes.
pub fn packs(path: &Path) -> Result<Vec<(std::path::PathBuf, u64)>> {
    let dir = path.join("objects/pack");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                op: "list",
                path: dir,
                source,
            })
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        let file = entry.path();
        if file.extension().is_some_and(|e| e == "pack") {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.push((file, len));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes every object reachable from a reference into one new pack, then removes the other
/// packs (and with them objects no reference reaches, such as those of a commit whose branch
/// update lost a race or a crash).
///
/// The new pack and its index are complete and fsynced before any old pack is removed, so a
/// crash at any point leaves every reachable object readable. Handles opened before the repack
/// may still map removed packs; callers reopen theirs.
pub fn repack(fs: &dyn Fs, path: &Path) -> Result<RepackReport> {
    let _maintenance = guard(path, Guard::Maintenance)?;
    let _commits = guard(path, Guard::AllCommits)?;
    let before = packs(path)?;
    let mut report = RepackReport {
        packs_before: before.len(),
        bytes_before: before.iter().map(|(_, len)| len).sum(),
        ..RepackReport::default()
    };
    let repo = Repository::open_bare(path).map_err(|e| Error::git("open for repack", e))?;
    let mut walk = repo.revwalk().map_err(|e| Error::git("start a walk", e))?;
    walk.push_glob("*")
        .map_err(|e| Error::git("walk the references", e))?;
    let mut builder = repo
        .packbuilder()
        .map_err(|e| Error::git("start a pack", e))?;
    builder.set_threads(1);
    builder
        .insert_walk(&mut walk)
        .map_err(|e| Error::git("collect the objects", e))?;
    if builder.object_count() == 0 {
        return Ok(report);
    }
    let pack_dir = path.join("objects/pack");
    builder
        .write(&pack_dir, 0)
        .map_err(|e| Error::git("write the pack", e))?;
    let name = builder
        .name()
        .map(|n| format!("pack-{n}"))
        .ok_or_else(|| Error::corrupt(&pack_dir, "the new pack has no name"))?;
    for (pack, _) in &before {
        let keep = |n: &str| pack.file_stem().is_some_and(|stem| stem == n);
        if keep(name.as_str()) {
            continue;
        }
        remove_pack(fs, pack)?;
    }
    sync_dir(fs, &pack_dir)?;
    let after = packs(path)?;
    report.packs_after = after.len();
    report.bytes_after = after.iter().map(|(_, len)| len).sum();
    Ok(report)
}

/// Removes the pack at `pack` (`.pack` path) and the files beside it. The index goes first:
/// a pack without its index is ignored, an index without its pack would be an error for a
/// reader.
pub(crate) fn remove_pack(fs: &dyn Fs, pack: &Path) -> Result<()> {
    for extension in ["idx", "rev", "mtimes", "pack"] {
        remove_if_present(fs, &pack.with_extension(extension))?;
    }
    Ok(())
}

/// Removes the file at `path`; one that is already gone is no error.
pub(crate) fn remove_if_present(fs: &dyn Fs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            op: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Fsyncs directory `dir`, so that files created, renamed or removed in it stay so.
pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(|source| Error::Io {
        op: "fsync",
        path: dir.to_path_buf(),
        source,
    })
}

/// The value of trailer `name` in a commit message.
pub fn trailer<'m>(message: &'m str, name: &str) -> Option<&'m str> {
    message.lines().rev().find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        (key == name).then_some(value.trim())
    })
}

/// Fails the test unless `git fsck --strict` finds the repository at `path` sound.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn assert_fsck_clean(path: &Path) {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(path)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
