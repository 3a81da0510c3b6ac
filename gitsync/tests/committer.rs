//! The debounced committer: its three triggers and `sync`, criticality filtering, metrics and
//! advice, and resuming from its watermarks without loss or duplicates. Time is a ManualClock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_gitsync::{ColdOptions, ColdStore, Committer, CommitterOptions};
use strata_tiering::clock::ManualClock;
use strata_tiering::{record, Criticality, Entry, Key, LATEST};
use strata_wal::{Log, MemLog};

struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    log: Arc<MemLog>,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cold.git");
        Rig {
            _dir: dir,
            path,
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
            log: Arc::new(MemLog::new()),
        }
    }

    fn store(&self) -> Arc<ColdStore> {
        self.store_on(ColdOptions::default().fs)
    }

    /// [`Rig::store`] writing through `fs`.
    fn store_on(&self, fs: Arc<dyn strata_wal::Fs>) -> Arc<ColdStore> {
        let options = ColdOptions {
            keep_chunks: 10,
            writer_id: Some("wtest".into()),
            fs,
            ..ColdOptions::default()
        };
        Arc::new(ColdStore::open(&self.path, options, self.clock.clone()).unwrap())
    }

    fn committer(&self, store: &Arc<ColdStore>, options: CommitterOptions) -> Committer {
        Committer::new(store.clone(), self.log.clone(), self.clock.clone(), options).unwrap()
    }

    /// Appends a put at `criticality`; returns its LSN.
    fn write(&self, key: &str, value: &str, criticality: Criticality) -> u64 {
        let lsn = self.log.last_lsn() + 1;
        let record = record::encode(
            criticality,
            &Key::new(key).unwrap(),
            &Entry::put(lsn, value),
        );
        self.log.append(&[&record]).unwrap()
    }
}

#[test]
fn the_quiet_period_commits_after_five_silent_seconds() {
    let rig = Rig::new();
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    rig.write("a", "1", Criticality::High);
    assert_eq!(committer.poll().unwrap(), None);
    rig.clock.advance(3_000);
    rig.write("b", "2", Criticality::Critical);
    // The committer notices a change when it polls, as its background poller does often.
    assert_eq!(committer.poll().unwrap(), None);
    rig.clock.advance(4_999);
    assert_eq!(committer.poll().unwrap(), None, "b arrived 4.999 s ago");
    rig.clock.advance(1);
    let info = committer.poll().unwrap().expect("quiet period reached");
    assert_eq!(info.changes, 2);
    assert_eq!(committer.metrics().quiet, 1);
    assert_eq!(store.get(b"b", LATEST).unwrap(), Some(Entry::put(2, "2")));
}

#[test]
fn steady_writes_commit_at_the_maximum_age() {
    let rig = Rig::new();
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    let mut commits = Vec::new();
    for second in 0..=60 {
        rig.write(&format!("k{second}"), "1", Criticality::High);
        if let Some(info) = committer.poll().unwrap() {
            commits.push((second, info));
        }
        rig.clock.advance(1_000);
    }
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(commits[0].0, 60);
    assert_eq!(committer.metrics().age, 1);
    assert!(committer
        .metrics()
        .advice()
        .iter()
        .any(|a| a.contains("maximum age")));
}

#[test]
fn a_full_batch_commits_at_once() {
    let rig = Rig::new();
    let store = rig.store();
    let options = CommitterOptions {
        max_batch_bytes: 1_000,
        ..CommitterOptions::default()
    };
    let committer = rig.committer(&store, options);
    for i in 0..100 {
        rig.write(
            &format!("key{i}"),
            "a value of some length",
            Criticality::High,
        );
    }
    let info = committer.poll().unwrap().expect("size reached");
    assert_eq!(info.changes, 100);
    assert_eq!(committer.metrics().size, 1);
}

#[test]
fn only_high_and_critical_changes_reach_git() {
    let rig = Rig::new();
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    rig.write("low", "1", Criticality::Low);
    rig.write("medium", "1", Criticality::Medium);
    rig.write("high", "1", Criticality::High);
    rig.write("critical", "1", Criticality::Critical);
    assert_eq!(committer.sync().unwrap(), 4);
    assert_eq!(store.get(b"low", LATEST).unwrap(), None);
    assert_eq!(store.get(b"medium", LATEST).unwrap(), None);
    assert!(store.get(b"high", LATEST).unwrap().is_some());
    assert!(store.get(b"critical", LATEST).unwrap().is_some());
    let metrics = committer.metrics();
    assert_eq!(
        (metrics.commits, metrics.changes, metrics.manual),
        (1, 2, 1)
    );
    assert!(metrics
        .advice()
        .iter()
        .any(|a| a.contains("lengthen the quiet period")));
}

