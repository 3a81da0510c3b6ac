//! The manifest: which segments are live, in what order, and how far the WAL has been flushed.
//!
//! It is one small file, `MANIFEST`, rewritten whole on every change: written to
//! `MANIFEST.tmp`, fsynced, renamed over `MANIFEST`, and the directory fsynced. The rename is the
//! commit point, so a crash at any instant leaves either the old file or the new one, never a
//! mix; a torn `MANIFEST.tmp` is simply removed at the next open. A snapshot file rather than an
//! append-only log keeps recovery trivial: the manifest is read whole and believed only if every
//! checksum passes. It holds a few dozen bytes per segment, so rewriting it is cheap.
//!
//! # Format (little-endian; CRC32 is the IEEE polynomial)
//!
//! ```text
//! header (48 bytes)
//! offset size field
//!   0     8   magic            "STRATAMF"
//!   8     4   version          1
//!  12     4   record count     n
//!  16     8   flushed LSN      highest WAL LSN whose writes are in live segments; 0 = none
//!  24     8   next segment id  every segment file with an id at or above it is unreferenced
//!  32     8   generation       1 for the first manifest, one more at each rewrite
//!                                 (next segment id and generation stay below 2^62)
//!  40     4   reserved         0
//!  44     4   header crc       CRC32 of bytes 0..44
//!
//! then n segment records, oldest segment first (56 bytes + keys each)
//!   0     8   segment id       the file is <id as 20 digits>.seg
//!   8     8   file length      must equal the segment's footer and real length
//!  16     8   min seqno
//!  24     8   max seqno
//!  32     8   entry count
//!  40     4   footer crc       the segment footer's own CRC32: binds the record to the file
//!  44     4   flags            bit 0 QUARANTINED: the segment was moved to quarantine/ and its
//!                              key range is fenced off until released; other bits 0
//!  48     4   first key len    1 ..= 65536
//!  52     4   last key len     1 ..= 65536
//!  56         first key, then last key
//!
//! then a 4-byte trailer: CRC32 of every byte before it
//! ```
//!
//! The header's own CRC lets a reader trust `n` before it reads any record, and `n` is checked
//! against the file length before anything is allocated for the records.

use std::path::{Path, PathBuf};

use strata_tiering::io::Fs;
use strata_tiering::{Key, Lsn, SeqNo, MAX_KEY_LEN};

use crate::error::{Result, SegmentError};
use crate::format::{put_u64, read_u32, read_u64, SegmentId, TEMP_SUFFIX};

/// The manifest's file name in a segment directory.
pub const MANIFEST_NAME: &str = "MANIFEST";
/// The first eight bytes of a manifest.
pub const MAGIC: [u8; 8] = *b"STRATAMF";
/// The manifest format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Bound on the next segment id and the generation (see the header layout). Both only ever
/// grow by one, so no real store comes near it; a manifest at or past it is refused when read
/// (its next increment would overflow or reuse a segment id) and never written.
pub const MAX_COUNTER: u64 = 1 << 62;
/// Size of the header.
pub const HEADER_LEN: usize = 48;
/// Size of a record before its keys.
pub const RECORD_LEN: usize = 56;
/// Record flag: the segment is quarantined.
pub const FLAG_QUARANTINED: u32 = 1;
/// The largest manifest a reader accepts (far above any real one: 100k segments with long keys).
pub const MAX_MANIFEST_LEN: u64 = 1 << 30;

/// What the manifest says about one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// The segment's id.
    pub id: SegmentId,
    /// Its file length.
    pub file_len: u64,
    /// Lowest seqno it holds.
    pub min_seqno: SeqNo,
    /// Highest seqno it holds.
    pub max_seqno: SeqNo,
    /// Versions it holds.
    pub entry_count: u64,
    /// Its footer's CRC32.
    pub footer_crc: u32,
    /// True once it has been quarantined.
    pub quarantined: bool,
    /// Its smallest key.
    pub first_key: Key,
    /// Its largest key.
    pub last_key: Key,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The highest WAL LSN whose writes are in live segments.
    pub flushed_lsn: Option<Lsn>,
    /// Ids at or above this were never committed.
    pub next_segment_id: SegmentId,
    /// Counts rewrites.
    pub generation: u64,
    /// Segments, oldest first, quarantined ones included (flagged).
    pub records: Vec<SegmentRecord>,
}

