//! Data blocks: building them (writer side) and checking and reading them (reader side).
//! The layout is in [`format`](mod@crate::format).

use std::cmp::Ordering;

use crate::format::{
    internal_cmp, read_u32, EntryRef, BLOCK_TRAILER_LEN, DIRECTORY_SLOT_LEN, MIN_ENTRY_HEADER_LEN,
};

/// Accumulates entries of one block.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    entries: Vec<u8>,
    offsets: Vec<u32>,
}

impl BlockBuilder {
    pub fn new(capacity: usize) -> Self {
        BlockBuilder {
            entries: Vec::with_capacity(capacity),
            offsets: Vec::with_capacity(capacity / 64),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The encoded size of the block if an entry of `entry_len` bytes were added.
    pub fn len_with(&self, entry_len: usize) -> usize {
        self.entries.len()
            + entry_len
            + (self.offsets.len() + 1) * DIRECTORY_SLOT_LEN
            + BLOCK_TRAILER_LEN
    }

    /// Adds an entry. The caller has checked that the block stays under 4 GiB.
    pub fn add(&mut self, entry: &EntryRef<'_>) {
        self.offsets.push(self.entries.len() as u32);
        entry.encode(&mut self.entries);
    }

    /// Appends the finished block to `out`, returns its length, and empties the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&self.entries);
        for offset in &self.offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.entries.clear();
        self.offsets.clear();
        out.len() - start
    }
}

/// Where a checked block's parts are, as absolute offsets into the segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockLayout {
    /// Where the block starts.
    pub start: usize,
    /// Entries in the block (at least one).
    pub count: usize,
    /// Where the entry directory starts, which is where the entries end.
    pub dir_at: usize,
}

/// Checks a block's CRC. `block` is the whole block, trailer included.
pub(crate) fn crc_matches(block: &[u8]) -> bool {
    let Some(body_len) = block.len().checked_sub(4) else {
        return false;
    };
    read_u32(block, body_len) == Some(crc32fast::hash(&block[..body_len]))
}

/// Checks the structure of a block whose CRC passed, starting at `start` in `bytes` and
/// `len` bytes long: the trailer, every offset and every entry, and the order of the entries.
/// Returns the layout and the block's last entry's key and seqno for the caller to compare
/// with the index.
pub(crate) fn check_layout(bytes: &[u8], start: usize, len: usize) -> Result<BlockLayout, String> {
    let end = start.checked_add(len).ok_or("block end overflows")?;
    let block = bytes.get(start..end).ok_or("block lies outside the file")?;
    let trailer_at = len
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or("block shorter than its trailer")?;
    let count = read_u32(block, trailer_at).ok_or("block shorter than its trailer")? as usize;
    if count == 0 {
        return Err("block with no entries".into());
    }
    let dir_len = count
        .checked_mul(DIRECTORY_SLOT_LEN)
        .ok_or("entry count overflows")?;
    let dir_at = trailer_at
        .checked_sub(dir_len)
        .ok_or_else(|| format!("block of {len} bytes cannot hold {count} directory slots"))?;
    if dir_at / (MIN_ENTRY_HEADER_LEN + 1) < count {
        return Err(format!(
            "{count} entries cannot fit {dir_at} bytes of entries"
        ));
    }
    let layout = BlockLayout {
        start,
        count,
        dir_at: start + dir_at,
    };
    let mut previous: Option<(&[u8], u64)> = None;
    let mut expected_start = 0usize;
    for i in 0..count {
        let slot_start = layout.offset(bytes, i).unwrap_or(usize::MAX);
        if slot_start != expected_start {
            return Err(format!(
                "entry {i} starts at {slot_start}, expected {expected_start}"
            ));
        }
        let entry = layout
            .entry(bytes, i)
            .map_err(|e| format!("entry {i}: {e}"))?;
        expected_start = slot_start + entry.encoded_len();
        let this = (entry.key, entry.seqno);
        if let Some(prev) = previous {
            if internal_cmp(prev, this) != Ordering::Less {
                return Err(format!("entry {i} is out of order"));
            }
        }
        previous = Some(this);
    }
    Ok(layout)
}

impl BlockLayout {
    /// Where entry `i` starts, relative to the block.
    fn offset(&self, bytes: &[u8], i: usize) -> Option<usize> {
        let at = self
            .dir_at
            .checked_add(i.checked_mul(DIRECTORY_SLOT_LEN)?)?;
        Some(read_u32(bytes, at)? as usize)
    }

