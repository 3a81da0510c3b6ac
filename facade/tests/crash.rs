//! Crash test of the whole store: a child process writes at every criticality — puts, deletes
//! and atomic batches, and on a second thread transactions moving money between accounts —
//! with the maintenance thread flushing, committing and pushing, and is killed with SIGKILL,
//! 100 times by default (STRATA_CRASH_CYCLES for more). The kill lands just before a file
//! operation chosen at random (seeded) among the first 2,000 of the child's store: its WAL,
//! segments and git repository write through a [`FaultyFs`] whose hook counts the operations
//! and, at the chosen one, has `kill -KILL` sent to its own process. So kills fall inside
//! opening and recovery, WAL appends and syncs, flushes, compactions and git commits alike,
//! and each names the operation it interrupted. After every kill the store reopens, reports an unclean shutdown, holds every
//! acknowledged MEDIUM-or-higher write, holds no value that was never written, keeps the
//! accounts' total, and its git repository passes `git fsck --strict` (the remote too, every
//! tenth cycle).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata::{Batch, Class, Config, Criticality, Isolation, Store};
use strata_wal::{FaultyFs, FsEvent, StdFs};

/// Kills land before one of this many file operations of the child's store.
const KILL_WITHIN: u64 = 2_000;

const PREFIXES: [(&str, Criticality); 4] = [
    ("low", Criticality::Low),
    ("med", Criticality::Medium),
    ("high", Criticality::High),
    ("crit", Criticality::Critical),
];

const ACCOUNTS: u64 = 8;

