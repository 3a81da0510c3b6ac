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
    /// Where each entry's key lies in `entries`: the directory's prefixes depend on the
    /// head every key shares, known only once the block is complete.
    keys: Vec<(usize, usize)>,
}

impl BlockBuilder {
    pub fn new(capacity: usize) -> Self {
        BlockBuilder {
            entries: Vec::with_capacity(capacity),
            offsets: Vec::with_capacity(capacity / 64),
            keys: Vec::with_capacity(capacity / 64),
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
        let key_at = self.entries.len() - entry.value.len() - entry.key.len();
        self.keys.push((key_at, entry.key.len()));
    }

    /// Appends the finished block to `out`, returns its length, and empties the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&self.entries);
        let key = |&(at, len): &(usize, usize)| &self.entries[at..at + len];
        let shared = match (self.keys.first(), self.keys.last()) {
            (Some(first), Some(last)) => shared_len(key(first), key(last)),
            _ => 0,
        };
        for (offset, k) in self.offsets.iter().zip(&self.keys) {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&tail_prefix(key(k), shared).to_be_bytes());
        }
        out.extend_from_slice(&(shared as u32).to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.entries.clear();
        self.offsets.clear();
        self.keys.clear();
        out.len() - start
    }
}

/// How many leading bytes `a` and `b` share.
pub(crate) fn shared_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where `key` stands against `head`, the bytes every key of a sorted run starts with: `Less`
/// below every key of the run, `Greater` above every one, `Equal` when `key` starts with
/// `head` and so may fall among them.
pub(crate) fn against_head(key: &[u8], head: &[u8]) -> Ordering {
    let n = key.len().min(head.len());
    match key[..n].cmp(&head[..n]) {
        Ordering::Equal if key.len() < head.len() => Ordering::Less,
        other => other,
    }
}

