//! The store's settings: defaults, validation, and the file they are kept in.
//!
//! Every setting has a default (the "Recommended Configuration" the design follows), so a
//! TOML file needs only the settings it changes:
//!
//! ```toml
//! remote = "/srv/backup/tasks.git"
//! commit_quiet_secs = 2
//! wal_sync = "always"
//! ```
//!
//! The store keeps its configuration in `<dir>/config.json`, written by temporary file, fsync
//! and rename; an open without a configuration uses the stored one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// Name of the stored configuration in the store directory.
pub const CONFIG_FILE: &str = "config.json";

/// Every setting of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bytes of the hot cache (LOW writes and promoted reads). Default: 256 MiB.
    pub hot_capacity_bytes: u64,
    /// Whether values read from warm segments are copied into the hot cache, as values read
    /// from cold always are. Default: false, as the page cache already keeps the
    /// memory-mapped segments' bytes in memory (see `RouterConfig::promote_from_warm`).
    pub promote_warm_reads: bool,
    /// Bytes of warm segments before the oldest entries are archived to cold. Default: 2 GiB.
    pub warm_capacity_bytes: u64,
    /// Seconds between archival passes, which move warm entries past their TTL (or the
    /// oldest, while warm is over `warm_capacity_bytes`) to cold. Default: 600.
    pub archive_interval_secs: u64,
    /// Memtable bytes that trigger a flush to warm. Default: 64 MiB.
    pub memtable_flush_bytes: u64,
    /// Memtable entries that trigger a flush to warm. Default: 10,000.
    pub memtable_flush_items: u64,
    /// When a durable write is acknowledged: `always` (fsync first, group-committed),
    /// `interval:<ms>`, or `never` (left to the OS). Default: `always`.
    pub wal_sync: String,
    /// A cold commit starts after this long without a new change. Default: 5 s.
    pub commit_quiet_secs: u64,
    /// ... or when the oldest pending change is this old. Default: 60 s.
    pub commit_max_age_secs: u64,
    /// ... or when this many bytes of changes are pending. Default: 10 MiB.
    pub commit_max_bytes: u64,
    /// Chunk files kept before folding into `state/`. Default: 10.
    pub keep_chunks: usize,
    /// The git remote of the remote tier, if any (credentials are never stored; use a
    /// credential helper or ssh settings).
    pub remote: Option<String>,
    /// Cold commits between pushes. Default: 10.
    pub push_every: usize,
    /// Attempts per push. Default: 3.
    pub push_attempts: u32,
    /// Seconds between push attempts. Default: 2.
    pub push_retry_secs: u64,
    /// Milliseconds a CRITICAL write waits for others to join its commit and push. Default: 200.
    pub critical_debounce_ms: u64,
    /// Failures that open a tier's circuit breaker. Default: 5.
    pub breaker_failures: u32,
    /// Successes in half-open that close it. Default: 2.
    pub breaker_successes: u32,
    /// Seconds an open breaker waits before trying again. Default: 60.
    pub breaker_open_secs: u64,
    /// Items of the fallback cache used while degraded. Default: 1,000.
    pub fallback_cache_items: usize,
    /// Writes the replay queue holds while degraded. Default: 10,000.
    pub replay_queue_items: usize,
    /// Seconds between health checks. Default: 30.
    pub health_check_secs: u64,
    /// This store's writer id in the cold repository (letters and digits). Default: one made
    /// when the repository is created.
    pub writer_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hot_capacity_bytes: 256 * MIB,
            promote_warm_reads: false,
            warm_capacity_bytes: 2048 * MIB,
            archive_interval_secs: 600,
            memtable_flush_bytes: 64 * MIB,
            memtable_flush_items: 10_000,
            wal_sync: "always".into(),
            commit_quiet_secs: 5,
            commit_max_age_secs: 60,
            commit_max_bytes: 10 * MIB,
            keep_chunks: 10,
            remote: None,
            push_every: 10,
            push_attempts: 3,
            push_retry_secs: 2,
            critical_debounce_ms: 200,
            breaker_failures: 5,
            breaker_successes: 2,
            breaker_open_secs: 60,
            fallback_cache_items: 1_000,
            replay_queue_items: 10_000,
            health_check_secs: 30,
            writer_id: None,
        }
    }
}

/// How the WAL syncs, parsed from [`Config::wal_sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// Every acknowledged durable write is fsynced first.
    Always,
    /// fsync at most this many milliseconds after a write.
    IntervalMs(u64),
    /// Left to the operating system.
    Never,
}

impl Config {
    /// Reads a TOML file; settings it leaves out keep their defaults.
    pub fn from_toml_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            Error::Config { detail, .. } => Error::Config {
                path: path.to_owned(),
                detail,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: "TOML".into(),
            detail: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The parsed sync policy.
    pub fn wal_sync(&self) -> Result<WalSync> {
        match self.wal_sync.as_str() {
            "always" => Ok(WalSync::Always),
            "never" => Ok(WalSync::Never),
            other => other
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse().ok())
                .filter(|&ms| ms > 0)
                .map(WalSync::IntervalMs)
                .ok_or_else(|| {
                    invalid(
                        "wal_sync",
                        format!("{other:?} is not always, never or interval:<ms>"),
                    )
                }),
        }
    }

