//! Process crashes: a child process appends batches under `SyncPolicy::Always` and prints an
//! acknowledgement line after each `append` returns; the parent SIGKILLs it at a random moment,
//! reopens the log and checks that every acknowledged batch is there, at its acknowledged LSN,
//! byte for byte, and that the log holds nothing but whole batches of the children's sequences.
//! The log accumulates across cycles: each child continues from what the last recovery kept.
//!
//! The child is this test binary run again with `--exact crash_child` and the directory in
//! `STRATA_WAL_CRASH_CHILD`; without that variable `crash_child` passes at once.
//!
//! Knobs: `STRATA_CRASH_CYCLES` (default 50) and `STRATA_CRASH_SEED` (default: from the clock,
//! printed; it fixes the payloads and the kill points, not the timing of the child).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use strata_wal::{Log, Lsn, RecoveryMode, SyncPolicy, Wal, WalOptions};

/// Name of the child test function, for `--exact`.
const CHILD_TEST: &str = "crash_child";
/// Set for the child only: the WAL directory.
const CHILD_DIR_VAR: &str = "STRATA_WAL_CRASH_CHILD";
/// Set for the child only: the payload seed.
const CHILD_SEED_VAR: &str = "STRATA_WAL_CRASH_SEED";
/// Set for the child only: the cycle number, part of every payload.
const CHILD_CYCLE_VAR: &str = "STRATA_WAL_CRASH_CYCLE";
const CYCLES_VAR: &str = "STRATA_CRASH_CYCLES";
const SEED_VAR: &str = "STRATA_CRASH_SEED";
const DEFAULT_CYCLES: u64 = 50;
/// The parent kills the child after 0..=MAX_ACKS acknowledgements.
const MAX_ACKS: u64 = 150;
/// Small files, so that crashes also land in rollovers and file creation.
const CHILD_MAX_FILE_SIZE: u64 = 64 << 10;
/// Payloads are 1..=MAX_PAYLOAD bytes.
const MAX_PAYLOAD: u64 = 2000;

// ---------------------------------------------------------------------------------------------
// Deterministic content

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A tiny xorshift64 generator.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(mix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One record of the children's sequence: record `index` of batch `batch` of cycle `cycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    cycle: u64,
    batch: u64,
    index: u64,
}

fn key(seed: u64, cycle: u64, batch: u64, index: u64) -> u64 {
    mix(mix(mix(seed ^ cycle) ^ batch) ^ index)
}

/// Number of records (1..=4) in batch `batch` of cycle `cycle`.
fn batch_len(seed: u64, cycle: u64, batch: u64) -> u64 {
    1 + key(seed, cycle, batch, u64::MAX) % 4
}

/// The payload of a record: `"<cycle>:<batch>:<index>:"`, then filler derived from the same
/// numbers, cut to a pseudo-random length of 1..=MAX_PAYLOAD bytes (never below the prefix).
fn payload(seed: u64, rec: Rec) -> Vec<u8> {
    let Rec {
        cycle,
        batch,
        index,
    } = rec;
    let mut rng = XorShift::new(key(seed, cycle, batch, index));
    let len = 1 + rng.below(MAX_PAYLOAD) as usize;
    let mut out = format!("{cycle}:{batch}:{index}:").into_bytes();
    while out.len() < len {
        let word = rng.next().to_le_bytes();
        let take = (len - out.len()).min(word.len());
        out.extend_from_slice(&word[..take]);
    }
    out
}

/// What a payload claims to be, for failure messages.
fn describe(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(32)];
    format!(
        "{} bytes starting {:?}",
        bytes.len(),
        String::from_utf8_lossy(shown)
    )
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

// ---------------------------------------------------------------------------------------------
// The child

