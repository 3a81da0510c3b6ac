//! Writing a commit's new objects as one git pack file and its index, both by hand.
//!
//! A commit's pack is short-lived: the next repack folds it into a compressed pack with deltas.
//! Until then it must be cheap to write, so it skips libgit2's pack builder (a delta search
//! over every object, then compression) and its indexer (which inflates and hashes every
//! object a second time). The pack is git's format, version 2, with each object in zlib's
//! stored form:
//!
//! ```text
//!   "PACK" | version u32 BE = 2 | object count u32 BE
//!   per object:
//!     header  1+ bytes: bit 7 = more bytes follow; bits 6-4 = type (1 commit, 2 tree, 3 blob);
//!             bits 3-0 = size bits 0-3; each further byte adds 7 size bits, low bits first
//!     body    the object's content (without git's "<type> <size>\0" prefix) as a zlib
//!             stream of stored deflate blocks (see `store`)
//!            (a merge of packs may also write type 7, a delta against another object of the
//!            same pack: the base's 20-byte id follows the header, the size is the delta's)
//!   trailer  SHA-1 of everything above (20 bytes); the file is named pack-<its hex>.pack
//! ```
//!
//! The index beside it is git's version 2 `.idx`:
//!
//! ```text
//!   0xff 't' 'O' 'c' | version u32 BE = 2
//!   fan-out  256 × u32 BE: entry i counts the objects whose id's first byte is <= i
//!   ids      20 bytes each, ascending
//!   CRC32    u32 BE each, of the object's bytes in the pack (header and body), in id order
//!   offsets  u32 BE each, in id order; bit 31 set means "bits 0-30 index the next table"
//!   large    u64 BE offsets of objects past 2 GiB
//!   trailer  the pack's SHA-1, then the SHA-1 of everything above in this file
//! ```
//!
//! The ids are the objects' git ids, computed by the caller with libgit2's collision-detecting
//! SHA-1 (`Oid::hash_object`); only the two file checksums are computed here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};
use strata_tiering::io::Fs;

use crate::error::{Error, Result};

/// A pack built in memory, with what its index needs.
pub struct Pack {
    /// The `.pack` file as consecutive pieces: the header, each run of entries as it was
    /// encoded, the trailer. Written one after another, never copied into one buffer: for a
    /// fold's pack of several MiB that copy, into memory the kernel must first zero, cost more
    /// than writing it.
    pieces: Vec<Vec<u8>>,
    len: u64,
    /// Each object's id, offset in the file and CRC32 of its packed bytes, in packing order.
    entries: Vec<(Oid, u64, u32)>,
    checksum: [u8; 20],
}

impl Pack {
    /// `pack-<hex of the trailer>`, git's name for it.
    pub fn name(&self) -> String {
        pack_name(&self.checksum)
    }

    /// The `.pack` file's size.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The `.pack` file's bytes, in pieces to write in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(Vec::as_slice)
    }

    /// The whole `.pack` file in one buffer.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// `pack-<hex of checksum>`, git's name for the pack whose trailer is `checksum`.
