//! Two handles committing to one repository at once while a third repacks it in full, with
//! few packs allowed so that merges of packs run all the time: every acknowledged change is
//! readable afterwards and `git fsck --strict` is clean. Merges and full repacks remove packs,
//! and nothing they remove may be one a commit is about to name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore, Trigger};
use strata_tiering::clock::ManualClock;
use strata_tiering::LATEST;

fn handle(path: &std::path::Path, writer: &str) -> ColdStore {
    let options = ColdOptions {
        keep_chunks: 3,
        writer_id: Some(writer.into()),
        max_packs: 3,
        ..Default::default()
    };
    ColdStore::open(path, options, Arc::new(ManualClock::new(1_700_000_000_000))).unwrap()
}

#[test]
fn concurrent_commits_merges_and_repacks_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    handle(&path, "setup");
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = ["wa", "wb"]
        .into_iter()
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = handle(&path, writer);
                let mut acknowledged = Vec::new();
                for lsn in 1..=40u64 {
                    let key = format!("{writer}-{lsn}");
                    let change = common::put(key.as_bytes(), lsn, b"{\"v\":1}");
                    // A lost race on the branch is retryable: the handle re-read it.
                    loop {
                        match store.commit(std::slice::from_ref(&change), Trigger::Manual, None) {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() => continue,
                            Err(e) => panic!("{writer} at {lsn}: {e}"),
                        }
                    }
                    acknowledged.push(key);
                }
                acknowledged
            })
        })
        .collect();
    let repacker = {
        let path = path.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let store = handle(&path, "wr");
            let mut repacks = 0;
            while !done.load(Ordering::SeqCst) {
                store.repack().unwrap();
                repacks += 1;
            }
            repacks
        })
    };
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.join().unwrap());
    }
    done.store(true, Ordering::SeqCst);
    assert!(repacker.join().unwrap() > 0);

    common::assert_fsck_clean(&path);
    let reader = handle(&path, "check");
    for key in &acknowledged {
        assert!(
            reader.get(key.as_bytes(), LATEST).unwrap().is_some(),
            "{key} was acknowledged and is gone"
        );
    }
    assert_eq!(acknowledged.len(), 80);
}
