//! Rolling the active file on demand: the records written so far end up in files that
//! `truncate_before` can remove whole, nothing is lost across a crash, and LSNs carry on.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{options, payload, read_all, DIR};
use strata_wal::{
    errno, CrashMode, FaultyFs, FsOp, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions,
};

fn open(fs: &MemFs, policy: SyncPolicy) -> Wal {
    Wal::open_with_fs(
        Arc::new(fs.clone()),
        DIR,
        options(policy, RecoveryMode::TolerateCorruptedTail),
    )
    .unwrap()
}

fn first_lsns(wal: &Wal) -> Vec<u64> {
    wal.files().into_iter().map(|(lsn, _)| lsn).collect()
}

#[test]
fn a_roll_lets_truncation_free_every_record_written_before_it() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always);
    for i in 0..5 {
        wal.append(&[&payload(i, 50)]).unwrap();
    }
    assert_eq!(first_lsns(&wal), vec![1]);
    wal.roll().unwrap();
    assert_eq!(
        first_lsns(&wal),
        vec![1, 6],
        "a new, empty file named by the next LSN"
    );
    // A second roll with nothing written since has nothing to separate.
    wal.roll().unwrap();
    assert_eq!(first_lsns(&wal), vec![1, 6]);

    // Everything before the roll is redundant now: the whole first file goes.
    wal.truncate_before(6).unwrap();
    assert_eq!(first_lsns(&wal), vec![6]);
    assert_eq!(wal.append(&[b"after"]).unwrap(), 6);
    assert!(
        wal.read_from(1).is_err(),
        "a read from before the oldest file is refused"
    );
    let tail: Vec<_> = wal.read_from(6).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(tail, vec![(6, b"after".to_vec())]);
    drop(wal);

    let wal = open(&fs, SyncPolicy::Always);
    assert_eq!(wal.last_lsn(), 6);
    assert_eq!(wal.append(&[b"next"]).unwrap(), 7);
}

#[test]
fn a_roll_after_truncating_to_the_end_keeps_the_lsn_floor() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always);
    wal.append(&[b"a", b"b", b"c"]).unwrap();
    wal.roll().unwrap();
    wal.truncate_before(4).unwrap();
    drop(wal);
    // Only the empty file is left; its name keeps LSNs from being handed out again.
    let wal = open(&fs, SyncPolicy::Always);
    assert_eq!(first_lsns(&wal), vec![4]);
    assert_eq!(wal.append(&[b"d"]).unwrap(), 4);
}

#[test]
fn unsynced_records_in_a_rolled_file_become_durable_with_the_next_sync() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Never);
    for i in 0..3 {
        wal.append(&[&payload(i, 4000)]).unwrap();
    }
    // Under `Never` the records may still be buffered: the roll writes nothing of its own,
    // so they land in whichever file is active when they are written.
    wal.roll().unwrap();
    wal.append(&[b"four"]).unwrap();
    assert_eq!(wal.sync().unwrap(), 4);
    let after = fs.crash(CrashMode::DropUnsynced);
    let wal = open(&after, SyncPolicy::Never);
    let all = read_all(&wal);
    assert_eq!(all.len(), 4);
    assert_eq!(all[3], (4, b"four".to_vec()));
    for (i, (lsn, record)) in all[..3].iter().enumerate() {
        assert_eq!((*lsn, record), (i as u64 + 1, &payload(i as u64, 4000)));
    }
}

#[test]
fn records_synced_then_rolled_survive_a_crash_in_their_own_file() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Never);
    wal.append(&[b"one", b"two"]).unwrap();
    wal.sync().unwrap();
    wal.roll().unwrap();
    wal.append(&[b"three"]).unwrap();
    wal.sync().unwrap();
    assert_eq!(first_lsns(&wal), vec![1, 3]);
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepPrefix { seed: 9 }] {
        let wal = open(&fs.crash(mode), SyncPolicy::Never);
        let lsns: Vec<u64> = read_all(&wal).into_iter().map(|(lsn, _)| lsn).collect();
        assert_eq!(lsns, vec![1, 2, 3]);
    }
}

#[test]
fn a_roll_makes_written_records_durable_before_the_new_file_exists() {
    let fs = MemFs::new();
    let options = WalOptions {
        write_behind: false,
        ..options(SyncPolicy::Never, RecoveryMode::TolerateCorruptedTail)
    };
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, options).unwrap();
    // Larger than the write buffer, so the append writes it out at once, without an fsync.
    let big = payload(1, 300 << 10);
    wal.append(&[&big]).unwrap();
    assert_eq!(wal.synced_lsn(), 0, "written, not yet durable");
    wal.roll().unwrap();
    assert_eq!(wal.synced_lsn(), 1, "the roll synced it first");
    wal.append(&[b"after"]).unwrap();
    // A crash now loses only what followed the roll; the strict mode sees no damage.
    let wal = open(&fs.crash(CrashMode::DropUnsynced), SyncPolicy::Never);
    assert_eq!(read_all(&wal), vec![(1, big)]);
    assert_eq!(first_lsns(&wal), vec![1, 2]);
}

#[test]
fn a_roll_that_fails_sends_the_next_records_to_a_fresh_file() {
    let mem = MemFs::new();
    let faulty = FaultyFs::new(Arc::new(mem.clone()));
    let wal = Wal::open_with_fs(
        Arc::new(faulty.clone()),
        DIR,
        options(SyncPolicy::Always, RecoveryMode::TolerateCorruptedTail),
    )
    .unwrap();
    wal.append(&[b"one", b"two"]).unwrap();
    // The new file is renamed into place, then the directory fsync fails.
    faulty.fail_nth(FsOp::SyncDir, 1, errno::EIO);
    assert!(wal.roll().is_err());
    // The old file is not written again: the next records go to a file of their own, which
    // replaces the empty one the failed roll left.
    assert_eq!(wal.append(&[b"three"]).unwrap(), 3);
    assert_eq!(wal.append(&[b"four"]).unwrap(), 4);
    drop(wal);
    let wal = open(&mem.crash(CrashMode::DropUnsynced), SyncPolicy::Always);
    let lsns: Vec<u64> = read_all(&wal).into_iter().map(|(lsn, _)| lsn).collect();
    assert_eq!(lsns, vec![1, 2, 3, 4]);
    assert_eq!(first_lsns(&wal), vec![1, 3]);
}
