//! The repository as people see it: safe names for hostile keys, readable JSON, one pack per
//! commit and no loose objects, trailers, reopen, history, and `git fsck --strict`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use strata_gitsync::{names, Trigger};
use strata_tiering::{Entry, LATEST};

fn loose_objects(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("objects"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().len() == 2)
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum()
}

/// Every object id in the repository's packs, reachable or not.
fn all_objects(repo: &Path) -> std::collections::BTreeSet<String> {
    common::git(
        repo,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Commits key `k<seqno>` alone, at LSN `seqno`.
fn commit_one(store: &strata_gitsync::ColdStore, seqno: u64, value: &[u8]) {
    let key = format!("k{seqno}");
    store
        .commit(
            &[common::put(key.as_bytes(), seqno, value)],
            Trigger::Manual,
            None,
        )
        .unwrap();
}

#[test]
fn hostile_keys_stay_inside_the_tree_and_fsck_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open(&repo, 1);
    let keys: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b".".to_vec(),
        b"/".to_vec(),
        b"\\".to_vec(),
        b"../../../../tmp/owned".to_vec(),
        b"/etc/passwd".to_vec(),
        b".git".to_vec(),
        b".GIT".to_vec(),
        b".gitmodules".to_vec(),
        b"git~1".to_vec(),
        ".g\u{200c}it".as_bytes().to_vec(),
        "\u{FF0E}git".as_bytes().to_vec(),
        b"nul\0byte".to_vec(),
        vec![0xFF, 0xFE],
        vec![b'k'; 64 * 1024],
        b"task:1".to_vec(),
    ];
    let changes: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| common::put(k, i as u64 + 1, b"{\"ok\":true}"))
        .collect();
    store.commit(&changes, Trigger::Manual, None).unwrap();
    store
        .commit(&[common::put(b"fold", 100, b"1")], Trigger::Manual, None)
        .unwrap(); // forces a fold
    for (i, key) in keys.iter().enumerate() {
        let got = store.get(key, LATEST).unwrap().unwrap();
        assert_eq!(
            got,
            Entry::put(i as u64 + 1, "{\"ok\":true}"),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    common::assert_fsck_clean(&repo);
    // Nothing was written outside the repository.
    assert!(!dir.path().join("tmp").exists() && !Path::new("/tmp/owned").exists());
    let listing = common::git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"]);
    for path in listing.lines() {
        assert!(
            path.starts_with("state/") || path.starts_with("chunks/"),
            "{path}"
        );
        assert!(
            path.split('/')
                .all(|part| !part.starts_with('.') && part.len() <= 255),
            "{path}"
        );
    }
}

#[test]
fn values_are_readable_with_git_show_and_commits_carry_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open(&repo, 1);
    store
        .commit(
            &[
                common::put(b"task:7", 41, br#"{"title":"write docs"}"#),
                common::put(b"bin", 42, b"\x00\x01"),
            ],
            Trigger::Size,
            Some(45),
        )
        .unwrap();
    let log = common::git(&repo, &["log", "-1", "--format=%B"]);
    for trailer in [
        "Strata-Batch: 41-42",
        "Strata-Lsn: 45",
        "Strata-Writer: wtest",
        "Strata-Trigger: size",
    ] {
        assert!(log.contains(trailer), "{trailer} missing from:\n{log}");
    }
    let chunk = common::git(&repo, &["show", "HEAD:chunks"]);
    let chunk_name = chunk.lines().find(|l| l.ends_with("-wtest.jsonl")).unwrap();
    let lines = common::git(&repo, &["show", &format!("HEAD:chunks/{chunk_name}")]);
    assert!(
        lines.contains(r#"{"key":"task:7","value":{"title":"write docs"},"lsn":41}"#),
        "{lines}"
    );
    assert!(lines.contains(r#""value_b64":"AAE=""#), "{lines}");

    store
        .commit(&[common::put(b"other", 50, b"1")], Trigger::Manual, None)
        .unwrap(); // folds
    let path = names::state_path(b"task:7").unwrap();
    let blob = common::git(&repo, &["show", &format!("HEAD:{path}")]);
    // The state blob also names the chunk the version came from (clock reading and writer).
    assert_eq!(
        blob,
        r#"{"value":{"title":"write docs"},"lsn":41,"at":"0001700000000000-000000-wtest"}"#
    );
    assert_eq!(store.committed_lsn(), 50);
}

#[test]
fn every_commit_is_one_pack_and_no_object_is_loose() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open(&repo, 100);
    for batch in 0..5u64 {
        let changes: Vec<_> = (0..200u64)
            .map(|i| common::put(format!("k{i}").as_bytes(), batch * 200 + i + 1, b"1"))
            .collect();
        store.commit(&changes, Trigger::Manual, None).unwrap();
    }
    assert_eq!(loose_objects(&repo), 0);
    assert_eq!(common::packs(&repo), 5);
    // Each pack holds only what its commit added: the chunk blob, the root and chunks/ trees
    // and the commit, never the objects earlier commits already stored.
    let counts = common::git(&repo, &["count-objects", "-v"]);
    assert!(counts.contains("in-pack: 20\n"), "{counts}");
    common::assert_fsck_clean(&repo);
}

#[test]
fn packs_stay_bounded_and_a_repack_leaves_one_pack_with_everything_readable() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open_with_packs(&repo, 4, 6);
    let mut seqno = 0;
    let mut merges = 0;
    let mut objects = std::collections::BTreeSet::new();
    for batch in 0..30u64 {
        let changes: Vec<_> = (0..20u64)
            .map(|i| {
                seqno += 1;
                common::put(
                    format!("k{}", (batch * 7 + i) % 50).as_bytes(),
                    seqno,
                    b"[1,2]",
                )
            })
            .collect();
        let before = common::packs(&repo);
        store.commit(&changes, Trigger::Manual, None).unwrap();
        let after = common::packs(&repo);
        if after < before {
            // Small packs merged into one; the larger ones stay.
            merges += 1;
        }
        let now = all_objects(&repo);
        assert!(objects.is_subset(&now), "batch {batch} lost objects");
        objects = now;
        assert!(
            common::packs(&repo) <= 7,
            "{} packs after batch {batch}",
            common::packs(&repo)
        );
    }
    assert!(merges >= 3, "{merges} automatic merges");
    common::assert_fsck_clean(&repo);
    // git checks every pack the merges wrote, deltas included; older tree versions are deltas
    // against newer ones.
    let mut deltas = 0;
    for entry in std::fs::read_dir(repo.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            let listing = common::git(&repo, &["verify-pack", "-v", path.to_str().unwrap()]);
            deltas += listing
                .lines()
                .filter(|line| line.contains(" tree ") && line.split_whitespace().count() == 7)
                .count();
        }
    }
    assert!(deltas > 0, "no tree was stored as a delta");
    // libgit2 reads the merged packs too: every key, and a key's whole history.
    for k in 0..50 {
        let key = format!("k{k}");
        assert!(
            store.get(key.as_bytes(), LATEST).unwrap().is_some(),
            "{key}"
        );
    }
    assert!(store.history(b"k7").unwrap().len() >= 2);
    let report = store.repack().unwrap();
    assert_eq!(report.packs_after, 1);
    assert_eq!(common::packs(&repo), 1);
    assert_eq!(loose_objects(&repo), 0);
    common::assert_fsck_clean(&repo);
    // Every key still reads, and history still reaches the first commit.
    for k in 0..50 {
        assert!(store
            .get(format!("k{k}").as_bytes(), LATEST)
            .unwrap()
            .is_some());
    }
    let log = common::git(&repo, &["rev-list", "--count", "main"]);
    assert!(log.trim().parse::<u32>().unwrap() >= 30);
    drop(store);
    let reopened = common::open(&repo, 4);
    assert_eq!(reopened.committed_lsn(), seqno);
}

/// With merges deferred, commits leave the packs alone and `merge_packs` merges them.
#[test]
fn deferred_merges_wait_for_merge_packs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open_with_packs(&repo, 100, 3);
    store.defer_pack_merges(true);
    for seqno in 1..=6u64 {
        commit_one(&store, seqno, b"1");
    }
    assert_eq!(common::packs(&repo), 6, "commits merged nothing");
    store.merge_packs();
    assert_eq!(store.fold_error(), None);
    assert!(
        common::packs(&repo) <= 3,
        "{} packs after merge_packs",
        common::packs(&repo)
    );
    common::assert_fsck_clean(&repo);
    assert!(store.get(b"k1", LATEST).unwrap().is_some());
    // Not deferred any more: the next commits merge again.
    store.defer_pack_merges(false);
    for seqno in 7..=12u64 {
        commit_one(&store, seqno, b"1");
        assert!(common::packs(&repo) <= 4);
    }
}

