//! Opening a store: the builder, the wiring of every tier, and recovery.
//!
//! Recovery, in order:
//!
//! 1. Take `<dir>/LOCK`; a second opener gets [`Error::Locked`].
//! 2. Read the configuration (given, from a TOML file, stored, or the defaults) and store it.
//! 3. An unclean shutdown is one that left no `CLOSED` marker; the marker is removed before
//!    anything else changes, so a crash from here on is unclean too.
//! 4. Open the warm tier (after an unclean shutdown, checking every block), the cold
//!    repository, and the WAL, whose torn tail is cut at the first bad record. The WAL never
//!    hands out an LSN the warm or cold tier has already seen.
//! 5. Replay the WAL from the flushed watermark into the memtable; the committer and the
//!    pusher resume from their own watermarks, kept in the repository.
//! 6. Rebuild quarantined segments from the WAL and the cold tier (see [`rebuild`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use strata_gitsync::{ColdOptions, ColdStore, ColdTier, Committer, CommitterOptions, Remote};
use strata_gitsync::{RemoteOptions, Transport};
use strata_memtable::{CacheConfig, CacheTier, HotTier};
use strata_segment::{CompactionOptions, SegmentOptions, SegmentTier};
use strata_tiering::clock::{Clock, SystemClock};
use strata_tiering::router::{
    BreakerConfig, RouterConfig, RuleSet, Stage, SyncMode, TierId, Watermarks,
};
use strata_tiering::{Lsn, Router};
use strata_wal::{SyncPolicy, Wal, WalOptions};

use crate::config::{Config, WalSync};
use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::maintain::{Nudge, Worker};
use crate::probes;
use crate::store::{Inner, Store};

/// Marker left by a clean shutdown.
pub const CLOSED_FILE: &str = "CLOSED";
/// Where the classification rules are kept.
pub const RULES_FILE: &str = "rules.json";
/// The cold repository inside the store directory.
pub const COLD_DIR: &str = "cold.git";

/// What opening the store found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The store directory was new.
    pub created: bool,
    /// The previous process did not close the store.
    pub unclean_shutdown: bool,
    /// WAL records replayed into the memtable.
    pub records_replayed: u64,
    /// Bytes cut from the WAL's torn or damaged tail.
    pub bytes_truncated: u64,
    /// WAL records dropped with that tail.
    pub records_dropped: u64,
    /// What was wrong with the WAL, if anything.
    pub wal_damage: Option<String>,
    /// Segments found corrupt and set aside, with their key ranges.
    pub segments_quarantined: Vec<String>,
    /// Versions written back into warm from the WAL and the cold tier.
    pub versions_rebuilt: u64,
    /// Quarantined segments whose data could not all be rebuilt; reads of their key ranges
    /// fail until [`Store::release_quarantine`] is called.
    pub still_fenced: Vec<String>,
    /// The watermarks recovery resumed from: flushed, committed, pushed.
    pub resumed_from: (Lsn, Lsn, Lsn),
    /// How long opening took.
    pub duration: Duration,
}

/// Opens a store with settings.
#[must_use]
pub struct StoreBuilder {
    dir: PathBuf,
    config: Option<Config>,
    config_file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    background: bool,
    transport: Transport,
    read_only: bool,
    fs: Arc<dyn strata_wal::Fs>,
}

impl StoreBuilder {
    /// Starts a builder for `dir`.
    pub fn new(dir: impl AsRef<Path>) -> StoreBuilder {
        StoreBuilder {
            dir: dir.as_ref().to_owned(),
            config: None,
            config_file: None,
            clock: Arc::new(SystemClock),
            background: true,
            transport: Transport::Auto,
            read_only: false,
            fs: Arc::new(strata_wal::StdFs),
        }
    }

    /// Uses this configuration (and stores it) instead of the stored one.
    pub fn config(mut self, config: Config) -> StoreBuilder {
        self.config = Some(config);
        self
    }

    /// Reads the configuration from a TOML file (and stores it).
    pub fn config_file(mut self, path: impl AsRef<Path>) -> StoreBuilder {
        self.config_file = Some(path.as_ref().to_owned());
        self
    }

