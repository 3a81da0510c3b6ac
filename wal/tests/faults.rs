//! Fault injection through the I/O seam: EIO or ENOSPC on the Nth write, fsync, directory
//! fsync, create or rename. No acknowledged record is lost, no failed record is acknowledged,
//! and a file whose write or fsync failed is never written or fsynced again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use strata_wal::{
    errno, CrashMode, Error, FaultyFs, FsOp, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions,
};

fn open(fs: &FaultyFs, policy: SyncPolicy) -> Wal {
    let options = WalOptions {
        sync_policy: policy,
        max_file_size: 400,
        ..WalOptions::default()
    };
    Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap()
}

/// Reopens the disk as a power loss now would leave it, and checks every acknowledged record
/// is there and every record there is one that was appended.
fn verify_after_power_loss(base: &MemFs, acked: &[(u64, usize)], appended: &[Vec<u8>], what: &str) {
    let disk = base.crash(CrashMode::DropUnsynced);
    let wal = common::open_mem(&disk, RecoveryMode::PointInTime)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let log: HashMap<u64, Vec<u8>> = common::read_all(&wal).into_iter().collect();
    for (lsn, i) in acked {
        let got = log
            .get(lsn)
            .unwrap_or_else(|| panic!("{what}: acknowledged LSN {lsn} lost"));
        assert!(
            got == &appended[*i],
            "{what}: acknowledged LSN {lsn} has wrong bytes"
        );
    }
    for (lsn, bytes) in &log {
        assert!(
            appended.contains(bytes),
            "{what}: LSN {lsn} holds bytes never appended"
        );
    }
}

/// After a write or fsync on a file failed, that file sees no more writes or fsyncs (a new
/// file created or renamed to the same path later is another file).
fn assert_failed_files_abandoned(fs: &FaultyFs, what: &str) {
    let events = fs.events();
    for (i, failed) in events.iter().enumerate() {
        if !failed.failed || !matches!(failed.op, FsOp::Write | FsOp::Sync) {
            continue;
        }
        for later in &events[i + 1..] {
            if matches!(later.op, FsOp::Create | FsOp::Rename) && later.path == failed.path {
                break;
            }
            let touches = matches!(later.op, FsOp::Write | FsOp::Sync) && later.path == failed.path;
            assert!(
                !touches,
                "{what}: {:?} on {} after its {:?} failed",
                later.op,
                later.path.display(),
                failed.op
            );
        }
    }
}

/// The 80 records each fault scenario appends, of varied lengths.
fn scenario_records() -> Vec<Vec<u8>> {
    (0..80)
        .map(|i| common::payload(i, 10 + (i as usize * 7) % 90))
        .collect()
}

/// Appends each record of `appended` alone, calling `before` with its index first; returns
/// the acknowledged `(LSN, index)` pairs and the count of failed appends, each of which must
/// have failed as not durable.
fn append_each(
    wal: &Wal,
    appended: &[Vec<u8>],
    what: &str,
    mut before: impl FnMut(usize),
) -> (Vec<(u64, usize)>, usize) {
    let mut acked = Vec::new();
    let mut failures = 0;
    for (i, record) in appended.iter().enumerate() {
        before(i);
        match wal.append(&[record]) {
            Ok(lsn) => {
                assert!(
                    wal.synced_lsn() >= lsn,
                    "{what}: acknowledged LSN {lsn} is not synced"
                );
                acked.push((lsn, i));
            }
            Err(e) => {
                failures += 1;
                assert!(matches!(e, Error::NotDurable { .. }), "{what}: {e}");
                assert!(e.to_string().contains("not durable"), "{what}: {e}");
            }
        }
    }
    (acked, failures)
}

