//! Benchmarks of `strata-memtable`, each measured beside std maps in the same criterion group.
//!
//! - `memtable_insert`: 100,000 entries (16-byte keys, 100-byte values) inserted one at a time
//!   into an empty `Memtable`, beside `BTreeMap<Vec<u8>, Vec<u8>>` and `HashMap<Vec<u8>,
//!   Vec<u8>>` inserts of the same data. Keys and values are built before the clock starts on
//!   every side (as `Key`/`Value` handles for the memtable, as `Vec`s for the std maps), and the
//!   filled map is dropped after it stops.
//! - `memtable_get_hit`: a read of each of those 100,000 keys in shuffled order from the filled
//!   maps, each returning its value: `Memtable::get` at `LATEST` (which clones the entry, a
//!   reference-count bump) beside `BTreeMap::get` and `HashMap::get` (which return a reference),
//!   plus `HotTier::get` through the `Tier` trait for the cost of the tier around the memtable.
//!
//! Throughput is in entries per second; the target is a memtable get at least half as
//! fast as a `BTreeMap` get.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Duration;
use strata_benches::SplitMix;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use strata_memtable::{HotTier, Memtable};
use strata_tiering::{Change, Entry, Key, Tier, Value, LATEST};

const ENTRIES: usize = 100_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;

/// The data set: random 16-byte keys with 100-byte values, and the keys again in another
/// random order for the reads.
struct Data {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    lookups: Vec<Vec<u8>>,
}

fn data() -> Data {
    let mut rng = SplitMix(0x5EED);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..ENTRIES)
        .map(|_| {
            let mut key = Vec::with_capacity(KEY_LEN);
            key.extend_from_slice(&rng.next().to_be_bytes());
            key.extend_from_slice(&rng.next().to_be_bytes());
            let value: Vec<u8> = (0..VALUE_LEN).map(|_| rng.next() as u8).collect();
            (key, value)
        })
        .collect();
    let mut lookups: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| k.clone()).collect();
    for i in (1..lookups.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        lookups.swap(i, j);
    }
    Data { pairs, lookups }
}

/// The data as the store's own types, seqnos 1, 2, ...
fn changes(data: &Data) -> Vec<Change> {
    data.pairs
        .iter()
        .zip(1..)
        .map(|((k, v), seqno)| {
            Change::new(
                Key::new(k).unwrap(),
                Entry::put(seqno, Value::from(v.as_slice())),
            )
        })
        .collect()
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(ENTRIES as u64));
    group
}

fn insert(c: &mut Criterion) {
    let data = data();
    let changes = changes(&data);
    let mut group = configure(c, "memtable_insert");
    group.bench_function("memtable", |b| {
        b.iter_batched(
            || changes.clone(),
            |changes| {
                let table = Memtable::new();
                for change in changes {
                    table.insert(change.key, change.entry);
                }
                table
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("btreemap", |b| {
        b.iter_batched(
            || data.pairs.clone(),
            |pairs| {
                let mut map = BTreeMap::new();
                for (k, v) in pairs {
                    map.insert(k, v);
                }
                map
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("hashmap", |b| {
        b.iter_batched(
            || data.pairs.clone(),
            |pairs| {
                let mut map = HashMap::new();
                for (k, v) in pairs {
                    map.insert(k, v);
                }
                map
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn get_hit(c: &mut Criterion) {
    let data = data();
    let changes = changes(&data);
    let table = Memtable::new();
    for change in changes.iter().cloned() {
        table.insert(change.key, change.entry);
    }
    let tier = HotTier::new();
    tier.apply(&changes).unwrap();
    let btree: BTreeMap<Vec<u8>, Vec<u8>> = data.pairs.iter().cloned().collect();
    let hash: HashMap<Vec<u8>, Vec<u8>> = data.pairs.iter().cloned().collect();

    let mut group = configure(c, "memtable_get_hit");
    group.bench_function("memtable", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(table.get(black_box(key), LATEST).unwrap());
            }
        });
    });
    group.bench_function("btreemap", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(btree.get(black_box(key.as_slice())).unwrap());
            }
        });
    });
    group.bench_function("hashmap", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(hash.get(black_box(key.as_slice())).unwrap());
            }
        });
    });
    group.bench_function("hot_tier", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(tier.get(black_box(key), LATEST).unwrap().unwrap());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, insert, get_hit);
criterion_main!(benches);
