//! A read-only open beside the writer: it sees what the writer had made durable at the open
//! (segments, git, the WAL's tail), refuses every change, leaves the directory exactly as it
//! was, and never marks the writer's store as cleanly closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{clock, open, text};
use strata::tiering::clock::Clock;
use strata::{Batch, Class, Config, Criticality, Error, ImportOptions, Stage, Store, CLOSED_FILE};

fn reader(dir: &Path, clock: &Arc<strata::tiering::clock::ManualClock>) -> Store {
    Store::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .read_only(true)
        .open()
        .unwrap()
}

/// Every file under `dir` with its length and modification time.
fn listing(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let name = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                out.insert(name, (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out
}

fn contents(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .scan_prefix("")
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_reader_beside_the_writer_sees_durable_state_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let path = dir.path().join("store");
    let writer = open(&path, &clock, Config::default());
    writer
        .classify("high:*", Class::new(Criticality::High))
        .unwrap();
    writer
        .classify("low:*", Class::new(Criticality::Low))
        .unwrap();
    for i in 0..30 {
        writer.put(format!("high:{i:02}"), format!("h{i}")).unwrap();
        writer.put(format!("med:{i:02}"), format!("m{i}")).unwrap();
    }
    writer.sync(Stage::Cold).unwrap();
    writer.flush().unwrap();
    for i in 20..40 {
        writer
            .put(format!("med:{i:02}"), format!("tail{i}"))
            .unwrap();
    }
    writer.delete("med:00").unwrap();
    writer.put("low:x", "memory only").unwrap();

    // The writer holds the directory; a second writer is refused, a reader is not.
    assert!(matches!(
        Store::builder(&path).background(false).open(),
        Err(Error::Locked { .. })
    ));
    let before = listing(&path);
    let view = reader(&path, &clock);
    let expected: Vec<_> = contents(&writer)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(b"low:"))
        .collect();
    assert_eq!(contents(&view), expected);
    assert_eq!(text(view.get("med:25").unwrap()).as_deref(), Some("tail25"));
    assert_eq!(view.get("med:00").unwrap(), None);
    assert_eq!(
        view.get("low:x").unwrap(),
        None,
        "LOW lives in the writer's memory"
    );
    assert_eq!(view.history("high:03").unwrap().len(), 1);
    assert!(view.verify().unwrap().wal_records >= 20);
    let _ = view.stats();

    // Every change is refused, naming the operation.
    let mut batch = Batch::new();
    batch.put("b", "1");
    let refused: Vec<(&str, Result<(), Error>)> = vec![
        ("put", view.put("med:new", "x").map(drop)),
        ("delete", view.delete("med:01").map(drop)),
        ("write", view.write(&batch).map(drop)),
        (
            "classify",
            view.classify("x:*", Class::new(Criticality::High))
                .map(drop),
        ),
        ("unclassify", view.unclassify("high:*").map(drop)),
        ("sync", view.sync(Stage::Wal).map(drop)),
        ("flush", view.flush().map(drop)),
        ("compact", view.compact().map(drop)),
        (
            "checkpoint",
            view.checkpoint(dir.path().join("cp")).map(drop),
        ),
        ("transaction", {
            let mut txn = view.transaction();
            txn.put("med:t", "1");
            txn.commit().map(drop)
        }),
        ("import", {
            let mut input: &[u8] = b"{\"type\":\"kv\",\"key\":\"i\",\"value\":\"1\"}\n";
            view.import(&mut input, &ImportOptions::default()).map(drop)
        }),
    ];
    for (op, result) in refused {
        assert!(
            matches!(result, Err(Error::ReadOnly { .. })),
            "{op}: {result:?}"
        );
    }
    assert!(view.maintain().errors.is_empty());
    assert!(!dir.path().join("cp").exists());
    view.close().unwrap();
    assert_eq!(listing(&path), before, "the reader changed nothing on disk");
    assert!(
        !path.join(CLOSED_FILE).exists(),
        "only the writer marks a clean close"
    );

    // Later writes and a compaction: an open view keeps its state, a new one sees them.
    let view = reader(&path, &clock);
    writer.put("med:later", "new").unwrap();
    writer.compact().unwrap();
    assert_eq!(view.get("med:later").unwrap(), None);
    assert_eq!(text(view.get("med:10").unwrap()).as_deref(), Some("m10"));
    let fresh = reader(&path, &clock);
    assert_eq!(
        text(fresh.get("med:later").unwrap()).as_deref(),
        Some("new")
    );
    drop((view, fresh));
    writer.close().unwrap();
    assert!(path.join(CLOSED_FILE).exists());
}

/// A reader leaves even a crash's old lock file in the cold repository alone: clearing it is
/// the writer's business.
#[test]
fn a_reader_leaves_an_old_lock_in_the_cold_repository_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let path = dir.path().join("store");
    let writer = open(&path, &clock, Config::default());
    writer
        .classify("high:*", Class::new(Criticality::High))
        .unwrap();
    writer.put("high:1", "one").unwrap();
    writer.sync(Stage::Cold).unwrap();
    let lock = path.join(strata::COLD_DIR).join("refs/heads/main.lock");
    std::fs::write(&lock, b"").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let before = listing(&path);
    let view = reader(&path, &clock);
    assert_eq!(text(view.get("high:1").unwrap()).as_deref(), Some("one"));
    drop(view);
    assert!(lock.exists());
    assert_eq!(listing(&path), before, "the reader changed nothing on disk");
    std::fs::remove_file(&lock).unwrap();
    drop(writer);
}

#[test]
fn a_reader_leaves_a_torn_tail_to_the_writer_and_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let path = dir.path().join("store");
    let writer = open(&path, &clock, Config::default());
    for i in 0..10 {
        writer.put(format!("k{i}"), format!("v{i}")).unwrap();
    }
    writer.close().unwrap();
    let (wal, torn_len) = common::tear_wal(&path, &[0x42; 17]);

    let view = reader(&path, &clock);
    assert_eq!(text(view.get("k9").unwrap()).as_deref(), Some("v9"));
    drop(view);
    assert_eq!(std::fs::read(&wal).unwrap().len(), torn_len, "not cut");

    // The writer, at its next open, cuts it and reports it.
    let writer = common::reopen(&path, &clock);
    assert_eq!(writer.recovery_report().bytes_truncated, 17);
    drop(writer);

    let empty = dir.path().join("nothing");
    let err = Store::builder(&empty).read_only(true).open().unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(!empty.exists(), "a reader creates nothing");
}
