//! [`SegmentWriter`]: builds one segment file from entries in segment order.
//!
//! ```text
//!  add(key, entry) ──► block builder ──(≈4 KiB)──► write buffer ──(1 MiB)──► <id>.seg.tmp
//!                           │ last key, seqno         │
//!                           ▼                         ▼
//!                      index records          key hashes (one per distinct key)
//!  finish() ──► index, bloom filter, footer ──► chmod 0400 ──► fsync ──► rename to <id>.seg
//!                                                                   ──► fsync the directory
//! ```
//!
//! Nothing is visible under the segment's name until it is complete and durable; a writer
//! dropped before [`finish`](SegmentWriter::finish) (or after an error) removes its temporary
//! file. Segment files are made read-only (0400) before they are renamed into place when the
//! filesystem is the operating system's; the I/O seam has no call for permissions, so on test
//! filesystems the step is skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_tiering::io::{Fs, FsFile};
use strata_tiering::{Entry, EntryKind, Key, SeqNo};

use crate::block::BlockBuilder;
use crate::bloom;
use crate::error::{Result, SegmentError};
use crate::format::{
    file_name, internal_cmp, EntryRef, Footer, SegmentId, BLOCK_TRAILER_LEN, DIRECTORY_SLOT_LEN,
    FOOTER_LEN, MAX_VALUE_LEN, TEMP_SUFFIX,
};

/// Mode of installed segment files: read-only, and private to the owner like every data file.
pub const SEGMENT_FILE_MODE: u32 = 0o400;

/// Settings of a [`SegmentWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Target size of a data block in bytes. Default: 4096.
    pub block_size: usize,
    /// Bloom filter bits per distinct key. Default: 10 (about 1% false positives).
    pub bloom_bits_per_key: u32,
    /// Bytes gathered in memory before each write to the file. Default: 1 MiB.
    pub write_buffer_size: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            block_size: 4096,
            bloom_bits_per_key: 10,
            write_buffer_size: 1 << 20,
        }
    }
}

/// What a finished writer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id.
    pub id: SegmentId,
    /// Where the file is.
    pub path: PathBuf,
    /// Its footer.
    pub footer: Footer,
}

/// Writes one segment. Entries must come in segment order: keys ascending, a key's versions
/// by seqno descending, no `(key, seqno)` twice.
#[derive(Debug)]
pub struct SegmentWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    id: SegmentId,
    temp: PathBuf,
    path: PathBuf,
    file: Option<Box<dyn FsFile>>,
    options: WriterOptions,
    block: BlockBuilder,
    out: Vec<u8>,
    data_len: u64,
    index: Vec<u8>,
    first_key: Vec<u8>,
    last: Option<(Vec<u8>, SeqNo)>,
    hashes: Vec<u64>,
    footer: Footer,
    failed: bool,
}

