//! A log whose files are gone never hands out LSNs its owner's later stages have seen.
#![allow(clippy::unwrap_used)]

use strata_wal::{format, Error, Log, RecoveryMode, Wal, WalOptions};

#[test]
fn a_fresh_log_starts_at_the_floor_and_keeps_a_higher_position() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        next_lsn_floor: 100,
        ..WalOptions::default()
    };
    let wal = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!(wal.last_lsn(), 99);
    assert_eq!(wal.append(&[b"a", b"b"]).unwrap(), 101);
    let read: Vec<_> = wal.read_from(100).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(read, vec![(100, b"a".to_vec()), (101, b"b".to_vec())]);
    drop(wal);

    // A floor below what the files hold changes nothing.
    let wal = Wal::open(
        dir.path(),
        WalOptions {
            next_lsn_floor: 5,
            ..options
        },
    )
    .unwrap();
    assert_eq!(wal.append(&[b"c"]).unwrap(), 102);
    let read: Vec<_> = wal.read_from(100).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(read, vec![100, 101, 102]);
}

/// The last LSN an append assigns is `u64::MAX - 1`; past it a batch is refused whole with
/// a clear error, nothing is appended, and the log reopens with what it held.
#[test]
fn a_log_out_of_lsns_refuses_appends_and_keeps_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        next_lsn_floor: u64::MAX - 2,
        ..WalOptions::default()
    };
    let wal = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!(wal.append(&[b"a"]).unwrap(), u64::MAX - 2);
    let err = wal.append(&[b"b", b"c"]).unwrap_err();
    assert!(
        matches!(err, Error::LsnExhausted { next, batch: 2 } if next == u64::MAX - 1),
        "{err}"
    );
    assert_eq!(wal.append(&[b"b"]).unwrap(), u64::MAX - 1);
    for _ in 0..2 {
        let err = wal.append(&[b"c"]).unwrap_err();
        assert!(matches!(err, Error::LsnExhausted { .. }), "{err}");
    }
    assert_eq!(wal.sync().unwrap(), u64::MAX - 1);
    drop(wal);
    let wal = Wal::open(dir.path(), options).unwrap();
    let read: Vec<_> = wal
        .read_from(u64::MAX - 2)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        read,
        vec![(u64::MAX - 2, b"a".to_vec()), (u64::MAX - 1, b"b".to_vec())]
    );
    assert!(matches!(
        wal.append(&[b"c"]).unwrap_err(),
        Error::LsnExhausted { .. }
    ));
}

/// A file named for the largest LSN, or holding a frame that claims it, is not something
/// this log wrote: opening never panics or wraps around, and appends are refused.
#[test]
fn a_file_at_the_largest_lsn_neither_panics_nor_wraps() {
    for with_frame in [false, true] {
        for mode in [
            RecoveryMode::PointInTime,
            RecoveryMode::TolerateCorruptedTail,
            RecoveryMode::AbsoluteConsistency,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = format::encode_file_header(format::FileHeader {
                first_lsn: u64::MAX,
                follows_gap: false,
                preallocated: false,
            })
            .to_vec();
            if with_frame {
                let mut frame = Vec::new();
                format::encode_frame(&mut frame, u64::MAX, true, b"forged");
                bytes.extend_from_slice(&frame);
            }
            std::fs::write(dir.path().join(format::file_name(u64::MAX)), bytes).unwrap();
            let options = WalOptions {
                recovery_mode: mode,
                ..WalOptions::default()
            };
            let what = format!("{mode:?}, frame {with_frame}");
            match Wal::open(dir.path(), options) {
                Ok(wal) => {
                    let err = wal.append(&[b"x"]).unwrap_err();
                    assert!(matches!(err, Error::LsnExhausted { .. }), "{what}: {err}");
                    // No record may come back: the forged one was cut off or refused.
                    if let Ok(records) = wal.read_from(1) {
                        assert!(records.filter(Result::is_ok).count() == 0, "{what}");
                    }
                }
                Err(err) => {
                    assert!(with_frame, "{what}: a bare header opens: {err}");
                    assert!(err.to_string().contains("LSN"), "{what}: {err}");
                }
            }
        }
    }
}
