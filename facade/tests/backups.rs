//! Backups: a checkpoint of a live store holds every acknowledged MEDIUM-or-higher write, is
//! verified file by file, restores into a working store with its git history, refuses to
//! restore when damaged, and rotates daily and weekly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{clock, open, reopen, text};
use strata::tiering::clock::Clock;
use strata::{verify_backup, Class, Config, Criticality, Error, Rotation, Stage, Store};

const DAY_MS: u64 = 86_400_000;

fn classified(store: &Store) {
    store
        .classify("low:*", Class::new(Criticality::Low))
        .unwrap();
    store
        .classify("high:*", Class::new(Criticality::High))
        .unwrap();
}

/// Warm segments, a cold commit, a frozen-then-flushed memtable and fresh log records.
fn fill(store: &Store) {
    classified(store);
    for i in 0..40 {
        store.put(format!("high:{i:02}"), format!("h{i}")).unwrap();
        store.put(format!("med:{i:02}"), format!("m{i}")).unwrap();
    }
    store.sync(Stage::Cold).unwrap();
    store.flush().unwrap();
    for i in 20..60 {
        store.put(format!("med:{i:02}"), format!("m2-{i}")).unwrap();
    }
    store.flush().unwrap();
    store.delete("med:00").unwrap();
    store.put("low:gone", "memory only").unwrap();
    for i in 0..10 {
        store.put(format!("tail:{i}"), format!("t{i}")).unwrap();
    }
}

fn expected(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: Vec<_> = store
        .scan_prefix("")
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|(k, _)| !k.as_bytes().starts_with(b"low:"))
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    all.sort();
    all
}

fn restore(
    checkpoint: &Path,
    dir: &Path,
    clock: &Arc<strata::tiering::clock::ManualClock>,
) -> Store {
    let (store, report) = Store::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .restore_from(checkpoint)
        .unwrap();
    assert!(report.verified.is_clean(), "{:?}", report.verified.problems);
    assert!(report.files > 0);
    store
}

#[test]
fn a_checkpoint_restores_every_durable_write_and_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let live = dir.path().join("live");
    let store = open(&live, &clock, Config::default());
    fill(&store);
    let before = expected(&store);

    let cp = dir.path().join("cp");
    let mut steps = Vec::new();
    let checkpoint = store
        .checkpoint_with_progress(&cp, &mut |step| steps.push(step.to_owned()))
        .unwrap();
    assert!(steps.len() >= 3, "{steps:?}");
    assert!(checkpoint.flushed_lsn > 0 && checkpoint.committed_lsn > 0);
    assert!(checkpoint.wal_synced_lsn >= checkpoint.flushed_lsn + 10);
    assert!(checkpoint.cold_head.is_some());
    // Never into a directory with something in it.
    assert!(matches!(store.checkpoint(&cp), Err(Error::Backup { .. })));

    // Writes and compaction go on; the checkpoint does not move.
    store.put("med:after", "later").unwrap();
    store.compact().unwrap();
    let report = verify_backup(&cp).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.segments, 2);
    assert!(report.wal_records >= 10);
    assert!(report.cold_commits >= 1);
    // git reads the bundle as it is.
    common::git(
        &live.join("cold.git"),
        &["bundle", "verify", cp.join("cold.bundle").to_str().unwrap()],
    );

    let restored = restore(&cp, &dir.path().join("restored"), &clock);
    assert_eq!(expected(&restored), before);
    assert_eq!(
        restored.get("low:gone").unwrap(),
        None,
        "LOW writes live in memory only"
    );
    assert_eq!(restored.get("med:after").unwrap(), None);
    assert_eq!(restored.history("high:01").unwrap().len(), 1);
    assert_eq!(text(restored.get("tail:9").unwrap()).as_deref(), Some("t9"));
    // The restored store is a store: it writes, commits and reopens.
    restored.put("high:new", "n").unwrap();
    restored.sync(Stage::Cold).unwrap();
    let restored_dir = restored.dir().to_owned();
    restored.close().unwrap();
    let reopened = reopen(&restored_dir, &clock);
    assert!(!reopened.recovery_report().unclean_shutdown);
    assert_eq!(
        text(reopened.get("high:new").unwrap()).as_deref(),
        Some("n")
    );
    assert!(reopened.verify().unwrap().is_clean());
    // Restoring over an existing store is refused.
    let again = Store::builder(&restored_dir).restore_from(&cp);
    assert!(
        matches!(again, Err(Error::Backup { .. })),
        "{:?}",
        again.err()
    );
}