/// Encodes a manifest.
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    let keys: usize = manifest
        .records
        .iter()
        .map(|r| r.first_key.as_bytes().len() + r.last_key.as_bytes().len())
        .sum();
    let mut out = Vec::with_capacity(HEADER_LEN + manifest.records.len() * RECORD_LEN + keys + 4);
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(manifest.records.len() as u32).to_le_bytes());
    put_u64(&mut header, 16, manifest.flushed_lsn.unwrap_or(0));
    put_u64(&mut header, 24, manifest.next_segment_id);
    put_u64(&mut header, 32, manifest.generation);
    let crc = crc32fast::hash(&header[..44]);
    header[44..48].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    for r in &manifest.records {
        let mut fixed = [0u8; RECORD_LEN];
        put_u64(&mut fixed, 0, r.id);
        put_u64(&mut fixed, 8, r.file_len);
        put_u64(&mut fixed, 16, r.min_seqno);
        put_u64(&mut fixed, 24, r.max_seqno);
        put_u64(&mut fixed, 32, r.entry_count);
        fixed[40..44].copy_from_slice(&r.footer_crc.to_le_bytes());
        let flags = if r.quarantined { FLAG_QUARANTINED } else { 0 };
        fixed[44..48].copy_from_slice(&flags.to_le_bytes());
        fixed[48..52].copy_from_slice(&(r.first_key.as_bytes().len() as u32).to_le_bytes());
        fixed[52..56].copy_from_slice(&(r.last_key.as_bytes().len() as u32).to_le_bytes());
        out.extend_from_slice(&fixed);
        out.extend_from_slice(r.first_key.as_bytes());
        out.extend_from_slice(r.last_key.as_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks a manifest read from `path` (named in errors).
pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest> {
    let corrupt =
        |offset: usize, detail: &str| SegmentError::corruption(path, offset as u64, detail);
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| corrupt(0, "manifest shorter than its header"))?;
    if read_u32(header, 44) != Some(crc32fast::hash(&header[..44])) {
        return Err(corrupt(0, "manifest header checksum mismatch"));
    }
    if header[0..8] != MAGIC {
        return Err(corrupt(0, "not a manifest (bad magic)"));
    }
    let version = read_u32(header, 8).unwrap_or(0);
    if version != VERSION {
        return Err(corrupt(
            0,
            &format!("unsupported manifest version {version}"),
        ));
    }
    if read_u32(header, 40) != Some(0) {
        return Err(corrupt(40, "nonzero reserved bytes"));
    }
    let body_end = bytes
        .len()
        .checked_sub(4)
        .filter(|&end| end >= HEADER_LEN)
        .ok_or_else(|| corrupt(HEADER_LEN, "manifest has no trailer"))?;
    if read_u32(bytes, body_end) != Some(crc32fast::hash(&bytes[..body_end])) {
        return Err(corrupt(body_end, "manifest checksum mismatch"));
    }
    let count = read_u32(header, 12).unwrap_or(0) as usize;
    // Every record takes at least RECORD_LEN + 2 bytes: bound the count by the bytes there are.
    if count > (body_end - HEADER_LEN) / (RECORD_LEN + 2) {
        return Err(corrupt(
            12,
            "record count larger than the manifest can hold",
        ));
    }
    let flushed = read_u64(header, 16).unwrap_or(0);
    let mut manifest = Manifest {
        flushed_lsn: (flushed != 0).then_some(flushed),
        next_segment_id: read_u64(header, 24).unwrap_or(0),
        generation: read_u64(header, 32).unwrap_or(0),
        records: Vec::with_capacity(count),
    };
    if let Err((offset, detail)) = counters_in_range(&manifest) {
        return Err(corrupt(offset, detail));
    }
    let mut at = HEADER_LEN;
    for _ in 0..count {
        let fixed = bytes
            .get(at..at + RECORD_LEN)
            .filter(|_| at + RECORD_LEN <= body_end)
            .ok_or_else(|| corrupt(at, "segment record cut short"))?;
        let word = |i| read_u64(fixed, i).unwrap_or(0);
        let flags = read_u32(fixed, 44).unwrap_or(0);
        let first_len = read_u32(fixed, 48).unwrap_or(0) as usize;
        let last_len = read_u32(fixed, 52).unwrap_or(0) as usize;
        if flags & !FLAG_QUARANTINED != 0 {
            return Err(corrupt(at + 44, "unknown segment record flags"));
        }
        if !(1..=MAX_KEY_LEN).contains(&first_len) || !(1..=MAX_KEY_LEN).contains(&last_len) {
            return Err(corrupt(at + 48, "segment record key length out of range"));
        }
        let keys_at = at + RECORD_LEN;
        let keys_end = keys_at + first_len + last_len;
        if keys_end > body_end {
            return Err(corrupt(at, "segment record keys run past the manifest"));
        }
        let key = |range: std::ops::Range<usize>| {
            Key::new(&bytes[range]).map_err(|_| corrupt(at, "segment record key is not a key"))
        };
        let record = SegmentRecord {
            id: word(0),
            file_len: word(8),
            min_seqno: word(16),
            max_seqno: word(24),
            entry_count: word(32),
            footer_crc: read_u32(fixed, 40).unwrap_or(0),
            quarantined: flags & FLAG_QUARANTINED != 0,
            first_key: key(keys_at..keys_at + first_len)?,
            last_key: key(keys_at + first_len..keys_end)?,
        };
        if record.first_key > record.last_key || record.min_seqno > record.max_seqno {
            return Err(corrupt(
                at,
                "segment record with an inverted key or seqno range",
            ));
        }
        if record.id >= manifest.next_segment_id
            || manifest
                .records
                .iter()
                .any(|r: &SegmentRecord| r.id == record.id)
        {
            return Err(corrupt(
                at,
                "segment record id repeated or not below the next id",
            ));
        }
        manifest.records.push(record);
        at = keys_end;
    }
    if at != body_end {
        return Err(corrupt(at, "bytes left over after the last segment record"));
    }
    Ok(manifest)
}

/// Reads the manifest in `dir`; `None` if there is none.
pub(crate) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_NAME);
    let file = match fs.open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SegmentError::io("open", &path, e)),
    };
    let len = file.len().map_err(|e| SegmentError::io("stat", &path, e))?;
    if len > MAX_MANIFEST_LEN {
        return Err(SegmentError::corruption(
            &path,
            0,
            format!("manifest of {len} bytes"),
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| SegmentError::io("read", &path, e))?;
    decode(&bytes, &path).map(Some)
}

/// A failed manifest write, and whether the new manifest may have become the live one.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub error: SegmentError,
    /// The rename succeeded but the directory fsync did not: the new manifest may or may not
    /// survive a crash, so files it references must be kept.
    pub maybe_installed: bool,
}

