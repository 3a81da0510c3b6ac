//! Degraded operation, health probes, stage waits and archival, all on a hand-driven clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strata_tiering::record::Record;
use strata_tiering::router::{
    BreakerState, Class, DegradationLevel, Pattern, RouterConfig, Rule, Source, Stage, TierId,
};
use strata_tiering::{Change, Criticality, Error, ErrorKind, Tier, Value};
use strata_wal::Log;

mod router_support;
use router_support::{key, log_records, logged_changes, Harness};

fn get(h: &Harness, k: &str) -> Option<Value> {
    h.router.get(k.as_bytes()).unwrap()
}

#[test]
fn a_failing_log_degrades_writes_to_memory_and_recovery_drains_them() {
    let h = Harness::new();
    h.router.put(&key("med:a"), "1").unwrap();
    h.log.set_failing(Some("disk gone"));
    let r = h.router.put(&key("med:a"), "2").unwrap();
    assert_eq!(r.degraded, Some(DegradationLevel::InMemory));
    assert!(!r.is_durable() && r.lsn.is_none());
    assert_eq!(r.confirmed, Stage::Memory);
    assert_eq!(h.router.level(), DegradationLevel::InMemory);
    assert_eq!(
        get(&h, "med:a").unwrap(),
        Value::from("2"),
        "the fallback cache answers"
    );
    let out = h.router.read(b"med:a", Default::default()).unwrap();
    assert_eq!(out.source, Some(Source::Fallback));
    // LOW writes never needed the log.
    assert!(h.router.put(&key("low:x"), "l").unwrap().degraded.is_none());

    // One failure leaves the breaker closed: the next write tries the log again, and still
    // queues behind the first, so order is kept.
    let r = h.router.put(&key("med:b"), "3").unwrap();
    assert!(r.degraded.is_some());
    assert_eq!((h.router.queued(), h.router.fallback_len()), (2, 2));

    h.log.set_failing(None);
    let report = h.router.try_recover();
    assert_eq!((report.drained, report.remaining), (2, 0));
    assert_eq!(report.level, DegradationLevel::Normal);
    let values: Vec<(Vec<u8>, u64)> = logged_changes(&h.log)
        .into_iter()
        .map(|(_, c)| (c.entry.value().unwrap().as_bytes().to_vec(), c.entry.seqno))
        .collect();
    assert_eq!(
        values,
        vec![(b"1".to_vec(), 1), (b"2".to_vec(), 2), (b"3".to_vec(), 3)]
    );
    assert_eq!(h.router.fallback_len(), 0);
    assert_eq!(get(&h, "med:a").unwrap(), Value::from("2"));
    assert!(h.router.put(&key("med:c"), "4").unwrap().is_durable());
}

#[test]
fn an_open_log_breaker_keeps_writes_off_the_log_until_probes_close_it() {
    let h = Harness::new();
    let events = h.router.events().subscribe();
    h.log.set_failing(Some("disk gone"));
    for i in 0..8 {
        h.router
            .put(&key(&format!("crit:{i}")), format!("{i}"))
            .unwrap();
    }
    assert_eq!(h.router.breaker(TierId::Log).state(), BreakerState::Open);
    assert_eq!(h.router.queued(), 8);
    // While open, nothing touches the log; a tick does not probe it either.
    h.log.set_failing(None);
    let report = h.router.health_tick();
    assert!(report.results.iter().all(|r| r.tier != TierId::Log));
    assert_eq!(h.log.last_lsn(), 0);
    assert_eq!(report.recovery.unwrap().remaining, 8);

    h.clock.advance(60_000);
    let first = h.router.health_tick();
    assert_eq!(
        h.router.breaker(TierId::Log).state(),
        BreakerState::HalfOpen
    );
    assert_eq!(first.level, DegradationLevel::InMemory);
    let second = h.router.health_tick();
    assert_eq!(second.level, DegradationLevel::Normal);
    assert_eq!(second.recovery.unwrap().drained, 8);
    let order: Vec<String> = logged_changes(&h.log)
        .into_iter()
        .map(|(_, c)| String::from_utf8(c.key.as_bytes().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..8).map(|i| format!("crit:{i}")).collect();
    assert_eq!(order, expected);
    // Drained CRITICAL writes still ask for a push.
    assert!(h
        .downstream
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|(s, _)| *s == Stage::Remote));
    let seen: Vec<(TierId, BreakerState)> = events.try_iter().map(|e| (e.tier, e.to)).collect();
    assert_eq!(
        seen,
        vec![
            (TierId::Log, BreakerState::Open),
            (TierId::Log, BreakerState::HalfOpen),
            (TierId::Log, BreakerState::Closed)
        ]
    );
}

