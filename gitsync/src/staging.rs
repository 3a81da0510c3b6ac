//! One commit's new objects, built by hand: blobs, the trees the edits pass through, the commit.
//!
//! ```text
//!   edits (path → blob or removal) ──► tree of edits ──► new trees, bottom up
//!        │                                                    │
//!        └── new blobs ──────────────┬────────────────────────┘
//!                                    ▼
//!                      commit object ──► one .pack + .idx (fsynced) ──► branch moves (CAS)
//! ```
//!
//! Only the trees on an edited path are read (from the parent commit) and rewritten; every
//! other subtree keeps its id. Each new object's id is computed once, with libgit2's
//! collision-detecting SHA-1, and the objects go straight into a pack (see [`packfile`]):
//! nothing passes through libgit2's object database, whose writes would hash each object
//! again and whose indexer would inflate and hash the whole pack a third time.
//!
//! Tree entries are serialised as git does, `<octal mode> <name>\0<20-byte id>`, sorted by
//! name where a subtree's name compares as if it ended in `/`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Signature};
use strata_tiering::io::Fs;

use crate::branch::BranchUpdate;
use crate::error::{Error, Result};
use crate::packfile::{self, Stored};
use crate::parallel;
use crate::repo::{self, NewCommit};

/// Packs up to this size are installed while the branch's lock is written (see
/// [`write_commit`]); a larger one is installed before the lock is taken, so a lock is never
/// held across a long write. A commit of 1,000 changes makes a pack of about 150 KiB.
const OVERLAP_LOCK_UP_TO: usize = 8 << 20;

/// Blobs below this many are hashed on the calling thread.
const PARALLEL_FROM: usize = 512;

/// Git's mode for a regular file.
const MODE_BLOB: i32 = 0o100_644;
/// Git's mode for a subtree.
const MODE_TREE: i32 = 0o040_000;

/// The edits of one commit, staged in memory.
pub struct Staging<'r> {
    real: &'r Repository,
    /// New blobs by id.
    blobs: HashMap<Oid, Vec<u8>>,
    /// The edits as a tree of directories; a later edit of a path replaces an earlier one.
    edits: Dir,
}

/// The edits inside one directory, by entry name.
#[derive(Default)]
struct Dir(BTreeMap<String, Edit>);

enum Edit {
    /// Set the entry to this blob, or remove it.
    File(Option<Oid>),
    /// Edits below this subdirectory.
    Dir(Dir),
}

