//! [`SegmentTier`]: the warm tier, a directory of immutable segments behind the `Tier` contract.
//!
//! ```text
//!  ingest(sorted entries, flushed LSN) ─► SegmentWriter ─► <id>.seg (fsync, rename, fsync dir)
//!                                                  └─► install: MANIFEST += segment, flushed LSN
//!  apply(batch) ─► sort + dedup ─► ingest(.., None)
//!  get / scan ─► current Version (segments newest first, merged) ─► quarantine fences
//!  compaction (background thread or compact()) ─► merge ─► install: MANIFEST inputs → output
//! ```

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_tiering::io::Fs;
use strata_tiering::{
    Change, Entry, EntryIter, Health, Key, KeyRange, Lsn, SeqNo, Tier, TierStats,
};

use crate::checkpoint::SegmentCheckpoint;
use crate::compaction::CompactionReport;
use crate::error::{Result, SegmentError};
use crate::format::{internal_cmp, EntryRef, SegmentId};
use crate::open;
use crate::options::SegmentOptions;
use crate::read::ScanIter;
use crate::segment::Segment;
use crate::state::{lock, Inner, QuarantinedSegment, Version};
use crate::stats::{Counters, SegmentStats};
use crate::worker::Worker;
use crate::writer::SegmentWriter;

/// The warm tier: immutable sorted segments in one directory, a manifest, compaction and
/// quarantine. See the crate docs for the whole picture.
///
/// One `SegmentTier` per directory and process: the store's directory lock guarantees that.
#[derive(Debug)]
pub struct SegmentTier {
    inner: Arc<Inner>,
    worker: Option<Worker>,
}

