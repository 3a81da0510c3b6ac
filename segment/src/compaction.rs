//! Size-tiered compaction.
//!
//! # Strategy
//!
//! Segments are kept in the order they were installed, oldest first. After each ingest the
//! picker looks for work, in this order:
//!
//! 1. **Space amplification.** If the segments above the oldest add up to more than
//!    `max_space_amplification` (default 2) times the oldest one, everything is merged into one
//!    segment. That bounds the space taken by old versions and tombstones, and it is the only
//!    merge that is certainly "at the bottom".
//! 2. **Size ratio.** Starting from the newest segment, older segments join the run while each is
//!    at most `1 + size_ratio` (default 2) times the run's total so far. A run of at least
//!    `min_merge_width` (4) segments, at most `max_merge_width` (16), is merged.
//! 3. **Segment count.** More than four times `max_merge_width` segments (a pathological size
//!    sequence) merges the newest `max_merge_width`.
//!
//! Why size-tiered rather than leveled: the warm tier is fed by memtable flushes, a write-heavy
//! stream, and size-tiered merging writes each byte about `log(total / flush size)` times instead
//! of leveled's ten or so per level. The price is space (up to `1 + max_space_amplification`
//! times the live data just before a full merge) and reads that may consult more segments,
//! which the per-segment bloom filters and key ranges keep cheap for point reads.
//!
//! # What a merge drops
//!
//! Only with a GC horizon set by the owner ([`SegmentTier::set_oldest_snapshot`]), i.e. no
//! snapshot below it is open:
//!
//! - a version at or below the horizon that is not the newest such version of its key: no open
//!   snapshot can see it;
//! - the newest version at or below the horizon when it is a tombstone or has expired (by the
//!   tier's [`Clock`](crate::Clock)), provided no segment outside the merge (nor a quarantined
//!   one) holds anything older than it: the merge is "the bottom" for that key. Without that
//!   proviso an older value in another segment would reappear. Tombstones and expired
//!   versions are kept when the owner turns off
//!   [`drop_bottom_tombstones`](crate::CompactionOptions::drop_bottom_tombstones); archival
//!   markers never are.
//!
//! Whatever the horizon, a version that shares its `(key, seqno)` with an archival marker in a
//! newer segment is dropped when the two meet in a merge: the marker is the copy that wins.
//!
//! A segment ingested while a merge runs may hold older seqnos (an out-of-order replay): if it
//! could hold a version older than a dropped tombstone, the merge's result is thrown away rather
//! than installed.
//!
//! # Never stalling writers for long
//!
//! A merge works from a snapshot of the segment list without holding any lock an ingest needs.
//! Only its installation takes the install lock, for one manifest rewrite (one small file write,
//! one fsync, a rename and a directory fsync). So an ingest waits at most for one manifest
//! update by someone else — never for a merge to finish. That wait is counted in
//! [`SegmentStats::stall_time`](crate::SegmentStats).
//!
//! [`SegmentTier::set_oldest_snapshot`]: crate::SegmentTier::set_oldest_snapshot

use std::ops::{Bound, Range};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_tiering::SeqNo;

use crate::error::{Result, SegmentError};
use crate::format::SegmentId;
use crate::iter::{Cursor, Merger};
use crate::options::CompactionOptions;
use crate::segment::Segment;
use crate::state::{lock, Inner, Version};
use crate::stats::Counters;
use crate::writer::SegmentWriter;

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// The merged segments, oldest first.
    pub inputs: Vec<SegmentId>,
    /// The segment written, unless nothing survived the merge.
    pub output: Option<SegmentId>,
    /// Bytes of the input files.
    pub bytes_read: u64,
    /// Bytes of the output file.
    pub bytes_written: u64,
    /// Versions written.
    pub versions_written: u64,
    /// Versions dropped.
    pub versions_dropped: u64,
    /// True if nothing outside the merge could hold older versions.
    pub bottom: bool,
    /// True if the result was thrown away (a conflicting concurrent change).
    pub abandoned: bool,
    /// Time taken.
    pub duration: Duration,
}

/// Chooses the segments to merge next, as a range of positions in `sizes` (oldest first).
pub(crate) fn pick(sizes: &[u64], options: &CompactionOptions) -> Option<Range<usize>> {
    let n = sizes.len();
    if n < 2 {
        return None;
    }
    let oldest = sizes[0] as f64;
    let above: u64 = sizes[1..].iter().sum();
    if above as f64 > options.max_space_amplification * oldest {
        return Some(0..n);
    }
    let max_width = options.max_merge_width.max(2);
    let mut start = n - 1;
    let mut total = sizes[start] as f64;
    while start > 0 && n - start < max_width {
        let older = sizes[start - 1] as f64;
        if older > (1.0 + options.size_ratio) * total {
            break;
        }
        start -= 1;
        total += older;
    }
    if n - start >= options.min_merge_width.max(2) {
        return Some(start..n);
    }
    if n > 4 * max_width {
        return Some(n - max_width..n);
    }
    None
}

