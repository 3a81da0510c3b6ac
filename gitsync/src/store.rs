//! The cold store: commits batches of changes as chunk files, folds chunks into `state/`, and
//! answers reads from the state tree with the unfolded chunks laid over it.
//!
//! ```text
//!   commit ──► chunks/<hlc>-<writer>.jsonl  (one file per batch; names never collide)
//!   more than keep_chunks chunk files ──► fold: newest version per key into state/, chunks removed
//!   get ──► newest of { unfolded chunk versions (in memory), state/<aa>/<bb>/<name> }
//!           older snapshots ──► the chunk files each commit added, walking history
//! ```
//!
//! Every commit carries trailers that make the head self-describing, so opening a store needs
//! nothing but the head commit:
//!
//! ```text
//! strata: 1000 changes, LSN 1-1000
//!
//! Strata-Batch: 1-1000          LSN range of this commit's changes (chunk commits)
//! Strata-Lsn: 1000              committed watermark: every change up to it is in the repository
//! Strata-State-Lsn: 0           highest LSN folded into state/
//! Strata-Hlc: 0001732233600000-000000
//! Strata-Writer: w5f3a9c21
//! Strata-Trigger: size          quiet | age | size | manual | apply | fold
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use git2::{FileMode, ObjectType, Oid, Repository, Signature, Time, Tree};
use strata_tiering::clock::Clock;
use strata_tiering::{Change, Entry, Key, KeyRange, Lsn, SeqNo};

use crate::codec::{self, Form};
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::names;
use crate::repo::{self, NewCommit};

/// File in the repository directory holding the committer's examined watermark.
const EXAMINED_FILE: &str = "strata-examined";

/// Settings of a [`ColdStore`].
#[derive(Debug, Clone)]
pub struct ColdOptions {
    /// Chunk files allowed before they are folded into `state/`. Default: 10.
    pub keep_chunks: usize,
    /// This writer's id in chunk names and trailers (letters and digits). Default: the id
    /// stored in the repository's config (`strata.writer`), or a new one saved there.
    pub writer_id: Option<String>,
    /// Pack files allowed before a commit repacks the repository into one. Default: 32.
    pub max_packs: usize,
}

impl Default for ColdOptions {
    fn default() -> Self {
        ColdOptions {
            keep_chunks: 10,
            writer_id: None,
            max_packs: 32,
        }
    }
}

/// What started a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// No new change for the quiet period.
    Quiet,
    /// The oldest pending change reached the maximum age.
    Age,
    /// The pending changes reached the maximum batch size.
    Size,
    /// `sync` was called.
    Manual,
    /// Changes were applied directly (the `Tier` interface).
    Apply,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Quiet => "quiet",
            Trigger::Age => "age",
            Trigger::Size => "size",
            Trigger::Manual => "manual",
            Trigger::Apply => "apply",
        }
    }
}

/// A commit made by [`ColdStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit (the fold commit, if one followed).
    pub id: Oid,
    /// Changes in the batch.
    pub changes: usize,
    /// Lowest and highest LSN of the batch.
    pub lsn_range: (Lsn, Lsn),
    /// True if the chunks were folded into `state/` right after.
    pub folded: bool,
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
}

/// The cold tier's repository and its in-memory view.
#[derive(Debug)]
pub struct ColdStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    keep_chunks: usize,
    max_packs: usize,
    writer: String,
    state: Mutex<State>,
}

