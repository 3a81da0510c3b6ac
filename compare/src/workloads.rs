//! The workloads, with db_bench semantics, and the order they run in per engine.
//!
//! For each engine, in a fresh directory per phase:
//!
//! ```text
//!   fillseq       fresh dir, Bulk: put key 0, 1, 2, … one at a time            → close
//!   fillrandom    fresh dir, Bulk: every key once, shuffled, batches of 1,000
//!                 settle → bytes on disk after fillrandom
//!   readrandom    random existing keys, same process (warm)
//!   readmissing   random keys never written
//!   scan          every pair in key order
//!   overwrite     random existing keys again (new values), batches of 1,000
//!                 settle → bytes on disk after overwrite
//!   readreopen    close, reopen (timed), random existing keys                  → close
//! ```
//!
//! fillsync (a fresh dir, Durable: `--sync-num` single puts, each durable on return) runs
//! after all of that, on every engine at once in interleaved rounds: see [`crate::fillsync`].
//!
//! Reads check what they find: every existing key must be found, no missing one, and the scan
//! must see exactly `num` pairs; a mismatch is an error for that engine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engines::{disk_usage, Capability, Engine, EngineSpec, Mode, Res};
use crate::keys::{shuffled, Shape, SplitMix64};

/// Writes per batch in the batched workloads.
pub const BATCH: usize = 1_000;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    FillSeq,
    FillRandom,
    FillSync,
    Overwrite,
    ReadRandom,
    ReadReopen,
    ReadMissing,
    Scan,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 8] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::FillSync,
        Workload::Overwrite,
        Workload::ReadRandom,
        Workload::ReadReopen,
        Workload::ReadMissing,
        Workload::Scan,
    ];

    /// The name used in `--workloads` and the report.
    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::FillSync => "fillsync",
            Workload::Overwrite => "overwrite",
            Workload::ReadRandom => "readrandom",
            Workload::ReadReopen => "readrandom-reopen",
            Workload::ReadMissing => "readmissing",
            Workload::Scan => "scan",
        }
    }

    /// One line on what the workload does, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::FillSeq => "sequential keys, single non-durable puts",
            Workload::FillRandom => "every key once in random order, non-durable batches of 1,000",
            Workload::FillSync => "single puts, each durable (fsynced) before the next starts",
            Workload::Overwrite => "random existing keys, new values, non-durable batches of 1,000",
            Workload::ReadRandom => "random existing keys, same process as the fill (warm)",
            Workload::ReadReopen => "random existing keys after close and reopen",
            Workload::ReadMissing => "random keys that were never written",
            Workload::Scan => "every pair in key order (one op = one pair)",
        }
    }

    /// The workload named `name`.
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Params {
    pub num: u64,
    pub sync_num: u64,
    pub shape: Shape,
    /// Where each engine's phase directories are made.
    pub base: PathBuf,
    pub workloads: Vec<Workload>,
}

/// One timed workload.
#[derive(Debug, Clone)]
pub struct Timing {
    pub engine: &'static str,
    pub workload: Workload,
    pub ops: u64,
    pub elapsed: Duration,
}

