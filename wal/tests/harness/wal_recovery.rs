//! Fuzz harness shared by `fuzz/fuzz_targets/wal_recovery.rs` and the corpus replay test:
//! any bytes presented as a WAL file open in every recovery mode without a panic, and what a
//! mode accepts reads back as consecutive, checksummed records.

use std::path::Path;
use std::sync::Arc;

use strata_wal::{format, Fs, Log, MemFs, RecoveryMode, Wal, WalOptions};

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateCorruptedTail,
        RecoveryMode::PointInTime,
    ] {
        let fs = MemFs::new();
        let dir = Path::new("/wal");
        if fs.create_dir_all(dir).is_err() {
            return;
        }
        fs.write_file(&dir.join(format::file_name(1)), data);
        let options = WalOptions {
            recovery_mode: mode,
            max_record_len: 1 << 20,
            ..WalOptions::default()
        };
        let Ok(wal) = Wal::open_with_fs(Arc::new(fs.clone()), dir, options.clone()) else {
            assert_ne!(
                mode,
                RecoveryMode::PointInTime,
                "point-in-time recovery always opens"
            );
            continue;
        };
        let mut expected = 1;
        let Ok(records) = wal.read_from(1) else {
            panic!("a recovered log must be readable")
        };
        for record in records {
            let (lsn, _) = record.unwrap_or_else(|e| panic!("a recovered log reads cleanly: {e}"));
            assert_eq!(lsn, expected, "LSNs are consecutive");
            expected += 1;
        }
        assert_eq!(
            wal.last_lsn() + 1,
            expected,
            "last_lsn matches what reads back"
        );
        drop(wal);
        let strict = WalOptions {
            recovery_mode: RecoveryMode::AbsoluteConsistency,
            ..options
        };
        if let Err(e) = Wal::open_with_fs(Arc::new(fs), dir, strict) {
            panic!("a repaired log must pass the strictest mode: {e}");
        }
    }
}
