//! The per-segment bloom filter: blocked, so a lookup touches one 64-byte cache line.
//!
//! The layout and the bit positions are specified in [`format`](mod@crate::format). A blocked
//! filter has a slightly higher false-positive rate than a classic one of the same size, in
//! exchange for one cache miss per lookup instead of one per probe; at 10 bits per key it stays
//! near 1%.

use crate::format::{read_u32, BLOOM_HEADER_LEN, BLOOM_LINE_BYTES, MAX_PROBES};
use crate::hash::xxh64;

const LINE_BITS: u64 = (BLOOM_LINE_BYTES * 8) as u64;
/// The multiplier that derives each probe from the one before (2^32 / golden ratio).
const PROBE_MULTIPLIER: u32 = 0x9E37_79B9;

/// The hash a key is filed under.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh64(key)
}

/// Probes for a filter with `bits_per_key` bits per key: `round(bits_per_key × ln 2)`, 1 to 16.
pub fn probes_for(bits_per_key: u32) -> u32 {
    let k = (f64::from(bits_per_key) * std::f64::consts::LN_2).round() as u32;
    k.clamp(1, MAX_PROBES)
}

/// Builds the encoded filter (header and bits) for keys with the given hashes.
pub fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let bits = (hashes.len() as u64).saturating_mul(u64::from(bits_per_key.max(1)));
    let lines = bits.div_ceil(LINE_BITS).clamp(1, u64::from(u32::MAX)) as u32;
    let probes = probes_for(bits_per_key);
    let mut out = vec![0u8; BLOOM_HEADER_LEN + lines as usize * BLOOM_LINE_BYTES];
    out[0..4].copy_from_slice(&probes.to_le_bytes());
    out[4..8].copy_from_slice(&lines.to_le_bytes());
    let filter = &mut out[BLOOM_HEADER_LEN..];
    for &h in hashes {
        let base = line_of(h, lines) * BLOOM_LINE_BYTES;
        let mut x = h as u32;
        for _ in 0..probes {
            x = x.wrapping_mul(PROBE_MULTIPLIER);
            let bit = (x >> 23) as usize;
            filter[base + bit / 8] |= 1 << (bit % 8);
        }
    }
    out
}

/// A checked view of an encoded filter.
#[derive(Debug, Clone, Copy)]
pub struct Bloom {
    probes: u32,
    lines: u32,
}

impl Bloom {
    /// Checks the header of an encoded filter against its length.
    pub fn parse(encoded: &[u8]) -> Result<Bloom, String> {
        let (Some(probes), Some(lines)) = (read_u32(encoded, 0), read_u32(encoded, 4)) else {
            return Err("bloom filter shorter than its header".into());
        };
        if probes == 0 || probes > MAX_PROBES {
            return Err(format!("bloom filter with {probes} probes"));
        }
        let want = (lines as usize)
            .checked_mul(BLOOM_LINE_BYTES)
            .and_then(|n| n.checked_add(BLOOM_HEADER_LEN));
        if lines == 0 || want != Some(encoded.len()) {
            return Err(format!(
                "bloom filter of {lines} lines does not fill its {} bytes",
                encoded.len()
            ));
        }
        Ok(Bloom { probes, lines })
    }

    /// Where in the encoded filter the line of the key with hash `h` lies.
    pub fn line_at(&self, h: u64) -> usize {
        BLOOM_HEADER_LEN + line_of(h, self.lines) * BLOOM_LINE_BYTES
    }

    /// False if the key with hash `h` is certainly absent. `encoded` must be the filter this
    /// view was parsed from.
    pub fn may_contain(&self, encoded: &[u8], h: u64) -> bool {
        let base = self.line_at(h);
        let Some(line) = encoded.get(base..base + BLOOM_LINE_BYTES) else {
            return true;
        };
        let mut x = h as u32;
        for _ in 0..self.probes {
            x = x.wrapping_mul(PROBE_MULTIPLIER);
            let bit = (x >> 23) as usize;
            if line[bit / 8] & (1 << (bit % 8)) == 0 {
                return false;
            }
        }
        true
    }
}

fn line_of(h: u64, lines: u32) -> usize {
    (((h >> 32) * u64::from(lines)) >> 32) as usize
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hashes(range: std::ops::Range<u32>) -> Vec<u64> {
        range
            .map(|i| key_hash(format!("key-{i:08}").as_bytes()))
            .collect()
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let present = hashes(0..20_000);
        let encoded = build(&present, 10);
        let bloom = Bloom::parse(&encoded).unwrap();
        assert!(present.iter().all(|&h| bloom.may_contain(&encoded, h)));
        let absent = hashes(1_000_000..1_100_000);
        let false_positives = absent
            .iter()
            .filter(|&&h| bloom.may_contain(&encoded, h))
            .count();
        let rate = false_positives as f64 / absent.len() as f64;
        assert!(rate < 0.015, "false-positive rate {rate}");
    }

    #[test]
    fn empty_filter_has_one_line_and_rejects_everything() {
        let encoded = build(&[], 10);
        assert_eq!(encoded.len(), BLOOM_HEADER_LEN + BLOOM_LINE_BYTES);
        let bloom = Bloom::parse(&encoded).unwrap();
        assert!(!bloom.may_contain(&encoded, key_hash(b"x")));
    }

    #[test]
    fn parse_rejects_bad_headers() {
        let good = build(&hashes(0..10), 10);
        assert!(Bloom::parse(&good[..good.len() - 1]).is_err());
        assert!(Bloom::parse(&good[..4]).is_err());
        let mut zero_probes = good.clone();
        zero_probes[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(Bloom::parse(&zero_probes).is_err());
        let mut huge = good;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Bloom::parse(&huge).is_err());
    }

    #[test]
    fn probes_follow_bits_per_key() {
        assert_eq!(probes_for(10), 7);
        assert_eq!(probes_for(1), 1);
        assert_eq!(probes_for(100), MAX_PROBES);
    }
}
