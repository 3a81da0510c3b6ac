//! Benchmarks of `strata-segment`, each measured beside a std or physical baseline in the same
//! criterion group. Data: random 16-byte keys with 100-byte values.
//!
//! - `segment_get`: point reads from one segment of 1,000,000 entries on the real filesystem
//!   (memory-mapped, page cache warm): `Segment::get` of a present key (`hit`) and of an absent
//!   key inside the segment's key range (`miss`, answered by the bloom filter but for its ~1%
//!   false positives), the same two through `SegmentTier` and the `Tier` trait, beside
//!   `BTreeMap::get` and `HashMap::get` of present keys over the same data. Keys are read in a
//!   shuffled order. Throughput is in reads per second.
//! - `segment_scan`: 10,000 consecutive entries from a random start, through `Segment::iter`
//!   and `Tier::scan` (each entry copied out as an owned key and value), beside `BTreeMap::range`.
//! - `segment_flush`: `SegmentTier::ingest` of 100,000 sorted entries into a fresh tier — block
//!   building, bloom filter, index, footer, fsync, rename, directory fsync, manifest update —
//!   beside writing the same key and value bytes to a plain file with one `write_all` per
//!   megabyte and one `fdatasync`. Throughput is in key-and-value bytes per second.
//! - `segment_compaction`: `compact_all` of four segments of 100,000 entries each (all keys
//!   distinct), beside reading four files of the same size and writing their bytes to one new
//!   file with an `fdatasync`. Throughput is in bytes of input segment files per second.
//!
//! Setup (building data, writing the segments a read or compaction bench reads) is never timed.
//! Scratch directories live under the target directory, on the same disk as the repository.

// A failed setup or operation is a failed benchmark: panicking is the right way to report it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_benches::{filesystem_of, sync_dir};
use strata_segment::{ReadMode, Segment, SegmentOptions, SegmentTier};
use strata_tiering::io::StdFs;
use strata_tiering::{Entry, Key, KeyRange, Tier, LATEST};
use tempfile::TempDir;

const GET_ENTRIES: usize = 1_000_000;
const FLUSH_ENTRIES: usize = 100_000;
const SCAN_LEN: usize = 10_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
/// Reads per timed batch in the get benches.
const LOOKUPS: usize = 100_000;

/// Where scratch directories go: under the target directory, on the disk the repository is on.
const SCRATCH_ROOT: &str = env!("CARGO_TARGET_TMPDIR");

/// A deterministic pseudo-random stream (splitmix64), so every run benchmarks the same data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` random keys in ascending order with random values, and as many other random keys (absent
/// from the set) inside the same range.
fn data(n: usize, seed: u64) -> (Vec<(Key, Entry)>, Vec<Vec<u8>>) {
    let mut rng = SplitMix(seed);
    let mut keys: Vec<[u8; KEY_LEN]> = (0..2 * n)
        .map(|_| {
            let mut key = [0u8; KEY_LEN];
            key[..8].copy_from_slice(&rng.next().to_be_bytes());
            key[8..].copy_from_slice(&rng.next().to_be_bytes());
            key
        })
        .collect();
    // Every other key (by position in a random order) is present.
    let absent: Vec<Vec<u8>> = keys.split_off(n).into_iter().map(|k| k.to_vec()).collect();
    keys.sort_unstable();
    keys.dedup();
    let pairs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let value: Vec<u8> = (0..VALUE_LEN).map(|_| rng.next() as u8).collect();
            (Key::new(k).unwrap(), Entry::put(i as u64 + 1, value))
        })
        .collect();
    (pairs, absent)
}

struct Scratch(TempDir);

impl Scratch {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn scratch() -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix("segment-bench-")
        .tempdir_in(SCRATCH_ROOT)
        .expect("create a scratch directory under CARGO_TARGET_TMPDIR");
    Scratch(dir)
}

