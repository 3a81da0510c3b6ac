//! The Router's write and read paths over in-memory stand-ins: routing by criticality,
//! receipts, fall-through with promotion, shadowing, read levels, breakers on the read path,
//! and the log's failure modes on the write path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use strata_tiering::record::{self, Record};
use strata_tiering::router::{
    DegradationLevel, Op, ReadLevel, ReadOptions, Router, RouterConfig, Source, Stage, SyncMode,
    TierId,
};
use strata_tiering::{
    Change, Criticality, Entry, Error, Key, Limits, Lsn, MemoryTier, Tier, Value, LATEST,
};
use strata_wal::{Log, LogIter, MemLog};

mod router_support;
use router_support::{key, log_records, logged_changes, rules, FlakyTier, Harness};

fn value(router: &Router, k: &str) -> Option<Vec<u8>> {
    router
        .get(k.as_bytes())
        .unwrap()
        .map(|v| v.as_bytes().to_vec())
}

#[test]
fn writes_travel_as_far_as_their_criticality() {
    let h = Harness::new();
    let low = h.router.put(&key("low:a"), "l").unwrap();
    assert_eq!(low.criticality, Criticality::Low);
    assert_eq!(
        (low.confirmed, low.target, low.lsn),
        (Stage::Memory, Stage::Memory, None)
    );
    assert!(!low.is_durable() && low.pending_stages().is_empty());
    assert!(
        h.hot.contents().is_empty(),
        "LOW never reaches the hot write buffer"
    );
    assert_eq!(h.cache.contents().len(), 1);
    assert_eq!(h.log.last_lsn(), 0, "LOW never reaches the log");

    let med = h.router.put(&key("med:a"), "m").unwrap();
    assert_eq!(
        (med.lsn, med.seqno, med.confirmed),
        (Some(1), 1, Stage::Wal)
    );
    assert_eq!(med.target, Stage::Warm);
    assert_eq!(med.pending_stages(), vec![Stage::Warm]);
    assert!(med.is_durable() && med.degraded.is_none());

    let high = h.router.put(&key("high:a"), "h").unwrap();
    assert_eq!(high.target, Stage::Cold);
    assert_eq!(high.pending_stages(), vec![Stage::Warm, Stage::Cold]);
    let crit = h.router.put(&key("crit:a"), "c").unwrap();
    assert_eq!(crit.target, Stage::Remote);
    assert_eq!(crit.lsn, Some(3));
    assert!(
        h.cold.contents().is_empty(),
        "the committer, not the Router, writes cold"
    );
    assert_eq!(*h.downstream.0.lock().unwrap(), vec![(Stage::Remote, 3)]);

    let unmatched = h.router.put(&key("other"), "d").unwrap();
    assert_eq!(
        unmatched.criticality,
        Criticality::Medium,
        "the default class"
    );

    let logged: Vec<(Criticality, Vec<u8>)> = logged_changes(&h.log)
        .into_iter()
        .map(|(c, ch)| (c, ch.key.as_bytes().to_vec()))
        .collect();
    assert_eq!(
        logged,
        vec![
            (Criticality::Medium, b"med:a".to_vec()),
            (Criticality::High, b"high:a".to_vec()),
            (Criticality::Critical, b"crit:a".to_vec()),
            (Criticality::Medium, b"other".to_vec()),
        ]
    );
    let hot: Vec<(Key, Entry)> = h.hot.contents();
    assert_eq!(hot.len(), 4);
    assert!(hot.iter().all(|(_, e)| e.seqno >= 1 && e.seqno <= 4));
    for k in ["low:a", "med:a", "high:a", "crit:a"] {
        assert!(value(&h.router, k).is_some(), "{k}");
    }
    assert_eq!(h.router.watermark(Stage::Memory), 4);
    assert_eq!(h.router.watermark(Stage::Wal), 4);
}

#[test]
fn a_batch_is_one_append_and_low_seqnos_follow_the_log() {
    let h = Harness::new();
    let receipt = h
        .router
        .write(&[
            Op::put(key("med:1"), "a"),
            Op::put(key("low:1"), "b"),
            Op::delete(key("high:1")),
        ])
        .unwrap();
    assert_eq!(receipt.criticality, Criticality::High);
    assert_eq!(receipt.lsn, Some(2));
    assert_eq!(logged_changes(&h.log).len(), 2);
    let (_, low) = &h.cache.contents()[0];
    assert_eq!(low.seqno, 2, "a LOW write takes the log's last LSN");
    assert!(matches!(h.router.write(&[]), Err(Error::EmptyWrite)));
}

