//! The segment file format, byte by byte. All integers are little-endian; CRC32 is the IEEE
//! polynomial (`crc32fast`).
//!
//! A segment is one immutable file named `<id, 20 decimal digits>.seg`. It holds every version
//! of its keys, sorted by key (bytewise, ascending) and, within a key, by seqno descending: the
//! order in which a read at a snapshot meets the version it wants first.
//!
//! ```text
//! +--------------+--------------+-----+----------------+-------------+--------------+--------+
//! | data block 0 | data block 1 | ... | data block n-1 | block index | bloom filter | footer |
//! +--------------+--------------+-----+----------------+-------------+--------------+--------+
//! 0                                                    data_len                     file_len-128
//! ```
//!
//! # Data block (about `block_size` = 4 KiB; one entry larger than that gets a block to itself)
//!
//! ```text
//! +---------+-----+-----------+------------------------------+------------+-----------+---------+
//! | entry 0 | ... | entry c-1 | entry directory: c × 8 bytes | shared u32 | count u32 | crc u32 |
//! +---------+-----+-----------+------------------------------+------------+-----------+---------+
//! directory slot i: +------------+------------------------------------------------------+
//!                   | offset u32 | key prefix: 4 bytes of the key after `shared`, BE u32 |
//!                   +------------+------------------------------------------------------+
//!   offset i = where entry i starts, from the start of the block: offset 0 is 0, they increase
//!   strictly, and each entry fills exactly the bytes up to the next one (the last, up to the
//!   directory); that span is the entry's slot.
//!   shared = how many leading bytes the block's first and last keys (so all its keys) share.
//!   key prefix = bytes shared .. shared+4 of entry i's key (fewer, followed by zeros, for a
//!   shorter key), read as a big-endian u32, so a lookup binary-searches a few adjacent cache
//!   lines and decodes only the entries whose prefix ties, even when every key starts alike.
//!   count = c >= 1. crc = CRC32 of every byte of the block before it.
//! ```
//!
//! # Entry (a header of 3 to 14 bytes, 8 more with an expiry, then the key and the value)
//!
//! ```text
//! +-------------+-------------+-------+----------------+---------+----------------------------+
//! | key len     | seqno       | flags | expires at     | key     | value                      |
//! | varint, 1-3 | varint 1-10 | u8    | u64, if flag 1 | key len | the rest of the entry slot |
//! +-------------+-------------+-------+----------------+---------+----------------------------+
//!   varint    = unsigned LEB128: seven bits per byte, lowest first, the top bit set on every
//!               byte but the last; the shortest form only (no trailing zero byte)
//!   key len   = 1 ..= 65536 (MAX_KEY_LEN)
//!   flags     = bit 0 TOMBSTONE (then the value is empty), bit 1 HAS_EXPIRY, bit 2 ARCHIVED
//!               (then the value is empty and bits 0 and 1 are clear); other bits 0
//!   expires at = unix milliseconds, present only with HAS_EXPIRY
//! ```
//!
//! The value has no length field: the directory bounds every entry's slot, and the block CRC
//! covers the directory. A typical entry (a key under 128 bytes, a seqno under 2^21) spends
//! 5 bytes on its header.
//!
//! An ARCHIVED entry is a marker, not a version: "this key's versions up to this seqno now
//! live in the cold tier". A reader that meets it as a key's newest visible version answers
//! as if the segments held nothing for the key, so the read falls through to cold. It shares
//! its seqno with the version it archived and is written in a later segment, so on that tie
//! the marker (the newer segment's copy) is what readers and merges keep.
//!
//! # Block index (one record per data block, after the segment's first key)
//!
//! ```text
//! +---------------+-----------+--------------------------------------------------------+
//! | first key len | first key | record 0 | record 1 | ... | record n-1                    |
//! | u32           |           |                                                        |
//! +---------------+-----------+--------------------------------------------------------+
//! record: +--------------+-----------+-------------+--------------+----------+
//!         | block offset | block len | last seqno  | last key len | last key |
//!         | u64          | u32       | u64         | u32          |          |
//!         +--------------+-----------+-------------+--------------+----------+
//!           0              8           12            20             24
//! ```
//!
//! The records describe the data blocks in file order: block 0 starts at 0 and each block
//! starts where the one before it ends; the last ends at `data_len`. `last key` and `last seqno`
//! are those of the block's last entry. The first key is the first entry's key (length 0 only
//! in a segment without entries). The footer holds the index's CRC32.
//!
//! # Bloom filter (blocked: every key sets and tests bits of one 64-byte line)
//!
//! ```text
//! +------------+-------------+------------------------------------------+
//! | probes u32 | lines u32   | bits: lines × 64 bytes                   |
//! +------------+-------------+------------------------------------------+
//!   probes = 1 ..= 16, lines >= 1; bit b of the filter is bit (b % 8) of byte (b / 8)
//! ```
//!
//! A key's hash is XXH64 of its bytes with seed 0 (the published xxHash specification).
//! With `h` that hash, the key's line is `((h >> 32) * lines) >> 32`, and each of the `probes`
//! bits is found by `x = x * 0x9E3779B9 (mod 2^32)`, starting from `x = h mod 2^32`, taking
//! bit `x >> 23` (0..512) of the line. The writer sizes the filter at `bits_per_key` (default
//! 10) bits per distinct key, rounded up to whole lines, with `round(bits_per_key × ln 2)`
//! probes: about 1% false positives. The footer holds the filter's CRC32.
//!
//! # Footer (the last 128 bytes)
//!
//! ```text
//! offset size field
//!   0     8   magic           "STRATASG"
//!   8     4   version         2 (version 1, with fixed-width entry headers and no shared head
//!                             in blocks, is refused)
//!  12     4   flags           0
//!  16     8   entry count     versions in the segment, tombstones included
//!  24     8   key count       distinct keys
//!  32     8   tombstone count
//!  40     8   min seqno       lowest seqno of any entry (0 when there is none)
//!  48     8   max seqno       highest seqno of any entry (0 when there is none)
//!  56     8   data len        bytes of data blocks, from offset 0; the index starts here
//!  64     8   block count     data blocks, and records in the index
//!  72     8   index len       bytes of the block index
//!  80     8   bloom len       bytes of the bloom filter, which follows the index
//!  88     4   index crc       CRC32 of the block index
//!  92     4   bloom crc       CRC32 of the bloom filter
//!  96     8   file len        the whole file: data len + index len + bloom len + 128
//! 104     8   payload bytes   sum of every entry's key and value lengths
//! 112     8   segment id      equals the number in the file name
//! 120     4   reserved        0
//! 124     4   footer crc      CRC32 of bytes 0..124
//! ```
//!
//! # What a reader trusts
//!
//! Nothing before it is checked. The footer is read first and believed only once its CRC, magic,
//! version, reserved bytes and `file len` (against the real length of the file) pass, and the
//! section lengths add up to the file length without overflow. Every count is checked against
//! the bytes that would hold it before anything is allocated for it (`block count` against the
//! index length, for instance), so no allocation is ever sized by an untrusted field. A block's
//! CRC is checked when the block is first read; the index and the filter are checked when the
//! segment is opened.

