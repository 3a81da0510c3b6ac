//! Counters of the warm tier and the [`SegmentStats`] built from them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_tiering::Lsn;

/// What the warm tier has done and holds. All figures are best effort and may lag concurrent
/// work by one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentStats {
    /// Live segments.
    pub segments: usize,
    /// Segments in quarantine whose key ranges are still fenced off.
    pub quarantined: usize,
    /// Bytes of live segment files.
    pub live_bytes: u64,
    /// Bytes of the oldest live segment (the bottom of the size-tiered stack).
    pub bottom_bytes: u64,
    /// Versions in live segments, tombstones included.
    pub entries: u64,
    /// The flushed LSN the manifest records.
    pub flushed_lsn: Option<Lsn>,
    /// Segments written by ingests (flushes and `apply`).
    pub ingests: u64,
    /// Bytes of segment files written by ingests.
    pub ingested_bytes: u64,
    /// Key and value bytes ingested.
    pub ingested_payload_bytes: u64,
    /// Compactions installed.
    pub compactions: u64,
    /// Compactions whose result was thrown away (a conflicting ingest, or the tier closing).
    pub compactions_abandoned: u64,
    /// Bytes of segment files read by compactions.
    pub compaction_read_bytes: u64,
    /// Bytes of segment files written by compactions.
    pub compaction_written_bytes: u64,
    /// Versions compactions dropped: shadowed versions no snapshot can see, and tombstones and
    /// expired values at the bottom.
    pub versions_dropped: u64,
    /// Time spent in compactions (merging and installing).
    pub compaction_time: Duration,
    /// Write amplification of this tier: bytes of segment files written (ingests plus
    /// compactions) per byte of segment file ingested; 1.0 before any compaction.
    pub write_amplification: f64,
    /// Space amplification, estimated as size-tiered compaction does: live bytes over the bytes
    /// of the oldest segment, which after a full compaction holds everything once (1.0 then).
    pub space_amplification: f64,
    /// Total time ingests waited to install their segment while another installation (a
    /// compaction's or a quarantine's manifest update) held the install lock.
    pub stall_time: Duration,
    /// The longest single such wait.
    pub max_stall: Duration,
    /// Point reads a bloom filter or key range answered without reading a block.
    pub bloom_skips: u64,
    /// `get` and `scan` calls.
    pub reads: u64,
    /// Changes applied or ingested.
    pub writes: u64,
    /// Versions marked archived by [`SegmentTier::evict`](crate::SegmentTier::evict).
    pub archived: u64,
    /// Payload bytes (key and value) of archived versions whose space no full merge has
    /// reclaimed yet. The tier's reported size leaves them out, so an owner archiving for
    /// capacity does not archive them twice over while it waits for compaction. It starts at
    /// zero when the tier opens.
    pub archived_unreclaimed_bytes: u64,
}

/// The live counters behind [`SegmentStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub ingests: AtomicU64,
    pub ingested_bytes: AtomicU64,
    pub ingested_payload_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub compactions_abandoned: AtomicU64,
    pub compaction_read_bytes: AtomicU64,
    pub compaction_written_bytes: AtomicU64,
    pub versions_dropped: AtomicU64,
    pub compaction_nanos: AtomicU64,
    pub stall_nanos: AtomicU64,
    pub max_stall_nanos: AtomicU64,
    pub bloom_skips: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub archived: AtomicU64,
    pub archived_unreclaimed_bytes: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn record_stall(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.stall_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_stall_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Fills the counter fields of `stats` and derives the ratios.
    pub fn fill(&self, stats: &mut SegmentStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        stats.ingests = get(&self.ingests);
        stats.ingested_bytes = get(&self.ingested_bytes);
        stats.ingested_payload_bytes = get(&self.ingested_payload_bytes);
        stats.compactions = get(&self.compactions);
        stats.compactions_abandoned = get(&self.compactions_abandoned);
        stats.compaction_read_bytes = get(&self.compaction_read_bytes);
        stats.compaction_written_bytes = get(&self.compaction_written_bytes);
        stats.versions_dropped = get(&self.versions_dropped);
        stats.compaction_time = Duration::from_nanos(get(&self.compaction_nanos));
        stats.stall_time = Duration::from_nanos(get(&self.stall_nanos));
        stats.max_stall = Duration::from_nanos(get(&self.max_stall_nanos));
        stats.bloom_skips = get(&self.bloom_skips);
        stats.reads = get(&self.reads);
        stats.writes = get(&self.writes);
        stats.archived = get(&self.archived);
        stats.archived_unreclaimed_bytes = get(&self.archived_unreclaimed_bytes);
        stats.write_amplification = if stats.ingested_bytes == 0 {
            1.0
        } else {
            (stats.ingested_bytes + stats.compaction_written_bytes) as f64
                / stats.ingested_bytes as f64
        };
        stats.space_amplification = if stats.bottom_bytes == 0 {
            1.0
        } else {
            stats.live_bytes as f64 / stats.bottom_bytes as f64
        };
    }
}