#[test]
fn invalid_writes_change_nothing() {
    let h = Harness::with_config(RouterConfig {
        limits: Limits { max_value_len: 4 },
        ..RouterConfig::default()
    });
    let err = h
        .router
        .write(&[
            Op::put(key("med:a"), "ok"),
            Op::put(key("med:b"), "too long"),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    let probe = Key::new(record::PROBE_KEY).unwrap();
    assert!(matches!(
        h.router.put(&probe, "x"),
        Err(Error::ReservedKey(_))
    ));
    assert!(matches!(
        h.router.get(record::PROBE_KEY),
        Err(Error::ReservedKey(_))
    ));
    assert_eq!(h.log.last_lsn(), 0);
    assert!(h.hot.contents().is_empty() && h.cache.contents().is_empty());
}

#[test]
fn reads_fall_through_and_promote_into_the_cache() {
    let h = Harness::with_config(RouterConfig {
        promote_from_warm: true,
        ..RouterConfig::default()
    });
    h.router.put(&key("med:a"), "v1").unwrap();
    assert!(h.flush());
    let first = h.router.read(b"med:a", ReadOptions::default()).unwrap();
    assert_eq!(first.value(), Some(&Value::from("v1")));
    assert_eq!((first.source, first.promoted), (Some(Source::Warm), true));
    let again = h.router.read(b"med:a", ReadOptions::default()).unwrap();
    assert_eq!(again.source, Some(Source::Cache));
    assert!(
        h.hot.contents().is_empty(),
        "promotion never writes the hot tier"
    );

    // A write updates the cached copy, so it is still right once hot is flushed away.
    h.router.put(&key("med:a"), "v2").unwrap();
    assert!(h.flush());
    assert_eq!(value(&h.router, "med:a").unwrap(), b"v2");

    h.cold
        .apply(&[Change::put(key("high:old"), 1, "archived")])
        .unwrap();
    let cold = h.router.read(b"high:old", ReadOptions::default()).unwrap();
    assert_eq!((cold.source, cold.promoted), (Some(Source::Cold), true));
    assert_eq!(h.cache.contents().len(), 2);
    let missing = h.router.read(b"med:none", ReadOptions::default()).unwrap();
    assert_eq!(missing, Default::default());
}

#[test]
fn by_default_only_cold_hits_are_promoted() {
    let h = Harness::new();
    h.router.put(&key("med:w"), "warm").unwrap();
    assert!(h.flush());
    for _ in 0..3 {
        let read = h.router.read(b"med:w", ReadOptions::default()).unwrap();
        assert_eq!(read.value(), Some(&Value::from("warm")));
        assert_eq!((read.source, read.promoted), (Some(Source::Warm), false));
    }
    assert!(h.cache.contents().is_empty(), "a warm hit stays in warm");

    h.cold
        .apply(&[Change::put(key("high:c"), 1, "cold")])
        .unwrap();
    let cold = h.router.read(b"high:c", ReadOptions::default()).unwrap();
    assert_eq!((cold.source, cold.promoted), (Some(Source::Cold), true));
    let again = h.router.read(b"high:c", ReadOptions::default()).unwrap();
    assert_eq!(again.source, Some(Source::Cache));
}

/// A warm tier in which a newer version lands (written, then flushed, the flush noted to the
/// Router as an owner's flush does) just after the first read of it returns, as a concurrent
/// write and flush would.
struct RacingWarm {
    inner: MemoryTier,
    newer: std::sync::Mutex<Option<Change>>,
    router: std::sync::OnceLock<std::sync::Weak<Router>>,
    gets: std::sync::atomic::AtomicUsize,
}

impl RacingWarm {
    /// A warm tier holding `old`, and `newer` once the first read of it returns.
    fn new(old: Change, newer: Option<Change>) -> (Arc<RacingWarm>, Arc<Router>) {
        let warm = Arc::new(RacingWarm {
            inner: MemoryTier::new(),
            newer: std::sync::Mutex::new(newer),
            router: std::sync::OnceLock::new(),
            gets: std::sync::atomic::AtomicUsize::new(0),
        });
        warm.inner.apply(&[old]).unwrap();
        let router = Router::builder(
            Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
            Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
            Arc::new(MemLog::new()) as Arc<dyn Log>,
        )
        .warm(Arc::clone(&warm) as Arc<dyn Tier>)
        .config(RouterConfig {
            promote_from_warm: true,
            ..RouterConfig::default()
        })
        .build();
        let router = Arc::new(router);
        warm.router.set(Arc::downgrade(&router)).unwrap();
        (warm, router)
    }

    fn gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Tier for RacingWarm {
    fn name(&self) -> &str {
        "warm"
    }
    fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>, Error> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self.inner.get(key, snapshot);
        if let Some(newer) = self.newer.lock().unwrap().take() {
            self.inner.apply(&[newer]).unwrap();
            if let Some(router) = self.router.get().and_then(std::sync::Weak::upgrade) {
                router.note_flush();
            }
        }
        found
    }
    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        self.inner.apply(batch)
    }
    fn scan(
        &self,
        range: &strata_tiering::KeyRange,
        snapshot: u64,
    ) -> Result<strata_tiering::EntryIter<'_>, Error> {
        self.inner.scan(range, snapshot)
    }
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
    fn health(&self) -> strata_tiering::Health {
        strata_tiering::Health::Healthy
    }
    fn stats(&self) -> strata_tiering::TierStats {
        self.inner.stats()
    }
}