struct State {
    repo: Repository,
    head: Option<Oid>,
    /// Versions in unfolded chunk files, oldest first per key.
    overlay: BTreeMap<Key, Vec<Entry>>,
    chunks: Vec<String>,
    watermark: Lsn,
    state_lsn: Lsn,
    hlc: Hlc,
    /// The last failure of a fold, shown by `health` until a fold succeeds.
    fold_error: Option<String>,
    /// Pack files on disk (each commit adds one).
    packs: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("head", &self.head)
            .field("chunks", &self.chunks.len())
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl ColdStore {
    /// Opens (creating if needed) the bare repository at `path`.
    pub fn open(
        path: impl AsRef<Path>,
        options: ColdOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<ColdStore> {
        let path = path.as_ref().to_owned();
        let repo = repo::open_or_init(&path)?;
        let writer = writer_id(&repo, options.writer_id.as_deref(), clock.now_ms())?;
        let head = repo::head(&repo)?;
        let mut state = State {
            repo,
            head,
            overlay: BTreeMap::new(),
            chunks: Vec::new(),
            watermark: 0,
            state_lsn: 0,
            hlc: Hlc::default(),
            fold_error: None,
            packs: repo::packs(&path)?.len(),
        };
        if let Some(head) = head {
            load_head(&path, &mut state, head)?;
        }
        Ok(ColdStore {
            path,
            clock,
            keep_chunks: options.keep_chunks.max(1),
            max_packs: options.max_packs.max(2),
            writer,
            state: Mutex::new(state),
        })
    }

    /// The repository's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This writer's id.
    pub fn writer_id(&self) -> &str {
        &self.writer
    }

    /// The committed watermark: every change up to this LSN is in the repository.
    pub fn committed_lsn(&self) -> Lsn {
        self.lock().watermark
    }

    /// How far the committer examined the log with nothing left pending (0 if never saved).
    pub fn examined_lsn(&self) -> Result<Lsn> {
        let path = self.path.join(EXAMINED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| Error::corrupt(&path, format!("not an LSN: {:?}", text.trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::Io {
                op: "read",
                path,
                source: e,
            }),
        }
    }

    /// Saves how far the log was examined with nothing left pending: written to a temporary
    /// file, fsynced, renamed, and the directory fsynced.
    pub fn record_examined(&self, lsn: Lsn) -> Result<()> {
        let path = self.path.join(EXAMINED_FILE);
        let temp = self.path.join(format!("{EXAMINED_FILE}.tmp"));
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { op, path, source }
        };
        let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
        std::io::Write::write_all(&mut file, format!("{lsn}\n").as_bytes())
            .map_err(io("write", &temp))?;
        file.sync_all().map_err(io("fsync", &temp))?;
        std::fs::rename(&temp, &path).map_err(io("rename", &temp))?;
        std::fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io("fsync", &self.path))
    }

    /// The head commit, if any.
    pub fn head(&self) -> Option<Oid> {
        self.lock().head
    }

    /// Unfolded chunk files.
    pub fn chunk_count(&self) -> usize {
        self.lock().chunks.len()
    }

    /// The last fold failure, if the latest fold did not succeed.
    pub fn fold_error(&self) -> Option<String> {
        self.lock().fold_error.clone()
    }

    /// Packs every reachable object into one pack file and removes the others.
    pub fn repack(&self) -> Result<repo::RepackReport> {
        let mut state = self.lock();
        self.repack_locked(&mut state)
    }

    fn repack_locked(&self, state: &mut State) -> Result<repo::RepackReport> {
        let report = repo::repack(&self.path)?;
        // The old handle may still map removed packs; a fresh one sees only the new pack.
        state.repo = repo::open_or_init(&self.path)?;
        state.packs = report.packs_after;
        Ok(report)
    }

    /// Repacks when a commit pushed the pack count past the bound. A failure leaves the extra
    /// packs in place (they are all valid) and is reported like a failed fold.
    fn maintain(&self, state: &mut State) {
        if state.packs > self.max_packs {
            if let Err(e) = self.repack_locked(state) {
                state.fold_error = Some(format!("repack: {e}"));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `changes` as one chunk file; `through` is the log position the commit covers
    /// (at least the highest LSN among the changes). Folds afterwards if there are more than
    /// `keep_chunks` chunk files. Returns `None` if there was nothing to commit.
    pub fn commit(
        &self,
        changes: &[Change],
        trigger: Trigger,
        through: Option<Lsn>,
    ) -> Result<Option<CommitInfo>> {
        let mut state = self.lock();
        let (Some(first), Some(last)) = (
            changes.iter().map(|c| c.entry.seqno).min(),
            changes.iter().map(|c| c.entry.seqno).max(),
        ) else {
            if let Some(through) = through {
                state.watermark = state.watermark.max(through);
            }
            return Ok(None);
        };
        let watermark = state.watermark.max(last).max(through.unwrap_or(0));
        let hlc = state.hlc.next(self.clock.now_ms());
        let name = format!("{hlc}-{}.jsonl", self.writer);
        let mut content = Vec::new();
        for change in changes {
            content.extend(codec::encode(
                Some(change.key.as_bytes()),
                &change.entry,
                Form::ChunkLine,
            )?);
            content.push(b'\n');
        }
        let message = format!(
            "strata: {} changes, LSN {first}-{last}\n\nStrata-Batch: {first}-{last}\n{}",
            changes.len(),
            self.trailers(watermark, state.state_lsn, hlc, trigger.as_str())
        );
        let signature = self.signature(hlc)?;
        let commit = NewCommit {
            parent: state.head,
            other_parents: &[],
            message: &message,
            signature: &signature,
        };
        let written = repo::write_commit(&self.path, &commit, |repo, updates, _| {
            let blob = repo
                .blob(&content)
                .map_err(|e| Error::git("write a chunk", e))?;
            updates.upsert(format!("chunks/{name}"), blob, FileMode::Blob);
            Ok(())
        });
        let id = match written {
            Ok(id) => id,
            Err(conflict @ Error::Conflict { .. }) => {
                // Someone else moved the branch: take in their commits so a retry builds on them.
                self.reload(&mut state)?;
                return Err(conflict);
            }
            Err(other) => return Err(other),
        };
        state.head = Some(id);
        state.packs += 1;
        state.watermark = watermark;
        state.hlc = hlc;
        state.chunks.push(name);
        for change in changes {
            add_version(&mut state.overlay, change.key.clone(), change.entry.clone());
        }
        let mut info = CommitInfo {
            id,
            changes: changes.len(),
            lsn_range: (first, last),
            folded: false,
        };
        if state.chunks.len() > self.keep_chunks {
            match self.fold(&mut state) {
                Ok(fold) => {
                    info.id = fold;
                    info.folded = true;
                    state.fold_error = None;
                }
                // The batch is committed either way; the chunks are folded by a later commit.
                Err(e) => state.fold_error = Some(e.to_string()),
            }
        }
        self.maintain(&mut state);
        Ok(Some(info))
    }

    /// Folds every chunk file into `state/` in one commit.
    fn fold(&self, state: &mut State) -> Result<Oid> {
        let head = state
            .head
            .ok_or_else(|| Error::corrupt(&self.path, "fold without a head"))?;
        let tree = head_tree(&state.repo, head)?;
        let mut edits: Vec<(String, Vec<u8>)> = Vec::new();
        let mut max_lsn = state.state_lsn;
        for (key, versions) in &state.overlay {
            let Some(newest) = versions.last() else {
                continue;
            };
            max_lsn = max_lsn.max(newest.seqno);
            if newest.seqno <= state.state_lsn {
                // Possible only when changes arrive out of order: keep what is newer.
                if let Some(current) = state_entry(&state.repo, &tree, key.as_bytes())? {
                    if current.seqno >= newest.seqno {
                        continue;
                    }
                }
            }
            // A deletion stays in state/ as a small `{"del":true,...}` document: it tells a
            // reader (and `git log -p`) when the key went, and shadows older versions.
            let path = names::state_path(key.as_bytes())?;
            let hashed = path.rsplit('/').next().is_some_and(names::is_hashed);
            let doc_key = hashed.then_some(key.as_bytes());
            edits.push((path, codec::encode(doc_key, newest, Form::StateBlob)?));
        }
        let hlc = state.hlc.next(self.clock.now_ms());
        let message = format!(
            "strata: fold {} chunks into state/ ({} keys)\n\n{}",
            state.chunks.len(),
            edits.len(),
            self.trailers(state.watermark, max_lsn, hlc, "fold")
        );
        let signature = self.signature(hlc)?;
        let commit = NewCommit {
            parent: Some(head),
            other_parents: &[],
            message: &message,
            signature: &signature,
        };
        let chunks = &state.chunks;
        let id = repo::write_commit(&self.path, &commit, |repo, updates, _| {
            for (path, bytes) in &edits {
                let blob = repo
                    .blob(bytes)
                    .map_err(|e| Error::git("write a state blob", e))?;
                updates.upsert(path.as_str(), blob, FileMode::Blob);
            }
            for chunk in chunks {
                updates.remove(format!("chunks/{chunk}"));
            }
            Ok(())
        })?;
        state.head = Some(id);
        state.packs += 1;
        state.hlc = hlc;
        state.state_lsn = max_lsn;
        state.overlay.clear();
        state.chunks.clear();
        Ok(id)
    }

    /// Re-reads the branch and everything derived from it.
    fn reload(&self, state: &mut State) -> Result<()> {
        state.overlay.clear();
        state.chunks.clear();
        state.head = repo::head(&state.repo)?;
        if let Some(head) = state.head {
            load_head(&self.path, state, head)?;
        }
        Ok(())
    }

    fn trailers(&self, watermark: Lsn, state_lsn: Lsn, hlc: Hlc, trigger: &str) -> String {
        format!(
            "Strata-Lsn: {watermark}\nStrata-State-Lsn: {state_lsn}\nStrata-Hlc: {hlc}\n\
             Strata-Writer: {}\nStrata-Trigger: {trigger}\n",
            self.writer
        )
    }

    fn signature(&self, hlc: Hlc) -> Result<Signature<'static>> {
        let time = Time::new((hlc.ms / 1000) as i64, 0);
        Signature::new("strata", &format!("{}@strata.invalid", self.writer), &time)
            .map_err(|e| Error::git("make a signature", e))
    }

    /// The newest version of `key` with seqno at most `snapshot`.
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        let state = self.lock();
        let tree = match state.head {
            Some(head) => Some(head_tree(&state.repo, head)?),
            None => None,
        };
        get_locked(&state, tree.as_ref(), key, snapshot)
    }

    /// The keys in `range` with their newest version at `snapshot`, tombstones included for
    /// keys deleted in unfolded chunks. Walks the whole state tree.
    pub fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<Vec<(Key, Entry)>> {
        let state = self.lock();
        let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let tree = match state.head {
            Some(head) => Some(head_tree(&state.repo, head)?),
            None => None,
        };
        if let Some(tree) = &tree {
            for_each_state_key(&state.repo, tree, |key| {
                if range.contains(&key) {
                    keys.insert(key);
                }
            })?;
        }
        keys.extend(
            state
                .overlay
                .keys()
                .filter(|k| range.contains(k.as_bytes()))
                .map(|k| k.as_bytes().to_vec()),
        );
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(entry) = get_locked(&state, tree.as_ref(), &key, snapshot)? {
                out.push((Key::new(&key)?, entry));
            }
        }
        Ok(out)
    }

    /// Every version of `key` ever committed, oldest first, with the commit that added it.
    pub fn history(&self, key: &[u8]) -> Result<Vec<Version>> {
        let state = self.lock();
        history_locked(&state, key)
    }
}

fn add_version(overlay: &mut BTreeMap<Key, Vec<Entry>>, key: Key, entry: Entry) {
    let versions = overlay.entry(key).or_default();
    match versions.binary_search_by_key(&entry.seqno, |e| e.seqno) {
        Ok(at) => versions[at] = entry,
        Err(at) => versions.insert(at, entry),
    }
}

/// The newest version of `key` at `snapshot`; `tree` is the head commit's tree, read once by
/// the caller so a scan does not re-read it for every key.
fn get_locked(
    state: &State,
    tree: Option<&Tree<'_>>,
    key: &[u8],
    snapshot: SeqNo,
) -> Result<Option<Entry>> {
    let from_chunks = state
        .overlay
        .get(key)
        .and_then(|versions| versions.iter().rev().find(|e| e.seqno <= snapshot))
        .cloned();
    let from_state = match tree {
        Some(tree) => state_entry(&state.repo, tree, key)?,
        None => None,
    };
    match (from_chunks, from_state) {
        (chunk, Some(current)) if current.seqno <= snapshot => Ok(Some(match chunk {
            Some(c) if c.seqno > current.seqno => c,
            _ => current,
        })),
        (Some(chunk), _) => Ok(Some(chunk)),
        // The state holds a version newer than the snapshot: only history knows older ones.
        (None, Some(_)) => older_version(state, key, snapshot),
        // Deletions stay in state/, so a key in neither place was never committed.
        (None, None) => Ok(None),
    }
}

fn older_version(state: &State, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
    Ok(history_locked(state, key)?
        .into_iter()
        .map(|v| v.entry)
        .filter(|e| e.seqno <= snapshot)
        .max_by_key(|e| e.seqno))
}

fn history_locked(state: &State, key: &[u8]) -> Result<Vec<Version>> {
    let mut versions = Vec::new();
    let mut next = state.head;
    while let Some(id) = next {
        let commit = state
            .repo
            .find_commit(id)
            .map_err(|e| Error::git(format!("read commit {id}"), e))?;
        let parent = commit.parent_ids().next();
        let tree = commit
            .tree()
            .map_err(|e| Error::git(format!("read the tree of {id}"), e))?;
        let before = match parent {
            Some(p) => Some(head_tree(&state.repo, p)?),
            None => None,
        };
        for (name, blob) in chunk_files(&state.repo, &tree)? {
            let known = before
                .as_ref()
                .is_some_and(|t| t.get_path(Path::new(&format!("chunks/{name}"))).is_ok());
            if known {
                continue;
            }
            for entry in parse_chunk(&state.repo, &name, blob)?
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, e)| e)
            {
                versions.push(Version {
                    entry,
                    commit: id,
                    time: commit.time().seconds(),
                });
            }
        }
        next = parent;
    }
    versions.sort_by_key(|v| v.entry.seqno);
    Ok(versions)
}

