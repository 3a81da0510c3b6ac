//! Checks on scans: order, one version per key, snapshots and every shape of range.

use std::ops::Bound;

use super::*;
use crate::range::ByteBounds;

/// Scans are ascending, one item per key with its newest visible version, tombstones included.
pub fn scan_order_and_snapshots(tier: &dyn Tier) {
    put(tier, b"c", 1, "c1");
    put(tier, b"a", 2, "a2");
    put(tier, b"b", 3, "b3");
    delete(tier, b"c", 4);
    put(tier, b"a", 5, "a5");
    put(tier, b"d", 6, "d6");

    let all = KeyRange::all();
    let latest = [
        (key(b"a"), Entry::put(5, "a5")),
        (key(b"b"), Entry::put(3, "b3")),
        (key(b"c"), Entry::tombstone(4)),
        (key(b"d"), Entry::put(6, "d6")),
    ];
    expect_scan(tier, &all, LATEST, &latest, "newest versions");
    expect_scan(tier, &all, 6, &latest, "snapshot at the last write");

    let at_3 = [
        (key(b"a"), Entry::put(2, "a2")),
        (key(b"b"), Entry::put(3, "b3")),
        (key(b"c"), Entry::put(1, "c1")),
    ];
    expect_scan(tier, &all, 3, &at_3, "before the deletion and the rewrite");
    expect_scan(
        tier,
        &all,
        1,
        &[(key(b"c"), Entry::put(1, "c1"))],
        "only c exists at 1",
    );
    expect_scan(tier, &all, 0, &[], "nothing exists at 0");
}

/// Full, prefix, bounded and empty ranges select exactly the keys they describe.
pub fn scan_ranges(tier: &dyn Tier) {
    let keys: [&[u8]; 12] = [
        b"a",
        b"ab",
        b"abc",
        b"a\xff",
        b"a\xff\xff",
        b"b",
        b"b\x00",
        b"ba",
        b"c",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
    ];
    let batch: Vec<Change> = keys
        .iter()
        .zip(1..)
        .map(|(k, s)| Change::put(key(k), s, *k))
        .collect();
    apply(tier, &batch);
    let seqno_of = |k: &[u8]| keys.iter().zip(1..).find(|(x, _)| **x == k).map(|(_, s)| s);
    // The expected scan of a range: the written keys matching `pred` with a seqno <= snapshot.
    let expected = |pred: &dyn Fn(&[u8]) -> bool, snapshot: SeqNo| -> Vec<(Key, Entry)> {
        let mut want: Vec<(Key, Entry)> = keys
            .iter()
            .filter(|k| pred(k))
            .filter_map(|k| {
                let s = seqno_of(k)?;
                (s <= snapshot).then(|| (key(k), Entry::put(s, *k)))
            })
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        want
    };

    expect_scan(
        tier,
        &KeyRange::all(),
        LATEST,
        &expected(&|_| true, LATEST),
        "everything",
    );

    for prefix in [
        &b"a"[..],
        b"ab",
        b"a\xff",
        b"b",
        b"\xff",
        b"\xff\xff",
        b"zz",
        b"",
    ] {
        let want = expected(&|k| k.starts_with(prefix), LATEST);
        expect_scan(tier, &KeyRange::prefix(prefix), LATEST, &want, "prefix");
    }
    // Prefix and snapshot together.
    let want = expected(&|k| k.starts_with(b"a"), 3);
    expect_scan(
        tier,
        &KeyRange::prefix(b"a"),
        3,
        &want,
        "prefix at an older snapshot",
    );

    use Bound::{Excluded, Included, Unbounded};
    // Bounds around written keys, between them, and inverted or touching ones that hold nothing.
    let cases: [ByteBounds<'_>; 17] = [
        (Included(b"ab"), Included(b"b")),
        (Excluded(b"ab"), Excluded(b"b")),
        (Included(b"ab"), Excluded(b"b")),
        (Excluded(b"ab"), Included(b"b")),
        (Included(b"ab"), Included(b"ab")),
        (Unbounded, Included(b"ab")),
        (Unbounded, Excluded(b"ab")),
        (Excluded(b"b"), Unbounded),
        (Included(b"aa"), Excluded(b"bb")),
        (Included(b"\xff"), Unbounded),
        (Excluded(b"\xff\x00"), Included(b"\xff\xff")),
        (Included(b"ab"), Excluded(b"ab")),
        (Excluded(b"ab"), Excluded(b"ab")),
        (Excluded(b"ab"), Included(b"ab")),
        (Included(b"b"), Included(b"ab")),
        (Excluded(b"b"), Excluded(b"b\x00")),
        (Included(b"bb"), Excluded(b"bc")),
    ];
    for (lo, hi) in cases {
        let range = KeyRange::new(lo.map(key), hi.map(key));
        let want = expected(&|k| within(k, lo, hi), LATEST);
        expect_scan(tier, &range, LATEST, &want, "bounded range");
    }
}

/// Whether `k` lies between the bounds: the scan checks' oracle, kept apart from
/// [`KeyRange::contains`] so that a mistake there cannot hide a mistake in a tier.
fn within(k: &[u8], lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    };
    above && below
}
