//! Operator tasks: checking a store end to end, and creating one from its remote.

use std::sync::Arc;

use strata_gitsync::ColdOptions;
use strata_wal::Log;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::open::{StoreBuilder, COLD_DIR};
use crate::store::Store;

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// WAL records read back.
    pub wal_records: u64,
    /// Live warm segments checked block by block.
    pub segments: usize,
    /// Cold commits and objects read back and re-hashed.
    pub cold_commits: usize,
    /// Cold objects re-hashed.
    pub cold_objects: usize,
    /// Every problem found, one line each, naming the file or object.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Reads back everything the store keeps on disk: every WAL record (checking its CRC),
    /// every block of every warm segment (quarantining damaged ones), and every object of the
    /// cold repository's history (re-hashing it). Problems are collected, not returned as
    /// errors, so one report names all of them.
    pub fn verify(&self) -> Result<VerifyReport> {
        let inner = &self.inner;
        let mut report = VerifyReport::default();
        if let Some(damage) = &inner.recovery.wal_damage {
            report
                .problems
                .push(format!("wal: damage cut at open: {damage}"));
        }
        let oldest = inner.wal.files().first().map(|(lsn, _)| *lsn);
        if inner.read_only {
            // The log on disk is the writer's; it is read where it lies.
            let max = strata_wal::WalOptions::default().max_record_len;
            match strata_wal::read_dir(&strata_wal::StdFs, &inner.dir.join("wal"), 0, max) {
                Ok((_, records)) => count_records(Box::new(records), &mut report),
                Err(e) => report.problems.push(format!("wal: {e}")),
            }
        } else if let Some(oldest) = oldest {
            match inner.wal.read_from(oldest) {
                Ok(records) => count_records(records, &mut report),
                Err(e) => report.problems.push(format!("wal: {e}")),
            }
        }
        report.segments = inner.warm.segments().len();
        match inner.warm.verify() {
            Ok(_) => {}
            Err(e) => report.problems.push(format!("warm: {e}")),
        }
        for segment in inner.warm.quarantined() {
            report.problems.push(format!(
                "warm: segment {} ({}) is quarantined: {}",
                segment.id,
                segment.path.display(),
                segment.reason
            ));
        }
        match inner.cold.store().verify() {
            Ok(cold) => {
                report.cold_commits = cold.commits;
                report.cold_objects = cold.objects;
            }
            Err(e) => report.problems.push(format!("cold: {e}")),
        }
        Ok(report)
    }
}

fn count_records(records: strata_wal::LogIter, report: &mut VerifyReport) {
    for record in records {
        match record {
            Ok(_) => report.wal_records += 1,
            Err(e) => {
                report.problems.push(format!("wal: {e}"));
                break;
            }
        }
    }
}

impl StoreBuilder {
    /// Creates a store in the builder's directory from the remote at `url`: the cold
    /// repository is fetched, and every key it holds is readable at once (through the cold
    /// tier) under a new writer id. The directory must not hold a store already.
    pub fn clone_from(self, url: &str) -> Result<Store> {
        let dir = self.dir().to_owned();
        if dir.join(crate::config::CONFIG_FILE).exists() || dir.join(COLD_DIR).exists() {
            return Err(Error::Config {
                path: dir,
                detail: "a store already exists here; clone into a new directory".into(),
            });
        }
        strata_wal::io::create_private_dir_all(&dir).map_err(|source| Error::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        let mut config = self.chosen_config()?.unwrap_or_default();
        config.remote = Some(url.to_owned());
        config.writer_id = None;
        let lock = crate::lock::DirLock::acquire(&dir)?;
        strata_gitsync::clone_store(
            url,
            self.chosen_transport(),
            dir.join(COLD_DIR),
            ColdOptions {
                keep_chunks: config.keep_chunks,
                ..ColdOptions::default()
            },
            Arc::clone(self.chosen_clock()),
        )?;
        drop(lock);
        self.config(config).open()
    }
}

/// The stored configuration of `dir`, for commands that must not create a store.
pub fn stored_config(dir: &std::path::Path) -> Result<Config> {
    Config::load(dir)?.ok_or_else(|| Error::Config {
        path: dir.to_owned(),
        detail: "no store here (create one with `strata init`)".into(),
    })
}
