//! Helpers shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use strata::tiering::clock::{Clock, ManualClock};
use strata::{Config, Store};

/// 2023-11-14T22:13:20Z: a plausible time for commits.
pub const START_MS: u64 = 1_700_000_000_000;

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START_MS))
}

/// A store with no maintenance thread, on `clock`.
pub fn open(dir: &Path, clock: &Arc<ManualClock>, config: Config) -> Store {
    Store::builder(dir)
        .config(config)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .open()
        .expect("open the store")
}

/// A store on the stored configuration.
pub fn reopen(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder(dir)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .open()
        .expect("reopen the store")
}

/// A fresh bare repository to push to.
pub fn bare(path: &Path) -> String {
    let out = Command::new("git")
        .args(["init", "--bare", "-q", "-b", "main"])
        .arg(path)
        .output()
        .expect("run git init");
    assert!(out.status.success(), "{out:?}");
    path.display().to_string()
}

/// Runs git on a bare repository and returns its standard output.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-c")
        .arg("core.hooksPath=/dev/null")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn text(value: Option<strata::Value>) -> Option<String> {
    value.map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}

/// A store on the system clock without a maintenance thread.
pub fn reopen_real(dir: &Path, config: &Config) -> Store {
    Store::builder(dir)
        .config(config.clone())
        .background(false)
        .open()
        .expect("reopen the store")
}

/// Flips bits at `offset` of the store's (first) segment file, which is read-only on disk.
pub fn corrupt_segment(dir: &Path, offset: usize, mask: u8) {
    let segment = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset] ^= mask;
    let mut perms = std::fs::metadata(&segment).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&segment, perms).unwrap();
    std::fs::write(&segment, &bytes).unwrap();
}

/// The newest WAL file of the store at `dir`.
pub fn last_wal_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max()
        .expect("a WAL file")
}

/// Writes `garbage` just past the last record of the store's newest WAL file (over its
/// preallocated zeros, if it has any), as a write torn by a crash leaves it; returns the file
/// and its new length.
pub fn tear_wal(dir: &Path, garbage: &[u8]) -> (std::path::PathBuf, usize) {
    use strata_wal::format::{self, FILE_HEADER_LEN, FRAME_HEADER_LEN};
    let wal = last_wal_file(dir);
    let mut bytes = std::fs::read(&wal).unwrap();
    let mut end = FILE_HEADER_LEN;
    while bytes.len() >= end + FRAME_HEADER_LEN {
        let header: [u8; FRAME_HEADER_LEN] = bytes[end..end + FRAME_HEADER_LEN].try_into().unwrap();
        match format::decode_frame_header(&header) {
            Ok(frame) => end += FRAME_HEADER_LEN + frame.len as usize,
            Err(_) => break,
        }
    }
    bytes.truncate(end);
    bytes.extend_from_slice(garbage);
    std::fs::write(&wal, &bytes).unwrap();
    (wal, bytes.len())
}
