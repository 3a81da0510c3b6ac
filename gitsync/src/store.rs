//! The cold store: commits batches of changes as chunk files, folds chunks into `state/`, and
//! answers reads from the state tree with the unfolded chunks laid over it.
//!
//! ```text
//!   commit ──► chunks/<hlc>-<writer>.jsonl  (one file per batch; names never collide)
//!   more than keep_chunks chunk files ──► fold: newest version per key into state/, chunks removed
//!   get ──► newest of { unfolded chunk versions (in memory), state/<abc>/<name> }
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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use git2::{Oid, Repository, Signature, Time};
use strata_tiering::clock::Clock;
use strata_tiering::io::{Fs, StdFs};
use strata_tiering::{Change, Entry, Key, KeyRange, Lsn, SeqNo};

use crate::codec::{self, Form};
use crate::error::{Error, Result};
use crate::hlc::{Hlc, Stamp};
use crate::names;
use crate::parallel;
use crate::read::{self, Overlay, Stamped, View};
use crate::reclaim::Reclaimer;
use crate::repo::{self, NewCommit};

pub use crate::read::Version;

/// Batches of this many changes or more enter the overlay on a second thread while their
/// commit waits for the disk (a third of a millisecond for 1,000 changes).
const OVERLAY_ALONGSIDE_FROM: usize = 256;

/// A fold encodes its state documents on the calling thread below this many keys.
const PARALLEL_ENCODE_FROM: usize = 512;

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
    /// What writes the store's own files: the packs and indexes of commits and merges, their
    /// removal, the branch (and its lock), and the examined watermark. It must act on the
    /// repository's real files, which git reads; the default is the operating system's
    /// filesystem, and tests put a wrapper there that counts, fails or mirrors the operations.
    /// libgit2's own writes (the config, a clone's fetched pack) do not go through it.
    pub fs: Arc<dyn Fs>,
}

impl Default for ColdOptions {
    fn default() -> Self {
        ColdOptions {
            keep_chunks: 10,
            writer_id: None,
            max_packs: 32,
            fs: Arc::new(StdFs),
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
    /// Changes were applied directly (the `Tier` interface): entries archived from a warmer
    /// tier, not the log read in order, so such a commit leaves the watermark where it is.
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

/// The cold tier's repository and its in-memory view.
#[derive(Debug)]
pub struct ColdStore {
    pub(crate) path: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keep_chunks: usize,
    pub(crate) max_packs: usize,
    /// Writes the store's own files (see [`ColdOptions::fs`]).
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) writer: String,
    pub(crate) state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) repo: Repository,
    pub(crate) head: Option<Oid>,
    /// Versions in unfolded chunk files, oldest first per key.
    pub(crate) overlay: Overlay,
    pub(crate) chunks: Vec<String>,
    pub(crate) watermark: Lsn,
    pub(crate) state_lsn: Lsn,
    pub(crate) hlc: Hlc,
    /// The last failure of a fold, shown by `health` until a fold succeeds.
    pub(crate) fold_error: Option<String>,
    /// Pack files on disk (each commit adds one).
    pub(crate) packs: usize,
    /// After a failed merge of packs, the pack count at which the next one is tried: a damaged
    /// pack would otherwise fail a merge on every commit.
    pub(crate) merge_retry_at: usize,
    /// The latest merge of packs' failure, until a merge succeeds.
    pub(crate) merge_error: Option<String>,
    /// Whether commits leave merging packs to `merge_packs` (see `defer_pack_merges`).
    pub(crate) defer_merges: bool,
    /// Whether other writers' versions may be in the repository (set by a merge or a clone,
    /// remembered in the config): a fold must then compare every key with `state/`.
    pub(crate) shared: bool,
    /// Frees what commits let go of (see `reclaim`). Declared last, so it is dropped last.
    pub(crate) reclaim: Reclaimer,
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
        ColdStore::with_repository(path, repo, writer, options, clock)
    }

