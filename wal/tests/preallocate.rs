//! Preallocated files: a new file is extended with zeros so that a durable append writes over
//! space the file already has. Zeros from a batch boundary to the end are the file's clean
//! end in every recovery mode; recovery and a clean close trim them; data after such zeros is
//! damage; and a power cut at any point keeps every synced record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_wal::{format, CrashMode, Fs, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

const FILE_SIZE: u64 = 64 << 10;

fn options(policy: SyncPolicy, mode: RecoveryMode) -> WalOptions {
    WalOptions {
        max_file_size: FILE_SIZE,
        ..common::options(policy, mode)
    }
}

fn open(fs: &MemFs, policy: SyncPolicy, mode: RecoveryMode) -> strata_wal::Result<Wal> {
    Wal::open_with_fs(Arc::new(fs.clone()), common::dir(), options(policy, mode))
}

fn wal_files(fs: &MemFs) -> Vec<(String, usize)> {
    let mut names: Vec<String> = fs
        .list_dir(&common::dir())
        .unwrap()
        .into_iter()
        .filter(|n| format::parse_file_name(n).is_some())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let len = fs.read_file(&common::dir().join(&n)).unwrap().len();
            (n, len)
        })
        .collect()
}

fn written_len(records: &[Vec<u8>]) -> usize {
    format::FILE_HEADER_LEN
        + records
            .iter()
            .map(|r| format::FRAME_HEADER_LEN + r.len())
            .sum::<usize>()
}

fn records(count: u64, len: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| common::payload(i, len)).collect()
}

/// Appends `written` durably, then cuts the power with the log open (its file still holding
/// its preallocated zeros): the disk after the cut, the WAL file's path and its bytes.
fn crashed_with_zeros(written: &[Vec<u8>]) -> (MemFs, PathBuf, Vec<u8>) {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always, RecoveryMode::PointInTime).unwrap();
    for record in written {
        wal.append(&[record]).unwrap();
    }
    let image = fs.crash(CrashMode::DropUnsynced);
    drop(wal);
    let path = common::dir().join(&wal_files(&image)[0].0);
    let bytes = image.read_file(&path).unwrap();
    assert_eq!(bytes.len(), FILE_SIZE as usize);
    (image, path, bytes)
}

#[test]
fn a_new_file_is_preallocated_and_a_clean_close_trims_it() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always, RecoveryMode::PointInTime).unwrap();
    let written = records(5, 100);
    for record in &written {
        wal.append(&[record]).unwrap();
    }
    assert_eq!(wal_files(&fs)[0].1, FILE_SIZE as usize);
    assert_eq!(common::read_all(&wal).len(), 5);
    drop(wal);
    assert_eq!(wal_files(&fs)[0].1, written_len(&written));
}

#[test]
fn the_stricter_modes_do_not_preallocate() {
    for mode in [
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let fs = MemFs::new();
        let wal = open(&fs, SyncPolicy::Always, mode).unwrap();
        wal.append(&[b"one record"]).unwrap();
        let files = wal_files(&fs);
        assert_eq!(
            files[0].1,
            written_len(&[b"one record".to_vec()]),
            "{mode:?}"
        );
    }
}

#[test]
fn a_rolled_file_is_trimmed() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always, RecoveryMode::PointInTime).unwrap();
    let first = records(3, 50);
    for record in &first {
        wal.append(&[record]).unwrap();
    }
    wal.roll().unwrap();
    wal.append(&[b"in the next file"]).unwrap();
    let files = wal_files(&fs);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].1, written_len(&first));
    assert_eq!(files[1].1, FILE_SIZE as usize);
}

#[test]
fn zeros_left_by_a_crash_are_a_clean_end_in_every_mode_and_are_trimmed() {
    let written = records(4, 80);
    let (image, _, _) = crashed_with_zeros(&written);
    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::PointInTime,
    ] {
        let disk = image.crash(CrashMode::DropUnsynced);
        let wal = open(&disk, SyncPolicy::Always, mode).unwrap();
        assert!(wal.recovery_report().is_clean(), "{mode:?}");
        let got: Vec<Vec<u8>> = common::read_all(&wal).into_iter().map(|r| r.1).collect();
        assert_eq!(got, written, "{mode:?}");
        assert_eq!(wal_files(&disk)[0].1, written_len(&written), "{mode:?}");
    }
}

#[test]
fn data_after_zeros_in_a_preallocated_file_is_damage() {
    let written = records(3, 60);
    let (image, path, mut bytes) = crashed_with_zeros(&written);
    let stray = written_len(&written) + 1000;
    bytes[stray] = 0x5A;
    image.write_file(&path, &bytes);

    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateCorruptedTail,
    ] {
        let error = open(
            &image.crash(CrashMode::DropUnsynced),
            SyncPolicy::Always,
            mode,
        )
        .expect_err("data after zeros must not pass as a clean end");
        assert!(error.is_corruption(), "{mode:?}: {error}");
    }
    let wal = open(&image, SyncPolicy::Always, RecoveryMode::PointInTime).unwrap();
    let report = wal.recovery_report();
    let damage = report.damage.as_ref().expect("the damage is reported");
    assert_eq!(damage.offset, written_len(&written) as u64);
    assert_eq!(common::read_all(&wal).len(), 3);
}

