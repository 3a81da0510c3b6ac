//! Reads across the segment set: point gets and merged scans.
//!
//! A get asks the segments newest first and keeps the version with the highest seqno at or below
//! the snapshot. Versions are ordered by seqno, not by segment age (an older version can arrive
//! late), so an older segment is still asked unless its highest seqno cannot beat the version
//! already found. On a tie of seqno the newer segment's copy wins. Segments skip a get cheaply by
//! seqno range, key range and bloom filter before any block is read.
//!
//! A read that finds a damaged block quarantines that segment and fails; later reads of keys in
//! its range fail too, until the quarantine is released (see [`QuarantinedSegment`]).

use std::ops::Bound;
use std::sync::Arc;

use strata_tiering::{Entry, Key, KeyRange, SeqNo};

use crate::bloom;
use crate::error::{Result, SegmentError};
use crate::format::EntryRef;
use crate::iter::{below_end, Cursor, Merger};
use crate::segment::{to_entry, to_key, Probe, Segment};
use crate::state::{Inner, QuarantinedSegment, Version};
use crate::stats::Counters;

impl Inner {
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        Counters::add(&self.counters.reads, 1);
        if Key::validate(key).is_err() {
            return Ok(None);
        }
        let version = self.current();
        let hash = bloom::key_hash(key);
        let mut best: Option<EntryRef<'_>> = None;
        let mut skipped = 0;
        for seg in version.segments.iter().rev() {
            let footer = seg.footer();
            if footer.min_seqno > snapshot || best.is_some_and(|b| footer.max_seqno <= b.seqno) {
                continue;
            }
            match seg.probe(key, hash, snapshot) {
                Ok(Probe::Filtered) => skipped += 1,
                Ok(Probe::Searched(Some(found))) => {
                    if best.is_none_or(|b| found.seqno > b.seqno) {
                        best = Some(found);
                    }
                }
                Ok(Probe::Searched(None)) => {}
                Err(e) => return Err(self.damaged(seg, e)),
            }
        }
        if skipped > 0 {
            Counters::add(&self.counters.bloom_skips, skipped);
        }
        let found = best.map(|b| b.seqno);
        if let Some(fence) = version.quarantined.iter().find(|q| {
            q.covers(key)
                && snapshot >= q.min_seqno
                && found.is_none_or(|seqno| seqno < snapshot.min(q.max_seqno))
        }) {
            return Err(fence.error_for(key));
        }
        // An archival marker answers "nothing here" but, like a version, settles the fence.
        Ok(best.and_then(|b| to_entry(&b)))
    }

    /// Quarantines a segment whose read failed its checks; other errors pass through.
    pub fn damaged(&self, seg: &Arc<Segment>, error: SegmentError) -> SegmentError {
        if error.is_corruption() {
            self.quarantine(seg, &error);
        }
        error
    }

    pub fn scan(self: &Arc<Self>, range: &KeyRange, snapshot: SeqNo) -> Result<ScanIter> {
        Counters::add(&self.counters.reads, 1);
        let version = self.current();
        let Some((start, _)) = range.as_bounds() else {
            return Ok(ScanIter::empty(Arc::clone(self)));
        };
        let mut cursors = Vec::new();
        for seg in version.segments.iter().rev() {
            let (Some(first), Some(last)) = (seg.first_key(), seg.last_key()) else {
                continue;
            };
            if seg.footer().min_seqno > snapshot || !overlaps(range, first, last) {
                continue;
            }
            match Cursor::seek(Arc::clone(seg), start) {
                Ok(cursor) => cursors.push(cursor),
                Err(e) => return Err(self.damaged(seg, e)),
            }
        }
        Ok(ScanIter {
            inner: Arc::clone(self),
            merger: Some(Merger::new(cursors)),
            end: range.end.clone(),
            snapshot,
            current_key: Vec::new(),
            done_with_key: false,
            fence: first_fence(&version, range, snapshot),
        })
    }
}