    /// Opens the existing repository at `path` for reading beside a writer, writing nothing to
    /// it: no stale lock is cleared, no setting or writer id saved, no damaged index rebuilt
    /// (a damaged one is an error). Reads work as on a store from [`Self::open`]; it must not
    /// be committed to.
    pub fn open_read_only(
        path: impl AsRef<Path>,
        options: ColdOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<ColdStore> {
        let path = path.as_ref().to_owned();
        let repo = repo::open_for_reading(&path)?;
        let saved = repo
            .config()
            .ok()
            .and_then(|c| c.get_string("strata.writer").ok());
        let writer = options
            .writer_id
            .clone()
            .or(saved)
            .unwrap_or_else(|| "reader".to_owned());
        ColdStore::with_repository(path, repo, writer, options, clock)
    }

    fn with_repository(
        path: PathBuf,
        repo: Repository,
        writer: String,
        options: ColdOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<ColdStore> {
        let head = repo::head(&repo)?;
        let mut state = State {
            repo,
            head,
            overlay: Overlay::new(),
            chunks: Vec::new(),
            watermark: 0,
            state_lsn: 0,
            hlc: Hlc::default(),
            fold_error: None,
            packs: repo::packs(&path)?.len(),
            merge_retry_at: 0,
            merge_error: None,
            defer_merges: false,
            shared: false,
            reclaim: Reclaimer::default(),
        };
        state.shared = is_shared(&state.repo);
        if let Some(head) = head {
            load_head(&path, &mut state, head, &writer)?;
        }
        Ok(ColdStore {
            path,
            clock,
            keep_chunks: options.keep_chunks.max(1),
            max_packs: options.max_packs.max(2),
            fs: options.fs,
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
        write_examined(&*self.fs, &self.path, lsn)
    }

    /// This writer's committed watermark as of commit `at` (0 if it has no commit of its own
    /// there).
    pub fn committed_lsn_at(&self, at: Oid) -> Result<Lsn> {
        let state = self.lock();
        Ok(read::own_marks(&state.repo, &self.path, at, &self.writer)?.committed)
    }

    /// The head commit, if any.
    pub fn head(&self) -> Option<Oid> {
        self.lock().head
    }

    /// Reads the head commit and its tree back from the object database: the health check
    /// of the cold tier. A store without commits passes.
    pub fn check(&self) -> Result<()> {
        let state = self.lock();
        if let Some(head) = state.head {
            read::commit_tree(&state.repo, head)?;
        }
        Ok(())
    }

    /// The commit a revision names: a full or abbreviated id, a ref, or an expression
    /// such as `main~2`.
    pub fn resolve(&self, revision: &str) -> Result<Oid> {
        let state = self.lock();
        let object = state
            .repo
            .revparse_single(revision)
            .map_err(|e| Error::git(format!("resolve {revision:?}"), e))?;
        let commit = object
            .peel_to_commit()
            .map_err(|e| Error::git(format!("{revision:?} is not a commit"), e))?;
        Ok(commit.id())
    }

    /// Unfolded chunk files.
    pub fn chunk_count(&self) -> usize {
        self.lock().chunks.len()
    }

    /// What the cold repository's upkeep last failed at: the latest fold if it failed, else
    /// the latest merge of packs if that failed (as `repack: ...`). Each clears when it next
    /// succeeds.
    pub fn fold_error(&self) -> Option<String> {
        let state = self.lock();
        state
            .fold_error
            .clone()
            .or_else(|| state.merge_error.clone())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `changes` as one chunk file; `through` is the log position the commit covers
    /// (at least the highest LSN among the changes, except for [`Trigger::Apply`], which
    /// covers only `through` if given). Folds afterwards if there are more than
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
        // An applied batch says nothing of the log positions before its LSNs: the committer
        // may still hold some of them, so the watermark must not pass them.
        let covered = match trigger {
            Trigger::Apply => through.unwrap_or(0),
            _ => through.unwrap_or(0).max(last),
        };
        let watermark = state.watermark.max(covered);
        let hlc = state.hlc.next(self.clock.now_ms());
        let name = format!("{hlc}-{}.jsonl", self.writer);
        let mut content = Vec::new();
        for change in changes {
            content.extend(codec::encode(
                Some(change.key.as_bytes()),
                &change.entry,
                Form::ChunkLine,
                None,
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
        let stamp = Stamp {
            hlc,
            writer: self.writer.clone(),
        };
        let add_versions = |overlay: &mut Overlay| {
            for change in changes {
                let version = Stamped {
                    stamp: stamp.clone(),
                    entry: change.entry.clone(),
                };
                read::add_version(overlay, change.key.clone(), version);
            }
        };
        let st: &mut State = &mut state;
        let (overlay, repo) = (&mut st.overlay, &st.repo);
        let write = || {
            repo::write_commit(repo, &*self.fs, &commit, |stage| {
                let blob = stage.blob(&content)?;
                stage.upsert(&format!("chunks/{name}"), blob)
            })
        };
        let (written, added) = if changes.len() >= OVERLAY_ALONGSIDE_FROM {
            // The batch's versions go into the overlay while the commit waits for the disk
            // (no reader sees the overlay before the commit returns: the state is locked).
            std::thread::scope(|scope| {
                let adding =
                    std::thread::Builder::new().spawn_scoped(scope, || add_versions(&mut *overlay));
                let written = write();
                let added = adding.is_ok_and(|thread| thread.join().is_ok());
                (written, added)
            })
        } else {
            (write(), false)
        };
        match &written {
            // Small batches, or no thread to be had: the versions go in now (adding one twice
            // replaces it with itself).
            Ok(_) if !added => add_versions(&mut st.overlay),
            Ok(_) => {}
            // Whatever went in for a failed commit comes out again, by its stamp.
            Err(_) => {
                read::remove_versions(&mut st.overlay, changes.iter().map(|c| &c.key), &stamp)
            }
        }
        let id = match written {
            Ok(id) => id,
            Err(conflict @ Error::Conflict { .. }) => {
                // Someone else moved the branch: take in their commits so a retry builds on them.
                self.reload(&mut state)?;
                return Err(conflict);
            }
            Err(other) => {
                // The branch may have moved even so (its rename done, its directory's fsync
                // failed): what is in memory follows the disk, so a retry neither conflicts
                // with this commit nor commits its changes twice (see `Committer`).
                let _ = self.reload(&mut state);
                return Err(other);
            }
        };
        state.head = Some(id);
        state.packs += 1;
        state.watermark = watermark;
        state.hlc = hlc;
        state.chunks.push(name);
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
                Err(e) => {
                    state.fold_error = Some(e.to_string());
                    // As for a failed commit: the fold's branch may have moved all the same.
                    let _ = self.reload(&mut state);
                }
            }
        }
        if !state.defer_merges {
            self.maintain(&mut state);
        }
        Ok(Some(info))
    }

    /// Folds every chunk file into `state/` in one commit.
    fn fold(&self, state: &mut State) -> Result<Oid> {
        let head = state
            .head
            .ok_or_else(|| Error::corrupt(&self.path, "fold without a head"))?;
        let tree = read::commit_tree(&state.repo, head)?;
        let mut newest_versions: Vec<(&Key, &Stamped)> = Vec::new();
        let mut max_lsn = state.state_lsn;
        for (key, versions) in &state.overlay {
            let Some(newest) = read::newest_of(versions) else {
                continue;
            };
            let own = newest.stamp.writer == self.writer;
            if own {
                max_lsn = max_lsn.max(newest.entry.seqno);
            }
            // Alone, this writer's versions reach state/ in LSN order, so a newer LSN is a
            // newer version; with others' versions about (or replays out of order), compare.
            if state.shared || !own || newest.entry.seqno <= state.state_lsn {
                let current =
                    read::state_version(&state.repo, &tree, key.as_bytes(), &self.writer)?;
                if current.is_some_and(|current| !newest.newer_than(&current)) {
                    continue;
                }
            }
            newest_versions.push((key, newest));
        }
        let mut edits: Vec<(String, Vec<u8>)> = Vec::with_capacity(newest_versions.len());
        let runs = parallel::in_runs(
            &newest_versions,
            PARALLEL_ENCODE_FROM,
            |run: &[(&Key, &Stamped)]| -> Result<Vec<(String, Vec<u8>)>> {
                run.iter()
                    .map(|(key, newest)| {
                        // A deletion stays in state/ as a small `{"del":true,...}` document:
                        // it tells a reader (and `git log -p`) when the key went, and shadows
                        // older versions.
                        let path = names::state_path(key.as_bytes())?;
                        let hashed = path.rsplit('/').next().is_some_and(names::is_hashed);
                        let doc_key = hashed.then_some(key.as_bytes());
                        let doc = codec::encode(
                            doc_key,
                            &newest.entry,
                            Form::StateBlob,
                            Some(&newest.stamp),
                        )?;
                        Ok((path, doc))
                    })
                    .collect()
            },
            || Err(Error::corrupt(&self.path, "an encoding thread panicked")),
        );
        for run in runs {
            edits.extend(run?);
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
        let id = repo::write_commit(&state.repo, &*self.fs, &commit, |stage| {
            stage.blobs_at(edits)?;
            for chunk in chunks {
                stage.remove(&format!("chunks/{chunk}"))?;
            }
            Ok(())
        })?;
        state.head = Some(id);
        state.packs += 1;
        state.hlc = hlc;
        state.state_lsn = max_lsn;
        let folded = std::mem::take(&mut state.overlay);
        state.reclaim.drop_later(folded);
        state.chunks.clear();
        Ok(id)
    }

    /// Re-reads the branch and everything derived from it.
    pub(crate) fn reload(&self, state: &mut State) -> Result<()> {
        state.overlay.clear();
        state.chunks.clear();
        state.head = repo::head(&state.repo)?;
        if let Some(head) = state.head {
            load_head(&self.path, state, head, &self.writer)?;
        }
        Ok(())
    }

    pub(crate) fn trailers(
        &self,
        watermark: Lsn,
        state_lsn: Lsn,
        hlc: Hlc,
        trigger: &str,
    ) -> String {
        format!(
            "Strata-Lsn: {watermark}\nStrata-State-Lsn: {state_lsn}\nStrata-Hlc: {hlc}\n\
             Strata-Writer: {}\nStrata-Trigger: {trigger}\n",
            self.writer
        )
    }

    pub(crate) fn signature(&self, hlc: Hlc) -> Result<Signature<'static>> {
        let time = Time::new((hlc.ms / 1000) as i64, 0);
        Signature::new("strata", &format!("{}@strata.invalid", self.writer), &time)
            .map_err(|e| Error::git("make a signature", e))
    }

    fn view<'s>(&'s self, state: &'s State) -> View<'s> {
        View {
            repo: &state.repo,
            own: &self.writer,
            overlay: &state.overlay,
            head: state.head,
        }
    }

    /// The newest version of `key` at `snapshot` (a position in this writer's log; versions
    /// merged in from other writers are visible at every snapshot).
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        let state = self.lock();
        let tree = match state.head {
            Some(head) => Some(read::commit_tree(&state.repo, head)?),
            None => None,
        };
        self.view(&state).get(tree.as_ref(), key, snapshot)
    }

    /// The keys in `range` with their newest version at `snapshot`, tombstones included.
    /// Walks the whole state tree.
    pub fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<Vec<(Key, Entry)>> {
        let state = self.lock();
        let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let tree = match state.head {
            Some(head) => Some(read::commit_tree(&state.repo, head)?),
            None => None,
        };
        if let Some(tree) = &tree {
            read::for_each_state_key(&state.repo, tree, |key| {
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
        let view = self.view(&state);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(entry) = view.get(tree.as_ref(), &key, snapshot)? {
                out.push((Key::new(&key)?, entry));
            }
        }
        Ok(out)
    }

    /// Every version of `key` ever committed, oldest first, with the commit that added it.
    pub fn history(&self, key: &[u8]) -> Result<Vec<Version>> {
        let state = self.lock();
        self.view(&state).history(key)
    }

    /// The newest version of `key` as the repository held it at a past commit or time; `None`
    /// when the key did not exist then (or the time is before the first commit).
    pub fn get_at(&self, key: &[u8], at: At) -> Result<Option<Entry>> {
        let state = self.lock();
        let Some(head) = state.head else {
            return Ok(None);
        };
        let commit = match at {
            At::Commit(id) => {
                let reachable = id == head
                    || state
                        .repo
                        .graph_descendant_of(head, id)
                        .map_err(|e| Error::git(format!("look for {id} in history"), e))?;
                if !reachable {
                    return Err(Error::corrupt(
                        &self.path,
                        format!("commit {id} is not in this store's history"),
                    ));
                }
                id
            }
            At::Time(seconds) => match read::commit_at_time(&state.repo, head, seconds)? {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        read::get_in_commit(&state.repo, &self.writer, commit, key)
    }
}

/// A point in the repository's past, for [`ColdStore::get_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// As of this commit.
    Commit(Oid),
    /// As of the newest commit made at or before this time, in seconds since the Unix epoch.
    Time(i64),
}

/// Config entry remembering that other writers' versions may be in the repository.
const SHARED_CONFIG: &str = "strata.shared";

fn is_shared(repo: &Repository) -> bool {
    repo.config()
        .and_then(|c| c.get_bool(SHARED_CONFIG))
        .unwrap_or(false)
}

/// Marks the repository as holding other writers' versions (before any of them arrive).
pub(crate) fn mark_shared(repo: &Repository) -> Result<()> {
    repo.config()
        .and_then(|mut c| c.set_bool(SHARED_CONFIG, true))
        .map_err(|e| Error::git("mark the repository shared", e))
}

/// Reads the head's unfolded chunks and this writer's watermarks into `state`.
fn load_head(path: &Path, state: &mut State, head: Oid, own: &str) -> Result<()> {
    let marks = read::own_marks(&state.repo, path, head, own)?;
    let tree = read::commit_tree(&state.repo, head)?;
    read::check_state_layout(&state.repo, &tree)?;
    let (overlay, chunks) = read::load_chunks(&state.repo, &tree)?;
    state.watermark = marks.committed;
    state.state_lsn = marks.folded;
    state.hlc = state.hlc.max(marks.hlc);
    for name in &chunks {
        if let Some(stamp) = Stamp::of_chunk(name) {
            state.hlc = state.hlc.max(stamp.hlc);
            state.shared |= stamp.writer != own;
        }
    }
    state.overlay = overlay;
    state.chunks = chunks;
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

/// Saves `lsn` as the examined watermark of the repository at `repo_path`.
pub(crate) fn write_examined(fs: &dyn Fs, repo_path: &Path, lsn: Lsn) -> Result<()> {
    let path = repo_path.join(EXAMINED_FILE);
    let temp = repo_path.join(format!("{EXAMINED_FILE}.tmp"));
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { op, path, source }
    };
    // A crash may have left the temporary file; it holds nothing anyone reads.
    match fs.remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &temp)(e)),
        _ => {}
    }
    let mut file = fs.create_new(&temp).map_err(io("create", &temp))?;
    file.append(format!("{lsn}\n").as_bytes())
        .map_err(io("write", &temp))?;
    file.sync_data().map_err(io("fsync", &temp))?;
    fs.rename(&temp, &path).map_err(io("rename", &temp))?;
    fs.sync_dir(repo_path).map_err(io("fsync", repo_path))
}