#[test]
fn a_write_racing_a_promotion_is_not_hidden_by_the_stale_copy() {
    let (warm, router) = RacingWarm::new(
        Change::put(key("med:r"), 1, "old"),
        Some(Change::put(key("med:r"), 9, "new")),
    );
    // The racing read may answer with the version it found...
    let first = router.read(b"med:r", ReadOptions::default()).unwrap();
    assert_eq!(first.value(), Some(&Value::from("old")));
    assert!(first.promoted);
    assert_eq!(
        warm.gets(),
        2,
        "the noted flush sent the promotion back to warm"
    );
    // ...but the copy it left in the cache must not hide the newer one afterwards.
    assert_eq!(value(&router, "med:r").unwrap(), b"new");
}

#[test]
fn a_promotion_with_no_flush_meanwhile_reads_warm_once() {
    let (warm, router) = RacingWarm::new(Change::put(key("med:q"), 1, "only"), None);
    let first = router.read(b"med:q", ReadOptions::default()).unwrap();
    assert_eq!(first.value(), Some(&Value::from("only")));
    assert!(first.promoted);
    assert_eq!(warm.gets(), 1);
    assert_eq!(value(&router, "med:q").unwrap(), b"only");
    assert_eq!(warm.gets(), 1, "the second read is answered from the cache");
}

#[test]
fn tombstones_and_expiry_shadow_lower_tiers() {
    let h = Harness::new();
    h.router.put(&key("med:d"), "v").unwrap();
    h.router.put(&key("med:e"), "v").unwrap();
    assert!(h.flush());
    h.router.delete(&key("med:d")).unwrap();
    let gone = h.router.read(b"med:d", ReadOptions::default()).unwrap();
    assert_eq!((gone.entry, gone.source), (None, Some(Source::Hot)));

    let now = 1_700_000_000_000;
    h.router
        .write(&[Op::Put {
            key: key("med:e"),
            value: "short-lived".into(),
            expires_at: Some(now + 1_000),
        }])
        .unwrap();
    assert_eq!(value(&h.router, "med:e").unwrap(), b"short-lived");
    h.clock.advance(1_000);
    assert_eq!(
        value(&h.router, "med:e"),
        None,
        "expired, and the warm value stays hidden"
    );
    assert!(h.router.delete(&key("med:e")).unwrap().is_durable());
}