use strata_tiering::{SeqNo, MAX_KEY_LEN};

/// The first eight bytes of the footer.
pub const MAGIC: [u8; 8] = *b"STRATASG";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 2;
/// Size of the footer.
pub const FOOTER_LEN: usize = 128;
/// The smallest an entry's header can be: one-byte key length and seqno, and the flags.
pub const MIN_ENTRY_HEADER_LEN: usize = 3;
/// The largest a varint of a u64 can be.
const MAX_VARINT_LEN: usize = 10;
/// Size of the optional expiry field.
pub const EXPIRY_LEN: usize = 8;
/// Size of a block's trailer (shared head length, count and CRC).
pub const BLOCK_TRAILER_LEN: usize = 12;
/// Size of one slot of a block's entry directory: the entry's offset and key prefix.
pub const DIRECTORY_SLOT_LEN: usize = 8;
/// Size of an index record before its key.
pub const INDEX_RECORD_LEN: usize = 24;
/// Size of the bloom filter's header.
pub const BLOOM_HEADER_LEN: usize = 8;
/// Bytes per bloom filter line.
pub const BLOOM_LINE_BYTES: usize = 64;
/// Entry flag: the entry is a deletion.
pub const FLAG_TOMBSTONE: u8 = 0b01;
/// Entry flag: the entry carries an expiry time.
pub const FLAG_HAS_EXPIRY: u8 = 0b10;
/// Entry flag: the entry is an archival marker (see the entry format above).
pub const FLAG_ARCHIVED: u8 = 0b100;
/// The most probes a filter may ask for.
pub const MAX_PROBES: u32 = 16;
/// The largest value a segment can hold (a block, whose offsets are u32, must hold it).
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of files being written (renamed into place once complete and durable).
pub const TEMP_SUFFIX: &str = ".tmp";

