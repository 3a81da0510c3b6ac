//! Key ranges for scans.

use std::ops::Bound;

use crate::types::{Key, MAX_KEY_LEN};

/// A [`KeyRange`] borrowed as byte-slice bounds, the form `BTreeMap::range` takes for maps keyed
/// by [`Key`].
pub type ByteBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A range of keys, each end included, excluded or open.
///
/// A range may be empty or even inverted (start above end); such a range simply contains no key.
/// Use [`as_bounds`](Self::as_bounds) rather than the raw fields with `BTreeMap::range`, which
/// panics on inverted bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The lower end.
    pub start: Bound<Key>,
    /// The upper end.
    pub end: Bound<Key>,
}

impl Default for KeyRange {
    fn default() -> Self {
        KeyRange::all()
    }
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// The keys between `start` and `end`.
    pub fn new(start: Bound<Key>, end: Bound<Key>) -> Self {
        KeyRange { start, end }
    }

    /// Every key starting with `prefix`.
    ///
    /// The end is the first byte string above every such key: the prefix with its trailing `0xFF`
    /// bytes dropped and its last byte incremented. A prefix of only `0xFF` bytes has no such
    /// string, and an empty prefix matches everything; both leave the end open. A prefix longer
    /// than [`MAX_KEY_LEN`] gives an empty range, as no valid key can start with it.
    pub fn prefix(prefix: &[u8]) -> Self {
        if prefix.is_empty() {
            return KeyRange::all();
        }
        if prefix.len() > MAX_KEY_LEN {
            let cut = Key::from_valid(&prefix[..MAX_KEY_LEN]);
            return KeyRange {
                start: Bound::Excluded(cut.clone()),
                end: Bound::Excluded(cut),
            };
        }
        let end = match prefix.iter().rposition(|&b| b != 0xFF) {
            Some(last) => {
                let mut successor = prefix[..=last].to_vec();
                // `last` points at a byte below 0xFF, so this cannot overflow.
                successor[last] += 1;
                Bound::Excluded(Key::from_valid(&successor))
            }
            None => Bound::Unbounded,
        };
        KeyRange {
            start: Bound::Included(Key::from_valid(prefix)),
            end,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above_start = match &self.start {
            Bound::Included(s) => key >= s.as_bytes(),
            Bound::Excluded(s) => key > s.as_bytes(),
            Bound::Unbounded => true,
        };
        let below_end = match &self.end {
            Bound::Included(e) => key <= e.as_bytes(),
            Bound::Excluded(e) => key < e.as_bytes(),
            Bound::Unbounded => true,
        };
        above_start && below_end
    }

    /// Whether no byte string lies in the range (including inverted ranges).
    pub fn is_empty(&self) -> bool {
        use Bound::*;
        match (&self.start, &self.end) {
            (_, Unbounded) | (Unbounded, Included(_)) => false,
            (Unbounded, Excluded(e)) => e.as_bytes().is_empty(),
            (Included(s), Included(e)) => s > e,
            (Included(s), Excluded(e)) | (Excluded(s), Included(e)) => s >= e,
            // The smallest string above `s` is `s` followed by 0x00; the range is empty unless
            // `e` lies above that.
            (Excluded(s), Excluded(e)) => {
                let (s, e) = (s.as_bytes(), e.as_bytes());
                s >= e || (e.len() == s.len() + 1 && e.starts_with(s) && e[s.len()] == 0)
            }
        }
    }

    /// The range as borrowed bounds for `BTreeMap::range` over a map keyed by [`Key`] (or by
    /// anything that borrows as `[u8]`), or `None` when the range is empty.
    ///
    /// Returning `None` for empty ranges is what makes the result safe to pass on:
    /// `BTreeMap::range` panics when the start lies above the end.
    pub fn as_bounds(&self) -> Option<ByteBounds<'_>> {
        if self.is_empty() {
            return None;
        }
        Some((
            self.start.as_ref().map(Key::as_bytes),
            self.end.as_ref().map(Key::as_bytes),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn k(b: &[u8]) -> Key {
        Key::new(b).unwrap()
    }

    fn end_of(range: &KeyRange) -> Option<Vec<u8>> {
        match &range.end {
            Bound::Excluded(e) => Some(e.as_bytes().to_vec()),
            Bound::Unbounded => None,
            Bound::Included(_) => panic!("prefix ranges have an exclusive end"),
        }
    }

    #[test]
    fn prefix_successor() {
        assert_eq!(end_of(&KeyRange::prefix(b"ab")), Some(b"ac".to_vec()));
        assert_eq!(end_of(&KeyRange::prefix(b"a\xff")), Some(b"b".to_vec()));
        assert_eq!(end_of(&KeyRange::prefix(b"a\xff\xff")), Some(b"b".to_vec()));
        assert_eq!(end_of(&KeyRange::prefix(b"\x00")), Some(b"\x01".to_vec()));
        assert_eq!(
            end_of(&KeyRange::prefix(b"\xfe\xff")),
            Some(b"\xff".to_vec())
        );
        assert_eq!(end_of(&KeyRange::prefix(b"\xff")), None);
        assert_eq!(end_of(&KeyRange::prefix(b"\xff\xff")), None);
        assert_eq!(KeyRange::prefix(b""), KeyRange::all());
        assert_eq!(KeyRange::prefix(b"ab").start, Bound::Included(k(b"ab")));
    }

    #[test]
    fn prefix_contains_exactly_the_prefixed_keys() {
        let candidates: [&[u8]; 9] = [
            b"a",
            b"a\xff",
            b"a\xff\x00",
            b"a\xff\xff",
            b"b",
            b"\xff",
            b"\xff\xff",
            b"\x00",
            b"",
        ];
        let prefixes: [&[u8]; 5] = [b"a", b"a\xff", b"\xff", b"\x00", b""];
        for p in prefixes {
            let range = KeyRange::prefix(p);
            for c in candidates {
                assert_eq!(
                    range.contains(c),
                    c.starts_with(p),
                    "prefix {p:?}, key {c:?}"
                );
            }
        }
    }

    #[test]
    fn overlong_prefix_is_empty() {
        let range = KeyRange::prefix(&vec![b'x'; MAX_KEY_LEN + 1]);
        assert!(range.is_empty());
        assert!(range.as_bounds().is_none());
        assert!(!range.contains(&vec![b'x'; MAX_KEY_LEN]));
    }

    #[test]
    fn emptiness() {
        use Bound::*;
        let r = |s, e| KeyRange::new(s, e);
        assert!(!KeyRange::all().is_empty());
        assert!(!r(Included(k(b"a")), Included(k(b"a"))).is_empty());
        assert!(r(Included(k(b"a")), Excluded(k(b"a"))).is_empty());
        assert!(r(Excluded(k(b"a")), Included(k(b"a"))).is_empty());
        assert!(r(Excluded(k(b"a")), Excluded(k(b"a"))).is_empty());
        assert!(r(Included(k(b"b")), Included(k(b"a"))).is_empty());
        assert!(r(Excluded(k(b"a")), Excluded(k(b"a\x00"))).is_empty());
        assert!(!r(Excluded(k(b"a")), Excluded(k(b"a\x00\x00"))).is_empty());
        assert!(!r(Excluded(k(b"a")), Excluded(k(b"a\x01"))).is_empty());
        assert!(!r(Excluded(k(b"a")), Unbounded).is_empty());
        assert!(!r(Unbounded, Excluded(k(b"a"))).is_empty());
    }

    #[test]
    fn as_bounds_never_panics_in_btreemap_range() {
        use Bound::*;
        let map: BTreeMap<Key, u32> = [b"a", b"b", b"c"]
            .iter()
            .enumerate()
            .map(|(i, b)| (k(&b[..]), i as u32))
            .collect();
        let keys = [k(b"a"), k(b"b"), k(b"c"), k(b"a\x00")];
        let bound = |i: usize, kind: u8| match kind {
            0 => Included(keys[i].clone()),
            1 => Excluded(keys[i].clone()),
            _ => Unbounded,
        };
        for (si, sk, ei, ek) in bound_combinations(keys.len()) {
            let range = KeyRange::new(bound(si, sk), bound(ei, ek));
            let got: Vec<&Key> = match range.as_bounds() {
                Some(b) => map.range::<[u8], _>(b).map(|(k, _)| k).collect(),
                None => Vec::new(),
            };
            let want: Vec<&Key> = map
                .keys()
                .filter(|k| range.contains(k.as_bytes()))
                .collect();
            assert_eq!(got, want, "{range:?}");
        }
    }

    /// Every (start key, start kind, end key, end kind) combination.
    fn bound_combinations(n: usize) -> Vec<(usize, u8, usize, u8)> {
        let mut out = Vec::new();
        for si in 0..n {
            for sk in 0..3 {
                for ei in 0..n {
                    for ek in 0..3 {
                        out.push((si, sk, ei, ek));
                    }
                }
            }
        }
        out
    }
}
