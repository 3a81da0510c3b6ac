//! Benchmarks of `strata-wal`, each measured beside its baseline in the same criterion group.
//!
//! - `wal_append_never`: payload bytes per second of `append` under `SyncPolicy::Never`, for
//!   100 B and 4 KiB records, beside a `BufWriter<File>` with the WAL's buffer size writing
//!   the same payloads. Each sample starts a fresh WAL (or file) and keeps appending; the
//!   timed part ends by dropping it, which hands the last buffer to the OS and closes the file
//!   on both sides. A second baseline writes the framed bytes the WAL writes (24-byte frame
//!   header included), to tell the format's cost from the log's. `wal` is the default, with
//!   full buffers written by the background thread (`WalOptions::write_behind`); `wal_inline`
//!   has the append that fills a buffer write it, to show what write-behind changes. A third
//!   baseline encodes each frame (LSN and checksums) before writing it, on one thread and
//!   without a lock: the format's own cost. The baselines never fsync; the WAL fsyncs only when it rolls to a new
//!   file every 64 MiB, as it fsyncs the old one first: that is part of its cost and stays in.
//!   After the group, the same appends run once more outside criterion to print each
//!   write-behind thread's CPU time per record beside the `BufWriter` loop's time per record,
//!   which shows which thread limits the ratio.
//! - `wal_durable_latency`: time per `append` of one 100 B record under `SyncPolicy::Always`
//!   from a single writer, beside `write_all` + `fdatasync` of 100 B on a plain file.
//! - `wal_group_commit`: records per second under `SyncPolicy::Always` with 1, 4 and 16 writer
//!   threads, each appending single-record batches of 100 B, beside one thread doing
//!   `write_all` + `fdatasync` per record.
//!
//! Setup (creating the directory, opening the WAL, creating its first file) is never timed:
//! every sample opens its WAL and writes one record durably before the clock starts.
//! Scratch directories live under the target directory, on the same disk as the repository.

// A failed setup or append is a failed benchmark: panicking is the right way to report it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_benches::{buffered_appender, filesystem_of, record, sync_dir, RawLog};
use strata_wal::{Log, SyncPolicy, Wal, WalOptions};
use tempfile::TempDir;

/// Record sizes of `wal_append_never` and how many records one iteration writes.
const NEVER_CASES: [(&str, usize, u64); 2] = [("100B", 100, 10_000), ("4KiB", 4096, 2_000)];
/// Record size of the durable benchmarks.
const DURABLE_RECORD: usize = 100;
/// Writer thread counts of `wal_group_commit`.
const WRITERS: [u64; 3] = [1, 4, 16];
/// Records one iteration of `wal_group_commit` appends, over all its threads.
const GROUP_RECORDS: u64 = 1_024;

/// Where scratch directories go: under the target directory, on the disk the repository is on.
const SCRATCH_ROOT: &str = env!("CARGO_TARGET_TMPDIR");

/// A fresh directory under [`SCRATCH_ROOT`], removed when dropped. Samples drop it after their
/// clock stops; the removal is then made durable at once, so that its cost (journal commit,
/// trimming of the freed blocks) does not land in the next sample's timed fsyncs.
struct Scratch(Option<TempDir>);

impl Scratch {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .expect("scratch directory present until drop")
            .path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            dir.close().expect("remove a scratch directory");
            sync_dir(Path::new(SCRATCH_ROOT)).expect("fsync the scratch root");
        }
    }
}

fn scratch() -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix("wal-bench-")
        .tempdir_in(SCRATCH_ROOT)
        .expect("create a scratch directory under CARGO_TARGET_TMPDIR");
    Scratch(Some(dir))
}

/// Opens a WAL in `dir` and writes one record durably, so its first file (created with a
/// file fsync, a rename and a directory fsync) exists before anything is timed.
fn open_wal(dir: &Path, sync_policy: SyncPolicy) -> Wal {
    open_wal_with(dir, sync_policy, true)
}

/// [`open_wal`] with write-behind on or off (see `WalOptions::write_behind`).
fn open_wal_with(dir: &Path, sync_policy: SyncPolicy, write_behind: bool) -> Wal {
    let options = WalOptions {
        sync_policy,
        write_behind,
        ..Default::default()
    };
    let wal = Wal::open(dir.join("wal"), options).expect("open the WAL");
    wal.append(&[b"prime"]).expect("append the priming record");
    wal.sync().expect("sync the priming record");
    wal
}

/// Creates the plain file of the fdatasync baseline and writes one record durably, as
/// [`open_wal`] does.
fn open_raw(dir: &Path, record: &[u8]) -> RawLog {
    let mut raw = RawLog::create(&dir.join("raw.log")).expect("create the baseline file");
    raw.append_durable(record).expect("prime the baseline file");
    raw
}