/// Whether `range` holds any key between `first` and `last` inclusive.
pub(crate) fn overlaps(range: &KeyRange, first: &[u8], last: &[u8]) -> bool {
    let starts_before_last = match &range.start {
        Bound::Included(s) => s.as_bytes() <= last,
        Bound::Excluded(s) => s.as_bytes() < last,
        Bound::Unbounded => true,
    };
    starts_before_last && below_end(first, &range.end)
}

/// The fenced range a scan would reach first: the quarantined segment overlapping the range
/// (and visible at the snapshot) with the smallest first key.
fn first_fence(version: &Version, range: &KeyRange, snapshot: SeqNo) -> Option<QuarantinedSegment> {
    version
        .quarantined
        .iter()
        .filter(|q| snapshot >= q.min_seqno)
        .filter(|q| overlaps(range, q.first_key.as_bytes(), q.last_key.as_bytes()))
        .min_by(|a, b| a.first_key.cmp(&b.first_key))
        .cloned()
}

/// The iterator of [`SegmentTier::scan`](crate::SegmentTier): each key's newest version at the
/// snapshot, in key order.
///
/// It holds the segments it started with, so it sees one consistent segment set however the
/// tier changes meanwhile. When it reaches the key range of a quarantined segment it yields a
/// [`SegmentError::Quarantined`] and ends: the keys from there on could be incomplete.
#[derive(Debug)]
pub struct ScanIter {
    inner: Arc<Inner>,
    merger: Option<Merger>,
    end: Bound<Key>,
    snapshot: SeqNo,
    current_key: Vec<u8>,
    done_with_key: bool,
    fence: Option<QuarantinedSegment>,
}

impl ScanIter {
    fn empty(inner: Arc<Inner>) -> ScanIter {
        ScanIter {
            inner,
            merger: None,
            end: Bound::Unbounded,
            snapshot: 0,
            current_key: Vec::new(),
            done_with_key: false,
            fence: None,
        }
    }

    fn step(&mut self) -> Result<Option<(Key, Entry)>> {
        let Some(merger) = self.merger.as_mut() else {
            return Ok(None);
        };
        loop {
            let version = match merger.next() {
                Ok(Some(version)) => version,
                Ok(None) => return self.finish(),
                Err(e) => return Err(self.fail(e)),
            };
            let entry = match version.entry() {
                Ok(entry) => entry,
                Err(e) => {
                    let seg = Arc::clone(version.segment());
                    return Err(self.inner.damaged(&seg, e));
                }
            };
            if !below_end(entry.key, &self.end) {
                return self.finish();
            }
            if let Some(fence) = &self.fence {
                if entry.key >= fence.first_key.as_bytes() {
                    let error = fence.error_for(entry.key);
                    self.merger = None;
                    return Err(error);
                }
            }
            if entry.key != self.current_key.as_slice() {
                self.current_key.clear();
                self.current_key.extend_from_slice(entry.key);
                self.done_with_key = false;
            }
            if self.done_with_key || entry.seqno > self.snapshot {
                continue;
            }
            self.done_with_key = true;
            let Some(owned) = to_entry(&entry) else {
                continue;
            };
            let key = to_key(version.segment(), entry.key, version.block_index())?;
            return Ok(Some((key, owned)));
        }
    }

    /// The merge ran out of keys in range: if a fenced range overlapped the scan, its keys
    /// could be missing, so the scan ends with an error instead of a clean end.
    fn finish(&mut self) -> Result<Option<(Key, Entry)>> {
        self.merger = None;
        match self.fence.take() {
            Some(fence) => Err(fence.error_for(fence.first_key.as_bytes())),
            None => Ok(None),
        }
    }

    fn fail(&mut self, e: SegmentError) -> SegmentError {
        self.merger = None;
        if let SegmentError::Corruption { path, .. } = &e {
            let version = self.inner.current();
            if let Some(seg) = version.segments.iter().find(|s| s.path() == path.as_path()) {
                self.inner.quarantine(seg, &e);
            }
        }
        e
    }
}

impl Iterator for ScanIter {
    type Item = Result<(Key, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.merger = None;
                Some(Err(e))
            }
        }
    }
}
