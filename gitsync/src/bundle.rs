//! Git bundles of the cold repository: one file that holds every reference and every object
//! reachable from them, readable by `git bundle verify` and `git clone`.
//!
//! # Format (git's bundle format, version 2)
//!
//! ```text
//!   "# v2 git bundle\n"
//!   per reference:  <40 hex digits of the object id> SP <reference name> LF
//!   LF                                   an empty line ends the header
//!   pack                                 a git pack (version 2) of every object reachable
//!                                        from the references, ending in its SHA-1
//! ```
//!
//! `HEAD` is listed with the object the branch points at, as `git bundle create --all` does,
//! so `git clone` checks out the branch. A repository without commits gives a bundle with no
//! reference and an empty pack, which [`unbundle`] accepts (git itself would refuse to make one).
//!
//! [`unbundle`] creates a new bare repository from a bundle: the pack goes through libgit2's
//! indexer, which checks its trailer and every object, then the references are set. It never
//! writes into an existing repository.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use git2::{Oid, Repository, Sort};

use strata_tiering::Lsn;

use crate::error::{Error, Result};
use crate::repo::{self, BRANCH};
use crate::store::ColdStore;

/// The first line of every bundle this module writes or reads.
pub const SIGNATURE: &str = "# v2 git bundle";

/// What a bundle holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleInfo {
    /// References and the objects they name, `HEAD` included.
    pub refs: Vec<(String, Oid)>,
    /// Objects in the pack (when written; 0 when only the header was read).
    pub objects: usize,
    /// The bundle's size in bytes.
    pub bytes: u64,
}

impl BundleInfo {
    /// The object `name` points at in the bundle.
    pub fn reference(&self, name: &str) -> Option<Oid> {
        self.refs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

impl ColdStore {
    /// Writes a bundle of the whole repository to the new file `dest` and fsyncs it.
    ///
    /// The references are read under the store's lock, so they are one consistent state;
    /// objects are immutable, so packing them afterwards (through a second handle, without the
    /// lock) packs exactly that state even if a commit lands meanwhile.
    pub fn bundle(&self, dest: &Path) -> Result<BundleInfo> {
        let refs = {
            let state = self.lock();
            list_refs(&state.repo)?
        };
        write_bundle(&self.path, &refs, dest)
    }

    /// Whether other writers' versions may be in the repository (after a merge or a clone).
    pub fn is_shared(&self) -> bool {
        self.lock().shared
    }
}

/// Every direct reference of `repo`, plus `HEAD` when the branch exists.
fn list_refs(repo: &Repository) -> Result<Vec<(String, Oid)>> {
    let mut refs = Vec::new();
    let references = repo
        .references()
        .map_err(|e| Error::git("list references", e))?;
    for reference in references {
        let reference = reference.map_err(|e| Error::git("read a reference", e))?;
        if let (Some(name), Some(target)) = (reference.name(), reference.target()) {
            refs.push((name.to_owned(), target));
        }
    }
    refs.sort();
    if let Some(head) = repo::head(repo)? {
        refs.insert(0, ("HEAD".to_owned(), head));
    }
    Ok(refs)
}

fn write_bundle(repo_path: &Path, refs: &[(String, Oid)], dest: &Path) -> Result<BundleInfo> {
    let repo = Repository::open_bare(repo_path)
        .map_err(|e| Error::git(format!("open {}", repo_path.display()), e))?;
    let mut builder = repo
        .packbuilder()
        .map_err(|e| Error::git("start a bundle's pack", e))?;
    let mut walk = repo.revwalk().map_err(|e| Error::git("walk history", e))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(|e| Error::git("walk history", e))?;
    for (_, id) in refs {
        walk.push(*id)
            .map_err(|e| Error::git(format!("walk from {id}"), e))?;
    }
    builder
        .insert_walk(&mut walk)
        .map_err(|e| Error::git("collect the bundle's objects", e))?;
    let objects = builder.object_count();

    let mut file = strata_wal::io::create_new_private_file(dest).map_err(io("create", dest))?;
    let mut header = format!("{SIGNATURE}\n");
    for (name, id) in refs {
        header.push_str(&format!("{id} {name}\n"));
    }
    header.push('\n');
    file.write_all(header.as_bytes())
        .map_err(io("write", dest))?;
    let mut bytes = header.len() as u64;
    let mut failure = None;
    builder
        .foreach(|chunk| match file.write_all(chunk) {
            Ok(()) => {
                bytes += chunk.len() as u64;
                true
            }
            Err(e) => {
                failure = Some(e);
                false
            }
        })
        .map_err(|e| match failure.take() {
            Some(source) => Error::Io {
                op: "write",
                path: dest.to_owned(),
                source,
            },
            None => Error::git("write the bundle's pack", e),
        })?;
    file.sync_all().map_err(io("fsync", dest))?;
    Ok(BundleInfo {
        refs: refs.to_vec(),
        objects,
        bytes,
    })
}

/// Reads a bundle's header: its references, and the offset where its pack starts.
pub fn read_header(path: &Path) -> Result<(BundleInfo, u64)> {
    let file = File::open(path).map_err(io("open", path))?;
    let bytes = file.metadata().map_err(io("stat", path))?.len();
    // A header line is an object id and a reference name; none is anywhere near this long.
    const MAX_LINE: usize = 4096;
    let mut reader = BufReader::new(file.take(bytes));
    let corrupt = |detail: String| Error::corrupt(path, detail);
    let mut offset = 0u64;
    let mut refs = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io("read", path))?;
        offset += read as u64;
        if read == 0 || line.last() != Some(&b'\n') {
            return Err(corrupt(format!(
                "header line {number} is unterminated or longer than {MAX_LINE} bytes"
            )));
        }
        let text = std::str::from_utf8(&line[..line.len() - 1])
            .map_err(|_| corrupt(format!("header line {number} is not UTF-8")))?;
        if number == 1 {
            if text != SIGNATURE {
                return Err(corrupt(format!("not a version 2 git bundle: {text:?}")));
            }
            continue;
        }
        if text.is_empty() {
            break;
        }
        let parsed = text
            .split_once(' ')
            .and_then(|(id, name)| Some((Oid::from_str(id).ok()?, name)))
            .filter(|(_, name)| name == &"HEAD" || git2::Reference::is_valid_name(name));
        let Some((id, name)) = parsed else {
            return Err(corrupt(format!(
                "header line {number} is not `<id> <ref>`: {text:?}"
            )));
        };
        refs.push((name.to_owned(), id));
    }
    Ok((
        BundleInfo {
            refs,
            objects: 0,
            bytes,
        },
        offset,
    ))
}

