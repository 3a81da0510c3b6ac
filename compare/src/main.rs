//! `compare`: a db_bench-style comparison of Strata with other embedded key-value stores.
//!
//! ```text
//!   cargo run --release -- --num 1000000 [--engines strata,fjall] [--workloads fillseq,scan]
//! ```
//!
//! Each engine runs the selected workloads (see [`workloads`]) in fresh directories under
//! `--dir` (default: a new temporary directory); the report (see [`report`]) goes to standard
//! output as Markdown, progress to standard error, and `--json PATH` also writes the raw
//! numbers.

mod engines;
mod fillsync;
mod keys;
mod report;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::engines::{EngineSpec, Res};
use crate::keys::Shape;
use crate::workloads::{Params, Results, Workload};

/// db_bench-style comparison of Strata with fjall, redb, sled, LMDB, SQLite (and RocksDB with
/// `--features rocksdb`), plus a raw append+fdatasync file and an in-memory BTreeMap.
#[derive(Debug, Parser)]
#[command(name = "compare", version)]
struct Args {
    /// Entries per fill, and reads per read workload.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Bytes per key.
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Engines to run, comma-separated (default: every engine in this build).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Workloads to run, comma-separated (default: all): fillseq, fillrandom, fillsync,
    /// overwrite, readrandom, readrandom-reopen, readmissing, scan.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Directory to run in (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Durable single puts in fillsync.
    #[arg(long, default_value_t = 2000)]
    sync_num: u64,
    /// Also write the raw results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn select_engines(names: &[String]) -> Res<Vec<EngineSpec>> {
    let all = engines::all();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter().find(|s| s.name == name).copied().ok_or_else(|| {
                let known: Vec<_> = all.iter().map(|s| s.name).collect();
                format!(
                    "unknown engine {name:?}; this build has {}",
                    known.join(", ")
                )
                .into()
            })
        })
        .collect()
}

fn select_workloads(names: &[String]) -> Res<Vec<Workload>> {
    if names.is_empty() {
        return Ok(Workload::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            Workload::parse(name).ok_or_else(|| {
                let known: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("unknown workload {name:?}; known: {}", known.join(", ")).into()
            })
        })
        .collect()
}

fn run(args: Args) -> Res<()> {
    if args.key_size == 0 || args.num == 0 {
        return Err("--num and --key-size must be at least 1".into());
    }
    let engines = select_engines(&args.engines)?;
    let workloads = select_workloads(&args.workloads)?;
    // Held until the end: dropping it removes the temporary directory.
    let temp = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("strata-compare-")
                .tempdir()?,
        ),
    };
    let base = match (&args.dir, &temp) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        (None, Some(temp)) => temp.path().to_owned(),
        (None, None) => return Err("no directory to run in".into()),
    };
    let params = Params {
        num: args.num,
        sync_num: args.sync_num,
        shape: Shape {
            key_size: args.key_size,
            value_size: args.value_size,
        },
        base,
        workloads,
    };
    let machine = report::Machine::probe(&params.base);
    eprintln!(
        "{} × {} cores, {} in {}",
        machine.cpu,
        machine.cores,
        machine.filesystem,
        params.base.display()
    );
    let mut results = Results::default();
    for spec in &engines {
        eprintln!("{}:", spec.name);
        workloads::run_engine(spec, &params, &mut results);
    }
    if params.workloads.contains(&Workload::FillSync) {
        fillsync::run(&engines, &params, &mut results);
    }
    print!("{}", report::markdown(&machine, &params, &results)?);
    if let Some(path) = &args.json {
        let json = report::json(&machine, &params, &results);
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("compare: {error}");
            ExitCode::FAILURE
        }
    }
}
