//! Writers, readers, freezes and flushes on several threads at once: every read must see whole
//! batches and, per key, a newest visible version that never goes back.
//!
//! Each writer owns a group of keys and writes all of them in every batch, with seqnos drawn
//! from one shared counter (as the log hands them out) and a value naming the batch and the
//! seqno. So a reader can check an entry against itself (its value names its seqno), a scan of a
//! group against itself (one batch throughout), and successive reads against each other.
//!
//! Writers keep going until every reader has completed a number of rounds, so the threads
//! overlap however the scheduler runs them, without any sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

use strata_memtable::HotTier;
use strata_tiering::{Change, Entry, Key, KeyRange, MemoryTier, SeqNo, Tier, LATEST};

const WRITERS: u64 = 3;
const READERS: u64 = 2;
const KEYS: u64 = 4;
/// Each writer writes at least this many batches...
const MIN_BATCHES: u64 = 500;
/// ...and goes on until the readers together have done this many rounds...
const MIN_READER_ROUNDS: u64 = 2_000;
/// ...but never beyond this many, should a reader have died.
const MAX_BATCHES: u64 = 50_000;

fn key(group: u64, j: u64) -> Key {
    Key::new(format!("g{group}/k{j}")).unwrap()
}

/// The batch number and seqno an entry's value names.
fn decode(entry: &Entry) -> (u64, SeqNo) {
    let value = std::str::from_utf8(entry.value().unwrap().as_bytes()).unwrap();
    let (batch, seqno) = value.split_once(':').unwrap();
    (batch.parse().unwrap(), seqno.parse().unwrap())
}

/// What the threads of one test share.
struct Run {
    seqnos: AtomicU64,
    writers_left: AtomicU64,
    done: AtomicBool,
    reader_rounds: AtomicU64,
    start: Barrier,
}

impl Run {
    fn new() -> Self {
        Run {
            seqnos: AtomicU64::new(1),
            writers_left: AtomicU64::new(WRITERS),
            done: AtomicBool::new(false),
            reader_rounds: AtomicU64::new(0),
            start: Barrier::new((WRITERS + READERS) as usize),
        }
    }

    /// Writes batches to `group` until the readers have had their rounds, calling `after_batch`
    /// after each (where the owner of a hot tier polls its flush trigger). Returns how many
    /// batches it wrote.
    fn write_group(&self, tier: &dyn Tier, group: u64, after_batch: impl Fn()) -> u64 {
        let _last = LastOut(self);
        self.start.wait();
        let mut batch = 0;
        while batch < MAX_BATCHES
            && (batch < MIN_BATCHES
                || self.reader_rounds.load(Ordering::Relaxed) < MIN_READER_ROUNDS)
        {
            let first = self.seqnos.fetch_add(KEYS, Ordering::Relaxed);
            let changes: Vec<Change> = (0..KEYS)
                .map(|j| {
                    let seqno = first + j;
                    Change::put(key(group, j), seqno, format!("{batch}:{seqno}"))
                })
                .collect();
            tier.apply(&changes).unwrap();
            after_batch();
            batch += 1;
        }
        batch
    }

    /// Runs `round` until the writers are done, and once more after that. Only rounds that
    /// found something from every writer (`round` returns true) count towards the writers'
    /// stopping condition: an empty tier is quick to read and proves nothing.
    fn read_until_done(&self, mut round: impl FnMut() -> bool) {
        self.start.wait();
        loop {
            let finished = self.done.load(Ordering::Acquire);
            if round() {
                self.reader_rounds.fetch_add(1, Ordering::Relaxed);
            }
            if finished {
                break;
            }
        }
    }
}

/// Held by each writer: the last one to finish (or panic) marks the run done, so readers stop.
struct LastOut<'a>(&'a Run);

impl Drop for LastOut<'_> {
    fn drop(&mut self) {
        if self.0.writers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.store(true, Ordering::Release);
        }
    }
}

#[test]
fn readers_see_whole_batches_and_newest_versions_during_writes_and_freezes() {
    let tier = HotTier::new();
    let run = Run::new();
    let written: Vec<u64> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|group| {
                let (tier, run) = (&tier, &run);
                s.spawn(move || {
                    // Freeze now and then and never release, so reads merge across a growing
                    // number of memtables, frozen while other threads are inside. Spacing the
                    // freezes out as they accumulate keeps the reads' cost in check.
                    run.write_group(tier, group, || {
                        let frozen = tier.frozen().len() as u64;
                        if tier.should_flush(u64::MAX, 16 * KEYS * (frozen + 1)) {
                            tier.freeze();
                        }
                    })
                })
            })
            .collect();
        for _ in 0..READERS {
            s.spawn(|| {
                let mut reader = Reader::default();
                run.read_until_done(|| reader.round(&tier));
            });
        }
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(tier.frozen().len() > 1);
    for (group, batches) in written.iter().enumerate() {
        let prefix = format!("g{group}/");
        let seen: Vec<(Key, Entry)> = tier
            .scan(&KeyRange::prefix(prefix.as_bytes()), LATEST)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seen.len(), KEYS as usize);
        assert!(seen.iter().all(|(_, e)| decode(e).0 == batches - 1));
    }
    let total: u64 = written.iter().sum();
    assert_eq!(tier.stats().entries, total * KEYS);
}