impl SegmentTier {
    /// Opens (creating if needed) the segment directory `dir` through `fs`.
    ///
    /// Recovers what a crash left (see [`open`](crate::open) for the rules): temporary files are
    /// removed, the manifest is read, damaged or missing segments are quarantined, unreferenced
    /// segment files are removed. Fails only if the directory or the manifest cannot be used.
    pub fn open(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: SegmentOptions) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let opened = open::open(&fs, &dir, &options)?;
        let background = options.background_compaction && !options.read_only;
        let inner = Arc::new(Inner::new(
            fs,
            dir,
            options,
            opened.version,
            opened.next_id,
            opened.generation,
            opened.problems,
        ));
        let worker = if background {
            let worker = Worker::start(Arc::clone(&inner))
                .map_err(|e| SegmentError::io("start compaction thread", &inner.dir, e))?;
            worker.notify();
            Some(worker)
        } else {
            None
        };
        Ok(SegmentTier { inner, worker })
    }

    /// The segment directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether the tier was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.options.read_only
    }

    fn writable(&self, op: &'static str) -> Result<()> {
        if self.is_read_only() {
            return Err(SegmentError::ReadOnly {
                path: self.inner.dir.clone(),
                op,
            });
        }
        Ok(())
    }

    /// Writes `entries` as one new segment and records `flushed_lsn` (if given and higher than
    /// the one recorded) in the same manifest update: the flush of a frozen memtable.
    ///
    /// Entries must come in segment order (keys ascending, a key's versions newest first, no
    /// `(key, seqno)` twice); anything else is [`SegmentError::OutOfOrder`] and installs
    /// nothing. Returns the new segment's id, or `None` when `entries` was empty (then only the
    /// LSN is recorded). On any error nothing is installed and the flushed LSN is unchanged.
    ///
    /// An error can come after the manifest was renamed into place but before the directory
    /// fsync: the flush may then survive a crash though it was reported failed (replaying it is
    /// harmless). Either way the in-memory flushed LSN has not moved, and the caller must retry
    /// the flush (or keep its WAL records) before ingesting anything that claims a higher LSN.
    ///
    /// Never waits for a running compaction: only for another installation's manifest update.
    pub fn ingest<I>(&self, entries: I, flushed_lsn: Option<Lsn>) -> Result<Option<SegmentId>>
    where
        I: IntoIterator<Item = (Key, Entry)>,
    {
        self.writable("ingest")?;
        self.write_and_install(
            |writer| {
                for (key, entry) in entries {
                    writer.add(&key, &entry)?;
                }
                Ok(())
            },
            flushed_lsn,
        )
    }

    /// Marks versions as archived: the cold tier holds them now, so the warm tier stops
    /// answering for them and its compactions reclaim their space.
    ///
    /// Each change's `(key, seqno)` gets an archival marker (see [`format`](crate::format)) in one new
    /// segment. A read of the key at a snapshot that sees the marker finds nothing in warm,
    /// and falls through to cold. A version of the key newer than `seqno` is untouched and
    /// keeps hiding the marker. Several seqnos of one key keep the highest. Returns the new
    /// segment's id, or `None` when `archived` is empty. On error nothing is installed.
    pub fn evict(&self, archived: &[Change]) -> Result<Option<SegmentId>> {
        self.writable("evict")?;
        let mut markers: Vec<(&Key, SeqNo)> =
            archived.iter().map(|c| (&c.key, c.entry.seqno)).collect();
        markers.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        markers.dedup_by(|later, first| later.0 == first.0);
        if markers.is_empty() {
            return Ok(None);
        }
        let id = self.write_and_install(
            |writer| {
                for (key, seqno) in &markers {
                    writer.add_ref(&EntryRef {
                        key: key.as_bytes(),
                        seqno: *seqno,
                        tombstone: false,
                        archived: true,
                        expires_at: None,
                        value: &[],
                    })?;
                }
                Ok(())
            },
            None,
        )?;
        let counters = &self.inner.counters;
        Counters::add(&counters.archived, markers.len() as u64);
        let payload: usize = archived
            .iter()
            .map(|c| c.key.as_bytes().len() + c.entry.value().map_or(0, |v| v.len()))
            .sum();
        Counters::add(&counters.archived_unreclaimed_bytes, payload as u64);
        Ok(id)
    }

    /// Writes one new segment with `fill` and installs it with `flushed_lsn`.
    fn write_and_install(
        &self,
        fill: impl FnOnce(&mut SegmentWriter) -> Result<()>,
        flushed_lsn: Option<Lsn>,
    ) -> Result<Option<SegmentId>> {
        let inner = &self.inner;
        let id = inner.allocate_id();
        let mut writer = SegmentWriter::create(
            Arc::clone(&inner.fs),
            &inner.dir,
            id,
            inner.options.writer.clone(),
        )?;
        fill(&mut writer)?;
        let segment = if writer.entry_count() > 0 {
            let info = writer.finish()?;
            match Segment::open(inner.fs.as_ref(), &info.path, inner.options.read_mode) {
                Ok(seg) => Some(Arc::new(seg)),
                Err(e) => {
                    let _ = inner.fs.remove_file(&info.path);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut installer = inner.lock_install(true);
        let current = inner.current();
        // LSN 0 means "no record": the manifest cannot tell it from none.
        let flushed = current.flushed_lsn.max(flushed_lsn.filter(|&lsn| lsn > 0));
        if segment.is_none() && flushed == current.flushed_lsn {
            return Ok(None);
        }
        let mut next = Version::clone(&current);
        next.segments.extend(segment.iter().cloned());
        next.flushed_lsn = flushed;
        if let Err(failure) = inner.write_manifest(&mut installer, &next) {
            drop(installer);
            if let (Some(seg), false) = (&segment, failure.maybe_installed) {
                let _ = inner.fs.remove_file(seg.path());
            }
            return Err(failure.error);
        }
        inner.set_current(next);
        drop(installer);
        if let Some(seg) = &segment {
            let counters = &inner.counters;
            Counters::add(&counters.ingests, 1);
            Counters::add(&counters.ingested_bytes, seg.file_len());
            Counters::add(&counters.ingested_payload_bytes, seg.footer().payload_bytes);
            Counters::add(&counters.writes, seg.footer().entry_count);
            if let Some(worker) = &self.worker {
                worker.notify();
            }
        }
        Ok(segment.map(|s| s.id()))
    }

    /// The highest WAL LSN whose writes are in live segments, as the manifest records it.
    pub fn flushed_lsn(&self) -> Option<Lsn> {
        self.inner.current().flushed_lsn
    }

    /// Tells compaction that no snapshot below `seqno` is open any more, so versions only such
    /// snapshots could see may be dropped, and tombstones and expired values at or below it may
    /// go at the bottom. Until this is called, compaction drops nothing.
    ///
    /// If tiers below this one (the cold tier) may still hold older versions of keys this tier
    /// has tombstones for, pass the lower of the oldest snapshot and the LSN those tiers have
    /// caught up to: a dropped tombstone must not uncover their older values.
    pub fn set_oldest_snapshot(&self, seqno: SeqNo) {
        self.inner.set_gc_horizon(seqno);
    }

    /// Runs compactions until the picker finds nothing to do; returns what each did.
    pub fn compact(&self) -> Result<Vec<CompactionReport>> {
        self.writable("compact")?;
        let mut reports = Vec::new();
        let rounds = self.inner.current().segments.len() * 2 + 8;
        for _ in 0..rounds {
            match self.inner.compact_once(false)? {
                Some(report) => reports.push(report),
                None => break,
            }
        }
        Ok(reports)
    }

    /// Waits until the background compaction thread (if any) has nothing left to do.
    pub fn wait_for_compactions(&self) {
        if let Some(worker) = &self.worker {
            worker.wait_idle();
        }
    }

    /// Merges every live segment into one (a full, bottom-most compaction).
    pub fn compact_all(&self) -> Result<Option<CompactionReport>> {
        self.writable("compact")?;
        self.inner.compact_once(true)
    }

    /// Checks every block of every live segment; damaged segments are quarantined. Returns the
    /// ids quarantined by this call.
    pub fn verify(&self) -> Result<Vec<SegmentId>> {
        let mut quarantined = Vec::new();
        for seg in &self.inner.current().segments {
            if let Err(e) = seg.verify() {
                if !e.is_corruption() {
                    return Err(e);
                }
                self.inner.quarantine(seg, &e);
                quarantined.push(seg.id());
            }
        }
        Ok(quarantined)
    }

    /// Writes a consistent checkpoint of the live segments and the manifest into `dest`
    /// (absent or empty): hard links, so it costs no copying. See
    /// [`checkpoint`](crate::checkpoint) for why it is consistent.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<SegmentCheckpoint> {
        crate::checkpoint::checkpoint(&self.inner, dest.as_ref())
    }

    /// The quarantined segments whose key ranges are fenced.
    pub fn quarantined(&self) -> Vec<QuarantinedSegment> {
        self.inner.current().quarantined.clone()
    }

    /// Lifts the fence of quarantined segment `id`, once its versions have been rebuilt (applied
    /// again from the WAL and the cold tier). The file stays in `quarantine/` for inspection.
    pub fn release_quarantine(&self, id: SegmentId) -> Result<()> {
        self.writable("release a quarantine")?;
        let mut installer = self.inner.lock_install(false);
        let current = self.inner.current();
        let Some(pos) = current.quarantined.iter().position(|q| q.id == id) else {
            return Err(SegmentError::NotQuarantined { id });
        };
        let mut next = Version::clone(&current);
        next.quarantined.remove(pos);
        self.inner
            .write_manifest(&mut installer, &next)
            .map_err(|f| f.error)?;
        self.inner.set_current(next);
        Ok(())
    }

    /// The live segments, oldest first.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.inner.current().segments.clone()
    }

    /// A scan with this crate's own error type (the `Tier` one wraps it).
    pub fn scan_segments(&self, range: &KeyRange, snapshot: SeqNo) -> Result<ScanIter> {
        self.inner.scan(range, snapshot)
    }

    /// A point read with this crate's own error type (the `Tier` one wraps it).
    pub fn get_entry(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        self.inner.get(key, snapshot)
    }

    /// Everything the tier counts, with write amplification, space amplification and stalls.
    pub fn segment_stats(&self) -> SegmentStats {
        let version = self.inner.current();
        let mut stats = SegmentStats {
            segments: version.segments.len(),
            quarantined: version.quarantined.len(),
            live_bytes: version.segments.iter().map(|s| s.file_len()).sum(),
            bottom_bytes: version.segments.first().map_or(0, |s| s.file_len()),
            entries: version
                .segments
                .iter()
                .map(|s| s.footer().entry_count)
                .sum(),
            flushed_lsn: version.flushed_lsn,
            ..SegmentStats::default()
        };
        self.inner.counters.fill(&mut stats);
        stats
    }

    fn tier_error(&self, e: SegmentError) -> strata_tiering::Error {
        e.into_tier_error(&self.inner.options.name)
    }
}

