//! Fuzz harness shared by `fuzz/fuzz_targets/store_model.rs` and the corpus replay test: the
//! input is a program of store operations (puts, deletes, batches, reads, prefix scans,
//! snapshots, syncs, flushes, compactions, maintenance, and closes and reopens) run against a
//! `strata::Store` in a temporary directory and against a `BTreeMap` model. Keys come from a
//! small alphabet so that operations collide; every key is MEDIUM (the default class) or,
//! rarely, written at HIGH, so every acknowledged write is in the fsynced WAL and the model
//! stays exact across reopens. After every operation and every reopen, point reads of every
//! key and a full scan agree with the model, and so does a snapshot with the model of its time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata::tiering::clock::{Clock, ManualClock};
use strata::{Batch, Config, Criticality, Stage, Store, WriteOptions};

/// Operations run per input at most.
const MAX_OPS: usize = 64;
/// Closes and reopens per input at most.
const MAX_REOPENS: usize = 4;
/// 2023-11-14T22:13:20Z.
const START_MS: u64 = 1_700_000_000_000;

/// Keys that share prefixes, sort around each other, and include the byte extremes.
const KEYS: [&[u8]; 12] = [
    b"a",
    b"aa",
    b"ab",
    b"abc",
    b"b",
    b"ba",
    b"k:",
    b"k:1",
    b"k:10",
    b"k:2",
    b"\x00",
    b"\xff\xfe",
];
/// Prefixes a scan may take, some matching nothing.
const PREFIXES: [&[u8]; 8] = [b"", b"a", b"ab", b"b", b"k:", b"k:1", b"\xff", b"z"];

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The program's bytes, read one at a time; zeros once they run out.
struct Program<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Program<'_> {
    fn next(&mut self) -> Option<u8> {
        let byte = self.bytes.get(self.at).copied();
        self.at += 1;
        byte
    }

    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn key(&mut self) -> &'static [u8] {
        KEYS[usize::from(self.byte()) % KEYS.len()]
    }

    fn value(&mut self) -> Vec<u8> {
        let len = self.byte();
        if len == 0xFF {
            // Now and then a value large enough to span segment blocks.
            let fill = self.byte();
            return vec![fill; 5000];
        }
        (0..len % 12).map(|_| self.byte()).collect()
    }
}

fn base_dir() -> &'static Path {
    // Fsyncs on tmpfs cost nothing; the `always` WAL sync policy does one per write.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        Path::new("/tmp")
    }
}

