//! A full disk under flush, compaction and commit. Where the test may mount a size-limited
//! tmpfs (it runs as root), the whole store, git repository included, lives on one that a
//! filler file packs to the brim; elsewhere an injecting I/O layer makes every write of the
//! WAL and the segments fail with ENOSPC. Either way:
//! - each operation fails with a clean error naming the disk, and nothing panics;
//! - the store degrades at once, openly (read-only or in-memory), instead of retrying;
//! - nothing is left half-installed: no temporary segment, a manifest that matches the files;
//! - once space returns the store recovers by itself, and every write acknowledged durable,
//!   before or during the shortage, is there after a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use strata::tiering::clock::{Clock, ManualClock};
use strata::wal::{errno, FaultyFs, Fs, FsOp, StdFs};
use strata::{Class, Config, Criticality, Stage, Store};

/// A size-limited tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `path` with one file, until it is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xAAu8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

fn open(dir: &Path, clock: &Arc<ManualClock>, fs: Arc<dyn Fs>) -> Store {
    Store::builder(dir)
        .config(Config {
            memtable_flush_items: 1_000_000,
            health_check_secs: 1,
            ..Config::default()
        })
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .fs(fs)
        .open()
        .expect("open the store")
}

/// The error and its causes, one after another.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

fn value(i: usize) -> String {
    format!("{i:06}").repeat(170)
}

fn no_temporary_files(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "left behind: {names:?}"
    );
}

/// Runs the scenario; `shortage` takes the space away and `relief` gives it back.
fn scenario(dir: &Path, fs: Arc<dyn Fs>, shortage: &dyn Fn(), relief: &dyn Fn()) {
    let clock = common::clock();
    let store = open(dir, &clock, Arc::clone(&fs));
    store
        .classify("doc:*", Class::new(Criticality::High))
        .unwrap();
    let mut durable: Vec<String> = Vec::new();
    for i in 0..60 {
        let key = if i % 3 == 0 {
            format!("doc:{i}")
        } else {
            format!("note:{i}")
        };
        assert!(store.put(&key, value(i)).unwrap().is_durable());
        durable.push(key);
    }
    store.flush().unwrap();
    store.sync(Stage::Cold).unwrap();

    shortage();
    let mut failures = Vec::new();
    let mut accepted: Vec<String> = Vec::new();
    for i in 60..200 {
        let key = if i % 3 == 0 {
            format!("doc:{i}")
        } else {
            format!("note:{i}")
        };
        match store.put(&key, value(i)) {
            Ok(receipt) if receipt.is_durable() => durable.push(key),
            // Accepted in memory, honestly not durable: the log keeps it, or the replay
            // queue does once the store has degraded, until space returns.
            Ok(_) => accepted.push(key),
            Err(e) => failures.push(chain(&e)),
        }
    }
    for result in [
        store.flush().map(|_| ()),
        store.compact().map(|_| ()),
        store.sync(Stage::Cold).map(|_| ()),
    ] {
        if let Err(e) = result {
            failures.push(chain(&e));
        }
    }
    assert!(!failures.is_empty(), "nothing failed on a full disk");
    assert!(
        failures.iter().all(|f| f.contains("No space left")
            || f.contains("circuit breaker is open")
            || f.contains("writes accepted while degraded are not in the log")),
        "unclear errors: {failures:#?}"
    );
    let level = store.stats().level;
    assert_ne!(level, "normal", "a full disk must degrade the store openly");
    let (queued, _) = store.stats().queued;
    assert!(queued > 0, "the degraded store queues what it accepts");
    // Writes the replay queue holds are in no log: no sync may report them durable.
    match store.sync(Stage::Wal) {
        Err(strata::Error::NotLogged { queued: left, .. }) => assert!(left > 0),
        other => panic!("a sync with {queued} writes queued returned {other:?}"),
    }
    assert!(!accepted.is_empty());
    no_temporary_files(dir);

    relief();
    // The breakers half-open after their timeout; health probes and maintenance close them
    // and drain what was queued.
    for _ in 0..5 {
        clock.advance(61_000);
        store.maintain();
    }
    assert_eq!(store.stats().level, "normal");
    store.flush().unwrap();
    store.sync(Stage::Cold).unwrap();
    no_temporary_files(dir);
    store.close().unwrap();

    let store = open(dir, &clock, fs);
    for key in &durable {
        assert!(
            store.get(key).unwrap().is_some(),
            "{key} was acknowledged durable"
        );
    }
    for key in &accepted {
        assert!(
            store.get(key).unwrap().is_some(),
            "{key} was accepted in memory"
        );
    }
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    store.close().unwrap();
    common::git(&dir.join(strata::COLD_DIR), &["fsck", "--strict"]);
}

#[test]
fn a_full_disk_fails_cleanly_degrades_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mount_point = root.path().join("disk");
    if let Some(_mounted) = Tmpfs::mount(&mount_point, 4 * 1024 * 1024) {
        eprintln!("on a 4 MiB tmpfs at {}", mount_point.display());
        let dir = mount_point.join("store");
        let filler = mount_point.join("filler");
        scenario(&dir, Arc::new(StdFs), &|| fill(&filler), &|| {
            std::fs::remove_file(&filler).unwrap()
        });
        return;
    }
    // Not permitted to mount: the injecting layer runs out of space instead.
    let dir = root.path().join("store");
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let control = faulty.clone();
    scenario(
        &dir,
        Arc::new(faulty),
        &|| {
            for op in [FsOp::Write, FsOp::Create, FsOp::SetLen] {
                control.fail_from(op, 1, errno::ENOSPC);
            }
        },
        &|| control.heal(),
    );
}

#[test]
fn running_out_of_space_in_the_injecting_layer_is_handled_too() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let control = faulty.clone();
    scenario(
        &dir,
        Arc::new(faulty),
        &|| {
            for op in [FsOp::Write, FsOp::Create, FsOp::SetLen] {
                control.fail_from(op, 1, errno::ENOSPC);
            }
        },
        &|| control.heal(),
    );
}

/// Closing a degraded store whose replay queue cannot reach the log loses those writes with
/// the process: the close must say so, not report a clean shutdown.
#[test]
fn closing_with_writes_only_in_the_replay_queue_reports_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let clock = common::clock();
    let store = open(&dir, &clock, Arc::new(faulty.clone()));
    assert!(store.put("note:before", value(0)).unwrap().is_durable());
    for op in [FsOp::Write, FsOp::Create, FsOp::SetLen] {
        faulty.fail_from(op, 1, errno::ENOSPC);
    }
    for i in 1..200 {
        let _ = store.put(format!("note:{i}"), value(i));
    }
    let (queued, _) = store.stats().queued;
    assert!(queued > 0, "the degraded store queues what it accepts");
    // Space is back, but the breakers stay open until their timeout: the log syncs, and the
    // queue cannot be moved into it before the close.
    faulty.heal();
    let mut input: &[u8] = b"{\"type\":\"kv\",\"key\":\"note:imported\",\"value\":\"v\"}\n";
    let report = store
        .import(&mut input, &strata::ImportOptions::default())
        .unwrap();
    assert_eq!((report.values, report.degraded), (1, 1), "{report:?}");
    let queued = queued + 1;
    match store.close() {
        Err(strata::Error::NotLogged {
            queued: left,
            reason,
            ..
        }) => {
            assert_eq!(left, queued);
            assert!(reason.contains("breaker"), "{reason}");
        }
        other => panic!("closing with {queued} writes queued returned {other:?}"),
    }
    let store = open(&dir, &clock, Arc::new(faulty));
    assert!(store.get("note:before").unwrap().is_some());
    store.close().unwrap();
}
