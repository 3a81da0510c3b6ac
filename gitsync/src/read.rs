//! The read side of the cold store: versions in the state tree and in unfolded chunks, their
//! order across writers, history, and past versions.
//!
//! ```text
//!   newest version of a key = max by (stamp, lsn) over
//!       chunks/<stamp>.jsonl lines for the key      (stamp = the chunk's <hlc>-<writer>)
//!       state/<abc>/<name>                          (stamp = its "at" field)
//! ```
//!
//! LSNs order versions of one writer; stamps order writers. A snapshot is a position in this
//! writer's log, so it hides this writer's later versions only: versions from other writers
//! arrived by a merge, outside this writer's sequence, and are visible at every snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Sort, Tree};
use strata_tiering::{Entry, Key, Lsn, SeqNo};

use crate::codec;
use crate::error::{Error, Result};
use crate::hlc::{Hlc, Stamp};
use crate::names;
use crate::repo;

/// A version and the chunk it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamped {
    pub stamp: Stamp,
    pub entry: Entry,
}

impl Stamped {
    fn order(&self) -> (&Stamp, SeqNo) {
        (&self.stamp, self.entry.seqno)
    }

    /// Whether `self` is newer than `other`: by LSN between versions of one writer (a replay
    /// may commit an older version after a newer one), by stamp between writers.
    pub fn newer_than(&self, other: &Stamped) -> bool {
        if self.stamp.writer == other.stamp.writer {
            (self.entry.seqno, &self.stamp.hlc) > (other.entry.seqno, &other.stamp.hlc)
        } else {
            self.order() > other.order()
        }
    }
}

/// The newest of `versions`: each writer's highest LSN, then the latest stamp among those.
/// Taking the writers one at a time keeps the choice independent of the order of `versions`.
pub(crate) fn newest_of<'v>(
    versions: impl IntoIterator<Item = &'v Stamped>,
) -> Option<&'v Stamped> {
    let mut per_writer: BTreeMap<&str, &Stamped> = BTreeMap::new();
    for version in versions {
        let slot = per_writer.entry(&version.stamp.writer).or_insert(version);
        if version.newer_than(slot) {
            *slot = version;
        }
    }
    per_writer
        .into_values()
        .max_by(|a, b| a.order().cmp(&b.order()))
}

/// Versions in unfolded chunk files, oldest first per key.
pub(crate) type Overlay = BTreeMap<Key, Vec<Stamped>>;

pub(crate) fn add_version(overlay: &mut Overlay, key: Key, version: Stamped) {
    let versions = overlay.entry(key).or_default();
    match versions.binary_search_by(|v| v.order().cmp(&version.order())) {
        Ok(at) => versions[at] = version,
        Err(at) => versions.insert(at, version),
    }
}

/// Takes out of `overlay` the versions of `keys` stamped `stamp` (a commit that failed after
/// they went in), and any key left without versions.
pub(crate) fn remove_versions<'k>(
    overlay: &mut Overlay,
    keys: impl IntoIterator<Item = &'k Key>,
    stamp: &Stamp,
) {
    for key in keys {
        if let Some(versions) = overlay.get_mut(key) {
            versions.retain(|v| &v.stamp != stamp);
            if versions.is_empty() {
                overlay.remove(key);
            }
        }
    }
}

/// What the reads of one store need to know.
pub(crate) struct View<'a> {
    pub repo: &'a Repository,
    /// This store's writer id: snapshots apply to its versions only.
    pub own: &'a str,
    pub overlay: &'a Overlay,
    pub head: Option<Oid>,
}

