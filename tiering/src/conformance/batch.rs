//! Checks on batches, concurrency, replay, flushing and the tier's own reports.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// Every change of a batch is applied, including several versions of one key.
pub fn batch_applied_whole(tier: &dyn Tier) {
    apply(tier, &[]);
    expect_scan(
        tier,
        &KeyRange::all(),
        LATEST,
        &[],
        "an empty batch writes nothing",
    );

    apply(
        tier,
        &[
            Change::put(key(b"x"), 1, "x1"),
            Change::put(key(b"y"), 2, "y2"),
            Change::put(key(b"x"), 3, "x3"),
            Change::delete(key(b"z"), 4),
            Change::put(key(b"w"), 5, "w5"),
        ],
    );
    let want = [
        (key(b"w"), Entry::put(5, "w5")),
        (key(b"x"), Entry::put(3, "x3")),
        (key(b"y"), Entry::put(2, "y2")),
        (key(b"z"), Entry::tombstone(4)),
    ];
    expect_scan(
        tier,
        &KeyRange::all(),
        LATEST,
        &want,
        "one batch of five changes",
    );
    expect_get(
        tier,
        b"x",
        2,
        Some(Entry::put(1, "x1")),
        "the older version from the same batch",
    );
}

/// A reader running alongside a writer sees each batch entirely or not at all.
///
/// Every batch writes the same four keys with one value; a scan that sees two values, or only
/// some of the keys, saw part of a batch.
pub fn batch_atomic_for_readers(tier: &dyn Tier) {
    // Few enough batches that a tier whose apply is slow (a git commit) still finishes quickly.
    const BATCHES: u64 = 64;
    const KEYS: u64 = 4;
    let range = KeyRange::prefix(b"atomic/");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // Set even if an apply panics, so the reader below stops instead of spinning forever.
            let _signal = SetOnDrop(&done);
            for i in 0..BATCHES {
                let batch: Vec<Change> = (0..KEYS)
                    .map(|j| {
                        let k = key(format!("atomic/{j}").as_bytes());
                        Change::put(k, i * KEYS + j + 1, i.to_string())
                    })
                    .collect();
                apply(tier, &batch);
            }
        });
        loop {
            // Read the flag before scanning so that one scan always follows the last batch.
            let finished = done.load(Ordering::Acquire);
            let seen = scan(tier, &range, LATEST);
            let values: Vec<Option<&Value>> = seen.iter().map(|(_, e)| e.value()).collect();
            let whole = values.is_empty()
                || (values.len() == KEYS as usize && values.iter().all(|v| *v == values[0]));
            assert!(
                whole,
                "tier `{}`: a scan saw part of a batch: {seen:?}",
                tier.name()
            );
            if finished {
                break;
            }
        }
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
    });
    let last = Value::from((BATCHES - 1).to_string());
    let seen = scan(tier, &range, LATEST);
    assert!(
        seen.len() == KEYS as usize && seen.iter().all(|(_, e)| e.value() == Some(&last)),
        "tier `{}`: after every batch, a scan saw {seen:?}",
        tier.name()
    );
}

/// Raises a flag when dropped, including while unwinding from a panic.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Applying the same changes twice, as a log replay does, leaves the tier as after one apply.
pub fn reapply_is_idempotent(tier: &dyn Tier) {
    let batch = [
        Change::put(key(b"a"), 1, "a1"),
        Change::delete(key(b"b"), 2),
        Change::put(key(b"a"), 3, "a3"),
    ];
    apply(tier, &batch);
    apply(tier, &batch);
    let want = [
        (key(b"a"), Entry::put(3, "a3")),
        (key(b"b"), Entry::tombstone(2)),
    ];
    expect_scan(
        tier,
        &KeyRange::all(),
        LATEST,
        &want,
        "after applying one batch twice",
    );
    expect_get(
        tier,
        b"a",
        2,
        Some(Entry::put(1, "a1")),
        "older version after replay",
    );
}

/// Flushing keeps everything readable, on an empty tier, after writes, and between writes.
pub fn flush_keeps_data(tier: &dyn Tier) {
    let flush = || {
        if let Err(e) = tier.flush() {
            panic!("tier `{}`: flush failed: {e}", tier.name());
        }
    };
    flush();
    put(tier, b"a", 1, "a1");
    delete(tier, b"b", 2);
    flush();
    put(tier, b"a", 3, "a3");
    put(tier, b"c", 4, "c4");
    flush();
    flush();
    let want = [
        (key(b"a"), Entry::put(3, "a3")),
        (key(b"b"), Entry::tombstone(2)),
        (key(b"c"), Entry::put(4, "c4")),
    ];
    expect_scan(tier, &KeyRange::all(), LATEST, &want, "after flushes");
    expect_get(
        tier,
        b"a",
        1,
        Some(Entry::put(1, "a1")),
        "version from before a flush",
    );
}

/// A fresh tier names itself, reports healthy, and gives stats before and after writes.
pub fn stats_and_health(tier: &dyn Tier) {
    assert!(!tier.name().is_empty(), "a tier's name must not be empty");
    let health = tier.health();
    assert!(
        health.is_healthy(),
        "tier `{}`: a fresh tier reports {health}",
        tier.name()
    );
    let _ = tier.stats();
    put(tier, b"k", 1, "v");
    let _ = get(tier, b"k", LATEST);
    let _ = tier.stats();
    let health = tier.health();
    assert!(
        health.is_healthy(),
        "tier `{}`: after one write it reports {health}",
        tier.name()
    );
}