/// A crash can leave a pack without its index, or an index not yet renamed into place; no
/// reader sees either, and the next merge of small packs removes them once they are an hour
/// old (a younger one may be another handle's install in progress).
#[test]
fn leftovers_of_an_interrupted_pack_install_are_removed_by_the_next_merge() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open_with_packs(&repo, 4, 4);
    store
        .commit(&[common::put(b"a", 1, b"1")], Trigger::Manual, None)
        .unwrap();
    let pack_dir = repo.join("objects/pack");
    let orphan = pack_dir.join(format!("pack-{}.pack", "0".repeat(40)));
    let torn_index = pack_dir.join("tmp-1-1.idx.tmp");
    let torn_pack = pack_dir.join("tmp-1-1.pack.tmp");
    let young_temporary = pack_dir.join("tmp-1-2.pack.tmp");
    std::fs::write(&orphan, b"PACK\0\0\0\x02 torn").unwrap();
    std::fs::write(&torn_index, b"\xfftOc torn").unwrap();
    std::fs::write(&torn_pack, b"PACK torn").unwrap();
    std::fs::write(&young_temporary, b"PACK in progress").unwrap();
    let young = pack_dir.join(format!("pack-{}.pack", "1".repeat(40)));
    std::fs::write(&young, b"PACK\0\0\0\x02 in progress").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for old in [&orphan, &torn_index, &torn_pack] {
        std::fs::File::options()
            .write(true)
            .open(old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    common::assert_fsck_clean(&repo);
    for seqno in 2..=6u64 {
        commit_one(&store, seqno, b"2");
        assert_eq!(store.fold_error(), None);
    }
    assert!(!orphan.exists(), "the pack without an index is gone");
    assert!(!torn_index.exists(), "the uninstalled index is gone");
    assert!(!torn_pack.exists(), "the uninstalled pack is gone");
    assert!(
        young_temporary.exists(),
        "a young temporary file may be an install in progress"
    );
    assert!(
        young.exists(),
        "a young pack without an index may be an install in progress"
    );
    assert!(common::packs(&repo) <= 5);
    common::assert_fsck_clean(&repo);
    assert!(store.get(b"a", LATEST).unwrap().is_some());
    assert!(store.get(b"k6", LATEST).unwrap().is_some());
}

/// A pack whose index is damaged while the store runs cannot be merged: the merge fails
/// openly (the store's fold error names it), commits go on, and the merge is tried again only
/// once `max_packs` more packs exist, not on every commit. Reopening the store rebuilds the
/// index from its pack.
#[test]
fn a_damaged_index_stops_merges_openly_commits_go_on_and_reopening_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open_with_packs(&repo, 100, 4);
    store
        .commit(&[common::put(b"a", 1, b"1")], Trigger::Manual, None)
        .unwrap();
    // Flip a bit in the CRC table of the first pack's index (libgit2 reads objects without
    // it; the merge checks the index's checksum). The pack holds 4 objects: a blob, two
    // trees and a commit.
    let pack_dir = repo.join("objects/pack");
    let idx = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let mut bytes = std::fs::read(&idx).unwrap();
    let original = bytes.clone();
    bytes[8 + 1024 + 4 * 20] ^= 0x01;
    std::fs::write(&idx, &bytes).unwrap();
    for seqno in 2..=8u64 {
        commit_one(&store, seqno, b"2");
    }
    let error = store.fold_error().expect("the failed merge is reported");
    assert!(error.contains("repack"), "{error}");
    assert!(error.contains(&idx.display().to_string()), "{error}");
    // One failed try at the fifth pack, none since: the packs pile up until the retry point.
    assert_eq!(common::packs(&repo), 8);
    assert!(store.get(b"k8", LATEST).unwrap().is_some());
    drop(store);

    // Now an offset pointing past the pack, which libgit2 would follow: reopening finds the
    // damage before anything reads, moves the index aside and rebuilds it.
    let mut bytes = original.clone();
    let offsets = 8 + 1024 + 4 * 24;
    bytes[offsets] ^= 0x01;
    let body = bytes.len() - 20;
    let digest = <sha1::Sha1 as sha1::Digest>::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&digest);
    std::fs::write(&idx, &bytes).unwrap();
    // A read-only open repairs nothing: the damage is an error naming the index.
    let refused = strata_gitsync::ColdStore::open_read_only(
        &repo,
        strata_gitsync::ColdOptions::default(),
        std::sync::Arc::new(strata_tiering::clock::ManualClock::new(1_700_000_000_000)),
    );
    match refused {
        Err(strata_gitsync::Error::Corrupt { path, .. }) => assert_eq!(path, idx),
        Err(other) => panic!("a damaged index must be refused as damage: {other}"),
        Ok(_) => panic!("a damaged index must be refused"),
    }
    assert_eq!(std::fs::read(&idx).unwrap(), bytes, "left as it was");
    let store = common::open_with_packs(&repo, 100, 4);
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        original,
        "the index is rebuilt"
    );
    assert!(idx.with_extension("idx.damaged").exists());
    assert_eq!(store.get(b"a", LATEST).unwrap(), Some(Entry::put(1, "1")));
    common::assert_fsck_clean(&repo);
}

