//! [`Segment`]: an open, immutable segment file.
//!
//! ```text
//!  open: footer ──► (length, sections add up) ──► index CRC, records ──► bloom CRC ──► ready
//!  get(key, snapshot):
//!     seqno range? ──► key range? ──► bloom line ──► index: first block whose last (key, seqno)
//!     is at or after (key, snapshot) ──► block CRC (first read only) ──► binary search in block
//! ```
//!
//! The bytes come from a read-only memory map ([`ReadMode::Mmap`] on the real filesystem, see
//! [`mmap`](crate::mmap) for why that is sound) or are read whole through the I/O seam. A block's
//! CRC and structure are checked the first time the block is read and remembered per block;
//! [`Segment::verify`] checks the whole file.
//!
//! The I/O seam hands out no file descriptors, so when the filesystem is the operating system's
//! the reader opens the path with `std::fs` to map it; everything else goes through the seam.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use strata_tiering::io::Fs;
use strata_tiering::{Entry, EntryKind, Key, SeqNo, Value, MAX_KEY_LEN};

use crate::block::{self, BlockLayout};
use crate::bloom::{self, Bloom};
use crate::error::{Result, SegmentError};
use crate::format::{
    internal_cmp, key_prefix, parse_file_name, read_u32, EntryRef, Footer, SegmentId,
    BLOCK_TRAILER_LEN, BLOOM_LINE_BYTES, DIRECTORY_SLOT_LEN, FOOTER_LEN,
};
use crate::index::{parse_index, IndexRecord};
use crate::mmap;
use crate::prefetch::prefetch;
use crate::writer::key_for_error;

/// How a segment's bytes are brought into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Memory-map the file when the filesystem is the operating system's
    /// ([`Fs::is_os_filesystem`]); read it whole through the seam otherwise. The default.
    #[default]
    Mmap,
    /// Always read the whole file into memory through the seam.
    Read,
}

/// Per-block check state: not yet checked, failed, or (any other value) checked and holding
/// that many entries. A block holds at least one entry, so the values never collide.
const UNCHECKED: u32 = 0;
const BAD: u32 = u32::MAX;

/// What [`Segment::probe`] found.
#[derive(Debug)]
pub(crate) enum Probe<'a> {
    /// The key range or the bloom filter rules the key out; no block was read.
    Filtered,
    /// The key's block was searched: its version, if the block holds one.
    Searched(Option<EntryRef<'a>>),
}

#[derive(Debug)]
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

/// An open segment file: point reads, ordered iteration and verification.
///
/// `Segment` is `Send + Sync`; share it behind an `Arc`. Reads never block each other.
#[derive(Debug)]
pub struct Segment {
    id: SegmentId,
    path: PathBuf,
    bytes: Bytes,
    footer: Footer,
    footer_crc: u32,
    first_key: Range<usize>,
    index: Box<[IndexRecord]>,
    /// Bytes every key in the segment starts with: as long as the first key and the last
    /// share.
    common_len: usize,
    /// Eight bytes of each block's last key, just past the common bytes (see [`key_prefix`]).
    prefixes: Box<[u64]>,
    bloom_at: Range<usize>,
    bloom: Bloom,
    blocks: Box<[AtomicU32]>,
}