/// Appends batches until killed, acknowledging each after `append` returned. A no-op unless
/// the parent test started this process.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let seed = env_u64(CHILD_SEED_VAR).expect("the parent passes a seed");
    let cycle = env_u64(CHILD_CYCLE_VAR).expect("the parent passes a cycle");
    let options = WalOptions {
        sync_policy: SyncPolicy::Always,
        max_file_size: CHILD_MAX_FILE_SIZE,
        ..WalOptions::default()
    };
    let wal = Wal::open(PathBuf::from(dir), options).unwrap();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // The harness has printed "test crash_child ... " without a newline: start a fresh line so
    // the first acknowledgement begins one.
    writeln!(out).unwrap();
    out.flush().unwrap();
    for batch in 0u64.. {
        let records: Vec<Vec<u8>> = (0..batch_len(seed, cycle, batch))
            .map(|index| {
                payload(
                    seed,
                    Rec {
                        cycle,
                        batch,
                        index,
                    },
                )
            })
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let last = wal.append(&refs).unwrap();
        // Fails once the parent is gone, which ends this process.
        writeln!(out, "ACK {last} {batch} {}", refs.len()).unwrap();
        out.flush().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The parent

/// One acknowledgement line: `ACK <last lsn> <batch> <records>`.
#[derive(Debug, Clone, Copy)]
struct Ack {
    lsn: Lsn,
    batch: u64,
    records: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut fields = line.strip_prefix("ACK ")?.split_whitespace();
    let ack = Ack {
        lsn: fields.next()?.parse().ok()?,
        batch: fields.next()?.parse().ok()?,
        records: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(ack)
}

/// Kills and reaps the child if the parent panics before doing so itself.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs one child on `dir`, SIGKILLs it after `kill_after` acknowledgements and returns them.
fn run_child(exe: &Path, dir: &Path, seed: u64, cycle: u64, kill_after: u64) -> Vec<Ack> {
    let child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_SEED_VAR, seed.to_string())
        .env(CHILD_CYCLE_VAR, cycle.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let mut acks = Vec::new();
    if kill_after > 0 {
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        while (acks.len() as u64) < kill_after {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.0.wait().unwrap();
                panic!(
                    "seed {seed} cycle {cycle}: the child exited on its own ({status}) after {} \
                     acknowledgements",
                    acks.len()
                );
            }
            if let Some(ack) = parse_ack(line.trim_end()) {
                acks.push(ack);
            }
        }
    }
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "seed {seed} cycle {cycle}: the child was not ended by SIGKILL but {status}"
        );
    }
    #[cfg(not(unix))]
    let _ = status;
    acks
}

#[derive(Debug, Default)]
struct Stats {
    acks: u64,
    unacked_kept: u64,
    torn_tails: u64,
    set_aside: usize,
}