fn head_tree(repo: &Repository, id: Oid) -> Result<Tree<'_>> {
    repo.find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| Error::git(format!("read the tree of {id}"), e))
}

/// The version of `key` in `state/` of `tree`.
fn state_entry(repo: &Repository, tree: &Tree<'_>, key: &[u8]) -> Result<Option<Entry>> {
    let path = names::state_path(key)?;
    let entry = match tree.get_path(Path::new(&path)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(Error::git(format!("look up {path}"), e)),
    };
    let blob = repo
        .find_blob(entry.id())
        .map_err(|e| Error::git(format!("read {path}"), e))?;
    let (doc_key, value) =
        codec::decode(blob.content()).map_err(|detail| Error::corrupt(&path, detail))?;
    if doc_key.is_some_and(|k| k != key) {
        return Err(Error::corrupt(&path, "the blob names another key"));
    }
    Ok(Some(value))
}

/// Calls `visit` with every key in `state/` of `tree`.
fn for_each_state_key(
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
    for first in subtree(state.id())?.iter() {
        for second in subtree(first.id())?.iter() {
            for leaf in subtree(second.id())?.iter() {
                let name = leaf.name().unwrap_or_default();
                match names::unescape(name) {
                    Some(key) => visit(key),
                    None if names::is_hashed(name) => {
                        let blob = repo
                            .find_blob(leaf.id())
                            .map_err(|e| Error::git(format!("read {name}"), e))?;
                        match codec::decode(blob.content()) {
                            Ok((Some(key), _)) => visit(key),
                            _ => {
                                return Err(Error::corrupt(
                                    name,
                                    "a shortened name's blob has no key",
                                ))
                            }
                        }
                    }
                    None => return Err(Error::corrupt(name, "not a name this store writes")),
                }
            }
        }
    }
    Ok(())
}