/// The four bytes of `key` after its first `shared`, zero-padded, as a big-endian number. For
/// keys that share their first `shared` bytes, these order as the keys do where they differ.
fn tail_prefix(key: &[u8], shared: usize) -> u32 {
    let tail = key.get(shared..).unwrap_or(&[]);
    let mut word = [0u8; 4];
    let n = tail.len().min(4);
    word[..n].copy_from_slice(&tail[..n]);
    u32::from_be_bytes(word)
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
    /// Bytes every key in the block starts with.
    pub shared: usize,
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
    let shared = read_u32(block, trailer_at).ok_or("block shorter than its trailer")? as usize;
    let count = read_u32(block, trailer_at + 4).ok_or("block shorter than its trailer")? as usize;
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
        shared,
    };
    // The prefixes are taken past `shared`, so it must be right before they can be checked.
    let (first, last) = match (layout.entry(bytes, 0), layout.entry(bytes, count - 1)) {
        (Ok(first), Ok(last)) => (first, last),
        (Err(e), _) => return Err(format!("entry 0: {e}")),
        (_, Err(e)) => return Err(format!("entry {}: {e}", count - 1)),
    };
    if shared_len(first.key, last.key) != shared {
        return Err(format!(
            "the block says its keys share {shared} bytes, they share {}",
            shared_len(first.key, last.key)
        ));
    }
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
        if layout.prefix(bytes, i) != Some(tail_prefix(entry.key, shared)) {
            return Err(format!(
                "entry {i}: directory key prefix differs from the key"
            ));
        }
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

    /// The directory's key prefix of entry `i` (see [`tail_prefix`]).
    fn prefix(&self, bytes: &[u8], i: usize) -> Option<u32> {
        let at = self
            .dir_at
            .checked_add(i.checked_mul(DIRECTORY_SLOT_LEN)?)?
            .checked_add(4)?;
        let word = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(word.try_into().ok()?))
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
    /// for, or `count`), for a predicate that holds for entries whose key is below `key` and
    /// fails for entries whose key is above it.
    ///
    /// The search runs over the directory's key prefixes — a few adjacent cache lines — and
    /// decodes entries only where a prefix equals `key`'s. The prefixes are taken past the
    /// head every key in the block shares, so keys with a long common head ("task:0000…")
    /// still tell apart.
    pub fn find(
        &self,
        bytes: &[u8],
        key: &[u8],
        before: impl FnMut(&EntryRef<'_>) -> bool,
    ) -> Result<usize, &'static str> {
        let first = self.entry(bytes, 0)?;
        let common = first
            .key
            .get(..self.shared)
            .ok_or("shared head past the first key")?;
        match against_head(key, common) {
            Ordering::Less => return Ok(0),
            Ordering::Greater => return Ok(self.count),
            Ordering::Equal => {}
        }
        self.find_candidate(bytes, key, before)
    }

    /// As [`find`](Self::find) for a caller that only wants the entry of `key` and checks the
    /// entry at the returned position for it: a key that does not start with the block's
    /// shared head is in no entry, and gets some position whose entry holds another key.
    ///
    /// Skipping the head check spares decoding the first entry, often a cache line (and page)
    /// of its own at the far end of the block from the directory.
    pub fn find_candidate(
        &self,
        bytes: &[u8],
        key: &[u8],
        mut before: impl FnMut(&EntryRef<'_>) -> bool,
    ) -> Result<usize, &'static str> {
        let p = tail_prefix(key, self.shared);
        let prefix = |i| self.prefix(bytes, i).ok_or("directory outside the block");
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if prefix(mid)? < p {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut end = lo;
        while end < self.count && prefix(end)? == p {
            end += 1;
        }
        while lo < end {
            let mid = lo + (end - lo) / 2;
            if before(&self.entry(bytes, mid)?) {
                lo = mid + 1;
            } else {
                end = mid;
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
            .find(&block, b"a", |e| {
                internal_cmp((e.key, e.seqno), (b"a", 2)).is_lt()
            })
            .unwrap();
        assert_eq!(at, 1);
        let at = layout.find(&block, b"b", |e| e.key < &b"b"[..]).unwrap();
        assert_eq!(at, 2);
        let at = layout.find(&block, b"d", |e| e.key < &b"d"[..]).unwrap();
        assert_eq!(at, 3);
        let at = layout.find(&block, b"", |e| e.key < &b""[..]).unwrap();
        assert_eq!(at, 0);
    }

    #[test]
    fn search_past_a_shared_head() {
        let keys: [&'static [u8]; 4] = [
            b"task:000000010",
            b"task:000000011",
            b"task:0000000115",
            b"task:000000020",
        ];
        let block = built(&keys.map(|k| entry(k, 1)));
        let layout = check_layout(&block, 0, block.len()).unwrap();
        assert_eq!(layout.shared, 12, "the keys share \"task:0000000\"");
        let position = |key: &[u8]| layout.find(&block, key, |e| e.key < key).unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(position(key), i);
        }
        assert_eq!(position(b"task:0000000105"), 1);
        assert_eq!(position(b"task:000000012"), 3);
        assert_eq!(position(b"task:00000003"), 4);
        assert_eq!(position(b"task:000"), 0, "a proper prefix of the head");
        assert_eq!(position(b"a"), 0);
        assert_eq!(position(b"task:1"), 4);
        assert_eq!(position(b"zzz"), 4);
    }

    #[test]
    fn keys_against_a_shared_head() {
        let head = b"task:00";
        assert_eq!(against_head(b"task:001", head), Ordering::Equal);
        assert_eq!(against_head(b"task:00", head), Ordering::Equal);
        assert_eq!(
            against_head(b"task:0", head),
            Ordering::Less,
            "a proper prefix"
        );
        assert_eq!(against_head(b"task:01", head), Ordering::Greater);
        assert_eq!(against_head(b"a", head), Ordering::Less);
        assert_eq!(against_head(b"", head), Ordering::Less);
        assert_eq!(against_head(b"anything", b""), Ordering::Equal);
    }

    #[test]
    fn a_shared_length_the_keys_do_not_have_is_refused() {
        let mut block = built(&[entry(b"abc1", 1), entry(b"abc2", 1)]);
        let trailer_at = block.len() - BLOCK_TRAILER_LEN;
        for wrong in [0u32, 2, 4, 1000] {
            block[trailer_at..trailer_at + 4].copy_from_slice(&wrong.to_le_bytes());
            let crc_at = block.len() - 4;
            let crc = crc32fast::hash(&block[..crc_at]);
            block[crc_at..].copy_from_slice(&crc.to_le_bytes());
            assert!(
                check_layout(&block, 0, block.len()).is_err(),
                "shared {wrong}"
            );
        }
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
