//! Fuzz harness shared by `fuzz/fuzz_targets/key_names.rs` and the corpus replay test: any
//! bytes taken as a key get a tree entry name that is a safe git path component (see
//! `gitsync/src/names.rs`) and that gives the key back, or for long keys a shortened name that
//! ends in the key's blob hash; any bytes taken as a name unescape without a panic, and only
//! to a key whose canonical name they are.

use strata_gitsync::names::{self, MAX_PLAIN_NAME};

/// Longest name git accepts as one path component on common filesystems.
const MAX_COMPONENT: usize = 255;
/// What `names` keeps of a long escaped name before the hash (`KEPT_PREFIX`, private there).
const KEPT_PREFIX: usize = 150;

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    check_key(data);
    // Two keys from one input: different keys never share a name.
    let (left, right) = data.split_at(data.len() / 2);
    if !left.is_empty() && !right.is_empty() && left != right {
        let (a, b) = (entry_name(left), entry_name(right));
        assert_ne!(a, b, "two keys, one name");
    }
    check_name(&String::from_utf8_lossy(data));
    if let Ok(text) = std::str::from_utf8(data) {
        // Also the name as given, when it is text (lossy decoding changed nothing then).
        let _ = names::unescape(text);
    }
}

fn entry_name(key: &[u8]) -> String {
    names::entry_name(key).unwrap_or_else(|e| panic!("a key always gets a name: {e}"))
}

/// The properties of a safe tree entry name, from the `names` module documentation.
fn assert_safe(name: &str, key: &[u8]) {
    let shown = || format!("{name:?} (key {:?})", String::from_utf8_lossy(key));
    assert!(!name.is_empty(), "empty name {}", shown());
    assert!(name.len() <= MAX_COMPONENT, "name too long: {}", shown());
    assert!(name != "." && name != "..", "dot name {}", shown());
    assert!(
        !name.starts_with('.'),
        "name starts with a dot: {}",
        shown()
    );
    assert!(!name.ends_with('.'), "name ends with a dot: {}", shown());
    let lower = name.to_ascii_lowercase();
    assert!(
        lower != ".git" && !lower.starts_with(".git") && !lower.starts_with("git~"),
        "a git look-alike: {}",
        shown()
    );
    for byte in name.bytes() {
        let allowed =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'%' | b'~');
        assert!(allowed, "byte {byte:#04x} in {}", shown());
    }
}

fn check_key(key: &[u8]) {
    let escaped = names::escape(key);
    if key.is_empty() {
        // Not a key (keys are 1 byte or more); escaping gives nothing to unescape.
        assert!(escaped.is_empty());
        assert_eq!(names::unescape(&escaped), None);
        return;
    }
    // The canonical escaped form always gives the key back, however long it is.
    assert_eq!(
        names::unescape(&escaped).as_deref(),
        Some(key),
        "escape then unescape"
    );
    assert!(!names::is_hashed(&escaped), "a plain escape holds no '~'");
    let name = entry_name(key);
    assert_safe(&name, key);
    assert!(
        name.len() <= MAX_PLAIN_NAME,
        "entry names stay within MAX_PLAIN_NAME"
    );
    if escaped.len() <= MAX_PLAIN_NAME {
        assert_eq!(name, escaped, "short names are the escaped key");
        assert!(!names::is_hashed(&name));
        assert_eq!(names::unescape(&name).as_deref(), Some(key));
    } else {
        // Shortened: a prefix of the escaped key, cut at a `%XX` boundary, then `~` and the
        // SHA-1 of the key as a git blob.
        assert!(names::is_hashed(&name), "a long key's name is hashed");
        assert_eq!(
            names::unescape(&name),
            None,
            "a hashed name is not unescaped"
        );
        let (prefix, hash) = name
            .split_once('~')
            .unwrap_or_else(|| panic!("no '~' in {name:?}"));
        assert!(
            prefix.len() <= KEPT_PREFIX && prefix.len() + 2 >= KEPT_PREFIX,
            "kept {} bytes",
            prefix.len()
        );
        assert!(
            escaped.starts_with(prefix),
            "the prefix is the escaped key's"
        );
        let boundary = escaped[..prefix.len()]
            .rfind('%')
            .is_none_or(|pos| pos + 3 <= prefix.len());
        assert!(boundary, "cut inside an escape: {prefix}");
        let mut blob = format!("blob {}\0", key.len()).into_bytes();
        blob.extend_from_slice(key);
        let expected = format!("{:x}", <sha1::Sha1 as sha1::Digest>::digest(&blob));
        assert_eq!(hash, expected, "the hash is the key's blob id");
    }
    let path = names::state_path(key).unwrap_or_else(|e| panic!("state path: {e}"));
    let crc = crc32fast::hash(key);
    assert_eq!(
        path,
        format!("state/{:03x}/{name}", crc >> 22),
        "state/<top 10 bits of the CRC32>/<name>"
    );
}

fn check_name(name: &str) {
    let hashed = names::is_hashed(name);
    let Some(key) = names::unescape(name) else {
        return;
    };
    assert!(!hashed, "a hashed name unescaped to a key");
    assert!(!key.is_empty(), "an empty key from {name:?}");
    assert_eq!(
        names::escape(&key),
        name,
        "unescape accepts only canonical names"
    );
    if name.len() <= MAX_PLAIN_NAME {
        // Longer canonical escapes are never entry names: their keys get hashed names.
        assert_safe(name, &key);
        assert_eq!(
            entry_name(&key),
            name,
            "a plain name is its key's entry name"
        );
    }
}