#[test]
fn one_failure_at_any_step_loses_nothing_acknowledged() {
    let ops = [
        FsOp::Write,
        FsOp::Sync,
        FsOp::SyncDir,
        FsOp::Create,
        FsOp::Rename,
    ];
    let mut fired_cases = 0;
    for op in ops {
        for code in [errno::EIO, errno::ENOSPC] {
            for nth in 1..=12 {
                let what = format!("{op:?} #{nth} fails with errno {code}");
                let base = MemFs::new();
                let fs = FaultyFs::new(Arc::new(base.clone()));
                let wal = open(&fs, SyncPolicy::Always);
                fs.fail_nth(op, nth, code);
                let appended = scenario_records();
                let (acked, failures) = append_each(&wal, &appended, &what, |_| {});
                let fired = fs.events().iter().any(|e| e.failed);
                fired_cases += usize::from(fired);
                assert_eq!(
                    failures,
                    usize::from(fired),
                    "{what}: a one-shot fault fails exactly one append"
                );
                assert!(
                    acked.len() >= 79,
                    "{what}: appends did not recover after the fault"
                );
                assert_failed_files_abandoned(&fs, &what);
                verify_after_power_loss(&base, &acked, &appended, &what);
            }
        }
    }
    assert_eq!(fired_cases, 120, "every planned fault fires");
}

#[test]
fn a_full_disk_fails_every_append_until_space_returns_then_keeps_everything() {
    let base = MemFs::new();
    let fs = FaultyFs::new(Arc::new(base.clone()));
    let wal = open(&fs, SyncPolicy::Always);
    let appended: Vec<Vec<u8>> = (0..30).map(|i| common::payload(i, 50)).collect();
    let mut acked = Vec::new();
    for (i, record) in appended.iter().enumerate().take(5) {
        acked.push((wal.append(&[record]).unwrap(), i));
    }
    fs.fail_from(FsOp::Write, 1, errno::ENOSPC);
    for record in &appended[5..15] {
        let err = wal.append(&[record]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("No space left") || format!("{err:?}").contains("28"),
            "{text}"
        );
        assert_eq!(
            wal.synced_lsn(),
            5,
            "a failed append moved the durable watermark"
        );
    }
    fs.heal();
    for (i, record) in appended.iter().enumerate().skip(15) {
        acked.push((wal.append(&[record]).unwrap(), i));
    }
    assert_failed_files_abandoned(&fs, "full disk");
    verify_after_power_loss(&base, &acked, &appended, "full disk");
    // The records whose appends failed were kept in memory and written once space returned.
    let disk = base.crash(CrashMode::DropUnsynced);
    let all =
        common::read_all(&common::open_mem(&disk, RecoveryMode::AbsoluteConsistency).unwrap());
    let payloads: Vec<Vec<u8>> = all.into_iter().map(|(_, p)| p).collect();
    assert_eq!(payloads, appended, "every record, in order, exactly once");
}

#[test]
fn a_failed_sync_under_never_is_retried_in_a_fresh_file() {
    let base = MemFs::new();
    let fs = FaultyFs::new(Arc::new(base.clone()));
    let wal = open(&fs, SyncPolicy::Never);
    let appended: Vec<Vec<u8>> = (0..6).map(|i| common::payload(i, 20)).collect();
    for record in &appended[..3] {
        wal.append(&[record]).unwrap();
    }
    wal.sync().unwrap();
    for record in &appended[3..] {
        wal.append(&[record]).unwrap();
    }
    fs.fail_nth(FsOp::Sync, 1, errno::EIO);
    let err = wal.sync().unwrap_err();
    assert!(
        matches!(&err, Error::NotDurable { durable: 3, .. }),
        "{err}"
    );
    assert_eq!(wal.synced_lsn(), 3);
    assert_eq!(wal.sync().unwrap(), 6);
    assert_failed_files_abandoned(&fs, "never");
    assert_eq!(
        wal.files().len(),
        2,
        "the records after the failed fsync went to a fresh file"
    );
    let acked: Vec<(u64, usize)> = (1..=6).map(|lsn| (lsn, lsn as usize - 1)).collect();
    verify_after_power_loss(&base, &acked, &appended, "never");
}