/// A failed merge's error lasts only until a merge succeeds.
#[test]
fn a_merge_error_clears_when_a_later_merge_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let store = common::open_with_packs(&repo, 100, 4);
    commit_one(&store, 1, b"1");
    let idx = std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let original = std::fs::read(&idx).unwrap();
    let mut damaged = original.clone();
    damaged[8 + 1024 + 4 * 20] ^= 0x01;
    std::fs::write(&idx, &damaged).unwrap();
    for seqno in 2..=5 {
        commit_one(&store, seqno, b"2");
    }
    assert!(store.fold_error().is_some_and(|e| e.contains("repack")));
    // Sound again: the retry (once 4 more packs exist) merges and the error is gone.
    std::fs::write(&idx, &original).unwrap();
    for seqno in 6..=9 {
        commit_one(&store, seqno, b"2");
    }
    assert_eq!(store.fold_error(), None);
    assert!(common::packs(&repo) <= 4, "{} packs", common::packs(&repo));
    common::assert_fsck_clean(&repo);
}

#[test]
fn reopening_restores_the_watermark_unfolded_chunks_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    {
        let store = common::open(&repo, 3);
        for lsn in 1..=8u64 {
            store
                .commit(
                    &[common::put(b"counter", lsn, lsn.to_string().as_bytes())],
                    Trigger::Manual,
                    None,
                )
                .unwrap();
        }
        store
            .commit(&[common::del(b"counter", 9)], Trigger::Manual, Some(12))
            .unwrap();
    }
    let store = common::open(&repo, 3);
    assert_eq!(store.committed_lsn(), 12);
    assert_eq!(
        store.get(b"counter", LATEST).unwrap(),
        Some(Entry::tombstone(9))
    );
    assert_eq!(store.get(b"counter", 5).unwrap(), Some(Entry::put(5, "5")));
    let history = store.history(b"counter").unwrap();
    assert_eq!(
        history.iter().map(|v| v.entry.seqno).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert!(history.windows(2).all(|w| w[0].commit != w[1].commit));
}

