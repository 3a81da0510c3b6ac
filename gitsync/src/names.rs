//! Keys as git tree entry names: a reversible, safe escaping, and the fan-out of `state/`.
//!
//! A key's bytes map to a name in which only `A-Z a-z 0-9 - _` and `.` (never first or last)
//! stand for themselves; every other byte is `%XX` with two upper-case hex digits. So no name
//! is `.` or `..`, none starts with a dot (no `.git`, `.gitmodules`, `.GIT`, or HFS+/NTFS
//! look-alikes such as `.g\u{200c}it` or `git~1`, since `~` and every non-ASCII byte are
//! escaped), none holds `/`, `\`, `:` or NUL, and none ends in a dot (which Windows drops).
//! The escaping is canonical: each key has exactly one name, and [`unescape`] refuses any
//! name [`escape`] would not produce.
//!
//! Names longer than [`MAX_PLAIN_NAME`] bytes are cut at a `%XX` boundary and end in `~` plus
//! the SHA-1 of the key in hex; `~` never appears in a plain name, so the two cannot collide.
//! Such a blob carries the full key inside it.
//!
//! The state tree fans out one level by the key's CRC32:
//! `state/<top 10 bits, 3 hex digits>/<name>`, 1,024 buckets (`000` to `3ff`), so a tree holds about 2,000 entries only at two million
//! keys. One level, not two: a fold rewrites every bucket tree it touches, and with two levels
//! of 256 nearly every key sat alone in its own leaf tree, so a fold wrote one tree object per
//! changed key (at 26,000 keys the trees and their index entries outweighed most of the JSON
//! they named). Bucket trees holding several keys also let a repack store each new version of
//! a bucket as a delta of the last. Fewer buckets would suit small stores still better, but
//! would let trees grow past a few thousand entries in large ones.

use crate::error::{Error, Result};

/// Longest name used as is; longer escaped names are shortened and hashed.
pub const MAX_PLAIN_NAME: usize = 200;
/// How much of a long escaped name is kept before the hash.
const KEPT_PREFIX: usize = 150;

fn plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The canonical escaped form of `key`.
pub fn escape(key: &[u8]) -> String {
    let mut name = String::with_capacity(key.len());
    for (i, &byte) in key.iter().enumerate() {
        let dot_inside = byte == b'.' && i != 0 && i + 1 != key.len();
        if plain(byte) || dot_inside {
            name.push(byte as char);
        } else {
            name.push('%');
            name.push(hex_digit(byte >> 4));
            name.push(hex_digit(byte & 0xF));
        }
    }
    name
}

/// The key a plain name stands for; `None` for hashed names and for any name [`escape`]
/// would not produce.
pub fn unescape(name: &str) -> Option<Vec<u8>> {
    let bytes = name.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            key.push(high << 4 | low);
            i += 3;
        } else if plain(byte) || byte == b'.' {
            key.push(byte);
            i += 1;
        } else {
            return None;
        }
    }
    (!key.is_empty() && escape(&key) == name).then_some(key)
}

/// The tree entry name of `key`: its escaped form, or for long keys a shortened, hashed one.
pub fn entry_name(key: &[u8]) -> Result<String> {
    let escaped = escape(key);
    if escaped.len() <= MAX_PLAIN_NAME {
        return Ok(escaped);
    }
    let mut cut = KEPT_PREFIX;
    // Never split a `%XX` triple.
    while let Some(pos) = escaped[..cut].rfind('%') {
        if pos + 3 <= cut {
            break;
        }
        cut = pos;
    }
    let hash = git2::Oid::hash_object(git2::ObjectType::Blob, key)
        .map_err(|e| Error::git("hash a long key", e))?;
    Ok(format!("{}~{hash}", &escaped[..cut]))
}

/// True for names produced by shortening a long key.
pub fn is_hashed(name: &str) -> bool {
    name.contains('~')
}

/// How many buckets `state/` fans out into.
pub const STATE_BUCKETS: u32 = 1024;

