//! Recovery across files: damage in an older file, the three modes, setting files aside
//! without reusing LSNs, and readers that keep a consistent prefix while the log changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_wal::{format, Error, Fs, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

fn open(fs: &MemFs, mode: RecoveryMode) -> strata_wal::Result<Wal> {
    let options = WalOptions {
        recovery_mode: mode,
        max_file_size: 300,
        ..WalOptions::default()
    };
    Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options)
}

/// A log of 30 records spread over several files.
fn multi_file_log() -> (MemFs, Vec<(u64, std::path::PathBuf)>) {
    let fs = MemFs::new();
    let wal = open(&fs, RecoveryMode::PointInTime).unwrap();
    for i in 0..30 {
        wal.append(&[&common::payload(i, 40)]).unwrap();
    }
    let files = wal.files();
    assert!(files.len() >= 4, "{files:?}");
    (fs, files)
}

#[test]
fn damage_in_an_older_file_is_an_error_in_strict_modes_and_a_cut_in_point_in_time() {
    let (fs, files) = multi_file_log();
    let (_, second) = &files[1];
    let mut bytes = fs.read_file(second).unwrap();
    let flip_at = format::FILE_HEADER_LEN + format::FRAME_HEADER_LEN + 3;
    bytes[flip_at] ^= 0x10;
    fs.write_file(second, &bytes);

    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateCorruptedTail,
    ] {
        let err = open(&fs, mode).unwrap_err();
        match &err {
            Error::Corruption { path, offset, .. } => {
                assert_eq!(path, second);
                assert_eq!(*offset, format::FILE_HEADER_LEN as u64);
            }
            other => panic!("{mode:?}: {other}"),
        }
    }

    let wal = open(&fs, RecoveryMode::PointInTime).unwrap();
    let report = wal.recovery_report().clone();
    let kept = common::read_all(&wal);
    assert_eq!(
        kept.last().unwrap().0,
        files[1].0 - 1,
        "cut before the damaged first record of the second file"
    );
    assert_eq!(
        report.set_aside.len(),
        files.len() - 1,
        "the damaged file kept no record, so it goes too"
    );
    assert!(report.dropped_records > 0 && report.dropped_bytes > 0);
    assert!(!report.damage.as_ref().unwrap().torn_tail);
    for aside in &report.set_aside {
        assert!(aside.to_string_lossy().ends_with(".dropped"));
        assert!(
            fs.read_file(aside).is_some(),
            "set-aside files are kept for inspection"
        );
    }

    // The next LSN continues after the highest LSN ever named, never reusing one.
    let highest_named = files.last().unwrap().0;
    let next = wal.append(&[b"after the cut"]).unwrap();
    assert_eq!(next, highest_named, "{report:?}");
    drop(wal);
    // The deliberate gap is recorded, so even the strictest mode accepts the log now.
    let wal = open(&fs, RecoveryMode::AbsoluteConsistency).unwrap();
    let lsns: Vec<u64> = common::read_all(&wal).into_iter().map(|(l, _)| l).collect();
    assert_eq!(*lsns.last().unwrap(), highest_named);
    assert!(wal.recovery_report().is_clean());
}

#[test]
fn a_missing_middle_file_is_a_gap() {
    let (fs, files) = multi_file_log();
    fs.remove_file(&files[2].1).unwrap();
    fs.sync_dir(&common::dir()).unwrap();
    let err = open(&fs, RecoveryMode::TolerateCorruptedTail).unwrap_err();
    assert!(err.to_string().contains("LSN gap"), "{err}");
    let wal = open(&fs, RecoveryMode::PointInTime).unwrap();
    assert_eq!(common::read_all(&wal).last().unwrap().0, files[2].0 - 1);
}

#[test]
fn a_file_named_for_one_lsn_but_holding_another_is_corruption() {
    let (fs, files) = multi_file_log();
    let last = &files.last().unwrap().1;
    let bytes = fs.read_file(last).unwrap();
    fs.remove_file(last).unwrap();
    fs.write_file(&common::dir().join(format::file_name(10_000)), &bytes);
    let err = open(&fs, RecoveryMode::AbsoluteConsistency).unwrap_err();
    assert!(err.to_string().contains("file name says 10000"), "{err}");
}

#[test]
fn stray_files_are_ignored_and_half_created_files_removed() {
    let (fs, files) = multi_file_log();
    fs.write_file(&common::dir().join("README"), b"not a log file");
    let temp = common::dir().join(format!("{}.tmp", format::file_name(31)));
    fs.write_file(&temp, b"half a header");
    let wal = open(&fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(wal.files(), files);
    assert!(fs.read_file(&temp).is_none());
    assert!(fs.read_file(&common::dir().join("README")).is_some());
}

#[test]
fn readers_see_a_consistent_prefix_while_the_log_is_appended_and_truncated() {
    let fs = MemFs::new();
    let wal = open(&fs, RecoveryMode::PointInTime).unwrap();
    for i in 0..20 {
        wal.append(&[&common::payload(i, 40), &common::payload(i + 100, 5)])
            .unwrap();
    }
    let reader = wal.read_from(1).unwrap();
    for i in 20..40 {
        wal.append(&[&common::payload(i, 40)]).unwrap();
    }
    wal.truncate_before(30).unwrap();
    let seen: Vec<(u64, Vec<u8>)> = reader.map(|r| r.unwrap()).collect();
    assert_eq!(
        seen.len(),
        40,
        "exactly the records appended before the reader started"
    );
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, (lsn, _))| *lsn == i as u64 + 1));

    assert!(matches!(
        wal.read_from(1),
        Err(Error::Truncated { requested: 1, .. })
    ));
    let rest: Vec<u64> = wal.read_from(30).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(rest, (30..=60).collect::<Vec<_>>());
    assert!(
        wal.files()[0].0 <= 30,
        "truncation removes whole files only"
    );
}

#[test]
fn never_policy_buffers_until_sync_and_close_makes_it_durable() {
    let fs = MemFs::new();
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap();
    let lsn = wal.append(&[b"buffered"]).unwrap();
    assert_eq!(wal.synced_lsn(), 0);
    assert_eq!(wal.close().unwrap(), lsn);
    let crashed = fs.crash(strata_wal::CrashMode::DropUnsynced);
    let wal = open(&crashed, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(common::read_all(&wal), vec![(1, b"buffered".to_vec())]);
}
