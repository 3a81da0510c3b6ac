//! Recovery on open: an unclean shutdown is detected, the WAL is replayed from the flushed
//! watermark, a torn tail is cut and reported, and a corrupt segment is rebuilt from the WAL
//! and the cold tier — or stays fenced, openly, when its data cannot all be found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{clock, open, reopen, text};
use strata::{Class, Config, Criticality, Stage};

/// Copies a live store directory: what a crash at this moment would leave (after a sync).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_unclean_shutdown_replays_the_wal_from_the_flushed_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let live = dir.path().join("live");
    let store = open(&live, &clock, Config::default());
    for i in 0..50 {
        store.put(format!("k{i:02}"), format!("a{i}")).unwrap();
    }
    let flushed = store.flush().unwrap().lsn;
    for i in 40..70 {
        store.put(format!("k{i:02}"), format!("b{i}")).unwrap();
    }
    store.delete("k00").unwrap();
    let crashed = dir.path().join("crashed");
    copy_dir(&live, &crashed);

    // A torn tail: half a record's worth of garbage after the last one.
    common::tear_wal(&crashed, &[0x42; 23]);

    let recovered = reopen(&crashed, &clock);
    let report = recovered.recovery_report().clone();
    assert!(report.unclean_shutdown);
    assert_eq!(report.resumed_from.0, flushed);
    assert_eq!(report.records_replayed, 31, "only what follows the flush");
    assert_eq!(report.bytes_truncated, 23);
    assert!(report.wal_damage.is_some());
    assert_eq!(recovered.get("k00").unwrap(), None);
    assert_eq!(text(recovered.get("k10").unwrap()).as_deref(), Some("a10"));
    assert_eq!(text(recovered.get("k45").unwrap()).as_deref(), Some("b45"));
    assert_eq!(text(recovered.get("k69").unwrap()).as_deref(), Some("b69"));
    recovered.close().unwrap();
    let again = reopen(&crashed, &clock);
    assert!(!again.recovery_report().unclean_shutdown);

    // The original, closed cleanly, says so.
    store.close().unwrap();
    assert!(!reopen(&live, &clock).recovery_report().unclean_shutdown);
}

#[test]
fn a_corrupt_segment_is_rebuilt_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    for i in 0..100 {
        store.put(format!("k{i:03}"), format!("v{i}")).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    common::corrupt_segment(dir.path(), 80, 0x10);
    std::fs::remove_file(dir.path().join(strata::CLOSED_FILE)).unwrap();

    let store = reopen(dir.path(), &clock);
    let report = store.recovery_report();
    assert_eq!(report.segments_quarantined.len(), 1, "{report:?}");
    assert_eq!(report.versions_rebuilt, 100);
    assert!(report.still_fenced.is_empty(), "{report:?}");
    for i in 0..100 {
        let value = text(store.get(format!("k{i:03}")).unwrap());
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_str()));
    }
    assert!(store
        .verify()
        .unwrap()
        .problems
        .iter()
        .all(|p| !p.contains("quarantined")));
}

#[test]
fn a_segment_the_wal_no_longer_covers_stays_fenced_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    store
        .classify("k:h*", Class::new(Criticality::High))
        .unwrap();
    for i in 0..20 {
        store.put(format!("k:h{i:02}"), format!("high{i}")).unwrap();
        store
            .put(format!("k:m{i:02}"), format!("medium{i}"))
            .unwrap();
    }
    store.sync(Stage::Cold).unwrap();
    store.flush().unwrap();
    store.close().unwrap();
    common::corrupt_segment(dir.path(), 80, 0x10);
    std::fs::remove_file(dir.path().join(strata::CLOSED_FILE)).unwrap();
    // The WAL's records are gone (as if truncated after the flush).
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();

    let store = reopen(dir.path(), &clock);
    let report = store.recovery_report().clone();
    assert_eq!(report.segments_quarantined.len(), 1);
    assert_eq!(
        report.versions_rebuilt, 20,
        "the HIGH keys, from the cold tier"
    );
    assert_eq!(report.still_fenced.len(), 1);
    // Reads of the fenced range fail openly; none answers from a stale or missing version.
    assert!(store.get("k:m05").is_err());
    // A new write is not lost to the old LSNs: the WAL continues above them.
    let receipt = store.put("k:new", "n").unwrap();
    assert!(receipt.lsn.unwrap() > 40);

    let id = store.stats().segments.1;
    assert_eq!(id, 1);
    let quarantined = report.still_fenced[0].split_whitespace().nth(1).unwrap();
    store
        .release_quarantine(quarantined.parse().unwrap())
        .unwrap();
    assert_eq!(text(store.get("k:h05").unwrap()).as_deref(), Some("high5"));
    assert_eq!(
        store.get("k:m05").unwrap(),
        None,
        "MEDIUM data only the segment held is lost"
    );
}

/// A crash in the middle of a cold commit leaves git's lock on the branch. The store holds
/// its directory's lock, so at open any such lock is a leftover: it is cleared at once and
/// the next HIGH write reaches the cold tier, with no wait for the lock to grow old.
#[test]
fn a_lock_a_crash_left_in_the_cold_repository_is_cleared_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, Config::default());
    store
        .classify("k:h*", Class::new(Criticality::High))
        .unwrap();
    store.put("k:h1", "one").unwrap();
    store.sync(Stage::Cold).unwrap();
    store.close().unwrap();
    let cold = dir.path().join(strata::COLD_DIR);
    let locks = [cold.join("refs/heads/main.lock"), cold.join("config.lock")];
    for lock in &locks {
        std::fs::write(lock, b"").unwrap();
    }

    let store = reopen(dir.path(), &clock);
    for lock in &locks {
        assert!(!lock.exists(), "{} was left", lock.display());
    }
    let before = common::git(&cold, &["rev-list", "--count", "main"]);
    store.put("k:h2", "two").unwrap();
    store.sync(Stage::Cold).unwrap();
    let after = common::git(&cold, &["rev-list", "--count", "main"]);
    assert!(
        after.trim().parse::<u32>().unwrap() > before.trim().parse::<u32>().unwrap(),
        "the HIGH write reached the cold tier"
    );
}
