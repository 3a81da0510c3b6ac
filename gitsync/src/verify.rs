//! Checking the whole repository: every object reachable from the branch is read back and
//! its id recomputed from its content, so damage anywhere in its history is found and named.
//!
//! Reads on the hot path skip libgit2's hash check (the object store is ours and packs carry
//! checksums); an explicit verification is where the cost is worth paying.

use std::collections::HashSet;

use git2::{ObjectType, Oid, Repository};

use crate::error::{Error, Result};
use crate::store::ColdStore;

/// What [`ColdStore::verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Commits read.
    pub commits: usize,
    /// Objects read and re-hashed, commits included.
    pub objects: usize,
}

impl ColdStore {
    /// Reads every commit, tree and blob reachable from the head and checks each one's id
    /// against its content. The first damaged or missing object is the error.
    pub fn verify(&self) -> Result<VerifyReport> {
        let state = self.lock();
        let mut report = VerifyReport::default();
        let Some(head) = state.head else {
            return Ok(report);
        };
        let repo = &state.repo;
        let odb = repo
            .odb()
            .map_err(|e| Error::git("open the object database", e))?;
        let mut seen = HashSet::new();
        let mut walk = repo.revwalk().map_err(|e| Error::git("start a walk", e))?;
        walk.push(head)
            .map_err(|e| Error::git("walk from the head", e))?;
        for commit in walk {
            let commit = commit.map_err(|e| Error::git("walk the history", e))?;
            report.commits += 1;
            let mut pending = vec![commit];
            while let Some(id) = pending.pop() {
                if !seen.insert(id) {
                    continue;
                }
                let object = odb
                    .read(id)
                    .map_err(|e| Error::git(format!("read object {id}"), e))?;
                let kind = object.kind();
                let data = object.data();
                let actual = Oid::hash_object(kind, data)
                    .map_err(|e| Error::git(format!("hash object {id}"), e))?;
                if actual != id {
                    return Err(Error::corrupt(
                        self.path(),
                        format!("object {id} holds content whose id is {actual}"),
                    ));
                }
                report.objects += 1;
                children(repo, id, kind, &mut pending)?;
            }
        }
        Ok(report)
    }
}

/// The objects `id` points at: a commit's tree (its parents come from the walk), a tree's
/// entries.
fn children(repo: &Repository, id: Oid, kind: ObjectType, into: &mut Vec<Oid>) -> Result<()> {
    match kind {
        ObjectType::Commit => {
            let commit = repo
                .find_commit(id)
                .map_err(|e| Error::git(format!("parse commit {id}"), e))?;
            into.push(commit.tree_id());
        }
        ObjectType::Tree => {
            let tree = repo
                .find_tree(id)
                .map_err(|e| Error::git(format!("parse tree {id}"), e))?;
            // Submodule entries (commits) are never written by this store; skip them rather
            // than chase an object that is not here.
            into.extend(
                tree.iter()
                    .filter(|entry| entry.kind() != Some(ObjectType::Commit))
                    .map(|entry| entry.id()),
            );
        }
        _ => {}
    }
    Ok(())
}
