//! The conformance suite: the [`Tier`] contract as executable checks.
//!
//! Every tier crate runs [`run`] from its tests with a constructor for a fresh, empty tier. Each
//! check is also public on its own, taking `&dyn Tier`, so a tier can rerun one under special
//! conditions (after a reopen, under fault injection). Together they take well under a second on
//! an in-memory tier. All but one are single-threaded; `batch_atomic_for_readers` races a reader
//! against a writer, and a correct tier passes it under every interleaving.
//!
//! The checks use only the public contract: they never look at a tier's files or internals.

// This is test-support code: a failed check is a test failure, reported by panicking with a
// message that names the tier, the check and what differed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch;
mod point;
mod scan;

pub use batch::{
    batch_applied_whole, batch_atomic_for_readers, flush_keeps_data, reapply_is_idempotent,
    stats_and_health,
};
pub use point::{
    absent_key_is_none, binary_keys, expiry_round_trips, large_value, newer_seqno_shadows_older,
    out_of_order_versions, put_after_tombstone, put_get_round_trip, snapshot_reads,
    tombstone_shadows_value,
};
pub use scan::{scan_order_and_snapshots, scan_ranges};

use crate::range::KeyRange;
use crate::tier::Tier;
use crate::types::{Change, Entry, Key, SeqNo, Value, LATEST, MAX_KEY_LEN};

/// A single check, run against a fresh, empty tier.
pub type Check = fn(&dyn Tier);

/// Every check with its name, in the order [`run`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("absent_key_is_none", absent_key_is_none),
    ("put_get_round_trip", put_get_round_trip),
    ("newer_seqno_shadows_older", newer_seqno_shadows_older),
    ("snapshot_reads", snapshot_reads),
    ("tombstone_shadows_value", tombstone_shadows_value),
    ("put_after_tombstone", put_after_tombstone),
    ("scan_order_and_snapshots", scan_order_and_snapshots),
    ("scan_ranges", scan_ranges),
    ("batch_applied_whole", batch_applied_whole),
    ("batch_atomic_for_readers", batch_atomic_for_readers),
    ("expiry_round_trips", expiry_round_trips),
    ("binary_keys", binary_keys),
    ("large_value", large_value),
    ("out_of_order_versions", out_of_order_versions),
    ("reapply_is_idempotent", reapply_is_idempotent),
    ("flush_keeps_data", flush_keeps_data),
    ("stats_and_health", stats_and_health),
];

/// Runs every check in [`CHECKS`], each on a new tier from `make`.
///
/// The name of each check is printed before it runs, so a failure's captured output says which
/// one failed.
pub fn run<T: Tier>(mut make: impl FnMut() -> T) {
    for (name, check) in CHECKS {
        let tier = make();
        eprintln!("conformance: {name} on tier `{}`", tier.name());
        check(&tier);
    }
}

fn key(bytes: &[u8]) -> Key {
    Key::new(bytes).expect("conformance keys are valid")
}

fn apply(tier: &dyn Tier, batch: &[Change]) {
    if let Err(e) = tier.apply(batch) {
        panic!(
            "tier `{}`: apply of {} changes failed: {e}",
            tier.name(),
            batch.len()
        );
    }
}

fn put(tier: &dyn Tier, k: &[u8], seqno: SeqNo, value: impl Into<Value>) {
    apply(tier, &[Change::put(key(k), seqno, value)]);
}

fn delete(tier: &dyn Tier, k: &[u8], seqno: SeqNo) {
    apply(tier, &[Change::delete(key(k), seqno)]);
}

fn get(tier: &dyn Tier, k: &[u8], snapshot: SeqNo) -> Option<Entry> {
    match tier.get(k, snapshot) {
        Ok(entry) => entry,
        Err(e) => panic!(
            "tier `{}`: get of `{}` at snapshot {snapshot} failed: {e}",
            tier.name(),
            crate::escape_bytes(k, 64)
        ),
    }
}

fn scan(tier: &dyn Tier, range: &KeyRange, snapshot: SeqNo) -> Vec<(Key, Entry)> {
    let iter = match tier.scan(range, snapshot) {
        Ok(iter) => iter,
        Err(e) => panic!(
            "tier `{}`: scan of {range:?} at {snapshot} failed: {e}",
            tier.name()
        ),
    };
    iter.map(|item| match item {
        Ok(kv) => kv,
        Err(e) => panic!(
            "tier `{}`: scan of {range:?} at {snapshot} yielded an error: {e}",
            tier.name()
        ),
    })
    .collect()
}

/// Asserts that `get(k, snapshot)` returns `want`.
fn expect_get(tier: &dyn Tier, k: &[u8], snapshot: SeqNo, want: Option<Entry>, why: &str) {
    let got = get(tier, k, snapshot);
    assert_eq!(
        got,
        want,
        "tier `{}`: get of `{}` at snapshot {snapshot}: {why}",
        tier.name(),
        crate::escape_bytes(k, 64)
    );
}

/// Asserts that a scan returns exactly `want`, in that order.
fn expect_scan(
    tier: &dyn Tier,
    range: &KeyRange,
    snapshot: SeqNo,
    want: &[(Key, Entry)],
    why: &str,
) {
    let got = scan(tier, range, snapshot);
    assert_eq!(
        got,
        want,
        "tier `{}`: scan of {range:?} at snapshot {snapshot}: {why}",
        tier.name()
    );
}