/// Reopens the log after cycle `cycle` and checks it against `log`, the records (by LSN - 1)
/// that earlier cycles' checks found, extending it with what this cycle's child left.
fn verify(dir: &Path, seed: u64, cycle: u64, acks: &[Ack], log: &mut Vec<Rec>, stats: &mut Stats) {
    let ctx = format!("seed {seed} cycle {cycle}");
    let options = WalOptions {
        recovery_mode: RecoveryMode::PointInTime,
        ..WalOptions::default()
    };
    let wal = Wal::open(dir, options).unwrap_or_else(|e| panic!("{ctx}: reopening failed: {e}"));
    let report = wal.recovery_report().clone();
    if let Some(damage) = &report.damage {
        assert!(
            damage.torn_tail,
            "{ctx}: a process crash left damage that is not a torn tail: {report:?}"
        );
        stats.torn_tails += 1;
    }
    stats.set_aside += report.set_aside.len();

    // Walk the whole log: LSNs from 1 without a gap; the part earlier checks saw, unchanged;
    // after it, whole batches 0, 1, 2, ... of this cycle's child, byte for byte.
    let old_len = log.len();
    let mut next_lsn: Lsn = 1;
    let (mut batch, mut index) = (0u64, 0u64);
    let records = wal
        .read_from(1)
        .unwrap_or_else(|e| panic!("{ctx}: read_from(1) failed: {e}"));
    for item in records {
        let (lsn, bytes) = item.unwrap_or_else(|e| panic!("{ctx}: reading LSN {next_lsn}: {e}"));
        assert_eq!(lsn, next_lsn, "{ctx}: LSN gap in the log");
        let pos = (lsn - 1) as usize;
        let (want, origin) = if pos < old_len {
            (log[pos], "kept by an earlier recovery")
        } else {
            let rec = Rec {
                cycle,
                batch,
                index,
            };
            log.push(rec);
            index += 1;
            if index == batch_len(seed, cycle, batch) {
                (batch, index) = (batch + 1, 0);
            }
            (rec, "appended by this cycle's child")
        };
        let expected = payload(seed, want);
        assert!(
            bytes == expected,
            "{ctx}: LSN {lsn} should hold {want:?} ({origin}, {}), holds {}",
            describe(&expected),
            describe(&bytes)
        );
        next_lsn += 1;
    }
    let len = next_lsn - 1;
    assert!(
        len as usize >= old_len,
        "{ctx}: the log ends at LSN {len}, but an earlier recovery kept records up to LSN {old_len}"
    );
    assert_eq!(
        index,
        0,
        "{ctx}: the log ends inside batch {batch} of this cycle ({index} of its {} records)",
        batch_len(seed, cycle, batch)
    );
    assert_eq!(
        wal.last_lsn(),
        len,
        "{ctx}: last_lsn disagrees with the records read"
    );
    assert_eq!(
        report.last_lsn, len,
        "{ctx}: the recovery report disagrees with the records read"
    );

    // Every acknowledged batch is among the kept ones, at the LSN its acknowledgement gave.
    let mut end = old_len as Lsn;
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(
            ack.batch, i as u64,
            "{ctx}: acknowledgements out of order: {ack:?}"
        );
        let n = batch_len(seed, cycle, ack.batch);
        assert_eq!(
            ack.records, n,
            "{ctx}: acknowledgement of a batch of the wrong size: {ack:?}"
        );
        end += n;
        assert_eq!(
            ack.lsn, end,
            "{ctx}: batch {i} acknowledged at LSN {}, but its records follow the {old_len} \
             records kept before this cycle and {} earlier batches, so it ends at LSN {end}",
            ack.lsn, i
        );
        assert!(
            ack.batch < batch,
            "{ctx}: acknowledged batch {} (LSNs {}..={}) is missing: the log ends at LSN {len} \
             with {batch} batches of this cycle; recovery: {report:?}",
            ack.batch,
            ack.lsn + 1 - n,
            ack.lsn
        );
    }
    stats.acks += acks.len() as u64;
    stats.unacked_kept += batch - acks.len() as u64;
}

/// The parent: cycles of spawn, append, SIGKILL, recover, check, on one growing log.
#[test]
fn acknowledged_batches_survive_sigkill() {
    let cycles = env_u64(CYCLES_VAR).unwrap_or(DEFAULT_CYCLES);
    let seed = env_u64(SEED_VAR).unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        mix(now.as_nanos() as u64)
    });
    println!("crash test: {cycles} cycles, {SEED_VAR}={seed}");
    let started = std::time::Instant::now();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("wal");
    let exe = std::env::current_exe().unwrap();
    let mut rng = XorShift::new(seed ^ 0x5EED_C0FF_EE00_0001);
    let mut log: Vec<Rec> = Vec::new();
    let mut stats = Stats::default();
    for cycle in 0..cycles {
        let kill_after = rng.below(MAX_ACKS + 1);
        let acks = run_child(&exe, &dir, seed, cycle, kill_after);
        verify(&dir, seed, cycle, &acks, &mut log, &mut stats);
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    println!(
        "crash test: {cycles} cycles in {:.2?}: {} records in the log, {} batches acknowledged, \
         {} unacknowledged batches kept, {} torn tails cut, {} files set aside, {files} \
         directory entries",
        started.elapsed(),
        log.len(),
        stats.acks,
        stats.unacked_kept,
        stats.torn_tails,
        stats.set_aside
    );
}
