//! Helpers shared by the WAL's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_wal::{format, Fs, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

/// Where the WAL lives on a `MemFs`.
pub const DIR: &str = "/store/wal";

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

pub fn options(policy: SyncPolicy, mode: RecoveryMode) -> WalOptions {
    WalOptions {
        sync_policy: policy,
        recovery_mode: mode,
        ..WalOptions::default()
    }
}

pub fn open_mem(fs: &MemFs, mode: RecoveryMode) -> strata_wal::Result<Wal> {
    Wal::open_with_fs(Arc::new(fs.clone()), DIR, options(SyncPolicy::Always, mode))
}

/// A deterministic payload, different for every (seed, length).
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every record of the log, in order, panicking on damage.
pub fn read_all(log: &dyn Log) -> Vec<(u64, Vec<u8>)> {
    log.read_from(1).unwrap().map(|r| r.unwrap()).collect()
}

/// The single WAL file of a `MemFs` log.
pub fn only_file(fs: &MemFs) -> PathBuf {
    let names: Vec<String> = fs
        .list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| format::parse_file_name(n).is_some())
        .collect();
    assert_eq!(names.len(), 1, "expected one WAL file, found {names:?}");
    dir().join(&names[0])
}

/// Byte offset where each record's frame starts in a single-file log, plus the end offset.
pub fn frame_offsets(lens: &[usize]) -> Vec<u64> {
    let mut offsets = vec![format::FILE_HEADER_LEN as u64];
    for len in lens {
        let last = *offsets.last().unwrap();
        offsets.push(last + (format::FRAME_HEADER_LEN + len) as u64);
    }
    offsets
}