#[test]
fn failing_flushes_degrade_to_read_only() {
    let h = Harness::new();
    h.router.put(&key("med:a"), "1").unwrap();
    h.warm.fail_writes.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert!(!h.flush());
    }
    assert_eq!(h.router.level(), DegradationLevel::ReadOnly);
    let before = h.log.last_lsn();
    let r = h.router.put(&key("med:b"), "2").unwrap();
    assert_eq!(r.degraded, Some(DegradationLevel::ReadOnly));
    assert_eq!(
        h.log.last_lsn(),
        before,
        "held back from the hot tier and the log"
    );
    assert_eq!(
        get(&h, "med:a").unwrap(),
        Value::from("1"),
        "reads still served"
    );
    assert_eq!(get(&h, "med:b").unwrap(), Value::from("2"));

    h.warm.fail_writes.store(false, Ordering::SeqCst);
    h.heal();
    assert_eq!(h.router.level(), DegradationLevel::Normal);
    assert_eq!(h.router.queued(), 0);
    assert!(h.flush());
    assert_eq!(get(&h, "med:b").unwrap(), Value::from("2"));
}

#[test]
fn full_queues_are_errors_and_nothing_is_dropped() {
    let h = Harness::with_config(RouterConfig {
        replay_capacity: 4,
        fallback_capacity: 3,
        ..RouterConfig::default()
    });
    h.log.set_failing(Some("down"));
    for i in 0..3 {
        h.router.put(&key(&format!("med:{i}")), "v").unwrap();
    }
    let err = h.router.put(&key("med:new"), "v").unwrap_err();
    assert!(
        matches!(err, Error::FallbackFull { capacity: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("med:new"));
    h.router.put(&key("med:0"), "v2").unwrap();
    let err = h.router.put(&key("med:1"), "v2").unwrap_err();
    assert!(
        matches!(err, Error::ReplayQueueFull { capacity: 4, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Full);
    assert_eq!(h.router.queued(), 4);
    h.log.set_failing(None);
    h.heal();
    assert_eq!(h.router.queued(), 0);
    assert_eq!(logged_changes(&h.log).len(), 4);
    assert_eq!(get(&h, "med:0").unwrap(), Value::from("v2"));
    assert_eq!(get(&h, "med:1").unwrap(), Value::from("v"));
    assert_eq!(get(&h, "med:new"), None);
}

#[test]
fn drains_go_in_batches_of_whole_writes() {
    let h = Harness::with_config(RouterConfig {
        drain_batch: 3,
        ..RouterConfig::default()
    });
    h.log.set_failing(Some("down"));
    for w in 0..4 {
        let ops: Vec<_> = (0..2)
            .map(|i| strata_tiering::router::Op::put(key(&format!("med:{w}:{i}")), "v"))
            .collect();
        h.router.write(&ops).unwrap();
    }
    h.log.set_failing(None);
    assert_eq!(h.router.try_recover().drained, 8);
    // Each append was one write of two changes: three would split a write.
    let lsns: Vec<u64> = logged_changes(&h.log)
        .iter()
        .map(|(_, c)| c.entry.seqno)
        .collect();
    assert_eq!(lsns, (1..=8).collect::<Vec<_>>());
}

#[test]
fn health_probes_keep_their_interval_and_feed_the_breakers() {
    let h = Harness::new();
    let first = h.router.health_tick();
    assert_eq!(
        first.results.len(),
        3,
        "log, warm and cold probes are due at once"
    );
    assert!(first.results.iter().all(|r| r.error.is_none()));
    assert!(
        h.router.health_tick().results.is_empty(),
        "not due again yet"
    );
    h.clock.advance(29_999);
    assert!(h.router.health_tick().results.is_empty());
    h.clock.advance(1);
    assert_eq!(h.router.health_tick().results.len(), 3);
    let probes = log_records(&h.log)
        .into_iter()
        .filter(|(_, r)| *r == Record::Probe)
        .count();
    assert_eq!(
        probes, 2,
        "each log probe appends (and syncs) one probe record"
    );

    h.cold.set_failing(true);
    for _ in 0..5 {
        h.clock.advance(30_000);
        let report = h.router.health_tick();
        let cold = report
            .results
            .iter()
            .find(|r| r.tier == TierId::Cold)
            .unwrap();
        assert!(cold.error.as_deref().unwrap().contains("probe failed"));
    }
    assert_eq!(h.router.breaker(TierId::Cold).state(), BreakerState::Open);
    assert_eq!(
        h.router.level(),
        DegradationLevel::Normal,
        "cold failing does not degrade writes"
    );
    h.clock.advance(30_000);
    assert!(h
        .router
        .health_tick()
        .results
        .iter()
        .all(|r| r.tier != TierId::Cold));
    h.cold.set_failing(false);
    h.heal();
    assert_eq!(h.router.breaker(TierId::Cold).state(), BreakerState::Closed);

    // Probe records are skipped on replay and by every reader of changes.
    let h = h.restart();
    assert!(h.hot.contents().is_empty());
}

#[test]
fn wait_for_blocks_until_a_stage_passes_and_nudges_it() {
    let h = Arc::new(Harness::new());
    let r = h.router.put(&key("crit:t"), "task").unwrap();
    let lsn = r.lsn.unwrap();
    assert_eq!(
        h.router
            .wait_for(Stage::Wal, lsn, Duration::ZERO)
            .unwrap()
            .lsn,
        lsn
    );
    assert_eq!(
        h.router
            .wait_for(Stage::Memory, lsn, Duration::ZERO)
            .unwrap()
            .lsn,
        lsn
    );

    let err = h
        .router
        .wait_for(Stage::Cold, lsn, Duration::from_millis(10))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WaitTimeout {
                stage: "cold",
                reached: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(h.downstream.0.lock().unwrap().contains(&(Stage::Cold, lsn)));

    let marks = Arc::clone(h.router.watermarks());
    let committer = std::thread::spawn(move || {
        marks.advance(Stage::Cold, lsn, Some("c0ffee".into()));
        marks.advance(Stage::Remote, lsn, Some("refs/heads/main@c0ffee".into()));
    });
    let cold = h
        .router
        .wait_for(Stage::Cold, lsn, Duration::from_secs(30))
        .unwrap();
    assert_eq!(cold.evidence.as_deref(), Some("c0ffee"));
    let remote = h
        .router
        .wait_for(Stage::Remote, lsn, Duration::from_secs(30))
        .unwrap();
    assert_eq!(remote.evidence.as_deref(), Some("refs/heads/main@c0ffee"));
    committer.join().unwrap();

    // A write arriving after the stages passed it says so in its receipt.
    h.router.watermarks().advance(Stage::Warm, lsn + 1, None);
    h.router
        .watermarks()
        .advance(Stage::Cold, lsn + 1, Some("beef".into()));
    let r = h.router.put(&key("high:x"), "v").unwrap();
    assert_eq!(r.confirmed, Stage::Cold);
    assert_eq!(r.commit.as_deref(), Some("beef"));
    assert!(r.pending_stages().is_empty());
}

#[test]
fn archival_moves_old_entries_to_cold_and_reads_bring_them_back() {
    let h = Harness::new();
    h.router
        .set_rule(Rule::new(
            Pattern::parse("med:*").unwrap(),
            Class::new(Criticality::Medium).with_ttl(Duration::from_secs(3600)),
        ))
        .unwrap();
    h.router.put(&key("med:old"), "o").unwrap();
    h.router.delete(&key("high:gone")).unwrap();
    h.clock.advance(3_000_000);
    h.router.put(&key("med:new"), "n").unwrap();
    assert!(h.flush());
    assert_eq!(
        h.router.archive_tick().unwrap().archived,
        0,
        "nothing is an hour old yet"
    );

    h.clock.advance(700_000);
    let report = h.router.archive_tick().unwrap();
    assert_eq!((report.archived, report.by_age), (1, 1));
    assert_eq!(h.cold.contents().len(), 1);
    assert_eq!(h.warm.contents().len(), 2);
    let out = h.router.read(b"med:old", Default::default()).unwrap();
    assert_eq!((out.source, out.promoted), (Some(Source::Cold), true));

    // The tombstone goes too (30-day default TTL), so the cold tier cannot resurrect a value.
    h.cold
        .apply(&[Change::put(key("high:gone"), 0, "ancient")])
        .unwrap();
    h.clock.advance(31 * 86_400_000);
    assert_eq!(h.router.archive_tick().unwrap().archived, 2);
    assert_eq!(get(&h, "high:gone"), None);
    assert_eq!(get(&h, "med:new").unwrap(), Value::from("n"));
}

#[test]
fn archival_trims_an_oversized_warm_tier_oldest_first_and_only_after_cold_commits() {
    let h = Harness::with_config(RouterConfig {
        warm_capacity_bytes: 300,
        ..RouterConfig::default()
    });
    for i in 0..10 {
        h.router
            .put(&key(&format!("med:{i}")), vec![b'x'; 40])
            .unwrap();
    }
    assert!(h.flush());
    h.cold.fail_writes.store(true, Ordering::SeqCst);
    let err = h.router.archive_tick().unwrap_err();
    assert_eq!(err.tier_name(), Some("cold"));
    assert_eq!(
        h.warm.contents().len(),
        10,
        "nothing leaves warm before cold commits"
    );
    h.cold.fail_writes.store(false, Ordering::SeqCst);

    let bytes = h.warm.stats().bytes;
    let report = h.router.archive_tick().unwrap();
    assert_eq!(report.warm_bytes, bytes);
    assert!(report.by_capacity > 0 && report.by_age == 0);
    let archived: Vec<u64> = h.cold.contents().iter().map(|(_, e)| e.seqno).collect();
    assert_eq!(
        archived,
        (1..=report.by_capacity as u64).collect::<Vec<_>>()
    );
    for i in 0..10 {
        assert!(get(&h, &format!("med:{i}")).is_some());
    }
}

/// A breaker can open while the level says normal: a failure trips it between a drain's
/// last look at the breakers and its return to normal. A write must then queue, not bounce
/// between the logged and the degraded path until the stack runs out.
#[test]
fn a_write_with_the_log_breaker_open_and_the_level_normal_queues() {
    let h = Harness::new();
    let log = h.router.breaker(TierId::Log);
    while log.is_closed() {
        log.record_failure_kind(ErrorKind::Io, "tripped by the test");
    }
    assert_eq!(h.router.level(), DegradationLevel::Normal);
    let r = h.router.put(&key("med:a"), "1").unwrap();
    assert!(r.degraded.is_some(), "{r:?}");
    assert_eq!(h.router.queued(), 1);
    assert_eq!(get(&h, "med:a").unwrap(), Value::from("1"));
}
