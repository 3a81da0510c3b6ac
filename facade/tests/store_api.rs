//! The Store end to end: every criticality lands where it should, receipts say so, and the
//! data survives a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{bare, clock, git, open, reopen, text};
use strata::{Batch, Class, Config, Criticality, Error, KeyRange, Stage, WriteOptions};

fn config() -> Config {
    Config::default()
}

#[test]
fn each_criticality_travels_as_far_as_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote.git");
    let url = bare(&remote_dir);
    let clock = clock();
    let store = open(
        &dir.path().join("store"),
        &clock,
        Config {
            remote: Some(url),
            ..config()
        },
    );
    store
        .classify("cache:*", Class::new(Criticality::Low))
        .unwrap();
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    store
        .classify("task:*", Class::new(Criticality::Critical))
        .unwrap();

    let low = store.put("cache:q", "memory only").unwrap();
    assert_eq!(low.criticality, Criticality::Low);
    assert_eq!(low.confirmed, Stage::Memory);
    assert!(!low.is_durable());
    assert_eq!(low.lsn, None);

    let medium = store.put("note:1", "in the wal").unwrap();
    assert_eq!(medium.criticality, Criticality::Medium);
    assert!(medium.is_durable());
    assert_eq!(medium.target, Stage::Warm);

    let high = store.put("doc:1", "{\"v\":1}").unwrap();
    assert_eq!(high.target, Stage::Cold);
    assert!(high.is_durable());

    let critical = store.put("task:1", "{\"title\":\"ship\"}").unwrap();
    assert_eq!(critical.target, Stage::Remote);

    // Cold and remote are reached by maintenance or on demand.
    let cold = store.sync(Stage::Cold).unwrap();
    assert!(cold.lsn >= critical.lsn.unwrap());
    let commit = cold.evidence.clone().expect("a commit id");
    let cold_repo = dir.path().join("store").join(strata::COLD_DIR);
    let shown = git(&cold_repo, &["show", "--stat", &commit]);
    assert!(shown.contains("chunks/"), "{shown}");
    let remote = store.sync(Stage::Remote).unwrap();
    let head = remote.evidence.clone().expect("a verified head");
    assert_eq!(git(&remote_dir, &["rev-parse", "main"]).trim(), head);

    // The medium key is not in git; the high and critical ones are.
    let listed = git(&cold_repo, &["log", "-p", "main"]);
    assert!(
        listed.contains("doc:1") && listed.contains("task:1"),
        "{listed}"
    );
    assert!(!listed.contains("note:1"), "{listed}");

    // A later write's receipt carries the stages already reached.
    store.sync(Stage::Warm).unwrap();
    let stats = store.stats();
    let cold_mark = &stats.watermarks[3];
    assert_eq!(cold_mark.stage, "cold");
    assert!(cold_mark.lsn >= critical.lsn.unwrap());

    drop(store);
    let store = reopen(&dir.path().join("store"), &clock);
    assert!(!store.recovery_report().unclean_shutdown);
    assert_eq!(
        text(store.get("cache:q").unwrap()),
        None,
        "LOW is memory only"
    );
    assert_eq!(
        text(store.get("note:1").unwrap()).as_deref(),
        Some("in the wal")
    );
    assert_eq!(
        text(store.get("doc:1").unwrap()).as_deref(),
        Some("{\"v\":1}")
    );
    assert_eq!(
        text(store.get("task:1").unwrap()).as_deref(),
        Some("{\"title\":\"ship\"}")
    );
    assert_eq!(store.rules().len(), 3, "rules are persisted");
}

#[test]
fn a_criticality_given_with_the_call_overrides_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, config());
    let receipt = store
        .put_with("plain", "v", WriteOptions::criticality(Criticality::High))
        .unwrap();
    assert_eq!(receipt.target, Stage::Cold);
    store.sync(Stage::Cold).unwrap();
    assert_eq!(store.history("plain").unwrap().len(), 1);
    let low = store
        .put_with("scratch", "v", WriteOptions::criticality(Criticality::Low))
        .unwrap();
    assert!(!low.is_durable());
    assert_eq!(text(store.get("scratch").unwrap()).as_deref(), Some("v"));
}

