//! A pack written to its file run by run, for merges too large to hold in memory.
//!
//! A commit's pack is built whole in memory (see [`packfile`]): it holds one batch. A merge of
//! packs may hold the whole repository, so it hands its entries over in runs, each written as
//! soon as it is encoded, with the checksum kept up to date:
//!
//! ```text
//!   tmp-<pid>-<n>.pack.tmp   "PACK" | 2 | count        (create: the count is known up front)
//!                            run | run | ...           (append, each as soon as it is encoded)
//!                            SHA-1 of all the above    (finish, then fdatasync)
//!   tmp-<pid>-<n>.idx.tmp    the index of every entry, written and fdatasynced  (install)
//!   then published as packfile::install does: pack renamed, index linked, directory fsynced
//! ```
//!
//! A writer dropped before it is installed removes its temporary file.

use std::path::{Path, PathBuf};

use git2::Oid;
use sha1::{Digest, Sha1};
use strata_tiering::io::{Fs, FsFile};

use crate::error::{Error, Result};
use crate::packfile::{self, Part};

/// A pack being written to a temporary file.
pub struct PackWriter<'f> {
    fs: &'f dyn Fs,
    pack_dir: PathBuf,
    tmp_pack: PathBuf,
    tmp_idx: PathBuf,
    file: Option<Box<dyn FsFile>>,
    checksum: Sha1,
    len: u64,
    count: u32,
    entries: Vec<(Oid, u64, u32)>,
}

impl std::fmt::Debug for PackWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("tmp_pack", &self.tmp_pack)
            .field("len", &self.len)
            .field("count", &self.count)
            .finish()
    }
}

impl<'f> PackWriter<'f> {
    /// Starts a pack of exactly `count` objects in `pack_dir`.
    pub fn create(fs: &'f dyn Fs, pack_dir: &Path, count: u32) -> Result<Self> {
        let (tmp_pack, tmp_idx) = packfile::temporary_paths(pack_dir);
        let file = fs.create_new(&tmp_pack).map_err(|source| Error::Io {
            op: "create pack",
            path: tmp_pack.clone(),
            source,
        })?;
        let mut writer = PackWriter {
            fs,
            pack_dir: pack_dir.to_path_buf(),
            tmp_pack,
            tmp_idx,
            file: Some(file),
            checksum: Sha1::new(),
            len: 0,
            count,
            entries: Vec::with_capacity(count as usize),
        };
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        writer.write(&header)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::corrupt(&self.tmp_pack, "written after it was finished"))?;
        file.append(bytes).map_err(|source| Error::Io {
            op: "write pack",
            path: self.tmp_pack.clone(),
            source,
        })?;
        self.checksum.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a run of encoded entries.
    pub fn append(&mut self, part: Part) -> Result<()> {
        let base = self.len;
        self.write(&part.bytes)?;
        self.entries.extend(
            part.entries
                .into_iter()
                .map(|(id, offset, crc)| (id, base + offset, crc)),
        );
        Ok(())
    }

