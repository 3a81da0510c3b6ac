//! The Router's overhead over calling the hot tier directly, measured in the same criterion
//! groups. The parts are the production ones where they exist in memory: the memtable crate's
//! `HotTier` as the write buffer, its `HotCache` (behind a small `Tier` adapter) as the cache,
//! and `MemLog` as the log, so the log's own cost is the smallest it can be and what remains
//! is the Router's. The Router holds a realistic rule set: four globs, an exact key and a
//! keyspace default, none matching the benchmark's keys (which get the MEDIUM default).
//!
//! - `router_get_hit`: a read of each of 100,000 keys (16-byte keys, 100-byte values, shuffled)
//!   held by the hot tier: `HotTier::get` at `LATEST` beside `Router::get`, which classifies
//!   the key, checks the degradation level and reads the hot tier through `dyn Tier`. The
//!   target is a Router get at most 10% slower.
//! - `router_put`: 100,000 MEDIUM puts into an empty hot tier and log: `HotTier::apply` of each
//!   change alone; the same plus encoding the change record and appending it to the `MemLog`
//!   (the work a put cannot avoid); and `Router::put`, which adds classification, the
//!   breaker, a sync call, the cache check and watermarks.
//! - `router_put_low`: 100,000 LOW puts: `HotCache` inserts beside `Router::put` of LOW keys.
//!
//! Throughput is in operations per second. After the groups, the get ratio is measured once
//! more with the two sides interleaved round by round and printed as
//! `router_get_hit interleaved: router / hot_tier = ...`: on a shared machine, load that comes
//! and goes shifts criterion's two separate measurements apart by more than the overhead
//! itself, and interleaving makes it fall on both sides alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_benches::SplitMix;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BatchSize, BenchmarkGroup, Criterion, Throughput};
use strata_memtable::{CacheConfig, CacheTier, HotCache, HotTier};
use strata_tiering::record;
use strata_tiering::router::{Class, Pattern, Router, Rule, RuleSet};
use strata_tiering::{Change, Criticality, Entry, Key, Tier, Value, LATEST};
use strata_wal::{Log, MemLog};

const ENTRIES: usize = 100_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;

/// Random keys with 100-byte values, and the keys again in another order for the reads.
/// `prefix` starts every key, so that a rule can classify them.
struct Data {
    keys: Vec<Key>,
    values: Vec<Value>,
    lookups: Vec<Key>,
}

fn data(prefix: &[u8]) -> Data {
    let mut rng = SplitMix(0x5EED);
    let mut keys = Vec::with_capacity(ENTRIES);
    let mut values = Vec::with_capacity(ENTRIES);
    for _ in 0..ENTRIES {
        let mut key = prefix.to_vec();
        while key.len() < KEY_LEN.max(prefix.len() + 8) {
            key.extend_from_slice(&rng.next().to_be_bytes());
        }
        keys.push(Key::new(&key).unwrap());
        let value: Vec<u8> = (0..VALUE_LEN).map(|_| rng.next() as u8).collect();
        values.push(Value::from(value));
    }
    let mut lookups = keys.clone();
    for i in (1..lookups.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        lookups.swap(i, j);
    }
    Data {
        keys,
        values,
        lookups,
    }
}

fn rules() -> RuleSet {
    let mut rules = RuleSet::new();
    rules
        .add("got:task:*", Class::new(Criticality::Critical))
        .unwrap();
    rules
        .add("reasoning:graph:*", Class::new(Criticality::High))
        .unwrap();
    rules
        .add("cache:query:*", Class::new(Criticality::Low))
        .unwrap();
    rules
        .add("tmp:*:scratch", Class::new(Criticality::Low))
        .unwrap();
    rules
        .add("user:42:profile", Class::new(Criticality::Low))
        .unwrap();
    rules.insert(Rule::new(
        Pattern::keyspace("metrics").unwrap(),
        Class::new(Criticality::Low),
    ));
    rules
}

fn router(hot: Arc<HotTier>, log: Arc<MemLog>) -> Router {
    Router::builder(
        hot as Arc<dyn Tier>,
        Arc::new(CacheTier::new(CacheConfig::default())) as Arc<dyn Tier>,
        log as Arc<dyn Log>,
    )
    .rules(rules())
    .build()
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(ENTRIES as u64));
    group
}