impl View<'_> {
    fn visible(&self, version: &Stamped, snapshot: SeqNo) -> bool {
        version.stamp.writer != self.own || version.entry.seqno <= snapshot
    }

    /// The newest version of `key` at `snapshot`; `tree` is the head's tree, read once by the
    /// caller so that a scan does not re-read it for every key.
    pub fn get(
        &self,
        tree: Option<&Tree<'_>>,
        key: &[u8],
        snapshot: SeqNo,
    ) -> Result<Option<Entry>> {
        let from_chunks = self
            .overlay
            .get(key)
            .and_then(|versions| newest_of(versions.iter().filter(|v| self.visible(v, snapshot))));
        let from_state = match tree {
            Some(tree) => state_version(self.repo, tree, key, self.own)?,
            None => None,
        };
        let from_state = match from_state {
            Some(current) if self.visible(&current, snapshot) => Some(current),
            // The state holds this writer's version newer than the snapshot: only history
            // knows the older ones.
            Some(_) => {
                let older: Vec<Stamped> = self
                    .history(key)?
                    .into_iter()
                    .map(|v| Stamped {
                        stamp: v.stamp,
                        entry: v.entry,
                    })
                    .filter(|v| self.visible(v, snapshot))
                    .collect();
                newest_of(&older).cloned()
            }
            // Deletions stay in state/, so a key in neither place was never committed.
            None => None,
        };
        Ok(newest(from_chunks.cloned(), from_state).map(|v| v.entry))
    }

    /// Every committed version of `key`, oldest first, each with the commit that added it.
    pub fn history(&self, key: &[u8]) -> Result<Vec<Version>> {
        let Some(head) = self.head else {
            return Ok(Vec::new());
        };
        let mut versions = Vec::new();
        for id in walk(self.repo, head)? {
            let commit = find_commit(self.repo, id)?;
            let parents: Vec<Tree<'_>> = commit
                .parent_ids()
                .map(|p| commit_tree(self.repo, p))
                .collect::<Result<_>>()?;
            let tree = commit_tree(self.repo, id)?;
            for (name, blob) in chunk_files(self.repo, &tree)? {
                // A chunk belongs to the commit that added it, not to later commits (or merges)
                // that inherited it.
                let path = format!("chunks/{name}");
                if parents.iter().any(|t| t.get_path(Path::new(&path)).is_ok()) {
                    continue;
                }
                let stamp = chunk_stamp(&name)?;
                for (_, entry) in parse_chunk(self.repo, &name, blob)?
                    .into_iter()
                    .filter(|(k, _)| k == key)
                {
                    versions.push(Version {
                        entry,
                        commit: id,
                        time: commit.time().seconds(),
                        stamp: stamp.clone(),
                    });
                }
            }
        }
        versions.sort_by(|a, b| (&a.stamp, a.entry.seqno).cmp(&(&b.stamp, b.entry.seqno)));
        Ok(versions)
    }
}

/// One version of a key in the repository's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The version (a tombstone for a deletion).
    pub entry: Entry,
    /// The commit that added it.
    pub commit: Oid,
    /// That commit's time, in seconds since the Unix epoch.
    pub time: i64,
    /// The chunk it was committed in: its clock reading and writer.
    pub stamp: Stamp,
}

/// The newer of two versions.
pub(crate) fn newest(a: Option<Stamped>, b: Option<Stamped>) -> Option<Stamped> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.newer_than(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Commits reachable from `head`, newest first (parents after children).
pub(crate) fn walk(repo: &Repository, head: Oid) -> Result<Vec<Oid>> {
    let mut walk = repo.revwalk().map_err(|e| Error::git("start a walk", e))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(|e| Error::git("sort a walk", e))?;
    walk.push(head)
        .map_err(|e| Error::git(format!("walk from {head}"), e))?;
    walk.map(|id| id.map_err(|e| Error::git("walk history", e)))
        .collect()
}

pub(crate) fn find_commit(repo: &Repository, id: Oid) -> Result<git2::Commit<'_>> {
    repo.find_commit(id)
        .map_err(|e| Error::git(format!("read commit {id}"), e))
}

pub(crate) fn commit_tree(repo: &Repository, id: Oid) -> Result<Tree<'_>> {
    find_commit(repo, id)?
        .tree()
        .map_err(|e| Error::git(format!("read the tree of {id}"), e))
}

fn chunk_stamp(name: &str) -> Result<Stamp> {
    Stamp::of_chunk(name).ok_or_else(|| {
        Error::corrupt(
            format!("chunks/{name}"),
            "not a chunk name this store writes",
        )
    })
}

/// The version of `key` in `state/` of `tree`; a blob without an origin (`at`) is taken as
/// this writer's.
pub(crate) fn state_version(
    repo: &Repository,
    tree: &Tree<'_>,
    key: &[u8],
    own: &str,
) -> Result<Option<Stamped>> {
    let path = names::state_path(key)?;
    let entry = match tree.get_path(Path::new(&path)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(Error::git(format!("look up {path}"), e)),
    };
    let doc = decode_blob(repo, entry.id(), &path)?;
    if doc.key.as_deref().is_some_and(|k| k != key) {
        return Err(Error::corrupt(&path, "the blob names another key"));
    }
    let stamp = doc.at.unwrap_or_else(|| Stamp {
        hlc: Hlc::default(),
        writer: own.to_owned(),
    });
    Ok(Some(Stamped {
        stamp,
        entry: doc.entry,
    }))
}