#[test]
fn a_second_writer_on_the_same_branch_gets_a_typed_retryable_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let first = common::open(&repo, 10);
    let second = common::open(&repo, 10);
    first
        .commit(&[common::put(b"a", 1, b"1")], Trigger::Manual, None)
        .unwrap();
    let err = second
        .commit(&[common::put(b"b", 2, b"2")], Trigger::Manual, None)
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("retry"), "{err}");
    // The losing commit left nothing reachable behind, and the repository is sound.
    assert_eq!(
        common::git(&repo, &["rev-list", "--count", "HEAD"]).trim(),
        "1"
    );
    common::assert_fsck_clean(&repo);
    // The loser re-read the branch, so its retry lands on top of the winner's commit.
    second
        .commit(&[common::put(b"b", 2, b"2")], Trigger::Manual, None)
        .unwrap();
    assert_eq!(second.get(b"a", LATEST).unwrap(), Some(Entry::put(1, "1")));
    assert_eq!(
        common::git(&repo, &["rev-list", "--count", "HEAD"]).trim(),
        "2"
    );
}

#[test]
fn state_fans_out_one_level_and_a_key_in_the_wrong_bucket_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("cold.git");
    let store = common::open(&repo_path, 1);
    let keys: Vec<String> = (0..50).map(|i| format!("task:{i}")).collect();
    let changes: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| common::put(k.as_bytes(), i as u64 + 1, b"1"))
        .collect();
    store.commit(&changes, Trigger::Manual, None).unwrap();
    store
        .commit(&[common::put(b"last", 60, b"2")], Trigger::Manual, None)
        .unwrap(); // folds
    drop(store);

    // state/<3 hex digits>/<name>, nothing deeper.
    let listing = common::git(
        &repo_path,
        &["ls-tree", "-r", "--name-only", "HEAD", "state"],
    );
    let paths: Vec<&str> = listing.lines().collect();
    assert_eq!(paths.len(), 51);
    for path in &paths {
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts.len(), 3, "{path}");
        assert!(parts[1].len() == 3 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    // Move one key's blob to another bucket, as a foreign or damaged writer might.
    let repo = git2::Repository::open_bare(&repo_path).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let path = names::state_path(b"task:7").unwrap();
    let blob = head
        .tree()
        .unwrap()
        .get_path(Path::new(&path))
        .unwrap()
        .id();
    let wrong = if names::bucket(b"task:7") == "000" {
        "3ff"
    } else {
        "000"
    };
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.remove(&path);
    update.upsert(
        format!("state/{wrong}/task%3A7"),
        blob,
        git2::FileMode::Blob,
    );
    let tree_id = update.create_updated(&repo, &head.tree().unwrap()).unwrap();
    let tree = repo.find_tree(tree_id).unwrap();
    let signature = head.author();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        "misplace a key",
        &tree,
        &[&head],
    )
    .unwrap();

    let store = common::open(&repo_path, 1);
    let error = store
        .scan(&strata_tiering::KeyRange::all(), LATEST)
        .expect_err("a misplaced key is damage, not a missing key");
    let text = error.to_string();
    assert!(
        text.contains("wrong bucket") && text.contains(&format!("state/{wrong}/")),
        "{text}"
    );
}