/// A segment's number: unique within a segment directory, never reused, and the name of its file.
pub type SegmentId = u64;

/// The file name of segment `id`.
pub fn file_name(id: SegmentId) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back into its id; `None` for any other name.
pub fn parse_file_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a footer says, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footer {
    /// Versions in the segment, tombstones included.
    pub entry_count: u64,
    /// Distinct keys.
    pub key_count: u64,
    /// Tombstones.
    pub tombstone_count: u64,
    /// Lowest seqno held (0 when empty).
    pub min_seqno: SeqNo,
    /// Highest seqno held (0 when empty).
    pub max_seqno: SeqNo,
    /// Bytes of data blocks.
    pub data_len: u64,
    /// Number of data blocks.
    pub block_count: u64,
    /// Bytes of the block index.
    pub index_len: u64,
    /// Bytes of the bloom filter.
    pub bloom_len: u64,
    /// CRC32 of the block index.
    pub index_crc: u32,
    /// CRC32 of the bloom filter.
    pub bloom_crc: u32,
    /// Length of the whole file.
    pub file_len: u64,
    /// Sum of the key and value lengths of every entry.
    pub payload_bytes: u64,
    /// The segment's id.
    pub segment_id: SegmentId,
}

impl Footer {
    /// Encodes the footer, computing its CRC.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        put_u64(&mut out, 16, self.entry_count);
        put_u64(&mut out, 24, self.key_count);
        put_u64(&mut out, 32, self.tombstone_count);
        put_u64(&mut out, 40, self.min_seqno);
        put_u64(&mut out, 48, self.max_seqno);
        put_u64(&mut out, 56, self.data_len);
        put_u64(&mut out, 64, self.block_count);
        put_u64(&mut out, 72, self.index_len);
        put_u64(&mut out, 80, self.bloom_len);
        out[88..92].copy_from_slice(&self.index_crc.to_le_bytes());
        out[92..96].copy_from_slice(&self.bloom_crc.to_le_bytes());
        put_u64(&mut out, 96, self.file_len);
        put_u64(&mut out, 104, self.payload_bytes);
        put_u64(&mut out, 112, self.segment_id);
        let crc = crc32fast::hash(&out[..124]);
        out[124..128].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a footer read from a file of `actual_len` bytes.
    ///
    /// On success the three sections lie inside the file, end to end, before the footer.
    pub fn decode(bytes: &[u8; FOOTER_LEN], actual_len: u64) -> Result<Footer, String> {
        let stored = read_u32(bytes, 124).unwrap_or(0);
        if crc32fast::hash(&bytes[..124]) != stored {
            return Err("footer checksum mismatch".into());
        }
        if bytes[0..8] != MAGIC {
            return Err("not a segment file (bad magic)".into());
        }
        let word = |at| read_u64(bytes, at).unwrap_or(0);
        let version = read_u32(bytes, 8).unwrap_or(0);
        if version != VERSION {
            return Err(format!(
                "unsupported segment format version {version} (this release reads version \
                 {VERSION})"
            ));
        }
        let flags = read_u32(bytes, 12).unwrap_or(0);
        let reserved = read_u32(bytes, 120).unwrap_or(0);
        if flags != 0 || reserved != 0 {
            return Err(format!(
                "unknown footer flags {flags:#x} or nonzero reserved bytes"
            ));
        }
        let footer = Footer {
            entry_count: word(16),
            key_count: word(24),
            tombstone_count: word(32),
            min_seqno: word(40),
            max_seqno: word(48),
            data_len: word(56),
            block_count: word(64),
            index_len: word(72),
            bloom_len: word(80),
            index_crc: read_u32(bytes, 88).unwrap_or(0),
            bloom_crc: read_u32(bytes, 92).unwrap_or(0),
            file_len: word(96),
            payload_bytes: word(104),
            segment_id: word(112),
        };
        if footer.file_len != actual_len {
            return Err(format!(
                "footer says the file is {} bytes, it is {actual_len}",
                footer.file_len
            ));
        }
        let sections = footer
            .data_len
            .checked_add(footer.index_len)
            .and_then(|n| n.checked_add(footer.bloom_len))
            .and_then(|n| n.checked_add(FOOTER_LEN as u64));
        if sections != Some(actual_len) {
            return Err(format!(
                "sections (data {}, index {}, bloom {}) do not add up to the file length {actual_len}",
                footer.data_len, footer.index_len, footer.bloom_len
            ));
        }
        if footer.key_count > footer.entry_count
            || footer.tombstone_count > footer.entry_count
            || footer.min_seqno > footer.max_seqno
            || (footer.entry_count == 0) != (footer.block_count == 0)
        {
            return Err("inconsistent counts or seqno range in the footer".into());
        }
        // Each block holds at least one entry and each entry at least one key byte, so these
        // bound the counts by bytes that exist.
        let min_block = (MIN_ENTRY_HEADER_LEN + 1 + DIRECTORY_SLOT_LEN + BLOCK_TRAILER_LEN) as u64;
        if footer.block_count > footer.data_len / min_block
            || footer.block_count > footer.index_len / (INDEX_RECORD_LEN as u64 + 1)
            || footer.entry_count
                > footer.data_len / (MIN_ENTRY_HEADER_LEN + 1 + DIRECTORY_SLOT_LEN) as u64
        {
            return Err("block or entry count larger than the file can hold".into());
        }
        Ok(footer)
    }
}