pub(crate) fn decode_blob(repo: &Repository, id: Oid, path: &str) -> Result<codec::Document> {
    let blob = repo
        .find_blob(id)
        .map_err(|e| Error::git(format!("read {path}"), e))?;
    codec::decode(blob.content()).map_err(|detail| Error::corrupt(path, detail))
}

/// Checks that `state/` of `tree` has this layout's shape: only bucket trees named by three
/// hex digits (`000` to `3ff`). Reads the root of `state/` only, so it is cheap enough for
/// every head a store loads. Without it, a repository in another layout (the two-level
/// `state/<2 hex>/<2 hex>/<name>` of earlier versions) would answer a read of a folded key
/// with "absent" rather than an error.
pub(crate) fn check_state_layout(repo: &Repository, tree: &Tree<'_>) -> Result<()> {
    let Ok(state) = tree.get_path(Path::new("state")) else {
        return Ok(());
    };
    if state.kind() != Some(ObjectType::Tree) {
        return Err(Error::corrupt("state", "state/ is not a directory"));
    }
    let state = repo
        .find_tree(state.id())
        .map_err(|e| Error::git("read the state/ tree", e))?;
    for bucket in state.iter() {
        let name = bucket.name().unwrap_or_default();
        let is_bucket = name.len() == 3
            && u32::from_str_radix(name, 16).is_ok_and(|n| n < names::STATE_BUCKETS)
            && name.bytes().all(|b| !b.is_ascii_uppercase());
        if !is_bucket || bucket.kind() != Some(ObjectType::Tree) {
            return Err(Error::corrupt(
                format!("state/{name}"),
                "not a bucket of this layout (state/<000 to 3ff>/<name>); a repository                  written in another layout, such as the two-level state/<2 hex>/<2 hex>/ of                  earlier versions, cannot be read by this one",
            ));
        }
    }
    Ok(())
}

/// Calls `visit` with every key in `state/` of `tree`.
pub(crate) fn for_each_state_key(
    repo: &Repository,
    tree: &Tree<'_>,
    mut visit: impl FnMut(Vec<u8>),
) -> Result<()> {
    let Ok(state) = tree.get_path(Path::new("state")) else {
        return Ok(());
    };
    let subtree = |id: Oid| {
        repo.find_tree(id)
            .map_err(|e| Error::git(format!("read tree {id}"), e))
    };
    for bucket in subtree(state.id())?.iter() {
        let bucket_name = bucket.name().unwrap_or_default();
        for leaf in subtree(bucket.id())?.iter() {
            let name = leaf.name().unwrap_or_default();
            let path = format!("state/{bucket_name}/{name}");
            if leaf.kind() != Some(ObjectType::Blob) {
                return Err(Error::corrupt(path, "a state/ bucket holds a non-blob"));
            }
            visit(placed_key(repo, &path, bucket_name, name, leaf.id())?);
        }
    }
    Ok(())
}

/// The key of the `state/` file `path` (bucket `bucket`, entry `name`, blob `blob`), checked
/// to be in the bucket its CRC32 gives: a key anywhere else could never be found by its path.
pub(crate) fn placed_key(
    repo: &Repository,
    path: &str,
    bucket: &str,
    name: &str,
    blob: Oid,
) -> Result<Vec<u8>> {
    let key = match names::unescape(name) {
        Some(key) => key,
        None if names::is_hashed(name) => match decode_blob(repo, blob, path)?.key {
            Some(key) => key,
            None => return Err(Error::corrupt(path, "a shortened name's blob has no key")),
        },
        None => return Err(Error::corrupt(path, "not a name this store writes")),
    };
    if names::bucket(&key) != bucket {
        return Err(Error::corrupt(path, "the key is in the wrong bucket"));
    }
    Ok(key)
}

