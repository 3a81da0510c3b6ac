//! Checks on single keys: versions, snapshots, tombstones, expiry and unusual keys and values.

use super::*;

/// A key that was never written is absent, at every snapshot; so are near misses and byte strings
/// that cannot be keys.
pub fn absent_key_is_none(tier: &dyn Tier) {
    expect_get(tier, b"missing", LATEST, None, "empty tier");
    expect_get(tier, b"missing", 0, None, "empty tier");
    expect_scan(tier, &KeyRange::all(), LATEST, &[], "empty tier");

    put(tier, b"ab", 1, "v");
    for near in [&b"a"[..], b"abc", b"ab\x00", b"b", b"AB"] {
        expect_get(tier, near, LATEST, None, "only `ab` was written");
    }
    for invalid in [Vec::new(), vec![b'x'; MAX_KEY_LEN + 1]] {
        match tier.get(&invalid, LATEST) {
            Ok(None) => {}
            Err(e) if e.kind() == crate::ErrorKind::InvalidInput => {}
            other => panic!(
                "tier `{}`: get of an invalid {}-byte key must be Ok(None) or an invalid-input \
                 error, got {other:?}",
                tier.name(),
                invalid.len()
            ),
        }
    }
}

/// A written value comes back with its seqno, including an empty value (which is not a deletion).
pub fn put_get_round_trip(tier: &dyn Tier) {
    put(tier, b"k", 7, "hello");
    put(tier, b"empty", 8, "");
    expect_get(
        tier,
        b"k",
        LATEST,
        Some(Entry::put(7, "hello")),
        "written at 7",
    );
    expect_get(tier, b"k", 7, Some(Entry::put(7, "hello")), "written at 7");
    expect_get(
        tier,
        b"empty",
        LATEST,
        Some(Entry::put(8, "")),
        "an empty value",
    );
}

/// The version with the higher seqno wins.
pub fn newer_seqno_shadows_older(tier: &dyn Tier) {
    put(tier, b"k", 1, "v1");
    put(tier, b"k", 2, "v2");
    expect_get(tier, b"k", LATEST, Some(Entry::put(2, "v2")), "v2 is newer");
}

/// A read at snapshot `s` sees the newest version with seqno <= `s`, and nothing below the first.
pub fn snapshot_reads(tier: &dyn Tier) {
    for s in [10, 20, 30] {
        put(tier, b"k", s, format!("v{s}"));
    }
    let cases: [(SeqNo, Option<SeqNo>); 8] = [
        (0, None),
        (9, None),
        (10, Some(10)),
        (15, Some(10)),
        (20, Some(20)),
        (29, Some(20)),
        (30, Some(30)),
        (LATEST, Some(30)),
    ];
    for (snapshot, version) in cases {
        let want = version.map(|s| Entry::put(s, format!("v{s}")));
        expect_get(tier, b"k", snapshot, want, "versions at 10, 20, 30");
    }
}

/// A deletion is returned as a tombstone and hides the older value, which stays readable below it.
pub fn tombstone_shadows_value(tier: &dyn Tier) {
    put(tier, b"k", 1, "v");
    delete(tier, b"k", 2);
    expect_get(
        tier,
        b"k",
        LATEST,
        Some(Entry::tombstone(2)),
        "deleted at 2",
    );
    expect_get(tier, b"k", 2, Some(Entry::tombstone(2)), "deleted at 2");
    expect_get(
        tier,
        b"k",
        1,
        Some(Entry::put(1, "v")),
        "the value before the deletion",
    );

    // A tombstone for a key this tier never held a value for is still returned.
    delete(tier, b"only-deleted", 3);
    expect_get(
        tier,
        b"only-deleted",
        LATEST,
        Some(Entry::tombstone(3)),
        "deleted at 3",
    );
}

/// A key deleted and written again reads as the new value; snapshots in between see the deletion.
pub fn put_after_tombstone(tier: &dyn Tier) {
    put(tier, b"k", 1, "first");
    delete(tier, b"k", 2);
    put(tier, b"k", 3, "second");
    expect_get(
        tier,
        b"k",
        LATEST,
        Some(Entry::put(3, "second")),
        "re-written at 3",
    );
    expect_get(tier, b"k", 2, Some(Entry::tombstone(2)), "deleted at 2");
    expect_get(
        tier,
        b"k",
        1,
        Some(Entry::put(1, "first")),
        "first written at 1",
    );
}