    /// The clock for debouncing, breakers, expiry and health checks (the system clock by
    /// default). Tests pass one they control.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> StoreBuilder {
        self.clock = clock;
        self
    }

    /// The filesystem under the WAL and the segments: the real one by default. Fault-injection
    /// and power-loss tests pass a [`FaultyFs`](strata_wal::FaultyFs) or a
    /// [`MemFs`](strata_wal::MemFs) mounted at the store's paths. The lock, the configuration,
    /// the rules and the git repository always live on the real disk.
    pub fn fs(mut self, fs: Arc<dyn strata_wal::Fs>) -> StoreBuilder {
        self.fs = fs;
        self
    }

    /// Whether background threads run (default: yes): maintenance, and the warm tier's
    /// compaction. Without them nothing moves below the WAL until [`Store::maintain`] or
    /// [`Store::sync`] is called, and warm compactions run inside `maintain` (or
    /// [`Store::compact`]), so a test sees the same file operations every run.
    pub fn background(mut self, background: bool) -> StoreBuilder {
        self.background = background;
        self
    }

    /// Opens the store read-only (default: no), beside the process that holds it or alone:
    /// no lock is taken and nothing on disk changes. The store shows the state at the open:
    /// the warm segments, the cold repository and the WAL's records as they were then (a
    /// torn record at the WAL's end is left to its writer). Every change, `sync`, `flush`,
    /// `pull`, `compact` and `checkpoint` fails with [`Error::ReadOnly`]; `maintain` does
    /// nothing. Reopen to see later writes. LOW writes of the other process are not visible:
    /// they live in its memory only.
    pub fn read_only(mut self, read_only: bool) -> StoreBuilder {
        self.read_only = read_only;
        self
    }

    /// How the remote is reached (default: chosen from the URL).
    pub fn transport(mut self, transport: Transport) -> StoreBuilder {
        self.transport = transport;
        self
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration given to the builder, directly or as a file.
    pub(crate) fn chosen_config(&self) -> Result<Option<Config>> {
        match (&self.config, &self.config_file) {
            (Some(config), _) => Ok(Some(config.clone())),
            (None, Some(path)) => Config::from_toml_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn chosen_transport(&self) -> Transport {
        self.transport
    }

    pub(crate) fn chosen_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Opens the store, recovering it if needed.
    pub fn open(self) -> Result<Store> {
        if self.read_only {
            return self.open_read_only();
        }
        let started = Instant::now();
        let dir = self.dir.clone();
        strata_wal::io::create_private_dir_all(&dir).map_err(|source| Error::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        let lock = DirLock::acquire(&dir)?;
        // With the directory's lock held no other store can be updating the cold repository:
        // any git lock file in it is a crash's leftover, cleared now rather than once stale.
        strata_gitsync::repo::clear_git_locks(&dir.join(COLD_DIR))?;
        let stored = Config::load(&dir)?;
        let created = stored.is_none();
        let config = match (self.config, &self.config_file) {
            (Some(config), _) => {
                config.validate()?;
                config
            }
            (None, Some(path)) => Config::from_toml_file(path)?,
            (None, None) => stored.clone().unwrap_or_default(),
        };
        if stored.as_ref() != Some(&config) {
            config.save(&dir)?;
        }
        let unclean_shutdown = !created && !take_clean_marker(&dir)?;
        let mut report = RecoveryReport {
            created,
            unclean_shutdown,
            ..RecoveryReport::default()
        };
        let mut inner = wire(
            dir,
            config,
            Some(lock),
            self.clock,
            self.transport,
            (self.fs, self.background),
            &mut report,
        )?;
        report.duration = started.elapsed();
        inner.recovery = report;
        let inner = Arc::new(inner);
        let worker = if self.background {
            Some(Arc::new(Worker::start(&inner)?))
        } else {
            None
        };
        Ok(Store {
            _worker: worker,
            inner,
        })
    }

    fn open_read_only(self) -> Result<Store> {
        let started = Instant::now();
        let dir = self.dir.clone();
        let config = match self.chosen_config()? {
            Some(config) => {
                config.validate()?;
                config
            }
            None => crate::admin::stored_config(&dir)?,
        };
        if !dir.join(COLD_DIR).join("HEAD").exists() {
            return Err(Error::Config {
                path: dir.join(COLD_DIR),
                detail: "the store has no cold repository; a read-only open creates nothing".into(),
            });
        }
        let mut report = RecoveryReport::default();
        let mut inner = wire(
            dir,
            config,
            None,
            self.clock,
            self.transport,
            (self.fs, false),
            &mut report,
        )?;
        report.duration = started.elapsed();
        inner.recovery = report;
        Ok(Store {
            _worker: None,
            inner: Arc::new(inner),
        })
    }
}

/// Removes the clean-shutdown marker; returns whether it was there.
fn take_clean_marker(dir: &Path) -> Result<bool> {
    let path = dir.join(CLOSED_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Io {
            op: "remove",
            path,
            source,
        }),
    }
}

/// Leaves the clean-shutdown marker.
pub(crate) fn mark_clean(dir: &Path) -> Result<()> {
    let path = dir.join(CLOSED_FILE);
    strata_wal::io::create_private_file(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"closed cleanly\n"))
        .map_err(|source| Error::Io {
            op: "write",
            path: path.clone(),
            source,
        })?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            op: "fsync",
            path: dir.to_owned(),
            source,
        })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Builds every tier and the Router over them, and recovers. Without a lock the store is a
