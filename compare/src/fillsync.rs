//! fillsync, run on every engine at once, in interleaved rounds.
//!
//! A durable put costs about one device flush, and on a shared or virtual disk the flush
//! latency drifts by tens of percent over minutes. Run one engine after another, each would
//! be measured in a different stretch of that drift, and the ratios would say more about
//! when an engine ran than about the engine. So every engine is opened in its own fresh
//! directory, and the `--sync-num` puts are split into [`ROUNDS`] slices; in each round every
//! engine does the next slice, starting with a different engine each round:
//!
//! ```text
//!   round 0:  strata  fjall  redb  ...  lmdb
//!   round 1:  fjall   redb   ...   lmdb strata
//!   ...
//! ```
//!
//! An engine's figure is the sum of its slices' times, so each engine samples the whole
//! stretch of drift the same way. The work is the same as one engine's fillsync alone: the
//! same keys, in the same order, each put durable before the next starts. The one difference:
//! while an engine runs its slice, the others sit open, and any background threads they
//! have may run; with 2,000 small puts there is little for them to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::engines::{Capability, Engine, EngineSpec, Mode};
use crate::keys::shuffled;
use crate::workloads::{Params, Results, Timing, Workload};

/// How many slices the puts are split into.
pub const ROUNDS: usize = 10;

struct Running {
    name: &'static str,
    dir: PathBuf,
    engine: Box<dyn Engine>,
    elapsed: Duration,
    failed: bool,
}

/// Runs fillsync on every engine in `specs`, interleaved, recording into `results`.
pub fn run(specs: &[EngineSpec], params: &Params, results: &mut Results) {
    let mut running = Vec::new();
    for spec in specs {
        let dir = params.base.join(format!("{}-fillsync", spec.name));
        let opened = (|| {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            (spec.open)(&dir, Mode::Durable)
        })();
        match opened {
            Ok(engine) if engine.supports(Capability::Sync) => running.push(Running {
                name: spec.name,
                dir,
                engine,
                elapsed: Duration::ZERO,
                failed: false,
            }),
            Ok(engine) => {
                results.skipped.push((spec.name, Workload::FillSync));
                close(spec.name, engine, &dir, results);
            }
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                fail(results, spec.name, error.to_string());
            }
        }
    }
    if running.is_empty() {
        return;
    }
    eprintln!(
        "fillsync: {} engines, {} durable puts each, in {ROUNDS} interleaved rounds",
        running.len(),
        params.sync_num
    );
    let order = shuffled(params.sync_num, 0x5eed);
    let slice = order.len().div_ceil(ROUNDS).max(1);
    for (round, keys) in order.chunks(slice).enumerate() {
        for turn in 0..running.len() {
            let at = (round + turn) % running.len();
            let engine = &mut running[at];
            if engine.failed {
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = keys.iter().try_for_each(|&index| {
                engine
                    .engine
                    .put_sync(&params.shape.key(index), &params.shape.value(index, 0))
            });
            engine.elapsed += started.elapsed();
            if let Err(error) = outcome {
                engine.failed = true;
                fail(results, engine.name, error.to_string());
            }
        }
    }
    for engine in running {
        if !engine.failed {
            let timing = Timing {
                engine: engine.name,
                workload: Workload::FillSync,
                ops: params.sync_num,
                elapsed: engine.elapsed,
            };
            eprintln!(
                "  {:<9} {:<18}{:>12.0} ops/s {:>9.2} µs/op",
                engine.name,
                "fillsync",
                timing.ops_per_sec(),
                timing.micros_per_op()
            );
            results.timings.push(timing);
        }
        close(engine.name, engine.engine, &engine.dir, results);
    }
}

fn close(name: &'static str, engine: Box<dyn Engine>, dir: &PathBuf, results: &mut Results) {
    let closed = engine.close();
    let removed = std::fs::remove_dir_all(dir);
    if let Err(error) = closed {
        fail(results, name, error.to_string());
    } else if let Err(error) = removed {
        fail(results, name, error.to_string());
    }
}

fn fail(results: &mut Results, engine: &'static str, message: String) {
    eprintln!("  {engine} fillsync: FAILED: {message}");
    results.errors.push((engine, "fillsync", message));
}
