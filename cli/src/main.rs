//! The `strata` command: operate and inspect a Strata store directory.
//!
//! Every command takes `--dir DIR` (default `./strata-data`). Output meant for scripts goes
//! to standard output (`get` prints exactly the value's bytes); every error is one line on
//! standard error. Exit codes: 0 success, 1 an absent key (`get`) or damage found
//! (`verify`), 2 any other failure.
//!
//! - [`commands`]: the store commands (`init`, `put`, `get`, … `compact`);
//! - [`demo`]: the main job of the README — writes at all four criticalities;
//! - [`wal`]: `wal dump`;
//! - [`output`]: how keys, values, times and failures are printed.

mod commands;
mod demo;
mod output;
mod wal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "strata", version, about = "Operate and inspect a Strata store")]
struct Cli {
    /// The store directory.
    #[arg(long, global = true, default_value = "./strata-data")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

/// A criticality on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl From<Level> for strata::Criticality {
    fn from(level: Level) -> Self {
        match level {
            Level::Low => strata::Criticality::Low,
            Level::Medium => strata::Criticality::Medium,
            Level::High => strata::Criticality::High,
            Level::Critical => strata::Criticality::Critical,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the store.
    Init {
        /// The git remote CRITICAL writes are pushed to.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Set KEY to VALUE (`-` reads standard input).
    Put {
        key: String,
        value: String,
        /// Write at this criticality instead of the one the rules give.
        #[arg(long, value_enum)]
        criticality: Option<Level>,
        /// Seconds until the value expires.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print exactly KEY's value; exit 1 if it is absent.
    Get {
        key: String,
        /// A past commit (id, ref or `main~N`) or time (unix seconds or
        /// YYYY-MM-DDTHH:MM:SSZ), read from the cold tier.
        #[arg(long)]
        at: Option<String>,
    },
    /// Delete KEY.
    Del {
        key: String,
        /// Delete at this criticality instead of the one the rules give.
        #[arg(long, value_enum)]
        criticality: Option<Level>,
    },
    /// List keys in order.
    Scan {
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line, with the value.
        #[arg(long)]
        json: bool,
    },
    /// Add a classification rule: keys matching PATTERN (a key, or a glob such as
    /// `task:*`; `\*`, `\?`, `\\` and `\xNN` escape) get LEVEL.
    Classify {
        pattern: String,
        #[arg(value_enum)]
        level: Level,
    },
    /// List KEY's versions in the cold tier, oldest first.
    History { key: String },
    /// Return once everything acknowledged so far is committed to git.
    Sync,
    /// Return once everything committed is pushed to the remote and verified there.
    Push,
    /// Fetch the remote and merge other writers' commits.
    Pull,
    /// Create a store in DIR from the remote at URL.
    Clone { url: String, target: PathBuf },
    /// Read everything back; exit 1 naming any damage.
    Verify,
    /// Print the store's statistics.
    Stats {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge the warm segments into one.
    Compact,
    /// Write at all four criticalities, with a local bare repository as the remote, and
    /// show where each write landed.
    Demo,
    /// Write-ahead log commands.
    Wal {
        #[command(subcommand)]
        command: WalCmd,
    },
}

#[derive(Subcommand)]
enum WalCmd {
    /// Print every record as a JSON line.
    Dump,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir;
    let result = match cli.command {
        Cmd::Init { remote } => commands::init(&dir, remote),
        Cmd::Put {
            key,
            value,
            criticality,
            ttl,
        } => commands::put(&dir, &key, &value, criticality, ttl),
        Cmd::Get { key, at } => commands::get(&dir, &key, at.as_deref()),
        Cmd::Del { key, criticality } => commands::del(&dir, &key, criticality),
        Cmd::Scan {
            prefix,
            limit,
            json,
        } => commands::scan(&dir, prefix.as_deref(), limit, json),
        Cmd::Classify { pattern, level } => commands::classify(&dir, &pattern, level),
        Cmd::History { key } => commands::history(&dir, &key),
        Cmd::Sync => commands::sync(&dir, strata::Stage::Cold),
        Cmd::Push => commands::sync(&dir, strata::Stage::Remote),
        Cmd::Pull => commands::pull(&dir),
        Cmd::Clone { url, target } => commands::clone(&url, &target),
        Cmd::Verify => commands::verify(&dir),
        Cmd::Stats { json } => commands::stats(&dir, json),
        Cmd::Compact => commands::compact(&dir),
        Cmd::Demo => demo::run(&dir),
        Cmd::Wal {
            command: WalCmd::Dump,
        } => wal::dump(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