#[test]
fn low_keys_are_read_from_the_cache_only() {
    let h = Harness::new();
    h.warm
        .apply(&[Change::put(key("low:x"), 1, "stray")])
        .unwrap();
    assert_eq!(value(&h.router, "low:x"), None);
    assert_eq!(h.warm.gets.load(Ordering::SeqCst), 0);
    h.router.put(&key("low:x"), "mem").unwrap();
    assert_eq!(value(&h.router, "low:x").unwrap(), b"mem");
    // A durable read never answers from the cache.
    let durable = ReadOptions {
        level: ReadLevel::Durable,
        ..ReadOptions::default()
    };
    let out = h.router.read(b"low:x", durable).unwrap();
    assert_eq!(
        (out.value(), out.source),
        (Some(&Value::from("stray")), Some(Source::Warm))
    );
}

#[test]
fn read_levels_skip_tiers_that_cannot_satisfy_them() {
    let h = Harness::new();
    h.cold
        .apply(&[Change::put(key("med:k"), 1, "cold")])
        .unwrap();
    h.warm
        .apply(&[Change::put(key("med:k"), 2, "warm")])
        .unwrap();
    h.router.put(&key("med:k"), "hot").unwrap();
    let at = |level| {
        let out = h
            .router
            .read(
                b"med:k",
                ReadOptions {
                    level,
                    allow_partial: false,
                },
            )
            .unwrap();
        String::from_utf8(out.value().unwrap().as_bytes().to_vec()).unwrap()
    };
    assert_eq!(at(ReadLevel::Any), "hot");
    assert_eq!(at(ReadLevel::Durable), "hot");
    assert_eq!(at(ReadLevel::Warm), "warm");
    assert_eq!(at(ReadLevel::Cold), "cold");
}

#[test]
fn open_breakers_keep_reads_away_from_a_failing_tier() {
    let h = Harness::new();
    h.cold
        .apply(&[Change::put(key("med:k"), 1, "cold")])
        .unwrap();
    h.warm.fail_reads.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let err = h.router.get(b"med:k").unwrap_err();
        assert_eq!(err.tier_name(), Some("warm"));
    }
    assert!(!h.router.breaker(TierId::Warm).allow());
    let calls = h.warm.gets.load(Ordering::SeqCst);
    let err = h.router.get(b"med:k").unwrap_err();
    assert!(
        matches!(&err, Error::TierUnavailable { tier, .. } if tier == "warm"),
        "{err}"
    );
    assert!(err.to_string().contains("med:k"), "{err}");
    assert_eq!(
        h.warm.gets.load(Ordering::SeqCst),
        calls,
        "an open breaker is not called"
    );
    let partial = ReadOptions {
        allow_partial: true,
        ..ReadOptions::default()
    };
    let out = h.router.read(b"med:k", partial).unwrap();
    assert_eq!(out.value(), Some(&Value::from("cold")));
    assert_eq!(out.skipped, vec![TierId::Warm]);
    // Hot hits never need the warm tier.
    h.router.put(&key("med:k"), "new").unwrap();
    assert_eq!(value(&h.router, "med:k").unwrap(), b"new");
    // Reads failing opened only the warm breaker; it is not a write failure.
    assert_eq!(h.router.level(), DegradationLevel::ReadOnly);
    h.warm.fail_reads.store(false, Ordering::SeqCst);
    h.heal();
    assert_eq!(h.router.level(), DegradationLevel::Normal);
    assert_eq!(value(&h.router, "med:k").unwrap(), b"new");
}

/// A log over `MemLog` that syncs only when asked, and can fail syncs, or fail appends after
/// taking the records (as the file log does when its write-out fails).
#[derive(Default)]
struct ScriptedLog {
    inner: MemLog,
    synced: AtomicU64,
    fail_sync: AtomicBool,
    fail_after_append: AtomicBool,
}

impl Log for ScriptedLog {
    fn append(&self, batch: &[&[u8]]) -> strata_wal::Result<Lsn> {
        let last = self.inner.append(batch)?;
        if self.fail_after_append.load(Ordering::SeqCst) {
            return Err(strata_wal::Error::Unavailable("write-out failed".into()));
        }
        Ok(last)
    }
    fn sync(&self) -> strata_wal::Result<Lsn> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(strata_wal::Error::Unavailable("fsync failed".into()));
        }
        let last = self.inner.last_lsn();
        self.synced.store(last, Ordering::SeqCst);
        Ok(last)
    }
    fn read_from(&self, lsn: Lsn) -> strata_wal::Result<LogIter> {
        self.inner.read_from(lsn)
    }
    fn truncate_before(&self, lsn: Lsn) -> strata_wal::Result<()> {
        self.inner.truncate_before(lsn)
    }
    fn last_lsn(&self) -> Lsn {
        self.inner.last_lsn()
    }
    fn synced_lsn(&self) -> Lsn {
        self.synced.load(Ordering::SeqCst)
    }
}

