//! `strata-segment`: the warm tier of the Strata store — immutable, memory-mapped, sorted
//! segment files with a manifest, size-tiered compaction and quarantine of damaged files.
//!
//! ```text
//!            hot tier (memtable)          WAL (the source of truth for MEDIUM+ writes)
//!                  │ freeze + flush              ▲ replay from flushed LSN after a crash
//!                  ▼                             │
//!   ┌──────────────────────────── warm: this crate ─────────────────────────────────┐
//!   │ SegmentTier::ingest(sorted entries, flushed LSN)     Tier::get / scan          │
//!   │        │                                                 │ newest first,     │
//!   │        ▼                                                 ▼ merged            │
//!   │  SegmentWriter ──► 00000000000000000007.seg ──► Segment (mmap, bloom, index)  │
//!   │                           │ (0400, immutable)            ▲                    │
//!   │  MANIFEST ◄── install ────┘   compaction: merge ─────────┘                    │
//!   │  (live segments, flushed LSN)  quarantine/: segments that failed a checksum   │
//!   └────────────────────────────────────────────────────────────────────────────────┘
//!                  │ reads that miss fall through
//!                  ▼
//!            cold tier (git)
//! ```
//!
//! The crate depends only on `strata-tiering` (for the [`Tier`](strata_tiering::Tier) contract,
//! the shared types and the I/O seam) and can be used on its own. Every file operation goes
//! through [`Fs`](strata_tiering::io::Fs), so tests run the same code over a fault-injecting and
//! a power-losing filesystem.
//!
//! # Pieces
//!
//! - [`format`](mod@format): the segment file, byte by byte; [`SegmentWriter`] writes one and [`Segment`]
//!   reads one (memory-mapped, see [`mmap`] for why that is sound and what remains outside our
//!   control).
//! - [`manifest`]: the list of live segments and the flushed LSN, replaced atomically.
//! - [`SegmentTier`]: the tier. `ingest` is the memtable flush; `apply` writes a batch as a
//!   segment; reads merge the segments; [`compaction`] merges them in the background.
//! - [`open`]: what opening a directory recovers after a crash.
//!
//! # Durability
//!
//! A segment file is written under a temporary name, fsynced, made read-only, renamed and the
//! directory fsynced; only then does a manifest update (same dance) make it live. A crash at any
//! moment leaves either the old or the new set of segments. `ingest` and `apply` are durable
//! when they return.
//!
//! # Corruption
//!
//! Every block, the index, the filter, the footer and the manifest carry a CRC32. A segment that
//! fails a check is moved to `<dir>/quarantine/` and leaves the live set; the read that found it
//! fails with a corruption error. Its key range (kept in the manifest) stays **fenced**: reads
//! of keys in that range fail with [`SegmentError::Quarantined`] rather than fall through to
//! older versions that could be stale, unless a version newer than anything the segment held
//! is found. Everything outside the range is served as usual, and `health` reports the segment.
//! The owner rebuilds its versions (from the WAL and the cold tier), applies them, and calls
//! [`SegmentTier::release_quarantine`].

pub mod compaction;
pub mod format;
pub mod manifest;
pub mod mmap;
pub mod open;

mod block;
mod bloom;
pub mod checkpoint;
mod error;
mod hash;
mod index;
mod iter;
mod options;
mod prefetch;
mod read;
mod segment;
mod state;
mod stats;
mod tier;
mod worker;
mod writer;

pub use crate::checkpoint::{verify_dir, DirVerification, SegmentCheckpoint};
pub use crate::compaction::CompactionReport;
pub use crate::error::{Result, SegmentError};
pub use crate::format::{EntryRef, Footer, SegmentId};
pub use crate::iter::SegmentIter;
pub use crate::options::{Clock, CompactionOptions, SegmentOptions};
pub use crate::read::ScanIter;
pub use crate::segment::{ReadMode, Segment};
pub use crate::state::{QuarantinedSegment, QUARANTINE_DIR};
pub use crate::stats::SegmentStats;
pub use crate::tier::SegmentTier;
pub use crate::writer::{
    write_segment, SegmentInfo, SegmentWriter, WriterOptions, SEGMENT_FILE_MODE,
};
