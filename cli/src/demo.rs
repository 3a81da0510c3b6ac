//! `strata demo`: the main job of the README. It opens the store (creating it, with a local
//! bare repository beside it as its remote), classifies four key patterns, writes one key at
//! each criticality, commits and pushes, and prints where each write landed and the
//! watermarks.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata::{Class, Config, Criticality, Receipt, Stage, Store};

use crate::output::Failure;

const WRITES: [(&str, Criticality, &str); 4] = [
    (
        "cache:weather",
        Criticality::Low,
        r#"{"city":"Lisbon","sky":"clear"}"#,
    ),
    (
        "note:groceries",
        Criticality::Medium,
        r#"{"items":["bread","olives"]}"#,
    ),
    (
        "doc:design",
        Criticality::High,
        r#"{"title":"Tiered storage","status":"draft"}"#,
    ),
    (
        "task:ship",
        Criticality::Critical,
        r#"{"title":"Ship v1","done":false}"#,
    ),
];

/// The demo's remote: a bare repository next to the store directory.
fn remote_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(
        || "strata-data".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    dir.with_file_name(format!("{name}-remote.git"))
}

fn ensure_bare(path: &Path) -> Result<(), Failure> {
    if path.join("HEAD").exists() {
        return Ok(());
    }
    let out = Command::new("git")
        .args(["init", "--bare", "--quiet", "--initial-branch=main"])
        .arg(path)
        .output()
        .map_err(|e| Failure::error(format!("run git init for the demo remote: {e}")))?;
    if !out.status.success() {
        return Err(Failure::error(format!(
            "git init --bare {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn landed(receipt: &Receipt, store: &Store) -> String {
    let Some(lsn) = receipt.lsn else {
        return "memory only (the hot cache); never logged".into();
    };
    let marks = store.router().watermarks();
    let mut places = vec![format!("WAL lsn {lsn} (fsynced)")];
    if marks.get(Stage::Warm) >= lsn {
        places.push("warm segment".into());
    }
    if receipt.target >= Stage::Cold && marks.get(Stage::Cold) >= lsn {
        let commit = marks.receipt(Stage::Cold).evidence.unwrap_or_default();
        places.push(format!("git commit {}", short(&commit)));
    }
    if receipt.target >= Stage::Remote && marks.get(Stage::Remote) >= lsn {
        let head = marks.receipt(Stage::Remote).evidence.unwrap_or_default();
        places.push(format!("remote, verified at {}", short(&head)));
    }
    places.join(" → ")
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub(crate) fn run(dir: &Path) -> Result<(), Failure> {
    let remote = remote_path(dir);
    ensure_bare(&remote)?;
    let config = match strata::config::Config::load(dir)? {
        Some(config) if config.remote.is_some() => config,
        Some(config) => Config {
            remote: Some(remote.display().to_string()),
            ..config
        },
        None => Config {
            remote: Some(remote.display().to_string()),
            ..Config::default()
        },
    };
    let store = Store::builder(dir)
        .config(config)
        .background(false)
        .open()?;
    let report = store.recovery_report();
    println!(
        "store {} opened in {:.1} ms ({}; {} WAL records replayed)",
        dir.display(),
        report.duration.as_secs_f64() * 1e3,
        if report.created {
            "new"
        } else if report.unclean_shutdown {
            "recovered from an unclean shutdown"
        } else {
            "clean"
        },
        report.records_replayed
    );
    for (key, criticality, _) in WRITES {
        let pattern = format!("{}:*", key.split(':').next().unwrap_or(key));
        store.classify(&pattern, Class::new(criticality))?;
    }
    let mut receipts = Vec::new();
    for (key, _, value) in WRITES {
        receipts.push((key, store.put(key, value)?));
    }
    store.flush()?;
    store.sync(Stage::Cold)?;
    store.sync(Stage::Remote)?;

    println!("\nwhere each write landed:");
    for (key, receipt) in &receipts {
        println!(
            "  {:<8} {:<15} {}",
            receipt.criticality.as_str(),
            key,
            landed(receipt, &store)
        );
    }
    println!("\nwatermarks:");
    let stats = store.stats();
    for mark in &stats.watermarks {
        println!(
            "  {:<7} lsn {:<6} {}",
            mark.stage,
            mark.lsn,
            mark.evidence.as_deref().map(short).unwrap_or("")
        );
    }
    println!(
        "\nread it with git:  git --git-dir {} log --stat",
        dir.join(strata::COLD_DIR).display()
    );
    println!(
        "the remote:        git --git-dir {} log --oneline",
        remote.display()
    );
    store.close()?;
    Ok(())
}