impl Staging<'_> {
    /// Writes a new blob.
    pub fn blob(&mut self, bytes: &[u8]) -> Result<Oid> {
        let id =
            Oid::hash_object(ObjectType::Blob, bytes).map_err(|e| Error::git("hash a blob", e))?;
        self.blobs.entry(id).or_insert_with(|| bytes.to_vec());
        Ok(id)
    }

    /// Writes a new blob for each `(path, content)` and sets the path to it: [`Self::blob`]
    /// then [`Self::upsert`] for each, with the hashing spread over the machine's cores when
    /// there are many (a fold writes thousands).
    pub fn blobs_at(&mut self, files: Vec<(String, Vec<u8>)>) -> Result<()> {
        let runs = parallel::in_runs(
            &files,
            PARALLEL_FROM,
            |run: &[(String, Vec<u8>)]| -> Result<Vec<Oid>> {
                run.iter()
                    .map(|(_, bytes)| {
                        Oid::hash_object(ObjectType::Blob, bytes)
                            .map_err(|e| Error::git("hash a blob", e))
                    })
                    .collect()
            },
            || {
                Err(Error::corrupt(
                    self.real.path(),
                    "a hashing thread panicked",
                ))
            },
        );
        let mut ids = Vec::with_capacity(files.len());
        for run in runs {
            ids.extend(run?);
        }
        // Grown once: a fold's thousands of blobs would otherwise rehash the map many times.
        self.blobs.reserve(files.len());
        for ((path, bytes), id) in files.into_iter().zip(ids) {
            self.blobs.entry(id).or_insert(bytes);
            self.edit(&path, Some(id))?;
        }
        Ok(())
    }

    /// Sets `path` to blob `id` (a new blob, or one already in the repository).
    pub fn upsert(&mut self, path: &str, id: Oid) -> Result<()> {
        if !self.blobs.contains_key(&id) {
            // A tree entry must never point at an object the repository lacks.
            let exists = self
                .real
                .odb()
                .map(|odb| odb.exists(id))
                .map_err(|e| Error::git("open the object database", e))?;
            if !exists {
                return Err(Error::corrupt(
                    self.real.path(),
                    format!("{path} would name blob {id}, which the repository lacks"),
                ));
            }
        }
        self.edit(path, Some(id))
    }

    /// Removes `path`.
    pub fn remove(&mut self, path: &str) -> Result<()> {
        self.edit(path, None)
    }

    fn edit(&mut self, path: &str, blob: Option<Oid>) -> Result<()> {
        let bad =
            |why: &str| Error::corrupt(self.real.path(), format!("tree path {path:?}: {why}"));
        let mut components = path.split('/').peekable();
        let mut dir = &mut self.edits;
        while let Some(name) = components.next() {
            if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
                return Err(bad("empty, dot or NUL component"));
            }
            if components.peek().is_none() {
                dir.0.insert(name.to_owned(), Edit::File(blob));
                return Ok(());
            }
            // A fold passes through `state/` and each bucket thousands of times: the name is
            // copied only the first time.
            match dir.0.get(name) {
                Some(Edit::Dir(_)) => {}
                Some(Edit::File(_)) | None => {
                    dir.0.insert(name.to_owned(), Edit::Dir(Dir::default()));
                }
            }
            let Some(Edit::Dir(next)) = dir.0.get_mut(name) else {
                return Err(bad("not a directory"));
            };
            dir = next;
        }
        Err(bad("no components"))
    }
}

/// One entry of a tree being rebuilt; the name is borrowed from the edits or the old tree.
#[derive(Debug)]
struct Entry<'n> {
    name: &'n [u8],
    mode: i32,
    id: Oid,
}

/// Git's tree order: names byte by byte, a subtree's name as if it ended in `/`.
fn git_order(a: &Entry, b: &Entry) -> Ordering {
    // The byte after the common part of the names: the next name byte, else `/` for a
    // subtree, else nothing (which sorts first).
    let common = a.name.len().min(b.name.len());
    let next = |e: &Entry| {
        e.name
            .get(common)
            .copied()
            .or((e.mode == MODE_TREE).then_some(b'/'))
    };
    a.name[..common]
        .cmp(&b.name[..common])
        .then_with(|| next(a).cmp(&next(b)))
        // Names never hold `/`, so only two equal names get this far.
        .then_with(|| a.name.len().cmp(&b.name.len()))
}

/// `<octal mode> `, as a tree entry starts.
fn mode_prefix(mode: i32, out: &mut Vec<u8>) {
    match mode {
        MODE_BLOB => out.extend_from_slice(b"100644 "),
        MODE_TREE => out.extend_from_slice(b"40000 "),
        other => out.extend_from_slice(format!("{other:o} ").as_bytes()),
    }
}

