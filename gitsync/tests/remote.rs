//! The remote tier against a bare repository on disk and against `git daemon`: verified
//! pushes, the pushed watermark, a remote that is down, a hook that refuses, merges of other
//! writers' pushes, and clone-then-rebuild. `git fsck --strict` after each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_gitsync::{
    clone_store, At, ColdOptions, Error, Remote, RemoteOptions, Transport, Trigger,
};
use strata_tiering::clock::ManualClock;
use strata_tiering::{Entry, LATEST};

fn options(url: &str) -> RemoteOptions {
    RemoteOptions {
        retry_delay: Duration::ZERO,
        ..RemoteOptions::new(url)
    }
}

fn remote_head(remote: &Path) -> String {
    common::git(remote, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_owned()
}

fn commit(store: &strata_gitsync::ColdStore, key: &str, seqno: u64, value: &str) {
    store
        .commit(
            &[common::put(key.as_bytes(), seqno, value.as_bytes())],
            Trigger::Manual,
            None,
        )
        .unwrap();
}

#[test]
fn a_push_is_verified_on_the_remote_and_only_then_advances_the_pushed_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let remote_path = dir.path().join("remote.git");
    common::bare_remote(&remote_path);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = common::open_writer(&dir.path().join("cold.git"), "wa", clock.clone());
    let remote = Remote::new(store.clone(), options(remote_path.to_str().unwrap()), clock).unwrap();
    assert_eq!(remote.pushed_lsn(), 0);

    commit(&store, "task:1", 1, r#"{"t":1}"#);
    commit(&store, "task:2", 2, r#"{"t":2}"#);
    let report = remote.push().unwrap();
    assert_eq!(report.head, store.head().unwrap());
    assert_eq!(report.head.to_string(), remote_head(&remote_path));
    assert_eq!((report.pushed_lsn, remote.pushed_lsn()), (2, 2));
    assert!(!report.merged);

    // Incremental: one more commit, one more push; nothing new is a no-op that still verifies.
    commit(&store, "task:3", 3, r#"{"t":3}"#);
    assert_eq!(remote.push().unwrap().pushed_lsn, 3);
    assert_eq!(
        remote.push().unwrap().head.to_string(),
        remote_head(&remote_path)
    );
    common::assert_fsck_clean(&remote_path);

    // The watermark survives a restart.
    drop(remote);
    let clock = Arc::new(ManualClock::new(1_700_000_100_000));
    let again = Remote::new(store.clone(), options(remote_path.to_str().unwrap()), clock).unwrap();
    assert_eq!(again.pushed_lsn(), 3);
    assert_eq!(again.pushed_head(), store.head());
}

#[test]
fn poll_pushes_every_n_commits_and_critical_writes_after_their_debounce() {
    let dir = tempfile::tempdir().unwrap();
    let remote_path = dir.path().join("remote.git");
    common::bare_remote(&remote_path);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = common::open_writer(&dir.path().join("cold.git"), "wa", clock.clone());
    let mut opts = options(remote_path.to_str().unwrap());
    opts.push_every = 3;
    opts.critical_debounce = Duration::from_millis(500);
    let remote = Remote::new(store.clone(), opts, clock.clone()).unwrap();

    commit(&store, "a", 1, "1");
    commit(&store, "b", 2, "2");
    assert_eq!(remote.poll().unwrap(), None);
    commit(&store, "c", 3, "3");
    assert_eq!(remote.poll().unwrap().unwrap().pushed_lsn, 3);

    // A CRITICAL write is pushed on its own, but only after the debounce.
    commit(&store, "task:9", 4, "4");
    remote.note_critical(4);
    assert_eq!(remote.poll().unwrap(), None);
    clock.advance(499);
    assert_eq!(remote.poll().unwrap(), None);
    clock.advance(1);
    assert_eq!(remote.poll().unwrap().unwrap().pushed_lsn, 4);
    assert_eq!(remote.poll().unwrap(), None);
}

#[test]
fn a_remote_that_is_down_never_counts_as_pushed_and_gets_the_data_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    common::bare_remote(&served.join("r.git"));
    let port = common::free_port();
    let url = format!("git://127.0.0.1:{port}/r.git");
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = common::open_writer(&dir.path().join("cold.git"), "wa", clock.clone());
    let remote = Remote::new(store.clone(), options(&url), clock).unwrap();
    commit(&store, "task:1", 1, "1");

    let error = remote.push().unwrap_err();
    assert!(matches!(error, Error::Remote { .. }), "{error}");
    assert_eq!(error.kind(), strata_tiering::ErrorKind::Unavailable);
    let metrics = remote.metrics();
    assert_eq!(
        (
            metrics.failed_attempts,
            metrics.failed_pushes,
            metrics.pushes
        ),
        (3, 1, 0)
    );
    assert_eq!(remote.pushed_lsn(), 0);
    assert_eq!(remote.pushed_head(), None);

    // Back up: the same data goes out and is verified.
    let _daemon = common::Daemon::start_on(&served, port);
    commit(&store, "task:2", 2, "2");
    let report = remote.push().unwrap();
    assert_eq!(report.pushed_lsn, 2);
    assert_eq!(report.head.to_string(), remote_head(&served.join("r.git")));
    common::assert_fsck_clean(&served.join("r.git"));
}

fn refusing_remote(path: &Path) {
    common::bare_remote(path);
    let hook = path.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'frozen for audit' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_hook_that_refuses_the_push_is_a_failure_over_git_daemon_and_the_git_command() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    refusing_remote(&served.join("r.git"));
    let daemon = common::Daemon::start(&served);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));

    let through_daemon = RemoteOptions {
        transport: Transport::Libgit2,
        ..options(&daemon.url("r.git"))
    };
    let through_command = RemoteOptions {
        transport: Transport::Command,
        ..options(served.join("r.git").to_str().unwrap())
    };
    for (n, opts) in [through_daemon, through_command].into_iter().enumerate() {
        let store = common::open_writer(
            &dir.path().join(format!("cold{n}.git")),
            "wa",
            clock.clone(),
        );
        let remote = Remote::new(store.clone(), opts, clock.clone()).unwrap();
        commit(&store, "task:1", 1, "1");
        let error = remote.push().unwrap_err();
        assert!(
            matches!(error, Error::Rejected { .. }),
            "transport {n}: {error}"
        );
        assert_eq!(remote.pushed_lsn(), 0);
        assert_eq!(remote.metrics().pushes, 0);
        let head = common::git(&served.join("r.git"), &["for-each-ref", "refs/heads"]);
        assert!(head.trim().is_empty(), "the hook let {head} through");
    }
    common::assert_fsck_clean(&served.join("r.git"));
}

