//! Crash test: a child process commits batches (with folds, and with pack merges every few
//! commits, as at most four packs are allowed) and is killed with SIGKILL at
//! random moments, 50 times by default (STRATA_CRASH_CYCLES for more). After every kill the
//! repository passes `git fsck --strict`, its head is readable, and it holds exactly the
//! changes up to its committed watermark, which is at least the last one acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use strata_gitsync::Trigger;
use strata_tiering::{Entry, LATEST};

const KEYS: u64 = 97;
const BATCH: u64 = 40;

fn expected_value(key: u64, watermark: u64) -> Option<u64> {
    (1..=watermark).rev().find(|lsn| lsn % KEYS == key)
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STRATA_GITSYNC_CRASH_CHILD") else {
        return;
    };
    let store = common::open_with_packs(std::path::Path::new(&dir), 3, 4);
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    loop {
        let first = store.committed_lsn() + 1;
        let changes: Vec<_> = (first..first + BATCH)
            .map(|lsn| {
                common::put(
                    format!("k{}", lsn % KEYS).as_bytes(),
                    lsn,
                    lsn.to_string().as_bytes(),
                )
            })
            .collect();
        store.commit(&changes, Trigger::Manual, None).unwrap();
        writeln!(out, "COMMITTED {}", first + BATCH - 1).unwrap();
        out.flush().unwrap();
    }
}

/// Backdates every `*.lock` file in the repository by a minute.
fn age_lock_files(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            age_lock_files(&path);
        } else if path.extension().is_some_and(|e| e == "lock") {
            let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(a_minute_ago)
                .unwrap();
        }
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
        let wait_for = rng % 6;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_GITSYNC_CRASH_CHILD", &repo)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            if seen >= wait_for {
                break;
            }
            if let Some(lsn) = line.unwrap().strip_prefix("COMMITTED ") {
                acknowledged = lsn.parse().unwrap();
                seen += 1;
            }
        }
        // The kill lands at a random point of the commit after the last one read (a commit
        // takes a few milliseconds): not a timing assumption, just where the kill falls.
        std::thread::sleep(std::time::Duration::from_micros((rng >> 8) % 4000));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            seen, wait_for,
            "cycle {cycle}: the child stopped acknowledging commits"
        );
        // The machine comes back later: any lock the kill left is old by then.
        age_lock_files(&repo);

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
            let want = expected_value(key, watermark).map(|lsn| Entry::put(lsn, lsn.to_string()));
            assert_eq!(
                got, want,
                "cycle {cycle}: key k{key} at watermark {watermark}"
            );
        }
    }
    assert!(acknowledged > 0, "no commit was ever acknowledged");
}