/// Under `Never`, with every append handed to the file and a sync now and then, a power cut
/// that keeps any prefix of the unsynced writes over the zeros (garbled or not) recovers a
/// prefix of what was appended that holds every synced record.
#[test]
fn a_power_cut_keeps_every_synced_record() {
    let written = records(60, 37);
    let mut torn = 0;
    for seed in 0..300u64 {
        let fs = MemFs::new();
        let mut options = options(SyncPolicy::Never, RecoveryMode::PointInTime);
        options.write_buffer_size = 1;
        // Each append's write done before it returns, so the crash image is this seed's alone.
        options.write_behind = false;
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::dir(), options).unwrap();
        let mut synced = 0;
        for (i, record) in written.iter().enumerate() {
            wal.append(&[record]).unwrap();
            if i == 20 {
                wal.roll().unwrap();
            }
            if (i as u64 + seed).is_multiple_of(11) {
                synced = wal.sync().unwrap();
            }
        }
        let mode = match seed % 4 {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::KeepPrefix { seed },
            2 => CrashMode::ScatterPages { seed },
            _ => CrashMode::GarbleTail { seed },
        };
        let image = fs.crash(mode);
        drop(wal);
        assert!(wal_files(&image)
            .iter()
            .any(|(_, len)| *len == FILE_SIZE as usize));
        let wal = open(&image, SyncPolicy::Always, RecoveryMode::PointInTime)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if wal.recovery_report().damage.is_some() {
            torn += 1;
        }
        let got = common::read_all(&wal);
        assert!(
            got.len() as u64 >= synced,
            "seed {seed}: lost a synced record"
        );
        for (lsn, payload) in &got {
            assert_eq!(
                payload,
                &written[*lsn as usize - 1],
                "seed {seed} LSN {lsn}"
            );
        }
    }
    assert!(torn > 50, "only {torn} crashes tore a record");
}

#[test]
fn a_checkpoint_copies_the_records_not_the_zeros() {
    let fs = MemFs::new();
    let wal = open(&fs, SyncPolicy::Always, RecoveryMode::PointInTime).unwrap();
    let written = records(6, 90);
    for record in &written {
        wal.append(&[record]).unwrap();
    }
    let dest = Path::new("/checkpoint");
    let copied = wal.checkpoint(dest).unwrap();
    assert_eq!(copied.files.len(), 1);
    assert_eq!(copied.files[0].1, written_len(&written) as u64);
    let copy = fs.read_file(&dest.join(&copied.files[0].0)).unwrap();
    assert_eq!(copy.len(), written_len(&written));
}

/// Readers hold the active file open while a roll or close trims its zeros away; they must
/// not read past the records into what is no longer there. (Records span more than the
/// 1 MiB a reader reads at a time, so its reads reach where the zeros were.)
#[test]
fn a_reader_of_the_active_file_survives_a_roll_that_trims_it() {
    let fs = MemFs::new();
    let options = WalOptions {
        max_file_size: 8 << 20,
        ..common::options(SyncPolicy::Always, RecoveryMode::PointInTime)
    };
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::dir(), options).unwrap();
    let written = records(300, 5_000);
    for batch in written.chunks(10) {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        wal.append(&refs).unwrap();
    }
    let reader = wal.read_from(1).unwrap();
    wal.roll().unwrap();
    assert_eq!(wal_files(&fs)[0].1, written_len(&written), "trimmed");
    let got: Vec<Vec<u8>> = reader.map(|r| r.unwrap().1).collect();
    assert!(got == written, "the reader returns every record");

    // The same for a reader beside the writer, which does not know where the records end.
    wal.append(&[b"in the second file"]).unwrap();
    let (report, reader) = strata_wal::read_dir(&fs, &common::dir(), 1, 1 << 20).unwrap();
    assert!(report.is_clean(), "{report:?}");
    drop(wal);
    let all: Vec<(u64, Vec<u8>)> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 301);
}

/// A crash in the middle of an append over preallocated zeros leaves a frame whose later
/// bytes are still zero: that is a torn tail, which even `TolerateCorruptedTail` drops.
/// The same frame with data after it is damage.
#[test]
fn a_frame_half_written_over_zeros_is_a_torn_tail() {
    let written = records(5, 300);
    let (image, path, mut bytes) = crashed_with_zeros(&written);
    let end = written_len(&written);
    bytes[end - 100..end].fill(0);
    image.write_file(&path, &bytes);

    let wal = open(
        &image.crash(CrashMode::DropUnsynced),
        SyncPolicy::Always,
        RecoveryMode::TolerateCorruptedTail,
    )
    .unwrap();
    let damage = wal.recovery_report().damage.clone().expect("reported");
    assert!(damage.torn_tail, "{damage:?}");
    assert_eq!(common::read_all(&wal).len(), 4);
    // What was dropped is the torn frame's written bytes, not the zeros after it.
    let dropped = wal.recovery_report().dropped_bytes;
    assert_eq!(dropped, (24 + 300 - 100) as u64, "{dropped}");

    bytes[end + 500] = 1;
    image.write_file(&path, &bytes);
    let error = open(
        &image,
        SyncPolicy::Always,
        RecoveryMode::TolerateCorruptedTail,
    )
    .expect_err("data after the bad frame is damage");
    assert!(error.is_corruption(), "{error}");
}