/// Whether the counters are below [`MAX_COUNTER`]; if not, the header offset of the first
/// that is not and what is wrong.
fn counters_in_range(manifest: &Manifest) -> std::result::Result<(), (usize, &'static str)> {
    if manifest.next_segment_id >= MAX_COUNTER {
        return Err((24, "next segment id out of range"));
    }
    if manifest.generation >= MAX_COUNTER {
        return Err((32, "generation out of range"));
    }
    Ok(())
}

/// Replaces the manifest in `dir`: temporary file, fsync, rename, directory fsync. A manifest
/// whose counters have reached [`MAX_COUNTER`] is refused before anything is written, as it
/// could not be read back.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, manifest: &Manifest) -> Result<(), WriteFailure> {
    let path = dir.join(MANIFEST_NAME);
    let temp = temp_path(dir);
    let before = |error| WriteFailure {
        error,
        maybe_installed: false,
    };
    if let Err((_, detail)) = counters_in_range(manifest) {
        return Err(before(SegmentError::BadDirectory {
            path,
            detail: format!("{detail}: the manifest has no room for more segments (limit 2^62)"),
        }));
    }
    let _ = fs.remove_file(&temp);
    let mut file = fs
        .create_new(&temp)
        .map_err(|e| before(SegmentError::io("create", &temp, e)))?;
    let bytes = encode(manifest);
    let written = file
        .append(&bytes)
        .map_err(|e| SegmentError::io("write", &temp, e))
        .and_then(|()| {
            file.sync_data()
                .map_err(|e| SegmentError::io("fsync", &temp, e))
        });
    drop(file);
    if let Err(error) = written {
        let _ = fs.remove_file(&temp);
        return Err(before(error));
    }
    if let Err(e) = fs.rename(&temp, &path) {
        let _ = fs.remove_file(&temp);
        return Err(before(SegmentError::io("rename", &temp, e)));
    }
    fs.sync_dir(dir).map_err(|e| WriteFailure {
        error: SegmentError::io("fsync directory", dir, e),
        maybe_installed: true,
    })
}