    /// Ends the pack (checksum, fdatasync), writes its index and publishes both under their
    /// final names; returns the pack's path. Fails, leaving nothing behind, unless exactly the
    /// promised number of distinct objects was appended.
    pub fn install(mut self) -> Result<PathBuf> {
        if self.entries.len() != self.count as usize {
            return Err(Error::corrupt(
                &self.tmp_pack,
                format!(
                    "{} entries written to a pack of {}",
                    self.entries.len(),
                    self.count
                ),
            ));
        }
        let mut ids: Vec<&Oid> = self.entries.iter().map(|(id, ..)| id).collect();
        ids.sort_unstable_by(|a, b| packfile::id_order(a, b));
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::corrupt(
                &self.tmp_pack,
                format!("object {} twice in one pack", pair[0]),
            ));
        }
        let checksum: [u8; 20] = std::mem::take(&mut self.checksum).finalize().into();
        self.write(&checksum)?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::corrupt(&self.tmp_pack, "finished twice"))?;
        file.sync_data().map_err(|source| Error::Io {
            op: "write pack",
            path: self.tmp_pack.clone(),
            source,
        })?;
        drop(file);
        let name = packfile::pack_name(&checksum);
        let pack_path = self.pack_dir.join(format!("{name}.pack"));
        let idx_path = self.pack_dir.join(format!("{name}.idx"));
        if idx_path.exists() {
            // Published by another merge of the same packs; its directory entries may not be
            // durable yet.
            self.fs
                .sync_dir(&self.pack_dir)
                .map_err(|source| Error::Io {
                    op: "fsync",
                    path: self.pack_dir.clone(),
                    source,
                })?;
        } else {
            let index = packfile::index_of(&self.entries, &checksum);
            packfile::write_durably(self.fs, &self.tmp_idx, &index, "write pack index")?;
            packfile::publish(
                self.fs,
                (&self.tmp_pack, &self.tmp_idx),
                (&pack_path, &idx_path),
                self.len,
            )?;
        }
        // Drop removes the temporary names (already renamed or linked away, or unneeded).
        Ok(pack_path)
    }
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        self.file = None;
        for leftover in [&self.tmp_pack, &self.tmp_idx] {
            if leftover.exists() {
                let _ = self.fs.remove_file(leftover);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packfile::Stored;
    use git2::{ObjectType, Repository};
    use strata_tiering::io::StdFs;

    fn blobs(range: std::ops::Range<u32>) -> Vec<(Oid, Vec<u8>)> {
        range
            .map(|i| {
                let data = format!("blob {i} {}", "x".repeat(i as usize)).into_bytes();
                (Oid::hash_object(ObjectType::Blob, &data).unwrap(), data)
            })
            .collect()
    }

    fn part(objects: &[(Oid, Vec<u8>)]) -> Part {
        let entries = objects
            .iter()
            .map(|(id, data)| (Stored::Whole(ObjectType::Blob), *id, data.as_slice()));
        packfile::encode(entries, 0, |data, out| {
            packfile::store(data, out);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn a_pack_written_in_runs_is_the_pack_built_whole() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let pack_dir = dir.path().join("objects/pack");
        let objects = blobs(0..50);
        let mut writer = PackWriter::create(&StdFs, &pack_dir, 50).unwrap();
        for run in objects.chunks(7) {
            writer.append(part(run)).unwrap();
        }
        let streamed = writer.install().unwrap();
        let whole = packfile::assemble(vec![part(&objects)]).unwrap();
        assert_eq!(std::fs::read(&streamed).unwrap(), whole.to_bytes());
        assert_eq!(
            std::fs::read(streamed.with_extension("idx")).unwrap(),
            packfile::index(&whole)
        );
        let odb = repo.odb().unwrap();
        for (id, data) in &objects {
            assert_eq!(odb.read(*id).unwrap().data(), data.as_slice());
        }
        let names: Vec<_> = std::fs::read_dir(&pack_dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "only the pack and its index are left");
    }

    #[test]
    fn a_wrong_count_or_a_duplicate_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pack_dir = dir.path().join("pack");
        std::fs::create_dir_all(&pack_dir).unwrap();
        let objects = blobs(0..5);
        let mut short = PackWriter::create(&StdFs, &pack_dir, 6).unwrap();
        short.append(part(&objects)).unwrap();
        assert!(short.install().is_err());
        let mut twice = PackWriter::create(&StdFs, &pack_dir, 6).unwrap();
        twice.append(part(&objects)).unwrap();
        twice.append(part(&objects[..1])).unwrap();
        let error = twice.install().unwrap_err();
        assert!(error.to_string().contains("twice"), "{error}");
        // Abandoned half-way.
        let mut abandoned = PackWriter::create(&StdFs, &pack_dir, 5).unwrap();
        abandoned.append(part(&objects[..2])).unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read_dir(&pack_dir).unwrap().count(), 0);
    }
}
