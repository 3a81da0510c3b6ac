//! Crash test: a child process commits batches (with folds, and with pack merges every few
//! commits, as at most four packs are allowed) and is killed with SIGKILL inside a commit,
//! 50 times by default (STRATA_CRASH_CYCLES for more). The kill lands just before a file
//! operation chosen at random (seeded): the child's cold store writes through a
//! [`TapFs`](common::tap::TapFs) that counts its operations and, at the chosen one, has `kill
//! -KILL` sent to its own process and waits for it. After every kill the repository passes
//! `git fsck --strict`, its head is readable, and it holds exactly the changes up to its
//! committed watermark, which is at least the last one acknowledged. A kill inside the update
//! of the branch leaves its lock file, which the next child clears when it opens the store,
//! as the store's owner does (`stale_locks.rs` covers a lock left without such an owner).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore, Trigger};
use strata_tiering::clock::ManualClock;
use strata_tiering::LATEST;

use common::tap::TapFs;

const KEYS: u64 = 97;
const BATCH: u64 = 40;

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STRATA_GITSYNC_CRASH_CHILD") else {
        return;
    };
    let kill_at: u64 = std::env::var("STRATA_GITSYNC_KILL_AT")
        .unwrap()
        .parse()
        .unwrap();
    let ops = AtomicU64::new(0);
    let kill = move || {
        if ops.fetch_add(1, Ordering::SeqCst) + 1 == kill_at {
            let pid = std::process::id().to_string();
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            // Not reached once the signal is delivered.
            std::process::abort();
        }
    };
    let options = ColdOptions {
        keep_chunks: 3,
        writer_id: Some("wtest".into()),
        max_packs: 4,
        fs: Arc::new(TapFs::new(Arc::new(kill), None)),
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    // The only writer, as the store's owner is once it holds the directory's lock: a lock
    // file the killed child left is cleared at once, whatever its age.
    strata_gitsync::repo::clear_git_locks(std::path::Path::new(&dir)).unwrap();
    let store = ColdStore::open(std::path::Path::new(&dir), options, clock).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    loop {
        let first = store.committed_lsn() + 1;
        let changes = common::numbered_batch(first, BATCH, KEYS);
        store.commit(&changes, Trigger::Manual, None).unwrap();
        writeln!(out, "COMMITTED {}", first + BATCH - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn commits_survive_sigkill_at_any_moment() {
    let cycles: u64 = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let mut acknowledged = 0;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for cycle in 0..cycles {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // A commit makes about a dozen file operations, folds and merges more.
        let kill_at = 1 + rng % 150;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_GITSYNC_CRASH_CHILD", &repo)
            .env("STRATA_GITSYNC_KILL_AT", kill_at.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            if let Some(lsn) = line.unwrap().strip_prefix("COMMITTED ") {
                acknowledged = lsn.parse().unwrap();
            }
        }
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "cycle {cycle}: the child did not reach operation {kill_at}: {status}"
        );
        common::assert_fsck_clean(&repo);
        let store = common::open(&repo, 3);
        let watermark = store.committed_lsn();
        assert!(
            watermark >= acknowledged,
            "cycle {cycle}: watermark {watermark} < acknowledged {acknowledged}"
        );
        assert_eq!(
            watermark % BATCH,
            0,
            "cycle {cycle}: a batch was half committed"
        );
        for key in 0..KEYS {
            let got = store.get(format!("k{key}").as_bytes(), LATEST).unwrap();
            let want = common::numbered_value(key, watermark, KEYS);
            assert_eq!(
                got, want,
                "cycle {cycle}: key k{key} at watermark {watermark}"
            );
        }
    }
    assert!(acknowledged > 0, "no commit was ever acknowledged");
}