/// The chunk files of `tree`, in name order, with their blob ids.
fn chunk_files(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<(String, Oid)>> {
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
fn parse_chunk(repo: &Repository, name: &str, blob: Oid) -> Result<Vec<(Vec<u8>, Entry)>> {
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
            Ok((Some(key), entry)) => changes.push((key, entry)),
            Ok((None, _)) => return Err(Error::corrupt(at(), "a change without a key")),
            Err(detail) => return Err(Error::corrupt(at(), detail)),
        }
    }
    Ok(changes)
}

/// Reads the head's trailers and unfolded chunks into `state`.
fn load_head(path: &Path, state: &mut State, head: Oid) -> Result<()> {
    let commit = state
        .repo
        .find_commit(head)
        .map_err(|e| Error::git(format!("read head {head}"), e))?;
    let message = commit.message().unwrap_or_default().to_owned();
    let number = |name: &str| -> Result<Lsn> {
        repo::trailer(&message, name)
            .ok_or_else(|| Error::corrupt(path, format!("head {head} has no {name} trailer")))?
            .parse()
            .map_err(|_| {
                Error::corrupt(path, format!("head {head} has a malformed {name} trailer"))
            })
    };
    state.watermark = number("Strata-Lsn")?;
    state.state_lsn = number("Strata-State-Lsn")?;
    state.hlc = repo::trailer(&message, "Strata-Hlc")
        .and_then(Hlc::parse)
        .unwrap_or_default();
    let tree = commit
        .tree()
        .map_err(|e| Error::git("read the head tree", e))?;
    for (name, blob) in chunk_files(&state.repo, &tree)? {
        for (key, entry) in parse_chunk(&state.repo, &name, blob)? {
            add_version(&mut state.overlay, Key::new(&key)?, entry);
        }
        state.chunks.push(name);
    }
    Ok(())
}

/// This store's writer id: given, or saved in the repository's config, or made and saved.
fn writer_id(repo: &Repository, given: Option<&str>, now_ms: u64) -> Result<String> {
    let valid = |id: &str| {
        !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if let Some(id) = given {
        if !valid(id) {
            return Err(Error::corrupt(
                repo.path(),
                format!("writer id {id:?} must be 1 to 32 letters or digits"),
            ));
        }
        return Ok(id.to_owned());
    }
    let mut config = repo.config().map_err(|e| Error::git("open config", e))?;
    if let Ok(id) = config.get_string("strata.writer") {
        if valid(&id) {
            return Ok(id);
        }
    }
    let seed = format!("{now_ms}-{}-{}", std::process::id(), repo.path().display());
    let id = format!("w{:08x}", crc32fast::hash(seed.as_bytes()));
    config
        .set_str("strata.writer", &id)
        .map_err(|e| Error::git("save the writer id", e))?;
    Ok(id)
}
