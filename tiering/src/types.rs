//! The vocabulary every tier speaks: keys, values, versioned entries, criticality.

use std::borrow::Borrow;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Error;

/// A log sequence number, as assigned by the write-ahead log.
pub use strata_wal::Lsn;

/// The version number of a write.
///
/// For MEDIUM and higher writes it is the write's [`Lsn`]; LOW writes never reach the log but
/// draw their numbers from the same counter, so versions from every tier order against each other.
/// A snapshot is also a `SeqNo`: a read at snapshot `s` sees the versions with `seqno <= s`.
pub type SeqNo = Lsn;

/// The snapshot that sees every version.
pub const LATEST: SeqNo = SeqNo::MAX;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64 * 1024;

/// The default limit on a value's size, in bytes (256 MiB).
pub const DEFAULT_MAX_VALUE_LEN: usize = 256 * 1024 * 1024;

/// How many characters of escaped bytes `Debug` and `Display` show before truncating; enough to
/// recognise a key in a log line without letting a 64 KiB key swamp it.
const SHOWN_CHARS: usize = 64;

/// Renders `bytes` with [`std::ascii::escape_default`] (printable ASCII as is, everything else as
/// `\xNN`), cut to about `max_chars` characters.
///
/// A cut string ends in `...` followed by the full length, e.g. `aaaa... (70000 bytes)`, so a
/// reader can tell a truncated key from a short one.
pub fn escape_bytes(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    for &b in bytes {
        let escaped = std::ascii::escape_default(b);
        if out.len() + escaped.len() > max_chars {
            // Writing to a String cannot fail.
            let _ = write!(out, "... ({} bytes)", bytes.len());
            return out;
        }
        out.extend(escaped.map(char::from));
    }
    out
}

/// A key: 1 to [`MAX_KEY_LEN`] arbitrary bytes, ordered bytewise.
///
/// Cloning is cheap, so keys can be shared between tiers, caches and change batches: a key of
/// up to [`INLINE_KEY_LEN`] bytes is held in place, and a longer one is shared behind a
/// reference count. `Key: Borrow<[u8]>` (equality, order and hash are those of the bytes), so
/// maps keyed by `Key` can be queried with a plain `&[u8]`.
///
/// ```text
///   short key (1..=22 bytes): | tag | len u8 | bytes, zero-padded to 22 |  24 bytes, no allocation
///   long key:                 | tag | Arc<[u8]> pointer and length |      24 bytes, plus a
///                                                                         shared buffer
/// ```
///
/// Holding short keys in place matters for sorted maps such as the memtable: comparing two
/// keys of a tree node then reads the node alone, where a pointer per key would cost a cache
/// miss per comparison, and writing a key allocates nothing.
#[derive(Clone)]
pub struct Key(KeyRepr);

/// Longest key held in place rather than behind a pointer.
pub const INLINE_KEY_LEN: usize = 22;

// The layout drawn above: a short key fills the size a long key's pointer needs anyway.
const _: () = assert!(std::mem::size_of::<Key>() == 24);

#[derive(Clone)]
enum KeyRepr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_LEN],
    },
    Shared(Arc<[u8]>),
}

