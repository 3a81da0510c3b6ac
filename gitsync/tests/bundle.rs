//! Bundles: a bundle of the cold repository is one git can verify and clone, and `unbundle`
//! rebuilds a repository with the same history, head and identity; a damaged bundle is refused
//! without leaving a half-made repository behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_gitsync::bundle::{self, SIGNATURE};
use strata_gitsync::{ColdOptions, ColdStore, Trigger};
use strata_tiering::clock::ManualClock;
use strata_tiering::LATEST;

#[test]
fn a_bundle_round_trips_and_git_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.git");
    let store = common::open(&path, 2);
    for round in 0..4u64 {
        let changes: Vec<_> = (1..=10u64)
            .map(|i| {
                let lsn = round * 10 + i;
                common::put(format!("k{i}").as_bytes(), lsn, format!("{lsn}").as_bytes())
            })
            .collect();
        store.commit(&changes, Trigger::Manual, None).unwrap();
    }
    store.record_examined(45).unwrap();
    let file = dir.path().join("cold.bundle");
    let info = store.bundle(&file).unwrap();
    let head = store.head().unwrap();
    assert_eq!(info.reference("HEAD"), Some(head));
    assert_eq!(info.reference("refs/heads/main"), Some(head));
    assert!(info.objects > 4, "{info:?}");
    assert_eq!(info.bytes, std::fs::metadata(&file).unwrap().len());
    // A second bundle never overwrites the first.
    assert!(store.bundle(&file).is_err());

    // git itself verifies and clones it.
    common::git(&path, &["bundle", "verify", file.to_str().unwrap()]);
    let clone = dir.path().join("clone.git");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&file)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(cloned.success());
    let log = common::git(&clone, &["log", "--oneline"]);
    assert_eq!(log.matches("10 changes").count(), 4, "{log}");

    // Unbundled, it is the same repository with the same identity.
    let restored = dir.path().join("restored.git");
    let unbundled = bundle::unbundle(&file, &restored).unwrap();
    assert_eq!(unbundled.refs, info.refs);
    assert_eq!(unbundled.objects, info.objects);
    bundle::adopt_identity(&restored, store.writer_id(), store.is_shared(), 45).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let reopened = ColdStore::open(&restored, ColdOptions::default(), clock).unwrap();
    assert_eq!(reopened.writer_id(), store.writer_id());
    assert_eq!(reopened.head(), Some(head));
    assert_eq!(reopened.committed_lsn(), store.committed_lsn());
    assert_eq!(reopened.examined_lsn().unwrap(), 45);
    assert!(reopened.verify().unwrap().commits >= 4);
    assert_eq!(
        reopened
            .scan(&strata_tiering::KeyRange::all(), LATEST)
            .unwrap(),
        store
            .scan(&strata_tiering::KeyRange::all(), LATEST)
            .unwrap()
    );
    // Never into an existing repository.
    assert!(bundle::unbundle(&file, &restored).is_err());
}

#[test]
fn an_empty_repository_bundles_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(&dir.path().join("cold.git"), 2);
    let empty = dir.path().join("empty.bundle");
    let info = store.bundle(&empty).unwrap();
    assert!(info.refs.is_empty());
    let restored = dir.path().join("from-empty.git");
    assert_eq!(bundle::unbundle(&empty, &restored).unwrap().refs, vec![]);

    store
        .commit(&[common::put(b"k", 1, b"v")], Trigger::Manual, None)
        .unwrap();
    let file = dir.path().join("one.bundle");
    store.bundle(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();

    // A flipped byte inside the pack: the indexer refuses it, nothing is left behind.
    let mut damaged = bytes.clone();
    let at = damaged.len() - 30;
    damaged[at] ^= 0x5A;
    let bad = dir.path().join("bad.bundle");
    std::fs::write(&bad, &damaged).unwrap();
    let target = dir.path().join("bad.git");
    let err = bundle::unbundle(&bad, &target).unwrap_err();
    assert!(err.to_string().contains("bad.bundle"), "{err}");
    assert!(!target.exists());

    // Headers that are not a bundle's.
    for (name, text) in [
        ("sig", b"# v9 git bundle\n\nPACK".to_vec()),
        (
            "ref",
            format!("{SIGNATURE}\nnot-an-id refs/heads/main\n\n").into_bytes(),
        ),
        (
            "long",
            [SIGNATURE.as_bytes(), b"\n", &[b'a'; 5000]].concat(),
        ),
        ("cut", format!("{SIGNATURE}\n").into_bytes()),
    ] {
        let path = dir.path().join(format!("{name}.bundle"));
        std::fs::write(&path, text).unwrap();
        let err = bundle::unbundle(&path, &dir.path().join(format!("{name}.git"))).unwrap_err();
        assert!(err.to_string().contains(&format!("{name}.bundle")), "{err}");
    }
    // A header that names a commit the pack lacks.
    let missing = dir.path().join("missing.bundle");
    let mut text = format!("{SIGNATURE}\n{} refs/heads/main\n\n", "1".repeat(40)).into_bytes();
    text.extend_from_slice(&bytes[bytes.iter().position(|&b| b == b'P').unwrap()..]);
    std::fs::write(&missing, text).unwrap();
    let err = bundle::unbundle(&missing, &dir.path().join("missing.git")).unwrap_err();
    assert!(err.to_string().contains("lacks"), "{err}");
}
