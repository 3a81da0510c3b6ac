//! Merging another writer's history into this one, deterministically.
//!
//! ```text
//!            base ──── ours      (this writer's head)
//!               \
//!                ───── theirs    (the remote's head)
//!
//!   path changed on one side only      → that side's blob
//!   chunks/<stamp>.jsonl               → never changed on both sides: names are unique per writer
//!                                        and a chunk is only ever added, then removed by a fold
//!   state/… changed on both sides      → the newer version: by LSN within one writer, else by
//!                                        (hybrid logical clock, writer id) of its origin
//! ```
//!
//! Every rule is symmetric, so merging A into B gives the same tree as merging B into A, and
//! every replica converges on the same state whoever merges first.

use std::collections::HashMap;

use git2::{Delta, Oid, Repository, Tree};

use crate::error::{Error, Result};
use crate::hlc::{Hlc, Stamp};
use crate::read::{self, Stamped};
use crate::repo::{self, NewCommit};
use crate::store::{mark_shared, ColdStore};

/// One edit to this writer's tree: set `path` to a blob, or remove it.
pub(crate) type Edit = (String, Option<Oid>);

/// The edits that turn `ours` (a tree) into the merge of `ours` and `theirs` over `base`.
pub(crate) fn plan(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    ours: &Tree<'_>,
    theirs: &Tree<'_>,
) -> Result<Vec<Edit>> {
    let our_changes: HashMap<String, Option<Oid>> =
        changes(repo, base, ours)?.into_iter().collect();
    let mut edits = Vec::new();
    for (path, their_blob) in changes(repo, base, theirs)? {
        if let (Some(rest), Some(blob)) = (path.strip_prefix("state/"), their_blob) {
            check_state_path(repo, &path, rest, blob)?;
        }
        match our_changes.get(&path) {
            None => edits.push((path, their_blob)),
            Some(our_blob) if *our_blob == their_blob => {}
            Some(our_blob) => {
                if !path.starts_with("state/") {
                    return Err(Error::corrupt(
                        &path,
                        "changed differently on both sides of a merge; chunk files are only ever \
                         added and folded",
                    ));
                }
                let winner = resolve(repo, &path, *our_blob, their_blob)?;
                if winner != *our_blob {
                    edits.push((path, winner));
                }
            }
        }
    }
    Ok(edits)
}

/// Refuses a `state/` file from the other side that is not where this layout puts its key
/// (`state/<bucket>/<name>`, the bucket from the key's CRC32): merged in, it could never be
/// found by its path, and a fold would write the key a second time elsewhere.
fn check_state_path(repo: &Repository, path: &str, rest: &str, blob: Oid) -> Result<()> {
    let misplaced = |detail: &str| Err(Error::corrupt(path, detail.to_owned()));
    let Some((bucket, name)) = rest.split_once('/') else {
        return misplaced("a state/ file outside any bucket");
    };
    if name.contains('/') {
        return misplaced("a state/ file nested deeper than one bucket");
    }
    read::placed_key(repo, path, bucket, name, blob).map(drop)
}

/// The files that differ from `base` to `side`: each path with its new blob, or `None` if it
/// was removed.
fn changes(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    side: &Tree<'_>,
) -> Result<Vec<(String, Option<Oid>)>> {
    let diff = repo
        .diff_tree_to_tree(base, Some(side), None)
        .map_err(|e| Error::git("compare trees for a merge", e))?;
    let mut out = Vec::new();
    for delta in diff.deltas() {
        let file = match delta.status() {
            Delta::Deleted => delta.old_file(),
            _ => delta.new_file(),
        };
        let Some(path) = file.path().and_then(|p| p.to_str()) else {
            return Err(Error::corrupt(
                "merge",
                "a tree entry whose name is not UTF-8",
            ));
        };
        let blob = match delta.status() {
            Delta::Deleted => None,
            _ => Some(file.id()),
        };
        out.push((path.to_owned(), blob));
    }
    Ok(out)
}