/// What one reader has seen so far.
#[derive(Default)]
struct Reader {
    newest_batch: HashMap<u64, u64>,
    newest_seqno: HashMap<Key, SeqNo>,
}

impl Reader {
    /// Scans each group and reads each key, checking them against themselves, each other and
    /// what this reader saw before. Returns whether every group had been written to.
    fn round(&mut self, tier: &HotTier) -> bool {
        let mut every_group = true;
        for group in 0..WRITERS {
            let prefix = format!("g{group}/");
            let seen: Vec<(Key, Entry)> = tier
                .scan(&KeyRange::prefix(prefix.as_bytes()), LATEST)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            if seen.is_empty() {
                assert!(
                    !self.newest_batch.contains_key(&group),
                    "group {group} vanished"
                );
                every_group = false;
                continue;
            }
            assert_eq!(seen.len(), KEYS as usize, "part of a batch: {seen:?}");
            let batch = decode(&seen[0].1).0;
            for (k, e) in &seen {
                let (b, seqno) = decode(e);
                assert_eq!((b, seqno), (batch, e.seqno), "{k}: torn or mixed: {seen:?}");
            }
            let previous = self.newest_batch.insert(group, batch).unwrap_or(0);
            assert!(
                batch >= previous,
                "group {group}: batch {previous}, then {batch}"
            );

            for j in 0..KEYS {
                self.check_key(tier, &key(group, j), batch);
            }
        }
        every_group
    }

    fn check_key(&mut self, tier: &HotTier, k: &Key, scanned_batch: u64) {
        let Some(entry) = tier.get(k.as_bytes(), LATEST).unwrap() else {
            panic!("{k} vanished after a scan saw it");
        };
        let (b, seqno) = decode(&entry);
        assert_eq!(seqno, entry.seqno, "{k}: torn entry");
        assert!(
            b >= scanned_batch,
            "{k}: get saw {b} after a scan saw {scanned_batch}"
        );
        let before = self.newest_seqno.insert(k.clone(), seqno).unwrap_or(0);
        assert!(seqno >= before, "{k}: seqno {before}, then {seqno}");
        // Just below that version lies the previous batch's version, or nothing.
        match tier.get(k.as_bytes(), seqno - 1).unwrap() {
            None => assert_eq!(b, 0, "{k}: batch {b} has no predecessor"),
            Some(older) => assert_eq!(decode(&older).0 + 1, b, "{k}: skipped a batch"),
        }
    }
}

#[test]
fn reads_through_a_flush_never_go_back() {
    let hot = HotTier::new();
    let warm = MemoryTier::with_name("warm");
    let run = Run::new();
    let flushes = AtomicU64::new(0);
    // Reads as the store reads: the hot tier first, then the tier below; the newer version wins.
    let read = |k: &Key| -> Option<Entry> {
        let from_hot = hot.get(k.as_bytes(), LATEST).unwrap();
        let from_warm = warm.get(k.as_bytes(), LATEST).unwrap();
        match (from_hot, from_warm) {
            (Some(h), Some(w)) => Some(if h.seqno >= w.seqno { h } else { w }),
            (h, w) => h.or(w),
        }
    };
    // The flush cycle: freeze, copy every version below, and only then release.
    let flush = || {
        if hot.should_flush(u64::MAX, 8 * KEYS) {
            if let Some(frozen) = hot.freeze() {
                let changes: Vec<Change> = frozen.iter().map(|(k, e)| Change::new(k, e)).collect();
                assert_eq!(changes.len() as u64, frozen.len());
                warm.apply(&changes).unwrap();
                assert!(hot.release(&frozen));
                flushes.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let written: Vec<u64> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|group| {
                let (hot, run, flush) = (&hot, &run, &flush);
                s.spawn(move || run.write_group(hot, group, flush))
            })
            .collect();
        for _ in 0..READERS {
            s.spawn(|| {
                let mut newest: HashMap<Key, SeqNo> = HashMap::new();
                run.read_until_done(|| {
                    let mut found_all = true;
                    for group in 0..WRITERS {
                        for j in 0..KEYS {
                            let k = key(group, j);
                            let Some(entry) = read(&k) else {
                                assert!(!newest.contains_key(&k), "{k} vanished");
                                found_all = false;
                                continue;
                            };
                            assert_eq!(decode(&entry).1, entry.seqno, "{k}: torn entry");
                            let before = newest.insert(k.clone(), entry.seqno).unwrap_or(0);
                            assert!(entry.seqno >= before, "{k}: went back to {}", entry.seqno);
                        }
                    }
                    found_all
                });
            });
        }
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(flushes.load(Ordering::Relaxed) > 1);
    for (group, batches) in written.iter().enumerate() {
        for j in 0..KEYS {
            let entry = read(&key(group as u64, j)).unwrap();
            assert_eq!(decode(&entry).0, batches - 1);
        }
    }
    let total: u64 = written.iter().sum();
    assert_eq!(hot.stats().entries + warm.stats().entries, total * KEYS);
}
