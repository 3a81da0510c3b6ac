//! Helpers shared by the cold tier's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod tap;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore};
use strata_tiering::clock::ManualClock;
use strata_tiering::{Change, Entry, Key};

/// A store with at most `max_packs` packs before small ones are merged.
pub fn open_with_packs(path: &Path, keep_chunks: usize, max_packs: usize) -> ColdStore {
    let options = ColdOptions {
        keep_chunks,
        writer_id: Some("wtest".into()),
        max_packs,
        ..ColdOptions::default()
    };
    ColdStore::open(path, options, Arc::new(ManualClock::new(1_700_000_000_000))).unwrap()
}

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

/// `len` changes from LSN `first` on: LSN `n` sets key `k<n % keys>` to the text of `n`.
pub fn numbered_batch(first: u64, len: u64, keys: u64) -> Vec<Change> {
    (first..first + len)
        .map(|lsn| {
            put(
                format!("k{}", lsn % keys).as_bytes(),
                lsn,
                lsn.to_string().as_bytes(),
            )
        })
        .collect()
}

/// Commits the next [`numbered_batch`] after the store's watermark.
pub fn commit_next(store: &ColdStore, len: u64, keys: u64) -> strata_gitsync::Result<()> {
    let first = store.committed_lsn() + 1;
    store
        .commit(
            &numbered_batch(first, len, keys),
            strata_gitsync::Trigger::Manual,
            None,
        )
        .map(drop)
}

/// What key `k<key>` holds once every change of [`numbered_batch`]es up to `watermark` is in.
pub fn numbered_value(key: u64, watermark: u64, keys: u64) -> Option<Entry> {
    (1..=watermark)
        .rev()
        .find(|lsn| lsn % keys == key)
        .map(|lsn| Entry::put(lsn, lsn.to_string()))
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

/// Pack files in the repository at `repo`.
pub fn packs(repo: &Path) -> usize {
    strata_gitsync::repo::packs(repo).unwrap().len()
}

/// `git fsck --strict` must find nothing.
pub fn assert_fsck_clean(repo: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .expect("run git fsck");
    // An empty repository (a remote nobody could push to) draws notices, not problems.
    let report: String = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .lines()
    .filter(|line| !line.starts_with("notice:"))
    .collect();
    assert!(
        out.status.success() && report.trim().is_empty(),
        "git fsck --strict: {report}"
    );
}

/// Opens a store with its own writer id and clock.
pub fn open_writer(path: &Path, writer: &str, clock: Arc<ManualClock>) -> Arc<ColdStore> {
    let options = ColdOptions {
        keep_chunks: 3,
        writer_id: Some(writer.into()),
        ..ColdOptions::default()
    };
    Arc::new(ColdStore::open(path, options, clock).unwrap())
}

/// Creates an empty bare repository to push to.
pub fn bare_remote(path: &Path) {
    let out = Command::new("git")
        .args(["init", "--bare", "--quiet", "--initial-branch=main"])
        .arg(path)
        .output()
        .expect("run git init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port on 127.0.0.1 that nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Where git keeps its `git-daemon` program.
pub fn git_daemon_program() -> std::path::PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("run git --exec-path");
    assert!(out.status.success(), "git --exec-path failed");
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// `git daemon` serving every repository under a directory, pushes allowed; killed on drop.
pub struct Daemon {
    child: std::process::Child,
    pub port: u16,
}

impl Daemon {
    pub fn start(base: &Path) -> Daemon {
        Daemon::start_on(base, free_port())
    }

    pub fn start_on(base: &Path, port: u16) -> Daemon {
        // The `git-daemon` program itself: `git daemon` would run it as a child of its own,
        // which killing `git` leaves running.
        let child = Command::new(git_daemon_program())
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start git daemon");
        let daemon = Daemon { child, port };
        // Waiting for a server to listen is not timing logic: poll until it answers.
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return daemon;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("git daemon did not start on port {port}");
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every key of a store with its newest version.
pub fn dump(store: &ColdStore) -> Vec<(Key, Entry)> {
    store
        .scan(&strata_tiering::KeyRange::all(), strata_tiering::LATEST)
        .unwrap()
}