pub fn pack_name(checksum: &[u8; 20]) -> String {
    let mut name = String::with_capacity(45);
    name.push_str("pack-");
    for byte in checksum {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Builds a pack holding `objects` (kind, id, content) as they are, on the calling thread.
#[cfg(test)]
pub fn build<'a>(
    objects: impl ExactSizeIterator<Item = (ObjectType, Oid, &'a [u8])>,
) -> std::io::Result<Pack> {
    let entries = objects.map(|(kind, id, data)| (Stored::Whole(kind), id, data));
    assemble(vec![encode(entries, 0, |data, out| {
        store(data, out);
        Ok(())
    })?])
}

/// How a pack entry holds its object.
#[derive(Debug, Clone, Copy)]
pub enum Stored {
    /// The object's content.
    Whole(ObjectType),
    /// A delta (see `delta`) against the object with this id, which must be in the same pack.
    /// Type 7 in the header, whose size is the delta's; the base's 20-byte id follows it.
    RefDelta(Oid),
}

/// Builds a pack of `entries`, encoding runs of them on several threads (see `parallel`)
/// once there are `parallel_from` or more; `body` makes each thread's body encoder.
pub fn build_in_runs<B>(
    entries: &[(Stored, Oid, &[u8])],
    parallel_from: usize,
    body: impl Fn() -> B + Sync,
) -> std::io::Result<Pack>
where
    B: FnMut(&[u8], &mut Vec<u8>) -> std::io::Result<()>,
{
    assemble(encode_in_runs(entries, parallel_from, body)?)
}

/// `entries` encoded as [`build_in_runs`] does, as parts to write in order.
pub fn encode_in_runs<B>(
    entries: &[(Stored, Oid, &[u8])],
    parallel_from: usize,
    body: impl Fn() -> B + Sync,
) -> std::io::Result<Vec<Part>>
where
    B: FnMut(&[u8], &mut Vec<u8>) -> std::io::Result<()>,
{
    crate::parallel::in_runs(
        entries,
        parallel_from,
        |run: &[(Stored, Oid, &[u8])]| {
            // Sized once for the stored form (the largest a body writes): grown by doubling, a
            // run's buffer would be copied and would touch fresh memory at each step.
            let capacity = run
                .iter()
                .map(|(_, _, data)| STORED_OVERHEAD + data.len() + data.len() / 65_535 * 5)
                .sum();
            encode(run.iter().copied(), capacity, body())
        },
        || Err(std::io::Error::other("a packing thread panicked")),
    )
    .into_iter()
    .collect()
}

/// A run of consecutive pack entries, encoded apart from the others (on its own thread, say).
pub struct Part {
    pub(crate) bytes: Vec<u8>,
    /// Each entry's id, offset within `bytes` and CRC32.
    pub(crate) entries: Vec<(Oid, u64, u32)>,
}

/// An entry's bytes besides its content in the stored form, at most: a 10-byte header, a
/// delta's 20-byte base id, zlib's 2-byte header and 4-byte checksum, one block's 5 bytes.
const STORED_OVERHEAD: usize = 10 + 20 + 2 + 4 + 5;

/// Encodes `objects` as consecutive pack entries, into a buffer of `capacity` bytes to start
/// with.
pub fn encode<'a>(
    objects: impl Iterator<Item = (Stored, Oid, &'a [u8])>,
    capacity: usize,
    mut body: impl FnMut(&[u8], &mut Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<Part> {
    let mut bytes = Vec::with_capacity(capacity);
    let mut entries = Vec::new();
    for (kind, id, data) in objects {
        let type_bits: u8 = match kind {
            Stored::Whole(ObjectType::Commit) => 1,
            Stored::Whole(ObjectType::Tree) => 2,
            Stored::Whole(ObjectType::Blob) => 3,
            Stored::Whole(ObjectType::Tag) => 4,
            Stored::RefDelta(_) => 7,
            Stored::Whole(other) => {
                return Err(std::io::Error::other(format!("cannot pack a {other:?}")))
            }
        };
        let start = bytes.len();
        let mut size = data.len() as u64;
        let mut byte = (type_bits << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            bytes.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        bytes.push(byte);
        if let Stored::RefDelta(base) = kind {
            bytes.extend_from_slice(base.as_bytes());
        }
        body(data, &mut bytes)?;
        entries.push((id, start as u64, crc32fast::hash(&bytes[start..])));
    }
    Ok(Part { bytes, entries })
}

/// The pack holding `parts`' entries, in order.
pub fn assemble(parts: Vec<Part>) -> std::io::Result<Pack> {
    let count: usize = parts.iter().map(|p| p.entries.len()).sum();
    let count = u32::try_from(count)
        .map_err(|_| std::io::Error::other("more objects than a pack can count"))?;
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(b"PACK");
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&count.to_be_bytes());
    let mut hasher = Sha1::new();
    hasher.update(&header);
    let mut len = header.len() as u64;
    let mut pieces = Vec::with_capacity(parts.len() + 2);
    pieces.push(header);
    let mut entries = Vec::with_capacity(count as usize);
    let mut ids = std::collections::HashSet::with_capacity(count as usize);
    for part in parts {
        // An index lists each object once, so a pack holding one twice would be unreadable.
        if let Some((id, _, _)) = part.entries.iter().find(|(id, _, _)| !ids.insert(*id)) {
            return Err(std::io::Error::other(format!(
                "object {id} twice in one pack"
            )));
        }
        entries.extend(
            part.entries
                .into_iter()
                .map(|(id, offset, crc)| (id, len + offset, crc)),
        );
        hasher.update(&part.bytes);
        len += part.bytes.len() as u64;
        pieces.push(part.bytes);
    }
    let checksum: [u8; 20] = hasher.finalize().into();
    pieces.push(checksum.to_vec());
    Ok(Pack {
        pieces,
        len: len + 20,
        entries,
        checksum,
    })
}

/// Git's order of object ids, their bytes'. `Oid`'s own `Ord` gives the same order through a
/// call into libgit2 per comparison, which made sorting a fold's 9,000 ids take 2.5 ms.
pub fn id_order(a: &Oid, b: &Oid) -> std::cmp::Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

/// The version 2 `.idx` file for `pack`.
pub fn index(pack: &Pack) -> Vec<u8> {
    index_of(&pack.entries, &pack.checksum)
}

/// The version 2 `.idx` file for a pack holding `entries` (id, offset, CRC32; distinct ids)
/// whose trailer is `checksum`.
pub fn index_of(entries: &[(Oid, u64, u32)], checksum: &[u8; 20]) -> Vec<u8> {
    let mut sorted: Vec<&(Oid, u64, u32)> = entries.iter().collect();
    // `assemble` refused duplicates, so the ids are distinct.
    sorted.sort_unstable_by(|(a, _, _), (b, _, _)| id_order(a, b));
    let mut idx = Vec::with_capacity(8 + 1024 + sorted.len() * 28 + 40);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c']);
    idx.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _, _) in &sorted {
        fanout[usize::from(id.as_bytes()[0])] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        idx.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _, _) in &sorted {
        idx.extend_from_slice(id.as_bytes());
    }
    for (_, _, crc) in &sorted {
        idx.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, offset, _) in &sorted {
        match u32::try_from(*offset).ok().filter(|o| o & 0x8000_0000 == 0) {
            Some(small) => idx.extend_from_slice(&small.to_be_bytes()),
            None => {
                let slot = 0x8000_0000 | large.len() as u32;
                idx.extend_from_slice(&slot.to_be_bytes());
                large.push(*offset);
            }
        }
    }
    for offset in large {
        idx.extend_from_slice(&offset.to_be_bytes());
    }
    idx.extend_from_slice(checksum);
    let own: [u8; 20] = Sha1::digest(&idx).into();
    idx.extend_from_slice(&own);
    idx
}

/// Writes `pack` and its index into `pack_dir` durably, and returns the pack's path.
///
/// ```text
///   tmp-<pid>-<n>.pack.tmp, tmp-<pid>-<n>.idx.tmp   written and fdatasynced (at once)
///   pack-<hex>.pack                                 linked to the first (readers ignore a
///                                                   pack without an index)
///   pack-<hex>.idx                                  linked to the second, never over an
///                                                   existing one: the pack is now visible
///   pack_dir                                        fsynced; the temporary names removed
/// ```
///
/// Each call writes under names of its own, so two handles installing the same pack (merges
/// are deterministic) never write into each other's files, and a failure removes only what
/// this call created. A crash may leave `*.tmp` files or a `.pack` without an index, which no
/// reader sees and a merge of packs removes once they are old.
pub fn install(fs: &dyn Fs, pack_dir: &Path, pack: &Pack) -> Result<PathBuf> {
    let name = pack.name();
    let pack_path = pack_dir.join(format!("{name}.pack"));
    let idx_path = pack_dir.join(format!("{name}.idx"));
    if idx_path.exists() {
        // Published by another install after its fdatasyncs: the same objects in the same
        // order. Its directory entries may not be durable yet.
        sync_dir(fs, pack_dir)?;
        return Ok(pack_path);
    }
    let (tmp_pack, tmp_idx) = temporary_paths(pack_dir);
    let index = index(pack);
    let written = (|| {
        // The two files' writes and fdatasyncs overlap: each fdatasync waits for the device,
        // and two in flight cost little more than one.
        std::thread::scope(|scope| {
            let pack_written = std::thread::Builder::new().spawn_scoped(scope, || {
                write_pieces_durably(fs, &tmp_pack, pack.pieces(), "write pack")
            });
            let index_written = write_durably(fs, &tmp_idx, &index, "write pack index");
            let pack_written = match pack_written {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(Error::Io {
                        op: "write pack",
                        path: tmp_pack.clone(),
                        source: std::io::Error::other("the writing thread panicked"),
                    })
                }),
                // No thread to be had: write it here.
                Err(_) => write_pieces_durably(fs, &tmp_pack, pack.pieces(), "write pack"),
            };
            pack_written.and(index_written)
        })?;
        let finals = (pack_path.as_path(), idx_path.as_path());
        publish(fs, (&tmp_pack, &tmp_idx), finals, pack.len())
    })();
    // The temporary names go either way; after a failure nothing else of this call's is left
    // (a pack renamed into place without its index is invisible, and removed by a merge).
    for leftover in [&tmp_pack, &tmp_idx] {
        let _ = fs.remove_file(leftover);
    }
    written.map(|()| pack_path)
}

/// Fresh temporary names for a pack and its index in `pack_dir`, unique to this call.
pub fn temporary_paths(pack_dir: &Path) -> (PathBuf, PathBuf) {
    static INSTALLS: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        "tmp-{}-{}",
        std::process::id(),
        INSTALLS.fetch_add(1, Ordering::Relaxed)
    );
    (
        pack_dir.join(format!("{unique}.pack.tmp")),
        pack_dir.join(format!("{unique}.idx.tmp")),
    )
}