/// The fan-out directory name of `key`: the top 10 bits of its CRC32 as three hex digits.
pub fn bucket(key: &[u8]) -> String {
    format!("{:03x}", crc32fast::hash(key) >> 22)
}

/// The path of `key`'s blob in the commit tree.
pub fn state_path(key: &[u8]) -> Result<String> {
    Ok(format!("state/{}/{}", bucket(key), entry_name(key)?))
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble)])
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Keys that try to escape the tree or confuse git or a checkout.
    pub(crate) fn attack_keys() -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = [
            "..",
            ".",
            "/",
            "\\",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "..\\..\\x",
            ".git",
            ".GIT",
            ".Git",
            ".git/config",
            ".gitmodules",
            ".GITMODULES",
            ".gitattributes",
            "git~1",
            "GIT~1",
            ".git.",
            ".git ",
            ".git::$INDEX_ALLOCATION",
            "con",
            "nul:",
            "C:\\Windows",
            "a:b",
            "%2E",
            "%",
            "%%",
            "%zz",
            "~",
            "a~b",
            "trailing.",
            " lead",
            "task:1",
            "emoji-\u{1F600}",
            "\u{200C}.git",
            ".g\u{200C}it",
            ".gi\u{200D}t",
            "\u{FEFF}.git",
            "\u{2024}git",
            "\u{FF0E}git",
            "\u{0130}",
            "tab\there",
            "new\nline",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        keys.push(b"nul\0inside".to_vec());
        keys.push(vec![0]);
        keys.push(vec![0xFF, 0xFE, 0x00, 0x80]);
        keys.push(vec![b'a'; 64 * 1024]);
        keys.push(vec![b'%'; 300]);
        keys.push(vec![0xE2; 5000]);
        keys
    }

    fn acceptable_git_name(name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !lower.starts_with("git~")
            && !name.bytes().any(|b| {
                matches!(b, b'/' | b'\\' | b':' | 0) || !b.is_ascii() || b.is_ascii_whitespace()
            })
    }

    #[test]
    fn attack_keys_give_safe_names_that_round_trip() {
        for key in attack_keys() {
            let name = entry_name(&key).unwrap();
            assert!(
                acceptable_git_name(&name),
                "{name:?} from {:?}",
                String::from_utf8_lossy(&key)
            );
            if !is_hashed(&name) {
                assert_eq!(unescape(&name).unwrap(), key);
            }
        }
    }

    #[test]
    fn escaping_is_canonical() {
        assert_eq!(escape(b"task:1"), "task%3A1");
        assert_eq!(escape(b"a.b"), "a.b");
        assert_eq!(escape(b".a."), "%2Ea%2E");
        for not_canonical in ["%3a", "a%2Eb", "%", "%4", "task:1", "a/b", "", ".a", "~x"] {
            assert_eq!(unescape(not_canonical), None, "{not_canonical}");
        }
    }

    #[test]
    fn long_names_are_cut_at_escape_boundaries_and_hashed() {
        let key = vec![0xE2; 5000];
        let name = entry_name(&key).unwrap();
        assert!(is_hashed(&name) && name.len() <= MAX_PLAIN_NAME);
        let (prefix, hash) = name.split_once('~').unwrap();
        assert_eq!(prefix.len() % 3, 0, "cut inside an escape: {prefix}");
        assert_eq!(hash.len(), 40);
        assert_ne!(name, entry_name(&vec![0xE2; 5001]).unwrap());
    }

    #[test]
    fn buckets_are_three_hex_digits_and_all_are_used() {
        let bucket_of = |n: u32| bucket(format!("task:{n}").as_bytes());
        assert_eq!(bucket_of(1).len(), 3);
        assert!(state_path(b"task:1")
            .unwrap()
            .starts_with(&format!("state/{}/", bucket_of(1))));
        let used: std::collections::BTreeSet<String> = (0..100_000).map(bucket_of).collect();
        assert_eq!(used.len(), STATE_BUCKETS as usize);
        assert_eq!(used.first().map(String::as_str), Some("000"));
        assert_eq!(used.last().map(String::as_str), Some("3ff"));
    }
}
