//! Keys, values and the pseudo-random order they are visited in.
//!
//! Keys are the entry's index as zero-padded decimal, `key_size` bytes long, so byte order is
//! numeric order and every engine sorts them the same way. Indices `0..num` exist after a
//! fill; indices from `num` up are never written, which makes them the "missing" keys.
//! Values are `value_size` bytes: a short pseudo-random head (so values differ) followed by
//! a repeating pattern, compressible roughly like db_bench's `--compression_ratio=0.5`.

/// A tiny seeded PRNG (splitmix64): enough for benchmark key orders, no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`; the same seed always yields the same sequence.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// A random permutation of `0..num`, so a random-order fill writes every key exactly once.
pub fn shuffled(num: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..num).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Formats keys and values of fixed sizes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
}

impl Shape {
    /// The key of entry `index`: zero-padded decimal, truncated to its low digits if the
    /// key size is too small to hold them all.
    pub fn key(&self, index: u64) -> Vec<u8> {
        let digits = format!("{index:0width$}", width = self.key_size);
        digits.as_bytes()[digits.len() - self.key_size..].to_vec()
    }

    /// The value written for entry `index` in write round `round` (overwrites use round 1,
    /// so they store different bytes than the fill).
    pub fn value(&self, index: u64, round: u64) -> Vec<u8> {
        let mut rng = SplitMix64::new(index.wrapping_mul(31).wrapping_add(round));
        let mut value = Vec::with_capacity(self.value_size);
        // Half pseudo-random, half a repeating pattern: compresses to about 50%.
        let random = self.value_size / 2;
        while value.len() < random {
            value.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        value.truncate(random);
        let pattern = b"strata-compare-";
        while value.len() < self.value_size {
            let take = (self.value_size - value.len()).min(pattern.len());
            value.extend_from_slice(&pattern[..take]);
        }
        value
    }

    /// Logical bytes of `num` entries: `num × (key + value)`.
    pub fn logical_bytes(&self, num: u64) -> u64 {
        num * (self.key_size + self.value_size) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_have_the_right_size() {
        let shape = Shape {
            key_size: 16,
            value_size: 100,
        };
        assert_eq!(shape.key(42), b"0000000000000042".to_vec());
        assert!(shape.key(9) < shape.key(10));
        assert_eq!(shape.value(3, 0).len(), 100);
        assert_ne!(shape.value(3, 0), shape.value(3, 1));
    }

    #[test]
    fn shuffled_is_a_permutation() {
        let mut order = shuffled(1000, 7);
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }
}
