//! Git's delta format, and the delta of a tree against an earlier version of itself.
//!
//! A fold rewrites every `state/<bucket>` tree it touches, and each new version differs from
//! the one before in a few entries. Kept whole, those versions are most of a repository's
//! bytes; as deltas they are small. The delta of a tree is found entry by entry: an entry
//! that the older version has, byte for byte, is copied from it (consecutive ones in one
//! instruction), any other is inserted. No search window is needed, because both versions
//! are sorted lists of the same kind of entry.
//!
//! ```text
//!   delta      base size (varint) | result size (varint) | instructions
//!   varint     7 bits a byte, low bits first; bit 7 set means more bytes follow
//!   copy       1oooossss...: bit 7 set; bits 0-3 say which of the offset's 4 bytes follow
//!              (low first), bits 4-6 which of the size's 3 bytes follow; absent bytes are 0
//!              and a size of 0 means 0x10000
//!   insert     0nnnnnnn (n = 1..127) then n literal bytes
//! ```

use std::collections::HashMap;

/// Longest copy one instruction can express (three size bytes).
const MAX_COPY: usize = 0xff_ffff;
/// Longest insert one instruction can express.
const MAX_INSERT: usize = 0x7f;

/// The entries of a tree object (each `<mode> <name>\0<20-byte id>`), or `None` if the bytes
/// are not a well-formed tree.
pub fn tree_entries(tree: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    let mut rest = tree;
    while !rest.is_empty() {
        let nul = rest.iter().position(|&b| b == 0)?;
        let len = nul.checked_add(21)?;
        if rest.len() < len || !rest[..nul].contains(&b' ') {
            return None;
        }
        entries.push(&rest[..len]);
        rest = &rest[len..];
    }
    Some(entries)
}

/// An entry's mode and name, and its id's 20 bytes.
pub fn split_entry(entry: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let nul = entry.iter().position(|&b| b == 0)?;
    let space = entry[..nul].iter().position(|&b| b == b' ')?;
    Some((
        &entry[..space],
        &entry[space + 1..nul],
        entry.get(nul + 1..)?,
    ))
}

fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn copy(mut offset: usize, mut len: usize, out: &mut Vec<u8>) {
    while len > 0 {
        let size = len.min(MAX_COPY);
        let mut command = 0x80u8;
        let at = out.len();
        out.push(0);
        for i in 0..4 {
            let byte = (offset >> (8 * i)) as u8;
            if byte != 0 {
                command |= 1 << i;
                out.push(byte);
            }
        }
        // `size` is at least 1, so at least one of its bytes is written: the "0 means 0x10000"
        // case never arises.
        for i in 0..3 {
            let byte = (size >> (8 * i)) as u8;
            if byte != 0 {
                command |= 0x10 << i;
                out.push(byte);
            }
        }
        out[at] = command;
        offset += size;
        len -= size;
    }
}

fn insert(bytes: &[u8], out: &mut Vec<u8>) {
    for piece in bytes.chunks(MAX_INSERT) {
        out.push(piece.len() as u8);
        out.extend_from_slice(piece);
    }
}

