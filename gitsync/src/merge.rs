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
use crate::hlc::Stamp;
use crate::read::{self, Stamped};

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
