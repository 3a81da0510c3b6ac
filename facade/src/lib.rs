//! `strata`: the embedded tiered key-value store.
//!
//! ```text
//!   Store::open(dir) ──► Router (strata-tiering)
//!                          ├─ hot    strata-memtable
//!                          ├─ Log    strata-wal        <dir>/wal/
//!                          ├─ warm   strata-segment    <dir>/segments/
//!                          └─ cold   strata-gitsync    <dir>/cold.git/ ──► remote
//! ```
//!
//! This crate is the only one that knows every concrete tier; it wires them into one
//! [`Store`]:
//!
//! - [`open`](StoreBuilder): the builder, the wiring, and recovery ([`RecoveryReport`]);
//! - [`Store`]: reads, writes, batches, snapshots, scans, rules, history, `sync(stage)`;
//! - maintenance: a thread (or [`Store::maintain`]) that flushes, commits, pushes, checks
//!   health and trims the WAL;
//! - [`Stats`]: sizes, watermarks, breakers, commit metrics, amplification.
//!
//! ```no_run
//! # fn main() -> strata::Result<()> {
//! use strata::{Class, Criticality, Store};
//!
//! let store = Store::open("./strata-data")?;
//! store.classify("task:*", Class::new(Criticality::Critical))?;
//! let receipt = store.put("task:1", r#"{"title":"ship it"}"#)?;
//! assert!(receipt.is_durable());
//! let value = store.get("task:1")?.expect("just written");
//! assert_eq!(value.as_bytes(), br#"{"title":"ship it"}"#);
//! store.close()
//! # }
//! ```

mod admin;
mod archive;
mod backup;
mod base64;
pub mod config;
mod error;
mod export;
mod keyspace;
pub mod lock;
mod maintain;
mod open;
mod probes;
mod reader;
mod rebuild;
mod rotate;
mod scan;
mod stats;
mod store;
mod txn;
mod typed;

pub use crate::admin::{stored_config, VerifyReport};
pub use crate::backup::{
    verify_backup, verify_backup_with_progress, BackupReport, Checkpoint, CheckpointFile,
    RestoreReport, BUNDLE_FILE, CHECKPOINT_FILE,
};
pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::export::{DanglingRelation, ExportReport, GraphReport, ImportOptions, ImportReport};
pub use crate::keyspace::Keyspace;
pub use crate::maintain::MaintenanceReport;
pub use crate::open::{RecoveryReport, StoreBuilder, CLOSED_FILE, COLD_DIR, RULES_FILE};
pub use crate::rotate::{Rotation, RotationReport};
pub use crate::scan::Scan;
pub use crate::stats::{Stats, StoreHealth, TierHealth, TierSize};
pub use crate::store::{Batch, Snapshot, Store, WriteOptions};
pub use crate::txn::{Isolation, Transaction};
pub use crate::typed::Codec;
pub use strata_gitsync::{redact, At, Oid, Transport, Version};
pub use strata_tiering as tiering;
pub use strata_tiering::router::{
    ArchiveReport, Class, DegradationLevel, ReadLevel, ReadOptions, ReadOutcome, Receipt, Rule,
    Source, Stage, StageReceipt,
};
pub use strata_tiering::{Criticality, Key, KeyRange, Value};
pub use strata_wal as wal;
