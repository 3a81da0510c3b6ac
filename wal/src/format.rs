//! The WAL's on-disk format, byte by byte. All integers are little-endian.
//!
//! A WAL directory holds files named `<first LSN, 20 decimal digits>.wal`. Each file is a
//! 32-byte header followed by frames, one frame per record:
//!
//! ```text
//! file header (32 bytes)
//! +----------+---------+----------+-----------+----------+---------+
//! | magic    | version | flags    | first LSN | reserved | crc     |
//! | 8 bytes  | u32     | u32      | u64       | u32 = 0  | u32     |
//! +----------+---------+----------+-----------+----------+---------+
//!   0          8         12         16          24         28
//!   magic = "STRATAWL", version = 1, crc = CRC32 of bytes 0..28
//!   flags = bit 0 (FOLLOWS_GAP): the LSNs between the previous file's last record and this
//!           file's first LSN were dropped on purpose by a point-in-time recovery;
//!           bit 1 (PREALLOCATED): the file was extended with zeros when it was created, so a
//!           frame header of 24 zero bytes followed only by zeros is where writing stopped,
//!           not damage; other bits 0
//!
//! frame (24-byte header + payload)
//! +---------+---------+---------+-------+----------+------------+-------------+
//! | crc     | length  | LSN     | flags | reserved | header crc | payload     |
//! | u32     | u32     | u64     | u8    | 3 bytes  | u32        | length bytes|
//! +---------+---------+---------+-------+----------+------------+-------------+
//!   0         4         8         16      17         20           24
//!   header crc = CRC32 of bytes 4..20
//!   crc        = CRC32 of bytes 4..20 followed by the payload
//!   flags      = bit 0 set on the last record of a batch; other bits and reserved are 0
//! ```
//!
//! Why two checksums: `crc` covers the header and the payload, so any damaged byte is caught.
//! `header crc` lets recovery tell a torn write (a sound header whose payload runs past the
//! end of the file) from a damaged length field, which would otherwise look exactly like a
//! torn write and hide a bit flip. A length is used only after its header checksum passed and
//! only if it fits both the configured maximum and the bytes actually left in the file, so no
//! allocation is ever sized by an untrusted field.
//!
//! LSNs are consecutive: each frame's LSN is one more than the previous frame's, across files.
//! No frame has LSN `u64::MAX`, so the LSN after any frame fits in a `u64`.
//! A batch is the run of frames up to and including one with the batch-end flag; recovery
//! keeps a batch whole or drops it whole. A batch never spans two files.

use crate::Lsn;

/// The first eight bytes of every WAL file.
pub const MAGIC: [u8; 8] = *b"STRATAWL";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const FILE_HEADER_LEN: usize = 32;
/// Size of a frame header.
pub const FRAME_HEADER_LEN: usize = 24;
/// File flag bit: a point-in-time recovery dropped the LSNs just before this file.
pub const FILE_FLAG_FOLLOWS_GAP: u32 = 0b1;
/// File flag bit: the file was extended with zeros when it was created.
pub const FILE_FLAG_PREALLOCATED: u32 = 0b10;
/// Flag bit: this frame ends its batch.
pub const FLAG_BATCH_END: u8 = 0b0000_0001;

/// The file name of the WAL file whose first record has `lsn`.
pub fn file_name(lsn: Lsn) -> String {
    format!("{lsn:020}.wal")
}

/// Parses a WAL file name back into its first LSN; `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// LSN of the file's first record (the file name says the same).
    pub first_lsn: Lsn,
    /// The LSNs before `first_lsn` that are missing from the previous file were dropped on
    /// purpose (see [`FILE_FLAG_FOLLOWS_GAP`]).
    pub follows_gap: bool,
    /// The file was extended with zeros up front (see [`FILE_FLAG_PREALLOCATED`]).
    pub preallocated: bool,
}