fn get_hit(c: &mut Criterion) {
    let data = data(b"");
    let hot = Arc::new(HotTier::new());
    let log = Arc::new(MemLog::new());
    let router = router(Arc::clone(&hot), log);
    for (key, value) in data.keys.iter().zip(&data.values) {
        router.put(key, value.clone()).unwrap();
    }
    let mut group = configure(c, "router_get_hit");
    group.bench_function("hot_tier", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(hot.get(black_box(key.as_bytes()), LATEST).unwrap().unwrap());
            }
        });
    });
    group.bench_function("router", |b| {
        b.iter(|| {
            for key in &data.lookups {
                black_box(router.get(black_box(key.as_bytes())).unwrap().unwrap());
            }
        });
    });
    group.finish();
}

fn put(c: &mut Criterion) {
    let data = data(b"");
    let mut group = configure(c, "router_put");
    group.bench_function("hot_tier_apply", |b| {
        b.iter_batched(
            HotTier::new,
            |hot| {
                for (seqno, (key, value)) in (1..).zip(data.keys.iter().zip(&data.values)) {
                    hot.apply(&[Change::put(key.clone(), seqno, value.clone())])
                        .unwrap();
                }
                hot
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("log_and_hot_tier", |b| {
        b.iter_batched(
            || (HotTier::new(), MemLog::new()),
            |(hot, log)| {
                for (key, value) in data.keys.iter().zip(&data.values) {
                    let entry = Entry::put(0, value.clone());
                    let rec = record::encode(Criticality::Medium, key, &entry);
                    let lsn = log.append(&[rec.as_slice()]).unwrap();
                    hot.apply(&[Change::put(key.clone(), lsn, value.clone())])
                        .unwrap();
                }
                (hot, log)
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("router", |b| {
        b.iter_batched(
            || router(Arc::new(HotTier::new()), Arc::new(MemLog::new())),
            |router| {
                for (key, value) in data.keys.iter().zip(&data.values) {
                    black_box(router.put(key, value.clone()).unwrap());
                }
                router
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn put_low(c: &mut Criterion) {
    let data = data(b"cache:query:");
    let mut group = configure(c, "router_put_low");
    group.bench_function("hot_cache_insert", |b| {
        b.iter_batched(
            HotCache::new,
            |cache| {
                for (key, value) in data.keys.iter().zip(&data.values) {
                    let outcome = cache.insert(key.clone(), Entry::put(0, value.clone()), true);
                    black_box(&outcome.unwrap());
                }
                cache
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("router", |b| {
        b.iter_batched(
            || router(Arc::new(HotTier::new()), Arc::new(MemLog::new())),
            |router| {
                for (key, value) in data.keys.iter().zip(&data.values) {
                    black_box(router.put(key, value.clone()).unwrap());
                }
                router
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// The get ratio again, with the two sides interleaved round by round (in alternating order),
/// so that load from other processes, which shifts criterion's two separate measurements
/// apart, falls on both alike. Prints the median of the per-round ratios.
fn interleaved_get_ratio() {
    const ROUNDS: usize = 41;
    let data = data(b"");
    let hot = Arc::new(HotTier::new());
    let router = router(Arc::clone(&hot), Arc::new(MemLog::new()));
    for (key, value) in data.keys.iter().zip(&data.values) {
        router.put(key, value.clone()).unwrap();
    }
    let direct = || {
        let start = Instant::now();
        for key in &data.lookups {
            black_box(hot.get(black_box(key.as_bytes()), LATEST).unwrap().unwrap());
        }
        start.elapsed().as_secs_f64()
    };
    let routed = || {
        let start = Instant::now();
        for key in &data.lookups {
            black_box(router.get(black_box(key.as_bytes())).unwrap().unwrap());
        }
        start.elapsed().as_secs_f64()
    };
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut direct_ns = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (d, r) = if round % 2 == 0 {
            let d = direct();
            (d, routed())
        } else {
            let r = routed();
            (direct(), r)
        };
        ratios.push(r / d);
        direct_ns.push(d * 1e9 / ENTRIES as f64);
    }
    ratios.sort_by(f64::total_cmp);
    direct_ns.sort_by(f64::total_cmp);
    println!(
        "router_get_hit interleaved: router / hot_tier = {:.3} (median of {ROUNDS} rounds; \
         quartiles {:.3}..{:.3}); hot_tier get {:.0} ns",
        ratios[ROUNDS / 2],
        ratios[ROUNDS / 4],
        ratios[3 * ROUNDS / 4],
        direct_ns[ROUNDS / 2],
    );
}

criterion_group!(benches, get_hit, put, put_low);

fn main() {
    benches();
    interleaved_get_ratio();
    Criterion::default().configure_from_args().final_summary();
}