#[test]
fn a_failed_sync_after_more_than_the_retained_bytes_stops_the_log_until_reopened() {
    let options = WalOptions {
        max_file_size: 400,
        write_buffer_size: 128,
        retain_unsynced_bytes: 256,
        ..WalOptions::default()
    };
    failed_sync_after_records_were_let_go_stops_the_log(options, 20, 60);
}

/// As above, with every written record let go of (none held in memory at all): the sync
/// after the failure has nothing to rewrite, and must still not count them durable.
#[test]
fn a_failed_sync_after_every_written_record_was_let_go_stops_the_log() {
    let options = WalOptions {
        write_buffer_size: 64,
        retain_unsynced_bytes: 0,
        ..WalOptions::default()
    };
    failed_sync_after_records_were_let_go_stops_the_log(options, 10, 100);
}

/// Under `Never` with `options`' buffer sizes, syncs one record, appends `count` records of
/// `len` bytes (more than `retain_unsynced_bytes`), then fails the next fsync: the log must
/// refuse to go on, never fsync again, and report nothing past the first record durable.
fn failed_sync_after_records_were_let_go_stops_the_log(
    options: WalOptions,
    count: u64,
    len: usize,
) {
    let base = MemFs::new();
    let fs = FaultyFs::new(Arc::new(base.clone()));
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        // The armed fault must meet the sync below, not a write running in the background.
        write_behind: false,
        ..options
    };
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap();
    wal.append(&[b"durable"]).unwrap();
    wal.sync().unwrap();
    for i in 0..count {
        wal.append(&[&common::payload(i, len)]).unwrap();
    }
    fs.fail_nth(FsOp::Sync, 1, errno::EIO);
    let err = wal.sync().unwrap_err();
    assert!(matches!(err, Error::NotDurable { durable: 1, .. }), "{err}");
    let fsyncs = || fs.events().iter().filter(|e| e.op == FsOp::Sync).count();
    let fsyncs_at_failure = fsyncs();
    // The records it would have to rewrite are no longer in memory: it refuses to go on.
    for _ in 0..2 {
        let err = wal.sync().unwrap_err();
        assert!(matches!(err, Error::Stopped(_)), "{err}");
        assert!(err.to_string().contains("reopen"), "{err}");
        let err = wal.append(&[b"refused"]).unwrap_err();
        assert!(matches!(err, Error::Stopped(_)), "{err}");
    }
    assert_eq!(
        wal.synced_lsn(),
        1,
        "nothing past the failure is reported durable"
    );
    assert_eq!(fsyncs(), fsyncs_at_failure, "no fsync after the failure");
    drop(wal);
    let reopened = common::open_mem(
        &base.crash(CrashMode::DropUnsynced),
        RecoveryMode::PointInTime,
    )
    .unwrap();
    assert_eq!(common::read_all(&reopened)[0], (1, b"durable".to_vec()));
}

/// A write that panics half-way (a faulty `Fs`) leaves part of a chunk in the file. The log
/// must not append after those bytes: recovery would cut the file there and lose records
/// that later syncs acknowledged.
#[test]
fn a_write_that_panics_half_way_loses_nothing_acknowledged() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let base = MemFs::new();
        let fs = FaultyFs::new(Arc::new(base.clone()));
        let options = WalOptions {
            sync_policy: policy,
            write_behind: false,
            ..WalOptions::default()
        };
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap();
        wal.append(&[b"first"]).unwrap();
        wal.sync().unwrap();
        fs.panic_in_nth_write(1);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = wal.append(&[b"second"]);
            wal.sync()
        }));
        assert!(panicked.is_err(), "{policy:?}: the planned panic happened");
        let last = wal.append(&[b"third"]).unwrap();
        assert_eq!(wal.sync().unwrap(), last, "{policy:?}");
        std::mem::forget(wal);
        let reopened = common::open_mem(
            &base.crash(CrashMode::DropUnsynced),
            RecoveryMode::AbsoluteConsistency,
        )
        .unwrap();
        let expected: Vec<(u64, Vec<u8>)> = [&b"first"[..], b"second", b"third"]
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r.to_vec()))
            .collect();
        assert_eq!(common::read_all(&reopened), expected, "{policy:?}");
    }
}

