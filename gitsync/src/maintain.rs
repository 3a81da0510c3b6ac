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
    /// since the last full repack while that is smaller than the full pack, everything
    /// otherwise, so the work per change stays bounded as the repository grows. A failure
    /// leaves the extra packs in place (they are all valid) and is reported like a failed fold.
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
            let size_of = |name: &str| {
                packs
                    .iter()
                    .filter(|(p, _)| p.file_stem().is_some_and(|s| s == name))
                    .map(|(_, len)| *len)
                    .sum::<u64>()
            };
            let incremental = base.as_ref().filter(|base| {
                let total: u64 = packs.iter().map(|(_, len)| len).sum();
                let base_bytes = size_of(&base.name);
                total - base_bytes < base_bytes
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