/// Versions are ordered by seqno, not arrival: an older version applied late never shadows a
/// newer one, but is visible at its own snapshot.
pub fn out_of_order_versions(tier: &dyn Tier) {
    put(tier, b"k", 5, "new");
    put(tier, b"k", 3, "old");
    delete(tier, b"k", 2);
    expect_get(
        tier,
        b"k",
        LATEST,
        Some(Entry::put(5, "new")),
        "5 is newest though applied first",
    );
    expect_get(
        tier,
        b"k",
        4,
        Some(Entry::put(3, "old")),
        "3 is visible at 4",
    );
    expect_get(
        tier,
        b"k",
        2,
        Some(Entry::tombstone(2)),
        "the deletion at 2",
    );

    delete(tier, b"d", 10);
    put(tier, b"d", 8, "resurrected?");
    expect_get(
        tier,
        b"d",
        LATEST,
        Some(Entry::tombstone(10)),
        "a late older put must not undo a deletion",
    );

    // Out of order within one batch too.
    apply(
        tier,
        &[
            Change::put(key(b"m"), 9, "m9"),
            Change::put(key(b"m"), 7, "m7"),
        ],
    );
    expect_get(
        tier,
        b"m",
        LATEST,
        Some(Entry::put(9, "m9")),
        "9 is newest within the batch",
    );

    let want = [
        (key(b"d"), Entry::tombstone(10)),
        (key(b"k"), Entry::put(5, "new")),
        (key(b"m"), Entry::put(9, "m9")),
    ];
    expect_scan(
        tier,
        &KeyRange::all(),
        LATEST,
        &want,
        "out-of-order versions",
    );
}

/// Expiry times are stored and returned exactly, including 0; a newer version without one clears it.
pub fn expiry_round_trips(tier: &dyn Tier) {
    let cases: [(&[u8], u64); 4] = [
        (b"t0", 0),
        (b"t1", 1),
        (b"tnow", 1_700_000_000_123),
        (b"tmax", u64::MAX),
    ];
    let batch: Vec<Change> = cases
        .iter()
        .zip(1..)
        .map(|((k, at), s)| Change::new(key(k), Entry::put(s, *k).with_expiry(*at)))
        .collect();
    apply(tier, &batch);
    put(tier, b"plain", 10, "no expiry");
    for ((k, at), s) in cases.iter().zip(1..) {
        let want = Entry::put(s, *k).with_expiry(*at);
        expect_get(tier, k, LATEST, Some(want), "expiry must round-trip");
    }
    expect_get(
        tier,
        b"plain",
        LATEST,
        Some(Entry::put(10, "no expiry")),
        "no expiry set",
    );

    let scanned = scan(tier, &KeyRange::prefix(b"t"), LATEST);
    let expiries: Vec<Option<u64>> = scanned.iter().map(|(_, e)| e.expires_at).collect();
    assert_eq!(
        expiries,
        vec![Some(0), Some(1), Some(u64::MAX), Some(1_700_000_000_123)],
        "tier `{}`: expiry through scan (keys t0, t1, tmax, tnow)",
        tier.name()
    );

    put(tier, b"tnow", 20, "rewritten");
    expect_get(
        tier,
        b"tnow",
        LATEST,
        Some(Entry::put(20, "rewritten")),
        "newer version has no expiry",
    );
    let old = Entry::put(3, &b"tnow"[..]).with_expiry(1_700_000_000_123);
    expect_get(
        tier,
        b"tnow",
        19,
        Some(old),
        "older version keeps its expiry",
    );
}

/// Keys are arbitrary bytes, ordered as unsigned bytes, up to the maximum length.
pub fn binary_keys(tier: &dyn Tier) {
    let mut keys: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xFF],
        vec![0xFF],
        vec![0xFF, 0x00],
        vec![0xFF, 0xFF, 0xFF],
        b"a\x00b".to_vec(),
        vec![0x7F],
        vec![0x80],
        (0..=255).collect(),
        vec![0xAB; MAX_KEY_LEN],
    ];
    let batch: Vec<Change> = keys
        .iter()
        .zip(1..)
        .map(|(k, s)| Change::put(key(k), s, k.len().to_string()))
        .collect();
    apply(tier, &batch);
    for (k, s) in keys.iter().zip(1..) {
        let want = Entry::put(s, k.len().to_string());
        expect_get(tier, k, LATEST, Some(want), "binary key");
    }
    keys.sort();
    let scanned: Vec<Vec<u8>> = scan(tier, &KeyRange::all(), LATEST)
        .into_iter()
        .map(|(k, _)| k.as_bytes().to_vec())
        .collect();
    assert!(
        scanned == keys,
        "tier `{}`: scan must order binary keys bytewise (unsigned); got {:?}",
        tier.name(),
        scanned
            .iter()
            .map(|k| crate::escape_bytes(k, 16))
            .collect::<Vec<_>>()
    );
}

/// A 1 MiB value comes back byte for byte, through get and scan.
pub fn large_value(tier: &dyn Tier) {
    // Not a repeating byte, so a tier that truncates or misorders chunks is caught.
    let bytes: Vec<u8> = (0..1usize << 20)
        .map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect();
    put(tier, b"big", 1, bytes.clone());
    let got = get(tier, b"big", LATEST);
    let same = |e: &Option<Entry>| {
        e.as_ref()
            .and_then(Entry::value)
            .is_some_and(|v| v.as_bytes() == bytes.as_slice())
    };
    assert!(
        same(&got),
        "tier `{}`: 1 MiB value did not round-trip through get",
        tier.name()
    );
    let scanned = scan(tier, &KeyRange::all(), LATEST);
    assert!(
        scanned.len() == 1 && same(&Some(scanned[0].1.clone())),
        "tier `{}`: 1 MiB value did not round-trip through scan",
        tier.name()
    );
}