/// The chunk files of `tree`, in name order, with their blob ids.
pub(crate) fn chunk_files(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<(String, Oid)>> {
    let Ok(chunks) = tree.get_path(Path::new("chunks")) else {
        return Ok(Vec::new());
    };
    let chunks = repo
        .find_tree(chunks.id())
        .map_err(|e| Error::git("read chunks/", e))?;
    let mut files: Vec<(String, Oid)> = chunks
        .iter()
        .filter(|e| e.kind() == Some(ObjectType::Blob))
        .filter_map(|e| Some((e.name()?.to_owned(), e.id())))
        .collect();
    files.sort();
    Ok(files)
}

/// The changes in one chunk file.
pub(crate) fn parse_chunk(
    repo: &Repository,
    name: &str,
    blob: Oid,
) -> Result<Vec<(Vec<u8>, Entry)>> {
    let blob = repo
        .find_blob(blob)
        .map_err(|e| Error::git(format!("read chunks/{name}"), e))?;
    let mut changes = Vec::new();
    for (number, line) in blob.content().split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let at = || format!("chunks/{name} line {}", number + 1);
        match codec::decode(line) {
            Ok(codec::Document {
                key: Some(key),
                entry,
                ..
            }) => changes.push((key, entry)),
            Ok(_) => return Err(Error::corrupt(at(), "a change without a key")),
            Err(detail) => return Err(Error::corrupt(at(), detail)),
        }
    }
    Ok(changes)
}

/// The unfolded chunks of `tree`: the overlay and the chunk names.
pub(crate) fn load_chunks(repo: &Repository, tree: &Tree<'_>) -> Result<(Overlay, Vec<String>)> {
    let mut overlay = Overlay::new();
    let mut names = Vec::new();
    for (name, blob) in chunk_files(repo, tree)? {
        let stamp = chunk_stamp(&name)?;
        for (key, entry) in parse_chunk(repo, &name, blob)? {
            let version = Stamped {
                stamp: stamp.clone(),
                entry,
            };
            add_version(&mut overlay, Key::new(&key)?, version);
        }
        names.push(name);
    }
    Ok((overlay, names))
}

/// This writer's watermarks as its newest commit reachable from `head` records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// `Strata-Lsn`: every change of this writer up to it is committed.
    pub committed: Lsn,
    /// `Strata-State-Lsn`: this writer's changes up to it are folded into `state/`.
    pub folded: Lsn,
    /// The highest clock reading on any commit reachable from `head`.
    pub hlc: Hlc,
}

/// Reads this writer's watermarks from its newest commit reachable from `head` (another
/// writer's commit, pulled in by a merge, may be the head itself).
pub(crate) fn own_marks(repo: &Repository, path: &Path, head: Oid, own: &str) -> Result<Marks> {
    let mut marks = Marks::default();
    for id in walk(repo, head)? {
        let commit = find_commit(repo, id)?;
        let message = commit.message().unwrap_or_default();
        if let Some(hlc) = repo::trailer(message, "Strata-Hlc").and_then(Hlc::parse) {
            marks.hlc = marks.hlc.max(hlc);
        }
        if repo::trailer(message, "Strata-Writer") != Some(own) {
            continue;
        }
        let number = |name: &str| -> Result<Lsn> {
            repo::trailer(message, name)
                .ok_or_else(|| Error::corrupt(path, format!("commit {id} has no {name} trailer")))?
                .parse()
                .map_err(|_| {
                    Error::corrupt(path, format!("commit {id} has a malformed {name} trailer"))
                })
        };
        marks.committed = number("Strata-Lsn")?;
        marks.folded = number("Strata-State-Lsn")?;
        // Everything older is older than this writer's own reading, so the walk can stop.
        break;
    }
    Ok(marks)
}

/// The newest version of `key` as of commit `at`.
pub(crate) fn get_in_commit(
    repo: &Repository,
    own: &str,
    at: Oid,
    key: &[u8],
) -> Result<Option<Entry>> {
    let tree = commit_tree(repo, at)?;
    let mut found = state_version(repo, &tree, key, own)?;
    for (name, blob) in chunk_files(repo, &tree)? {
        let stamp = chunk_stamp(&name)?;
        for (_, entry) in parse_chunk(repo, &name, blob)?
            .into_iter()
            .filter(|(k, _)| k == key)
        {
            let version = Stamped {
                stamp: stamp.clone(),
                entry,
            };
            found = newest(found, Some(version));
        }
    }
    Ok(found.map(|v| v.entry))
}

/// The newest commit reachable from `head` made at or before `time` (seconds since the Unix
/// epoch), if any.
pub(crate) fn commit_at_time(repo: &Repository, head: Oid, time: i64) -> Result<Option<Oid>> {
    for id in walk(repo, head)? {
        if find_commit(repo, id)?.time().seconds() <= time {
            return Ok(Some(id));
        }
    }
    Ok(None)
}
