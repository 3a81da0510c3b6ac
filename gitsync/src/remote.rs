//! The remote tier: pushes the cold repository's branch to a git remote, verifies it there,
//! and merges what other writers pushed first.
//!
//! ```text
//!   poll ── due? (N commits since the last verified push, or a CRITICAL write debounced) ──┐
//!   push ◄──────────────────────────────────────────────────────────────────────────────────┘
//!     attempt (up to `attempts`, `retry_delay` apart):
//!       fetch remote branch ─► merge it in (chunks never conflict; state/ by stamp)
//!       push head, fast-forward only, naming the old value ─► lost a race? fetch, merge, again
//!       read the remote branch back ─► must be the head pushed (or contain it)
//!       pushed watermark := this writer's committed LSN at that head   (refs/strata/pushed)
//! ```
//!
//! The pushed watermark moves only after the remote was read back, so a push that the remote
//! did not take (down, refused by a hook, or reported refused only in the push status) is
//! never counted. The watermark survives restarts in the local ref `refs/strata/pushed`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use git2::{Oid, Repository};
use strata_tiering::clock::Clock;
use strata_tiering::Lsn;

use crate::error::{Error, Result};
use crate::merge::Integration;
use crate::repo;
use crate::store::{mark_shared, ColdOptions, ColdStore};
use crate::transport::{redact, Endpoint, Pushed, Transport};

/// Local reference to the last commit verified on the remote.
pub const PUSHED_REF: &str = "refs/strata/pushed";

/// Times one push may lose the race for the remote branch before giving up the attempt.
const MAX_RACES: u32 = 16;

/// Settings of a [`Remote`].
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The remote: a path, `file://`, `git://`, `ssh://`, `https://` or `host:path`.
    pub url: String,
    /// How to reach it. Default: by the URL.
    pub transport: Transport,
    /// Commits after which `poll` pushes. Default: 10.
    pub push_every: usize,
    /// How long `poll` waits after a CRITICAL write before pushing, to push several at once.
    /// Default: 200 ms.
    pub critical_debounce: Duration,
    /// Attempts per push. Default: 3.
    pub attempts: u32,
    /// Pause between attempts. Default: 2 s.
    pub retry_delay: Duration,
}

impl RemoteOptions {
    /// The defaults, for `url`.
    pub fn new(url: impl Into<String>) -> RemoteOptions {
        RemoteOptions {
            url: url.into(),
            transport: Transport::Auto,
            push_every: 10,
            critical_debounce: Duration::from_millis(200),
            attempts: 3,
            retry_delay: Duration::from_secs(2),
        }
    }
}

/// A verified push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The commit the remote's branch was verified to hold.
    pub head: Oid,
    /// This writer's committed watermark at that commit: the new pushed watermark.
    pub pushed_lsn: Lsn,
    /// Whether other writers' commits had to be merged first.
    pub merged: bool,
    /// Attempts used (1 when the first one succeeded).
    pub attempts: u32,
}

/// Counters of a [`Remote`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteMetrics {
    /// Verified pushes.
    pub pushes: u64,
    /// Attempts that failed (remote down, transfer failed, not verified).
    pub failed_attempts: u64,
    /// Pushes that gave up after every attempt, or were refused.
    pub failed_pushes: u64,
    /// Merges of other writers' commits.
    pub merges: u64,
    /// Races lost to another writer (each followed by a merge and a new push).
    pub races: u64,
}

/// The remote tier of one cold store.
#[derive(Debug)]
pub struct Remote {
    store: Arc<ColdStore>,
    endpoint: Endpoint,
    shown_url: String,
    options: RemoteOptions,
    clock: Arc<dyn Clock>,
    state: Mutex<PushState>,
}

#[derive(Debug, Default)]
struct PushState {
    pushed: Option<Oid>,
    pushed_lsn: Lsn,
    /// The highest CRITICAL LSN waiting to be pushed, and when the first of them arrived.
    critical: Option<(Lsn, u64)>,
    metrics: RemoteMetrics,
}

