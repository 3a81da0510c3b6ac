//! The `strata` command: operate and inspect a Strata store directory.
//!
//! It sits on top of the `strata` facade. What exists so far is the write-ahead log, so the
//! commands here are the ones the log supports: `demo`, which shows a crash and its recovery,
//! and `wal dump`, which prints the log's records as JSON lines.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};
use strata::wal::{Log, RecoveryMode, SyncPolicy, Wal, WalOptions};

#[derive(Parser)]
#[command(name = "strata", version, about = "Operate and inspect a Strata store")]
struct Cli {
    /// The store directory.
    #[arg(long, global = true, default_value = "./strata-data")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Append records durably in a child process, kill it mid-write, recover and verify.
    Demo {
        /// How many acknowledged writes to wait for before the kill.
        #[arg(long, default_value_t = 2000)]
        records: u64,
    },
    /// The child half of `demo`: appends until killed, printing each acknowledged LSN.
    #[command(hide = true)]
    DemoWriter,
    /// Write-ahead log commands.
    Wal {
        #[command(subcommand)]
        command: WalCmd,
    },
}

#[derive(Subcommand)]
enum WalCmd {
    /// Print every record as a JSON line: {"lsn":…,"bytes":…,"text":…} or {…,"hex":…}.
    Dump,
}

/// Failure of a command, printed as one line.
#[derive(Debug)]
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure(line)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wal_dir = cli.dir.join("wal");
    let result = match cli.command {
        Cmd::Demo { records } => demo(&wal_dir, records),
        Cmd::DemoWriter => demo_writer(&wal_dir),
        Cmd::Wal {
            command: WalCmd::Dump,
        } => dump(&wal_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(line)) => {
            eprintln!("strata: error: {line}");
            ExitCode::FAILURE
        }
    }
}

fn demo_record(lsn: u64) -> String {
    format!("{{\"demo\":{lsn},\"note\":\"acknowledged only after fdatasync\"}}")
}

fn demo_writer(wal_dir: &Path) -> Result<(), Failure> {
    let wal = Wal::open(wal_dir, WalOptions::default())?;
    let mut out = std::io::stdout().lock();
    loop {
        let lsn = wal.last_lsn() + 1;
        let acked = wal.append(&[demo_record(lsn).as_bytes()])?;
        writeln!(out, "ACK {acked}")?;
        out.flush()?;
    }
}

fn demo(wal_dir: &Path, records: u64) -> Result<(), Failure> {
    let before = Wal::open(wal_dir, WalOptions::default())?.last_lsn();
    println!(
        "write-ahead log in {}: {before} records before this run",
        wal_dir.display()
    );

    let exe = std::env::current_exe()?;
    let dir = wal_dir.parent().unwrap_or(Path::new("."));
    let mut child = Command::new(exe)
        .arg("--dir")
        .arg(dir)
        .arg("demo-writer")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or(Failure("child has no stdout".into()))?;
    let started = Instant::now();
    let mut last_ack = before;
    let mut acks = 0;
    for line in BufReader::new(stdout).lines() {
        if let Some(lsn) = line?.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
            last_ack = lsn;
            acks += 1;
            if acks >= records {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    child.kill()?;
    child.wait()?;
    println!(
        "child wrote {acks} durable records ({:.1} µs each) and was killed with SIGKILL mid-write",
        elapsed.as_secs_f64() * 1e6 / acks.max(1) as f64
    );

    let opened = Instant::now();
    let options = WalOptions {
        recovery_mode: RecoveryMode::PointInTime,
        sync_policy: SyncPolicy::Always,
        ..WalOptions::default()
    };
    let wal = Wal::open(wal_dir, options)?;
    let report = wal.recovery_report().clone();
    println!(
        "recovered in {:.1} ms: {} files, {} records, last LSN {}, {} records and {} bytes dropped",
        opened.elapsed().as_secs_f64() * 1e3,
        report.files_scanned,
        report.records,
        report.last_lsn,
        report.dropped_records,
        report.dropped_bytes
    );
    if let Some(damage) = &report.damage {
        println!(
            "  damage: {} at byte {} of {} (torn tail: {})",
            damage.detail,
            damage.offset,
            damage.path.display(),
            damage.torn_tail
        );
    }
    let mut missing = 0;
    let mut checked = 0;
    for record in wal.read_from(before + 1)? {
        let (lsn, bytes) = record?;
        if lsn > last_ack {
            break;
        }
        checked += 1;
        if bytes != demo_record(lsn).as_bytes() {
            missing += 1;
        }
    }
    let expected = last_ack - before;
    if checked != expected || missing != 0 {
        return Err(Failure(format!(
            "{} of {expected} acknowledged records are missing or damaged",
            expected - checked + missing
        )));
    }
    println!("verified: all {expected} acknowledged records are present and intact");
    Ok(())
}

fn dump(wal_dir: &Path) -> Result<(), Failure> {
    if !wal_dir.is_dir() {
        return Err(Failure(format!(
            "no write-ahead log at {}",
            wal_dir.display()
        )));
    }
    let options = WalOptions {
        recovery_mode: RecoveryMode::AbsoluteConsistency,
        ..WalOptions::default()
    };
    let wal = Wal::open(wal_dir, options)?;
    let mut out = std::io::stdout().lock();
    for record in wal.read_from(1)? {
        let (lsn, bytes) = record?;
        let line = match std::str::from_utf8(&bytes) {
            Ok(text) => serde_json::json!({"lsn": lsn, "bytes": bytes.len(), "text": text}),
            Err(_) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({"lsn": lsn, "bytes": bytes.len(), "hex": hex})
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