impl Drop for SegmentTier {
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::Release);
        if let Some(worker) = self.worker.as_mut() {
            worker.stop();
        }
    }
}

/// Sorts a batch into segment order; of two changes with the same key and seqno the later one
/// in the batch wins, as it would applied one after the other.
fn segment_order(batch: &[Change]) -> Vec<(Key, Entry)> {
    let mut entries: Vec<(Key, Entry)> = batch
        .iter()
        .map(|c| (c.key.clone(), c.entry.clone()))
        .collect();
    // Stable: equal (key, seqno) pairs keep their batch order, so the last is the later change.
    entries.sort_by(|a, b| internal_cmp((a.0.as_bytes(), a.1.seqno), (b.0.as_bytes(), b.1.seqno)));
    let mut out: Vec<(Key, Entry)> = Vec::with_capacity(entries.len());
    for item in entries {
        match out.last_mut() {
            Some(last) if last.0 == item.0 && last.1.seqno == item.1.seqno => *last = item,
            _ => out.push(item),
        }
    }
    out
}

impl Tier for SegmentTier {
    fn name(&self) -> &str {
        &self.inner.options.name
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, strata_tiering::Error> {
        self.inner
            .get(key, snapshot)
            .map_err(|e| self.tier_error(e))
    }

    /// Writes the batch as one new segment (an ingest without a flushed LSN).
    fn apply(&self, batch: &[Change]) -> Result<(), strata_tiering::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ingest(segment_order(batch), None)
            .map(|_| ())
            .map_err(|e| self.tier_error(e))
    }

