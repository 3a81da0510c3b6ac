//! The `strata` command: operate and inspect a Strata store directory.
//!
//! Every command takes `--dir DIR` (default `./strata-data`). Output meant for scripts goes
//! to standard output (`get` prints exactly the value's bytes); every error is one line on
//! standard error. Exit codes: 0 success, 1 an absent key (`get`) or damage found
//! (`verify`), 2 any other failure.
//!
//! - [`commands`]: the store commands (`init`, `put`, `get`, … `compact`);
//! - [`backup`]: `checkpoint`, `restore`, `verify-backup`, `export`, `import`;
//! - [`demo`]: the main job of the README — writes at all four criticalities;
//! - [`wal`]: `wal dump`;
//! - [`output`]: how keys, values, times and failures are printed.

mod backup;
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
        /// A past commit (id, ref or `main~N`) or time (`@` and unix seconds,
        /// or YYYY-MM-DDTHH:MM:SSZ), read from the cold tier.
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
    /// Write a consistent checkpoint into DEST (absent or empty) while the store stays
    /// usable; with `--rotate`, DEST holds daily/ and weekly/ checkpoints.
    Checkpoint {
        dest: PathBuf,
        /// Take today's (and this week's) checkpoint under DEST once, dropping the oldest.
        #[arg(long)]
        rotate: bool,
        /// With `--rotate`: daily checkpoints kept.
        #[arg(long, default_value_t = 7)]
        daily: usize,
        /// With `--rotate`: weekly checkpoints kept.
        #[arg(long, default_value_t = 4)]
        weekly: usize,
    },
    /// Create the store in DIR (absent or empty) from the checkpoint SRC, after checking it.
    Restore { source: PathBuf },
    /// Check the checkpoint SRC file by file; exit 1 naming any damage.
    VerifyBackup { source: PathBuf },
    /// Write every key as JSON lines to FILE (`-`: standard output); entities and relations
    /// in their own format.
    Export { file: PathBuf },
    /// Read JSON lines from FILE (`-`: standard input); nothing is written if a line is bad.
    Import {
        file: PathBuf,
        /// Put entities and relations without a keyspace of their own into this one.
        #[arg(long)]
        keyspace: Option<String>,
        /// Put entities and relations into the keyspace named by their metadata.context.
        #[arg(long)]
        context_keyspaces: bool,
        /// Records written per atomic batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
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
        Cmd::Checkpoint {
            dest,
            rotate,
            daily,
            weekly,
        } => backup::checkpoint(&dir, &dest, rotate, strata::Rotation { daily, weekly }),
        Cmd::Restore { source } => backup::restore(&dir, &source),
        Cmd::VerifyBackup { source } => backup::verify_backup(&source),
        Cmd::Export { file } => backup::export(&dir, &file),
        Cmd::Import {
            file,
            keyspace,
            context_keyspaces,
            batch,
        } => {
            let options = strata::ImportOptions {
                keyspace,
                context_as_keyspace: context_keyspaces,
                batch_size: batch.max(1),
            };
            backup::import(&dir, &file, &options)
        }
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
