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
//! This crate is the only one that knows every concrete tier; it will wire them into one
//! `Store` with recovery, transactions, keyspaces and backups. Until then it re-exports the
//! layers that exist, so applications can depend on `strata` alone.

pub mod config;
mod error;
pub mod lock;

pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use strata_tiering as tiering;
pub use strata_wal as wal;
