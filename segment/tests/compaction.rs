//! Compaction: what it drops and keeps, the bottom rule, expiry by a clock the test controls,
//! background merging, and ingests that never wait for a running merge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use strata_segment::{Clock, SegmentOptions, SegmentTier};
use strata_tiering::io::{Fs, FsFile, MemFs};
use strata_tiering::{Entry, Key, KeyRange, Tier, LATEST};

const DIR: &str = "/store/segments";

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn manual(fs: Arc<dyn Fs>, options: SegmentOptions) -> SegmentTier {
    let options = SegmentOptions {
        background_compaction: false,
        ..options
    };
    SegmentTier::open(fs, DIR, options).unwrap()
}

fn ingest(tier: &SegmentTier, entries: Vec<(Key, Entry)>) {
    tier.ingest(entries, None).unwrap();
}

#[test]
fn nothing_is_dropped_without_a_horizon() {
    let tier = manual(Arc::new(MemFs::new()), SegmentOptions::default());
    ingest(&tier, vec![(k("a"), Entry::put(1, "a1"))]);
    ingest(&tier, vec![(k("a"), Entry::put(2, "a2"))]);
    ingest(&tier, vec![(k("a"), Entry::tombstone(3))]);
    let report = tier.compact_all().unwrap().unwrap();
    assert_eq!((report.versions_written, report.versions_dropped), (3, 0));
    assert!(report.bottom);
    assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::tombstone(3)));
    assert_eq!(tier.get(b"a", 1).unwrap(), Some(Entry::put(1, "a1")));
    assert_eq!(tier.segments().len(), 1);
}

#[test]
fn shadowed_versions_below_the_horizon_go_and_snapshots_above_it_still_read() {
    let tier = manual(Arc::new(MemFs::new()), SegmentOptions::default());
    for s in 1..=4 {
        ingest(&tier, vec![(k("a"), Entry::put(s, format!("a{s}")))]);
    }
    tier.set_oldest_snapshot(3);
    let report = tier.compact_all().unwrap().unwrap();
    // a1 and a2 are shadowed at every snapshot >= 3 by a3; a3 and a4 stay.
    assert_eq!((report.versions_written, report.versions_dropped), (2, 2));
    assert_eq!(tier.get(b"a", 3).unwrap(), Some(Entry::put(3, "a3")));
    assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::put(4, "a4")));
    assert_eq!(tier.segment_stats().versions_dropped, 2);
}

#[test]
fn tombstones_go_at_the_bottom_only() {
    let tier = manual(Arc::new(MemFs::new()), SegmentOptions::default());
    // A big old segment holding an old value of `a`...
    let old: Vec<(Key, Entry)> = (0..2_000)
        .map(|i| (k(&format!("a{i:05}")), Entry::put(1, vec![b'x'; 100])))
        .collect();
    ingest(&tier, old);
    // ... and four small new ones above it, one deleting `a00007`.
    ingest(&tier, vec![(k("a00007"), Entry::tombstone(5))]);
    for s in 6..9 {
        ingest(&tier, vec![(k("b"), Entry::put(s, "b"))]);
    }
    tier.set_oldest_snapshot(100);
    let reports = tier.compact().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].inputs.len(), 4, "the four small segments merge");
    assert!(!reports[0].bottom);
    // The tombstone must stay: the old value below it is outside the merge.
    assert_eq!(
        tier.get(b"a00007", LATEST).unwrap(),
        Some(Entry::tombstone(5))
    );

    let report = tier.compact_all().unwrap().unwrap();
    assert!(report.bottom);
    assert_eq!(tier.get(b"a00007", LATEST).unwrap(), None);
    assert_eq!(
        tier.get(b"a00008", LATEST).unwrap().map(|e| e.seqno),
        Some(1)
    );
    assert_eq!(tier.get(b"b", LATEST).unwrap(), Some(Entry::put(8, "b")));
}

#[test]
fn a_merge_that_leaves_nothing_removes_its_inputs() {
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());
    let tier = manual(Arc::clone(&fs), SegmentOptions::default());
    ingest(&tier, vec![(k("a"), Entry::put(1, "a"))]);
    ingest(&tier, vec![(k("a"), Entry::tombstone(2))]);
    tier.set_oldest_snapshot(2);
    let report = tier.compact_all().unwrap().unwrap();
    assert_eq!(report.output, None);
    assert!(tier.segments().is_empty());
    assert_eq!(tier.get(b"a", LATEST).unwrap(), None);
    let names = fs.list_dir(Path::new(DIR)).unwrap();
    assert!(names.iter().all(|n| !n.ends_with(".seg")), "{names:?}");
}

#[test]
fn expired_values_go_at_the_bottom_by_the_tier_clock() {
    let now = Arc::new(AtomicU64::new(50));
    let options = SegmentOptions {
        clock: Clock::manual(Arc::clone(&now)),
        ..SegmentOptions::default()
    };
    let tier = manual(Arc::new(MemFs::new()), options);
    ingest(
        &tier,
        vec![
            (k("e"), Entry::put(2, "soon gone").with_expiry(100)),
            (k("e"), Entry::put(1, "older")),
            (k("f"), Entry::put(3, "kept")),
        ],
    );
    tier.set_oldest_snapshot(10);
    tier.compact_all().unwrap();
    let expiring = Entry::put(2, "soon gone").with_expiry(100);
    assert_eq!(tier.get(b"e", LATEST).unwrap(), Some(expiring));
    now.store(100, std::sync::atomic::Ordering::Relaxed);
    tier.compact_all().unwrap();
    // Gone, and the older value below it with it: it must not resurface.
    assert_eq!(tier.get(b"e", LATEST).unwrap(), None);
    assert_eq!(tier.get(b"f", LATEST).unwrap(), Some(Entry::put(3, "kept")));
}

