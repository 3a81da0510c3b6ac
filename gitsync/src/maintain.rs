//! Background upkeep of the cold repository: repacking, fully or on top of the last full pack.

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::repo;
use crate::store::{ColdStore, State};

impl ColdStore {
    /// Packs every reachable object into one pack file and removes the others.
    pub fn repack(&self) -> Result<repo::RepackReport> {
        let mut state = self.lock();
        self.repack_locked(&mut state)
    }

    fn repack_locked(&self, state: &mut State) -> Result<repo::RepackReport> {
        self.repack_with(state, None)
    }

    /// A full repack (no `base`), or one of only what was written since `base`.
    fn repack_with(
        &self,
        state: &mut State,
        base: Option<&repo::BasePack>,
    ) -> Result<repo::RepackReport> {
        let head = state.head;
        let (report, name) = repo::repack_onto(&self.path, base)?;
        // The old handle may still map removed packs; a fresh one sees only the new pack.
        state.repo = repo::open_or_init(&self.path)?;
        state.packs = report.packs_after;
        if base.is_none() {
            let base = head
                .zip(name)
                .map(|(commit, name)| repo::BasePack { commit, name });
            save_base_pack(&state.repo, base.as_ref())?;
        }
        Ok(report)
    }

    /// Repacks when a commit pushed the pack count past the bound: only what was written
    /// since the last full repack while that holds fewer objects than the full pack,
    /// everything otherwise. A repack's cost follows its object count, so the full pack is
    /// rewritten only once the repository has doubled: each object is repacked a bounded
    /// number of times however large the repository grows. (Bytes would be the wrong measure:
    /// commit packs are stored uncompressed, a repacked one is compressed with deltas, and
    /// comparing them chose a full repack nearly every time.) A failure leaves the extra
    /// packs in place (they are all valid) and is reported like a failed fold.
    pub(crate) fn maintain(&self, state: &mut State) {
        if state.packs <= self.max_packs {
            return;
        }
        let result = (|| {
            let packs = repo::packs(&self.path)?;
            let base = load_base_pack(&state.repo).filter(|base| {
                packs
                    .iter()
                    .any(|(p, _)| p.file_stem().is_some_and(|s| s == base.name.as_str()))
                    && state.repo.find_commit(base.commit).is_ok()
            });
            let incremental = base.as_ref().filter(|base| {
                let (mut in_base, mut elsewhere) = (0u64, 0u64);
                for (pack, _) in &packs {
                    let objects = repo::pack_objects(pack);
                    if pack.file_stem().is_some_and(|s| s == base.name.as_str()) {
                        in_base += objects;
                    } else {
                        elsewhere += objects;
                    }
                }
                elsewhere < in_base
            });
            self.repack_with(state, incremental)
        })();
        if let Err(e) = result {
            state.fold_error = Some(format!("repack: {e}"));
        }
    }
}

/// Config entry naming the pack of the last full repack: `<commit> <pack name>`.
const BASE_PACK_CONFIG: &str = "strata.basepack";

fn load_base_pack(repo: &Repository) -> Option<repo::BasePack> {
    let text = repo.config().ok()?.get_string(BASE_PACK_CONFIG).ok()?;
    let (commit, name) = text.split_once(' ')?;
    Some(repo::BasePack {
        commit: Oid::from_str(commit).ok()?,
        name: name.to_owned(),
    })
}

fn save_base_pack(repo: &Repository, base: Option<&repo::BasePack>) -> Result<()> {
    let mut config = repo.config().map_err(|e| Error::git("open config", e))?;
    let result = match base {
        Some(base) => config.set_str(BASE_PACK_CONFIG, &format!("{} {}", base.commit, base.name)),
        None => match config.remove(BASE_PACK_CONFIG) {
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(()),
            other => other,
        },
    };
    result.map_err(|e| Error::git("record the base pack", e))
}