/// What a merge produced, before installation.
struct Merged {
    output: Option<Arc<Segment>>,
    written: u64,
    dropped: u64,
    /// The highest seqno of a tombstone or expired version dropped because the merge was the
    /// bottom for its key.
    bottom_drop_max: Option<SeqNo>,
}

impl Inner {
    /// Runs one compaction: the picker's choice, or every segment when `full`. `Ok(None)` when
    /// there is nothing to do.
    pub fn compact_once(&self, full: bool) -> Result<Option<CompactionReport>> {
        let _one_at_a_time = lock(&self.compacting);
        let started = Instant::now();
        let version = self.current();
        let sizes: Vec<u64> = version.segments.iter().map(|s| s.file_len()).collect();
        let range = if full {
            if sizes.is_empty() {
                return Ok(None);
            }
            0..sizes.len()
        } else {
            match pick(&sizes, &self.options.compaction) {
                Some(range) => range,
                None => return Ok(None),
            }
        };
        let inputs: Vec<Arc<Segment>> = version.segments[range.clone()].to_vec();
        let floor = version
            .segments
            .iter()
            .enumerate()
            .filter(|(i, _)| !range.contains(i))
            .map(|(_, s)| s.footer().min_seqno)
            .chain(version.quarantined.iter().map(|q| q.min_seqno))
            .min()
            .unwrap_or(SeqNo::MAX);
        let merged = match self.merge(&inputs, floor) {
            Ok(merged) => merged,
            Err(e) => {
                if let SegmentError::Corruption { path, .. } = &e {
                    if let Some(seg) = inputs.iter().find(|s| s.path() == path.as_path()) {
                        self.quarantine(seg, &e);
                    }
                }
                if matches!(e, SegmentError::Cancelled) {
                    Counters::add(&self.counters.compactions_abandoned, 1);
                }
                return Err(e);
            }
        };
        let mut report = CompactionReport {
            inputs: inputs.iter().map(|s| s.id()).collect(),
            output: merged.output.as_ref().map(|s| s.id()),
            bytes_read: inputs.iter().map(|s| s.file_len()).sum(),
            bytes_written: merged.output.as_ref().map_or(0, |s| s.file_len()),
            versions_written: merged.written,
            versions_dropped: merged.dropped,
            bottom: floor == SeqNo::MAX,
            abandoned: false,
            duration: Duration::ZERO,
        };
        report.abandoned = !self.install_compaction(&version, &inputs, &merged)?;
        report.duration = started.elapsed();
        let counters = &self.counters;
        if report.abandoned {
            Counters::add(&counters.compactions_abandoned, 1);
        } else {
            Counters::add(&counters.compactions, 1);
            Counters::add(&counters.compaction_read_bytes, report.bytes_read);
            Counters::add(&counters.compaction_written_bytes, report.bytes_written);
            Counters::add(&counters.versions_dropped, report.versions_dropped);
            if report.bottom {
                // Every marker and the version it stands for met in this merge (a marker
                // written meanwhile is forgotten, which errs toward archiving a little more).
                counters
                    .archived_unreclaimed_bytes
                    .store(0, Ordering::Relaxed);
            }
        }
        let nanos = u64::try_from(report.duration.as_nanos()).unwrap_or(u64::MAX);
        Counters::add(&counters.compaction_nanos, nanos);
        Ok(Some(report))
    }

