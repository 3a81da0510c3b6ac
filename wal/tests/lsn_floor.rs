//! A log whose files are gone never hands out LSNs its owner's later stages have seen.
#![allow(clippy::unwrap_used)]

use strata_wal::{Log, Wal, WalOptions};

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