#[test]
fn deletes_batches_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, config());
    let mut batch = Batch::new();
    batch
        .put("a", "1")
        .put("b", "2")
        .put_with_ttl("c", "3", Duration::from_secs(10));
    let receipt = store.write(&batch).unwrap();
    assert!(receipt.is_durable());
    store.delete("a").unwrap();
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(text(store.get("c").unwrap()).as_deref(), Some("3"));
    clock.advance(10_001);
    assert_eq!(store.get("c").unwrap(), None, "expired");
    let keys: Vec<String> = store
        .scan(&KeyRange::all())
        .unwrap()
        .map(|r| String::from_utf8(r.unwrap().0.as_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(keys, vec!["b"]);
    assert!(
        store.write(&Batch::new()).is_err(),
        "an empty batch is an error"
    );
    assert!(store.put("", "v").is_err(), "an empty key is an error");
    assert!(
        store.put(vec![b'k'; 70_000], "v").is_err(),
        "an oversized key is an error"
    );
}

#[test]
fn scans_merge_every_tier_in_order_at_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(
        dir.path(),
        &clock,
        Config {
            memtable_flush_items: 10,
            ..config()
        },
    );
    store
        .classify("k:low*", Class::new(Criticality::Low))
        .unwrap();
    for i in 0..30 {
        store.put(format!("k:{i:02}"), format!("v{i}")).unwrap();
    }
    // Flushed to warm, then some overwritten in hot, some deleted, one LOW in the cache.
    store.flush().unwrap();
    assert!(store.stats().segments.0 >= 1);
    store.put("k:05", "new").unwrap();
    store.delete("k:07").unwrap();
    store.put("k:low", "cached").unwrap();
    store
        .put_with("k:cold", "c", WriteOptions::criticality(Criticality::High))
        .unwrap();

    let snapshot = store.snapshot();
    store.put("k:05", "after the snapshot").unwrap();
    store.delete("k:06").unwrap();

    let now: Vec<(String, String)> = store
        .scan_prefix("k:")
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                String::from_utf8(k.as_bytes().to_vec()).unwrap(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect();
    let keys: Vec<&str> = now.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered");
    assert_eq!(keys.len(), 30 - 2 + 2);
    assert!(!keys.contains(&"k:07") && !keys.contains(&"k:06"));
    assert!(now.contains(&("k:05".into(), "after the snapshot".into())));
    assert!(now.contains(&("k:low".into(), "cached".into())));
    assert!(now.contains(&("k:cold".into(), "c".into())));

    assert_eq!(text(snapshot.get("k:05").unwrap()).as_deref(), Some("new"));
    assert_eq!(text(snapshot.get("k:06").unwrap()).as_deref(), Some("v6"));
    let then: Vec<String> = snapshot
        .scan_prefix("k:")
        .unwrap()
        .map(|r| String::from_utf8(r.unwrap().1.as_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(then.len(), 30 - 1 + 2);
    assert!(then.contains(&"new".to_string()) && then.contains(&"v6".to_string()));
}

#[test]
fn a_second_opener_is_told_who_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, config());
    let second = strata::Store::builder(dir.path()).background(false).open();
    match second {
        Err(Error::Locked { holder, .. }) => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}")
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    store.close().unwrap();
    let again = reopen(dir.path(), &clock);
    assert!(!again.recovery_report().unclean_shutdown);
}

#[test]
fn the_store_is_send_sync_and_clones_share_it() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<strata::Store>();
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, config());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    store.put(format!("t{t}:{i}"), "v").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.scan(&KeyRange::all()).unwrap().count(), 200);
}

#[test]
fn history_and_get_at_read_the_cold_tier() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock, config());
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    let mut commits = Vec::new();
    for v in 1..=3 {
        store.put("doc:a", format!("{{\"v\":{v}}}")).unwrap();
        commits.push(store.sync(Stage::Cold).unwrap().evidence.unwrap());
        clock.advance(1_000);
    }
    let history = store.history("doc:a").unwrap();
    assert_eq!(history.len(), 3);
    let first: strata::Oid = commits[0].parse().unwrap();
    assert_eq!(
        text(store.get_at("doc:a", strata::At::Commit(first)).unwrap()).as_deref(),
        Some("{\"v\":1}")
    );
}

#[test]
fn the_configuration_comes_from_toml_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("strata.toml");
    std::fs::write(&toml, "commit_quiet_secs = 2\nkeep_chunks = 4\n").unwrap();
    let store_dir = dir.path().join("store");
    let store = strata::Store::builder(&store_dir)
        .config_file(&toml)
        .background(false)
        .open()
        .unwrap();
    assert_eq!(store.config().commit_quiet_secs, 2);
    drop(store);
    let store = strata::Store::builder(&store_dir)
        .background(false)
        .open()
        .unwrap();
    assert_eq!(
        store.config().keep_chunks,
        4,
        "the stored configuration is used"
    );
}

/// The WAL's preallocated zeros are room for appends, not data: the store's WAL size and
/// write amplification count the records.
#[test]
fn stats_count_the_wal_records_not_its_preallocated_space() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(&dir.path().join("store"), &clock, config());
    for i in 0..100 {
        store.put(format!("k{i:03}"), "v".repeat(50)).unwrap();
    }
    let stats = store.stats();
    let wal = stats.tiers.iter().find(|t| t.tier == "wal").unwrap();
    assert!(wal.bytes > 100 * 50, "{wal:?}");
    assert!(
        wal.bytes < 64 << 10,
        "the 64 MiB file counts as its records: {wal:?}"
    );
    assert!(
        stats.write_amplification < 10.0,
        "{}",
        stats.write_amplification
    );
}

/// Debounce settings far past any real wait open a store that simply never commits on its
/// own, rather than overflowing while converting them to milliseconds.
#[test]
fn huge_commit_debounce_settings_open_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let huge = Config {
        commit_quiet_secs: u64::MAX,
        commit_max_age_secs: u64::MAX,
        ..config()
    };
    let store = common::open(dir.path(), &clock, huge);
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    store.put("doc:1", "v").unwrap();
    clock.advance(3_600_000);
    store.maintain();
    assert!(
        store.history("doc:1").unwrap().is_empty(),
        "no commit on its own"
    );
    store.sync(Stage::Cold).unwrap();
    assert_eq!(store.history("doc:1").unwrap().len(), 1);
    store.close().unwrap();
}