#[test]
fn background_compaction_merges_and_reports_amplification() {
    let options = SegmentOptions {
        background_compaction: true,
        ..SegmentOptions::default()
    };
    let tier = SegmentTier::open(Arc::new(MemFs::new()), DIR, options).unwrap();
    for batch in 0..20u64 {
        let entries: Vec<(Key, Entry)> = (0..50)
            .map(|i| {
                (
                    k(&format!("key{i:03}")),
                    Entry::put(batch * 100 + i + 1, "v"),
                )
            })
            .collect();
        tier.ingest(entries, Some(batch * 100 + 50)).unwrap();
    }
    tier.wait_for_compactions();
    let stats = tier.segment_stats();
    assert!(stats.segments < 8, "{stats:?}");
    assert!(stats.compactions > 0);
    assert!(stats.write_amplification > 1.0, "{stats:?}");
    assert!(stats.space_amplification >= 1.0, "{stats:?}");
    assert_eq!(stats.flushed_lsn, Some(1950));
    assert_eq!(stats.entries, 1000, "no horizon: every version is kept");
    let scanned: Vec<_> = tier.scan(&KeyRange::all(), LATEST).unwrap().collect();
    assert_eq!(scanned.len(), 50);
    assert!(tier.health().is_healthy());
}

/// The file to hold, whom to tell when it is held, and what to wait for.
type Gate = (PathBuf, Sender<()>, Receiver<()>);

/// A filesystem that holds the creation of one chosen file until the test lets it go.
#[derive(Debug)]
struct GateFs {
    inner: MemFs,
    gate: Mutex<Option<Gate>>,
}

impl GateFs {
    /// Holds the next `create_new` of `path` until `release` is sent; `reached` gets a message
    /// when the creation is held.
    fn hold(&self, path: PathBuf) -> (Receiver<()>, Sender<()>) {
        let (reached_tx, reached_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.gate.lock().unwrap() = Some((path, reached_tx, release_rx));
        (reached_rx, release_tx)
    }
}

impl Fs for GateFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let held = {
            let mut gate = self.gate.lock().unwrap();
            match gate.take() {
                Some((p, reached, release)) if p == path => Some((reached, release)),
                other => {
                    *gate = other;
                    None
                }
            }
        };
        if let Some((reached, release)) = held {
            reached.send(()).unwrap();
            release.recv().unwrap();
        }
        self.inner.create_new(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.open_read(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.open_write(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
}

fn gated() -> Arc<GateFs> {
    Arc::new(GateFs {
        inner: MemFs::new(),
        gate: Mutex::new(None),
    })
}

/// The temporary file of the segment the tier will write next (ids count up from 1).
fn temp_of(id: u64) -> PathBuf {
    Path::new(DIR).join(format!("{id:020}.seg.tmp"))
}

#[test]
fn ingests_complete_while_a_compaction_is_in_progress() {
    let fs = gated();
    let tier = manual(Arc::clone(&fs) as Arc<dyn Fs>, SegmentOptions::default());
    for s in 1..=3 {
        ingest(&tier, vec![(k(&format!("k{s}")), Entry::put(s, "v"))]);
    }
    // Segments 1-3 exist; the compaction's output will be segment 4.
    let (reached, release) = fs.hold(temp_of(4));
    std::thread::scope(|scope| {
        let compaction = scope.spawn(|| tier.compact_all().unwrap());
        reached.recv().unwrap();
        // The merge is under way and holding its output back: ingests still go through.
        for s in 10..13 {
            ingest(&tier, vec![(k(&format!("n{s}")), Entry::put(s, "new"))]);
        }
        assert_eq!(tier.segments().len(), 6);
        release.send(()).unwrap();
        let report = compaction.join().unwrap().unwrap();
        assert!(!report.abandoned);
        assert_eq!(report.inputs, vec![1, 2, 3]);
    });
    // The merged segment took the place of its inputs; the new ones stay above it.
    let ids: Vec<u64> = tier.segments().iter().map(|s| s.id()).collect();
    assert_eq!(ids, vec![4, 5, 6, 7]);
    let keys: Vec<Key> = tier
        .scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(keys, ["k1", "k2", "k3", "n10", "n11", "n12"].map(k));
}

#[test]
fn a_merge_is_abandoned_if_a_late_older_version_would_reappear() {
    let fs = gated();
    let tier = manual(Arc::clone(&fs) as Arc<dyn Fs>, SegmentOptions::default());
    ingest(&tier, vec![(k("a"), Entry::put(1, "old"))]);
    ingest(&tier, vec![(k("a"), Entry::tombstone(10))]);
    tier.set_oldest_snapshot(20);
    let (reached, release) = fs.hold(temp_of(3));
    std::thread::scope(|scope| {
        let compaction = scope.spawn(|| tier.compact_all().unwrap());
        reached.recv().unwrap();
        // A version older than the tombstone arrives late (a replay filling in from below).
        ingest(&tier, vec![(k("a"), Entry::put(5, "late"))]);
        release.send(()).unwrap();
        let report = compaction.join().unwrap().unwrap();
        assert!(report.abandoned, "{report:?}");
    });
    assert_eq!(tier.get(b"a", LATEST).unwrap(), Some(Entry::tombstone(10)));
    assert_eq!(tier.segment_stats().compactions_abandoned, 1);
    let names = fs.list_dir(Path::new(DIR)).unwrap();
    assert!(
        !names.contains(&"00000000000000000003.seg".to_owned()),
        "{names:?}"
    );
}