/// Says where the scratch directories are, so the figures can be read against the right disk.
fn scratch_filesystem(_: &mut Criterion) {
    let dir = scratch();
    match filesystem_of(dir.path()) {
        Some((fs_type, source)) => {
            eprintln!("wal benches: scratch directories on {fs_type} ({source})");
            if fs_type == "tmpfs" || fs_type == "ramfs" {
                eprintln!("wal benches: warning: {fs_type} has no disk; fsync costs nothing here");
            }
        }
        None => eprintln!("wal benches: filesystem of the scratch directories unknown"),
    }
}

fn append_never(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_never");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let buffer_size = WalOptions::default().write_buffer_size;
    for (label, len, count) in NEVER_CASES {
        let payload = record(len);
        group.throughput(Throughput::Bytes(len as u64 * count));
        for (name, write_behind) in [("wal", true), ("wal_inline", false)] {
            group.bench_with_input(BenchmarkId::new(name, label), &payload, |b, payload| {
                b.iter_custom(|iters| {
                    let dir = scratch();
                    let wal = open_wal_with(dir.path(), SyncPolicy::Never, write_behind);
                    let batch = [payload.as_slice()];
                    let start = Instant::now();
                    for _ in 0..iters * count {
                        black_box(wal.append(&batch).expect("append"));
                    }
                    // Hands the last buffer to the OS and closes the file.
                    drop(wal);
                    start.elapsed()
                });
            });
        }
        group.bench_with_input(
            BenchmarkId::new("baseline_bufwriter", label),
            &payload,
            |b, payload| bufwriter_loop(b, payload, count, buffer_size),
        );
        // The same loop writing exactly the bytes the WAL writes (frame header included), to
        // tell the cost of the format from the cost of the log's machinery.
        let mut framed = Vec::new();
        strata_wal::format::encode_frame(&mut framed, 1, true, &payload);
        group.bench_with_input(
            BenchmarkId::new("baseline_bufwriter_framed", label),
            &framed,
            |b, framed| bufwriter_loop(b, framed, count, buffer_size),
        );
        // The same loop encoding each frame (LSN, both checksums) before writing it, on one
        // thread with no lock: what the format alone costs a log that writes inline.
        group.bench_with_input(
            BenchmarkId::new("baseline_bufwriter_encoded", label),
            &payload,
            |b, payload| encoding_bufwriter_loop(b, payload, count, buffer_size),
        );
    }
    group.finish();
}

/// Where `wal_append_never`'s time goes between the two threads of write-behind, printed
/// beside the `BufWriter` loop of the same records in the same run: each thread's time on a
/// CPU per record (the first field of `/proc/self/task/<tid>/schedstat`; Linux only). The
/// WAL reaches 0.9× of the loop only if neither thread needs more than the loop's time per
/// record over 0.9, so this tells which side a shortfall is on.
fn never_thread_split(_: &mut Criterion) {
    // Under the 64 MiB at which the WAL rolls, so that no roll's fsync is in the figures.
    const BYTES: u64 = 48 << 20;
    let buffer_size = WalOptions::default().write_buffer_size;
    for (label, len, _) in NEVER_CASES {
        let records = BYTES / len as u64;
        let payload = record(len);
        let batch = [payload.as_slice()];
        let dir = scratch();
        let writers_before = wal_writer_threads();
        let wal = open_wal_with(dir.path(), SyncPolicy::Never, true);
        let writer = wal_writer_threads()
            .into_iter()
            .find(|task| !writers_before.contains(task));
        let appender = Path::new("/proc/thread-self");
        let busy_before = (cpu_ns(appender), writer.as_deref().and_then(cpu_ns));
        let start = Instant::now();
        for _ in 0..records {
            black_box(wal.append(&batch).expect("append"));
        }
        let busy_after = (cpu_ns(appender), writer.as_deref().and_then(cpu_ns));
        drop(wal);
        let wall = start.elapsed();
        drop(dir);
        let dir = scratch();
        let mut out = buffered_appender(&dir.path().join("plain.log"), buffer_size)
            .expect("create the baseline file");
        let start = Instant::now();
        for _ in 0..records {
            out.write_all(black_box(&payload)).expect("write");
        }
        out.flush().expect("flush");
        drop(out);
        let plain = start.elapsed();
        let per_record = |ns: f64| ns / records as f64;
        let busy = |before: Option<u64>, after: Option<u64>| match (before, after) {
            (Some(before), Some(after)) => {
                format!("{:.1}", per_record(after.saturating_sub(before) as f64))
            }
            _ => "unknown".into(),
        };
        let plain_ns = per_record(plain.as_nanos() as f64);
        eprintln!(
            "wal_append_never thread split, {label} x {records}: WAL {:.1} ns/record (appending \
             thread busy {}, writer thread busy {}); BufWriter loop {plain_ns:.1} ns/record, \
             so 0.9x allows {:.1} per thread; ratio {:.2}x",
            per_record(wall.as_nanos() as f64),
            busy(busy_before.0, busy_after.0),
            busy(busy_before.1, busy_after.1),
            plain_ns / 0.9,
            plain.as_secs_f64() / wall.as_secs_f64(),
        );
    }
}