/// The delta that rebuilds tree `new` from tree `old`, or `None` if either is not a tree or
/// `old` is too large for a copy's 32-bit offset.
pub fn tree_delta(old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    if u32::try_from(old.len()).is_err() {
        return None;
    }
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    let mut offset = 0;
    for entry in tree_entries(old)? {
        at.entry(entry).or_insert(offset);
        offset += entry.len();
    }
    let mut out = Vec::with_capacity(64 + new.len() / 8);
    varint(old.len(), &mut out);
    varint(new.len(), &mut out);
    // The pending copy (offset in `old`, length) and the pending insert (range of `new`).
    let mut pending_copy: Option<(usize, usize)> = None;
    let mut pending_insert = 0..0;
    let mut position = 0;
    for entry in tree_entries(new)? {
        match at.get(entry) {
            Some(&from) => {
                insert(&new[pending_insert.clone()], &mut out);
                pending_insert = position + entry.len()..position + entry.len();
                pending_copy = match pending_copy {
                    Some((start, len)) if start + len == from => Some((start, len + entry.len())),
                    Some((start, len)) => {
                        copy(start, len, &mut out);
                        Some((from, entry.len()))
                    }
                    None => Some((from, entry.len())),
                };
            }
            None => {
                if let Some((start, len)) = pending_copy.take() {
                    copy(start, len, &mut out);
                    pending_insert = position..position;
                }
                pending_insert.end = position + entry.len();
            }
        }
        position += entry.len();
    }
    if let Some((start, len)) = pending_copy {
        copy(start, len, &mut out);
    }
    insert(&new[pending_insert], &mut out);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Applies a delta (what a reader does), for checking the encoder.
    pub(crate) fn apply(base: &[u8], delta: &[u8]) -> Vec<u8> {
        let mut at = 0;
        let read_varint = |at: &mut usize| {
            let (mut value, mut shift) = (0usize, 0);
            loop {
                let byte = delta[*at];
                *at += 1;
                value |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    return value;
                }
            }
        };
        assert_eq!(read_varint(&mut at), base.len());
        let size = read_varint(&mut at);
        let mut out = Vec::new();
        while at < delta.len() {
            let command = delta[at];
            at += 1;
            if command & 0x80 != 0 {
                let (mut offset, mut len) = (0usize, 0usize);
                for i in 0..4 {
                    if command & (1 << i) != 0 {
                        offset |= usize::from(delta[at]) << (8 * i);
                        at += 1;
                    }
                }
                for i in 0..3 {
                    if command & (0x10 << i) != 0 {
                        len |= usize::from(delta[at]) << (8 * i);
                        at += 1;
                    }
                }
                if len == 0 {
                    len = 0x10000;
                }
                out.extend_from_slice(&base[offset..offset + len]);
            } else {
                assert_ne!(command, 0, "reserved instruction");
                let n = usize::from(command);
                out.extend_from_slice(&delta[at..at + n]);
                at += n;
            }
        }
        assert_eq!(out.len(), size);
        out
    }

    fn tree(entries: &[(String, u8)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (name, id) in entries {
            bytes.extend_from_slice(format!("100644 {name}\0").as_bytes());
            bytes.extend_from_slice(&[*id; 20]);
        }
        bytes
    }

    proptest! {
        #[test]
        fn a_tree_delta_rebuilds_the_new_version(
            old in proptest::collection::btree_map("[a-z]{1,12}", any::<u8>(), 0..200),
            edits in proptest::collection::vec(("[a-z]{1,12}", proptest::option::of(any::<u8>())), 0..60),
        ) {
            let mut new = old.clone();
            for (name, id) in edits {
                match id {
                    Some(id) => new.insert(name, id),
                    None => new.remove(&name),
                };
            }
            let old = tree(&old.into_iter().collect::<Vec<_>>());
            let new = tree(&new.into_iter().collect::<Vec<_>>());
            let delta = tree_delta(&old, &new).unwrap();
            prop_assert_eq!(apply(&old, &delta), new);
        }
    }

    #[test]
    fn a_few_changed_entries_make_a_small_delta() {
        let old: Vec<(String, u8)> = (0..1000).map(|i| (format!("key{i:05}"), 1)).collect();
        let mut new = old.clone();
        new[10].1 = 2;
        new[500].1 = 3;
        new.insert(700, ("key00699a".into(), 4));
        let (old, new) = (tree(&old), tree(&new));
        let delta = tree_delta(&old, &new).unwrap();
        assert!(delta.len() < 150, "{} bytes", delta.len());
        assert_eq!(apply(&old, &delta), new);
    }

    #[test]
    fn long_copies_and_inserts_are_split() {
        let old: Vec<(String, u8)> = (0..700_000).map(|i| (format!("{i:08}"), 1)).collect();
        let old = tree(&old);
        assert!(old.len() > MAX_COPY);
        let delta = tree_delta(&old, &old).unwrap();
        assert_eq!(apply(&old, &delta), old);
        let fresh: Vec<(String, u8)> = (0..50).map(|i| (format!("n{i:03}"), 9)).collect();
        let fresh = tree(&fresh);
        let delta = tree_delta(b"", &fresh).unwrap();
        assert_eq!(apply(b"", &delta), fresh);
    }

    #[test]
    fn malformed_trees_give_no_delta() {
        assert!(tree_delta(b"100644 a", b"").is_none());
        assert!(tree_delta(b"", b"100644 a\0short").is_none());
        assert!(tree_delta(b"", b"nospace\0aaaaaaaaaaaaaaaaaaaa").is_none());
    }
}
