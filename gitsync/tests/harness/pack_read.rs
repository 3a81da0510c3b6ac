//! Fuzz harness shared by `fuzz/fuzz_targets/pack_read.rs` and the corpus replay test: any
//! bytes presented as a pack index and a pack file (the first four bytes, little-endian, give
//! the index's length) are listed or refused by `packread::parse_index`, and every listed
//! entry is read by `packread::stored_object` or refused, never a panic. A listing never
//! claims more objects than the index's bytes can hold, and an object read is never larger
//! than the pack. The index is tried as given and with its trailing SHA-1 recomputed, so the
//! fuzzer reaches the parsing behind the checksum.

use std::path::Path;

use strata_gitsync::packread;

/// Entries read per input at most, so a huge listing cannot stall the fuzzer.
const MAX_ENTRIES: usize = 4096;

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let idx_len = (u32::from_le_bytes(*head) as usize).min(rest.len());
    let (idx, pack) = rest.split_at(idx_len);
    check(idx, pack);
    if idx.len() >= 20 {
        let mut resealed = idx.to_vec();
        let body = idx.len() - 20;
        let digest = <sha1::Sha1 as sha1::Digest>::digest(&idx[..body]);
        resealed[body..].copy_from_slice(&digest);
        check(&resealed, pack);
    }
}

fn check(idx: &[u8], pack: &[u8]) {
    let Ok((listed, _)) = packread::parse_index(Path::new("fuzz.idx"), idx) else {
        return;
    };
    assert!(
        listed.len() * 28 <= idx.len(),
        "{} objects listed by {} bytes",
        listed.len(),
        idx.len()
    );
    for entry in listed.iter().take(MAX_ENTRIES) {
        if let Some((kind, content)) = packread::stored_object(pack, entry) {
            assert!(content.len() <= pack.len(), "{kind:?} larger than its pack");
        }
    }
}

/// One corpus input: `idx` and `pack` as `run` splits them.
#[allow(dead_code)] // The fuzz target only runs inputs.
pub fn input(idx: &[u8], pack: &[u8]) -> Vec<u8> {
    let mut bytes = (idx.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(idx);
    bytes.extend_from_slice(pack);
    bytes
}