fn finish_scratch(dir: Scratch) {
    dir.0.close().expect("remove a scratch directory");
    sync_dir(Path::new(SCRATCH_ROOT)).expect("fsync the scratch root");
}

fn options() -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        ..SegmentOptions::default()
    }
}

fn payload_bytes(pairs: &[(Key, Entry)]) -> u64 {
    pairs
        .iter()
        .map(|(k, e)| (k.as_bytes().len() + e.value().map_or(0, |v| v.len())) as u64)
        .sum()
}

fn shuffled(mut items: Vec<Vec<u8>>, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.next() as usize % (i + 1));
    }
    items
}

fn gets(c: &mut Criterion) {
    let dir = scratch();
    match filesystem_of(dir.path()) {
        Some((fs_type, source)) => eprintln!("segment benches: scratch on {fs_type} ({source})"),
        None => eprintln!("segment benches: filesystem of the scratch directories unknown"),
    }
    let (pairs, absent) = data(GET_ENTRIES, 0x5E6);
    let tier = SegmentTier::open(Arc::new(StdFs), dir.path(), options()).unwrap();
    tier.ingest(pairs.clone(), Some(1)).unwrap();
    let seg = Arc::new(
        Segment::open(&StdFs, tier.segments()[0].path(), ReadMode::Mmap).expect("open segment"),
    );
    seg.verify().unwrap(); // warms the page cache and checks every block once
    let false_positives = absent.iter().filter(|k| seg.may_contain(k)).count();
    eprintln!(
        "segment benches: {} entries, {} bytes ({:.1} bytes/entry), bloom false positives {:.2}%",
        GET_ENTRIES,
        seg.file_len(),
        seg.file_len() as f64 / GET_ENTRIES as f64,
        100.0 * false_positives as f64 / absent.len() as f64
    );
    let present: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| k.as_bytes().to_vec()).collect();
    let hits = shuffled(present, 1);
    let hits = &hits[..LOOKUPS];
    let misses = &absent[..LOOKUPS];
    let btree: BTreeMap<Vec<u8>, Vec<u8>> = pairs
        .iter()
        .map(|(k, e)| {
            (
                k.as_bytes().to_vec(),
                e.value().unwrap().as_bytes().to_vec(),
            )
        })
        .collect();
    let hash: HashMap<Vec<u8>, Vec<u8>> = btree.clone().into_iter().collect();

    let mut group = c.benchmark_group("segment_get");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("segment_hit", |b| {
        b.iter(|| {
            for k in hits {
                black_box(seg.get(k, LATEST).unwrap().unwrap());
            }
        })
    });
    group.bench_function("segment_miss", |b| {
        b.iter(|| {
            for k in misses {
                black_box(seg.get(k, LATEST).unwrap());
            }
        })
    });
    group.bench_function("tier_hit", |b| {
        b.iter(|| {
            for k in hits {
                black_box(tier.get(k, LATEST).unwrap().unwrap());
            }
        })
    });
    group.bench_function("tier_miss", |b| {
        b.iter(|| {
            for k in misses {
                black_box(tier.get(k, LATEST).unwrap());
            }
        })
    });
    group.bench_function("baseline_btreemap_hit", |b| {
        b.iter(|| {
            for k in hits {
                black_box(btree.get(k).unwrap());
            }
        })
    });
    group.bench_function("baseline_hashmap_hit", |b| {
        b.iter(|| {
            for k in hits {
                black_box(hash.get(k).unwrap());
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("segment_scan");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(SCAN_LEN as u64));
    let starts: Vec<Key> = hits[..64].iter().map(|k| Key::new(k).unwrap()).collect();
    let range = |i: usize| {
        KeyRange::new(
            std::ops::Bound::Included(starts[i % starts.len()].clone()),
            std::ops::Bound::Unbounded,
        )
    };
    let mut i = 0;
    group.bench_function("segment_iter", |b| {
        b.iter(|| {
            i += 1;
            for item in seg.iter(&range(i)).unwrap().take(SCAN_LEN) {
                black_box(item.unwrap());
            }
        })
    });
    group.bench_function("tier_scan", |b| {
        b.iter(|| {
            i += 1;
            for item in tier.scan(&range(i), LATEST).unwrap().take(SCAN_LEN) {
                black_box(item.unwrap());
            }
        })
    });
    group.bench_function("baseline_btreemap_range", |b| {
        b.iter(|| {
            i += 1;
            let start = starts[i % starts.len()].as_bytes().to_vec();
            for item in btree.range(start..).take(SCAN_LEN) {
                black_box(item);
            }
        })
    });
    group.finish();
    drop(tier);
    drop(seg);
    finish_scratch(dir);
}

fn flush(c: &mut Criterion) {
    let (pairs, _) = data(FLUSH_ENTRIES, 0xF1);
    let bytes = payload_bytes(&pairs);
    let mut group = c.benchmark_group("segment_flush");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(bytes));
    group.bench_function("tier_ingest", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let tier = SegmentTier::open(Arc::new(StdFs), dir.path(), options()).unwrap();
                let input = pairs.clone();
                let start = Instant::now();
                tier.ingest(input, Some(1)).unwrap();
                total += start.elapsed();
                drop(tier);
                finish_scratch(dir);
            }
            total
        })
    });
    let raw: Vec<u8> = pairs
        .iter()
        .flat_map(|(k, e)| {
            let mut v = k.as_bytes().to_vec();
            v.extend_from_slice(e.value().unwrap().as_bytes());
            v
        })
        .collect();
    group.bench_function("baseline_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let path = dir.path().join("plain");
                let start = Instant::now();
                let mut file = std::fs::File::create(&path).unwrap();
                for chunk in raw.chunks(1 << 20) {
                    file.write_all(chunk).unwrap();
                }
                file.sync_data().unwrap();
                total += start.elapsed();
                drop(file);
                finish_scratch(dir);
            }
            total
        })
    });
    group.finish();
}