/// A repository in the two-level layout of earlier versions (`state/<aa>/<bb>/<name>`) is
/// refused at open with an error naming the layout, rather than answering reads of its
/// folded keys with "absent".
#[test]
fn a_repository_in_the_old_two_level_layout_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    let repo = git2::Repository::init_bare(&path).unwrap();
    let blob = repo.blob(br#"{"value":1,"lsn":1}"#).unwrap();
    let nest = |name: &str, id: git2::Oid, mode: i32| {
        let mut builder = repo.treebuilder(None).unwrap();
        builder.insert(name, id, mode).unwrap();
        builder.write().unwrap()
    };
    let leaf = nest("task%3A1", blob, 0o100644);
    let second = nest("cd", leaf, 0o040000);
    let first = nest("ab", second, 0o040000);
    let root = nest("state", first, 0o040000);
    let tree = repo.find_tree(root).unwrap();
    let who = git2::Signature::new("old", "old@example.invalid", &git2::Time::new(0, 0)).unwrap();
    repo.commit(
        Some("refs/heads/main"),
        &who,
        &who,
        "old layout",
        &tree,
        &[],
    )
    .unwrap();
    repo.set_head("refs/heads/main").unwrap();
    drop(tree);
    drop(repo);

    let opened = strata_gitsync::ColdStore::open(
        &path,
        strata_gitsync::ColdOptions {
            writer_id: Some("wtest".into()),
            ..strata_gitsync::ColdOptions::default()
        },
        std::sync::Arc::new(strata_tiering::clock::ManualClock::new(1_700_000_000_000)),
    );
    let error = opened
        .map(drop)
        .expect_err("the old layout is refused")
        .to_string();
    assert!(error.contains("state/ab"), "{error}");
    assert!(error.contains("layout"), "{error}");
}
