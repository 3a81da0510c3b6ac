//! Optimistic transactions: own writes are visible, nothing is applied until commit, lost
//! updates are refused under snapshot isolation, write skew under serializable, and
//! concurrent transfers keep the total constant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{clock, open, text};
use strata::{Config, Error, Isolation};

#[test]
fn a_transaction_sees_its_writes_and_applies_them_only_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    store.put("a", "1").unwrap();
    let mut tx = store.transaction();
    assert_eq!(text(tx.get("a").unwrap()).as_deref(), Some("1"));
    tx.put("a", "2").put("b", "new").delete("c");
    assert_eq!(text(tx.get("a").unwrap()).as_deref(), Some("2"));
    let listed: Vec<_> = tx
        .scan_prefix("")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        text(store.get("a").unwrap()).as_deref(),
        Some("1"),
        "not yet"
    );
    assert_eq!(store.get("b").unwrap(), None);
    let receipt = tx.commit().unwrap().expect("it wrote");
    assert!(receipt.is_durable());
    assert_eq!(text(store.get("a").unwrap()).as_deref(), Some("2"));
    assert_eq!(text(store.get("b").unwrap()).as_deref(), Some("new"));

    // Dropped without commit: nothing happens.
    let mut abandoned = store.transaction();
    abandoned.put("a", "3");
    drop(abandoned);
    assert_eq!(text(store.get("a").unwrap()).as_deref(), Some("2"));
    assert!(store.transaction().commit().unwrap().is_none(), "read-only");
}

#[test]
fn a_lost_update_is_a_conflict_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    store.put("counter", "1").unwrap();
    let mut first = store.transaction();
    let mut second = store.transaction();
    let _ = first.get("counter").unwrap();
    let _ = second.get("counter").unwrap();
    first.put("counter", "2").put("other", "x");
    second.put("counter", "2");
    second.commit().unwrap();
    match first.commit() {
        Err(Error::Conflict { key, .. }) => assert_eq!(key.as_bytes(), b"counter"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get("other").unwrap(),
        None,
        "nothing of the loser applied"
    );

    // A plain write counts as a concurrent write too.
    let mut tx = store.transaction();
    tx.put("counter", "3");
    store.put("counter", "plain").unwrap();
    assert!(matches!(tx.commit(), Err(Error::Conflict { .. })));
}

#[test]
fn write_skew_passes_snapshot_isolation_and_fails_serializable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    for isolation in [Isolation::Snapshot, Isolation::Serializable] {
        store.put("on-call:alice", "yes").unwrap();
        store.put("on-call:bob", "yes").unwrap();
        // Each doctor goes off call if the other is still on call.
        let mut alice = store.transaction_with(isolation);
        let mut bob = store.transaction_with(isolation);
        assert!(alice.get("on-call:bob").unwrap().is_some());
        assert!(bob.get("on-call:alice").unwrap().is_some());
        alice.put("on-call:alice", "no");
        bob.put("on-call:bob", "no");
        alice.commit().unwrap();
        let outcome = bob.commit();
        match isolation {
            Isolation::Snapshot => assert!(outcome.is_ok(), "snapshot isolation allows skew"),
            Isolation::Serializable => {
                assert!(
                    matches!(outcome, Err(Error::Conflict { .. })),
                    "{outcome:?}"
                )
            }
        }
    }
}

#[test]
fn concurrent_transfers_keep_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    const ACCOUNTS: u64 = 6;
    for a in 0..ACCOUNTS {
        store.put(format!("acct:{a}"), "100").unwrap();
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut seed = t * 7919 + 13;
                for _ in 0..100 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) % ACCOUNTS;
                    let to = (from + 1 + (seed >> 40) % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = (seed >> 20) % 10;
                    store
                        .transact(Isolation::Snapshot, 1_000, |tx| {
                            let balance = |v: Option<strata::Value>| -> i64 {
                                std::str::from_utf8(v.unwrap().as_bytes())
                                    .unwrap()
                                    .parse()
                                    .unwrap()
                            };
                            let a = balance(tx.get(format!("acct:{from}"))?);
                            let b = balance(tx.get(format!("acct:{to}"))?);
                            tx.put(format!("acct:{from}"), (a - amount as i64).to_string());
                            tx.put(format!("acct:{to}"), (b + amount as i64).to_string());
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: i64 = store
        .scan_prefix("acct:")
        .unwrap()
        .map(|r| {
            let (_, v) = r.unwrap();
            std::str::from_utf8(v.as_bytes())
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 100 * ACCOUNTS as i64);
}
