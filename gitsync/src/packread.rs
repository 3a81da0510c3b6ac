//! Reading pack indexes, and objects a pack holds in zlib's stored form, without libgit2.
//!
//! A merge of packs (see `consolidate`) reads every object of the packs it merges. Most of them
//! come from commit packs, which hold each object whole in stored deflate blocks (see
//! `packfile`): the content is the blocks' bytes, so it is sliced out of the file instead of
//! being looked up and inflated through libgit2. Anything else (compressed, or a delta) is
//! left to libgit2. Every length is checked against the file before it is used, and the
//! content's Adler-32 must match, so damage falls back to libgit2 (which reports it) rather
//! than being copied.
//!
//! The index layout is in `packfile`'s docs.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid};

use crate::error::{Error, Result};

/// Where a version 2 index's ids start: after the 8-byte header and the 256 × u32 fan-out.
const INDEX_IDS: usize = 8 + 256 * 4;

/// The object count of a version 2 `.idx` file (the last fan-out entry), reading only its
/// header and fan-out, and the file's length.
pub fn index_count(idx_path: &Path) -> Result<(usize, u64)> {
    use std::io::Read;
    let io = |source| Error::Io {
        op: "read pack index",
        path: idx_path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(idx_path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; INDEX_IDS];
    file.read_exact(&mut head)
        .map_err(|_| Error::corrupt(idx_path, "shorter than a pack index's fan-out"))?;
    if head[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(Error::corrupt(idx_path, "not a version 2 pack index"));
    }
    let mut last = [0u8; 4];
    last.copy_from_slice(&head[INDEX_IDS - 4..]);
    Ok((u32::from_be_bytes(last) as usize, len))
}

/// An object a pack index lists.
#[derive(Debug, Clone, Copy)]
pub struct Listed {
    /// The object's id.
    pub id: Oid,
    /// Where its entry starts in the pack.
    pub offset: u64,
    /// CRC32 of its entry's bytes in the pack (header and body).
    pub crc: u32,
}

/// Every object a version 2 `.idx` file lists, and the checksum of the pack it indexes.
pub fn index_entries(idx_path: &Path) -> Result<(Vec<Listed>, [u8; 20])> {
    let bytes = std::fs::read(idx_path).map_err(|source| Error::Io {
        op: "read pack index",
        path: idx_path.to_path_buf(),
        source,
    })?;
    parse_index(idx_path, &bytes)
}

/// Every object the version 2 index `bytes` lists, and the checksum of the pack it indexes;
/// `source` names it in errors. The index's own trailing SHA-1 must match, so a damaged id or
/// offset is an error, not an object copied under the wrong id; a reader of the pack still
/// checks each entry's CRC32.
pub fn parse_index(source: &Path, bytes: &[u8]) -> Result<(Vec<Listed>, [u8; 20])> {
    use sha1::{Digest, Sha1};
    let bad = |detail: String| Error::corrupt(source, detail);
    if bytes.len() < INDEX_IDS + 40 || bytes[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(bad("not a version 2 pack index".into()));
    }
    let (body, own) = bytes.split_at(bytes.len() - 20);
    if Sha1::digest(body).as_slice() != own {
        return Err(bad("its checksum does not match its contents".into()));
    }
    let mut pack_checksum = [0u8; 20];
    pack_checksum.copy_from_slice(&body[body.len() - 20..]);
    let mut last = [0u8; 4];
    last.copy_from_slice(&bytes[INDEX_IDS - 4..INDEX_IDS]);
    let count = u32::from_be_bytes(last) as usize;
    // Ids, CRCs and offsets (28 bytes an object), then two checksums: a count the bytes cannot
    // hold is damage, not an allocation to attempt.
    let needed = count
        .checked_mul(28)
        .and_then(|n| n.checked_add(INDEX_IDS + 40))
        .ok_or_else(|| bad("object count overflows".into()))?;
    if bytes.len() < needed {
        return Err(bad(format!(
            "{} bytes cannot index {count} objects",
            bytes.len()
        )));
    }
    let ids = &bytes[INDEX_IDS..INDEX_IDS + count * 20];
    let crcs = &bytes[INDEX_IDS + count * 20..INDEX_IDS + count * 24];
    let offsets_at = INDEX_IDS + count * 24;
    let offsets = &bytes[offsets_at..offsets_at + count * 4];
    let large_at = offsets_at + count * 4;
    let mut entries = Vec::with_capacity(count);
    let rows = ids
        .chunks_exact(20)
        .zip(crcs.chunks_exact(4))
        .zip(offsets.chunks_exact(4));
    for ((raw_id, raw_crc), raw_offset) in rows {
        let id = Oid::from_bytes(raw_id).map_err(|e| Error::git("read an object id", e))?;
        let small =
            u32::from_be_bytes([raw_offset[0], raw_offset[1], raw_offset[2], raw_offset[3]]);
        let offset = if small & 0x8000_0000 == 0 {
            u64::from(small)
        } else {
            let slot = (small & 0x7fff_ffff) as usize;
            let raw = slot
                .checked_mul(8)
                .and_then(|at| at.checked_add(large_at))
                .and_then(|at| bytes.get(at..at.checked_add(8)?))
                .ok_or_else(|| bad(format!("large offset {slot} past the table")))?;
            let mut large = [0u8; 8];
            large.copy_from_slice(raw);
            u64::from_be_bytes(large)
        };
        let crc = u32::from_be_bytes([raw_crc[0], raw_crc[1], raw_crc[2], raw_crc[3]]);
        entries.push(Listed { id, offset, crc });
    }
    Ok((entries, pack_checksum))
}

/// The object `listed` in `pack`, if it is whole (not a delta) and in zlib's stored form, with
/// a matching Adler-32 and entry CRC32; `None` otherwise, including for any damage.
pub fn stored_object(pack: &[u8], listed: &Listed) -> Option<(ObjectType, Vec<u8>)> {
    let start = usize::try_from(listed.offset).ok()?;
    let mut at = start;
    let first = *pack.get(at)?;
    at += 1;
    let kind = match (first >> 4) & 7 {
        1 => ObjectType::Commit,
        2 => ObjectType::Tree,
        3 => ObjectType::Blob,
        4 => ObjectType::Tag,
        _ => return None,
    };
    let mut size = u64::from(first & 0x0f);
    let mut shift = 4;
    let mut byte = first;
    while byte & 0x80 != 0 {
        byte = *pack.get(at)?;
        at += 1;
        if shift > 57 {
            return None;
        }
        size |= u64::from(byte & 0x7f) << shift;
        shift += 7;
    }
    let size = usize::try_from(size).ok()?;
    // Never more than the pack could hold: the size is not trusted for an allocation.
    if size > pack.len() {
        return None;
    }
    if pack.get(at..at + 2)? != [0x78, 0x01] {
        return None;
    }
    at += 2;
    let mut content = Vec::with_capacity(size);
    loop {
        let header = *pack.get(at)?;
        // Stored blocks only (BTYPE 00); bit 0 marks the last.
        if header & 0b110 != 0 {
            return None;
        }
        let len = u16::from_le_bytes([*pack.get(at + 1)?, *pack.get(at + 2)?]);
        let nlen = u16::from_le_bytes([*pack.get(at + 3)?, *pack.get(at + 4)?]);
        if len != !nlen {
            return None;
        }
        at += 5;
        content.extend_from_slice(pack.get(at..at + usize::from(len))?);
        at += usize::from(len);
        if content.len() > size {
            return None;
        }
        if header & 1 == 1 {
            break;
        }
    }
    let adler = u32::from_be_bytes(pack.get(at..at + 4)?.try_into().ok()?);
    let mut check = simd_adler32::Adler32::new();
    check.write(&content);
    let entry = pack.get(start..at + 4)?;
    (content.len() == size && check.finish() == adler && crc32fast::hash(entry) == listed.crc)
        .then_some((kind, content))
}

/// A pack file read entry by entry through the index beside it.
#[derive(Debug)]
pub struct SourcePack {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    /// The index's entries, by offset.
    listed: Vec<Listed>,
}

impl SourcePack {
    /// Opens the pack at `pack` and reads its index: the index must be for this pack (the
    /// checksum it records is the pack's trailer) and every offset must lie in the pack.
    pub fn open(pack: &Path) -> Result<SourcePack> {
        use std::os::unix::fs::FileExt;
        let (mut listed, checksum) = index_entries(&pack.with_extension("idx"))?;
        listed.sort_by_key(|l| l.offset);
        let io = |source| Error::Io {
            op: "read pack",
            path: pack.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(pack).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut trailer = [0u8; 20];
        if len < 32 || file.read_exact_at(&mut trailer, len - 20).is_err() || trailer != checksum {
            return Err(Error::corrupt(
                pack,
                "not the pack its index was written for",
            ));
        }
        let mut previous = 11;
        for entry in &listed {
            if entry.offset <= previous || entry.offset >= len - 20 {
                return Err(Error::corrupt(
                    pack,
                    format!("object {} listed at offset {}", entry.id, entry.offset),
                ));
            }
            previous = entry.offset;
        }
        Ok(SourcePack {
            path: pack.to_path_buf(),
            file,
            len,
            listed,
        })
    }

    /// The pack's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Each listed object, by offset, with the offset where its entry ends (the next entry's,
    /// or the trailer's).
    pub fn entries(&self) -> Vec<(Listed, u64)> {
        let ends = self
            .listed
            .iter()
            .skip(1)
            .map(|next| next.offset)
            .chain([self.len - 20]);
        self.listed.iter().copied().zip(ends).collect()
    }

    /// The pack's bytes from `from` to `to`, both within it (offsets from [`Self::entries`]).
    pub fn read(&self, from: u64, to: u64) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if from > to || to > self.len {
            return Err(Error::corrupt(
                &self.path,
                format!("bytes {from}..{to} of a pack of {}", self.len),
            ));
        }
        let len = usize::try_from(to - from)
            .map_err(|_| Error::corrupt(&self.path, "a range larger than memory"))?;
        let mut bytes = vec![0u8; len];
        self.file
            .read_exact_at(&mut bytes, from)
            .map_err(|source| Error::Io {
                op: "read pack",
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packfile;

    #[test]
    fn a_damaged_index_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("pack-x.idx");
        let mut bytes = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
        bytes.extend(std::iter::repeat_n(0xffu8, 1024));
        std::fs::write(&idx, &bytes).unwrap();
        assert!(matches!(index_entries(&idx), Err(Error::Corrupt { .. })));
        std::fs::write(&idx, b"not an index").unwrap();
        assert!(matches!(index_entries(&idx), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn stored_objects_are_read_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let objects: Vec<(ObjectType, Vec<u8>)> = vec![
            (ObjectType::Blob, b"".to_vec()),
            (ObjectType::Blob, b"{\"a\":1}".to_vec()),
            (ObjectType::Blob, big),
            (ObjectType::Tree, b"100644 a\0aaaaaaaaaaaaaaaaaaaa".to_vec()),
        ];
        let ids: Vec<Oid> = objects
            .iter()
            .map(|(kind, data)| Oid::hash_object(*kind, data).unwrap())
            .collect();
        let pack = packfile::build(
            objects
                .iter()
                .zip(&ids)
                .map(|((kind, data), id)| (*kind, *id, data.as_slice())),
        )
        .unwrap();
        let path = packfile::install(&strata_tiering::io::StdFs, dir.path(), &pack).unwrap();
        let (entries, pack_checksum) = index_entries(&path.with_extension("idx")).unwrap();
        let bytes = pack.to_bytes();
        assert_eq!(pack_checksum[..], bytes[bytes.len() - 20..]);
        // A flipped bit anywhere in the index is refused.
        let idx = std::fs::read(path.with_extension("idx")).unwrap();
        for byte in (0..idx.len()).step_by(7) {
            let mut damaged = idx.clone();
            damaged[byte] ^= 0x20;
            assert!(parse_index(&path, &damaged).is_err(), "byte {byte}");
        }
        assert_eq!(entries.len(), objects.len());
        for listed in &entries {
            let (kind, data) = stored_object(&bytes, listed).unwrap();
            assert_eq!(Oid::hash_object(kind, &data).unwrap(), listed.id);
        }
        // Any flipped bit in an entry (its type included) is refused.
        let listed = *entries.iter().find(|l| l.id == ids[1]).unwrap();
        let start = listed.offset as usize;
        // 1 header byte, the zlib header (2), one block header (5), 7 bytes, Adler-32 (4).
        let entry_len = 1 + 2 + 5 + 7 + 4;
        for byte in start..start + entry_len {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    stored_object(&damaged, &listed).is_none(),
                    "byte {byte} bit {bit}"
                );
            }
        }
        // Past the end: nothing.
        let past = Listed {
            offset: bytes.len() as u64,
            ..listed
        };
        assert!(stored_object(&bytes, &past).is_none());
        assert!(stored_object(&bytes[..40], &listed).is_none());
    }
}