    /// Merges `inputs` (oldest first) into one new segment, dropping what the GC rules allow.
    fn merge(&self, inputs: &[Arc<Segment>], floor: SeqNo) -> Result<Merged> {
        let horizon = self.gc_horizon();
        let now = self.options.clock.now_ms();
        let mut cursors = Vec::with_capacity(inputs.len());
        for seg in inputs.iter().rev() {
            cursors.push(Cursor::seek(Arc::clone(seg), Bound::Unbounded)?);
        }
        let mut merger = Merger::new(cursors);
        let id = self.allocate_id();
        let mut writer = SegmentWriter::create(
            Arc::clone(&self.fs),
            &self.dir,
            id,
            self.options.writer.clone(),
        )?;
        let mut merged = Merged {
            output: None,
            written: 0,
            dropped: 0,
            bottom_drop_max: None,
        };
        let mut key: Vec<u8> = Vec::new();
        let mut seen_at_horizon = false;
        let mut steps: u64 = 0;
        while let Some(version) = merger.next()? {
            steps += 1;
            if steps.is_multiple_of(4096) && self.closing.load(Ordering::Acquire) {
                return Err(SegmentError::Cancelled);
            }
            let entry = version.entry()?;
            if entry.key != key.as_slice() {
                key.clear();
                key.extend_from_slice(entry.key);
                seen_at_horizon = false;
            }
            if horizon.is_some_and(|h| entry.seqno <= h) {
                if seen_at_horizon {
                    merged.dropped += 1;
                    continue;
                }
                seen_at_horizon = true;
                let dead = entry.archived
                    || (self.options.compaction.drop_bottom_tombstones
                        && (entry.tombstone || entry.expires_at.is_some_and(|at| at <= now)));
                if dead && entry.seqno < floor {
                    merged.dropped += 1;
                    merged.bottom_drop_max = merged.bottom_drop_max.max(Some(entry.seqno));
                    continue;
                }
            }
            writer.add_ref(&entry)?;
            merged.written += 1;
        }
        if writer.entry_count() > 0 {
            let info = writer.finish()?;
            let opened = Segment::open(self.fs.as_ref(), &info.path, self.options.read_mode);
            match opened {
                Ok(seg) => merged.output = Some(Arc::new(seg)),
                Err(e) => {
                    let _ = self.fs.remove_file(&info.path);
                    return Err(e);
                }
            }
        }
        Ok(merged)
    }

    /// Replaces the inputs with the output in the segment set. Returns false (and removes the
    /// output) if the inputs changed meanwhile or a new segment conflicts with a dropped
    /// tombstone.
    fn install_compaction(
        &self,
        started_from: &Version,
        inputs: &[Arc<Segment>],
        merged: &Merged,
    ) -> Result<bool> {
        let discard_output = || {
            if let Some(out) = &merged.output {
                let _ = self.fs.remove_file(out.path());
            }
        };
        let mut installer = self.lock_install(false);
        let current = self.current();
        let ids: Vec<SegmentId> = inputs.iter().map(|s| s.id()).collect();
        let position = current
            .segments
            .windows(ids.len().max(1))
            .position(|w| w.iter().map(|s| s.id()).eq(ids.iter().copied()));
        let is_new = |id: SegmentId| !started_from.segments.iter().any(|s| s.id() == id);
        let conflict = merged.bottom_drop_max.is_some_and(|dropped| {
            current
                .segments
                .iter()
                .filter(|s| is_new(s.id()))
                .any(|s| s.footer().min_seqno <= dropped)
                || current
                    .quarantined
                    .iter()
                    .filter(|q| !started_from.quarantined.iter().any(|o| o.id == q.id))
                    .any(|q| q.min_seqno <= dropped)
        });
        let Some(position) = position.filter(|_| !conflict && !ids.is_empty()) else {
            drop(installer);
            discard_output();
            return Ok(false);
        };
        let mut next = Version::clone(&current);
        let replaced = next.segments.splice(
            position..position + ids.len(),
            merged.output.iter().cloned(),
        );
        drop(replaced);
        if let Err(failure) = self.write_manifest(&mut installer, &next) {
            drop(installer);
            if !failure.maybe_installed {
                discard_output();
            }
            return Err(failure.error);
        }
        self.set_current(next);
        drop(installer);
        // The manifest no longer lists the inputs. Readers still holding them keep their bytes
        // (a mapping, or a copy in memory); a removal that fails is retried at the next open.
        let mut removed = false;
        for seg in inputs {
            removed |= self.fs.remove_file(seg.path()).is_ok();
        }
        if removed {
            let _ = self.fs.sync_dir(&self.dir);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_follows_the_documented_rules() {
        let o = CompactionOptions::default();
        assert_eq!(pick(&[], &o), None);
        assert_eq!(pick(&[10], &o), None);
        // Equal flushes: nothing until space amplification or four in a run.
        assert_eq!(pick(&[10, 10], &o), None);
        assert_eq!(pick(&[10, 10, 10], &o), None);
        assert_eq!(pick(&[10, 10, 10, 10], &o), Some(0..4));
        // A big bottom, four small flushes above it: the run of four merges.
        assert_eq!(pick(&[1000, 10, 10, 10, 10], &o), Some(1..5));
        // Three small ones above a big one: nothing yet.
        assert_eq!(pick(&[1000, 10, 10, 10], &o), None);
        // Newer data more than twice the bottom: merge everything.
        assert_eq!(pick(&[100, 150, 60], &o), Some(0..3));
        // A long run is cut at max_merge_width.
        let many = vec![1u64; 40];
        assert_eq!(pick(&many, &o), Some(0..40));
        let mut growing = vec![1_000_000u64];
        growing.extend(std::iter::repeat_n(1, 30));
        assert_eq!(pick(&growing, &o), Some(15..31));
    }
}