/// Creates the bare repository `repo_path` (which must not exist) from the bundle at
/// `bundle`, and returns what it held. On failure the half-made repository is removed.
pub fn unbundle(bundle: &Path, repo_path: &Path) -> Result<BundleInfo> {
    if repo_path.exists() {
        return Err(Error::Io {
            op: "unbundle into",
            path: repo_path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        });
    }
    let result = unbundle_new(bundle, repo_path);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(repo_path);
    }
    result
}

fn unbundle_new(bundle: &Path, repo_path: &Path) -> Result<BundleInfo> {
    let (mut info, pack_offset) = read_header(bundle)?;
    let repo = repo::open_or_init(repo_path)?;
    let mut file = File::open(bundle).map_err(io("open", bundle))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(pack_offset))
        .map_err(io("seek", bundle))?;
    let odb = repo
        .odb()
        .map_err(|e| Error::git("open the object database", e))?;
    let mut writer = odb
        .packwriter()
        .map_err(|e| Error::git("start indexing the bundle's pack", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pack_bytes = 0u64;
    let mut pack_header = Vec::with_capacity(12);
    loop {
        let n = file.read(&mut buf).map_err(io("read", bundle))?;
        if n == 0 {
            break;
        }
        let missing = 12usize.saturating_sub(pack_header.len()).min(n);
        pack_header.extend_from_slice(&buf[..missing]);
        pack_bytes += n as u64;
        writer
            .write_all(&buf[..n])
            .map_err(|e| Error::corrupt(bundle, format!("its pack: {e}")))?;
    }
    if pack_bytes > 0 {
        writer
            .commit()
            .map_err(|e| Error::corrupt(bundle, format!("its pack does not index: {e}")))?;
    } else if !info.refs.is_empty() {
        return Err(Error::corrupt(
            bundle,
            "it names references but holds no pack",
        ));
    }
    // The indexer checked the header; its object count is bytes 8..12, big-endian.
    info.objects = pack_header
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_be_bytes(b) as usize);
    for (name, id) in &info.refs {
        if name == "HEAD" {
            continue;
        }
        repo.find_object(*id, None)
            .map_err(|_| Error::corrupt(bundle, format!("{name} names {id}, which it lacks")))?;
        repo.reference(name, *id, true, "restore from a bundle")
            .map_err(|e| Error::git(format!("set {name}"), e))?;
    }
    if let Some(head) = info.reference("HEAD") {
        if repo::head(&repo)? != Some(head) {
            return Err(Error::corrupt(
                bundle,
                format!("HEAD names {head} but {BRANCH} does not"),
            ));
        }
    }
    Ok(info)
}

/// Gives the repository at `repo_path` (made by [`unbundle`]) the identity of the store the
/// bundle came from: its writer id, whether it is shared, and how far its log was examined,
/// none of which a bundle carries.
pub fn adopt_identity(repo_path: &Path, writer: &str, shared: bool, examined: Lsn) -> Result<()> {
    let valid = !writer.is_empty()
        && writer.len() <= 32
        && writer.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(Error::corrupt(
            repo_path,
            format!("writer id {writer:?} must be 1 to 32 letters or digits"),
        ));
    }
    let repo = Repository::open_bare(repo_path)
        .map_err(|e| Error::git(format!("open {}", repo_path.display()), e))?;
    let mut config = repo.config().map_err(|e| Error::git("open config", e))?;
    config
        .set_str("strata.writer", writer)
        .map_err(|e| Error::git("save the writer id", e))?;
    if shared {
        crate::store::mark_shared(&repo)?;
    }
    crate::store::write_examined(&strata_tiering::io::StdFs, repo_path, examined)
}
