//! The store commands. Each opens the store (without a maintenance thread), does its work,
//! runs one maintenance pass so that commits and pushes whose time has come go out, and
//! closes the store cleanly.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use strata::{At, Class, Config, Stage, Store, WriteOptions};

use crate::backup::busy;
use crate::output::{iso_time, key_text, one_line, parse_time, value_json, Failure};
use crate::Level;

/// Opens an existing store; a directory without one is an error, not a new store.
pub(crate) fn open(dir: &Path) -> Result<Store, Failure> {
    strata::stored_config(dir)?;
    Ok(Store::builder(dir).background(false).open()?)
}

/// Opens an existing store to read it: read-only beside the process that holds it, if one
/// does (it then shows what that process had made durable).
pub(crate) fn open_to_read(dir: &Path) -> Result<Store, Failure> {
    strata::stored_config(dir)?;
    match Store::builder(dir).background(false).open() {
        Err(strata::Error::Locked { .. }) => Ok(Store::builder(dir)
            .background(false)
            .read_only(true)
            .open()?),
        opened => Ok(opened?),
    }
}

/// Runs one maintenance pass, reports its failures as warnings, and closes the store.
fn finish(store: Store) -> Result<(), Failure> {
    for error in store.maintain().errors {
        eprintln!("strata: warning: {error}");
    }
    store.close()?;
    Ok(())
}

pub(crate) fn init(dir: &Path, remote: Option<String>) -> Result<(), Failure> {
    if dir.join(strata::config::CONFIG_FILE).exists() {
        return Err(Failure::error(format!(
            "a store already exists in {}",
            dir.display()
        )));
    }
    let config = Config {
        remote,
        ..Config::default()
    };
    let store = Store::builder(dir)
        .config(config)
        .background(false)
        .open()?;
    println!("created a store in {}", dir.display());
    store.close()?;
    Ok(())
}

