//! Upkeep of the cold repository's packs: the automatic merge of small packs after commits,
//! and the full repack on request.

use crate::consolidate;
use crate::error::Result;
use crate::repo;
use crate::store::{ColdStore, State};

impl ColdStore {
    /// Packs every reachable object into one pack file, with deltas, and removes the others:
    /// the smallest the repository gets. It costs a delta search over every object, so the
    /// store never runs it on its own; commits only merge small packs (see `consolidate`).
    pub fn repack(&self) -> Result<repo::RepackReport> {
        let mut state = self.lock();
        let report = repo::repack(&*self.fs, &self.path)?;
        // The old handle may still map removed packs; a fresh one sees only the new pack.
        let old = std::mem::replace(&mut state.repo, repo::open_or_init(&self.path)?);
        state.reclaim.drop_later(old);
        state.packs = report.packs_after;
        Ok(report)
    }

    /// With `defer` set, commits no longer merge packs themselves; the caller runs
    /// [`Self::merge_packs`] when it suits it. A store that pushes right after committing (a
    /// CRITICAL write waits for that push) merges after the push, so the push never waits for
    /// a merge.
    pub fn defer_pack_merges(&self, defer: bool) {
        self.lock().defer_merges = defer;
    }

    /// Merges the smallest packs into one if there are more than `max_packs`: what a commit
    /// does after itself unless merges are deferred. A failure is reported through
    /// [`Self::fold_error`] (and the tier's health), as a commit's would be.
    pub fn merge_packs(&self) {
        let mut state = self.lock();
        self.maintain(&mut state);
    }

    /// Merges the smallest packs into one when a commit pushed the pack count past the bound.
    /// A failure leaves the packs in place (they are all valid, or damaged as they were), is
    /// reported like a failed fold, and is not retried until `max_packs` more packs exist.
    pub(crate) fn maintain(&self, state: &mut State) {
        if state.packs <= self.max_packs || state.packs < state.merge_retry_at {
            return;
        }
        let result =
            consolidate::consolidate(&*self.fs, &self.path, &state.repo).and_then(|report| {
                let old = std::mem::replace(&mut state.repo, repo::reopen(&self.path)?);
                state.reclaim.drop_later(old);
                state.packs = report.packs_after;
                Ok(())
            });
        match result {
            Ok(()) => {
                state.merge_retry_at = 0;
                state.merge_error = None;
            }
            Err(e) => {
                state.merge_error = Some(format!("repack: {e}"));
                state.merge_retry_at = state.packs + self.max_packs;
            }
        }
    }
}