/// read-only view (see [`StoreBuilder::read_only`]).
fn wire(
    dir: PathBuf,
    config: Config,
    lock: Option<DirLock>,
    clock: Arc<dyn Clock>,
    transport: Transport,
    (fs, background): (Arc<dyn strata_wal::Fs>, bool),
    report: &mut RecoveryReport,
) -> Result<Inner> {
    let unclean = report.unclean_shutdown;
    let read_only = lock.is_none();
    let warm = Arc::new(SegmentTier::open(
        Arc::clone(&fs),
        dir.join("segments"),
        SegmentOptions {
            verify_on_open: unclean,
            read_only,
            background_compaction: background,
            // Cold may hold an older value a warm tombstone hides (see `archive`).
            compaction: CompactionOptions {
                drop_bottom_tombstones: false,
                ..CompactionOptions::default()
            },
            ..SegmentOptions::default()
        },
    )?);
    let cold_options = ColdOptions {
        keep_chunks: config.keep_chunks,
        writer_id: config.writer_id.clone(),
        // git reads the repository's real files, so the store's own writes into it go
        // through the store's filesystem only when that acts on real files (as the fault
        // injecting layer over the OS does); an in-memory one cannot hold a git repository.
        fs: if fs.is_os_filesystem() {
            Arc::clone(&fs)
        } else {
            ColdOptions::default().fs
        },
        ..ColdOptions::default()
    };
    // A reader writes nothing into the writer's repository, not even a cleared lock.
    let cold_store = Arc::new(if read_only {
        ColdStore::open_read_only(dir.join(COLD_DIR), cold_options, Arc::clone(&clock))?
    } else {
        ColdStore::open(dir.join(COLD_DIR), cold_options, Arc::clone(&clock))?
    });
    // Packs are merged after the push in each maintenance pass, so that a CRITICAL write's
    // push never waits for a merge.
    cold_store.defer_pack_merges(true);
    let flushed = warm.flushed_lsn().unwrap_or(0);
    let (policy, sync) = match config.wal_sync()? {
        WalSync::Always => (SyncPolicy::Never, SyncMode::PerWrite),
        WalSync::IntervalMs(ms) => (
            SyncPolicy::Interval(Duration::from_millis(ms)),
            SyncMode::LogPolicy,
        ),
        WalSync::Never => (SyncPolicy::Never, SyncMode::LogPolicy),
    };
    let floor = flushed.max(cold_store.committed_lsn()) + 1;
    let (wal, foreign_log) = if read_only {
        crate::reader::log_beside_writer(&dir, flushed, floor)?
    } else {
        let options = WalOptions {
            sync_policy: policy,
            next_lsn_floor: floor,
            // A store that syncs after every write has no buffer for a background thread to
            // write while appends go on: the sync right after each write takes it anyway.
            write_behind: sync == SyncMode::LogPolicy,
            ..WalOptions::default()
        };
        (
            Arc::new(Wal::open_with_fs(fs, dir.join("wal"), options)?),
            None,
        )
    };
    let wal_report = wal.recovery_report();
    report.bytes_truncated = wal_report.dropped_bytes;
    report.records_dropped = wal_report.dropped_records;
    report.wal_damage = wal_report
        .damage
        .as_ref()
        .map(|d| format!("{} at offset {}: {}", d.path.display(), d.offset, d.detail));

    let log: Arc<dyn strata_wal::Log> = Arc::clone(&wal) as Arc<dyn strata_wal::Log>;
    let committer = Committer::new(
        Arc::clone(&cold_store),
        Arc::clone(&log),
        Arc::clone(&clock),
        CommitterOptions {
            // Saturating: a huge setting means "never", not an overflow at open.
            quiet_ms: config.commit_quiet_secs.saturating_mul(1000),
            max_age_ms: config.commit_max_age_secs.saturating_mul(1000),
            max_batch_bytes: usize::try_from(config.commit_max_bytes).unwrap_or(usize::MAX),
        },
    )?;
    let remote = match &config.remote {
        Some(url) if !read_only => Some(Arc::new(Remote::new(
            Arc::clone(&cold_store),
            RemoteOptions {
                transport,
                push_every: config.push_every,
                // The maintenance tick debounces CRITICAL writes from their arrival and
                // tells the remote only once that has passed.
                critical_debounce: Duration::ZERO,
                attempts: config.push_attempts,
                retry_delay: secs(config.push_retry_secs),
                ..RemoteOptions::new(url.clone())
            },
            Arc::clone(&clock),
        )?)),
        _ => None,
    };
    let cold = Arc::new(ColdTier::new(Arc::clone(&cold_store)));
    let hot = Arc::new(HotTier::new());
    let router_slot: Arc<OnceLock<Weak<Router>>> = Arc::new(OnceLock::new());
    let policy_slot = Arc::clone(&router_slot);
    let cache = Arc::new(CacheTier::with_policy(
        CacheConfig {
            max_bytes: config.hot_capacity_bytes,
            ..CacheConfig::default()
        },
        Arc::new(move |key: &[u8]| {
            policy_slot
                .get()
                .and_then(Weak::upgrade)
                .is_none_or(|router| router.classify(key).evictable)
        }),
    ));
    let rules_path = dir.join(RULES_FILE);
    let rules = if rules_path.exists() {
        RuleSet::load(&rules_path)?
    } else {
        RuleSet::new()
    };
    let watermarks = Arc::new(Watermarks::new());
    let cold_mark = committer.needs_log_from().saturating_sub(1);
    let pushed = remote.as_ref().map_or(0, |r| r.pushed_lsn());
    watermarks.advance(Stage::Warm, flushed, None);
    watermarks.advance(
        Stage::Cold,
        cold_mark,
        cold_store.head().map(|h| h.to_string()),
    );
    if let Some(remote) = &remote {
        watermarks.advance(
            Stage::Remote,
            pushed,
            remote.pushed_head().map(|h| h.to_string()),
        );
    }
    report.resumed_from = (flushed, cold_mark, pushed);
    let nudge = Arc::new(Nudge::new(Arc::clone(&clock)));
    let router = Arc::new(
        Router::builder(
            Arc::clone(&hot) as Arc<dyn strata_tiering::Tier>,
            Arc::clone(&cache) as Arc<dyn strata_tiering::Tier>,
            log,
        )
        .warm(Arc::clone(&warm) as Arc<dyn strata_tiering::Tier>)
        .cold(Arc::clone(&cold) as Arc<dyn strata_tiering::Tier>)
        .evictor(Arc::new(crate::archive::WarmEvictor::new(&warm)))
        .clock(Arc::clone(&clock))
        .rules(rules)
        .rules_path(rules_path)
        .config(RouterConfig {
            sync,
            breaker: BreakerConfig {
                failure_threshold: config.breaker_failures,
                success_threshold: config.breaker_successes,
                open_timeout: secs(config.breaker_open_secs),
                ..BreakerConfig::default()
            },
            fallback_capacity: config.fallback_cache_items,
            replay_capacity: config.replay_queue_items,
            health_interval: secs(config.health_check_secs),
            warm_capacity_bytes: config.warm_capacity_bytes,
            promote_from_warm: config.promote_warm_reads,
            ..RouterConfig::default()
        })
        .downstream(Arc::clone(&nudge) as Arc<dyn strata_tiering::router::Downstream>)
        .watermarks(watermarks)
        .build(),
    );
    let _ = router_slot.set(Arc::downgrade(&router));
    router.add_probe(TierId::Warm, Arc::new(probes::WarmProbe::new(&warm)));
    router.add_probe(TierId::Cold, Arc::new(probes::ColdProbe::new(&cold_store)));
    if let Some(remote) = &remote {
        router.add_probe(TierId::Remote, Arc::new(probes::RemoteProbe::new(remote)));
    }

    let replayed = match foreign_log {
        Some(records) => router.replay(records)?,
        None => router.replay_log(flushed + 1)?,
    };
    report.records_replayed = replayed.changes;
    // Every logged write is now in the memtable or below it.
    router
        .watermarks()
        .advance(Stage::Memory, strata_wal::Log::last_lsn(wal.as_ref()), None);

    let wal_at_open = wal.record_bytes();
    let opened_at = clock.now_ms();
    let inner = Inner {
        dir,
        config,
        clock,
        _lock: lock,
        wal,
        hot,
        cache,
        warm,
        cold,
        committer,
        remote,
        router,
        gate: RwLock::new(()),
        maintenance: Mutex::new(()),
        unflushed: Mutex::new(VecDeque::new()),
        nudge,
        read_only,
        recovery: RecoveryReport::default(),
        closed: AtomicBool::new(false),
        user_bytes: AtomicU64::new(0),
        wal_at_open,
        wal_dropped: AtomicU64::new(0),
        pins: Arc::default(),
        compact_in_maintenance: !background && !read_only,
        last_archive_ms: AtomicU64::new(opened_at),
    };
    if !read_only {
        crate::rebuild::rebuild_quarantined(&inner, report)?;
    }
    Ok(inner)
}