impl KeyRepr {
    fn of(bytes: &[u8]) -> KeyRepr {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_KEY_LEN => {
                let mut inline = [0; INLINE_KEY_LEN];
                inline[..bytes.len()].copy_from_slice(bytes);
                KeyRepr::Inline { len, bytes: inline }
            }
            _ => KeyRepr::Shared(Arc::from(bytes)),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Hashes as the bytes do, as `Borrow<[u8]>` requires.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Key {
    /// Makes a key from `bytes`, rejecting an empty key ([`Error::EmptyKey`]) and one longer than
    /// [`MAX_KEY_LEN`] ([`Error::KeyTooLong`]).
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, Error> {
        let bytes = bytes.as_ref();
        Self::validate(bytes)?;
        Ok(Key(KeyRepr::of(bytes)))
    }

    /// Checks that `bytes` would make a valid key, without building one.
    pub fn validate(bytes: &[u8]) -> Result<(), Error> {
        if bytes.is_empty() {
            return Err(Error::EmptyKey);
        }
        if bytes.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong {
                len: bytes.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyRepr::Shared(bytes) => bytes,
        }
    }

    /// Builds a key from bytes the caller has already shown to be valid (range bounds derived
    /// from valid keys), so that construction needs no fallible path.
    pub(crate) fn from_valid(bytes: &[u8]) -> Self {
        debug_assert!(Key::validate(bytes).is_ok());
        Key(KeyRepr::of(bytes))
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<&[u8]> for Key {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Key::new(bytes)
    }
}

impl TryFrom<Vec<u8>> for Key {
    type Error = Error;
    fn try_from(bytes: Vec<u8>) -> Result<Self, Error> {
        Key::validate(&bytes)?;
        // Turning a Vec into an Arc<[u8]> copies it anyway.
        Ok(Key(KeyRepr::of(&bytes)))
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        Key::new(s)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(\"{}\")", escape_bytes(self.as_bytes(), SHOWN_CHARS))
    }
}

/// Shows the key escaped and truncated, as in error messages.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_bytes(self.as_bytes(), SHOWN_CHARS))
    }
}

/// A value: arbitrary bytes, possibly empty. Cloning is cheap (a reference-count bump).
///
/// Size limits are not part of the type; see [`Limits`].
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(Arc<[u8]>);

impl Value {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value(Arc::from(bytes))
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value(Arc::from(bytes))
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(bytes: &[u8; N]) -> Self {
        Value(Arc::from(&bytes[..]))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value(Arc::from(s.as_bytes()))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::from(s.into_bytes())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Value({} bytes: \"{}\")",
            self.0.len(),
            escape_bytes(&self.0, SHOWN_CHARS)
        )
    }
}

/// Size limits enforced on writes before they enter any tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest value accepted, in bytes.
    pub max_value_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl Limits {
    /// Rejects `value` with [`Error::ValueTooLarge`] (naming `key`) if it is over the limit.
    pub fn check_value(&self, key: &Key, value: &Value) -> Result<(), Error> {
        if value.len() > self.max_value_len {
            return Err(Error::ValueTooLarge {
                key: key.clone(),
                len: value.len(),
                max: self.max_value_len,
            });
        }
        Ok(())
    }
}

/// What a version of a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The key was set to this value.
    Value(Value),
    /// The key was deleted. Kept as a version so that it shadows older values in lower tiers.
    Tombstone,
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The version number; the highest one a read may see wins.
    pub seqno: SeqNo,
    /// A value or a deletion.
    pub kind: EntryKind,
    /// When the version stops being readable, in unix milliseconds.
    ///
    /// Tiers store and return this untouched; the reader compares it with its own clock (see
    /// [`Entry::is_expired_at`]), which keeps tiers free of clocks and their tests deterministic.
    pub expires_at: Option<u64>,
}

impl Entry {
    /// A version setting the key to `value`, without expiry.
    pub fn put(seqno: SeqNo, value: impl Into<Value>) -> Self {
        Entry {
            seqno,
            kind: EntryKind::Value(value.into()),
            expires_at: None,
        }
    }

    /// A version deleting the key.
    pub fn tombstone(seqno: SeqNo) -> Self {
        Entry {
            seqno,
            kind: EntryKind::Tombstone,
            expires_at: None,
        }
    }

    /// The same entry, expiring at `expires_at_ms` (unix milliseconds).
    #[must_use]
    pub fn with_expiry(mut self, expires_at_ms: u64) -> Self {
        self.expires_at = Some(expires_at_ms);
        self
    }

    /// Whether this version is a deletion.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.kind, EntryKind::Tombstone)
    }

    /// The value, unless this version is a deletion.
    pub fn value(&self) -> Option<&Value> {
        match &self.kind {
            EntryKind::Value(v) => Some(v),
            EntryKind::Tombstone => None,
        }
    }

    /// Whether the version has expired at `now_ms` (unix milliseconds): it expires at the instant
    /// `expires_at` itself.
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// One element of a batch passed to [`Tier::apply`](crate::Tier::apply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key written.
    pub key: Key,
    /// The version written.
    pub entry: Entry,
}

impl Change {
    /// A change writing `entry` under `key`.
    pub fn new(key: Key, entry: Entry) -> Self {
        Change { key, entry }
    }

    /// A change setting `key` to `value` at `seqno`.
    pub fn put(key: Key, seqno: SeqNo, value: impl Into<Value>) -> Self {
        Change::new(key, Entry::put(seqno, value))
    }

    /// A change deleting `key` at `seqno`.
    pub fn delete(key: Key, seqno: SeqNo) -> Self {
        Change::new(key, Entry::tombstone(seqno))
    }
}

/// How far down the tiers a key's writes travel, and so what an acknowledgement promises.
///
/// Ordered from least to most durable: `Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    /// In memory only (hot tier).
    Low,
    /// In the write-ahead log, then warm segments. The default.
    #[default]
    Medium,
    /// As `Medium`, and committed to the cold git tier.
    High,
    /// As `High`, and pushed to and verified on the remote.
    Critical,
}

