//! Fuzz harness shared by `fuzz/fuzz_targets/segment_reader.rs` and the corpus replay test:
//! any bytes presented as a segment file (or as a manifest) give an error or a consistent
//! reader, never a panic; what a reader accepts reads back in order, and every entry it yields
//! is what a point read of that key at that seqno returns.

use std::path::Path;
use std::sync::Arc;

use strata_segment::{format, manifest, ReadMode, Segment};
use strata_tiering::io::{Fs, MemFs};
use strata_tiering::{KeyRange, LATEST};

/// Entries read back per input at most, so a large valid segment cannot stall the fuzzer.
const MAX_ITEMS: usize = 4096;

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    let fs = MemFs::new();
    let dir = Path::new("/segments");
    if fs.create_dir_all(dir).is_err() {
        return;
    }
    let path = dir.join(format::file_name(1));
    fs.write_file(&path, data);
    if let Ok(segment) = Segment::open(&fs, &path, ReadMode::Read) {
        check_segment(Arc::new(segment));
    }
    // Checksums stop almost every mutation at the door; with them recomputed, the mutations
    // reach the structural checks behind them.
    if let Some(resealed) = resealed(data) {
        fs.write_file(&path, &resealed);
        if let Ok(segment) = Segment::open(&fs, &path, ReadMode::Read) {
            check_segment(Arc::new(segment));
        }
    }
    let _ = manifest::decode(data, &dir.join(manifest::MANIFEST_NAME));
    let _ = manifest::decode(&resealed_manifest(data), &dir.join(manifest::MANIFEST_NAME));
}

fn word64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn word32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) -> Option<()> {
    bytes
        .get_mut(at..at.checked_add(value.len())?)?
        .copy_from_slice(value);
    Some(())
}

/// The input as a segment file with every checksum recomputed (and the footer's file length
/// and segment id made to fit), wherever the sections can be located. Best effort.
fn resealed(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let footer_at = out.len().checked_sub(format::FOOTER_LEN)?;
    let data_len = usize::try_from(word64(&out, footer_at + 56)?).ok()?;
    let index_len = usize::try_from(word64(&out, footer_at + 72)?).ok()?;
    let bloom_len = usize::try_from(word64(&out, footer_at + 80)?).ok()?;
    let index_end = data_len.checked_add(index_len)?;
    let bloom_end = index_end.checked_add(bloom_len)?;
    if bloom_end > footer_at {
        return None;
    }
    // Walk the index records and reseal each block they point at.
    let first_len = word32(&out, data_len).map_or(0, |n| n as usize);
    let mut at = data_len.checked_add(4)?.checked_add(first_len)?;
    while at.checked_add(24).is_some_and(|end| end <= index_end) {
        let offset = usize::try_from(word64(&out, at)?).ok()?;
        let len = word32(&out, at + 8)? as usize;
        let key_len = word32(&out, at + 20)? as usize;
        if let Some(end) = offset
            .checked_add(len)
            .filter(|&e| e <= data_len && len >= 4)
        {
            let crc = crc32fast::hash(&out[offset..end - 4]);
            put(&mut out, end - 4, &crc.to_le_bytes())?;
        }
        at = at.checked_add(24)?.checked_add(key_len)?;
    }
    let index_crc = crc32fast::hash(out.get(data_len..index_end)?);
    let bloom_crc = crc32fast::hash(out.get(index_end..bloom_end)?);
    put(&mut out, footer_at + 88, &index_crc.to_le_bytes())?;
    put(&mut out, footer_at + 92, &bloom_crc.to_le_bytes())?;
    let file_len = out.len() as u64;
    put(&mut out, footer_at + 96, &file_len.to_le_bytes())?;
    put(&mut out, footer_at + 112, &1u64.to_le_bytes())?;
    let footer_crc = crc32fast::hash(out.get(footer_at..footer_at + 124)?);
    put(&mut out, footer_at + 124, &footer_crc.to_le_bytes())?;
    (out != data).then_some(out)
}

/// The input as a manifest with its two checksums recomputed. Best effort.
fn resealed_manifest(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if let Some(crc) = out.get(..44).map(crc32fast::hash) {
        let _ = put(&mut out, 44, &crc.to_le_bytes());
    }
    if let Some(end) = out.len().checked_sub(4) {
        let crc = crc32fast::hash(&out[..end]);
        let _ = put(&mut out, end, &crc.to_le_bytes());
    }
    out
}

fn check_segment(segment: Arc<Segment>) {
    let verified = segment.verify().is_ok();
    let Ok(items) = segment.iter(&KeyRange::all()) else {
        assert!(!verified, "a verified segment opens an iterator");
        return;
    };
    let mut previous: Option<(Vec<u8>, u64)> = None;
    let mut seen = 0;
    for item in items.take(MAX_ITEMS) {
        let (key, entry) = match item {
            Ok(item) => item,
            Err(e) => {
                assert!(!verified, "a verified segment iterates cleanly: {e}");
                return;
            }
        };
        let this = (key.as_bytes().to_vec(), entry.seqno);
        if let Some((prev_key, prev_seqno)) = &previous {
            let ordered = prev_key.as_slice() < key.as_bytes()
                || (prev_key.as_slice() == key.as_bytes() && *prev_seqno > entry.seqno);
            assert!(ordered, "entries come in segment order");
        }
        // A file with sound checksums but contradicting parts (only a crafted one) may make
        // point reads disagree with the scan; `verify` must have caught that.
        let read = segment.get(key.as_bytes(), entry.seqno);
        if verified {
            assert!(segment.may_contain(key.as_bytes()), "no false negative");
            match read {
                Ok(Some(got)) => assert_eq!(got, entry, "a point read agrees with the scan"),
                Ok(None) => panic!("a point read misses an entry the scan yields"),
                Err(e) => panic!("a verified segment reads cleanly: {e}"),
            }
        }
        previous = Some(this);
        seen += 1;
    }
    if seen < MAX_ITEMS && verified {
        // The footer counts archival markers too, which iteration (like reads) passes over.
        assert!(
            seen as u64 <= segment.footer().entry_count,
            "the footer counts every entry"
        );
    }
    let _ = segment.get(b"a", LATEST);
    let _ = segment.get(&[0xFF; 3], 0);
}
