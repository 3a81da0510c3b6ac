//! The report: the machine, one Markdown table per workload, bytes on disk, reopen times,
//! and the same numbers as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::engines::Res;
use crate::workloads::{Params, Results, Timing, Workload};

/// The engine every ratio is relative to.
const REFERENCE: &str = "strata";

/// What the run ran on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub filesystem: String,
}

impl Machine {
    /// Reads `/proc` and `statfs(dir)`.
    pub fn probe(dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, name)| name.trim().to_owned());
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_owned(),
                |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        Machine {
            cpu,
            cores,
            memory,
            kernel,
            filesystem: filesystem(dir),
        }
    }
}

/// The file system type of `dir`, from `statfs`'s magic number.
fn filesystem(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: `path` is a NUL-terminated string and `stat` a properly sized out-parameter.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return "unknown".into();
    }
    let magic = stat.f_type as u64;
    let name = match magic {
        0xEF53 => "ext4 (ext2/3/4)",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x6969 => "nfs",
        _ => "other",
    };
    format!("{name} (magic {magic:#x})")
}

fn human_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / 1048576.0;
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn ratio(reference: Option<f64>, other: f64) -> String {
    match reference {
        Some(reference) if other > 0.0 => format!("{:.2}", reference / other),
        _ => "–".into(),
    }
}

/// The whole report as Markdown.
pub fn markdown(machine: &Machine, params: &Params, results: &Results) -> Res<String> {
    let mut out = String::new();
    writeln!(out, "# strata-compare\n")?;
    writeln!(out, "- CPU: {} × {} cores", machine.cpu, machine.cores)?;
    writeln!(
        out,
        "- memory: {}, kernel {}",
        machine.memory, machine.kernel
    )?;
    writeln!(
        out,
        "- file system of `{}`: {}",
        params.base.display(),
        machine.filesystem
    )?;
    writeln!(
        out,
        "- num {}, key {} B, value {} B (logical {}), sync-num {}",
        params.num,
        params.shape.key_size,
        params.shape.value_size,
        human_bytes(params.shape.logical_bytes(params.num)),
        params.sync_num
    )?;
    writeln!(
        out,
        "- ratio = Strata ops/s ÷ engine ops/s (> 1: Strata is faster)\n"
    )?;
    for workload in Workload::ALL {
        let rows: Vec<&Timing> = results
            .timings
            .iter()
            .filter(|t| t.workload == workload)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let reference = rows
            .iter()
            .find(|t| t.engine == REFERENCE)
            .map(|t| t.ops_per_sec());
        writeln!(out, "## {} — {}\n", workload.name(), workload.describe())?;
        writeln!(out, "| engine | ops/s | µs/op | Strata ÷ engine |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for t in rows {
            writeln!(
                out,
                "| {} | {:.0} | {:.2} | {} |",
                t.engine,
                t.ops_per_sec(),
                t.micros_per_op(),
                ratio(reference, t.ops_per_sec())
            )?;
        }
        writeln!(out)?;
    }
    disk_table(&mut out, results)?;
    if !results.reopens.is_empty() {
        writeln!(out, "## reopen — close, then time the open\n")?;
        writeln!(out, "| engine | open time |")?;
        writeln!(out, "|---|---:|")?;
        for (engine, took) in &results.reopens {
            writeln!(out, "| {engine} | {:.1} ms |", took.as_secs_f64() * 1e3)?;
        }
        writeln!(out)?;
    }
    if !results.skipped.is_empty() || !results.errors.is_empty() {
        writeln!(out, "## not run\n")?;
        for (engine, workload) in &results.skipped {
            writeln!(out, "- {engine}: {} (not supported)", workload.name())?;
        }
        for (engine, phase, error) in &results.errors {
            writeln!(out, "- {engine}: {phase} FAILED: {error}")?;
        }
    }
    Ok(out)
}

fn disk_table(out: &mut String, results: &Results) -> Res<()> {
    if results.disk.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "## bytes on disk — after settling (flush/compact a user would call)\n"
    )?;
    writeln!(
        out,
        "| engine | after | allocated (du) | ÷ logical | apparent | settle time |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|")?;
    for after in ["fillrandom", "overwrite"] {
        for d in results.disk.iter().filter(|d| d.after == after) {
            writeln!(
                out,
                "| {} | {} | {} | {:.2} | {} | {:.2} s |",
                d.engine,
                d.after,
                human_bytes(d.allocated),
                d.allocated as f64 / d.logical.max(1) as f64,
                human_bytes(d.apparent),
                d.settle.as_secs_f64()
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// The raw results as JSON.
pub fn json(machine: &Machine, params: &Params, results: &Results) -> Value {
    json!({
        "machine": {
            "cpu": machine.cpu,
            "cores": machine.cores,
            "memory": machine.memory,
            "kernel": machine.kernel,
            "filesystem": machine.filesystem,
        },
        "params": {
            "num": params.num,
            "key_size": params.shape.key_size,
            "value_size": params.shape.value_size,
            "sync_num": params.sync_num,
            "dir": params.base.display().to_string(),
        },
        "timings": results.timings.iter().map(|t| json!({
            "engine": t.engine,
            "workload": t.workload.name(),
            "ops": t.ops,
            "seconds": t.elapsed.as_secs_f64(),
            "ops_per_sec": t.ops_per_sec(),
            "micros_per_op": t.micros_per_op(),
        })).collect::<Vec<_>>(),
        "disk": results.disk.iter().map(|d| json!({
            "engine": d.engine,
            "after": d.after,
            "allocated_bytes": d.allocated,
            "apparent_bytes": d.apparent,
            "logical_bytes": d.logical,
            "settle_seconds": d.settle.as_secs_f64(),
        })).collect::<Vec<_>>(),
        "reopen": results.reopens.iter().map(|(engine, took)| json!({
            "engine": engine,
            "open_seconds": took.as_secs_f64(),
        })).collect::<Vec<_>>(),
        "skipped": results.skipped.iter().map(|(engine, w)| json!({
            "engine": engine, "workload": w.name(),
        })).collect::<Vec<_>>(),
        "errors": results.errors.iter().map(|(engine, phase, error)| json!({
            "engine": engine, "phase": phase, "error": error,
        })).collect::<Vec<_>>(),
    })
}