impl Segment {
    /// Opens the segment at `path`, whose file name must be a segment name (`<id>.seg`).
    ///
    /// Checks the footer, the block index and the bloom filter; blocks are checked when first
    /// read. Any damage is a [`SegmentError::Corruption`] naming the file and offset.
    pub fn open(fs: &dyn Fs, path: &Path, mode: ReadMode) -> Result<Segment> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(id) = parse_file_name(name) else {
            return Err(SegmentError::BadDirectory {
                path: path.to_owned(),
                detail: "not a segment file name (<20 digits>.seg)".into(),
            });
        };
        let bytes = if mode == ReadMode::Mmap && fs.is_os_filesystem() {
            map(path)?
        } else {
            read_whole(fs, path)?
        };
        Segment::from_bytes(id, path.to_owned(), bytes)
    }

    fn from_bytes(id: SegmentId, path: PathBuf, bytes: Bytes) -> Result<Segment> {
        let data = bytes.as_slice();
        let corrupt =
            |offset: usize, detail: String| SegmentError::corruption(&path, offset as u64, detail);
        let footer_at = data.len().checked_sub(FOOTER_LEN).ok_or_else(|| {
            corrupt(
                0,
                format!("file of {} bytes is shorter than a footer", data.len()),
            )
        })?;
        let mut raw = [0u8; FOOTER_LEN];
        raw.copy_from_slice(&data[footer_at..]);
        let footer = Footer::decode(&raw, data.len() as u64).map_err(|e| corrupt(footer_at, e))?;
        if footer.segment_id != id {
            return Err(corrupt(
                footer_at,
                format!(
                    "footer says segment {}, the file name says {id}",
                    footer.segment_id
                ),
            ));
        }
        let footer_crc = read_u32(&raw, 124).unwrap_or(0);
        // Footer::decode showed the sections lie end to end inside the file.
        let index_at = footer.data_len as usize;
        let bloom_start = index_at + footer.index_len as usize;
        let bloom_at = bloom_start..footer_at;
        let index_bytes = &data[index_at..bloom_start];
        if crc32fast::hash(index_bytes) != footer.index_crc {
            return Err(corrupt(index_at, "block index checksum mismatch".into()));
        }
        let (first_key, index) =
            parse_index(index_bytes, index_at, &footer).map_err(|(at, e)| corrupt(at, e))?;
        let bloom_bytes = &data[bloom_at.clone()];
        if crc32fast::hash(bloom_bytes) != footer.bloom_crc {
            return Err(corrupt(
                bloom_start,
                "bloom filter checksum mismatch".into(),
            ));
        }
        let bloom = Bloom::parse(bloom_bytes).map_err(|e| corrupt(bloom_start, e))?;
        let blocks = (0..index.len())
            .map(|_| AtomicU32::new(UNCHECKED))
            .collect();
        let key_of = |(at, len): (usize, usize)| data.get(at..at + len).unwrap_or(&[]);
        // Keys in a store often share a long head ("task:0000…"); prefixes taken past it
        // still tell the blocks apart.
        let common_len = match (data.get(first_key.clone()), index.last()) {
            (Some(first), Some(last)) => block::shared_len(first, key_of(last.last_key)),
            _ => 0,
        };
        let prefixes = index
            .iter()
            .map(|r| key_prefix(key_of(r.last_key).get(common_len..).unwrap_or(&[])))
            .collect();
        Ok(Segment {
            id,
            path,
            bytes,
            footer,
            footer_crc,
            first_key,
            index,
            common_len,
            prefixes,
            bloom_at,
            bloom,
            blocks,
        })
    }

    /// The segment's id.
    pub fn id(&self) -> SegmentId {
        self.id
    }

    /// The file it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The footer's own CRC: a fingerprint of the file the manifest records.
    pub fn footer_crc(&self) -> u32 {
        self.footer_crc
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.footer.file_len
    }

    /// True if the bytes are memory-mapped rather than read into memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    /// The smallest key, unless the segment is empty.
    pub fn first_key(&self) -> Option<&[u8]> {
        self.bytes
            .as_slice()
            .get(self.first_key.clone())
            .filter(|k| !k.is_empty())
    }

    /// The largest key, unless the segment is empty.
    pub fn last_key(&self) -> Option<&[u8]> {
        self.index.last().map(|r| self.key_at(r.last_key))
    }

    fn key_at(&self, (at, len): (usize, usize)) -> &[u8] {
        self.bytes.as_slice().get(at..at + len).unwrap_or(&[])
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    pub(crate) fn block_count(&self) -> usize {
        self.index.len()
    }

    /// False if no version of `key` can be in the segment (key range and bloom filter).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hashed(key, bloom::key_hash(key))
    }

    pub(crate) fn may_contain_hashed(&self, key: &[u8], hash: u64) -> bool {
        self.in_key_range(key) && self.bloom.may_contain(self.filter(), hash)
    }

    fn in_key_range(&self, key: &[u8]) -> bool {
        match (self.first_key(), self.last_key()) {
            (Some(first), Some(last)) => first <= key && key <= last,
            _ => false,
        }
    }

    fn filter(&self) -> &[u8] {
        self.bytes
            .as_slice()
            .get(self.bloom_at.clone())
            .unwrap_or(&[])
    }

    /// Looks `key` up at `snapshot`, with its hash computed by the caller: ruled out by the
    /// key range or the bloom filter, or searched for in its block.
    ///
    /// The bloom line is asked into cache first, and the in-memory block index searched while
    /// it arrives (see [`prefetch`](crate::prefetch)).
    pub(crate) fn probe(&self, key: &[u8], hash: u64, snapshot: SeqNo) -> Result<Probe<'_>> {
        if !self.in_key_range(key) {
            return Ok(Probe::Filtered);
        }
        let filter = self.filter();
        let line = self.bloom.line_at(hash);
        prefetch(filter, line..line + BLOOM_LINE_BYTES);
        let block = self.block_for(key, snapshot);
        if !self.bloom.may_contain(filter, hash) {
            return Ok(Probe::Filtered);
        }
        Ok(Probe::Searched(self.find_in(block, key, snapshot)?))
    }

    /// The newest version of `key` with `seqno <= snapshot`, if this segment holds one and it
    /// is not an archival marker.
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>> {
        let hash = bloom::key_hash(key);
        Ok(self
            .get_ref(key, hash, snapshot)?
            .and_then(|e| to_entry(&e)))
    }

    /// As [`get`](Self::get), borrowing the entry, with the key's hash computed by the caller.
    pub(crate) fn get_ref(
        &self,
        key: &[u8],
        hash: u64,
        snapshot: SeqNo,
    ) -> Result<Option<EntryRef<'_>>> {
        if snapshot < self.footer.min_seqno || key.is_empty() || key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        match self.probe(key, hash, snapshot)? {
            Probe::Filtered => Ok(None),
            Probe::Searched(found) => Ok(found),
        }
    }

    /// The block that holds `(key, snapshot)` if any block does: the first whose last version
    /// is at or after it; the block count when none is.
    fn block_for(&self, key: &[u8], snapshot: SeqNo) -> usize {
        let target = (key, snapshot);
        self.find_block(key, |r| {
            internal_cmp((self.key_at(r.last_key), r.last_seqno), target).is_lt()
        })
    }

    /// The newest version of `key` at or below `snapshot` in block `block` (from
    /// [`block_for`](Self::block_for)).
    fn find_in(&self, block: usize, key: &[u8], snapshot: SeqNo) -> Result<Option<EntryRef<'_>>> {
        let target = (key, snapshot);
        if block >= self.index.len() {
            return Ok(None);
        }
        let layout = self.block(block)?;
        let data = self.bytes.as_slice();
        let at = layout
            .find_candidate(data, key, |e| {
                internal_cmp((e.key, e.seqno), target).is_lt()
            })
            .map_err(|e| self.block_error(block, e, Some(key)))?;
        if at >= layout.count {
            return Ok(None);
        }
        let entry = layout
            .entry(data, at)
            .map_err(|e| self.block_error(block, e, Some(key)))?;
        Ok((entry.key == key).then_some(entry))
    }

    /// Checks the whole file: every block's CRC and structure (the footer, index and filter
    /// were checked at open), and that the footer's counts and seqno range and the bloom filter
    /// agree with the entries the blocks hold. The first damage found is returned.
    pub fn verify(&self) -> Result<()> {
        let data = self.bytes.as_slice();
        let filter = data.get(self.bloom_at.clone()).unwrap_or(&[]);
        let mut seen = Footer {
            min_seqno: SeqNo::MAX,
            ..Footer::default()
        };
        let mut previous_key: Option<&[u8]> = None;
        for i in 0..self.index.len() {
            self.blocks[i].store(UNCHECKED, AtomicOrdering::Relaxed);
            let layout = self.block(i)?;
            for j in 0..layout.count {
                let e = layout
                    .entry(data, j)
                    .map_err(|e| self.block_error(i, e, None))?;
                if previous_key != Some(e.key) {
                    seen.key_count += 1;
                    if !self.bloom.may_contain(filter, bloom::key_hash(e.key)) {
                        let detail = format!("bloom filter misses key `{}`", key_for_error(e.key));
                        return Err(SegmentError::corruption(
                            &self.path,
                            self.bloom_at.start as u64,
                            detail,
                        ));
                    }
                }
                previous_key = Some(e.key);
                seen.entry_count += 1;
                seen.tombstone_count += u64::from(e.tombstone);
                seen.min_seqno = seen.min_seqno.min(e.seqno);
                seen.max_seqno = seen.max_seqno.max(e.seqno);
                seen.payload_bytes += (e.key.len() + e.value.len()) as u64;
            }
        }
        if seen.entry_count == 0 {
            seen.min_seqno = 0;
        }
        let f = &self.footer;
        let stated = (
            f.entry_count,
            f.key_count,
            f.tombstone_count,
            f.min_seqno,
            f.max_seqno,
            f.payload_bytes,
        );
        let found = (
            seen.entry_count,
            seen.key_count,
            seen.tombstone_count,
            seen.min_seqno,
            seen.max_seqno,
            seen.payload_bytes,
        );
        if stated != found {
            return Err(SegmentError::corruption(
                &self.path,
                f.file_len.saturating_sub(FOOTER_LEN as u64),
                format!("footer counts {stated:?} disagree with the blocks {found:?}"),
            ));
        }
        Ok(())
    }

    /// The layout of block `i`, checking it first if this is its first read.
    pub(crate) fn block(&self, i: usize) -> Result<BlockLayout> {
        let record = self.index.get(i).copied().ok_or_else(|| {
            SegmentError::corruption(&self.path, self.footer.data_len, format!("no block {i}"))
        })?;
        match self.blocks[i].load(AtomicOrdering::Relaxed) {
            BAD => Err(self.block_error(i, "block failed its check earlier", None)),
            UNCHECKED => match self.check_block(i, &record) {
                Ok(layout) => {
                    let count = u32::try_from(layout.count).unwrap_or(BAD);
                    self.blocks[i].store(count, AtomicOrdering::Relaxed);
                    Ok(layout)
                }
                Err(detail) => {
                    self.blocks[i].store(BAD, AtomicOrdering::Relaxed);
                    Err(self.block_error(i, &detail, None))
                }
            },
            count => {
                // Checked before: the directory sits right before the trailer.
                let count = count as usize;
                let trailer_at = (record.offset + record.len).saturating_sub(BLOCK_TRAILER_LEN);
                let shared = read_u32(self.bytes.as_slice(), trailer_at).unwrap_or(0) as usize;
                Ok(BlockLayout {
                    start: record.offset,
                    count,
                    dir_at: trailer_at.saturating_sub(DIRECTORY_SLOT_LEN * count),
                    shared,
                })
            }
        }
    }

    fn check_block(
        &self,
        i: usize,
        record: &IndexRecord,
    ) -> std::result::Result<BlockLayout, String> {
        let data = self.bytes.as_slice();
        let block = data
            .get(record.offset..record.offset + record.len)
            .ok_or("block lies outside the file")?;
        if !block::crc_matches(block) {
            return Err("block checksum mismatch".into());
        }
        let layout = block::check_layout(data, record.offset, record.len)?;
        let first = layout.entry(data, 0)?;
        let last = layout.entry(data, layout.count - 1)?;
        if (last.key, last.seqno) != (self.key_at(record.last_key), record.last_seqno) {
            return Err("block's last entry differs from the index".into());
        }
        let previous = i
            .checked_sub(1)
            .and_then(|p| self.index.get(p))
            .map(|p| (self.key_at(p.last_key), p.last_seqno));
        let in_order = match previous {
            Some(prev) => internal_cmp(prev, (first.key, first.seqno)) == Ordering::Less,
            None => Some(first.key) == self.first_key(),
        };
        if !in_order {
            return Err("block's first entry is out of order with the index".into());
        }
        Ok(layout)
    }

    fn block_error(&self, i: usize, detail: &str, key: Option<&[u8]>) -> SegmentError {
        let offset = self.index.get(i).map_or(0, |r| r.offset as u64);
        let detail = match key {
            Some(k) => format!("block {i}: {detail} (reading key `{}`)", key_for_error(k)),
            None => format!("block {i}: {detail}"),
        };
        SegmentError::corruption(&self.path, offset, detail)
    }

    /// The partition point of `before` over the index, for a predicate that holds for blocks
    /// whose last key is below `key` and fails for blocks whose last key is above it.
    ///
    /// The search runs over the blocks' 8-byte key prefixes first — a dense array that stays in
    /// cache — and compares whole keys only among blocks whose prefix equals `key`'s. The
    /// prefixes are taken past the head every key in the segment shares.
    fn find_block(&self, key: &[u8], before: impl FnMut(&IndexRecord) -> bool) -> usize {
        let first = self.bytes.as_slice().get(self.first_key.clone());
        let common = first.and_then(|k| k.get(..self.common_len)).unwrap_or(&[]);
        match block::against_head(key, common) {
            Ordering::Less => return 0,
            Ordering::Greater => return self.index.len(),
            Ordering::Equal => {}
        }
        let p = key_prefix(key.get(common.len()..).unwrap_or(&[]));
        let lo = self.prefixes.partition_point(|&x| x < p);
        let tied = self.prefixes.get(lo..).unwrap_or(&[]);
        let hi = lo + tied.partition_point(|&x| x == p);
        lo + self
            .index
            .get(lo..hi)
            .unwrap_or(&[])
            .partition_point(before)
    }

    /// The index of the first block that may hold keys at or after `key` (or after it, when
    /// `inclusive` is false).
    pub(crate) fn seek_block(&self, key: &[u8], inclusive: bool) -> usize {
        self.find_block(key, |r| {
            let last = self.key_at(r.last_key);
            if inclusive {
                last < key
            } else {
                last <= key
            }
        })
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;

/// Turns a stored entry into an owned one; `None` for an archival marker, which reads treat
/// as the segments holding nothing for the key.
pub(crate) fn to_entry(e: &EntryRef<'_>) -> Option<Entry> {
    if e.archived {
        return None;
    }
    Some(Entry {
        seqno: e.seqno,
        kind: if e.tombstone {
            EntryKind::Tombstone
        } else {
            EntryKind::Value(Value::from(e.value))
        },
        expires_at: e.expires_at,
    })
}

/// Turns a stored key into an owned one; stored keys were checked when their block was.
pub(crate) fn to_key(segment: &Segment, key: &[u8], block: usize) -> Result<Key> {
    Key::new(key).map_err(|e| segment.block_error(block, &e.to_string(), None))
}

fn map(path: &Path) -> Result<Bytes> {
    let file = std::fs::File::open(path).map_err(|e| SegmentError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| SegmentError::io("stat", path, e))?
        .len();
    if len < FOOTER_LEN as u64 {
        return Err(SegmentError::corruption(
            path,
            0,
            format!("file of {len} bytes is shorter than a footer"),
        ));
    }
    let map = mmap::map_read_only(&file).map_err(|e| SegmentError::io("mmap", path, e))?;
    Ok(Bytes::Mapped(map))
}

/// Reads the whole file through the seam, after its footer has shown the file's length to be
/// what the footer says (so nothing is allocated on the word of a damaged file).
fn read_whole(fs: &dyn Fs, path: &Path) -> Result<Bytes> {
    let file = fs
        .open_read(path)
        .map_err(|e| SegmentError::io("open", path, e))?;
    let len = file.len().map_err(|e| SegmentError::io("stat", path, e))?;
    let footer_at = len.checked_sub(FOOTER_LEN as u64).ok_or_else(|| {
        SegmentError::corruption(
            path,
            0,
            format!("file of {len} bytes is shorter than a footer"),
        )
    })?;
    let mut raw = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut raw, footer_at)
        .map_err(|e| SegmentError::io("read", path, e))?;
    Footer::decode(&raw, len).map_err(|e| SegmentError::corruption(path, footer_at, e))?;
    let size = usize::try_from(len).map_err(|_| {
        SegmentError::corruption(path, 0, format!("file of {len} bytes does not fit memory"))
    })?;
    let mut bytes = vec![0u8; size];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| SegmentError::io("read", path, e))?;
    Ok(Bytes::Owned(bytes))
}

impl Segment {
    /// Every version whose key lies in `range`, in segment order (keys ascending, a key's
    /// versions newest first).
    pub fn iter(
        self: &std::sync::Arc<Self>,
        range: &strata_tiering::KeyRange,
    ) -> Result<crate::SegmentIter> {
        crate::iter::SegmentIter::new(std::sync::Arc::clone(self), range)
    }
}
