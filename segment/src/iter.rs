//! Ordered iteration: a cursor through one segment, and the merge of several.
//!
//! ```text
//!  segment 3 (newest) cursor ─┐
//!  segment 2          cursor ─┼─► Merger: smallest (key ↑, seqno ↓); on a tie of (key, seqno)
//!  segment 1 (oldest) cursor ─┘   the newest segment's copy wins and the others are skipped
//! ```
//!
//! Cursors hold an `Arc` of their segment, so iterators own what they read and outlive any
//! change to the tier's segment list: a scan keeps seeing the segments it started with.

use std::ops::Bound;
use std::sync::Arc;

use strata_tiering::{Entry, Key, KeyRange, SeqNo};

use crate::block::BlockLayout;
use crate::error::Result;
use crate::format::{internal_cmp, EntryRef};
use crate::segment::{to_entry, to_key, Segment};

/// The key and seqno of a cursor's current entry.
#[derive(Debug, Clone, Copy)]
struct Head {
    key_at: usize,
    key_len: usize,
    seqno: SeqNo,
}

/// A position in one segment, moving forward.
#[derive(Debug)]
pub(crate) struct Cursor {
    seg: Arc<Segment>,
    block: usize,
    layout: Option<BlockLayout>,
    idx: usize,
    head: Option<Head>,
}

impl Cursor {
    /// A cursor at the first entry whose key lies at or after `start`.
    pub fn seek(seg: Arc<Segment>, start: Bound<&[u8]>) -> Result<Cursor> {
        let block = match start {
            Bound::Unbounded => 0,
            Bound::Included(k) => seg.seek_block(k, true),
            Bound::Excluded(k) => seg.seek_block(k, false),
        };
        let mut cursor = Cursor {
            seg,
            block,
            layout: None,
            idx: 0,
            head: None,
        };
        cursor.load()?;
        if let (Some(layout), Bound::Included(k) | Bound::Excluded(k)) = (cursor.layout, start) {
            let inclusive = matches!(start, Bound::Included(_));
            let data = cursor.seg.bytes();
            let at = layout
                .find(data, k, |e| if inclusive { e.key < k } else { e.key <= k })
                .map_err(|e| cursor.fail(e))?;
            cursor.idx = at;
            cursor.load()?;
        }
        Ok(cursor)
    }

    fn fail(&mut self, detail: &str) -> crate::SegmentError {
        let block = self.block;
        self.stop();
        crate::SegmentError::corruption(self.seg.path(), 0, format!("block {block}: {detail}"))
    }

    fn stop(&mut self) {
        self.block = self.seg.block_count();
        self.layout = None;
        self.head = None;
    }

    /// Settles on the entry at (block, idx), moving on to later blocks as needed.
    fn load(&mut self) -> Result<()> {
        loop {
            if self.block >= self.seg.block_count() {
                self.stop();
                return Ok(());
            }
            let layout = match self.layout {
                Some(layout) => layout,
                None => match self.seg.block(self.block) {
                    Ok(layout) => {
                        self.layout = Some(layout);
                        layout
                    }
                    Err(e) => {
                        self.stop();
                        return Err(e);
                    }
                },
            };
            if self.idx < layout.count {
                let decoded =
                    layout
                        .entry_with_key_at(self.seg.bytes(), self.idx)
                        .map(|(entry, key_at)| Head {
                            key_at,
                            key_len: entry.key.len(),
                            seqno: entry.seqno,
                        });
                self.head = Some(decoded.map_err(|e| self.fail(e))?);
                return Ok(());
            }
            self.block += 1;
            self.idx = 0;
            self.layout = None;
        }
    }

    /// The current key and seqno, or `None` when the cursor is past the end.
    pub fn head(&self) -> Option<(&[u8], SeqNo)> {
        let head = self.head?;
        let key = self
            .seg
            .bytes()
            .get(head.key_at..head.key_at + head.key_len)?;
        Some((key, head.seqno))
    }

    /// The current entry.
    pub fn entry(&self) -> Result<Option<EntryRef<'_>>> {
        let Some(layout) = self.layout.filter(|_| self.head.is_some()) else {
            return Ok(None);
        };
        layout
            .entry(self.seg.bytes(), self.idx)
            .map(Some)
            .map_err(|e| {
                crate::SegmentError::corruption(
                    self.seg.path(),
                    0,
                    format!("block {}: {e}", self.block),
                )
            })
    }

    /// Moves to the next entry.
    pub fn advance(&mut self) -> Result<()> {
        if self.head.is_some() {
            self.idx += 1;
            self.load()?;
        }
        Ok(())
    }

    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    pub fn block_index(&self) -> usize {
        self.block
    }
}