/// Extending a new file with zeros (preallocation) and trimming a finished one both change
/// a file's length. A failed extension fails the append that needed the file, like a failed
/// create; a failed trim fails nothing, since zeros past the records read as the file's end.
#[test]
fn a_failed_preallocation_or_trim_loses_nothing_acknowledged() {
    let (mut fired_cases, mut failed_appends) = (0, 0);
    for code in [errno::EIO, errno::ENOSPC] {
        for nth in 1..=12 {
            let what = format!("set_len #{nth} fails with errno {code}");
            let base = MemFs::new();
            let fs = FaultyFs::new(Arc::new(base.clone()));
            let wal = open(&fs, SyncPolicy::Always);
            fs.fail_nth(FsOp::SetLen, nth, code);
            let appended = scenario_records();
            let (acked, failures) = append_each(&wal, &appended, &what, |i| {
                if i % 10 == 5 {
                    // A roll trims the file it leaves (its zeros past the records); a roll
                    // whose new file cannot be extended fails, and the next append repairs.
                    let _ = wal.roll();
                }
            });
            fired_cases += usize::from(fs.events().iter().any(|e| e.failed));
            assert!(failures <= 1, "{what}: {failures} appends failed");
            failed_appends += failures;
            assert!(acked.len() >= 79, "{what}: appends did not recover");
            drop(wal);
            verify_after_power_loss(&base, &acked, &appended, &what);
        }
    }
    assert!(fired_cases >= 20, "only {fired_cases} planned faults fired");
    // Both kinds were hit: extensions (an append failed) and trims (none did).
    assert!(
        failed_appends > 0 && failed_appends < fired_cases,
        "{failed_appends} failed appends in {fired_cases} cases"
    );
}

/// Under write-behind the background thread meets the failure: the next append reports it,
/// the file that failed is never touched again, and the next sync puts every record, those
/// of the failed write included, into a fresh file.
#[test]
fn a_failed_background_write_is_reported_and_its_records_rewritten() {
    for (op, nth) in [(FsOp::Write, 3), (FsOp::Create, 2), (FsOp::Rename, 2)] {
        let what = format!("{op:?} #{nth} in the background");
        let base = MemFs::new();
        let fs = FaultyFs::new(Arc::new(base.clone()));
        let options = WalOptions {
            sync_policy: SyncPolicy::Never,
            max_file_size: 2_000,
            write_buffer_size: 256,
            ..WalOptions::default()
        };
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap();
        fs.fail_nth(op, nth, errno::EIO);
        let appended: Vec<Vec<u8>> = (0..400).map(|i| common::payload(i, 60)).collect();
        let mut reported = Vec::new();
        for (i, record) in appended.iter().enumerate() {
            if let Err(e) = wal.append(&[record]) {
                assert!(matches!(e, Error::NotDurable { .. }), "{what}: {e}");
                reported.push(i);
            }
        }
        assert_eq!(reported.len(), 1, "{what}: reported once: {reported:?}");
        assert!(
            fs.events().iter().any(|event| event.failed),
            "{what}: the fault fired"
        );
        assert_eq!(wal.sync().unwrap(), 400, "{what}");
        assert_failed_files_abandoned(&fs, &what);
        // Every record was appended, the one whose append reported the failure included.
        let acked: Vec<(u64, usize)> = (1..=400).map(|lsn| (lsn, lsn as usize - 1)).collect();
        verify_after_power_loss(&base, &acked, &appended, &what);
    }
}
