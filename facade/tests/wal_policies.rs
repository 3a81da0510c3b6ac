//! The store under `wal_sync = "never"` and `"interval:<ms>"`, where the log hands full
//! buffers to its background writer: no write is reported durable before the log synced it,
//! a sync makes every earlier write durable, and a clean close keeps every write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{clock, open, reopen, text};
use strata::{Config, Stage};

/// Enough 300-byte values to fill the log's 256 KiB write buffer several times over.
const WRITES: usize = 3_000;

fn value(i: usize) -> String {
    format!("{i:06}-{}", "v".repeat(293))
}

#[test]
fn writes_under_the_buffered_policies_are_kept_and_never_reported_durable_early() {
    for policy in ["never", "interval:5"] {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let config = Config {
            wal_sync: policy.into(),
            ..Config::default()
        };
        let store = open(dir.path(), &clock, config);
        for i in 0..WRITES {
            let receipt = store.put(format!("doc:{i:05}"), value(i)).unwrap();
            let lsn = receipt.lsn.expect("a MEDIUM write goes through the log");
            if receipt.is_durable() {
                assert!(
                    policy != "never",
                    "{policy}: write {i} reported durable with no sync"
                );
            }
            if i == WRITES / 2 {
                let synced = store.sync(Stage::Wal).unwrap();
                assert!(synced.lsn >= lsn, "{policy}: the sync covers write {i}");
            }
        }
        for i in (0..WRITES).step_by(97) {
            let got = text(store.get(format!("doc:{i:05}")).unwrap());
            assert_eq!(got, Some(value(i)), "{policy}: read back before reopening");
        }
        drop(store);
        let store = reopen(dir.path(), &clock);
        for i in 0..WRITES {
            let got = text(store.get(format!("doc:{i:05}")).unwrap());
            assert_eq!(
                got,
                Some(value(i)),
                "{policy}: write {i} after a clean close"
            );
        }
    }
}