/// The `/proc` directories of this process's WAL writer threads.
fn wal_writer_threads() -> Vec<std::path::PathBuf> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| task.ok().map(|task| task.path()))
        .filter(|task| {
            // The kernel keeps 15 bytes of a thread's name: "strata-wal-writer" is cut short.
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with("strata-wal-writ"))
        })
        .collect()
}

/// Nanoseconds the thread whose `/proc` directory is `task` has spent on a CPU.
fn cpu_ns(task: &Path) -> Option<u64> {
    std::fs::read_to_string(task.join("schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// [`bufwriter_loop`] writing each record as a frame encoded on the spot.
fn encoding_bufwriter_loop(
    b: &mut criterion::Bencher<'_>,
    payload: &[u8],
    count: u64,
    buffer_size: usize,
) {
    b.iter_custom(|iters| {
        let dir = scratch();
        let mut out = buffered_appender(&dir.path().join("plain.log"), buffer_size)
            .expect("create the baseline file");
        let mut frame = Vec::with_capacity(payload.len() + strata_wal::format::FRAME_HEADER_LEN);
        let start = Instant::now();
        for lsn in 1..=iters * count {
            frame.clear();
            strata_wal::format::encode_frame(&mut frame, lsn, true, black_box(payload));
            out.write_all(&frame).expect("write");
        }
        out.flush().expect("flush");
        drop(out);
        start.elapsed()
    });
}

/// The buffered-append baseline: `count` writes of `record` per iteration into a fresh file
/// through a `BufWriter` as large as the WAL's write buffer.
fn bufwriter_loop(b: &mut criterion::Bencher<'_>, record: &[u8], count: u64, buffer_size: usize) {
    b.iter_custom(|iters| {
        let dir = scratch();
        let mut out = buffered_appender(&dir.path().join("plain.log"), buffer_size)
            .expect("create the baseline file");
        let start = Instant::now();
        for _ in 0..iters * count {
            out.write_all(black_box(record)).expect("write");
        }
        out.flush().expect("flush");
        drop(out);
        start.elapsed()
    });
}

fn durable_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_durable_latency");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let payload = record(DURABLE_RECORD);
    group.bench_function("wal_always", |b| {
        b.iter_custom(|iters| {
            let dir = scratch();
            let wal = open_wal(dir.path(), SyncPolicy::Always);
            let batch = [payload.as_slice()];
            let start = Instant::now();
            for _ in 0..iters {
                black_box(wal.append(&batch).expect("append"));
            }
            let elapsed = start.elapsed();
            assert_eq!(
                wal.synced_lsn(),
                iters + 1,
                "every append is durable on return"
            );
            elapsed
        });
    });
    group.bench_function("baseline_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let dir = scratch();
            let mut raw = open_raw(dir.path(), &payload);
            let start = Instant::now();
            for _ in 0..iters {
                raw.append_durable(black_box(&payload))
                    .expect("durable append");
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_group_commit");
    group
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(GROUP_RECORDS));
    let payload = record(DURABLE_RECORD);
    group.bench_with_input(
        BenchmarkId::new("baseline_write_fdatasync", 1),
        &payload,
        |b, payload| {
            b.iter_custom(|iters| {
                let dir = scratch();
                let mut raw = open_raw(dir.path(), payload);
                let start = Instant::now();
                for _ in 0..iters * GROUP_RECORDS {
                    raw.append_durable(black_box(payload))
                        .expect("durable append");
                }
                start.elapsed()
            });
        },
    );
    for writers in WRITERS {
        group.bench_with_input(
            BenchmarkId::new("wal_always", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let dir = scratch();
                    let wal = open_wal(dir.path(), SyncPolicy::Always);
                    let per_writer = iters * (GROUP_RECORDS / writers);
                    let batch = [payload.as_slice()];
                    // The clock starts once every writer is spawned and waiting.
                    let start_line = Barrier::new(writers as usize + 1);
                    let start = std::thread::scope(|s| {
                        for _ in 0..writers {
                            s.spawn(|| {
                                start_line.wait();
                                for _ in 0..per_writer {
                                    black_box(wal.append(&batch).expect("append"));
                                }
                            });
                        }
                        start_line.wait();
                        Instant::now()
                    });
                    let elapsed = start.elapsed();
                    let total = per_writer * writers;
                    assert_eq!(wal.synced_lsn(), total + 1, "every append is durable");
                    elapsed
                });
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    scratch_filesystem,
    append_never,
    never_thread_split,
    durable_latency,
    group_commit
);
criterion_main!(benches);