fn config() -> Config {
    Config {
        wal_sync: "always".into(),
        hot_capacity_bytes: 1 << 20,
        // Keeps promotions from warm, and the small cache's evictions, in the model's way.
        promote_warm_reads: true,
        memtable_flush_items: 8,
        memtable_flush_bytes: 1 << 16,
        ..Config::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder(dir)
        .config(config())
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .background(false)
        .open()
        .unwrap_or_else(|e| panic!("open the store: {e}"))
}

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    let temp = tempfile::Builder::new()
        .prefix("strata-fuzz-")
        .tempdir_in(base_dir())
        .or_else(|_| tempfile::tempdir())
        .unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let dir = temp.path().join("store");
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut store = Some(open(&dir, &clock));
    let mut model = Model::new();
    let mut snapshot: Option<(strata::Snapshot, Model)> = None;
    let mut reopens = 0;
    let mut program = Program { bytes: data, at: 0 };

    for step in 0..MAX_OPS {
        let Some(op) = program.next() else { break };
        let s = store
            .as_ref()
            .unwrap_or_else(|| panic!("the store is open"));
        let what = match op % 16 {
            0..=2 => {
                let (key, value) = (program.key(), program.value());
                let receipt = s
                    .put(key, value.clone())
                    .unwrap_or_else(|e| panic!("step {step}: put: {e}"));
                assert!(
                    receipt.is_durable(),
                    "a MEDIUM write is durable when acknowledged"
                );
                model.insert(key.to_vec(), value);
                "put"
            }
            3 => {
                let key = program.key();
                s.delete(key)
                    .unwrap_or_else(|e| panic!("step {step}: delete: {e}"));
                model.remove(key);
                "delete"
            }
            4 => {
                // A batch: applied in order, so a later change of a key wins.
                let mut batch = Batch::new();
                let mut after = model.clone();
                for _ in 0..1 + program.byte() % 4 {
                    let key = program.key();
                    if program.byte().is_multiple_of(3) {
                        batch.delete(key);
                        after.remove(key);
                    } else {
                        let value = program.value();
                        batch.put(key, value.clone());
                        after.insert(key.to_vec(), value);
                    }
                }
                s.write(&batch)
                    .unwrap_or_else(|e| panic!("step {step}: batch: {e}"));
                model = after;
                "batch"
            }
            5 => {
                let key = program.key();
                let got = s
                    .get(key)
                    .unwrap_or_else(|e| panic!("step {step}: get: {e}"));
                assert_eq!(
                    got.as_ref().map(|v| v.as_bytes()),
                    model.get(key).map(Vec::as_slice),
                    "step {step}: get {key:?}"
                );
                "get"
            }
            6 => {
                let prefix = PREFIXES[usize::from(program.byte()) % PREFIXES.len()];
                let got = scan(s, prefix, step);
                let want: Vec<(Vec<u8>, Vec<u8>)> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "step {step}: scan of prefix {prefix:?}");
                "scan"
            }
            7 => {
                s.sync(Stage::Wal)
                    .unwrap_or_else(|e| panic!("step {step}: sync: {e}"));
                "sync"
            }
            8 => {
                s.flush()
                    .unwrap_or_else(|e| panic!("step {step}: flush: {e}"));
                "flush"
            }
            9 => {
                s.compact()
                    .unwrap_or_else(|e| panic!("step {step}: compact: {e}"));
                "compact"
            }
            10 => {
                // Keep (or replace) a snapshot; it must keep showing this moment.
                snapshot = Some((s.snapshot(), model.clone()));
                "snapshot"
            }
            11 => {
                // Maintenance after a little time: flushes, health checks, WAL trimming.
                clock.advance(u64::from(program.byte()) * 1000);
                let _ = s.maintain();
                "maintain"
            }
            12 => {
                // Bad keys are refused and change nothing.
                let long = vec![b'k'; strata::tiering::MAX_KEY_LEN + 1];
                assert!(s.put(b"", "v").is_err(), "an empty key is refused");
                assert!(
                    s.put(&long, "v").is_err(),
                    "a key over the limit is refused"
                );
                assert!(s.delete(b"").is_err(), "an empty key is refused");
                assert!(s.get(b"").is_err(), "an empty key is refused");
                let mut batch = Batch::new();
                batch.put(program.key(), "never").put(b"", "v");
                assert!(
                    s.write(&batch).is_err(),
                    "a batch with a bad key is refused"
                );
                "bad keys"
            }
            13 if program.byte() == 0xFF => {
                // Rarely, a HIGH write (the cold tier commits it on maintenance).
                let (key, value) = (program.key(), program.value());
                s.put_with(
                    key,
                    value.clone(),
                    WriteOptions::criticality(Criticality::High),
                )
                .unwrap_or_else(|e| panic!("step {step}: put HIGH: {e}"));
                model.insert(key.to_vec(), value);
                "put HIGH"
            }
            13 => "nothing",
            _ if reopens < MAX_REOPENS => {
                reopens += 1;
                // A snapshot holds the store open: let it go first.
                snapshot = None;
                let s = store.take().unwrap_or_else(|| panic!("the store is open"));
                if op % 16 == 14 {
                    s.close()
                        .unwrap_or_else(|e| panic!("step {step}: close: {e}"));
                } else {
                    drop(s);
                }
                let reopened = open(&dir, &clock);
                if op % 16 == 14 {
                    assert!(
                        !reopened.recovery_report().unclean_shutdown,
                        "a closed store reopens clean"
                    );
                }
                store = Some(reopened);
                "reopen"
            }
            _ => "no more reopens",
        };
        let s = store
            .as_ref()
            .unwrap_or_else(|| panic!("the store is open"));
        check(s, &model, &format!("after step {step} ({what})"));
        if let Some((snap, then)) = &snapshot {
            check_snapshot(snap, then, &format!("snapshot after step {step} ({what})"));
        }
    }
    // The snapshot holds a handle: let it go so that the close below is the last one.
    drop(snapshot);
    if let Some(s) = store.take() {
        s.close()
            .unwrap_or_else(|e| panic!("close at the end: {e}"));
    }
    let s = open(&dir, &clock);
    check(&s, &model, "after the final reopen");
    s.close().unwrap_or_else(|e| panic!("close: {e}"));
}