fn compaction(c: &mut Criterion) {
    let inputs: Vec<Vec<(Key, Entry)>> = (0..4).map(|i| data(FLUSH_ENTRIES, 0xC0 + i).0).collect();
    // Measure the input size once, from a tier built the same way as in the bench.
    let probe = scratch();
    let tier = SegmentTier::open(Arc::new(StdFs), probe.path(), options()).unwrap();
    for input in &inputs {
        tier.ingest(input.clone(), None).unwrap();
    }
    let input_bytes: u64 = tier.segments().iter().map(|s| s.file_len()).sum();
    drop(tier);
    finish_scratch(probe);

    let mut group = c.benchmark_group("segment_compaction");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(input_bytes));
    group.bench_function("compact_all_4x100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let tier = SegmentTier::open(Arc::new(StdFs), dir.path(), options()).unwrap();
                for input in &inputs {
                    tier.ingest(input.clone(), None).unwrap();
                }
                let start = Instant::now();
                tier.compact_all().unwrap();
                total += start.elapsed();
                drop(tier);
                finish_scratch(dir);
            }
            total
        })
    });
    group.bench_function("baseline_read_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let mut sources = Vec::new();
                for (i, _) in inputs.iter().enumerate() {
                    let path = dir.path().join(format!("in{i}"));
                    let chunk = vec![i as u8; input_bytes as usize / inputs.len()];
                    std::fs::write(&path, &chunk).unwrap();
                    sources.push(path);
                }
                let start = Instant::now();
                let mut out = std::fs::File::create(dir.path().join("out")).unwrap();
                for path in &sources {
                    let bytes = std::fs::read(path).unwrap();
                    out.write_all(&bytes).unwrap();
                }
                out.sync_data().unwrap();
                total += start.elapsed();
                drop(out);
                finish_scratch(dir);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, gets, flush, compaction);
criterion_main!(benches);
