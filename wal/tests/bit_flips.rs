//! Bit flips: every single-bit flip of a small log (over 10,000 of them) is detected. The two
//! strict modes refuse to open; point-in-time recovery truncates at or before the flipped byte
//! and returns only records identical to what was written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use strata_wal::{Fs, Log, MemFs, RecoveryMode};

#[test]
fn every_single_bit_flip_is_detected() {
    let lens: Vec<usize> = (0..24).map(|i| (i * 37) % 90).collect();
    let fs = MemFs::new();
    let wal = common::open_mem(&fs, RecoveryMode::PointInTime).unwrap();
    let records: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| common::payload(i as u64, n))
        .collect();
    for pair in records.chunks(2) {
        let refs: Vec<&[u8]> = pair.iter().map(Vec::as_slice).collect();
        wal.append(&refs).unwrap();
    }
    drop(wal);
    let path = common::only_file(&fs);
    let original = fs.read_file(&path).unwrap();
    let offsets = common::frame_offsets(&lens);
    let bits = original.len() * 8;
    assert!(bits >= 10_000, "log too small: {bits} bits");

    for bit in 0..bits {
        let byte = bit / 8;
        let mut flipped = original.clone();
        flipped[byte] ^= 1 << (bit % 8);
        let disk = MemFs::new();
        disk.create_dir_all(&common::dir()).unwrap();

        for mode in [
            RecoveryMode::AbsoluteConsistency,
            RecoveryMode::TolerateCorruptedTail,
        ] {
            disk.write_file(&path, &flipped);
            match common::open_mem(&disk, mode) {
                Ok(_) => panic!("bit {bit} (byte {byte}) not detected in {mode:?}"),
                Err(e) => assert!(e.is_corruption(), "bit {bit}: {e}"),
            }
        }

        disk.write_file(&path, &flipped);
        let wal = common::open_mem(&disk, RecoveryMode::PointInTime)
            .unwrap_or_else(|e| panic!("bit {bit}: point-in-time failed: {e}"));
        let got = common::read_all(&wal);
        assert!(got.len() < records.len(), "bit {bit}: nothing was dropped");
        for (lsn, payload) in &got {
            let i = (*lsn - 1) as usize;
            assert!(
                payload == &records[i],
                "bit {bit}: LSN {lsn} returned a wrong payload"
            );
            assert!(
                offsets[i + 1] <= byte as u64,
                "bit {bit}: kept a record past the flipped byte"
            );
        }
        assert_eq!(got.len() % 2, 0, "bit {bit}: a batch was split");
        let damage = wal.recovery_report().damage.clone().unwrap();
        assert!(
            damage.offset <= byte as u64,
            "bit {bit}: damage reported after the flip"
        );
    }
}