/// Serialises a tree's entries (sorted in place).
fn tree_bytes(entries: &mut [Entry<'_>]) -> Vec<u8> {
    // Usually sorted already (they are merged in name order); a check costs less than a sort.
    if !entries.is_sorted_by(|a, b| git_order(a, b) != Ordering::Greater) {
        entries.sort_by(git_order);
    }
    let mut bytes = Vec::with_capacity(entries.iter().map(|e| e.name.len() + 28).sum());
    for entry in entries.iter() {
        mode_prefix(entry.mode, &mut bytes);
        bytes.extend_from_slice(entry.name);
        bytes.push(0);
        bytes.extend_from_slice(entry.id.as_bytes());
    }
    bytes
}

/// New objects of a commit, in the order they are built.
type NewObjects = Vec<(ObjectType, Oid, Vec<u8>)>;

/// A tree's entries by name: mode and id.
type Entries = BTreeMap<Vec<u8>, (i32, Oid)>;

/// The entries of tree `base`, or none.
fn base_entries(repo: &Repository, base: Option<Oid>) -> Result<Entries> {
    let mut entries = Entries::new();
    if let Some(base) = base {
        let tree = repo
            .find_tree(base)
            .map_err(|e| Error::git(format!("read tree {base}"), e))?;
        for entry in tree.iter() {
            entries.insert(entry.name_bytes().to_vec(), (entry.filemode(), entry.id()));
        }
    }
    Ok(entries)
}

/// A tree built from `entries` (sorted by name bytes) with `edits`' file edits applied (its
/// subdirectory edits are already in `entries`): its id, and its bytes if it is not `base`.
/// `None` for a subdirectory left empty (git stores no empty subtree).
fn finish<'a>(
    entries: &[Entry<'a>],
    edits: &'a Dir,
    base: Option<Oid>,
    is_root: bool,
) -> Result<Option<(Oid, Option<Vec<u8>>)>> {
    // Both sides are sorted by name bytes: one pass merges them.
    let mut files = edits
        .0
        .iter()
        .filter_map(|(name, edit)| match edit {
            Edit::File(blob) => Some((name.as_bytes(), *blob)),
            Edit::Dir(_) => None,
        })
        .peekable();
    let mut list: Vec<Entry<'a>> = Vec::with_capacity(entries.len() + edits.0.len());
    let add = |name: &'a [u8], blob: Option<Oid>, list: &mut Vec<Entry<'a>>| {
        if let Some(id) = blob {
            list.push(Entry {
                name,
                mode: MODE_BLOB,
                id,
            });
        }
    };
    for entry in entries {
        while let Some((edited, blob)) = files.next_if(|(edited, _)| *edited < entry.name) {
            add(edited, blob, &mut list);
        }
        match files.next_if(|(edited, _)| *edited == entry.name) {
            Some((edited, blob)) => add(edited, blob, &mut list),
            None => list.push(Entry { ..*entry }),
        }
    }
    for (edited, blob) in files {
        add(edited, blob, &mut list);
    }
    if list.is_empty() && !is_root {
        return Ok(None);
    }
    let bytes = tree_bytes(&mut list);
    let id =
        Oid::hash_object(ObjectType::Tree, &bytes).map_err(|e| Error::git("hash a tree", e))?;
    Ok(Some((id, (Some(id) != base).then_some(bytes))))
}

/// The entries of `entries` as a list sorted by name bytes.
fn listed(entries: &Entries) -> Vec<Entry<'_>> {
    entries
        .iter()
        .map(|(name, (mode, id))| Entry {
            name,
            mode: *mode,
            id: *id,
        })
        .collect()
}

/// The raw bytes of tree `base` (none for no tree): a leaf directory's old tree is parsed by
/// [`parse_tree`] on the thread that rebuilds it, instead of through libgit2 on this one.
fn raw_tree(repo: &Repository, base: Option<Oid>) -> Result<Vec<u8>> {
    let Some(base) = base else {
        return Ok(Vec::new());
    };
    let odb = repo
        .odb()
        .map_err(|e| Error::git("open the object database", e))?;
    let object = odb
        .read(base)
        .map_err(|e| Error::git(format!("read tree {base}"), e))?;
    if object.kind() != ObjectType::Tree {
        return Err(Error::corrupt(
            repo.path(),
            format!("{base} is a {}, not a tree", object.kind()),
        ));
    }
    Ok(object.data().to_vec())
}

