//! Keyspaces with their own default criticality, listed, scanned across and moved between
//! atomically; typed values as JSON and postcard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{clock, open, text};
use serde::{Deserialize, Serialize};
use strata::{Codec, Config, Criticality, Error, Stage, WriteOptions};

#[test]
fn keyspaces_have_their_own_default_and_move_keys_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    let work = store.create_keyspace("work", Criticality::High).unwrap();
    let scratch = store.create_keyspace("scratch", Criticality::Low).unwrap();
    assert!(store.keyspace("bad:name").is_err());
    assert!(store.keyspace("").is_err());

    let receipt = work.put("task-1", "{\"t\":1}").unwrap();
    assert_eq!(receipt.criticality, Criticality::High);
    let receipt = scratch.put("task-1", "draft").unwrap();
    assert_eq!(receipt.criticality, Criticality::Low);
    assert_eq!(
        text(work.get("task-1").unwrap()).as_deref(),
        Some("{\"t\":1}")
    );
    assert_eq!(
        text(store.get("work:task-1").unwrap()).as_deref(),
        Some("{\"t\":1}")
    );

    let names: Vec<_> = store.keyspaces().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["scratch", "work"]);
    let across = store.scan_keyspaces(&[], "task-").unwrap();
    assert_eq!(across.len(), 2);
    assert_eq!(across[0].0, "scratch");
    assert_eq!(across[1].1.as_bytes(), b"task-1");

    scratch.put("idea", "grow").unwrap();
    let moved = store.move_key("idea", "scratch", "work").unwrap();
    assert_eq!(
        moved.criticality,
        Criticality::High,
        "the higher of the two"
    );
    assert_eq!(scratch.get("idea").unwrap(), None);
    assert_eq!(text(work.get("idea").unwrap()).as_deref(), Some("grow"));
    assert!(matches!(
        store.move_key("absent", "scratch", "work"),
        Err(Error::NotFound { .. })
    ));
    store.sync(Stage::Cold).unwrap();
    assert_eq!(store.history("work:idea").unwrap().len(), 1, "HIGH: in git");
    assert_eq!(work.scan_prefix("").unwrap().len(), 2);

    // The keyspaces and their defaults survive a reopen.
    drop((work, scratch));
    store.close().unwrap();
    let store = common::reopen(dir.path(), &clock);
    assert_eq!(store.keyspaces().len(), 2);
    assert_eq!(store.class_of("work:x").criticality, Criticality::High);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    title: String,
    done: bool,
    tags: Vec<String>,
}

#[test]
fn typed_values_round_trip_in_both_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    let task = Task {
        title: "ship".into(),
        done: false,
        tags: vec!["v1".into()],
    };
    store.put_json("task:1", &task).unwrap();
    assert_eq!(
        store.get_json::<Task>("task:1").unwrap(),
        Some(task.clone())
    );
    assert!(text(store.get("task:1").unwrap())
        .unwrap()
        .contains("\"title\":\"ship\""));

    store
        .put_typed("task:2", &task, Codec::Postcard, WriteOptions::default())
        .unwrap();
    let compact = store.get("task:2").unwrap().unwrap();
    assert!(compact.len() < serde_json::to_vec(&task).unwrap().len());
    assert_eq!(
        store.get_typed::<Task>("task:2", Codec::Postcard).unwrap(),
        Some(task)
    );
    assert_eq!(store.get_json::<Task>("absent").unwrap(), None);

    store.put("task:3", "not json").unwrap();
    let error = store.get_json::<Task>("task:3").unwrap_err().to_string();
    assert!(error.contains("task:3"), "{error}");
}
