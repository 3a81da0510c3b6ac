//! `ColdStore::verify` reads back every object of the history and finds a damaged one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore, Trigger};
use strata_tiering::clock::ManualClock;

#[test]
fn verify_reads_the_whole_history_and_names_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    let store = common::open(&path, 3);
    for round in 0..5u64 {
        let changes: Vec<_> = (1..=20u64)
            .map(|i| {
                let lsn = round * 20 + i;
                common::put(
                    format!("k{i}").as_bytes(),
                    lsn,
                    format!("{{\"v\":{lsn}}}").as_bytes(),
                )
            })
            .collect();
        store.commit(&changes, Trigger::Manual, None).unwrap();
    }
    let report = store.verify().unwrap();
    assert!(report.commits >= 5, "{report:?}");
    assert!(report.objects > report.commits, "{report:?}");
    let head = store.head().unwrap();
    assert_eq!(store.resolve("main").unwrap(), head);
    assert_eq!(store.resolve(&head.to_string()[..10]).unwrap(), head);
    assert!(store.resolve("no-such-branch").is_err());
    drop(store);

    // Damage every pack in the middle of its object data.
    let packs = path.join("objects").join("pack");
    for entry in std::fs::read_dir(&packs).unwrap().flatten() {
        let file = entry.path();
        if file.extension().is_some_and(|e| e == "pack") {
            let mut bytes = std::fs::read(&file).unwrap();
            let middle = bytes.len() / 2;
            for b in &mut bytes[middle..middle + 16] {
                *b ^= 0x5A;
            }
            let mut perms = std::fs::metadata(&file).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&file, perms).unwrap();
            std::fs::write(&file, &bytes).unwrap();
        }
    }
    let options = ColdOptions {
        keep_chunks: 3,
        writer_id: Some("wtest".into()),
        ..ColdOptions::default()
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    // Damage the open itself reads is found there; anything else, by verify.
    let text = match ColdStore::open(&path, options, clock) {
        Err(error) => error.to_string(),
        Ok(store) => store.verify().expect_err("the damage is found").to_string(),
    };
    assert!(
        ["object", "read", "walk history"]
            .iter()
            .any(|what| text.contains(what)),
        "{text}"
    );
}
