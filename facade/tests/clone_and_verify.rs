//! A store lost with its disk is rebuilt from its remote; `verify` reads everything back
//! and names what is damaged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{bare, clock, open, text};
use strata::tiering::clock::Clock;
use strata::{Class, Config, Criticality, Stage, Store};

#[test]
fn a_lost_store_is_rebuilt_from_its_remote_and_both_keep_writing() {
    let dir = tempfile::tempdir().unwrap();
    let url = bare(&dir.path().join("remote.git"));
    let clock = clock();
    let first = open(
        &dir.path().join("first"),
        &clock,
        Config {
            remote: Some(url.clone()),
            ..Config::default()
        },
    );
    first
        .classify("task:*", Class::new(Criticality::Critical))
        .unwrap();
    for i in 0..20 {
        first
            .put(format!("task:{i}"), format!("{{\"n\":{i}}}"))
            .unwrap();
    }
    first.delete("task:3").unwrap();
    first.sync(Stage::Remote).unwrap();

    let second = Store::builder(dir.path().join("second"))
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .background(false)
        .clone_from(&url)
        .unwrap();
    assert_eq!(
        text(second.get("task:7").unwrap()).as_deref(),
        Some("{\"n\":7}")
    );
    assert_eq!(second.get("task:3").unwrap(), None);
    assert_eq!(second.history("task:3").unwrap().len(), 2);
    assert_eq!(second.scan_prefix("task:").unwrap().count(), 19);
    assert!(
        Store::builder(dir.path().join("second"))
            .clone_from(&url)
            .is_err(),
        "a clone never overwrites a store"
    );

    second
        .put_with(
            "task:from-second",
            "{}",
            strata::WriteOptions::criticality(Criticality::Critical),
        )
        .unwrap();
    second.sync(Stage::Remote).unwrap();
    assert!(first.pull().unwrap());
    assert_eq!(
        text(first.get("task:from-second").unwrap()).as_deref(),
        Some("{}")
    );

    for store in [&first, &second] {
        let report = store.verify().unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert!(report.cold_objects > 0);
    }
}

#[test]
fn verify_names_a_damaged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    for i in 0..300 {
        store.put(format!("k{i:03}"), vec![b'v'; 64]).unwrap();
    }
    store.flush().unwrap();
    let clean = store.verify().unwrap();
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(clean.segments, 1);
    assert!(clean.wal_records >= 300);

    common::corrupt_segment(dir.path(), 64, 0x01);

    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    let named = report.problems.join("\n");
    assert!(named.contains("quarantined"), "{named}");
}
