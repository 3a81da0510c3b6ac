//! Commit cost and repository growth of the cold tier (`strata-gitsync`), beside plain git
//! measured in the same run with the same changes.
//!
//! Workload: batches of 100, 1,000 and 10,000 changes. Keys are `task:<n>`; four changes in
//! five add a new key and one in five overwrites a random earlier one, so `state/` keeps
//! growing while some keys get several versions. Values are ~100-byte JSON objects
//! (`{"title":"…","done":false,"n":…,"owner":"…","rev":…}`). The changes are generated
//! before each commit's clock starts and are the same, batch for batch, on both sides.
//!
//! - strata: `ColdStore::commit` with default options (fold when more than 10 chunk files,
//!   merge the smallest packs when more than 32) and libgit2 fsync on, as the store sets it.
//!   Each run makes 33 consecutive commits into a fresh store, so three of them fold their
//!   chunks into `state/`, and the first automatic merge (at the 31st commit) lands inside the
//!   run.
//!   `ms/commit` is the median of the commits that did neither, `worst ms` the slowest of
//!   them; `fold ms` is the median of the commits that folded (the chunk commit and the fold
//!   commit after it), `repack ms` that of the commits that merged packs; `µs/change` is a whole
//!   run's commit time over its changes, folds and merges included: the figure that matters,
//!   from which `changes/s` follows. Up to three runs, fewer once they took 20 s; the median
//!   run is reported.
//! - plain: a repository with a work tree and one file per key, holding the value's JSON, at
//!   the path the store gives the key under `state/`; per batch, the files are written, then
//!   `git add -A` and `git commit`, as `git` processes with `core.fsync=all` and
//!   `core.fsyncMethod=fsync` (the store's own settings), hooks and automatic gc off. Being
//!   slow, it commits only the first few batches, into a smaller repository than the store
//!   ends with, and does not pay for encoding: both flatter it. `µs/change` is the median
//!   batch's time over the batch size. `plain÷strata` is that over strata's `µs/change`.
//! - size: after the first run at each batch size, the apparent size of the store's repository
//!   directory as the automatic merges left it, and after a full `ColdStore::repack` (libgit2's
//!   pack builder, with deltas), against two measures of the JSON it
//!   holds: the blobs of the head tree (`state/` and `chunks/`, as `git ls-tree -r -l` sizes
//!   them), and every blob the history holds (each version of each chunk file and `state/`
//!   document, as `git cat-file` sizes them).
//!
//! Push is not measured here. Targets: strata ≤ 3 µs/change and plain÷strata ≥ 100 at 1,000
//! per batch; the repository after repack at most twice the JSON at head. The last lines of
//! the output say which are met.
//!
//! `STRATA_BENCH_QUICK=1` runs a small version (two batch sizes, one fold, few plain batches)
//! to check that the bench works; its figures mean little. Scratch directories live under the
//! target directory, on the same disk as the repository.

// A failed setup or commit is a failed benchmark: panicking is the right way to report it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_benches::SplitMix;

use strata_benches::git_baseline::{
    all_blob_bytes, dir_bytes, tree_blob_bytes, PlainGit, FSYNC_SETTINGS,
};
use strata_benches::{filesystem_of, sync_dir};
use strata_gitsync::{names, repo, ColdOptions, ColdStore, Trigger};
use strata_tiering::clock::SystemClock;
use strata_tiering::{Change, Key};
use tempfile::TempDir;

/// Where scratch directories go: under the target directory, on the disk the repository is on.
const SCRATCH_ROOT: &str = env!("CARGO_TARGET_TMPDIR");

/// How much to run: the full bench, or the smoke-check version.
struct Plan {
    sizes: &'static [usize],
    /// Consecutive commits per strata run: 33 = three fold cycles of 11 with keep_chunks = 10.
    strata_commits: usize,
    /// Strata runs per batch size: at most this many, and no new one once the runs so far
    /// took `strata_budget`, so a slow store cannot make the bench run for hours.
    strata_runs: usize,
    strata_budget: Duration,
    /// Plain batches committed at each batch size.
    plain_batches: fn(usize) -> usize,
}

const FULL: Plan = Plan {
    sizes: &[100, 1_000, 10_000],
    strata_commits: 33,
    strata_runs: 3,
    strata_budget: Duration::from_secs(20),
    plain_batches: |batch| match batch {
        0..=100 => 10,
        101..=1_000 => 5,
        _ => 3,
    },
};

const QUICK: Plan = Plan {
    sizes: &[100, 1_000],
    strata_commits: 12,
    strata_runs: 1,
    strata_budget: Duration::ZERO,
    plain_batches: |_| 2,
};

/// The change stream: new keys, with one change in five overwriting an earlier key.
struct Workload {
    rng: SplitMix,
    keys: u64,
    seqno: u64,
}

impl Workload {
    fn new() -> Workload {
        Workload {
            rng: SplitMix(0xC01D),
            keys: 0,
            seqno: 0,
        }
    }

