//! Backups and data exchange: `checkpoint`, `restore`, `verify-backup`, `export` and
//! `import`. Their progress shows on standard error while it is a terminal (indicatif draws
//! nothing otherwise), so scripts see only the result lines.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use strata::{ImportOptions, Rotation, Store};

use crate::commands::open;
use crate::output::Failure;

/// Runs `work` under a spinner that says `what`.
pub(crate) fn busy<T>(what: &str, work: impl FnOnce() -> T) -> T {
    let bar = spinner("{spinner} {msg}");
    bar.set_message(what.to_owned());
    let result = work();
    bar.finish_and_clear();
    result
}

/// A spinner showing the current step, or a running count.
fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub(crate) fn checkpoint(
    dir: &Path,
    dest: &Path,
    rotate: bool,
    rotation: Rotation,
) -> Result<(), Failure> {
    let store = open(dir)?;
    let bar = spinner("{spinner} checkpoint: {msg}");
    if rotate {
        bar.set_message("rotating");
        let report = store.checkpoint_rotating(dest, rotation);
        bar.finish_and_clear();
        let report = report?;
        for path in &report.written {
            println!("wrote {}", path.display());
        }
        for path in &report.removed {
            println!("removed {}", path.display());
        }
        if report.written.is_empty() {
            println!("today's checkpoint exists: {}", report.today.display());
        }
    } else {
        let written =
            store.checkpoint_with_progress(dest, &mut |step| bar.set_message(step.to_owned()));
        bar.finish_and_clear();
        let checkpoint = written?;
        println!(
            "wrote {} ({} files, {}): flushed lsn {}, log through lsn {}, committed lsn {}",
            dest.display(),
            checkpoint.files.len(),
            mib(checkpoint.bytes()),
            checkpoint.flushed_lsn,
            checkpoint.wal_synced_lsn,
            checkpoint.committed_lsn
        );
    }
    store.close()?;
    Ok(())
}

fn print_problems(problems: &[String]) -> Result<(), Failure> {
    if problems.is_empty() {
        return Ok(());
    }
    for problem in problems {
        eprintln!("strata: damaged: {problem}");
    }
    Err(Failure::NotFound(format!(
        "{} problems found",
        problems.len()
    )))
}

pub(crate) fn verify_backup(source: &Path) -> Result<(), Failure> {
    let bar = spinner("{spinner} verify: {msg}");
    let report =
        strata::verify_backup_with_progress(source, &mut |step| bar.set_message(step.to_owned()));
    bar.finish_and_clear();
    let report = report?;
    print_problems(&report.problems)?;
    println!(
        "ok: {} segments, {} WAL records, {} cold objects in {} commits",
        report.segments, report.wal_records, report.cold_objects, report.cold_commits
    );
    Ok(())
}

pub(crate) fn restore(dir: &Path, source: &Path) -> Result<(), Failure> {
    let bar = spinner("{spinner} restore: {msg}");
    let restored = Store::builder(dir)
        .background(false)
        .restore_from_with_progress(source, &mut |step| bar.set_message(step.to_owned()));
    bar.finish_and_clear();
    let (store, report) = restored?;
    println!(
        "restored {} into {} ({} files, {}) in {:.1} s",
        source.display(),
        dir.display(),
        report.files,
        mib(report.bytes),
        report.duration.as_secs_f64()
    );
    store.close()?;
    Ok(())
}

pub(crate) fn export(dir: &Path, file: &Path) -> Result<(), Failure> {
    let store = crate::commands::open_to_read(dir)?;
    let bar = spinner("{spinner} export: {pos} lines");
    let mut tick = |lines: u64| bar.set_position(lines);
    let report = if file == Path::new("-") {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let report = store.export_with_progress(&mut out, &mut tick);
        report.and_then(|r| {
            out.flush()
                .map(|()| r)
                .map_err(|e| io_error("write", "-", e))
        })
    } else {
        let created = File::create_new(file).map_err(|e| io_error("create", file, e))?;
        let mut out = BufWriter::new(created);
        let report = store.export_with_progress(&mut out, &mut tick);
        report.and_then(|r| {
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map(|()| r)
                .map_err(|e| io_error("write", file, e))
        })
    };
    bar.finish_and_clear();
    let report = report?;
    eprintln!(
        "exported {} entities, {} relations, {} values ({})",
        report.entities,
        report.relations,
        report.values,
        mib(report.bytes)
    );
    store.close()?;
    Ok(())
}

fn io_error(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> strata::Error {
    strata::Error::Io {
        op,
        path: path.as_ref().to_owned(),
        source,
    }
}

pub(crate) fn import(dir: &Path, file: &Path, options: &ImportOptions) -> Result<(), Failure> {
    let store = open(dir)?;
    let bar = spinner("{spinner} import: {pos} records written");
    let mut tick = |records: u64| bar.set_position(records);
    let report = if file == Path::new("-") {
        let mut input = std::io::stdin().lock();
        store.import_with_progress(&mut input, options, &mut tick)
    } else {
        let opened = File::open(file).map_err(|e| io_error("open", file, e))?;
        let mut input = BufReader::new(opened);
        store.import_with_progress(&mut input, options, &mut tick)
    };
    bar.finish_and_clear();
    let report = report?;
    for dangling in &report.graph.dangling {
        eprintln!("strata: warning: {dangling}");
    }
    if report.degraded > 0 {
        eprintln!(
            "strata: warning: {} records were accepted while the store was degraded and are \
             not in the log yet",
            report.degraded
        );
    }
    println!(
        "imported {} entities, {} relations, {} values; {} relations point at missing entities",
        report.entities,
        report.relations,
        report.values,
        report.graph.dangling.len()
    );
    // Imported writes go down the pipeline now, as for `put`.
    for error in store.maintain().errors {
        eprintln!("strata: warning: {error}");
    }
    store.close()?;
    Ok(())
}