    /// Checks every setting; the first bad one is named in the error.
    pub fn validate(&self) -> Result<()> {
        self.wal_sync()?;
        let positive = [
            ("hot_capacity_bytes", self.hot_capacity_bytes),
            ("warm_capacity_bytes", self.warm_capacity_bytes),
            ("archive_interval_secs", self.archive_interval_secs),
            ("memtable_flush_bytes", self.memtable_flush_bytes),
            ("memtable_flush_items", self.memtable_flush_items),
            ("commit_max_bytes", self.commit_max_bytes),
            ("keep_chunks", self.keep_chunks as u64),
            ("push_every", self.push_every as u64),
            ("push_attempts", u64::from(self.push_attempts)),
            ("breaker_failures", u64::from(self.breaker_failures)),
            ("breaker_successes", u64::from(self.breaker_successes)),
            ("fallback_cache_items", self.fallback_cache_items as u64),
            ("replay_queue_items", self.replay_queue_items as u64),
            ("health_check_secs", self.health_check_secs),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(name, "must be at least 1".into()));
        }
        if let Some(id) = &self.writer_id {
            if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid(
                    "writer_id",
                    format!("{id:?} must be 1 to 32 letters or digits"),
                ));
            }
        }
        if let Some(url) = &self.remote {
            let redacted = strata_gitsync::redact(url);
            if redacted != *url {
                return Err(invalid(
                    "remote",
                    format!("{redacted} carries credentials; use a credential helper or ssh keys"),
                ));
            }
        }
        Ok(())
    }

    /// Reads the configuration stored in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Config>> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        let config: Config = serde_json::from_slice(&text).map_err(|e| Error::Config {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        config.validate().map_err(|e| match e {
            Error::Config { detail, .. } => Error::Config { path, detail },
            other => other,
        })?;
        Ok(Some(config))
    }

    /// Stores the configuration in `dir`: temporary file, fsync, rename, fsync of `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CONFIG_FILE);
        let temp = dir.join(format!("{CONFIG_FILE}.tmp"));
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| Error::Config {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        write_durably(dir, &temp, &path, &text)
    }
}

fn invalid(setting: &str, detail: String) -> Error {
    Error::Config {
        path: setting.into(),
        detail,
    }
}

/// Writes `bytes` to `path` by way of `temp`, so a crash leaves the old file or the new one.
pub(crate) fn write_durably(dir: &Path, temp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |op: &'static str, file: &Path| {
        let file = file.to_owned();
        move |source| Error::Io {
            op,
            path: file,
            source,
        }
    };
    let mut file = strata_wal::io::create_private_file(temp).map_err(io("create", temp))?;
    std::io::Write::write_all(&mut file, bytes).map_err(io("write", temp))?;
    file.sync_all().map_err(io("fsync", temp))?;
    std::fs::rename(temp, path).map_err(io("rename", temp))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_recommended_configuration() {
        let c = Config::default();
        assert_eq!(c.hot_capacity_bytes, 256 * MIB);
        assert!(!c.promote_warm_reads, "warm reads stay in the page cache");
        assert_eq!(c.warm_capacity_bytes, 2 * 1024 * MIB);
        assert_eq!(
            (
                c.commit_quiet_secs,
                c.commit_max_age_secs,
                c.commit_max_bytes
            ),
            (5, 60, 10 * MIB)
        );
        assert_eq!(
            (
                c.keep_chunks,
                c.push_every,
                c.push_attempts,
                c.push_retry_secs
            ),
            (10, 10, 3, 2)
        );
        assert_eq!(
            (c.memtable_flush_bytes, c.memtable_flush_items),
            (64 * MIB, 10_000)
        );
        assert_eq!(
            (c.breaker_failures, c.breaker_successes, c.breaker_open_secs),
            (5, 2, 60)
        );
        c.validate().unwrap();
    }

    #[test]
    fn toml_sets_only_what_it_names_and_typos_are_errors() {
        let c = Config::from_toml("commit_quiet_secs = 2\nremote = \"/srv/r.git\"\n").unwrap();
        assert_eq!(c.commit_quiet_secs, 2);
        assert_eq!(c.remote.as_deref(), Some("/srv/r.git"));
        assert_eq!(c.keep_chunks, 10);
        let typo = Config::from_toml("comit_quiet_secs = 2")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("comit_quiet_secs"), "{typo}");
        assert!(Config::from_toml("keep_chunks = 0").is_err());
        assert!(Config::from_toml("wal_sync = \"sometimes\"").is_err());
        assert_eq!(
            Config::from_toml("wal_sync = \"interval:5\"")
                .unwrap()
                .wal_sync()
                .unwrap(),
            WalSync::IntervalMs(5)
        );
        let secret = Config::from_toml("remote = \"https://u:pw@h/r.git\"")
            .unwrap_err()
            .to_string();
        assert!(!secret.contains("pw"), "{secret}");
    }

    #[test]
    fn the_stored_configuration_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), None);
        let c = Config {
            keep_chunks: 4,
            ..Config::default()
        };
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join(CONFIG_FILE), b"{\"keep_chunks\": \"x\"}").unwrap();
        assert!(Config::load(dir.path()).is_err());
    }
}
