//! Group commit: appenders that arrive while an fsync is in flight share the next one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use strata_wal::{Fs, FsFile, Log, MemFs, StdFs, SyncPolicy, Wal, WalOptions};

/// A filesystem whose WAL-file fsyncs can be held at a gate.
#[derive(Debug, Default)]
struct Gate {
    closed: AtomicBool,
    waiting: AtomicUsize,
    syncs: AtomicUsize,
    open: (Mutex<bool>, Condvar),
}

#[derive(Debug)]
struct GateFs {
    inner: MemFs,
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GateFile {
    inner: Box<dyn FsFile>,
    gate: Arc<Gate>,
    is_log: bool,
}

impl Fs for GateFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        // Files are created under a temporary name and renamed; they are log files either way.
        let inner = self.inner.create_new(path)?;
        Ok(Box::new(GateFile {
            inner,
            gate: Arc::clone(&self.gate),
            is_log: true,
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.open_read(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let inner = self.inner.open_write(path)?;
        Ok(Box::new(GateFile {
            inner,
            gate: Arc::clone(&self.gate),
            is_log: false,
        }))
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

impl FsFile for GateFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.append(buf)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.is_log {
            self.gate.syncs.fetch_add(1, Ordering::SeqCst);
            if self.gate.closed.load(Ordering::SeqCst) {
                self.gate.waiting.fetch_add(1, Ordering::SeqCst);
                let (lock, cvar) = &self.gate.open;
                let mut open = lock.lock().unwrap();
                while !*open {
                    open = cvar.wait(open).unwrap();
                }
            }
        }
        self.inner.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.write_zeros(offset, len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.inner.preallocate(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

#[test]
fn appenders_waiting_on_an_fsync_share_the_next_one() {
    let gate = Arc::new(Gate::default());
    let fs = GateFs {
        inner: MemFs::new(),
        gate: Arc::clone(&gate),
    };
    let wal =
        Arc::new(Wal::open_with_fs(Arc::new(fs), common::DIR, WalOptions::default()).unwrap());
    wal.append(&[b"creates the file"]).unwrap();

    gate.closed.store(true, Ordering::SeqCst);
    let before = gate.syncs.load(Ordering::SeqCst);
    std::thread::scope(|scope| {
        let leader = Arc::clone(&wal);
        scope.spawn(move || leader.append(&[b"leader"]).unwrap());
        while gate.waiting.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let followers = 7;
        for i in 0..followers {
            let wal = Arc::clone(&wal);
            scope.spawn(move || wal.append(&[format!("follower {i}").as_bytes()]).unwrap());
        }
        // Every follower has its record buffered and is queued behind the leader's fsync.
        while wal.last_lsn() < 2 + followers {
            std::thread::yield_now();
        }
        let (lock, cvar) = &gate.open;
        *lock.lock().unwrap() = true;
        gate.closed.store(false, Ordering::SeqCst);
        cvar.notify_all();
    });
    let syncs = gate.syncs.load(Ordering::SeqCst) - before;
    assert_eq!(
        syncs, 2,
        "the leader's fsync and one shared by all seven followers"
    );
    assert_eq!(wal.synced_lsn(), 9);
    assert_eq!(common::read_all(wal.as_ref()).len(), 9);
}

#[test]
fn concurrent_appenders_on_a_real_disk_get_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let options = WalOptions {
        sync_policy: SyncPolicy::Always,
        max_file_size: 16 << 10,
        ..WalOptions::default()
    };
    let wal = Arc::new(Wal::open_with_fs(fs, dir.path(), options).unwrap());
    let threads = 8;
    let per_thread = 150;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let wal = Arc::clone(&wal);
            scope.spawn(move || {
                let mut last = 0;
                for i in 0..per_thread {
                    let lsn = wal
                        .append(&[format!("{t}:{i}").as_bytes(), b"second of batch"])
                        .unwrap();
                    assert!(lsn > last, "LSNs of one thread increase");
                    assert!(wal.synced_lsn() >= lsn);
                    last = lsn;
                }
            });
        }
    });
    drop(Arc::try_unwrap(wal).unwrap());
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(wal.recovery_report().is_clean());
    let records = common::read_all(&wal);
    assert_eq!(records.len(), threads * per_thread * 2);
    let mut next_of_thread = vec![0; threads];
    for pair in records.chunks(2) {
        let text = String::from_utf8(pair[0].1.clone()).unwrap();
        let (t, i) = text.split_once(':').unwrap();
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next_of_thread[t], "thread {t}'s records in order");
        next_of_thread[t] += 1;
        assert_eq!(pair[1].1, b"second of batch", "batches stay together");
    }
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        sync_policy: SyncPolicy::Interval(std::time::Duration::from_millis(2)),
        ..WalOptions::default()
    };
    let wal = Wal::open(dir.path(), options).unwrap();
    let lsn = wal.append(&[b"eventually durable"]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wal.synced_lsn() < lsn {
        assert!(
            std::time::Instant::now() < deadline,
            "the interval thread never synced"
        );
        std::thread::yield_now();
    }
    assert_eq!(wal.close().unwrap(), lsn);
}

#[test]
fn a_log_with_a_long_interval_closes_at_once() {
    // The interval thread may not have started when the log is dropped; it must still see
    // the stop, rather than sleep out its hour first.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..200 {
            let options = WalOptions {
                sync_policy: SyncPolicy::Interval(std::time::Duration::from_secs(3600)),
                ..WalOptions::default()
            };
            let wal = Wal::open_with_fs(Arc::new(MemFs::new()), common::DIR, options).unwrap();
            drop(wal);
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("200 logs opened and dropped within a minute");
}

#[test]
fn no_waiter_is_left_parked_under_heavy_contention() {
    contend(WalOptions::default());
}

#[test]
fn no_waiter_is_left_parked_when_every_wait_sleeps() {
    contend(WalOptions {
        group_commit_spin: std::time::Duration::ZERO,
        ..WalOptions::default()
    });
}

/// 24 threads appending durably at once; every thread must come back with its LSN durable.
/// A lost wake-up costs a waiter only the 50 ms park backstop, so this cannot catch one; it
/// catches a waiter that never returns or returns before its LSN is durable.
fn contend(options: WalOptions) {
    let fs = MemFs::new();
    let wal = Arc::new(Wal::open_with_fs(Arc::new(fs), common::DIR, options).unwrap());
    let threads = 24;
    let per_thread = 300;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let wal = Arc::clone(&wal);
            scope.spawn(move || {
                for i in 0..per_thread {
                    let lsn = wal.append(&[format!("{t}:{i}").as_bytes()]).unwrap();
                    assert!(wal.synced_lsn() >= lsn);
                }
            });
        }
    });
    assert_eq!(wal.synced_lsn(), (threads * per_thread) as u64);
}