impl Remote {
    /// The remote tier for `store`, resuming from the pushed watermark saved in it.
    pub fn new(
        store: Arc<ColdStore>,
        options: RemoteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Remote> {
        let endpoint = Endpoint::new(&options.url, options.transport);
        let mut state = PushState::default();
        let repo = open(store.path())?;
        if let Some(pushed) = repo::head_of(&repo, PUSHED_REF)? {
            state.pushed = Some(pushed);
            state.pushed_lsn = store.committed_lsn_at(pushed)?;
        }
        Ok(Remote {
            shown_url: redact(&options.url),
            store,
            endpoint,
            options,
            clock,
            state: Mutex::new(state),
        })
    }

    /// The remote's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The pushed watermark: every change of this writer up to it is verified on the remote.
    pub fn pushed_lsn(&self) -> Lsn {
        self.lock().pushed_lsn
    }

    /// The last commit verified on the remote.
    pub fn pushed_head(&self) -> Option<Oid> {
        self.lock().pushed
    }

    /// The commit the remote's branch points at, asked of the remote itself: the health
    /// check of the remote tier.
    pub fn remote_head(&self) -> Result<Option<Oid>> {
        self.endpoint.remote_head()
    }

    /// Counters since this value was made.
    pub fn metrics(&self) -> RemoteMetrics {
        self.lock().metrics
    }

    /// Notes a CRITICAL write at `lsn`: `poll` pushes once it is committed and the debounce
    /// has passed.
    pub fn note_critical(&self, lsn: Lsn) {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        if lsn <= state.pushed_lsn {
            return;
        }
        state.critical = Some(match state.critical {
            Some((pending, since)) => (pending.max(lsn), since),
            None => (lsn, now),
        });
    }

    /// Whether a push is due: `push_every` commits since the last verified push, or a CRITICAL
    /// write committed and its debounce passed.
    pub fn due(&self) -> Result<bool> {
        let Some(head) = self.store.head() else {
            return Ok(false);
        };
        let state = self.lock();
        if state.pushed == Some(head) {
            return Ok(false);
        }
        if let Some((lsn, since)) = state.critical {
            let waited = self.clock.now_ms().saturating_sub(since);
            if self.store.committed_lsn() >= lsn
                && waited >= self.options.critical_debounce.as_millis() as u64
            {
                return Ok(true);
            }
        }
        let pushed = state.pushed;
        drop(state);
        Ok(commits_between(self.store.path(), pushed, head)? >= self.options.push_every.max(1))
    }

    /// Pushes if [`due`](Self::due).
    pub fn poll(&self) -> Result<Option<PushReport>> {
        if self.due()? {
            self.push().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Pushes the head and verifies it on the remote, merging other writers' commits first if
    /// needed; up to `attempts` tries, `retry_delay` apart. A refusal by the remote (a hook)
    /// is not retried.
    pub fn push(&self) -> Result<PushReport> {
        let attempts = self.options.attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                std::thread::sleep(self.options.retry_delay);
            }
            match self.push_once() {
                Ok(mut report) => {
                    report.attempts = attempt;
                    return Ok(report);
                }
                Err(refused @ Error::Rejected { .. }) => {
                    self.lock().metrics.failed_pushes += 1;
                    return Err(refused);
                }
                Err(e) => {
                    self.lock().metrics.failed_attempts += 1;
                    last = Some(e);
                }
            }
        }
        self.lock().metrics.failed_pushes += 1;
        Err(last.unwrap_or_else(|| Error::Remote {
            url: self.shown_url.clone(),
            op: "push".into(),
            detail: "no attempt was made".into(),
        }))
    }

    fn push_once(&self) -> Result<PushReport> {
        let local = self.store.path();
        let mut merged = false;
        for race in 0..MAX_RACES {
            let remote_tip = self.endpoint.fetch(local)?;
            if let Some(tip) = remote_tip {
                match self.store.integrate(tip) {
                    Ok(Integration::UpToDate) => {}
                    Ok(Integration::FastForward | Integration::Merged) => {
                        merged = true;
                        self.lock().metrics.merges += 1;
                    }
                    // The committer moved the branch meanwhile; the store re-read it.
                    Err(Error::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            let Some(head) = self.store.head() else {
                return Err(Error::Remote {
                    url: self.shown_url.clone(),
                    op: "push".into(),
                    detail: "nothing committed yet".into(),
                });
            };
            if remote_tip != Some(head) {
                match self.endpoint.push(local, remote_tip, head)? {
                    Pushed::Updated => {}
                    Pushed::Raced(_) => {
                        self.lock().metrics.races += 1;
                        back_off(race);
                        continue;
                    }
                    Pushed::Rejected(reason) => {
                        return Err(Error::Rejected {
                            url: self.shown_url.clone(),
                            commit: head.to_string(),
                            reason,
                        })
                    }
                }
            }
            self.verify(head)?;
            let pushed_lsn = self.store.committed_lsn_at(head)?;
            open(local)?
                .reference(PUSHED_REF, head, true, "strata: verified on the remote")
                .map_err(|e| Error::git("record the pushed head", e))?;
            let mut state = self.lock();
            state.pushed = Some(head);
            state.pushed_lsn = state.pushed_lsn.max(pushed_lsn);
            if state
                .critical
                .is_some_and(|(lsn, _)| lsn <= state.pushed_lsn)
            {
                state.critical = None;
            }
            state.metrics.pushes += 1;
            return Ok(PushReport {
                head,
                pushed_lsn: state.pushed_lsn,
                merged,
                attempts: 1,
            });
        }
        Err(Error::Remote {
            url: self.shown_url.clone(),
            op: "push".into(),
            detail: format!("lost the race for the remote branch {MAX_RACES} times"),
        })
    }

    /// Reads the remote's branch back: it must be `head`, or (another writer pushed right
    /// after) a commit that contains it.
    fn verify(&self, head: Oid) -> Result<()> {
        let found = self.endpoint.remote_head()?;
        if found == Some(head) {
            return Ok(());
        }
        let unverified = || Error::Unverified {
            url: self.shown_url.clone(),
            pushed: head.to_string(),
            found: found.map_or_else(|| "nothing".into(), |id| id.to_string()),
        };
        let Some(found) = found else {
            return Err(unverified());
        };
        let fetched = self.endpoint.fetch(self.store.path())?;
        let repo = open(self.store.path())?;
        let contains = fetched == Some(found)
            && repo
                .graph_descendant_of(found, head)
                .map_err(|e| Error::git("compare the remote head", e))?;
        if contains {
            Ok(())
        } else {
            Err(unverified())
        }
    }

    /// Fetches the remote's branch and merges it in. Returns the new head.
    pub fn pull(&self) -> Result<Option<Oid>> {
        for _ in 0..MAX_RACES {
            let Some(tip) = self.endpoint.fetch(self.store.path())? else {
                return Ok(self.store.head());
            };
            match self.store.integrate(tip) {
                Ok(Integration::UpToDate) => {}
                Ok(_) => self.lock().metrics.merges += 1,
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
            return Ok(self.store.head());
        }
        Err(Error::Remote {
            url: self.shown_url.clone(),
            op: "pull".into(),
            detail: format!("the branch kept moving during {MAX_RACES} merges"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PushState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates a cold store at `path` from a remote: the disaster-recovery path. The new store
/// has its own writer id; everything on the remote is readable through it at once.
pub fn clone_store(
    url: &str,
    transport: Transport,
    path: impl AsRef<Path>,
    options: ColdOptions,
    clock: Arc<dyn Clock>,
) -> Result<ColdStore> {
    let path = path.as_ref();
    let repo = repo::open_or_init(path)?;
    if repo::head(&repo)?.is_some() {
        return Err(Error::corrupt(
            path,
            "clone into a repository that already has commits",
        ));
    }
    mark_shared(&repo)?;
    let endpoint = Endpoint::new(url, transport);
    if let Some(tip) = endpoint.fetch(path)? {
        repo::move_branch(&*options.fs, &repo, None, tip)?;
        repo.reference(PUSHED_REF, tip, true, "strata: cloned")
            .map_err(|e| Error::git("record the pushed head", e))?;
    }
    drop(repo);
    ColdStore::open(path, options, clock)
}

/// Waits a little after losing a race, longer each time and by a varying amount, so writers
/// that keep colliding spread out instead of colliding again in step.
fn back_off(race: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 5_000);
    let micros = 1_000 * u64::from(race.min(10) + 1) + u64::from(jitter);
    std::thread::sleep(Duration::from_micros(micros));
}

fn open(path: &Path) -> Result<Repository> {
    Repository::open_bare(path).map_err(|e| Error::git(format!("open {}", path.display()), e))
}

/// Commits reachable from `head` but not from `base`.
fn commits_between(path: &Path, base: Option<Oid>, head: Oid) -> Result<usize> {
    let repo = open(path)?;
    let mut walk = repo.revwalk().map_err(|e| Error::git("start a walk", e))?;
    walk.push(head)
        .map_err(|e| Error::git("walk from the head", e))?;
    if let Some(base) = base {
        if repo.find_commit(base).is_ok() {
            walk.hide(base)
                .map_err(|e| Error::git("walk from the pushed head", e))?;
        }
    }
    Ok(walk.count())
}