fn scripted(sync: SyncMode) -> (Arc<ScriptedLog>, Arc<MemoryTier>, Router) {
    let log = Arc::new(ScriptedLog::default());
    let hot = Arc::new(MemoryTier::new());
    let router = Router::builder(
        Arc::clone(&hot) as Arc<dyn Tier>,
        Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
        Arc::clone(&log) as Arc<dyn Log>,
    )
    .rules(rules())
    .config(RouterConfig {
        sync,
        ..RouterConfig::default()
    })
    .build();
    (log, hot, router)
}

#[test]
fn receipts_say_honestly_whether_the_log_synced() {
    let (log, _, router) = scripted(SyncMode::LogPolicy);
    let r = router.put(&key("med:a"), "v").unwrap();
    assert_eq!(
        (r.lsn, r.confirmed, r.is_durable()),
        (Some(1), Stage::Memory, false)
    );
    assert_eq!(r.pending_stages(), vec![Stage::Wal, Stage::Warm]);
    let durable = ReadOptions {
        level: ReadLevel::Durable,
        ..ReadOptions::default()
    };
    assert_eq!(router.read(b"med:a", durable).unwrap().entry, None);
    let wal = router
        .wait_for(Stage::Wal, 1, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(wal.lsn, 1);
    assert_eq!(log.synced_lsn(), 1);
    assert!(router.read(b"med:a", durable).unwrap().entry.is_some());

    let (log, _, router) = scripted(SyncMode::PerWrite);
    assert!(router.put(&key("med:a"), "v").unwrap().is_durable());
    log.fail_sync.store(true, Ordering::SeqCst);
    let r = router.put(&key("med:b"), "v").unwrap();
    assert_eq!((r.lsn, r.is_durable(), r.degraded), (Some(2), false, None));
    assert_eq!(router.queued(), 0, "a logged write is never queued as well");
    assert_eq!(router.breaker(TierId::Log).failures(), 1);
}

#[test]
fn an_append_that_fails_after_taking_the_records_is_not_queued_twice() {
    let (log, hot, router) = scripted(SyncMode::PerWrite);
    log.fail_after_append.store(true, Ordering::SeqCst);
    let r = router.put(&key("med:a"), "v").unwrap();
    assert_eq!((r.lsn, r.degraded, r.is_durable()), (Some(1), None, true));
    assert_eq!(router.queued(), 0);
    assert_eq!(hot.get(b"med:a", LATEST).unwrap().unwrap().seqno, 1);
    log.fail_sync.store(true, Ordering::SeqCst);
    let r = router.put(&key("med:b"), "w").unwrap();
    assert!(!r.is_durable());
    assert_eq!(log.inner.read_from(1).unwrap().count(), 2);
}

#[test]
fn no_low_change_ever_reaches_the_log() {
    let h = Harness::new();
    for i in 0..50 {
        let k = ["low", "med", "high", "crit"][i % 4];
        h.router
            .put(&key(&format!("{k}:{i}")), format!("v{i}"))
            .unwrap();
        if i % 7 == 0 {
            h.router.health_tick();
            h.clock.advance(31_000);
        }
    }
    let records = log_records(&h.log);
    assert!(records.iter().any(|(_, r)| *r == Record::Probe));
    for (lsn, r) in records {
        if let Record::Change {
            criticality,
            change,
        } = r
        {
            assert_ne!(criticality, Criticality::Low, "LSN {lsn}");
            assert!(!change.key.as_bytes().starts_with(b"low:"), "LSN {lsn}");
        }
    }
}

#[test]
fn shared_tiers_are_usable_across_threads() {
    let h = Arc::new(Harness::new());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let k = key(&format!("med:{t}:{i}"));
                    assert!(h.router.put(&k, format!("{i}")).unwrap().is_durable());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(h.log.last_lsn(), 400);
    let flaky: &FlakyTier = &h.hot;
    assert_eq!(flaky.contents().len(), 400);
}