fn scan(store: &Store, prefix: &[u8], step: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect(store.scan_prefix(prefix), &format!("step {step}"))
}

fn collect(scan: strata::Result<strata::Scan<'_>>, when: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan.unwrap_or_else(|e| panic!("{when}: scan: {e}"))
        .map(|item| {
            let (k, v) = item.unwrap_or_else(|e| panic!("{when}: scan item: {e}"));
            (k.as_bytes().to_vec(), v.as_bytes().to_vec())
        })
        .collect()
}

/// Every key reads as the model says, and a full scan yields exactly the model.
fn check(store: &Store, model: &Model, when: &str) {
    check_reads(
        model,
        when,
        |key| store.get(key),
        || collect(store.scan_prefix(b""), when),
    );
}

fn check_snapshot(snapshot: &strata::Snapshot, model: &Model, when: &str) {
    check_reads(
        model,
        when,
        |key| snapshot.get(key),
        || collect(snapshot.scan_prefix(b""), when),
    );
}

fn check_reads(
    model: &Model,
    when: &str,
    get: impl Fn(&[u8]) -> strata::Result<Option<strata::Value>>,
    scan_all: impl Fn() -> Vec<(Vec<u8>, Vec<u8>)>,
) {
    for key in KEYS {
        let got = get(key).unwrap_or_else(|e| panic!("{when}: get {key:?}: {e}"));
        assert_eq!(
            got.as_ref().map(|v| v.as_bytes()),
            model.get(key).map(Vec::as_slice),
            "{when}: get {key:?}"
        );
    }
    let all: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scan_all(), all, "{when}: full scan");
}

/// Hand-made seed programs, one per kind of operation and some mixes.
#[allow(dead_code)] // Used by the seed writer in `tests/fuzz_corpus.rs`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // Opcodes (the byte modulo 16): 0-2 put, 3 delete, 4 batch, 5 get, 6 scan, 7 sync,
    // 8 flush, 9 compact, 10 snapshot, 11 maintain, 12 bad keys, 13 HIGH put (with 0xFF),
    // 14 close and reopen, 15 drop and reopen.
    let put = |key: u8, value: &[u8]| [&[0u8, key, value.len() as u8][..], value].concat();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("put_get", [put(0, b"one"), vec![5, 0]].concat()),
        (
            "put_delete_scan",
            [put(1, b"x"), put(2, b"y"), vec![3, 1, 6, 1]].concat(),
        ),
        (
            "batch_same_key",
            vec![4, 3, 2, 1, 0x61, 2, 2, 0x62, 0x63, 0, 2],
        ),
        (
            "put_close_reopen",
            [put(3, b"v"), vec![14], put(3, b"w"), vec![15, 5, 3]].concat(),
        ),
        (
            "flush_compact",
            [put(0, b"a"), vec![8], put(0, b"b"), vec![8, 3, 0, 9, 14]].concat(),
        ),
        (
            "snapshot_then_write",
            [put(7, b"old"), vec![10], put(7, b"new"), vec![3, 8, 8, 9]].concat(),
        ),
        (
            "large_values",
            vec![0, 4, 0xFF, 0x41, 0, 5, 0xFF, 0x42, 8, 0, 4, 1, 0x43, 9],
        ),
        (
            "maintain",
            [put(9, b"m"), vec![11, 40, 11, 40, 5, 9]].concat(),
        ),
        ("bad_keys", [put(10, b"z"), vec![12, 10]].concat()),
        (
            "high_put",
            vec![13, 0xFF, 11, 3, 0x68, 0x69, 0x21, 11, 1, 14],
        ),
        (
            "many_reopens",
            [put(0, b"1"), vec![14, 15, 14, 15, 14, 15], put(0, b"2")].concat(),
        ),
        (
            "all_ops",
            (0u8..16)
                .flat_map(|op| [op, op.wrapping_mul(37), 3, 1, 2, 3])
                .collect(),
        ),
    ];
    seeds.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
}
