//! Lock files a crash leaves in the cold repository: git's lock files name no owner, so one
//! older than `repo::STALE_LOCK` is taken for a crash's leftover and removed, and a younger
//! one is respected (the update fails with an error and the lock stays).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use strata_gitsync::{repo, Trigger};
use strata_tiering::LATEST;

fn backdate(path: &Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

#[test]
fn a_branch_lock_left_by_a_crash_stops_commits_only_until_it_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    let store = common::open(&path, 4);
    store
        .commit(&[common::put(b"a", 1, b"1")], Trigger::Manual, None)
        .unwrap();
    let lock = path.join(format!("{}.lock", repo::BRANCH));
    std::fs::write(&lock, b"").unwrap();

    // Young: another update may be in progress.
    let refused = store.commit(&[common::put(b"b", 2, b"2")], Trigger::Manual, None);
    assert!(refused.is_err(), "a young lock is respected");
    assert!(lock.exists());
    assert_eq!(store.committed_lsn(), 1);

    backdate(&lock, repo::STALE_LOCK + Duration::from_secs(1));
    store
        .commit(&[common::put(b"b", 2, b"2")], Trigger::Manual, None)
        .unwrap();
    assert!(!lock.exists());
    assert_eq!(store.committed_lsn(), 2);
    assert!(store.get(b"b", LATEST).unwrap().is_some());
    common::assert_fsck_clean(&path);
}

#[test]
fn stale_config_and_reference_locks_are_cleared_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    let store = common::open(&path, 4);
    store
        .commit(&[common::put(b"a", 1, b"1")], Trigger::Manual, None)
        .unwrap();
    drop(store);
    std::fs::create_dir_all(path.join("refs/strata")).unwrap();
    let stale = [
        path.join("config.lock"),
        path.join("refs/strata/remote.lock"),
        path.join(format!("{}.lock", repo::BRANCH)),
    ];
    for lock in &stale {
        std::fs::write(lock, b"").unwrap();
        backdate(lock, Duration::from_secs(3600));
    }
    let young = path.join("refs/strata/pushed.lock");
    std::fs::write(&young, b"").unwrap();

    let store = common::open(&path, 4);
    for lock in &stale {
        assert!(!lock.exists(), "{} was left", lock.display());
    }
    assert!(young.exists(), "a young lock stays");
    store
        .commit(&[common::put(b"b", 2, b"2")], Trigger::Manual, None)
        .unwrap();
    assert_eq!(store.committed_lsn(), 2);
}
