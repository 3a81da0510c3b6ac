//! Helpers shared by the cold tier's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore};
use strata_tiering::clock::ManualClock;
use strata_tiering::{Change, Entry, Key};

pub fn open(path: &Path, keep_chunks: usize) -> ColdStore {
    let options = ColdOptions {
        keep_chunks,
        writer_id: Some("wtest".into()),
        ..ColdOptions::default()
    };
    ColdStore::open(path, options, Arc::new(ManualClock::new(1_700_000_000_000))).unwrap()
}

pub fn put(key: &[u8], seqno: u64, value: &[u8]) -> Change {
    Change {
        key: Key::new(key).unwrap(),
        entry: Entry::put(seqno, value),
    }
}

pub fn del(key: &[u8], seqno: u64) -> Change {
    Change {
        key: Key::new(key).unwrap(),
        entry: Entry::tombstone(seqno),
    }
}

/// Runs git with the repository's hooks disabled; returns stdout, panicking on failure.
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
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git fsck --strict` must find nothing.
pub fn assert_fsck_clean(repo: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .expect("run git fsck");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "git fsck --strict: {report}"
    );
}