/// Makes a pack and its index, written and fdatasynced under their temporary names, visible
/// under their final ones (see [`install`]); `pack_len` is the pack's length.
pub fn publish(
    fs: &dyn Fs,
    (tmp_pack, tmp_idx): (&Path, &Path),
    (pack_path, idx_path): (&Path, &Path),
    pack_len: u64,
) -> Result<()> {
    // A `.pack` already there under this name is another install's (complete, as it is
    // linked only after its fdatasync) or, if its length is wrong, a leftover to replace.
    let same = std::fs::metadata(pack_path).is_ok_and(|m| m.len() == pack_len);
    if !same {
        fs.rename(tmp_pack, pack_path).map_err(|source| Error::Io {
            op: "install pack",
            path: pack_path.to_path_buf(),
            source,
        })?;
    }
    match fs.hard_link(tmp_idx, idx_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::Io {
                op: "install pack index",
                path: idx_path.to_path_buf(),
                source,
            })
        }
    }
    let pack_dir = pack_path.parent().unwrap_or(Path::new("."));
    sync_dir(fs, pack_dir)
}

fn sync_dir(fs: &dyn Fs, pack_dir: &Path) -> Result<()> {
    fs.sync_dir(pack_dir).map_err(|source| Error::Io {
        op: "fsync",
        path: pack_dir.to_path_buf(),
        source,
    })
}