/// The newer of two versions of one state blob. A present blob beats a removed one (state
/// blobs are never removed; deletions are documents), and equal versions fall back to the
/// blob id so that the choice never depends on which side is "ours".
fn resolve(repo: &Repository, path: &str, a: Option<Oid>, b: Option<Oid>) -> Result<Option<Oid>> {
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(a.or(b));
    };
    let version = |id: Oid| -> Result<Stamped> {
        let doc = read::decode_blob(repo, id, path)?;
        Ok(Stamped {
            stamp: doc.at.unwrap_or_else(Stamp::default),
            entry: doc.entry,
        })
    };
    let (va, vb) = (version(a)?, version(b)?);
    Ok(Some(if vb.newer_than(&va) {
        b
    } else if va.newer_than(&vb) {
        a
    } else {
        a.max(b)
    }))
}

/// How [`ColdStore::integrate`] took in another writer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Integration {
    /// This history already contained it.
    UpToDate,
    /// The branch moved forward to it.
    FastForward,
    /// A merge commit joins the two.
    Merged,
}

impl ColdStore {
    /// Takes in another writer's head `theirs`, whose objects are already in the repository:
    /// nothing to do if this history contains it, a fast-forward if it contains this history,
    /// otherwise a merge commit (see [`merge`](crate::merge)). A lost race for the branch is
    /// [`Error::Conflict`], after which the store has re-read the branch.
    pub(crate) fn integrate(&self, theirs: Oid) -> Result<Integration> {
        let mut state = self.lock();
        let contains = |repo: &Repository, child: Oid, ancestor: Oid| {
            repo.graph_descendant_of(child, ancestor)
                .map_err(|e| Error::git(format!("compare {child} with {ancestor}"), e))
        };
        if let Some(ours) = state.head {
            if ours == theirs || contains(&state.repo, ours, theirs)? {
                return Ok(Integration::UpToDate);
            }
        }
        // From here on, other writers' versions are in the repository for good.
        if !state.shared {
            mark_shared(&state.repo)?;
            state.shared = true;
        }
        let ours = match state.head {
            Some(ours) if !contains(&state.repo, theirs, ours)? => ours,
            from => {
                let moved = repo::move_branch(&*self.fs, &state.repo, from, theirs);
                self.reload(&mut state)?;
                moved?;
                return Ok(Integration::FastForward);
            }
        };
        let edits = {
            let repo = &state.repo;
            let base = match repo.merge_base(ours, theirs) {
                Ok(base) => Some(read::commit_tree(repo, base)?),
                Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                Err(e) => {
                    let op = format!("find the merge base of {ours} and {theirs}");
                    return Err(Error::git(op, e));
                }
            };
            let our_tree = read::commit_tree(repo, ours)?;
            let their_tree = read::commit_tree(repo, theirs)?;
            plan(repo, base.as_ref(), &our_tree, &their_tree)?
        };
        let their_message = read::find_commit(&state.repo, theirs)?
            .message()
            .unwrap_or_default()
            .to_owned();
        let their_hlc = repo::trailer(&their_message, "Strata-Hlc")
            .and_then(Hlc::parse)
            .unwrap_or_default();
        let hlc = state.hlc.max(their_hlc).next(self.clock.now_ms());
        let message = format!(
            "strata: merge {theirs}\n\n{}",
            self.trailers(state.watermark, state.state_lsn, hlc, "merge")
        );
        let signature = self.signature(hlc)?;
        let commit = NewCommit {
            parent: Some(ours),
            other_parents: &[theirs],
            message: &message,
            signature: &signature,
        };
        let written = repo::write_commit(&state.repo, &*self.fs, &commit, |stage| {
            for (path, blob) in &edits {
                match blob {
                    Some(id) => stage.upsert(path, *id)?,
                    None => stage.remove(path)?,
                }
            }
            Ok(())
        });
        if written.is_ok() {
            state.packs += 1;
        }
        // Either way the branch and the overlay are re-read: after a merge the overlay holds
        // the other writer's unfolded chunks, after a lost race whatever won.
        self.reload(&mut state)?;
        state.hlc = state.hlc.max(hlc);
        written.map(|_| Integration::Merged)
    }
}