impl SegmentWriter {
    /// Starts segment `id` in `dir`, writing to `<id>.seg.tmp` (a leftover of that name from an
    /// earlier attempt is replaced).
    pub fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        id: SegmentId,
        options: WriterOptions,
    ) -> Result<SegmentWriter> {
        let name = file_name(id);
        let path = dir.join(&name);
        let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
        // A leftover from a failed attempt is never part of any segment set.
        let _ = fs.remove_file(&temp);
        let file = fs
            .create_new(&temp)
            .map_err(|e| SegmentError::io("create", &temp, e))?;
        let block_size = options.block_size.clamp(256, 1 << 24);
        Ok(SegmentWriter {
            block: BlockBuilder::new(block_size),
            out: Vec::with_capacity(options.write_buffer_size.min(1 << 24)),
            fs,
            dir: dir.to_owned(),
            id,
            temp,
            path,
            file: Some(file),
            options: WriterOptions {
                block_size,
                ..options
            },
            data_len: 0,
            index: Vec::new(),
            first_key: Vec::new(),
            last: None,
            hashes: Vec::new(),
            footer: Footer {
                segment_id: id,
                ..Footer::default()
            },
            failed: false,
        })
    }

    /// The path the segment will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.footer.entry_count
    }

    /// Bytes produced so far (blocks written or buffered; index and filter excluded).
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Adds the next version.
    pub fn add(&mut self, key: &Key, entry: &Entry) -> Result<()> {
        let (tombstone, value) = match &entry.kind {
            EntryKind::Value(v) => (false, v.as_bytes()),
            EntryKind::Tombstone => (true, &[][..]),
        };
        self.add_ref(&EntryRef {
            key: key.as_bytes(),
            seqno: entry.seqno,
            tombstone,
            archived: false,
            expires_at: entry.expires_at,
            value,
        })
    }

    /// Adds the next version, given as borrowed parts.
    pub(crate) fn add_ref(&mut self, entry: &EntryRef<'_>) -> Result<()> {
        if self.failed {
            return Err(SegmentError::BadDirectory {
                path: self.temp.clone(),
                detail: "writer used after an earlier error".into(),
            });
        }
        if strata_tiering::Key::validate(entry.key).is_err() {
            return Err(SegmentError::TooLarge {
                path: self.path.clone(),
                key: key_for_error(entry.key),
                detail: format!("key of {} bytes is not a valid key", entry.key.len()),
            });
        }
        let entry_len = entry.encoded_len();
        if entry.value.len() > MAX_VALUE_LEN
            || entry_len + DIRECTORY_SLOT_LEN + BLOCK_TRAILER_LEN > u32::MAX as usize
        {
            return Err(SegmentError::TooLarge {
                path: self.path.clone(),
                key: key_for_error(entry.key),
                detail: format!(
                    "a value of {} bytes does not fit a block",
                    entry.value.len()
                ),
            });
        }
        let new_key = match &self.last {
            None => true,
            Some((last_key, last_seqno)) => {
                if internal_cmp((last_key, *last_seqno), (entry.key, entry.seqno)).is_ge() {
                    return Err(SegmentError::OutOfOrder {
                        path: self.path.clone(),
                        key: key_for_error(entry.key),
                        seqno: entry.seqno,
                        previous_key: key_for_error(last_key),
                        previous_seqno: *last_seqno,
                    });
                }
                last_key.as_slice() != entry.key
            }
        };
        if !self.block.is_empty() && self.block.len_with(entry_len) > self.options.block_size {
            self.finish_block()?;
        }
        self.block.add(entry);
        if new_key {
            self.hashes.push(bloom::key_hash(entry.key));
            self.footer.key_count += 1;
        }
        let footer = &mut self.footer;
        if footer.entry_count == 0 {
            self.first_key = entry.key.to_vec();
            footer.min_seqno = entry.seqno;
            footer.max_seqno = entry.seqno;
        }
        footer.entry_count += 1;
        footer.tombstone_count += u64::from(entry.tombstone);
        footer.min_seqno = footer.min_seqno.min(entry.seqno);
        footer.max_seqno = footer.max_seqno.max(entry.seqno);
        footer.payload_bytes += (entry.key.len() + entry.value.len()) as u64;
        match &mut self.last {
            Some((key, seqno)) => {
                key.clear();
                key.extend_from_slice(entry.key);
                *seqno = entry.seqno;
            }
            None => self.last = Some((entry.key.to_vec(), entry.seqno)),
        }
        Ok(())
    }

    /// Closes the current block and records it in the index.
    fn finish_block(&mut self) -> Result<()> {
        let len = self.block.finish_into(&mut self.out);
        let (last_key, last_seqno) = self.last.as_ref().map_or((&[][..], 0), |(k, s)| (k, *s));
        self.index.extend_from_slice(&self.data_len.to_le_bytes());
        self.index.extend_from_slice(&(len as u32).to_le_bytes());
        self.index.extend_from_slice(&last_seqno.to_le_bytes());
        self.index
            .extend_from_slice(&(last_key.len() as u32).to_le_bytes());
        self.index.extend_from_slice(last_key);
        self.data_len += len as u64;
        self.footer.block_count += 1;
        if self.out.len() >= self.options.write_buffer_size {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = file.append(&self.out) {
            self.failed = true;
            return Err(SegmentError::io("write", &self.temp, e));
        }
        self.out.clear();
        Ok(())
    }

    /// Writes the index, filter and footer, makes the file durable and read-only, renames it
    /// into place and makes the rename durable.
    pub fn finish(mut self) -> Result<SegmentInfo> {
        if !self.block.is_empty() {
            self.finish_block()?;
        }
        let mut index = Vec::with_capacity(4 + self.first_key.len() + self.index.len());
        index.extend_from_slice(&(self.first_key.len() as u32).to_le_bytes());
        index.extend_from_slice(&self.first_key);
        index.extend_from_slice(&self.index);
        let filter = bloom::build(&self.hashes, self.options.bloom_bits_per_key);
        let footer = Footer {
            data_len: self.data_len,
            index_len: index.len() as u64,
            bloom_len: filter.len() as u64,
            index_crc: crc32fast::hash(&index),
            bloom_crc: crc32fast::hash(&filter),
            file_len: self.data_len + index.len() as u64 + filter.len() as u64 + FOOTER_LEN as u64,
            ..self.footer
        };
        self.out.extend_from_slice(&index);
        self.out.extend_from_slice(&filter);
        self.out.extend_from_slice(&footer.encode());
        self.write_out()?;
        self.failed = true; // until the rename below has succeeded
        if self.fs.is_os_filesystem() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(SEGMENT_FILE_MODE);
            std::fs::set_permissions(&self.temp, mode)
                .map_err(|e| SegmentError::io("chmod", &self.temp, e))?;
        }
        if let Some(file) = self.file.as_mut() {
            file.sync_data()
                .map_err(|e| SegmentError::io("fsync", &self.temp, e))?;
        }
        self.file = None;
        self.fs
            .rename(&self.temp, &self.path)
            .map_err(|e| SegmentError::io("rename", &self.temp, e))?;
        // The temporary name is gone. Should the directory fsync fail, the file is removed
        // again: no manifest references it, and a later open would remove it anyway.
        self.temp = PathBuf::new();
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            let _ = self.fs.remove_file(&self.path);
            return Err(SegmentError::io("fsync directory", &self.dir, e));
        }
        self.failed = false;
        Ok(SegmentInfo {
            id: self.id,
            path: self.path.clone(),
            footer,
        })
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // Unfinished (or failed) writers leave nothing behind.
        self.file = None;
        if !self.temp.as_os_str().is_empty() {
            let _ = self.fs.remove_file(&self.temp);
        }
    }
}

/// A key as shown in error messages: escaped and cut short.
pub(crate) fn key_for_error(bytes: &[u8]) -> String {
    strata_tiering::escape_bytes(bytes, 64)
}

/// Writes a whole segment from `entries` in segment order.
pub fn write_segment(
    fs: Arc<dyn Fs>,
    dir: &Path,
    id: SegmentId,
    options: WriterOptions,
    entries: impl IntoIterator<Item = (Key, Entry)>,
) -> Result<SegmentInfo> {
    let mut writer = SegmentWriter::create(fs, dir, id, options)?;
    for (key, entry) in entries {
        writer.add(&key, &entry)?;
    }
    writer.finish()
}