impl Criticality {
    /// Every level, from `Low` to `Critical`.
    pub const ALL: [Criticality; 4] = [
        Criticality::Low,
        Criticality::Medium,
        Criticality::High,
        Criticality::Critical,
    ];

    /// The lowercase name, as parsed by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }

    /// A one-byte code (0 = low … 3 = critical) for compact on-disk encodings.
    pub fn as_u8(self) -> u8 {
        match self {
            Criticality::Low => 0,
            Criticality::Medium => 1,
            Criticality::High => 2,
            Criticality::Critical => 3,
        }
    }

    /// Decodes [`as_u8`](Self::as_u8); `None` for any other byte, which a decoder should report
    /// as corruption.
    pub fn from_u8(code: u8) -> Option<Self> {
        match code {
            0 => Some(Criticality::Low),
            1 => Some(Criticality::Medium),
            2 => Some(Criticality::High),
            3 => Some(Criticality::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `low`, `medium`, `high` or `critical`, ignoring ASCII case.
impl FromStr for Criticality {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Criticality::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownCriticality(escape_bytes(s.as_bytes(), SHOWN_CHARS)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn hash_of<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        // One fixed state for every call, so the hashes compare.
        static STATE: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        STATE.get_or_init(RandomState::new).hash_one(value)
    }

    proptest::proptest! {
        /// Short keys are held in place and long ones shared; either way a key orders, equals
        /// and hashes exactly as its bytes do, across the boundary between the two.
        #[test]
        fn keys_behave_as_their_bytes(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
        ) {
            let (ka, kb) = (Key::new(&a).unwrap(), Key::new(&b).unwrap());
            proptest::prop_assert_eq!(ka.as_bytes(), &a[..]);
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            proptest::prop_assert_eq!(ka == kb, a == b);
            proptest::prop_assert_eq!(hash_of(&ka), hash_of(&a[..]));
            let from_vec = Key::try_from(a.clone()).unwrap();
            proptest::prop_assert_eq!(&from_vec, &ka);
            let copy = from_vec.clone();
            proptest::prop_assert_eq!(copy.as_bytes(), &a[..]);
        }
    }

    #[test]
    fn keys_at_the_inline_boundary_keep_their_bytes_and_order() {
        let longest_inline = Key::new([7u8; INLINE_KEY_LEN]).unwrap();
        let shortest_shared = Key::new([7u8; INLINE_KEY_LEN + 1]).unwrap();
        assert!(matches!(longest_inline.0, KeyRepr::Inline { .. }));
        assert!(matches!(shortest_shared.0, KeyRepr::Shared(_)));
        assert!(longest_inline < shortest_shared);
        assert_eq!(shortest_shared.as_bytes().len(), INLINE_KEY_LEN + 1);
        // Trailing zeros are bytes, not padding.
        let padded = Key::new(b"ab\0").unwrap();
        let short = Key::new(b"ab").unwrap();
        assert!(short < padded);
        assert_ne!(short, padded);
        assert_eq!(padded.as_bytes(), b"ab\0");
        let mut map = BTreeMap::new();
        map.insert(shortest_shared.clone(), 1);
        map.insert(longest_inline.clone(), 2);
        assert_eq!(map.get(&[7u8; INLINE_KEY_LEN][..]), Some(&2));
        assert_eq!(map.get(&[7u8; INLINE_KEY_LEN + 1][..]), Some(&1));
    }

    #[test]
    fn key_validation() {
        assert!(matches!(Key::new(b""), Err(Error::EmptyKey)));
        assert!(Key::new([0u8; MAX_KEY_LEN]).is_ok());
        match Key::new(vec![0u8; MAX_KEY_LEN + 1]) {
            Err(Error::KeyTooLong { len, max }) => {
                assert_eq!((len, max), (MAX_KEY_LEN + 1, MAX_KEY_LEN));
            }
            other => panic!("expected KeyTooLong, got {other:?}"),
        }
        assert!(matches!(Key::try_from(Vec::new()), Err(Error::EmptyKey)));
        assert_eq!(Key::try_from("ab").unwrap().as_bytes(), b"ab");
        assert_eq!(Key::try_from(&b"ab"[..]).unwrap().as_bytes(), b"ab");
    }

    #[test]
    fn key_orders_bytewise_and_borrows_as_slice() {
        let mut keys = [
            Key::new([0xFF]).unwrap(),
            Key::new([0x00, 0x00]).unwrap(),
            Key::new([0x00]).unwrap(),
            Key::new(b"a").unwrap(),
        ];
        keys.sort();
        let bytes: Vec<&[u8]> = keys.iter().map(Key::as_bytes).collect();
        assert_eq!(bytes, vec![&[0x00][..], &[0x00, 0x00], b"a", &[0xFF]]);

        let mut map = BTreeMap::new();
        map.insert(Key::new(b"k").unwrap(), 1);
        assert_eq!(map.get(&b"k"[..]), Some(&1));
    }

    #[test]
    fn key_debug_is_escaped_and_truncated() {
        let k = Key::new(b"a\x00\xff\"").unwrap();
        assert_eq!(format!("{k:?}"), r#"Key("a\x00\xff\"")"#);
        assert_eq!(k.to_string(), r#"a\x00\xff\""#);

        let long = Key::new(vec![0xAB; 1000]).unwrap();
        let shown = format!("{long:?}");
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.contains("... (1000 bytes)"), "{shown}");
    }

    #[test]
    fn escape_bytes_never_exceeds_budget_before_the_suffix() {
        assert_eq!(escape_bytes(b"abc", 3), "abc");
        assert_eq!(escape_bytes(b"abcd", 3), "abc... (4 bytes)");
        // An escape sequence is never split.
        assert_eq!(escape_bytes(b"a\x00", 4), "a... (2 bytes)");
        assert_eq!(escape_bytes(b"", 0), "");
    }

    #[test]
    fn value_conversions() {
        assert_eq!(Value::from("hi").as_bytes(), b"hi");
        assert_eq!(Value::from(vec![1, 2]).len(), 2);
        assert_eq!(Value::from(&b"xyz"[..]).as_bytes(), b"xyz");
        assert_eq!(Value::from(b"xyz"), Value::from("xyz"));
        assert_eq!(Value::from(String::from("s")).as_bytes(), b"s");
        assert!(Value::default().is_empty());
        assert_eq!(
            format!("{:?}", Value::from("a\n")),
            r#"Value(2 bytes: "a\n")"#
        );
    }

    #[test]
    fn limits_check_value() {
        let limits = Limits { max_value_len: 3 };
        let key = Key::new(b"k").unwrap();
        assert!(limits.check_value(&key, &Value::from("abc")).is_ok());
        match limits.check_value(&key, &Value::from("abcd")) {
            Err(Error::ValueTooLarge { key: k, len, max }) => {
                assert_eq!((k, len, max), (key, 4, 3));
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
        assert_eq!(Limits::default().max_value_len, 256 << 20);
    }

    #[test]
    fn entry_constructors_and_accessors() {
        let e = Entry::put(5, "v");
        assert_eq!(e.seqno, 5);
        assert_eq!(e.value().unwrap().as_bytes(), b"v");
        assert!(!e.is_tombstone());
        assert!(!e.is_expired_at(u64::MAX));

        let e = e.with_expiry(100);
        assert!(!e.is_expired_at(99));
        assert!(e.is_expired_at(100));

        let t = Entry::tombstone(6);
        assert!(t.is_tombstone());
        assert!(t.value().is_none());

        let c = Change::delete(Key::new(b"k").unwrap(), 7);
        assert_eq!(c.entry, Entry::tombstone(7));
        let c = Change::put(Key::new(b"k").unwrap(), 8, "x");
        assert_eq!(c.entry, Entry::put(8, "x"));
    }

    #[test]
    fn criticality_order_parse_and_codes() {
        use Criticality::*;
        assert!(Low < Medium && Medium < High && High < Critical);
        assert_eq!(Criticality::default(), Medium);
        for c in Criticality::ALL {
            assert_eq!(c.to_string().parse::<Criticality>().unwrap(), c);
            assert_eq!(
                c.to_string().to_uppercase().parse::<Criticality>().unwrap(),
                c
            );
            assert_eq!(Criticality::from_u8(c.as_u8()), Some(c));
        }
        assert_eq!("CriTical".parse::<Criticality>().unwrap(), Critical);
        assert_eq!(Criticality::from_u8(4), None);
        match "urgent\n".parse::<Criticality>() {
            Err(Error::UnknownCriticality(s)) => assert_eq!(s, r"urgent\n"),
            other => panic!("expected UnknownCriticality, got {other:?}"),
        }
        match "x".repeat(10_000).parse::<Criticality>() {
            Err(Error::UnknownCriticality(s)) => assert!(s.len() < 100),
            other => panic!("expected UnknownCriticality, got {other:?}"),
        }
    }
}