    /// The bytes of entry `i`'s slot.
    fn slot<'a>(&self, bytes: &'a [u8], i: usize) -> Option<&'a [u8]> {
        let begin = self.start.checked_add(self.offset(bytes, i)?)?;
        let end = if i + 1 < self.count {
            self.start.checked_add(self.offset(bytes, i + 1)?)?
        } else {
            self.dir_at
        };
        bytes.get(begin..end)
    }

    /// Decodes entry `i` and returns it with the absolute offset of its key.
    pub fn entry_with_key_at<'a>(
        &self,
        bytes: &'a [u8],
        i: usize,
    ) -> Result<(EntryRef<'a>, usize), &'static str> {
        let entry = self.entry(bytes, i)?;
        let slot_start = self.start
            + self
                .offset(bytes, i)
                .ok_or("entry offset outside the block")?;
        let header = entry.encoded_len() - entry.key.len() - entry.value.len();
        Ok((entry, slot_start + header))
    }

    /// Decodes entry `i` (which must be below `count`).
    pub fn entry<'a>(&self, bytes: &'a [u8], i: usize) -> Result<EntryRef<'a>, &'static str> {
        if i >= self.count {
            return Err("entry index past the block");
        }
        EntryRef::decode(self.slot(bytes, i).ok_or("entry slot outside the block")?)
    }

    /// The partition point of `before` over the block's entries (the first entry it fails
    /// for, or `count`), for a predicate that holds for entries whose key is below the key
    /// sought and fails for entries whose key is above it. A block is a few KiB, so the
    /// entries the binary search decodes sit in a few cache lines.
    pub fn find(
        &self,
        bytes: &[u8],
        mut before: impl FnMut(&EntryRef<'_>) -> bool,
    ) -> Result<usize, &'static str> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(&self.entry(bytes, mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(key: &'static [u8], seqno: u64) -> EntryRef<'static> {
        EntryRef {
            key,
            seqno,
            tombstone: false,
            archived: false,
            expires_at: None,
            value: b"v",
        }
    }

    fn built(entries: &[EntryRef<'static>]) -> Vec<u8> {
        let mut builder = BlockBuilder::new(4096);
        for e in entries {
            builder.add(e);
        }
        let mut out = Vec::new();
        let len = builder.finish_into(&mut out);
        assert_eq!(len, out.len());
        assert!(builder.is_empty());
        out
    }

    #[test]
    fn build_check_and_search() {
        let entries = [entry(b"a", 3), entry(b"a", 1), entry(b"c", 2)];
        let block = built(&entries);
        assert!(crc_matches(&block));
        let layout = check_layout(&block, 0, block.len()).unwrap();
        assert_eq!(layout.count, 3);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(layout.entry(&block, i).unwrap(), *e);
        }
        let at = layout
            .find(&block, |e| {
                internal_cmp((e.key, e.seqno), (b"a", 2)).is_lt()
            })
            .unwrap();
        assert_eq!(at, 1);
        let at = layout.find(&block, |e| e.key < &b"b"[..]).unwrap();
        assert_eq!(at, 2);
        let at = layout.find(&block, |e| e.key < &b"d"[..]).unwrap();
        assert_eq!(at, 3);
        let at = layout.find(&block, |e| e.key < &b""[..]).unwrap();
        assert_eq!(at, 0);
    }

    #[test]
    fn crc_catches_every_bit_flip() {
        let block = built(&[entry(b"key", 1)]);
        for bit in 0..block.len() * 8 {
            let mut bad = block.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!crc_matches(&bad), "bit {bit}");
        }
    }

    #[test]
    fn layout_rejects_disorder_and_bad_offsets() {
        let unordered = built(&[entry(b"b", 1), entry(b"a", 1)]);
        assert!(check_layout(&unordered, 0, unordered.len()).is_err());
        let duplicate = built(&[entry(b"a", 1), entry(b"a", 1)]);
        assert!(check_layout(&duplicate, 0, duplicate.len()).is_err());
        let mut huge_count = built(&[entry(b"a", 1)]);
        let at = huge_count.len() - 8;
        huge_count[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_layout(&huge_count, 0, huge_count.len()).is_err());
        assert!(check_layout(&[0u8; 3], 0, 3).is_err());
        assert!(check_layout(&[0u8; 16], 8, 16).is_err());
    }
}