fn read_value(value: &str) -> Result<Vec<u8>, Failure> {
    if value != "-" {
        return Ok(value.as_bytes().to_vec());
    }
    let mut bytes = Vec::new();
    std::io::stdin().lock().read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn receipt_line(key: &str, receipt: &strata::Receipt) -> String {
    let mut line = format!(
        "{} {}: confirmed {}, target {}",
        receipt.criticality,
        key_text(key.as_bytes()),
        receipt.confirmed,
        receipt.target
    );
    if let Some(lsn) = receipt.lsn {
        line.push_str(&format!(", lsn {lsn}"));
    }
    if let Some(level) = receipt.degraded {
        line.push_str(&format!(
            ", NOT DURABLE (store degraded: {})",
            level.as_str()
        ));
    }
    line
}

pub(crate) fn put(
    dir: &Path,
    key: &str,
    value: &str,
    criticality: Option<Level>,
    ttl: Option<u64>,
) -> Result<(), Failure> {
    let value = read_value(value)?;
    let store = open(dir)?;
    let options = WriteOptions {
        criticality: criticality.map(Into::into),
        ttl: ttl.map(Duration::from_secs),
    };
    let receipt = store.put_with(key, value, options)?;
    println!("{}", receipt_line(key, &receipt));
    finish(store)
}

pub(crate) fn del(dir: &Path, key: &str, criticality: Option<Level>) -> Result<(), Failure> {
    let store = open(dir)?;
    let options = WriteOptions {
        criticality: criticality.map(Into::into),
        ttl: None,
    };
    let receipt = store.delete_with(key, options)?;
    println!("{}", receipt_line(key, &receipt));
    finish(store)
}

pub(crate) fn get(dir: &Path, key: &str, at: Option<&str>) -> Result<(), Failure> {
    let store = open_to_read(dir)?;
    let value = match at {
        None => store.get(key)?,
        Some(when) => {
            let at = match parse_time(when) {
                Some(secs) => At::Time(secs),
                None => At::Commit(store.resolve(when)?),
            };
            store.get_at(key, at)?
        }
    };
    store.close()?;
    match value {
        Some(value) => {
            let mut out = std::io::stdout().lock();
            out.write_all(value.as_bytes())?;
            out.flush()?;
            Ok(())
        }
        None => Err(Failure::NotFound(format!(
            "{} not found",
            key_text(key.as_bytes())
        ))),
    }
}

pub(crate) fn scan(
    dir: &Path,
    prefix: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> Result<(), Failure> {
    let store = open_to_read(dir)?;
    let mut out = std::io::stdout().lock();
    for item in store
        .scan_prefix(prefix.unwrap_or(""))?
        .take(limit.unwrap_or(usize::MAX))
    {
        let (key, value) = item?;
        if json {
            let (field, value) = value_json(value.as_bytes());
            let mut line = serde_json::Map::new();
            line.insert("key".into(), key_text(key.as_bytes()).into());
            line.insert(field.into(), value);
            writeln!(out, "{}", serde_json::Value::Object(line))?;
        } else {
            writeln!(out, "{}", key_text(key.as_bytes()))?;
        }
    }
    out.flush()?;
    drop(out);
    store.close()?;
    Ok(())
}

pub(crate) fn classify(dir: &Path, pattern: &str, level: Level) -> Result<(), Failure> {
    let store = open(dir)?;
    let criticality: strata::Criticality = level.into();
    let replaced = store.classify(pattern, Class::new(criticality))?;
    match replaced {
        Some(old) => println!("{pattern} → {criticality} (was {})", old.class.criticality),
        None => println!("{pattern} → {criticality}"),
    }
    store.close()?;
    Ok(())
}

pub(crate) fn history(dir: &Path, key: &str) -> Result<(), Failure> {
    let store = open_to_read(dir)?;
    let versions = store.history(key)?;
    let mut out = std::io::stdout().lock();
    for version in &versions {
        let value = match version.entry.value() {
            Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            None => "(deleted)".to_owned(),
        };
        writeln!(
            out,
            "{} {} lsn {} {}",
            version.commit,
            iso_time(version.time),
            version.entry.seqno,
            value
        )?;
    }
    drop(out);
    store.close()?;
    if versions.is_empty() {
        return Err(Failure::NotFound(format!(
            "{} has no versions in the cold tier",
            key_text(key.as_bytes())
        )));
    }
    Ok(())
}

pub(crate) fn sync(dir: &Path, stage: Stage) -> Result<(), Failure> {
    let store = open(dir)?;
    let what = match stage {
        Stage::Remote => "committing, pushing and verifying",
        _ => "committing",
    };
    let receipt = busy(what, || store.sync(stage))?;
    match (stage, &receipt.evidence) {
        (Stage::Remote, Some(head)) => println!("pushed and verified {head} (lsn {})", receipt.lsn),
        (_, Some(commit)) => println!("committed {commit} (lsn {})", receipt.lsn),
        (_, None) => println!("nothing to commit (lsn {})", receipt.lsn),
    }
    store.close()?;
    Ok(())
}

pub(crate) fn pull(dir: &Path) -> Result<(), Failure> {
    let store = open(dir)?;
    if busy("fetching and merging", || store.pull())? {
        println!("merged new commits from the remote");
    } else {
        println!("already up to date");
    }
    store.close()?;
    Ok(())
}

pub(crate) fn clone(url: &str, target: &Path) -> Result<(), Failure> {
    let store = busy("cloning", || {
        Store::builder(target).background(false).clone_from(url)
    })?;
    let keys = store.scan_prefix("")?.count();
    println!(
        "cloned {} into {} ({keys} keys)",
        strata::redact(url),
        target.display()
    );
    store.close()?;
    Ok(())
}

pub(crate) fn verify(dir: &Path) -> Result<(), Failure> {
    let store = open_to_read(dir)?;
    let report = busy("reading everything back", || store.verify())?;
    store.close()?;
    if report.is_clean() {
        println!(
            "ok: {} WAL records, {} segments, {} cold objects in {} commits",
            report.wal_records, report.segments, report.cold_objects, report.cold_commits
        );
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("strata: damaged: {problem}");
    }
    Err(Failure::NotFound(format!(
        "{} problems found",
        report.problems.len()
    )))
}

pub(crate) fn stats(dir: &Path, json: bool) -> Result<(), Failure> {
    let store = open_to_read(dir)?;
    let stats = store.stats();
    store.close()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| Failure::error(one_line(&e)))?
        );
        return Ok(());
    }
    println!("level        {}", stats.level);
    println!("last lsn     {}", stats.last_lsn);
    for mark in &stats.watermarks {
        let evidence = mark.evidence.as_deref().unwrap_or("");
        println!("{:<12} lsn {:<10} {evidence}", mark.stage, mark.lsn);
    }
    for tier in &stats.tiers {
        println!(
            "{:<12} {:>10} entries {:>14} bytes",
            tier.tier, tier.entries, tier.bytes
        );
    }
    for breaker in &stats.breakers {
        println!(
            "breaker {:<6} {} ({} failures)",
            breaker.tier, breaker.state, breaker.failures
        );
    }
    println!(
        "commits      {} ({} changes, {:.1} per commit)",
        stats.commits.commits, stats.commits.changes, stats.commits.average_batch
    );
    for advice in &stats.commits.advice {
        println!("  advice: {advice}");
    }
    if let Some(remote) = &stats.remote {
        println!(
            "remote       {} ({} pushes, {} failed)",
            remote.url, remote.pushes, remote.failed_pushes
        );
    }
    println!(
        "segments     {} live, {} quarantined",
        stats.segments.0, stats.segments.1
    );
    println!(
        "amplification write {:.2}, space {:.2}",
        stats.write_amplification, stats.space_amplification
    );
    Ok(())
}

pub(crate) fn compact(dir: &Path) -> Result<(), Failure> {
    let store = open(dir)?;
    let segments = busy("compacting", || store.compact())?;
    println!("compacted: {segments} segments");
    finish(store)
}
