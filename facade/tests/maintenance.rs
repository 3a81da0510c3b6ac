//! Maintenance on a controlled clock: the committer's debounce, the CRITICAL push, a dead
//! remote tripping its breaker and coming back, and health probes finding a corrupt segment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bare, clock, git, open};
use strata::tiering::router::{BreakerState, TierId};
use strata::{Class, Config, Criticality, Stage};

#[test]
fn a_high_write_is_committed_after_the_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    let receipt = store.put("doc:1", "{}").unwrap();
    let lsn = receipt.lsn.unwrap();
    assert!(store.maintain().committed.is_none());
    clock.advance(4_999);
    assert!(
        store.maintain().committed.is_none(),
        "still inside the quiet period"
    );
    clock.advance(1);
    let report = store.maintain();
    let commit = report.committed.expect("the quiet period has passed");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let cold = store.router().watermarks().receipt(Stage::Cold);
    assert!(cold.lsn >= lsn);
    assert_eq!(cold.evidence.as_deref(), Some(commit.as_str()));
    // A later write's receipt reports the stages already passed by earlier ones.
    let stats = store.stats();
    assert_eq!(stats.commits.commits, 1);
    assert_eq!(stats.commits.by_trigger[0], 1, "by the quiet trigger");
}

#[test]
fn a_critical_write_is_pushed_once_its_debounce_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote.git");
    let url = bare(&remote);
    let clock = clock();
    let store = open(
        &dir.path().join("store"),
        &clock,
        Config {
            remote: Some(url),
            ..Config::default()
        },
    );
    store
        .classify("task:*", Class::new(Criticality::Critical))
        .unwrap();
    let lsn = store.put("task:1", "{}").unwrap().lsn.unwrap();
    clock.advance(199);
    let report = store.maintain();
    assert!(report.pushed.is_none() && report.committed.is_none());
    clock.advance(1);
    let report = store.maintain();
    assert!(report.committed.is_some(), "{report:?}");
    let head = report.pushed.expect("pushed at the end of the debounce");
    assert_eq!(git(&remote, &["rev-parse", "main"]).trim(), head);
    let pushed = store.router().watermarks().receipt(Stage::Remote);
    assert!(pushed.lsn >= lsn);
    assert_eq!(pushed.evidence.as_deref(), Some(head.as_str()));
    // Nothing more to push.
    clock.advance(1_000);
    assert!(store.maintain().pushed.is_none());
}

#[test]
fn a_dead_remote_opens_its_breaker_and_a_live_one_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote.git");
    let clock = clock();
    let store = open(
        &dir.path().join("store"),
        &clock,
        Config {
            remote: Some(remote.display().to_string()),
            push_attempts: 1,
            push_retry_secs: 0,
            push_every: 1,
            ..Config::default()
        },
    );
    store
        .classify("task:*", Class::new(Criticality::Critical))
        .unwrap();
    let breaker = || store.router().breaker(TierId::Remote).state();
    // Five failures open the breaker: failed pushes, and the remote's health probe, which
    // runs on the first tick.
    let mut ticks = 0;
    while breaker() != BreakerState::Open {
        let receipt = store.put(format!("task:{ticks}"), "{}").unwrap();
        assert!(
            receipt.is_durable(),
            "writes go on while the remote is down"
        );
        clock.advance(300);
        let report = store.maintain();
        assert!(!report.errors.is_empty(), "the push failed: {report:?}");
        ticks += 1;
        assert!(ticks <= 5, "the breaker opens by the fifth failure");
    }
    let health = store.health();
    assert!(!health.healthy);
    let remote_health = health.tiers.iter().find(|t| t.tier == "remote").unwrap();
    assert_eq!(remote_health.breaker.as_deref(), Some("open"));
    assert!(
        health
            .recent_events
            .iter()
            .any(|e| e.starts_with("remote closed → open")),
        "{:?}",
        health.recent_events
    );
    assert_eq!(store.stats().breakers[3].state, "open");
    // While open, pushes are not attempted.
    clock.advance(300);
    assert!(store.maintain().errors.is_empty());
    assert_eq!(store.router().watermark(Stage::Remote), 0);

    bare(&remote);
    clock.advance(60_000);
    let report = store.maintain();
    assert!(report.errors.is_empty(), "{report:?}");
    let report = store.maintain();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(breaker(), BreakerState::Closed);
    assert!(store
        .health()
        .tiers
        .iter()
        .all(|t| t.breaker.as_deref() != Some("open")));
    assert!(store.router().watermark(Stage::Remote) >= ticks);
    assert_eq!(
        git(&remote, &["rev-parse", "main"]).trim(),
        store
            .router()
            .watermarks()
            .receipt(Stage::Remote)
            .evidence
            .unwrap()
    );
}

#[test]
fn the_warm_probe_finds_a_corrupt_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    for i in 0..200 {
        store.put(format!("k{i:03}"), vec![b'x'; 100]).unwrap();
    }
    store.flush().unwrap();
    common::corrupt_segment(dir.path(), 100, 0xFF);

    clock.advance(30_000);
    let report = store.maintain();
    let warm = report
        .health
        .results
        .iter()
        .find(|r| r.tier == TierId::Warm)
        .expect("the warm probe ran");
    let error = warm.error.as_deref().expect("it failed");
    assert!(error.contains("quarantined"), "{error}");
    assert_eq!(store.stats().segments.1, 1);
    assert_eq!(store.router().breaker(TierId::Warm).failures(), 1);
    // Reads of the fenced range fail openly instead of answering from an older version.
    assert!(store.get("k005").is_err());
}

/// Each cold commit adds a pack; the store merges them in its maintenance pass after the push
/// (commits themselves leave them alone), so the pack count stays bounded and every HIGH key
/// still reads from the cold repository.
#[test]
fn maintenance_merges_the_cold_repository_s_packs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    let cold = dir.path().join(strata::COLD_DIR);
    let packs = || strata_gitsync::repo::packs(&cold).unwrap().len();
    let mut most = 0;
    for i in 0..45 {
        store
            .put(format!("doc:{i:02}"), format!("{{\"n\":{i}}}"))
            .unwrap();
        store.sync(Stage::Cold).unwrap();
        most = most.max(packs());
        let report = store.maintain();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    assert!(packs() <= 33, "{} packs after 45 commits", packs());
    assert!(
        most > 32,
        "the merge ran in maintenance, not in the commit ({most})"
    );
    let cold = dir.path().join(strata::COLD_DIR);
    assert_eq!(git(&cold, &["fsck", "--strict"]).trim(), "");
    for i in [0, 22, 44] {
        assert!(store.get(format!("doc:{i:02}")).unwrap().is_some());
    }
}
