//! Archival through the whole store: warm entries past their TTL, or the oldest while warm is
//! over capacity, are committed to cold and only then dropped from warm; reads bring them
//! back by promotion; deletes keep hiding archived values; snapshots keep what they can see
//! while compaction reclaims the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use strata::{Class, Config, Criticality, ReadOptions, Source, Store};

const HOUR_MS: u64 = 3_600_000;

fn warm_entries(store: &Store) -> u64 {
    let stats = store.stats();
    stats
        .tiers
        .iter()
        .find(|t| t.tier == "warm")
        .map(|t| t.entries)
        .unwrap()
}

fn source_of(store: &Store, key: &str) -> Option<Source> {
    store.read(key, ReadOptions::default()).unwrap().source
}

fn value(store: &Store, key: &str) -> Option<String> {
    store
        .get(key)
        .unwrap()
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}

#[test]
fn entries_past_their_ttl_move_to_cold_and_come_back_by_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let store = common::open(dir.path(), &clock, Config::default());
    store
        .classify(
            "note:*",
            Class::new(Criticality::Medium).with_ttl(Duration::from_secs(3_600)),
        )
        .unwrap();
    for i in 0..20 {
        store.put(format!("note:{i:02}"), format!("n{i}")).unwrap();
    }
    store.put("keep:a", "stays").unwrap();
    store.put("note:gone", "doomed").unwrap();
    store.flush().unwrap();
    store.delete("note:gone").unwrap();
    store.flush().unwrap();

    // Not old enough yet.
    assert_eq!(store.archive().unwrap().archived, 0);
    clock.advance(2 * HOUR_MS);
    let report = store.archive().unwrap();
    // 20 notes and the deletion of note:gone; keep:a has the 30-day default.
    assert_eq!((report.archived, report.by_age), (21, 21), "{report:?}");
    assert_eq!(
        store.archive().unwrap().archived,
        0,
        "nothing is archived twice"
    );

    assert_eq!(source_of(&store, "note:07"), Some(Source::Cold));
    assert_eq!(value(&store, "note:07").as_deref(), Some("n7"));
    assert_eq!(
        source_of(&store, "note:07"),
        Some(Source::Cache),
        "promoted"
    );
    assert_eq!(source_of(&store, "keep:a"), Some(Source::Warm));
    assert_eq!(value(&store, "note:gone"), None);
    let keys: Vec<_> = store
        .scan_prefix("note:")
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(keys.len(), 20);
    assert!(!store.history("note:07").unwrap().is_empty());

    // Compaction reclaims the archived versions; the deletion stays hidden all along.
    store.compact().unwrap();
    assert_eq!(value(&store, "note:gone"), None);
    assert_eq!(warm_entries(&store), 1, "only keep:a is left in warm");

    // A newer write wins over the archived version, and everything survives a reopen.
    store.put("note:03", "rewritten").unwrap();
    store.flush().unwrap();
    store.close().unwrap();
    let store = common::reopen(dir.path(), &clock);
    assert_eq!(value(&store, "note:03").as_deref(), Some("rewritten"));
    assert_eq!(value(&store, "note:04").as_deref(), Some("n4"));
    assert_eq!(value(&store, "note:gone"), None);
    assert_eq!(value(&store, "keep:a").as_deref(), Some("stays"));
    assert!(store.verify().unwrap().is_clean());
    common::git(&dir.path().join(strata::COLD_DIR), &["fsck", "--strict"]);
}

#[test]
fn warm_over_capacity_archives_its_oldest_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let config = Config {
        warm_capacity_bytes: 20_000,
        ..Config::default()
    };
    let store = common::open(dir.path(), &clock, config);
    let value_of = |i: usize| format!("{i:04}").repeat(250);
    for i in 0..40 {
        store.put(format!("k{i:02}"), value_of(i)).unwrap();
        if i % 10 == 9 {
            store.flush().unwrap();
        }
    }
    let report = store.archive().unwrap();
    assert!(report.by_capacity > 0, "{report:?}");
    assert_eq!(report.by_age, 0);
    // The oldest went first: k00 is in cold, k39 still in warm.
    assert_eq!(source_of(&store, "k00"), Some(Source::Cold));
    assert_eq!(source_of(&store, "k39"), Some(Source::Warm));
    for i in 0..40 {
        assert_eq!(
            value(&store, &format!("k{i:02}")),
            Some(value_of(i)),
            "k{i:02}"
        );
    }
    // The reported warm size already leaves out what was archived, so a second pass does
    // not archive everything while compaction has not run.
    let again = store.archive().unwrap();
    assert!(
        report.archived + again.archived < 40,
        "{report:?} then {again:?}"
    );
}

#[test]
fn maintenance_archives_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let config = Config {
        archive_interval_secs: 60,
        ..Config::default()
    };
    let store = common::open(dir.path(), &clock, config);
    store
        .classify(
            "tmp:*",
            Class::new(Criticality::Medium).with_ttl(Duration::from_secs(1)),
        )
        .unwrap();
    store.put("tmp:a", "1").unwrap();
    store.flush().unwrap();
    clock.advance(30_000);
    assert_eq!(store.maintain().archived, 0, "not due yet");
    clock.advance(31_000);
    assert_eq!(store.maintain().archived, 1);
    assert_eq!(value(&store, "tmp:a").as_deref(), Some("1"));
}

#[test]
fn snapshots_keep_their_versions_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let store = common::open(dir.path(), &clock, Config::default());
    for round in 0..3 {
        for i in 0..50 {
            store.put(format!("k{i:02}"), format!("r{round}")).unwrap();
        }
        store.flush().unwrap();
    }
    let snapshot = store.snapshot();
    for i in 0..50 {
        store.put(format!("k{i:02}"), "r3").unwrap();
    }
    store.flush().unwrap();
    store.compact().unwrap();
    // The snapshot pins r2; r0 and r1 are gone.
    assert_eq!(warm_entries(&store), 100);
    assert_eq!(
        snapshot.get("k07").unwrap().unwrap().as_bytes(),
        b"r2".as_slice()
    );
    assert_eq!(value(&store, "k07").as_deref(), Some("r3"));
    drop(snapshot);
    store.compact().unwrap();
    assert_eq!(
        warm_entries(&store),
        50,
        "only the newest versions are left"
    );
}