/// Where a manifest is written before it is renamed into place.
pub(crate) fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{MANIFEST_NAME}{TEMP_SUFFIX}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_tiering::io::MemFs;

    fn record(id: u64, first: &str, last: &str) -> SegmentRecord {
        SegmentRecord {
            id,
            file_len: 1000 + id,
            min_seqno: id,
            max_seqno: id * 10,
            entry_count: 5,
            footer_crc: 0xDEAD_BEEF,
            quarantined: id == 2,
            first_key: Key::new(first).unwrap(),
            last_key: Key::new(last).unwrap(),
        }
    }

    fn sample() -> Manifest {
        Manifest {
            flushed_lsn: Some(77),
            next_segment_id: 9,
            generation: 3,
            records: vec![
                record(1, "a", "m"),
                record(2, "b", "b"),
                record(5, "c", "zz"),
            ],
        }
    }

    #[test]
    fn round_trips_and_catches_every_bit_flip() {
        let m = sample();
        let bytes = encode(&m);
        let path = Path::new("/d/MANIFEST");
        assert_eq!(decode(&bytes, path).unwrap(), m);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad, path).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], path).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn counters_with_no_room_to_grow_are_refused() {
        for max_out in [
            |m: &mut Manifest| m.generation = u64::MAX,
            |m: &mut Manifest| m.next_segment_id = MAX_COUNTER,
        ] {
            let mut m = sample();
            max_out(&mut m);
            let error = decode(&encode(&m), Path::new("M")).unwrap_err();
            assert!(error.to_string().contains("out of range"), "{error}");
        }
    }

    #[test]
    fn empty_manifest_and_no_flushed_lsn() {
        let m = Manifest {
            flushed_lsn: None,
            next_segment_id: 1,
            generation: 1,
            records: vec![],
        };
        assert_eq!(decode(&encode(&m), Path::new("M")).unwrap(), m);
    }

    #[test]
    fn write_replaces_atomically_and_leaves_no_temp() {
        let fs = MemFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        assert_eq!(read(&fs, dir).unwrap(), None);
        write(&fs, dir, &sample()).unwrap();
        let mut next = sample();
        next.generation = 4;
        next.records.pop();
        write(&fs, dir, &next).unwrap();
        assert_eq!(read(&fs, dir).unwrap(), Some(next));
        assert_eq!(fs.list_dir(dir).unwrap(), vec![MANIFEST_NAME.to_owned()]);
    }

    /// What a reader would refuse is never written: the old manifest stays.
    #[test]
    fn write_refuses_counters_a_reader_would_refuse() {
        let fs = MemFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        write(&fs, dir, &sample()).unwrap();
        for max_out in [
            |m: &mut Manifest| m.generation = MAX_COUNTER,
            |m: &mut Manifest| m.next_segment_id = MAX_COUNTER,
        ] {
            let mut m = sample();
            max_out(&mut m);
            let failure = write(&fs, dir, &m).unwrap_err();
            assert!(!failure.maybe_installed);
            assert!(
                failure.error.to_string().contains("no room"),
                "{}",
                failure.error
            );
            assert_eq!(read(&fs, dir).unwrap(), Some(sample()));
            assert_eq!(fs.list_dir(dir).unwrap(), vec![MANIFEST_NAME.to_owned()]);
        }
    }

    #[test]
    fn ids_must_be_unique_and_below_the_next_id() {
        let mut m = sample();
        m.next_segment_id = 5;
        assert!(decode(&encode(&m), Path::new("M")).is_err());
        let mut m = sample();
        m.records.push(record(1, "x", "y"));
        assert!(decode(&encode(&m), Path::new("M")).is_err());
    }
}