#[test]
fn damage_is_named_and_a_damaged_checkpoint_is_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(&dir.path().join("live"), &clock, Config::default());
    fill(&store);
    let cp = dir.path().join("cp");
    store.checkpoint(&cp).unwrap();
    // Compaction drops the store's own names of the linked segments, so damaging the
    // checkpoint's copies below cannot reach the live store.
    store.compact().unwrap();

    let flip = |path: &Path, at: usize| {
        let mut bytes = std::fs::read(path).unwrap();
        let at = at.min(bytes.len() - 1);
        bytes[at] ^= 0x5A;
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(path, perms).unwrap();
        std::fs::write(path, &bytes).unwrap();
    };
    let wal = common::last_wal_file(&cp);
    flip(&wal, 60);
    common::corrupt_segment(&cp, 100, 0x5A);
    flip(&cp.join("cold.bundle"), 200);

    let report = verify_backup(&cp).unwrap();
    let all = report.problems.join("\n");
    assert!(
        all.contains(wal.file_name().unwrap().to_str().unwrap()),
        "{all}"
    );
    assert!(all.contains(".seg"), "{all}");
    assert!(all.contains("cold.bundle"), "{all}");
    assert!(all.contains("CRC32"), "{all}");

    let target = dir.path().join("restored");
    let err = Store::builder(&target).restore_from(&cp).err().unwrap();
    assert!(matches!(err, Error::Backup { .. }), "{err}");
    assert!(err.to_string().contains("not restored"), "{err}");
    assert!(!target.join("config.json").exists(), "nothing written");

    // An unfinished checkpoint is not one.
    std::fs::remove_file(cp.join("CHECKPOINT.json")).unwrap();
    let err = verify_backup(&cp).unwrap_err();
    assert!(err.to_string().contains("never finished"), "{err}");
}

#[test]
fn checkpoints_rotate_daily_and_weekly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(&dir.path().join("live"), &clock, Config::default());
    let root = dir.path().join("backups");
    let rotation = Rotation {
        daily: 3,
        weekly: 2,
    };
    let names = |sub: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };

    store.put("k", "day 0").unwrap();
    let first = store.checkpoint_rotating(&root, rotation).unwrap();
    assert_eq!(first.written.len(), 2, "the day's and the week's");
    assert_eq!(names("daily"), ["2023-11-14"]);
    assert_eq!(names("weekly"), ["2023-W46"]);
    // The same day again: nothing new.
    let again = store.checkpoint_rotating(&root, rotation).unwrap();
    assert!(again.written.is_empty() && again.removed.is_empty());
    assert_eq!(again.today, first.today);

    // An unfinished one (a crash mid-checkpoint) is cleared and taken again.
    clock.advance(DAY_MS);
    std::fs::create_dir_all(root.join("daily/2023-11-15/wal")).unwrap();
    let report = store.checkpoint_rotating(&root, rotation).unwrap();
    assert!(report.removed.iter().any(|p| p.ends_with("2023-11-15")));
    assert!(verify_backup(&report.today).unwrap().is_clean());

    for day in 2..=14u64 {
        clock.set(common::START_MS + day * DAY_MS);
        store.put("k", format!("day {day}")).unwrap();
        store.checkpoint_rotating(&root, rotation).unwrap();
    }
    assert_eq!(names("daily"), ["2023-11-26", "2023-11-27", "2023-11-28"]);
    assert_eq!(names("weekly"), ["2023-W47", "2023-W48"]);
    // The weekly checkpoint is the week's first daily one, linked, and whole.
    let weekly = root.join("weekly/2023-W48");
    assert!(verify_backup(&weekly).unwrap().is_clean());
    let restored = restore(&weekly, &dir.path().join("restored"), &clock);
    // 2023-11-27 is the Monday of W48: day 13.
    assert_eq!(text(restored.get("k").unwrap()).as_deref(), Some("day 13"));
}
