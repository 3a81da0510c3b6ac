//! A full disk and failing I/O under commits, folds and pack merges: the store's file writes
//! go through a [`FaultyFs`] that fails one chosen call (ENOSPC on a creation or a write, EIO
//! on an fsync, a rename, a removal or a directory fsync). Whichever call fails:
//! - the commit fails with an error naming the failure, leaving the head and the watermark
//!   where they were, unless the failing call came after the commit was made (a removal of a
//!   temporary file or of merged packs, a merge's write): the commit then stands;
//! - a failed fsync of `refs/heads` after the branch's rename fails the commit (or its fold)
//!   although the branch on disk may have moved: the next commit then meets a conflict, the
//!   store reloads the branch, and the retry commits on top of it;
//! - nothing is half-installed: every index has its pack, and `git fsck --strict` is clean;
//! - once the fault is gone the same changes commit, and a reopened store holds them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore};
use strata_tiering::clock::ManualClock;
use strata_tiering::LATEST;
use strata_wal::{errno, FaultyFs, Fs, FsOp, StdFs};

const KEYS: u64 = 23;
const BATCH: u64 = 10;

fn open(repo: &Path, fs: Arc<dyn Fs>) -> ColdStore {
    let options = ColdOptions {
        keep_chunks: 2,
        writer_id: Some("wfault".into()),
        max_packs: 3,
        fs,
    };
    ColdStore::open(repo, options, Arc::new(ManualClock::new(1_700_000_000_000))).unwrap()
}

/// Every index has its pack; `.tmp` files are allowed only where a removal failed.
fn installed_whole(repo: &Path, temporaries_allowed: bool, what: &str) {
    let names: Vec<String> = std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        if let Some(stem) = name.strip_suffix(".idx") {
            assert!(
                names.contains(&format!("{stem}.pack")),
                "{what}: {name} without its pack"
            );
        }
        if name.ends_with(".tmp") {
            assert!(temporaries_allowed, "{what}: {name} left behind");
        }
    }
}

fn holds_exactly(store: &ColdStore, what: &str) {
    let watermark = store.committed_lsn();
    for key in 0..KEYS {
        let want = common::numbered_value(key, watermark, KEYS);
        let got = store.get(format!("k{key}").as_bytes(), LATEST).unwrap();
        assert_eq!(got, want, "{what}: k{key} at watermark {watermark}");
    }
}

#[test]
fn a_failing_call_anywhere_in_a_commit_fails_it_cleanly_and_loses_nothing() {
    let base = Path::new("/dev/shm");
    let scratch = if base.is_dir() {
        tempfile::tempdir_in(base).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let cases = [
        (FsOp::Create, errno::ENOSPC, "No space left"),
        (FsOp::Write, errno::ENOSPC, "No space left"),
        (FsOp::Sync, errno::EIO, "Input/output error"),
        (FsOp::Rename, errno::EIO, "Input/output error"),
        (FsOp::SyncDir, errno::EIO, "Input/output error"),
        (FsOp::Remove, errno::EIO, "Input/output error"),
    ];
    for (op, code, message) in cases {
        let mut failed_commits = 0;
        // Commits before the fault vary, so it lands in plain commits, folds and merges.
        for before in 0..6 {
            for nth in 1..=4 {
                let what = format!("{op:?} #{nth} after {before} commits");
                let repo = scratch.path().join(format!("{op:?}-{before}-{nth}.git"));
                let faulty = FaultyFs::new(Arc::new(StdFs));
                let store = open(&repo, Arc::new(faulty.clone()));
                for _ in 0..before {
                    common::commit_next(&store, BATCH, KEYS).unwrap();
                }
                let (head, watermark) = (store.head(), store.committed_lsn());
                faulty.fail_nth(op, nth, code);
                match common::commit_next(&store, BATCH, KEYS) {
                    Ok(()) => {}
                    Err(e) => {
                        failed_commits += 1;
                        let text = format!("{e}: {:?}", std::error::Error::source(&e));
                        assert!(text.contains(message), "{what}: unclear error {text}");
                        if op == FsOp::SyncDir && store.head() != head {
                            // The branch's rename landed before its directory's fsync failed:
                            // the store follows the branch on disk.
                            let on_disk = git2::Repository::open_bare(&repo)
                                .unwrap()
                                .revparse_single(strata_gitsync::repo::BRANCH)
                                .unwrap()
                                .id();
                            assert_eq!(store.head(), Some(on_disk), "{what}");
                            assert!(store.committed_lsn() > watermark, "{what}");
                        } else {
                            assert_eq!(store.head(), head, "{what}: the head moved");
                            assert_eq!(store.committed_lsn(), watermark, "{what}");
                        }
                    }
                }
                installed_whole(&repo, op == FsOp::Remove, &what);
                common::assert_fsck_clean(&repo);
                faulty.heal();
                let commit_healed = || common::commit_next(&store, BATCH, KEYS).unwrap();
                if store.committed_lsn() == watermark {
                    commit_healed();
                }
                commit_healed();
                holds_exactly(&store, &what);
                drop(store);
                let reopened = open(&repo, Arc::new(StdFs));
                holds_exactly(&reopened, &what);
                common::assert_fsck_clean(&repo);
                std::fs::remove_dir_all(&repo).unwrap();
            }
        }
        if op == FsOp::Remove {
            // Only temporary files and merged packs are removed, after the commit is made.
            assert_eq!(failed_commits, 0, "a failed removal failed a commit");
        } else {
            assert!(
                failed_commits >= 6,
                "{op:?}: {failed_commits} commits failed"
            );
        }
    }
}

/// A batch large enough to enter the overlay while its commit runs is taken out of it again
/// when the commit fails: reads never see changes that are not committed.
#[test]
fn a_failed_commit_leaves_nothing_readable() {
    let scratch = tempfile::tempdir().unwrap();
    for op in [FsOp::Write, FsOp::Sync, FsOp::Rename] {
        let repo = scratch.path().join(format!("{op:?}.git"));
        let faulty = FaultyFs::new(Arc::new(StdFs));
        let store = open(&repo, Arc::new(faulty.clone()));
        let committed = common::put(b"kept", 1, b"1");
        store
            .commit(&[committed], strata_gitsync::Trigger::Manual, None)
            .unwrap();
        let batch: Vec<_> = (0..1_000u64)
            .map(|i| common::put(format!("new{i}").as_bytes(), i + 2, b"2"))
            .collect();
        faulty.fail_nth(op, 1, errno::EIO);
        let error = store.commit(&batch, strata_gitsync::Trigger::Manual, None);
        assert!(error.is_err(), "{op:?}: the commit failed");
        for key in ["new0", "new999"] {
            assert_eq!(
                store.get(key.as_bytes(), LATEST).unwrap(),
                None,
                "{op:?}: {key}"
            );
        }
        assert!(store.get(b"kept", LATEST).unwrap().is_some());
        faulty.heal();
        store
            .commit(&batch, strata_gitsync::Trigger::Manual, None)
            .unwrap();
        assert!(store.get(b"new999", LATEST).unwrap().is_some());
    }
}