/// The entries of a tree object's bytes (`<octal mode> <name>\0<20-byte id>` each), sorted by
/// name bytes; `id` names the tree in errors.
fn parse_tree<'r>(repo: &Path, id: Option<Oid>, mut raw: &'r [u8]) -> Result<Vec<Entry<'r>>> {
    let bad = |why: &str| {
        let id = id.map_or_else(|| "a tree".into(), |id| id.to_string());
        Error::corrupt(repo, format!("tree {id}: {why}"))
    };
    let mut entries = Vec::with_capacity(raw.len() / 40);
    while !raw.is_empty() {
        let space = raw
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("an entry without a mode"))?;
        let (mode_digits, rest) = raw.split_at(space);
        if mode_digits.is_empty() || mode_digits.len() > 7 {
            return Err(bad("a mode of the wrong length"));
        }
        let mut mode = 0i32;
        for &digit in mode_digits {
            if !(b'0'..=b'7').contains(&digit) {
                return Err(bad("a mode that is not octal"));
            }
            mode = mode * 8 + i32::from(digit - b'0');
        }
        let rest = &rest[1..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("an unterminated name"))?;
        let (name, rest) = rest.split_at(nul);
        let id_bytes = rest.get(1..21).ok_or_else(|| bad("an entry cut short"))?;
        if name.is_empty() {
            return Err(bad("an empty name"));
        }
        let id = Oid::from_bytes(id_bytes).map_err(|e| Error::git("read a tree entry", e))?;
        entries.push(Entry { name, mode, id });
        raw = &rest[21..];
    }
    // Git's order puts a subtree as if its name ended in `/`; the merge wants plain bytes.
    if !entries.is_sorted_by(|a, b| a.name <= b.name) {
        entries.sort_by(|a, b| a.name.cmp(b.name));
    }
    Ok(entries)
}

/// A subdirectory whose edits are all files: its name, edits, old tree and that tree's bytes.
type Leaf<'e> = (&'e [u8], &'e Dir, Option<Oid>, Vec<u8>);

/// Subdirectories with edits below which the new trees are built on several threads.
const PARALLEL_TREES_FROM: usize = 64;

/// Rebuilds the tree `base` (or an empty one) with `edits`, adding each new tree to `out`.
/// Returns `None` for a subdirectory left empty.
///
/// A subdirectory whose edits are all files (a `state/<bucket>`, say) needs nothing but its
/// old entries: those are read first, then such trees are built on several threads.
fn rebuild(
    repo: &Repository,
    base: Option<Oid>,
    edits: &Dir,
    is_root: bool,
    out: &mut NewObjects,
) -> Result<Option<Oid>> {
    let repo_path = repo.path();
    let mut entries = base_entries(repo, base)?;
    let mut leaves: Vec<Leaf<'_>> = Vec::new();
    for (name, edit) in &edits.0 {
        let Edit::Dir(sub) = edit else {
            continue;
        };
        let key = name.as_bytes();
        let sub_base = entries
            .get(key)
            .filter(|(mode, _)| *mode == MODE_TREE)
            .map(|(_, id)| *id);
        if sub.0.values().all(|e| matches!(e, Edit::File(_))) {
            leaves.push((key, sub, sub_base, raw_tree(repo, sub_base)?));
            continue;
        }
        match rebuild(repo, sub_base, sub, false, out)? {
            Some(id) => entries.insert(key.to_vec(), (MODE_TREE, id)),
            None => entries.remove(key),
        };
    }
    type Built = Result<Vec<Option<(Oid, Option<Vec<u8>>)>>>;
    let runs = parallel::in_runs(
        &leaves,
        PARALLEL_TREES_FROM,
        |run: &[Leaf<'_>]| -> Built {
            run.iter()
                .map(|(_, sub, sub_base, raw)| {
                    let sub_entries = parse_tree(repo_path, *sub_base, raw)?;
                    finish(&sub_entries, sub, *sub_base, false)
                })
                .collect()
        },
        || {
            Err(Error::corrupt(
                repo.path(),
                "a tree-building thread panicked",
            ))
        },
    );
    let mut built = Vec::with_capacity(leaves.len());
    for run in runs {
        built.extend(run?);
    }
    for ((key, ..), tree) in leaves.iter().zip(built) {
        match tree {
            Some((id, bytes)) => {
                if let Some(bytes) = bytes {
                    out.push((ObjectType::Tree, id, bytes));
                }
                entries.insert(key.to_vec(), (MODE_TREE, id));
            }
            None => {
                entries.remove(*key);
            }
        }
    }
    let Some((id, bytes)) = finish(&listed(&entries), edits, base, is_root)? else {
        return Ok(None);
    };
    if let Some(bytes) = bytes {
        out.push((ObjectType::Tree, id, bytes));
    }
    Ok(Some(id))
}