/// The LSNs of every version of `key` the store holds, oldest first.
fn history_lsns(store: &ColdStore, key: &[u8]) -> Vec<u64> {
    let history = store.history(key).unwrap();
    history.iter().map(|v| v.entry.seqno).collect()
}

#[test]
fn a_restart_resumes_from_the_watermark_without_loss_or_duplicates() {
    let rig = Rig::new();
    {
        let store = rig.store();
        let committer = rig.committer(&store, CommitterOptions::default());
        rig.write("key", "v1", Criticality::High);
        committer.sync().unwrap();
        rig.write("key", "v2", Criticality::High);
        committer.poll().unwrap(); // read but not committed: the "crash" comes first
        assert_eq!(committer.pending_changes(), 1);
    }
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    assert_eq!(committer.needs_log_from(), 2);
    committer.sync().unwrap();
    let lsns = history_lsns(&store, b"key");
    assert_eq!(lsns, vec![1, 2], "each change exactly once");
}

/// Entries archived into the cold tier through `Tier::apply` carry newer LSNs than changes
/// the committer may still hold: committing them must not move the watermark past those, or
/// a restart would skip them (and a push would count them verified).
#[test]
fn an_archived_batch_does_not_move_the_watermark_past_pending_changes() {
    use strata_gitsync::ColdTier;
    use strata_tiering::{Change, Tier};
    let rig = Rig::new();
    {
        let store = rig.store();
        let committer = rig.committer(&store, CommitterOptions::default());
        rig.write("high", "v1", Criticality::High);
        let aged = rig.write("aged", "v2", Criticality::Medium);
        committer.poll().unwrap(); // LSN 1 held for the quiet period; then the "crash"
        assert_eq!(committer.pending_changes(), 1);
        let archived = Change::new(Key::new("aged").unwrap(), Entry::put(aged, "v2"));
        ColdTier::new(store.clone()).apply(&[archived]).unwrap();
        assert_eq!(
            store.committed_lsn(),
            0,
            "the archived batch covers no log position"
        );
    }
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    assert_eq!(committer.needs_log_from(), 1);
    committer.sync().unwrap();
    assert!(store.get(b"high", LATEST).unwrap().is_some());
    assert!(store.get(b"aged", LATEST).unwrap().is_some());
}

/// The branch's rename can land although its directory's fsync then fails, so the commit
/// call fails: the retry must neither conflict with that commit nor commit the batch again.
#[test]
fn a_commit_whose_branch_moved_before_a_failed_fsync_is_not_made_twice() {
    use strata_wal::{errno, FaultyFs, FsOp, StdFs};
    let rig = Rig::new();
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let store = rig.store_on(Arc::new(faulty.clone()));
    let committer = rig.committer(&store, CommitterOptions::default());
    rig.write("key", "v1", Criticality::High);
    // Directory fsyncs: the pack directory's after the install, then the branch's.
    faulty.fail_nth(FsOp::SyncDir, 2, errno::EIO);
    assert!(committer.sync().is_err());
    faulty.heal();
    assert_eq!(committer.sync().unwrap(), 1);
    assert_eq!(committer.sync().unwrap(), 1);
    let lsns = history_lsns(&store, b"key");
    assert_eq!(lsns, vec![1], "committed once");
    assert_eq!(store.chunk_count(), 1);
}

#[test]
fn an_idle_store_records_how_far_it_examined_the_log() {
    let rig = Rig::new();
    let store = rig.store();
    let committer = rig.committer(&store, CommitterOptions::default());
    for i in 0..5 {
        rig.write(&format!("m{i}"), "1", Criticality::Medium);
    }
    assert_eq!(committer.poll().unwrap(), None);
    assert_eq!(committer.needs_log_from(), 6);
    drop(committer);
    let again = rig.committer(&rig.store(), CommitterOptions::default());
    assert_eq!(
        again.needs_log_from(),
        6,
        "the examined watermark survived the restart"
    );
}

#[test]
fn a_log_truncated_past_the_watermark_is_a_loud_error() {
    let rig = Rig::new();
    let store = rig.store();
    rig.write("a", "1", Criticality::High);
    rig.write("b", "1", Criticality::High);
    rig.log.truncate_before(2).unwrap();
    let committer = rig.committer(&store, CommitterOptions::default());
    let err = committer.sync().unwrap_err();
    assert!(err.to_string().contains("needs it from 1"), "{err}");
}