/// Every version in one segment within a key range, in segment order. Archival markers are
/// not versions and are skipped.
#[derive(Debug)]
pub struct SegmentIter {
    cursor: Option<Cursor>,
    end: Bound<Key>,
}

impl SegmentIter {
    pub(crate) fn new(seg: Arc<Segment>, range: &KeyRange) -> Result<SegmentIter> {
        let Some((start, _)) = range.as_bounds() else {
            return Ok(SegmentIter {
                cursor: None,
                end: Bound::Unbounded,
            });
        };
        Ok(SegmentIter {
            cursor: Some(Cursor::seek(seg, start)?),
            end: range.end.clone(),
        })
    }

    fn step(&mut self) -> Result<Option<(Key, Entry)>> {
        loop {
            let Some(cursor) = self.cursor.as_mut() else {
                return Ok(None);
            };
            let Some(entry) = cursor.entry()? else {
                return Ok(None);
            };
            if !below_end(entry.key, &self.end) {
                self.cursor = None;
                return Ok(None);
            }
            let item = match to_entry(&entry) {
                Some(owned) => Some((
                    to_key(cursor.segment(), entry.key, cursor.block_index())?,
                    owned,
                )),
                None => None,
            };
            cursor.advance()?;
            if item.is_some() {
                return Ok(item);
            }
        }
    }
}

impl Iterator for SegmentIter {
    type Item = Result<(Key, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.cursor = None;
                Some(Err(e))
            }
        }
    }
}

/// Whether `key` lies before the range's end.
pub(crate) fn below_end(key: &[u8], end: &Bound<Key>) -> bool {
    match end {
        Bound::Included(e) => key <= e.as_bytes(),
        Bound::Excluded(e) => key < e.as_bytes(),
        Bound::Unbounded => true,
    }
}

/// Merges cursors (newest segment first) into one stream of distinct versions in segment order.
#[derive(Debug)]
pub(crate) struct Merger {
    cursors: Vec<Cursor>,
}

impl Merger {
    /// Cursors must be ordered newest segment first: on equal `(key, seqno)` the earlier wins.
    pub fn new(cursors: Vec<Cursor>) -> Merger {
        Merger { cursors }
    }

    /// The index of the cursor with the smallest head.
    fn min(&self) -> Option<usize> {
        let mut best: Option<(usize, (&[u8], SeqNo))> = None;
        for (i, cursor) in self.cursors.iter().enumerate() {
            let Some(head) = cursor.head() else { continue };
            match best {
                Some((_, b)) if internal_cmp(head, b).is_ge() => {}
                _ => best = Some((i, head)),
            }
        }
        best.map(|(i, _)| i)
    }

    /// The next distinct version: the segment holding it, and a cursor-independent handle.
    ///
    /// Copies of the same `(key, seqno)` in older segments are skipped.
    pub fn next(&mut self) -> Result<Option<MergedVersion>> {
        let Some(i) = self.min() else {
            return Ok(None);
        };
        let cursor = &self.cursors[i];
        let version = MergedVersion {
            seg: Arc::clone(cursor.segment()),
            block: cursor.block,
            idx: cursor.idx,
            layout: cursor.layout,
        };
        self.cursors[i].advance()?;
        {
            // Borrowed from the version's own handle on the segment, not from the cursors.
            let entry = version.entry()?;
            let this = (entry.key, entry.seqno);
            for cursor in &mut self.cursors {
                while cursor.head() == Some(this) {
                    cursor.advance()?;
                }
            }
        }
        Ok(Some(version))
    }
}

/// One version produced by a [`Merger`].
#[derive(Debug)]
pub(crate) struct MergedVersion {
    seg: Arc<Segment>,
    block: usize,
    idx: usize,
    layout: Option<BlockLayout>,
}

impl MergedVersion {
    pub fn entry(&self) -> Result<EntryRef<'_>> {
        let corrupt = |detail: &str| {
            crate::SegmentError::corruption(
                self.seg.path(),
                0,
                format!("block {}: {detail}", self.block),
            )
        };
        let layout = self.layout.ok_or_else(|| corrupt("no block loaded"))?;
        layout.entry(self.seg.bytes(), self.idx).map_err(corrupt)
    }

    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    pub fn block_index(&self) -> usize {
        self.block
    }
}