/// Encodes a file header.
pub fn encode_file_header(header: FileHeader) -> [u8; FILE_HEADER_LEN] {
    let FileHeader {
        first_lsn,
        follows_gap,
        preallocated,
    } = header;
    let mut header = [0u8; FILE_HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let mut flags = 0;
    if follows_gap {
        flags |= FILE_FLAG_FOLLOWS_GAP;
    }
    if preallocated {
        flags |= FILE_FLAG_PREALLOCATED;
    }
    header[12..16].copy_from_slice(&flags.to_le_bytes());
    header[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&header[0..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a file header, or describes what is wrong with it.
pub fn decode_file_header(header: &[u8; FILE_HEADER_LEN]) -> Result<FileHeader, String> {
    let stored_crc = read_u32(header, 28);
    if crc32fast::hash(&header[0..28]) != stored_crc {
        return Err("file header checksum mismatch".into());
    }
    if header[0..8] != MAGIC {
        return Err("not a WAL file (bad magic)".into());
    }
    let version = read_u32(header, 8);
    if version != VERSION {
        return Err(format!("unsupported WAL format version {version}"));
    }
    let flags = read_u32(header, 12);
    if flags & !(FILE_FLAG_FOLLOWS_GAP | FILE_FLAG_PREALLOCATED) != 0 || read_u32(header, 24) != 0 {
        return Err(format!(
            "unknown file flags {flags:#x} or nonzero reserved bytes"
        ));
    }
    Ok(FileHeader {
        first_lsn: read_u64(header, 16),
        follows_gap: flags & FILE_FLAG_FOLLOWS_GAP != 0,
        preallocated: flags & FILE_FLAG_PREALLOCATED != 0,
    })
}

/// Appends one frame for `payload` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, lsn: Lsn, batch_end: bool, payload: &[u8]) {
    let start = out.len();
    encode_unsealed_frame(out, lsn, batch_end, payload);
    seal_frames(out, &[start]);
}

/// Appends one frame for `payload` to `out` with both checksums left zero: a frame that
/// [`seal_frames`] must complete before anything reads or writes it.
///
/// Appending and checksumming apart lets a writer checksum several small frames at once.
/// One frame's checksum is a chain of dependent carry-less multiplies; several independent
/// chains overlap in the CPU, which makes a 100-byte frame about twice as cheap to seal.
pub(crate) fn encode_unsealed_frame(out: &mut Vec<u8>, lsn: Lsn, batch_end: bool, payload: &[u8]) {
    // Payload lengths are checked against `max_record_len` (< 4 GiB) before encoding. Bytes
    // 4..20 are stored as one 16-byte value, which the sealing load of them can take straight
    // from the store buffer; stored field by field, that load would stall until they drain.
    let flags = if batch_end { FLAG_BATCH_END } else { 0 };
    let body = u128::from(payload.len() as u32) | u128::from(lsn) << 32 | u128::from(flags) << 96;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(payload);
}

/// How many frames [`seal_frames`] checksums side by side.
pub(crate) const SEAL_GROUP: usize = 4;

/// Fills in the checksums of the unsealed frames that start at `starts` in `buf`.
///
/// Each frame's two checksums are computed from its bytes 4..20 and its payload, and stored
/// at bytes 0..4 and 20..24. Frames are taken [`SEAL_GROUP`] at a time, every checksum of a
/// group computed before any is stored, so that the group's chains run side by side.
///
/// # Panics
/// If a start or a frame's length runs past `buf`: the caller passes only frames it
/// encoded itself.
pub(crate) fn seal_frames(buf: &mut [u8], starts: &[usize]) {
    for group in starts.chunks(SEAL_GROUP) {
        let mut crcs = [(0u32, 0u32); SEAL_GROUP];
        for (crc, &start) in crcs.iter_mut().zip(group) {
            crc.0 = crc32fast::hash(&buf[start + 4..start + 20]);
        }
        for (crc, &start) in crcs.iter_mut().zip(group) {
            let len = read_u32(&buf[start..start + FRAME_HEADER_LEN], 4) as usize;
            let payload = start + FRAME_HEADER_LEN;
            let mut hasher = crc32fast::Hasher::new_with_initial_len(crc.0, 16);
            hasher.update(&buf[payload..payload + len]);
            crc.1 = hasher.finalize();
        }
        for (crc, &start) in crcs.iter().zip(group) {
            buf[start..start + 4].copy_from_slice(&crc.1.to_le_bytes());
            buf[start + 20..start + 24].copy_from_slice(&crc.0.to_le_bytes());
        }
    }
}

/// A frame header whose own checksum passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Checksum of header and payload, still to be checked against the payload.
    pub crc: u32,
    /// Payload length.
    pub len: u32,
    /// The record's LSN.
    pub lsn: Lsn,
    /// True on the last frame of a batch.
    pub batch_end: bool,
}

/// Why a frame header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Every byte is zero: unwritten (pre-allocated or zero-filled) space.
    Zeroed,
    /// The header is damaged; the string says how.
    Damaged(String),
}

/// Decodes and checks a frame header.
pub fn decode_frame_header(header: &[u8; FRAME_HEADER_LEN]) -> Result<FrameHeader, HeaderError> {
    if header.iter().all(|&b| b == 0) {
        return Err(HeaderError::Zeroed);
    }
    let stored = read_u32(header, 20);
    if crc32fast::hash(&header[4..20]) != stored {
        return Err(HeaderError::Damaged(
            "frame header checksum mismatch".into(),
        ));
    }
    let flags = header[16];
    if flags & !FLAG_BATCH_END != 0 || header[17..20] != [0, 0, 0] {
        return Err(HeaderError::Damaged(format!(
            "unknown frame flags {flags:#04x} or nonzero reserved bytes"
        )));
    }
    Ok(FrameHeader {
        crc: read_u32(header, 0),
        len: read_u32(header, 4),
        lsn: read_u64(header, 8),
        batch_end: flags & FLAG_BATCH_END != 0,
    })
}

/// Checks a frame's payload against its header's checksum.
pub fn payload_matches(
    header: &[u8; FRAME_HEADER_LEN],
    frame: &FrameHeader,
    payload: &[u8],
) -> bool {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..20]);
    hasher.update(payload);
    hasher.finalize() == frame.crc
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_strangers() {
        assert_eq!(file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        for other in [
            "42.wal",
            "0000000000000000004x.wal",
            "00000000000000000042.tmp",
            "",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn file_header_round_trips_and_detects_every_bit_flip() {
        for (follows_gap, preallocated) in [(true, false), (false, true), (true, true)] {
            let sound = FileHeader {
                first_lsn: 7,
                follows_gap,
                preallocated,
            };
            assert_eq!(decode_file_header(&encode_file_header(sound)), Ok(sound));
        }
        let header = encode_file_header(FileHeader {
            first_lsn: 7,
            follows_gap: true,
            preallocated: true,
        });
        for bit in 0..FILE_HEADER_LEN * 8 {
            let mut bad = header;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_file_header(&bad).is_err(), "bit {bit}");
        }
    }

    /// Frames sealed a group at a time, across whole and partial groups and any payload size,
    /// are byte for byte the frames encoded one by one.
    #[test]
    fn frames_sealed_in_groups_equal_frames_encoded_one_by_one() {
        let payloads: Vec<Vec<u8>> = [0usize, 1, 15, 16, 100, 127, 128, 300, 4096, 5, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|b| (b * 31 + i) as u8).collect())
            .collect();
        for count in 0..=payloads.len() {
            let mut one_by_one = vec![0x55];
            let mut grouped = vec![0x55];
            let mut starts = Vec::new();
            for (i, payload) in payloads[..count].iter().enumerate() {
                let lsn = 1000 + i as u64;
                encode_frame(&mut one_by_one, lsn, i % 3 == 0, payload);
                starts.push(grouped.len());
                encode_unsealed_frame(&mut grouped, lsn, i % 3 == 0, payload);
            }
            seal_frames(&mut grouped, &starts);
            assert_eq!(grouped, one_by_one, "{count} frames");
        }
    }

    #[test]
    fn frame_round_trips() {
        let mut out = Vec::new();
        encode_frame(&mut out, 9, true, b"hello");
        let header: [u8; FRAME_HEADER_LEN] = out[..FRAME_HEADER_LEN].try_into().unwrap();
        let frame = decode_frame_header(&header).unwrap();
        assert_eq!((frame.len, frame.lsn, frame.batch_end), (5, 9, true));
        assert!(payload_matches(&header, &frame, &out[FRAME_HEADER_LEN..]));
        assert!(!payload_matches(&header, &frame, b"hellO"));
    }

    /// The bytes the module docs describe, spelled out field by field, so the encoder cannot
    /// drift from the documented format unnoticed.
    #[test]
    fn frame_bytes_follow_the_documented_layout() {
        for (lsn, batch_end, payload) in [
            (0x0102_0304_0506_0708_u64, true, &b"hello"[..]),
            (1, false, &[0xff; 300][..]),
            (u64::MAX, true, &[][..]),
        ] {
            let mut covered = Vec::new();
            covered.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            covered.extend_from_slice(&lsn.to_le_bytes());
            covered.push(u8::from(batch_end));
            covered.extend_from_slice(&[0, 0, 0]);
            let header_crc = crc32fast::hash(&covered);
            covered.extend_from_slice(payload);
            let mut expected = crc32fast::hash(&covered).to_le_bytes().to_vec();
            expected.extend_from_slice(&covered[..16]);
            expected.extend_from_slice(&header_crc.to_le_bytes());
            expected.extend_from_slice(payload);
            let mut out = vec![0xaa];
            encode_frame(&mut out, lsn, batch_end, payload);
            assert_eq!(out[0], 0xaa, "bytes before the frame are kept");
            assert_eq!(&out[1..], &expected[..], "lsn {lsn}");
        }
    }

    #[test]
    fn zeroed_header_is_recognised() {
        assert_eq!(
            decode_frame_header(&[0; FRAME_HEADER_LEN]),
            Err(HeaderError::Zeroed)
        );
    }
}