    fn batch(&mut self, len: usize) -> Vec<Change> {
        (0..len)
            .map(|_| {
                let roll = self.rng.next();
                let n = if self.keys > 0 && roll.is_multiple_of(5) {
                    (roll >> 8) % self.keys
                } else {
                    self.keys += 1;
                    self.keys - 1
                };
                self.seqno += 1;
                let value = format!(
                    concat!(
                        r#"{{"title":"task {n:07}: review the cold tier commit path","#,
                        r#""done":{},"n":{n},"owner":"user{:03}","rev":{}}}"#
                    ),
                    roll & 2 == 0,
                    (roll >> 16) % 1000,
                    self.seqno % 1000,
                    n = n
                );
                let key = Key::new(format!("task:{n}")).unwrap();
                Change::put(key, self.seqno, value)
            })
            .collect()
    }
}

/// A fresh directory under [`SCRATCH_ROOT`].
fn scratch(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(SCRATCH_ROOT)
        .expect("create a scratch directory under CARGO_TARGET_TMPDIR")
}

/// Removes a scratch directory and makes the removal durable before the next timed fsync.
fn finish(dir: TempDir) {
    dir.close().expect("remove a scratch directory");
    sync_dir(Path::new(SCRATCH_ROOT)).expect("fsync the scratch root");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One strata run: `commits` batches of `batch` changes into a fresh store.
#[derive(Default)]
struct StrataRun {
    commit_ms: Vec<f64>,
    fold_ms: Vec<f64>,
    repack_ms: Vec<f64>,
    total: Duration,
    changes: u64,
    folds: usize,
    size: Option<SizeReport>,
}

/// The repository's size before and after a repack, and the JSON it holds.
struct SizeReport {
    before: u64,
    packs_before: usize,
    after: u64,
    repack: Duration,
    head_blobs: u64,
    head_json: u64,
    all_blobs: u64,
    all_json: u64,
}

fn strata_run(batch: usize, commits: usize, measure_size: bool) -> StrataRun {
    let dir = scratch("gitsync-bench-");
    let path = dir.path().join("cold.git");
    let options = ColdOptions {
        writer_id: Some("bench".into()),
        ..ColdOptions::default()
    };
    let store = ColdStore::open(&path, options, Arc::new(SystemClock)).unwrap();
    let mut work = Workload::new();
    let mut run = StrataRun::default();
    for _ in 0..commits {
        let changes = work.batch(batch);
        let packs_before = repo::packs(&path).unwrap().len();
        let start = Instant::now();
        let info = store.commit(&changes, Trigger::Manual, None).unwrap();
        let elapsed = start.elapsed();
        let info = info.expect("a non-empty batch makes a commit");
        assert_eq!(store.fold_error(), None, "folds and repacks succeed");
        run.total += elapsed;
        run.changes += changes.len() as u64;
        // Each commit (and fold) adds one pack; fewer packs mean the commit also repacked.
        if repo::packs(&path).unwrap().len() <= packs_before {
            run.repack_ms.push(ms(elapsed));
        } else if info.folded {
            run.fold_ms.push(ms(elapsed));
        } else {
            run.commit_ms.push(ms(elapsed));
        }
        run.folds += usize::from(info.folded);
    }
    if measure_size {
        let before = dir_bytes(&path).unwrap();
        let start = Instant::now();
        let report = store.repack().unwrap();
        let repack = start.elapsed();
        let (head_blobs, head_json) = tree_blob_bytes(&path, repo::BRANCH).unwrap();
        let (all_blobs, all_json) = all_blob_bytes(&path).unwrap();
        run.size = Some(SizeReport {
            before,
            packs_before: report.packs_before,
            after: dir_bytes(&path).unwrap(),
            repack,
            head_blobs,
            head_json,
            all_blobs,
            all_json,
        });
    }
    drop(store);
    finish(dir);
    run
}

/// Per-batch times of plain git committing the first `batches` batches of the same stream.
fn plain_run(batch: usize, batches: usize) -> Vec<Duration> {
    let dir = scratch("gitsync-plain-");
    let plain = PlainGit::init(&dir.path().join("plain")).unwrap();
    let mut work = Workload::new();
    let mut times = Vec::new();
    for i in 0..batches {
        let files: Vec<(String, Vec<u8>)> = work
            .batch(batch)
            .iter()
            .map(|c| {
                let path = names::state_path(c.key.as_bytes()).unwrap();
                (path, c.entry.value().unwrap().as_bytes().to_vec())
            })
            .collect();
        let start = Instant::now();
        plain.commit(&files, &format!("batch {i}")).unwrap();
        times.push(start.elapsed());
    }
    finish(dir);
    times
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A median in milliseconds, or `-` where nothing was measured.
fn cell(values: Vec<f64>) -> String {
    match median(values) {
        m if m.is_nan() => "-".into(),
        m => format!("{m:.1}"),
    }
}

fn main() {
    let quick = std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { QUICK } else { FULL };
    match filesystem_of(Path::new(SCRATCH_ROOT)) {
        Some((fs_type, source)) => println!("gitsync bench: scratch on {fs_type} ({source})"),
        None => println!("gitsync bench: filesystem of the scratch directories unknown"),
    }
    let sample = Workload::new().batch(1000);
    let value_bytes: usize = sample.iter().map(|c| c.entry.value().unwrap().len()).sum();
    println!(
        "gitsync bench: {} strata commits per run; values {} bytes on average; plain git with \
         {}{}\n",
        plan.strata_commits,
        value_bytes / sample.len(),
        FSYNC_SETTINGS.join(", "),
        if quick {
            " (QUICK: smoke check only)"
        } else {
            ""
        }
    );
    println!(
        "{:>6} | {:>4} {:>10} {:>9} {:>8} {:>8} {:>9} {:>9} | {:>7} {:>9} {:>9} | {:>12}",
        "batch",
        "runs",
        "changes/s",
        "ms/commit",
        "worst ms",
        "fold ms",
        "repack ms",
        "µs/change",
        "batches",
        "ms/commit",
        "µs/change",
        "plain÷strata"
    );
    // (batch, strata µs/change, plain µs/change), for the target lines.
    let mut rows: Vec<(usize, f64, f64)> = Vec::new();
    let mut sizes = Vec::new();
    for &batch in plan.sizes {
        let started = Instant::now();
        let mut runs: Vec<StrataRun> = Vec::new();
        while runs.is_empty()
            || (runs.len() < plan.strata_runs && started.elapsed() < plan.strata_budget)
        {
            runs.push(strata_run(batch, plan.strata_commits, runs.is_empty()));
        }
        let per_change = |r: &StrataRun| r.total.as_secs_f64() * 1e6 / r.changes as f64;
        let strata_us = median(runs.iter().map(per_change).collect());
        let all = |pick: fn(&StrataRun) -> &Vec<f64>| -> Vec<f64> {
            runs.iter().flat_map(|r| pick(r).iter().copied()).collect()
        };
        let plain = plain_run(batch, (plan.plain_batches)(batch));
        let plain_ms = median(plain.iter().map(|&d| ms(d)).collect());
        let plain_us = plain_ms * 1e3 / batch as f64;
        println!(
            "{:>6} | {:>4} {:>10} {:>9} {:>8.1} {:>8} {:>9} {:>9.2} | {:>7} {:>9.1} {:>9.1} | \
             {:>11.0}x",
            thousands(batch as u64),
            runs.len(),
            thousands((1e6 / strata_us) as u64),
            cell(all(|r| &r.commit_ms)),
            all(|r| &r.commit_ms).into_iter().fold(0.0, f64::max),
            cell(all(|r| &r.fold_ms)),
            cell(all(|r| &r.repack_ms)),
            strata_us,
            plain.len(),
            plain_ms,
            plain_us,
            plain_us / strata_us
        );
        rows.push((batch, strata_us, plain_us));
        if let Some(first) = runs.into_iter().next() {
            sizes.push((batch, first));
        }
    }
    println!("\nstrata: medians over all runs; µs/change counts every commit, folds and merges");
    println!("included; plain git: median batch (write the files, git add -A, git commit)\n");
    for (batch, run) in &sizes {
        let Some(size) = &run.size else { continue };
        println!(
            "size, batch {}: {} commits ({} with a fold) of {} changes; .git {} in {} packs before \
             repack, {} after (repack {:.0} ms)",
            thousands(*batch as u64),
            run.changes / *batch as u64,
            run.folds,
            thousands(run.changes),
            mib(size.before),
            size.packs_before,
            mib(size.after),
            ms(size.repack),
        );
        println!(
            "    JSON at head (state/ + chunks/ blobs, {} files): {} -> .git {:.2}x of it before \
             repack, {:.2}x after; every blob in the history ({} versions): {} -> {:.2}x",
            thousands(size.head_blobs),
            mib(size.head_json),
            size.before as f64 / size.head_json as f64,
            size.after as f64 / size.head_json as f64,
            thousands(size.all_blobs),
            mib(size.all_json),
            size.after as f64 / size.all_json as f64,
        );
    }
    println!();
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    if let Some(&(_, strata_us, plain_us)) = rows.iter().find(|r| r.0 == 1_000) {
        println!(
            "target strata <= 3 µs/change at 1,000: {strata_us:.2} µs, {}",
            verdict(strata_us <= 3.0)
        );
        let ratio = plain_us / strata_us;
        println!(
            "target plain÷strata >= 100 at 1,000: {ratio:.0}x, {}",
            verdict(ratio >= 100.0)
        );
    }
    for (batch, run) in &sizes {
        if let Some(size) = &run.size {
            println!(
                "target .git after repack <= 2x JSON at head, batch {}: {:.2}x, {}",
                thousands(*batch as u64),
                size.after as f64 / size.head_json as f64,
                verdict(size.after <= 2 * size.head_json)
            );
        }
    }
}
