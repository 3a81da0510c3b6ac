//! Writing a commit's new objects as one git pack file, neither deltified nor compressed.
//!
//! A commit's pack is short-lived: the next repack folds it into a compressed pack with deltas.
//! Until then it must be cheap to write, so it skips libgit2's pack builder (a delta search
//! over every object, then compression) and is written directly in git's pack format,
//! version 2, with each object in zlib's stored form:
//!
//! ```text
//!   "PACK" | version u32 BE = 2 | object count u32 BE
//!   per object:
//!     header  1+ bytes: bit 7 = more bytes follow; bits 6-4 = type (1 commit, 2 tree, 3 blob);
//!             bits 3-0 = size bits 0-3; each further byte adds 7 size bits, low bits first
//!     body    the object's content (without git's "<type> <size>\0" prefix) as a zlib
//!             stream of stored deflate blocks (see `store`)
//!   trailer  SHA-1 of everything above (20 bytes)
//! ```
//!
//! libgit2's indexer then checks it, computes every object id and writes the `.idx`.

use git2::ObjectType;

/// Builds a pack holding `objects` as they are.
pub fn build<'a>(
    objects: impl ExactSizeIterator<Item = (ObjectType, &'a [u8])>,
) -> std::io::Result<Vec<u8>> {
    let mut pack = Vec::new();
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    let count = u32::try_from(objects.len())
        .map_err(|_| std::io::Error::other("more objects than a pack can count"))?;
    pack.extend_from_slice(&count.to_be_bytes());
    for (kind, data) in objects {
        let type_bits: u8 = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            other => return Err(std::io::Error::other(format!("cannot pack a {other:?}"))),
        };
        let mut size = data.len() as u64;
        let mut byte = (type_bits << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        store(data, &mut pack);
    }
    let digest = sha1_smol::Sha1::from(&pack).digest().bytes();
    pack.extend_from_slice(&digest);
    Ok(pack)
}

/// Appends `data` to `out` as one zlib stream of stored (uncompressed) deflate blocks.
///
/// ```text
///   0x78 0x01                      zlib header: deflate, 32 KiB window, no dictionary
///   per block of up to 65,535 bytes:
///     0x01 (last) or 0x00 | LEN u16 LE | !LEN u16 LE | the bytes
///   Adler-32 of the data, u32 BE
/// ```
fn store(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5,552 bytes is the most that can be summed before `b` could overflow a u32.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5_552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let long = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&long), ((b << 16) | a) as u32);
    }

    #[test]
    fn libgit2_indexes_the_pack_and_finds_every_object() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let blobs: Vec<&[u8]> = vec![b"", b"{\"a\":1}", &big];
        let pack = build(blobs.iter().map(|b| (ObjectType::Blob, *b))).unwrap();
        let odb = repo.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack).unwrap();
        writer.commit().unwrap();
        for blob in blobs {
            let id = git2::Oid::hash_object(ObjectType::Blob, blob).unwrap();
            assert_eq!(repo.find_blob(id).unwrap().content(), blob);
        }
    }
}
