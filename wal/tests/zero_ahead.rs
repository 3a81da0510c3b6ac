//! Zeros written ahead: under `Always`, a preallocated file gets zeros written past its
//! records, a step at a time, so that a durable append lands on disk blocks the filesystem
//! has already allocated. The zeros never touch a record, a failure to write them costs
//! nothing but the speed-up, and the other sync policies and recovery modes never write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_wal::{errno, FaultyFs, FsOp, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

/// Large enough for several zeroing steps in one file.
const FILE_SIZE: u64 = 4 << 20;
const RECORD: usize = 4000;

fn options(policy: SyncPolicy, mode: RecoveryMode) -> WalOptions {
    WalOptions {
        max_file_size: FILE_SIZE,
        ..common::options(policy, mode)
    }
}

/// Appends `count` records of [`RECORD`] bytes, one per batch, and syncs.
fn append(wal: &Wal, count: u64) -> Vec<Vec<u8>> {
    let written: Vec<Vec<u8>> = (0..count).map(|i| common::payload(i, RECORD)).collect();
    for record in &written {
        wal.append(&[record]).unwrap();
    }
    wal.sync().unwrap();
    written
}

/// A log on a counting filesystem over memory: the memory, the counter and the log.
fn open_counted(options: WalOptions) -> (MemFs, FaultyFs, Wal) {
    let mem = MemFs::new();
    let fs = FaultyFs::new(Arc::new(mem.clone()));
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::dir(), options).unwrap();
    (mem, fs, wal)
}

fn zero_writes(fs: &FaultyFs) -> Vec<bool> {
    fs.events()
        .into_iter()
        .filter(|e| e.op == FsOp::WriteZeros)
        .map(|e| e.failed)
        .collect()
}

fn reopen_and_read(fs: &MemFs, policy: SyncPolicy) -> Vec<Vec<u8>> {
    let wal = Wal::open_with_fs(
        Arc::new(fs.clone()),
        common::dir(),
        options(policy, RecoveryMode::PointInTime),
    )
    .unwrap();
    assert_eq!(wal.recovery_report().dropped_records, 0);
    common::read_all(&wal).into_iter().map(|(_, r)| r).collect()
}

#[test]
fn under_always_zeros_go_ahead_of_the_records_in_steps_and_never_over_them() {
    let (mem, fs, wal) = open_counted(options(SyncPolicy::Always, RecoveryMode::PointInTime));
    // About 1.2 MiB of records: a new step each time less than half of one (128 KiB) is
    // left, so about ten zero writes, not one per append.
    let written = append(&wal, 300);
    let steps = zero_writes(&fs);
    assert!(
        (8..=12).contains(&steps.len()),
        "{} zero writes for 300 appends",
        steps.len()
    );
    assert!(steps.iter().all(|failed| !failed));
    // Each zero write comes right after an fsync, when the file holds nothing unsynced that
    // a failed write could hide.
    let events = fs.events();
    for (i, event) in events.iter().enumerate() {
        if event.op == FsOp::WriteZeros {
            assert!(
                i > 0 && events[i - 1].op == FsOp::Sync,
                "{:?}",
                &events[..=i]
            );
        }
    }
    drop(wal);
    assert_eq!(reopen_and_read(&mem, SyncPolicy::Always), written);
}

#[test]
fn zeros_stop_at_the_preallocated_size_and_start_again_in_the_next_file() {
    let (mem, fs, wal) = open_counted(WalOptions {
        max_file_size: 64 << 10,
        ..common::options(SyncPolicy::Always, RecoveryMode::PointInTime)
    });
    // Three files' worth: one zero write each, capped at the file's size.
    let written = append(&wal, 45);
    assert_eq!(zero_writes(&fs).len(), 3);
    drop(wal);
    assert_eq!(reopen_and_read(&mem, SyncPolicy::Always), written);
}

#[test]
fn a_failed_zero_write_costs_only_the_speed_up() {
    let mem = MemFs::new();
    let fs = FaultyFs::new(Arc::new(mem.clone()));
    fs.fail_from(FsOp::WriteZeros, 1, errno::ENOSPC);
    let wal = Wal::open_with_fs(
        Arc::new(fs.clone()),
        common::dir(),
        options(SyncPolicy::Always, RecoveryMode::PointInTime),
    )
    .unwrap();
    let written = append(&wal, 300);
    assert_eq!(
        zero_writes(&fs),
        vec![true],
        "tried once, then never again in that file"
    );
    assert_eq!(wal.synced_lsn(), 300);
    drop(wal);
    assert_eq!(reopen_and_read(&mem, SyncPolicy::Always), written);
}

#[test]
fn a_huge_write_buffer_setting_does_not_allocate_it() {
    let options = WalOptions {
        write_buffer_size: usize::MAX,
        ..options(SyncPolicy::Never, RecoveryMode::PointInTime)
    };
    let (mem, _, wal) = open_counted(options);
    let written = append(&wal, 10);
    drop(wal);
    assert_eq!(reopen_and_read(&mem, SyncPolicy::Never), written);
}

#[test]
fn other_policies_and_strict_modes_write_no_zeros() {
    let cases = [
        (SyncPolicy::Never, RecoveryMode::PointInTime),
        (
            SyncPolicy::Interval(std::time::Duration::from_secs(3600)),
            RecoveryMode::PointInTime,
        ),
        (SyncPolicy::Always, RecoveryMode::TolerateCorruptedTail),
        (SyncPolicy::Always, RecoveryMode::AbsoluteConsistency),
    ];
    for (policy, mode) in cases {
        let (_, fs, wal) = open_counted(options(policy, mode));
        append(&wal, 100);
        assert!(zero_writes(&fs).is_empty(), "{policy:?} {mode:?}");
    }
}

/// True if `dir`'s filesystem keeps a file extended by `set_len` as a hole and gives written
/// zeros real blocks (ext4, XFS and tmpfs do; a compressing filesystem turns zeros back into
/// holes, and one without holes allocates everything).
fn holes_and_zero_blocks_are_told_apart(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let probe = dir.join("probe");
    let file = std::fs::File::create(&probe).unwrap();
    file.set_len(1 << 20).unwrap();
    let hole = file.metadata().unwrap().blocks() * 512;
    file.write_all_at(&[0u8; 64 << 10], 0).unwrap();
    file.sync_all().unwrap();
    let written = file.metadata().unwrap().blocks() * 512;
    std::fs::remove_file(&probe).unwrap();
    hole < 64 << 10 && written >= 64 << 10
}

/// On the real filesystem the zeros ahead are allocated blocks, not a hole.
#[test]
fn zeros_ahead_take_disk_blocks_on_a_real_filesystem() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    if !holes_and_zero_blocks_are_told_apart(dir.path()) {
        eprintln!("skipped: this filesystem does not tell holes from written zeros");
        return;
    }
    let wal = Wal::open(dir.path().join("wal"), WalOptions::default()).unwrap();
    wal.append(&[b"one record"]).unwrap();
    let file = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .expect("a WAL file");
    let meta = file.metadata().unwrap();
    assert_eq!(meta.len(), WalOptions::default().max_file_size);
    let allocated = meta.blocks() * 512;
    assert!(
        allocated >= 256 << 10,
        "{allocated} bytes allocated: the zeros ahead are a hole"
    );
    assert!(
        allocated < 8 << 20,
        "{allocated} bytes allocated: far more than one step"
    );
}