    fn scan(
        &self,
        range: &KeyRange,
        snapshot: SeqNo,
    ) -> Result<EntryIter<'_>, strata_tiering::Error> {
        let iter = self
            .inner
            .scan(range, snapshot)
            .map_err(|e| self.tier_error(e))?;
        let name = self.inner.options.name.clone();
        Ok(Box::new(iter.map(move |item| {
            item.map_err(|e| e.into_tier_error(&name))
        })))
    }

    /// Every `apply` and `ingest` is durable when it returns; this only retries a manifest
    /// update that failed earlier (a quarantine recorded in memory but not yet on disk).
    fn flush(&self) -> Result<(), strata_tiering::Error> {
        if lock(&self.inner.problems).manifest.is_none() {
            return Ok(());
        }
        let mut installer = self.inner.lock_install(false);
        let current = self.inner.current();
        self.inner
            .write_manifest(&mut installer, &current)
            .map_err(|f| self.tier_error(f.error))
    }

    fn health(&self) -> Health {
        let version = self.inner.current();
        let mut reasons = Vec::new();
        if !version.quarantined.is_empty() {
            let listed: Vec<String> = version
                .quarantined
                .iter()
                .map(|q| {
                    format!(
                        "segment {} (keys `{}`..=`{}`, seqnos {}..={}) at {}: {}",
                        q.id,
                        q.first_key,
                        q.last_key,
                        q.min_seqno,
                        q.max_seqno,
                        q.path.display(),
                        q.reason
                    )
                })
                .collect();
            reasons.push(format!(
                "{} segment(s) quarantined; reads in their key ranges fail until their versions \
                 are rebuilt and the quarantine released: {}",
                listed.len(),
                listed.join("; ")
            ));
        }
        let problems = lock(&self.inner.problems);
        if let Some(m) = &problems.manifest {
            reasons.push(format!(
                "manifest update failed (retried by flush and the next change): {m}"
            ));
        }
        if let Some(c) = &problems.compaction {
            reasons.push(c.clone());
        }
        if reasons.is_empty() {
            Health::Healthy
        } else {
            Health::Degraded {
                reason: reasons.join("; "),
            }
        }
    }

    fn stats(&self) -> TierStats {
        let version = self.inner.current();
        let counters = &self.inner.counters;
        TierStats {
            entries: version
                .segments
                .iter()
                .map(|s| s.footer().entry_count)
                .sum(),
            live_keys: None,
            bytes: version
                .segments
                .iter()
                .map(|s| s.file_len())
                .sum::<u64>()
                .saturating_sub(counters.archived_unreclaimed_bytes.load(Ordering::Relaxed)),
            reads: counters.reads.load(Ordering::Relaxed),
            writes: counters.writes.load(Ordering::Relaxed),
        }
    }
}