fn balance(value: Option<strata::Value>) -> i64 {
    let value = value.expect("every account exists");
    std::str::from_utf8(value.as_bytes())
        .unwrap()
        .parse()
        .unwrap()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn config(remote: &Path) -> Config {
    Config {
        commit_quiet_secs: 0,
        memtable_flush_items: 64,
        remote: Some(remote.display().to_string()),
        push_every: 2,
        push_retry_secs: 0,
        critical_debounce_ms: 20,
        ..Config::default()
    }
}

/// The child: writes until killed. Before each write it prints `TRY <id> <key>=<value>`
/// lines, after it `ACK <id>`; a value of `-` is a deletion.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STRATA_STORE_CRASH_CHILD") else {
        return;
    };
    let cycle: u64 = std::env::var("STRATA_CRASH_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let kill_at: u64 = std::env::var("STRATA_KILL_AT").unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    let fs = FaultyFs::new(Arc::new(StdFs));
    let calls = AtomicU64::new(0);
    fs.before_each(Arc::new(move |event: &FsEvent| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == kill_at {
            eprintln!("KILL before {:?} {}", event.op, event.path.display());
            let pid = std::process::id().to_string();
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            // Not reached once the signal is delivered.
            std::process::abort();
        }
    }));
    let store = Store::builder(dir.join("store"))
        .config(config(&dir.join("remote.git")))
        .fs(Arc::new(fs))
        .open()
        .unwrap();
    for (prefix, criticality) in PREFIXES {
        store
            .classify(&format!("{prefix}:*"), Class::new(criticality))
            .unwrap();
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (cycle + 1).wrapping_mul(0x2545_F491));
    // Transfers between accounts run alongside, as transactions that may conflict.
    let transfers = store.clone();
    let mut transfer_rng = Rng(rng.next() | 1);
    std::thread::spawn(move || loop {
        let from = transfer_rng.next() % ACCOUNTS;
        let to = (from + 1 + transfer_rng.next() % (ACCOUNTS - 1)) % ACCOUNTS;
        let amount = (transfer_rng.next() % 20) as i64;
        transfers
            .transact(Isolation::Snapshot, 100, |tx| {
                let a = balance(tx.get(format!("acct:{from}"))?);
                let b = balance(tx.get(format!("acct:{to}"))?);
                tx.put(format!("acct:{from}"), (a - amount).to_string());
                tx.put(format!("acct:{to}"), (b + amount).to_string());
                Ok(())
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    });
    let mut out = std::io::stdout().lock();
    // Ends the line the test harness left open ("test crash_child ... "), so that every
    // TRY line starts a line of its own.
    writeln!(out).unwrap();
    for id in 0u64.. {
        let ops = if rng.next().is_multiple_of(6) { 3 } else { 1 };
        let mut batch = Batch::new();
        for n in 0..ops {
            let (prefix, _) = PREFIXES[(rng.next() % 4) as usize];
            let key = format!("{prefix}:{}", rng.next() % 16);
            if rng.next().is_multiple_of(5) {
                batch.delete(&key);
                writeln!(out, "TRY {id} {key}=-").unwrap();
            } else {
                let value = format!("c{cycle}w{id}n{n}");
                batch.put(&key, value.as_str());
                writeln!(out, "TRY {id} {key}={value}").unwrap();
            }
        }
        out.flush().unwrap();
        let receipt = store.write(&batch).unwrap();
        if receipt.criticality == Criticality::Low || receipt.is_durable() {
            writeln!(out, "ACK {id}").unwrap();
            out.flush().unwrap();
        }
        if rng.next().is_multiple_of(8) {
            std::thread::sleep(Duration::from_millis(rng.next() % 5));
        }
    }
}

/// Per key: every value tried in order, and how many of them are acknowledged.
#[derive(Default)]
struct History {
    tried: Vec<Option<String>>,
    acked: usize,
}

#[test]
fn the_store_survives_sigkill_at_any_moment() {
    let cycles: u64 = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote.git");
    common::bare(&remote);
    let mut model: HashMap<String, History> = HashMap::new();
    {
        let store = common::reopen_real(&dir.path().join("store"), &config(&remote));
        for a in 0..ACCOUNTS {
            store.put(format!("acct:{a}"), "100").unwrap();
        }
        store.close().unwrap();
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut unclean = 0;
    let mut acks = 0u64;
    let mut opening = Duration::ZERO;
    let mut commits = 0u64;
    for cycle in 0..cycles {
        let kill_at = 1 + rng.next() % KILL_WITHIN;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_STORE_CRASH_CHILD", dir.path())
            .env("STRATA_CRASH_CYCLE", cycle.to_string())
            .env("STRATA_KILL_AT", kill_at.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read to the end: the pipe closes when the child dies at its chosen operation.
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(|line| line.ok())
            .collect();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "cycle {cycle}: the child did not reach operation {kill_at}: {status}"
        );
        let mut pending: HashMap<u64, Vec<(String, Option<String>)>> = HashMap::new();
        for line in lines {
            if let Some(rest) = line.strip_prefix("TRY ") {
                let (id, write) = rest.split_once(' ').unwrap();
                let Some((key, value)) = write.split_once('=') else {
                    continue; // a line cut by the kill
                };
                let value = (value != "-").then(|| value.to_owned());
                model
                    .entry(key.to_owned())
                    .or_default()
                    .tried
                    .push(value.clone());
                pending
                    .entry(id.parse().unwrap())
                    .or_default()
                    .push((key.to_owned(), value));
            } else if let Some(id) = line.strip_prefix("ACK ") {
                let Ok(id) = id.parse::<u64>() else { continue };
                // The child writes one at a time, so a write's tries are the latest of
                // each of its keys when its acknowledgement arrives.
                acks += 1;
                for (key, _) in pending.remove(&id).unwrap_or_default() {
                    let history = model.get_mut(&key).unwrap();
                    history.acked = history.tried.len();
                }
            }
        }
        let store = common::reopen_real(&dir.path().join("store"), &config(&remote));
        opening += store.recovery_report().duration;
        if store.recovery_report().unclean_shutdown {
            unclean += 1;
        }
        for (key, history) in &mut model {
            let found = store
                .get(key)
                .unwrap_or_else(|e| panic!("cycle {cycle}: read {key}: {e}"))
                .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap());
            let low = key.starts_with("low:");
            // Acceptable: the last acknowledged version or anything tried after it; for LOW
            // keys (memory only), absence or anything ever tried.
            let from = if low {
                0
            } else {
                history.acked.saturating_sub(1)
            };
            let mut allowed: Vec<Option<String>> = history.tried[from..].to_vec();
            if low || history.acked == 0 {
                allowed.push(None);
            }
            assert!(
                allowed.contains(&found),
                "cycle {cycle}: {key} is {found:?}; acknowledged {} of {:?}",
                history.acked,
                history.tried
            );
            // What is there now is the base for the next cycle.
            history.tried = vec![found];
            history.acked = if low { 0 } else { 1 };
        }
        let total: i64 = (0..ACCOUNTS)
            .map(|a| balance(store.get(format!("acct:{a}")).unwrap()))
            .sum();
        assert_eq!(
            total,
            100 * ACCOUNTS as i64,
            "cycle {cycle}: transfers keep the total"
        );
        commits = commits.max(store.stats().watermarks[3].lsn);
        store.close().unwrap();
        // The cold repository after every kill; the remote, which only a verified push
        // changes, every tenth cycle and after the last (a full check reads every object).
        let cold = dir.path().join("store").join(strata::COLD_DIR);
        common::git(&cold, &["fsck", "--strict", "--no-dangling"]);
        if cycle % 10 == 9 || cycle + 1 == cycles {
            common::git(&remote, &["fsck", "--strict", "--no-dangling"]);
        }
    }
    eprintln!(
        "{cycles} kills, {unclean} unclean, {acks} acknowledged writes, cold watermark \
         {commits}, {opening:?} spent reopening"
    );
    assert!(unclean * 2 >= cycles, "most kills left an unclean shutdown");
    assert!(acks >= cycles, "the children wrote");
    assert!(commits > 0, "the children committed to git");
}
