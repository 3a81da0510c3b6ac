//! Rebuilding quarantined warm segments from the WAL and the cold tier.
//!
//! A segment that fails a checksum is set aside and its key range fenced: reads there fail
//! rather than return an older version. Its versions are then gathered again:
//!
//! - from the WAL, every record in the segment's LSN range whose key is in its key range;
//! - from the cold tier, the newest version of each key in the range, if it falls in that
//!   LSN range (HIGH and CRITICAL keys live there).
//!
//! They are written back as a new segment. If the WAL still reaches back to the segment's
//! lowest LSN, nothing can be missing and the fence is lifted. Otherwise MEDIUM versions that
//! only the damaged segment held may be gone: the fence stays, the recovery report says so,
//! and [`Store::release_quarantine`] lifts it once an operator accepts the loss.

use std::collections::BTreeMap;
use std::ops::Bound;

use strata_segment::SegmentId;
use strata_tiering::record::{self, Record};
use strata_tiering::{Change, Key, KeyRange, Lsn, Tier, LATEST};
use strata_wal::Log;

use crate::error::Result;
use crate::open::RecoveryReport;
use crate::store::{Inner, Store};

pub(crate) fn rebuild_quarantined(inner: &Inner, report: &mut RecoveryReport) -> Result<()> {
    let fenced = inner.warm.quarantined();
    if fenced.is_empty() {
        return Ok(());
    }
    let oldest_in_wal = inner
        .wal
        .files()
        .first()
        .map_or(inner.wal.last_lsn() + 1, |(lsn, _)| *lsn);
    for segment in fenced {
        let name = format!(
            "segment {} ({} versions, keys {:?} to {:?}, LSN {} to {}): {}",
            segment.id,
            segment.entry_count,
            segment.first_key,
            segment.last_key,
            segment.min_seqno,
            segment.max_seqno,
            segment.reason
        );
        report.segments_quarantined.push(name.clone());
        let range = KeyRange::new(
            Bound::Included(segment.first_key.clone()),
            Bound::Included(segment.last_key.clone()),
        );
        let lsns = segment.min_seqno..=segment.max_seqno;
        let mut versions: BTreeMap<(Key, Lsn), Change> = BTreeMap::new();
        let from = segment.min_seqno.max(oldest_in_wal);
        if from <= segment.max_seqno {
            for item in inner.wal.read_from(from)? {
                let (lsn, bytes) = item?;
                if lsn > segment.max_seqno {
                    break;
                }
                if let Record::Change { change, .. } = record::decode_any(lsn, &bytes)? {
                    if range.contains(change.key.as_bytes()) {
                        versions.insert((change.key.clone(), lsn), change);
                    }
                }
            }
        }
        for (key, entry) in inner.cold.store().scan(&range, LATEST)? {
            if lsns.contains(&entry.seqno) {
                versions
                    .entry((key.clone(), entry.seqno))
                    .or_insert_with(|| Change::new(key, entry));
            }
        }
        let changes: Vec<Change> = versions.into_values().collect();
        if !changes.is_empty() {
            inner.warm.apply(&changes)?;
        }
        report.versions_rebuilt += changes.len() as u64;
        if oldest_in_wal <= segment.min_seqno {
            inner.warm.release_quarantine(segment.id)?;
        } else {
            report.still_fenced.push(name);
        }
    }
    Ok(())
}

impl Store {
    /// Lifts the fence of a quarantined segment whose data could not all be rebuilt, accepting
    /// that versions only it held are lost: reads of its key range are served again, from
    /// what the other tiers hold.
    pub fn release_quarantine(&self, segment: SegmentId) -> Result<()> {
        self.inner.writable("release a quarantine")?;
        Ok(self.inner.warm.release_quarantine(segment)?)
    }
}