#[test]
fn a_writer_that_was_not_first_merges_and_both_converge_on_the_newer_value() {
    let dir = tempfile::tempdir().unwrap();
    let remote_path = dir.path().join("remote.git");
    common::bare_remote(&remote_path);
    let url = remote_path.to_str().unwrap().to_owned();
    let clock_a = Arc::new(ManualClock::new(1_700_000_000_000));
    let clock_b = Arc::new(ManualClock::new(1_700_000_000_000));
    let a = common::open_writer(&dir.path().join("a.git"), "wa", clock_a.clone());
    let b = common::open_writer(&dir.path().join("b.git"), "wb", clock_b.clone());
    let remote_a = Remote::new(a.clone(), options(&url), clock_a.clone()).unwrap();
    let remote_b = Remote::new(b.clone(), options(&url), clock_b.clone()).unwrap();

    commit(&a, "shared", 1, r#""from a""#);
    commit(&a, "only:a", 2, "1");
    remote_a.push().unwrap();
    clock_b.advance(1_000); // b writes `shared` later
    commit(&b, "shared", 1, r#""from b""#);
    commit(&b, "only:b", 2, "2");
    let report = remote_b.push().unwrap();
    assert!(report.merged);
    assert_eq!(report.pushed_lsn, 2);
    remote_a.pull().unwrap();
    assert_eq!(a.head(), b.head());
    assert_eq!(common::dump(&a), common::dump(&b));
    assert_eq!(
        a.get(b"shared", LATEST).unwrap(),
        Some(Entry::put(1, &b"\"from b\""[..]))
    );
    // The newest commit by a is still what a's committed watermark is read from.
    assert_eq!(a.committed_lsn(), 2);
    // Folding on both sides keeps them equal.
    for n in 3..8 {
        commit(&a, "only:a", n, &n.to_string());
        commit(&b, "only:b", n, &n.to_string());
    }
    remote_a.push().unwrap();
    remote_b.push().unwrap();
    remote_a.pull().unwrap();
    assert_eq!(a.head(), b.head());
    assert_eq!(common::dump(&a), common::dump(&b));
    assert_eq!(
        a.get(b"only:b", LATEST).unwrap(),
        Some(Entry::put(7, &b"7"[..]))
    );
    common::assert_fsck_clean(&remote_path);
    common::assert_fsck_clean(&dir.path().join("a.git"));
}

fn concurrent_writers(writers: usize, url_for: impl Fn() -> String, remote_path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let rounds = 6u64;
    let stores: Vec<_> = (0..writers)
        .map(|w| {
            let clock = Arc::new(ManualClock::new(1_700_000_000_000 + w as u64));
            let store = common::open_writer(
                &dir.path().join(format!("w{w}.git")),
                &format!("w{w}"),
                clock.clone(),
            );
            let remote = Remote::new(store.clone(), options(&url_for()), clock.clone()).unwrap();
            (store, remote, clock)
        })
        .collect();
    std::thread::scope(|scope| {
        for (w, (store, remote, clock)) in stores.iter().enumerate() {
            scope.spawn(move || {
                for round in 1..=rounds {
                    clock.advance(10);
                    let changes = vec![
                        common::put(format!("own:{w}:{round}").as_bytes(), round * 2 - 1, b"1"),
                        common::put(b"shared", round * 2, format!("{w}-{round}").as_bytes()),
                    ];
                    store.commit(&changes, Trigger::Manual, None).unwrap();
                    remote.push().unwrap();
                }
            });
        }
    });
    // One more round of pulls and pushes so everyone has everyone's last merge.
    for (_, remote, _) in &stores {
        remote.push().unwrap();
    }
    for (_, remote, _) in &stores {
        remote.pull().unwrap();
    }
    let head = stores[0].0.head();
    let data = common::dump(&stores[0].0);
    for (store, _, _) in &stores {
        assert_eq!(store.head(), head);
        assert_eq!(common::dump(store), data);
    }
    // No write lost: every writer's every key is there, and every version is in history.
    for w in 0..writers {
        for round in 1..=rounds {
            let key = format!("own:{w}:{round}");
            assert!(
                data.iter().any(|(k, _)| k.as_bytes() == key.as_bytes()),
                "{key} lost"
            );
        }
    }
    assert_eq!(
        stores[0].0.history(b"shared").unwrap().len(),
        writers * rounds as usize
    );
    common::assert_fsck_clean(remote_path);
}

#[test]
fn two_and_three_writers_pushing_to_a_bare_repository_at_once_converge() {
    for writers in [2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let remote_path = dir.path().join("remote.git");
        common::bare_remote(&remote_path);
        let url = remote_path.to_str().unwrap().to_owned();
        concurrent_writers(writers, || url.clone(), &remote_path);
    }
}

#[test]
fn three_writers_pushing_through_git_daemon_at_once_converge() {
    let dir = tempfile::tempdir().unwrap();
    common::bare_remote(&dir.path().join("r.git"));
    let daemon = common::Daemon::start(dir.path());
    concurrent_writers(3, || daemon.url("r.git"), &dir.path().join("r.git"));
}

#[test]
fn a_clone_rebuilds_the_same_data_with_history_and_past_versions() {
    let dir = tempfile::tempdir().unwrap();
    let remote_path = dir.path().join("remote.git");
    common::bare_remote(&remote_path);
    let url = remote_path.to_str().unwrap().to_owned();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = common::open_writer(&dir.path().join("cold.git"), "wa", clock.clone());
    let mut seqno = 0;
    let mut first_commit = None;
    for round in 0..8u64 {
        clock.advance(60_000);
        let changes: Vec<_> = (0..5u64)
            .map(|i| {
                seqno += 1;
                common::put(
                    format!("task:{i}").as_bytes(),
                    seqno,
                    format!("{{\"round\":{round}}}").as_bytes(),
                )
            })
            .collect();
        store.commit(&changes, Trigger::Manual, None).unwrap();
        first_commit.get_or_insert(store.head().unwrap());
    }
    store
        .commit(&[common::del(b"task:4", seqno + 1)], Trigger::Manual, None)
        .unwrap();
    Remote::new(store.clone(), options(&url), clock.clone())
        .unwrap()
        .push()
        .unwrap();

    let copy = clone_store(
        &url,
        Transport::Auto,
        dir.path().join("copy.git"),
        ColdOptions::default(),
        clock.clone(),
    )
    .unwrap();
    assert_ne!(copy.writer_id(), store.writer_id());
    assert_eq!(copy.head(), store.head());
    assert_eq!(common::dump(&copy), common::dump(&store));
    assert_eq!(
        copy.history(b"task:1").unwrap(),
        store.history(b"task:1").unwrap()
    );
    assert_eq!(copy.history(b"task:1").unwrap().len(), 8);
    let at_first = At::Commit(first_commit.unwrap());
    assert_eq!(
        copy.get_at(b"task:1", at_first).unwrap(),
        Some(Entry::put(2, &b"{\"round\":0}"[..]))
    );
    assert_eq!(copy.get_at(b"task:1", At::Time(0)).unwrap(), None);
    assert!(copy
        .get_at(b"task:4", At::Time(i64::MAX))
        .unwrap()
        .unwrap()
        .is_tombstone());
    // The clone writes on as a writer of its own, and pushes back.
    copy.commit(&[common::put(b"task:9", 1, b"9")], Trigger::Manual, None)
        .unwrap();
    let copy = Arc::new(copy);
    Remote::new(copy.clone(), options(&url), clock)
        .unwrap()
        .push()
        .unwrap();
    common::assert_fsck_clean(&remote_path);
    common::assert_fsck_clean(&dir.path().join("copy.git"));
    assert!(clone_store(
        &url,
        Transport::Auto,
        dir.path().join("copy.git"),
        ColdOptions::default(),
        Arc::new(ManualClock::new(0))
    )
    .is_err());
}

#[test]
fn credentials_in_a_url_stay_out_of_errors_and_the_repository_config() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = common::open_writer(&dir.path().join("cold.git"), "wa", clock.clone());
    commit(&store, "k", 1, "1");
    let url = format!(
        "http://alice:s3cret@127.0.0.1:{}/r.git",
        common::free_port()
    );
    let remote = Remote::new(store.clone(), options(&url), clock).unwrap();
    assert!(!remote.url().contains("s3cret"));
    let error = remote.push().unwrap_err().to_string();
    assert!(
        !error.contains("s3cret") && !error.contains("alice"),
        "{error}"
    );
    let config = std::fs::read_to_string(dir.path().join("cold.git/config")).unwrap();
    assert!(
        !config.contains("s3cret") && !config.contains("127.0.0.1"),
        "{config}"
    );
}

#[test]
fn a_merge_refuses_a_key_the_other_side_put_in_the_wrong_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let remote_path = dir.path().join("remote.git");
    common::bare_remote(&remote_path);
    let url = remote_path.to_str().unwrap().to_owned();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let a = common::open_writer(&dir.path().join("a.git"), "wa", clock.clone());
    let remote_a = Remote::new(a.clone(), options(&url), clock.clone()).unwrap();
    commit(&a, "task:1", 1, "1");
    remote_a.push().unwrap();

    // A foreign writer adds a key under a bucket its CRC32 does not give.
    let remote = git2::Repository::open_bare(&remote_path).unwrap();
    let head = remote.head().unwrap().peel_to_commit().unwrap();
    let blob = remote.blob(br#"{"value":2,"lsn":2}"#).unwrap();
    let wrong = if strata_gitsync::names::bucket(b"task:2") == "000" {
        "001"
    } else {
        "000"
    };
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(
        format!("state/{wrong}/task%3A2"),
        blob,
        git2::FileMode::Blob,
    );
    let tree = remote
        .find_tree(
            update
                .create_updated(&remote, &head.tree().unwrap())
                .unwrap(),
        )
        .unwrap();
    let signature = head.author();
    remote
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            "misplaced",
            &tree,
            &[&head],
        )
        .unwrap();

    commit(&a, "task:3", 2, "3");
    let error = remote_a
        .push()
        .expect_err("the merge refuses the misplaced key");
    let text = error.to_string();
    assert!(
        text.contains("wrong bucket") && text.contains(&format!("state/{wrong}/task%3A2")),
        "{text}"
    );
    assert_eq!(
        a.get(b"task:3", LATEST).unwrap(),
        Some(Entry::put(2, &b"3"[..]))
    );
}
