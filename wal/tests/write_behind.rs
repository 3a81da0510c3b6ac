//! Write-behind under `Never` and `Interval`: appends that outrun the background writer keep
//! every record, in LSN order, across rolls and a power loss; and an appender that has filled
//! two buffers' worth waits for the writer instead of piling up memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use strata_wal::{CrashMode, FaultyFs, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

fn options(policy: SyncPolicy, write_buffer_size: usize) -> WalOptions {
    WalOptions {
        sync_policy: policy,
        max_file_size: 4_000,
        write_buffer_size,
        ..common::options(policy, RecoveryMode::PointInTime)
    }
}

/// Waits, without a clock of its own, until `done` holds; fails the test after a minute.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited for {what}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn appends_from_several_threads_keep_every_record_in_order() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 600;
    for policy in [
        SyncPolicy::Never,
        SyncPolicy::Interval(Duration::from_secs(3600)),
        // The interval thread syncs alongside the writer thread.
        SyncPolicy::Interval(Duration::from_millis(1)),
    ] {
        let fs = MemFs::new();
        let wal =
            Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options(policy, 300)).unwrap();
        let mut appended: Vec<(u64, Vec<u8>)> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let wal = &wal;
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for i in 0..PER_THREAD {
                            let seed = t * PER_THREAD + i;
                            let record = common::payload(seed, (seed as usize * 37) % 700);
                            let lsn = wal.append(&[&record]).unwrap();
                            if let Some((previous, _)) = mine.last() {
                                assert!(lsn > *previous, "{policy:?}: LSNs go up per thread");
                            }
                            mine.push((lsn, record));
                        }
                        mine
                    })
                })
                .collect();
            writers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        appended.sort();
        let total = THREADS * PER_THREAD;
        assert_eq!(wal.sync().unwrap(), total, "{policy:?}");
        assert!(wal.files().len() > 10, "{policy:?}: rolled many times");
        assert!(common::read_all(&wal) == appended, "{policy:?}: read back");
        drop(wal);
        let after = Wal::open_with_fs(
            Arc::new(fs.crash(CrashMode::DropUnsynced)),
            common::DIR,
            options(policy, 300),
        )
        .unwrap();
        assert!(after.recovery_report().is_clean(), "{policy:?}");
        assert!(
            common::read_all(&after) == appended,
            "{policy:?}: every synced record survives a power loss"
        );
    }
}

/// Opens a gate when dropped, so a failed assertion cannot leave threads waiting on it.
struct OpenOnDrop<'g>(&'g (Mutex<bool>, Condvar));

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0 .1.notify_all();
    }
}

#[test]
fn an_appender_waits_once_it_has_filled_two_buffers() {
    let fs = FaultyFs::new(Arc::new(MemFs::new()));
    let wal = Wal::open_with_fs(
        Arc::new(fs.clone()),
        common::DIR,
        options(SyncPolicy::Never, 1024),
    )
    .unwrap();
    // The background writer stops at its first file operation until the gate opens.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let writer_held = Arc::new(AtomicBool::new(false));
    let (held_gate, held) = (Arc::clone(&gate), Arc::clone(&writer_held));
    fs.before_each(Arc::new(move |_| {
        held.store(true, Ordering::Release);
        let (open, opened) = &*held_gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = opened.wait(open).unwrap();
        }
    }));
    let record = common::payload(1, 100);
    let frame = 24 + record.len();
    let returned = AtomicUsize::new(0);
    // The 9th record fills the first buffer; the writer takes it (with whatever was appended
    // meanwhile, at most 16 records: the 17th reaches twice the buffer size, 2,048 bytes, and
    // waits) and then stops. The next buffer fills to 2,048 bytes at its 17th record, whose
    // append waits. So 25 to 33 appends return, and no more until the writer goes on.
    let (fewest, most) = (1024_usize.div_ceil(frame) + 16, 2 * 16 + 1);
    let returned_while_held = std::thread::scope(|scope| {
        let _open_at_the_end = OpenOnDrop(&gate);
        let appender = scope.spawn(|| {
            for _ in 0..200 {
                wal.append(&[&record]).unwrap();
                returned.fetch_add(1, Ordering::AcqRel);
            }
        });
        wait_for("the writer to stop at the gate", || {
            writer_held.load(Ordering::Acquire)
        });
        wait_for("the appender to fill two buffers", || {
            returned.load(Ordering::Acquire) >= fewest
        });
        for _ in 0..10_000 {
            std::thread::yield_now();
        }
        let returned_while_held = returned.load(Ordering::Acquire);
        drop(_open_at_the_end);
        appender.join().unwrap();
        returned_while_held
    });
    assert!(
        returned_while_held <= most,
        "{returned_while_held} appends returned while the writer made no progress"
    );
    assert_eq!(wal.sync().unwrap(), 200);
    assert_eq!(common::read_all(&wal).len(), 200);
}

#[test]
fn a_zero_buffer_size_writes_every_append_and_never_stalls() {
    let fs = MemFs::new();
    let wal = Wal::open_with_fs(
        Arc::new(fs.clone()),
        common::DIR,
        options(SyncPolicy::Never, 0),
    )
    .unwrap();
    let appended: Vec<(u64, Vec<u8>)> = (1..=50)
        .map(|lsn| (lsn, common::payload(lsn, 40)))
        .collect();
    for (lsn, record) in &appended {
        assert_eq!(wal.append(&[record]).unwrap(), *lsn);
    }
    assert!(common::read_all(&wal) == appended);
}

/// If the writer thread dies (here: a panic in a file operation it makes), appends write full
/// buffers themselves, and nothing appended is lost.
#[test]
fn appends_carry_on_without_a_writer_thread_that_died() {
    let base = MemFs::new();
    let fs = FaultyFs::new(Arc::new(base.clone()));
    let wal = Wal::open_with_fs(
        Arc::new(fs.clone()),
        common::DIR,
        options(SyncPolicy::Never, 256),
    )
    .unwrap();
    let panicked = Arc::new(AtomicBool::new(false));
    let first = Arc::clone(&panicked);
    fs.before_each(Arc::new(move |_| {
        let on_writer = std::thread::current().name() == Some("strata-wal-writer");
        if on_writer && !first.swap(true, Ordering::AcqRel) {
            panic!("the writer thread dies here, as a test");
        }
    }));
    let appended: Vec<(u64, Vec<u8>)> = (1..=400)
        .map(|lsn| (lsn, common::payload(lsn, 60)))
        .collect();
    for (lsn, record) in &appended {
        assert_eq!(wal.append(&[record]).unwrap(), *lsn);
    }
    assert!(
        panicked.load(Ordering::Acquire),
        "the writer thread panicked"
    );
    assert_eq!(wal.sync().unwrap(), 400);
    assert!(common::read_all(&wal) == appended);
    drop(wal);
    let after = common::open_mem(
        &base.crash(CrashMode::DropUnsynced),
        RecoveryMode::PointInTime,
    )
    .unwrap();
    assert!(common::read_all(&after) == appended);
}