impl Timing {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Microseconds per operation.
    pub fn micros_per_op(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
}

/// Bytes on disk at one point.
#[derive(Debug, Clone)]
pub struct Disk {
    pub engine: &'static str,
    /// `"fillrandom"` or `"overwrite"`.
    pub after: &'static str,
    /// Filesystem blocks, as `du` counts.
    pub allocated: u64,
    /// File lengths.
    pub apparent: u64,
    /// `num × (key + value)`.
    pub logical: u64,
    /// How long `settle` took before measuring.
    pub settle: Duration,
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Results {
    pub timings: Vec<Timing>,
    pub disk: Vec<Disk>,
    /// `(engine, open time)` of the reopen before `readrandom-reopen`.
    pub reopens: Vec<(&'static str, Duration)>,
    /// `(engine, phase, message)` of every failure.
    pub errors: Vec<(&'static str, &'static str, String)>,
    /// `(engine, workload)` pairs left out because the engine cannot run them.
    pub skipped: Vec<(&'static str, Workload)>,
}

/// Runs every selected workload on one engine, recording into `results`. A failing phase is
/// recorded as an error and the engine's next phase runs.
pub fn run_engine(spec: &EngineSpec, params: &Params, results: &mut Results) {
    let wants = |w: Workload| params.workloads.contains(&w);
    if wants(Workload::FillSeq) {
        let outcome = phase(spec, params, "fillseq", Mode::Bulk, |engine, _| {
            fill_seq(spec.name, engine, params, results)
        });
        record(results, spec.name, "fillseq", outcome);
    }
    let random_phase = [
        Workload::FillRandom,
        Workload::ReadRandom,
        Workload::ReadMissing,
        Workload::Scan,
        Workload::Overwrite,
        Workload::ReadReopen,
    ];
    if random_phase.into_iter().any(wants) {
        let outcome = phase(spec, params, "random", Mode::Bulk, |engine, dir| {
            random_phases(spec.name, engine, dir, params, results)
        });
        record(results, spec.name, "fillrandom..readrandom-reopen", outcome);
    }
    // fillsync runs on all engines at once, interleaved: see `crate::fillsync`.
}

fn record(results: &mut Results, engine: &'static str, phase: &'static str, outcome: Res<()>) {
    if let Err(error) = outcome {
        eprintln!("  {engine} {phase}: FAILED: {error}");
        results.errors.push((engine, phase, error.to_string()));
    }
}

/// Opens the engine on a fresh directory, runs `body`, closes it and removes the directory.
fn phase(
    spec: &EngineSpec,
    params: &Params,
    label: &str,
    mode: Mode,
    body: impl FnOnce(&mut dyn Engine, &Path) -> Res<()>,
) -> Res<()> {
    let dir = params.base.join(format!("{}-{label}", spec.name));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut engine = (spec.open)(&dir, mode)?;
    let outcome = body(engine.as_mut(), &dir);
    let closed = engine.close();
    std::fs::remove_dir_all(&dir)?;
    outcome.and(closed)
}

/// Records a timing and prints it.
fn timed(
    results: &mut Results,
    engine: &'static str,
    workload: Workload,
    ops: u64,
    body: impl FnOnce() -> Res<()>,
) -> Res<()> {
    eprint!("  {engine:<9} {:<18}", workload.name());
    let started = Instant::now();
    body()?;
    let timing = Timing {
        engine,
        workload,
        ops,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "{:>12.0} ops/s {:>9.2} µs/op",
        timing.ops_per_sec(),
        timing.micros_per_op()
    );
    results.timings.push(timing);
    Ok(())
}

fn fill_seq(name: &'static str, engine: &mut dyn Engine, p: &Params, r: &mut Results) -> Res<()> {
    timed(r, name, Workload::FillSeq, p.num, || {
        for index in 0..p.num {
            engine.put(&p.shape.key(index), &p.shape.value(index, 0))?;
        }
        engine.finish()
    })
}

/// Writes `indices` in batches of [`BATCH`], values of `round`.
fn write_batches(engine: &mut dyn Engine, shape: Shape, indices: &[u64], round: u64) -> Res<()> {
    let mut batch = Vec::with_capacity(BATCH);
    for chunk in indices.chunks(BATCH) {
        batch.clear();
        batch.extend(chunk.iter().map(|&i| (shape.key(i), shape.value(i, round))));
        engine.write_batch(&batch)?;
    }
    engine.finish()
}

/// Settles the engine and records its bytes on disk.
fn measure_disk(
    name: &'static str,
    engine: &mut dyn Engine,
    dir: &Path,
    after: &'static str,
    p: &Params,
    r: &mut Results,
) -> Res<()> {
    let started = Instant::now();
    engine.settle()?;
    let settle = started.elapsed();
    let (allocated, apparent) = disk_usage(dir)?;
    r.disk.push(Disk {
        engine: name,
        after,
        allocated,
        apparent,
        logical: p.shape.logical_bytes(p.num),
        settle,
    });
    Ok(())
}

/// `num` random reads, of existing keys or (`missing`) of keys never written; fails unless
/// every existing key is found with a value of the right size and no missing one is.
fn read_random(engine: &mut dyn Engine, p: &Params, seed: u64, missing: bool) -> Res<()> {
    let mut rng = SplitMix64::new(seed);
    let mut found = 0u64;
    for _ in 0..p.num {
        let index = rng.below(p.num) + if missing { p.num } else { 0 };
        if let Some(len) = engine.get(&p.shape.key(index))? {
            if len != p.shape.value_size {
                return Err(format!("key {index}: value of {len} bytes").into());
            }
            found += 1;
        }
    }
    let expected = if missing { 0 } else { p.num };
    if found != expected {
        return Err(format!("found {found} of {} keys, expected {expected}", p.num).into());
    }
    Ok(())
}

fn random_phases(
    name: &'static str,
    engine: &mut dyn Engine,
    dir: &Path,
    p: &Params,
    r: &mut Results,
) -> Res<()> {
    let wants = |w: Workload| p.workloads.contains(&w);
    let reads = engine.supports(Capability::Reads);
    let order = shuffled(p.num, 0xf111);
    // The fill is always needed; it is reported only when asked for.
    let before = r.timings.len();
    timed(r, name, Workload::FillRandom, p.num, || {
        write_batches(engine, p.shape, &order, 0)
    })?;
    if !wants(Workload::FillRandom) {
        r.timings.truncate(before);
    } else {
        measure_disk(name, engine, dir, "fillrandom", p, r)?;
    }
    for (workload, seed, missing) in [
        (Workload::ReadRandom, 1, false),
        (Workload::ReadMissing, 2, true),
    ] {
        if wants(workload) && !reads {
            r.skipped.push((name, workload));
        } else if wants(workload) {
            timed(r, name, workload, p.num, || {
                read_random(engine, p, seed, missing)
            })?;
        }
    }
    if wants(Workload::Scan) && !reads {
        r.skipped.push((name, Workload::Scan));
    } else if wants(Workload::Scan) {
        timed(r, name, Workload::Scan, p.num, || {
            let (count, _) = engine.scan()?;
            if count != p.num {
                return Err(format!("scan saw {count} pairs, expected {}", p.num).into());
            }
            Ok(())
        })?;
    }
    if wants(Workload::Overwrite) {
        let mut rng = SplitMix64::new(0x0e1);
        let targets: Vec<u64> = (0..p.num).map(|_| rng.below(p.num)).collect();
        timed(r, name, Workload::Overwrite, p.num, || {
            write_batches(engine, p.shape, &targets, 1)
        })?;
        measure_disk(name, engine, dir, "overwrite", p, r)?;
    }
    if wants(Workload::ReadReopen) {
        if !engine.supports(Capability::Reopen) || !reads {
            r.skipped.push((name, Workload::ReadReopen));
            return Ok(());
        }
        let open = engine.reopen()?;
        eprintln!(
            "  {name:<9} reopen             {:>12.1} ms",
            open.as_secs_f64() * 1e3
        );
        r.reopens.push((name, open));
        timed(r, name, Workload::ReadReopen, p.num, || {
            read_random(engine, p, 3, false)
        })?;
    }
    Ok(())
}
