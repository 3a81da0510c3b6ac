//! Parsing and checking the block index of a segment (layout in [`format`](mod@crate::format)).

use std::cmp::Ordering;
use std::ops::Range;

use strata_tiering::{SeqNo, MAX_KEY_LEN};

use crate::format::{
    internal_cmp, read_u32, read_u64, Footer, BLOCK_TRAILER_LEN, DIRECTORY_SLOT_LEN,
    INDEX_RECORD_LEN, MIN_ENTRY_HEADER_LEN,
};

/// Where one data block is and what its last entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexRecord {
    pub offset: usize,
    pub len: usize,
    pub last_seqno: SeqNo,
    /// Absolute offset and length of the last key.
    pub last_key: (usize, usize),
}

/// Parses and checks the block index. Errors carry the absolute offset of the damage.
#[allow(clippy::type_complexity)]
pub(crate) fn parse_index(
    bytes: &[u8],
    base: usize,
    footer: &Footer,
) -> std::result::Result<(Range<usize>, Box<[IndexRecord]>), (usize, String)> {
    let err = |at: usize, msg: &str| (base + at, msg.to_owned());
    let first_len =
        read_u32(bytes, 0).ok_or_else(|| err(0, "index shorter than its header"))? as usize;
    if first_len > MAX_KEY_LEN || (first_len == 0) != (footer.block_count == 0) {
        return Err(err(0, "first key length out of range"));
    }
    let mut at = 4 + first_len;
    if at > bytes.len() {
        return Err(err(0, "first key runs past the index"));
    }
    let first_key = base + 4..base + at;
    // The footer bounded block_count by the index length, so this allocation is bounded too.
    let mut records = Vec::with_capacity(footer.block_count as usize);
    let mut expected_offset = 0usize;
    let min_block = MIN_ENTRY_HEADER_LEN + 1 + DIRECTORY_SLOT_LEN + BLOCK_TRAILER_LEN;
    for _ in 0..footer.block_count {
        let (Some(offset), Some(len), Some(last_seqno), Some(key_len)) = (
            read_u64(bytes, at),
            read_u32(bytes, at + 8),
            read_u64(bytes, at + 12),
            read_u32(bytes, at + 20),
        ) else {
            return Err(err(at, "index record cut short"));
        };
        let (offset, len, key_len) = (offset as usize, len as usize, key_len as usize);
        if offset != expected_offset || len < min_block {
            return Err(err(
                at,
                "index record's block is not where the previous one ended",
            ));
        }
        if key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(err(at, "index record's key length out of range"));
        }
        let key_at = at + INDEX_RECORD_LEN;
        let key_end = key_at + key_len;
        if key_end > bytes.len() {
            return Err(err(at, "index record's key runs past the index"));
        }
        let record = IndexRecord {
            offset,
            len,
            last_seqno,
            last_key: (base + key_at, key_len),
        };
        if let Some(prev) = records.last() {
            let prev: &IndexRecord = prev;
            let prev_key = &bytes[prev.last_key.0 - base..prev.last_key.0 - base + prev.last_key.1];
            if internal_cmp(
                (prev_key, prev.last_seqno),
                (&bytes[key_at..key_end], last_seqno),
            ) != Ordering::Less
            {
                return Err(err(at, "index records out of order"));
            }
        }
        records.push(record);
        expected_offset = offset
            .checked_add(len)
            .ok_or_else(|| err(at, "block length overflows"))?;
        at = key_end;
    }
    if at != bytes.len() {
        return Err(err(at, "bytes left over after the last index record"));
    }
    if expected_offset as u64 != footer.data_len {
        return Err(err(at, "blocks do not fill the data section"));
    }
    if let Some(first_record) = records.first() {
        let first = &bytes[4..4 + first_len];
        let last = &bytes[first_record.last_key.0 - base
            ..first_record.last_key.0 - base + first_record.last_key.1];
        if first > last {
            return Err(err(0, "first key after the first block's last key"));
        }
    }
    Ok((first_key, records.into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use crate::format::key_prefix;

    #[test]
    fn prefixes_never_contradict_key_order() {
        let keys: [&[u8]; 9] = [
            b"a",
            b"a\x00",
            b"a\x00\x01",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\x00",
            b"abcdefghz",
            b"abcdefgi",
            b"\xff",
        ];
        for a in keys {
            for b in keys {
                let (pa, pb) = (key_prefix(a), key_prefix(b));
                if pa != pb {
                    assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} {b:?}");
                }
            }
        }
    }
}
