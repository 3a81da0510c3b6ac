//! Checkpoints and offline reads: a checkpoint of a log that keeps being appended to holds
//! every record durable when it began, as a clean prefix; `read_dir` reads a log without
//! changing it and reports a torn tail instead of cutting it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_wal::{read_dir, Fs, Log, StdFs, Wal, WalOptions};

const MAX: usize = 1 << 20;

fn record(lsn: u64) -> Vec<u8> {
    format!("record {lsn} ")
        .repeat(1 + (lsn % 7) as usize)
        .into_bytes()
}

#[test]
fn a_checkpoint_of_a_busy_log_is_a_clean_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_file_size: 4096,
        ..WalOptions::default()
    };
    let wal = Arc::new(Wal::open(dir.path().join("wal"), options).unwrap());
    for lsn in 1..=200u64 {
        assert_eq!(wal.append(&[&record(lsn)]).unwrap(), lsn);
    }
    wal.truncate_before(50).unwrap();
    let first_kept = wal.files()[0].0;
    let appender = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            for lsn in 201..=600u64 {
                assert_eq!(wal.append(&[&record(lsn)]).unwrap(), lsn);
            }
        })
    };
    let dest = dir.path().join("copy");
    let copied = wal.checkpoint(&dest).unwrap();
    appender.join().unwrap();
    assert!(copied.synced_lsn >= 200);
    assert_eq!(copied.first_lsn, first_kept);
    assert!(copied.files.len() > 1, "{copied:?}");
    for (name, len, crc) in &copied.files {
        let bytes = std::fs::read(dest.join(name)).unwrap();
        assert_eq!(
            (bytes.len() as u64, crc32fast::hash(&bytes)),
            (*len, *crc),
            "{name}"
        );
    }

    let (report, reader) = read_dir(&StdFs, &dest, 0, MAX).unwrap();
    assert!(report.damage.is_none(), "{report:?}");
    let records: Vec<(u64, Vec<u8>)> = reader.map(|r| r.unwrap()).collect();
    assert_eq!(records.first().unwrap().0, first_kept);
    let last = records.last().unwrap().0;
    assert!(last >= copied.synced_lsn);
    for (i, (lsn, bytes)) in records.iter().enumerate() {
        assert_eq!(*lsn, first_kept + i as u64);
        assert_eq!(bytes, &record(*lsn));
    }
    // It reads from any LSN, and a checkpoint never goes into a directory with files in it.
    let (_, reader) = read_dir(&StdFs, &dest, 150, MAX).unwrap();
    assert_eq!(reader.map(|r| r.unwrap().0).next(), Some(150));
    assert!(wal.checkpoint(&dest).is_err());
}

#[test]
fn read_dir_reports_a_torn_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    for lsn in 1..=10u64 {
        wal.append(&[&record(lsn)]).unwrap();
    }
    wal.close().unwrap();
    let (_, path) = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .max()
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();

    let (report, reader) = read_dir(&StdFs, &wal_dir, 1, MAX).unwrap();
    let damage = report.damage.clone().expect("the torn record is reported");
    assert!(damage.torn_tail, "{damage:?}");
    assert_eq!(
        reader.map(|r| r.unwrap().0).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        bytes.len() - 5,
        "nothing was cut"
    );
    assert!(StdFs.list_dir(&wal_dir).unwrap().len() == 1);
}