/// One entry as stored, borrowing its key and value from the segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The key's bytes (1 to `MAX_KEY_LEN`).
    pub key: &'a [u8],
    /// The version's seqno.
    pub seqno: SeqNo,
    /// True for a deletion.
    pub tombstone: bool,
    /// True for an archival marker: the key's versions up to `seqno` live in the cold tier.
    pub archived: bool,
    /// Expiry in unix milliseconds.
    pub expires_at: Option<u64>,
    /// The value's bytes (empty for a deletion).
    pub value: &'a [u8],
}

impl EntryRef<'_> {
    /// Bytes the entry takes in a block, offset slot excluded.
    pub fn encoded_len(&self) -> usize {
        let expiry = if self.expires_at.is_some() {
            EXPIRY_LEN
        } else {
            0
        };
        varint_len(self.key.len() as u64)
            + varint_len(self.seqno)
            + 1
            + expiry
            + self.key.len()
            + self.value.len()
    }

    /// Appends the entry's encoding to `out`. Lengths must have been checked by the caller.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.tombstone {
            flags |= FLAG_TOMBSTONE;
        }
        if self.expires_at.is_some() {
            flags |= FLAG_HAS_EXPIRY;
        }
        if self.archived {
            flags |= FLAG_ARCHIVED;
        }
        put_varint(out, self.key.len() as u64);
        put_varint(out, self.seqno);
        out.push(flags);
        if let Some(at) = self.expires_at {
            out.extend_from_slice(&at.to_le_bytes());
        }
        out.extend_from_slice(self.key);
        out.extend_from_slice(self.value);
    }

    /// Decodes the entry that fills `slot` exactly.
    pub fn decode(slot: &[u8]) -> Result<EntryRef<'_>, &'static str> {
        let (key_len, at) = read_varint(slot, 0).ok_or("entry key length malformed")?;
        let (seqno, at) = read_varint(slot, at).ok_or("entry seqno malformed")?;
        let flags = *slot.get(at).ok_or("entry header cut short")?;
        let mut at = at + 1;
        if flags & !(FLAG_TOMBSTONE | FLAG_HAS_EXPIRY | FLAG_ARCHIVED) != 0 {
            return Err("unknown entry flags");
        }
        if key_len == 0 || key_len > MAX_KEY_LEN as u64 {
            return Err("entry key length out of range");
        }
        let expires_at = if flags & FLAG_HAS_EXPIRY != 0 {
            let expiry = read_u64(slot, at).ok_or("entry expiry cut short")?;
            at += EXPIRY_LEN;
            Some(expiry)
        } else {
            None
        };
        let rest = slot.get(at..).ok_or("entry header cut short")?;
        if rest.len() < key_len as usize {
            return Err("entry key runs past its slot");
        }
        let (key, value) = rest.split_at(key_len as usize);
        let archived = flags & FLAG_ARCHIVED != 0;
        if archived && (flags != FLAG_ARCHIVED || !value.is_empty()) {
            return Err("archival marker with a value, a deletion or an expiry");
        }
        let tombstone = flags & FLAG_TOMBSTONE != 0;
        if tombstone && !value.is_empty() {
            return Err("tombstone with a value");
        }
        Ok(EntryRef {
            key,
            seqno,
            tombstone,
            archived,
            expires_at,
            value,
        })
    }
}