pub fn write_durably(fs: &dyn Fs, path: &Path, bytes: &[u8], op: &'static str) -> Result<()> {
    write_pieces_durably(fs, path, std::iter::once(bytes), op)
}

/// [`write_durably`] of the concatenation of `pieces`.
pub fn write_pieces_durably<'a>(
    fs: &dyn Fs,
    path: &Path,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    op: &'static str,
) -> Result<()> {
    let io = |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs.create_new(path).map_err(io)?;
    for piece in pieces {
        file.append(piece).map_err(io)?;
    }
    file.sync_data().map_err(io)
}

/// Appends `data` to `out` as one zlib stream of stored (uncompressed) deflate blocks.
///
/// ```text
///   0x78 0x01                      zlib header: deflate, 32 KiB window, no dictionary
///   per block of up to 65,535 bytes:
///     0x01 (last) or 0x00 | LEN u16 LE | !LEN u16 LE | the bytes
///   Adler-32 of the data, u32 BE
/// ```
pub fn store(data: &[u8], out: &mut Vec<u8>) {
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
    let mut hash = simd_adler32::Adler32::new();
    hash.write(data);
    hash.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;
    use strata_tiering::io::StdFs;

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
        let ids: Vec<Oid> = blobs
            .iter()
            .map(|b| Oid::hash_object(ObjectType::Blob, b).unwrap())
            .collect();
        let pack = build(
            blobs
                .iter()
                .zip(&ids)
                .map(|(b, id)| (ObjectType::Blob, *id, *b)),
        )
        .unwrap();
        let odb = repo.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack.to_bytes()).unwrap();
        writer.commit().unwrap();
        for blob in blobs {
            let id = git2::Oid::hash_object(ObjectType::Blob, blob).unwrap();
            assert_eq!(repo.find_blob(id).unwrap().content(), blob);
        }
    }

    /// The hand-written index is byte for byte the one libgit2's indexer writes for the pack.
    #[test]
    fn index_matches_libgit2s() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let contents: Vec<Vec<u8>> = (0..600u32)
            .map(|i| {
                format!("{{\"n\":{i}}}")
                    .repeat(1 + (i as usize % 7))
                    .into_bytes()
            })
            .collect();
        let ids: Vec<Oid> = contents
            .iter()
            .map(|c| Oid::hash_object(ObjectType::Blob, c).unwrap())
            .collect();
        let pack = build(
            contents
                .iter()
                .zip(&ids)
                .map(|(c, id)| (ObjectType::Blob, *id, c.as_slice())),
        )
        .unwrap();
        let odb = repo.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack.to_bytes()).unwrap();
        writer.commit().unwrap();
        let theirs = std::fs::read(
            dir.path()
                .join("objects/pack")
                .join(format!("{}.idx", pack.name())),
        )
        .unwrap();
        assert_eq!(index(&pack), theirs);
    }

    #[test]
    fn an_installed_pack_is_found_by_a_fresh_handle() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let blob: &[u8] = b"installed";
        let id = Oid::hash_object(ObjectType::Blob, blob).unwrap();
        let pack = build([(ObjectType::Blob, id, blob)].into_iter()).unwrap();
        let pack_dir = dir.path().join("objects/pack");
        let path = install(&StdFs, &pack_dir, &pack).unwrap();
        assert!(path.exists());
        assert!(!pack_dir.join(format!("{}.idx.tmp", pack.name())).exists());
        // Installing the same pack again is a no-op.
        install(&StdFs, &pack_dir, &pack).unwrap();
        assert_eq!(repo.find_blob(id).unwrap().content(), blob);
        let fresh = git2::Repository::open_bare(dir.path()).unwrap();
        assert_eq!(fresh.find_blob(id).unwrap().content(), blob);
    }

    #[test]
    fn a_failed_install_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blob: &[u8] = b"x";
        let id = Oid::hash_object(ObjectType::Blob, blob).unwrap();
        let pack = build([(ObjectType::Blob, id, blob)].into_iter()).unwrap();
        // The pack directory is a file: the first write fails.
        let not_a_dir = dir.path().join("pack");
        std::fs::write(&not_a_dir, b"").unwrap();
        assert!(install(&StdFs, &not_a_dir, &pack).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