/// `<name> <<email>> <seconds> <±hhmm>`, as git writes an author or committer line.
fn signature_line(signature: &Signature<'_>) -> Vec<u8> {
    let when = signature.when();
    let offset = when.offset_minutes();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    let mut line = Vec::new();
    line.extend_from_slice(signature.name_bytes());
    line.extend_from_slice(b" <");
    line.extend_from_slice(signature.email_bytes());
    line.extend_from_slice(
        format!(
            "> {} {sign}{:02}{:02}",
            when.seconds(),
            offset / 60,
            offset % 60
        )
        .as_bytes(),
    );
    line
}

/// The bytes of a commit object.
fn commit_bytes(tree: Oid, parents: &[Oid], signature: &Signature<'_>, message: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(160 + message.len());
    bytes.extend_from_slice(format!("tree {tree}\n").as_bytes());
    for parent in parents {
        bytes.extend_from_slice(format!("parent {parent}\n").as_bytes());
    }
    for role in ["author ", "committer "] {
        bytes.extend_from_slice(role.as_bytes());
        bytes.extend_from_slice(&signature_line(signature));
        bytes.push(b'\n');
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(message.as_bytes());
    bytes
}

/// Builds a commit whose tree is the parent's tree with `edit`'s changes, writes exactly its
/// new objects as one fsynced pack (through `fs`, which must act on the repository's files),
/// and moves `BRANCH` from `parent` to it. Returns its id.
///
/// `real` is the repository, opened once by its owner: a fresh handle per commit would reopen
/// the pack indexes each time.
pub fn write_commit(
    real: &Repository,
    fs: &dyn Fs,
    commit: &NewCommit<'_>,
    edit: impl FnOnce(&mut Staging<'_>) -> Result<()>,
) -> Result<Oid> {
    let path = real.path();
    let mut stage = Staging {
        real,
        blobs: HashMap::new(),
        edits: Dir::default(),
    };
    edit(&mut stage)?;
    let Staging { blobs, edits, .. } = stage;

    let base_tree = match commit.parent {
        Some(parent) => Some(
            real.find_commit(parent)
                .map_err(|e| Error::git(format!("read commit {parent}"), e))?
                .tree_id(),
        ),
        None => None,
    };
    let mut objects: NewObjects = blobs
        .into_iter()
        .map(|(id, bytes)| (ObjectType::Blob, id, bytes))
        .collect();
    let tree = rebuild(real, base_tree, &edits, true, &mut objects)?
        .ok_or_else(|| Error::corrupt(path, "the root tree vanished"))?;
    let parents: Vec<Oid> = commit
        .parent
        .iter()
        .chain(commit.other_parents)
        .copied()
        .collect();
    let bytes = commit_bytes(tree, &parents, commit.signature, commit.message);
    let id =
        Oid::hash_object(ObjectType::Commit, &bytes).map_err(|e| Error::git("hash a commit", e))?;
    objects.push((ObjectType::Commit, id, bytes));
    // Two edited directories can end up as the same tree: a pack lists each object once.
    let mut seen = std::collections::HashSet::new();
    objects.retain(|(_, id, _)| seen.insert(*id));

    let pack_dir = path.join("objects/pack");
    let entries: Vec<(Stored, Oid, &[u8])> = objects
        .iter()
        .map(|(kind, id, bytes)| (Stored::Whole(*kind), *id, bytes.as_slice()))
        .collect();
    // A fold's pack holds thousands of objects: their checksums are computed on several threads.
    let pack = packfile::build_in_runs(&entries, PARALLEL_FROM, || {
        |data: &[u8], out: &mut Vec<u8>| {
            packfile::store(data, out);
            Ok(())
        }
    })
    .map_err(|source| Error::Io {
        op: "build pack",
        path: pack_dir.clone(),
        source,
    })?;
    // No full repack may run between this pack's install and the branch naming it.
    let _commits = repo::guard(path, repo::Guard::Commit)?;
    if pack.len() > OVERLAP_LOCK_UP_TO as u64 {
        // A large pack's install may take long enough for another writer to take a lock
        // held across it for a crash's leftover: the branch is locked only once it is done.
        packfile::install(fs, &pack_dir, &pack)?;
        let mut update = BranchUpdate::begin(fs, real, commit.parent)?;
        update.stage(id)?;
        update.publish(real, id)?;
        return Ok(id);
    }
    let mut update = BranchUpdate::begin(fs, real, commit.parent)?;
    // The branch's lock is written and synced while the pack's fdatasync is in flight: each
    // waits for the device, and two waits in flight cost little more than one.
    let (installed, staged) = std::thread::scope(|scope| {
        let staging = std::thread::Builder::new().spawn_scoped(scope, || update.stage(id));
        let installed = packfile::install(fs, &pack_dir, &pack);
        let staged = staging.ok().map(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| Err(Error::corrupt(path, "the branch-writing thread panicked")))
        });
        (installed, staged)
    });
    installed?;
    match staged {
        Some(staged) => staged?,
        // No thread to be had: stage it here.
        None => update.stage(id)?,
    }
    // Only now, with the pack durable, may the branch name it.
    update.publish(real, id)?;
    Ok(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_tiering::io::StdFs;

    fn entry(name: &str, mode: i32) -> Entry<'_> {
        Entry {
            name: name.as_bytes(),
            mode,
            id: Oid::zero(),
        }
    }

    proptest::proptest! {
        /// The order is git's definition: the names' bytes, a subtree's followed by `/`.
        #[test]
        fn git_order_is_the_order_of_names_with_a_slash_after_subtrees(
            a in "[-.0a]{0,4}",
            a_is_tree: bool,
            b in "[-.0a]{0,4}",
            b_is_tree: bool,
        ) {
            let mode = |tree: bool| if tree { MODE_TREE } else { MODE_BLOB };
            let spelled = |name: &str, tree: bool| {
                let mut bytes = name.as_bytes().to_vec();
                if tree {
                    bytes.push(b'/');
                }
                bytes
            };
            proptest::prop_assert_eq!(
                git_order(&entry(&a, mode(a_is_tree)), &entry(&b, mode(b_is_tree))),
                spelled(&a, a_is_tree).cmp(&spelled(&b, b_is_tree))
            );
        }
    }

    proptest::proptest! {
        /// Damaged tree bytes are an error, never a panic.
        #[test]
        fn any_bytes_parse_as_a_tree_or_fail_cleanly(raw in proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(b' '),
                proptest::strategy::Just(0u8), proptest::strategy::Just(b'1')],
            0..120,
        )) {
            let _ = parse_tree(Path::new("repo"), None, &raw);
        }
    }

    /// A tree written by libgit2: blobs `a0`, `a.b`, `z` and `extra`, and a subtree `a` (which
    /// git's order puts after `a.b`). Returns the blob's, the subtree's and the tree's ids.
    fn libgit2_tree(repo: &Repository, extra: &[(&str, i32)]) -> (Oid, Oid, Oid) {
        let blob = repo.blob(b"v").unwrap();
        let mut sub = repo.treebuilder(None).unwrap();
        sub.insert("k", blob, MODE_BLOB).unwrap();
        let sub = sub.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        for name in ["a0", "a.b", "z"] {
            root.insert(name, blob, MODE_BLOB).unwrap();
        }
        for (name, mode) in extra {
            root.insert(name, blob, *mode).unwrap();
        }
        root.insert("a", sub, MODE_TREE).unwrap();
        (blob, sub, root.write().unwrap())
    }

    #[test]
    fn parsed_trees_list_what_libgit2_reads_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let (_, _, id) = libgit2_tree(&repo, &[("run", 0o100_755)]);
        let raw = raw_tree(&repo, Some(id)).unwrap();
        let parsed = parse_tree(dir.path(), Some(id), &raw).unwrap();
        let mut expected: Vec<(Vec<u8>, i32, Oid)> = repo
            .find_tree(id)
            .unwrap()
            .iter()
            .map(|e| (e.name_bytes().to_vec(), e.filemode(), e.id()))
            .collect();
        expected.sort();
        let parsed: Vec<(Vec<u8>, i32, Oid)> = parsed
            .iter()
            .map(|e| (e.name.to_vec(), e.mode, e.id))
            .collect();
        assert_eq!(parsed, expected);
        // The same entries serialise back to the same tree.
        let mut entries = parse_tree(dir.path(), Some(id), &raw).unwrap();
        assert_eq!(tree_bytes(&mut entries), raw);

        for damaged in [
            &b"100644 name"[..],
            b"100644 name\0short",
            b"10x644 name\0aaaaaaaaaaaaaaaaaaaa",
            b" name\0aaaaaaaaaaaaaaaaaaaa",
            b"100644 \0aaaaaaaaaaaaaaaaaaaa",
            b"12345678 n\0aaaaaaaaaaaaaaaaaaaa",
        ] {
            let error = parse_tree(dir.path(), Some(id), damaged).unwrap_err();
            assert!(error.to_string().contains(&id.to_string()), "{error}");
        }
    }

    #[test]
    fn subtrees_sort_as_if_their_names_ended_in_a_slash() {
        let mut list = [
            entry("a0", MODE_BLOB),
            entry("a", MODE_TREE),
            entry("a.b", MODE_BLOB),
            entry("a", MODE_BLOB),
        ];
        list.sort_by(git_order);
        let names: Vec<(&[u8], i32)> = list.iter().map(|e| (e.name, e.mode)).collect();
        // "a" < "a.b" < "a/" < "a0"
        assert_eq!(
            names,
            vec![
                (&b"a"[..], MODE_BLOB),
                (&b"a.b"[..], MODE_BLOB),
                (&b"a"[..], MODE_TREE),
                (&b"a0"[..], MODE_BLOB),
            ]
        );
    }

    /// The hand-built tree and commit are byte for byte what libgit2 builds.
    #[test]
    fn trees_and_commits_match_libgit2s() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let (blob, sub, theirs) = libgit2_tree(&repo, &[]);
        let mut ours = vec![
            Entry {
                name: b"z",
                mode: MODE_BLOB,
                id: blob,
            },
            Entry {
                name: b"a",
                mode: MODE_TREE,
                id: sub,
            },
            Entry {
                name: b"a.b",
                mode: MODE_BLOB,
                id: blob,
            },
            Entry {
                name: b"a0",
                mode: MODE_BLOB,
                id: blob,
            },
        ];
        let bytes = tree_bytes(&mut ours);
        assert_eq!(Oid::hash_object(ObjectType::Tree, &bytes).unwrap(), theirs);

        let tree = repo.find_tree(theirs).unwrap();
        for offset in [0, 330, -480] {
            let time = git2::Time::new(1_700_000_000, offset);
            let signature = Signature::new("strata", "w@strata", &time).unwrap();
            let message = "strata: 3 changes\n\nStrata-Batch: 1-3\n";
            let parent = repo
                .commit(None, &signature, &signature, "first", &tree, &[])
                .unwrap();
            let parent_commit = repo.find_commit(parent).unwrap();
            let libgit2 = repo
                .commit_create_buffer(&signature, &signature, message, &tree, &[&parent_commit])
                .unwrap();
            let ours = commit_bytes(theirs, &[parent], &signature, message);
            assert_eq!(ours, libgit2.to_vec(), "offset {offset}");
        }
    }

    #[test]
    fn many_blobs_hashed_on_several_threads_get_the_ids_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let files: Vec<(String, Vec<u8>)> = (0..PARALLEL_FROM * 3 + 7)
            .map(|i| {
                (
                    format!("d{}/f{i}", i % 13),
                    format!("{{\"v\":{i}}}").into_bytes(),
                )
            })
            .collect();
        let mut parallel = Staging {
            real: &repo,
            blobs: HashMap::new(),
            edits: Dir::default(),
        };
        parallel.blobs_at(files.clone()).unwrap();
        let mut serial = Staging {
            real: &repo,
            blobs: HashMap::new(),
            edits: Dir::default(),
        };
        for (path, bytes) in &files {
            let id = serial.blob(bytes).unwrap();
            serial.upsert(path, id).unwrap();
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        let root_a = rebuild(&repo, None, &parallel.edits, true, &mut a).unwrap();
        let root_b = rebuild(&repo, None, &serial.edits, true, &mut b).unwrap();
        assert_eq!(root_a, root_b);
        assert_eq!(parallel.blobs, serial.blobs);
    }

    /// Edits over many directories (built on several threads), then removals that empty
    /// some of them, give the trees libgit2's own tree updater gives.
    #[test]
    fn rebuilt_trees_match_libgit2s_tree_updater() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"v").unwrap();
        let other = repo.blob(b"w").unwrap();
        let mut base = None;
        type Round = dyn Fn(usize) -> Option<(String, Option<Oid>)>;
        let rounds: [&Round; 2] = [
            &move |i| Some((format!("state/d{:03}/k{i}", i % 150), Some(blob))),
            &move |i| match i % 3 {
                0 => Some((format!("state/d{:03}/k{i}", i % 150), None)),
                1 => Some((format!("state/d{:03}/k{i}", i % 150), Some(other))),
                _ => (i % 150 < 40).then(|| (format!("state/d{:03}/k{i}", i % 150), None)),
            },
        ];
        for round in rounds {
            let mut stage = Staging {
                real: &repo,
                blobs: HashMap::new(),
                edits: Dir::default(),
            };
            let mut updater = git2::build::TreeUpdateBuilder::new();
            for i in 0..1200 {
                let Some((path, blob)) = round(i) else {
                    continue;
                };
                match blob {
                    Some(id) => {
                        stage.upsert(&path, id).unwrap();
                        updater.upsert(&path, id, git2::FileMode::Blob);
                    }
                    None => {
                        stage.remove(&path).unwrap();
                        updater.remove(&path);
                    }
                }
            }
            let mut objects = Vec::new();
            let ours = rebuild(&repo, base, &stage.edits, true, &mut objects).unwrap();
            let odb = repo.odb().unwrap();
            for (kind, _, bytes) in &objects {
                odb.write(*kind, bytes).unwrap();
            }
            let base_tree = match base {
                Some(id) => repo.find_tree(id).unwrap(),
                None => repo
                    .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                    .unwrap(),
            };
            let theirs = updater.create_updated(&repo, &base_tree).unwrap();
            assert_eq!(ours, Some(theirs));
            base = ours;
        }
    }

    /// Two directories that end up as the same tree give one object, not two: a pack with an
    /// object twice is unreadable.
    #[test]
    fn identical_subtrees_are_packed_once() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let signature = Signature::new("t", "t@t", &git2::Time::new(1, 0)).unwrap();
        let commit = NewCommit {
            parent: None,
            other_parents: &[],
            message: "m\n",
            signature: &signature,
        };
        let id = write_commit(&repo, &StdFs, &commit, |stage| {
            let blob = stage.blob(b"same")?;
            stage.upsert("a/x", blob)?;
            stage.upsert("b/x", blob)
        })
        .unwrap();
        let fresh = Repository::open_bare(dir.path()).unwrap();
        let tree = fresh.find_commit(id).unwrap().tree().unwrap();
        assert_eq!(
            tree.get_name("a").unwrap().id(),
            tree.get_name("b").unwrap().id()
        );
        repo::assert_fsck_clean(dir.path());
    }

    #[test]
    fn a_pack_never_holds_an_object_twice() {
        let id = Oid::hash_object(ObjectType::Blob, b"x").unwrap();
        let twice = [
            (ObjectType::Blob, id, &b"x"[..]),
            (ObjectType::Blob, id, &b"x"[..]),
        ];
        assert!(packfile::build(twice.into_iter()).is_err());
    }

    #[test]
    fn bad_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mut stage = Staging {
            real: &repo,
            blobs: HashMap::new(),
            edits: Dir::default(),
        };
        let id = stage.blob(b"x").unwrap();
        for path in ["", "a//b", "a/../b", "./a", "a/\0", "a/"] {
            assert!(stage.upsert(path, id).is_err(), "{path:?}");
        }
        stage.upsert("a/b", id).unwrap();
        // A blob the repository does not have cannot be named.
        let missing = Oid::hash_object(ObjectType::Blob, b"missing").unwrap();
        assert!(stage.upsert("a/c", missing).is_err());
    }
}