/// Bytes the varint of `value` takes.
fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Appends `value` as an unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the varint at `at`: its value and where it ends. `None` if it is cut short, longer
/// than a u64 allows, or not in its shortest form.
#[inline]
fn read_varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    // Key lengths are almost always one byte: answer those without the loop.
    let first = *bytes.get(at)?;
    if first < 0x80 {
        return Some((u64::from(first), at + 1));
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.get(at..)?.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u64::from(byte & 0x7F);
        if i == MAX_VARINT_LEN - 1 && bits > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 {
                return None;
            }
            return Some((value, at + i + 1));
        }
    }
    None
}

/// The first eight bytes of `key` as a big-endian number, zero-padded. For two keys whose
/// prefixes differ, the prefixes order as the keys do (a key that ends early pads with zeros
/// and is a prefix of the other, so it is the smaller); equal prefixes say nothing.
pub fn key_prefix(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(word)
}

/// Orders `(key, seqno)` pairs as segments store them: key ascending, then seqno descending.
pub fn internal_cmp(a: (&[u8], SeqNo), b: (&[u8], SeqNo)) -> std::cmp::Ordering {
    a.0.cmp(b.0).then(b.1.cmp(&a.1))
}

pub(crate) fn put_u64(out: &mut [u8], at: usize, value: u64) {
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Reads a u32 at `at`, or `None` if the bytes are not there.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

/// Reads a u64 at `at`, or `None` if the bytes are not there.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(word.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample_footer() -> Footer {
        Footer {
            entry_count: 3,
            key_count: 2,
            tombstone_count: 1,
            min_seqno: 4,
            max_seqno: 9,
            data_len: 100,
            block_count: 1,
            index_len: 40,
            bloom_len: 72,
            index_crc: 7,
            bloom_crc: 8,
            file_len: 100 + 40 + 72 + FOOTER_LEN as u64,
            payload_bytes: 12,
            segment_id: 42,
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(7), "00000000000000000007.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        for other in ["7.seg", "00000000000000000007.seg.tmp", "MANIFEST", ""] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn footer_round_trips_and_catches_every_bit_flip() {
        let footer = sample_footer();
        let bytes = footer.encode();
        assert_eq!(Footer::decode(&bytes, footer.file_len), Ok(footer));
        for bit in 0..FOOTER_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Footer::decode(&bad, footer.file_len).is_err(), "bit {bit}");
        }
        assert!(Footer::decode(&bytes, footer.file_len + 1).is_err());
    }

    #[test]
    fn footer_rejects_sections_that_do_not_fit() {
        let mut footer = sample_footer();
        footer.index_len = u64::MAX - 10;
        assert!(Footer::decode(&footer.encode(), footer.file_len).is_err());
        let mut footer = sample_footer();
        footer.block_count = 1 << 40;
        assert!(Footer::decode(&footer.encode(), footer.file_len).is_err());
    }

    #[test]
    fn entries_round_trip() {
        let cases = [
            EntryRef {
                key: b"k",
                seqno: 5,
                tombstone: false,
                archived: false,
                expires_at: None,
                value: b"value",
            },
            EntryRef {
                key: b"key",
                seqno: u64::MAX,
                tombstone: true,
                archived: false,
                expires_at: Some(0),
                value: b"",
            },
            EntryRef {
                key: b"gone",
                seqno: 9,
                tombstone: false,
                archived: true,
                expires_at: None,
                value: b"",
            },
        ];
        for entry in cases {
            let mut out = Vec::new();
            entry.encode(&mut out);
            assert_eq!(out.len(), entry.encoded_len());
            assert_eq!(EntryRef::decode(&out), Ok(entry));
            // The slot bounds the value: a byte more is a byte more of value, which a value-less
            // entry cannot have.
            out.push(0);
            assert_eq!(EntryRef::decode(&out).is_err(), entry.value.is_empty());
            let header = entry.encoded_len() - entry.key.len() - entry.value.len();
            assert!(EntryRef::decode(&out[..header + entry.key.len() - 1]).is_err());
        }
    }

    #[test]
    fn a_version_1_footer_is_refused_by_name() {
        let footer = sample_footer();
        let mut bytes = footer.encode();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..124]);
        bytes[124..128].copy_from_slice(&crc.to_le_bytes());
        let error = Footer::decode(&bytes, footer.file_len).unwrap_err();
        assert!(
            error.contains("version 1") && error.contains("version 2"),
            "{error}"
        );
    }

    #[test]
    fn varints_round_trip_in_their_shortest_form_only() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            65_536,
            1 << 21,
            u64::MAX >> 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value));
            assert_eq!(read_varint(&out, 0), Some((value, out.len())));
            assert_eq!(read_varint(&out[..out.len() - 1], 0), None, "cut short");
        }
        assert_eq!(read_varint(&[0x80, 0x00], 0), None, "overlong zero");
        assert_eq!(
            read_varint(&[0xFF, 0x80, 0x00], 0),
            None,
            "trailing zero byte"
        );
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert_eq!(read_varint(&too_big, 0), None, "more than 64 bits");
        assert_eq!(read_varint(&[0x80; 11], 0), None, "more than ten bytes");
    }

    #[test]
    fn a_typical_entry_header_is_five_bytes() {
        let entry = EntryRef {
            key: b"0000000000000042",
            seqno: 1_500_000,
            tombstone: false,
            archived: false,
            expires_at: None,
            value: &[7; 100],
        };
        assert_eq!(entry.encoded_len(), 5 + 16 + 100);
    }

    #[test]
    fn internal_order_is_key_then_newest_first() {
        use std::cmp::Ordering::*;
        assert_eq!(internal_cmp((b"a", 1), (b"b", 9)), Less);
        assert_eq!(internal_cmp((b"a", 9), (b"a", 1)), Less);
        assert_eq!(internal_cmp((b"a", 1), (b"a", 1)), Equal);
    }
}
