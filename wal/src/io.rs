//! The I/O seam: every file operation of the WAL (and, above it, of the segments, the
//! manifest and the files the cold tier writes itself into its git repository) goes through
//! [`Fs`] and [`FsFile`].
//!
//! Production code uses [`StdFs`]. Tests put [`FaultyFs`](crate::FaultyFs) (EIO or ENOSPC on
//! the Nth call) or [`MemFs`](crate::MemFs) (a power-losing in-memory disk) behind the same
//! seam, so failure handling is exercised without root or special filesystems.
//!
//! The seam is deliberately small: open, write, sync, rename, remove, sync a directory, set a
//! length. Reads are positional so a reader never disturbs a writer's file offset.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

/// Mode bits for files the store creates. Data is private to the owner. The umask can only
/// take bits away, so whatever it is, no one else gets access.
pub const FILE_MODE: u32 = 0o600;
/// Mode bits for directories the store creates: only the owner can list or enter them.
pub const DIR_MODE: u32 = 0o700;

/// Creates a directory and any missing parents with [`DIR_MODE`]; existing ones are left as
/// they are.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Creates (or truncates) a file for writing with [`FILE_MODE`].
pub fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates a new file for writing with [`FILE_MODE`]; fails if it exists.
pub fn create_new_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// A filesystem, as far as the storage engine needs one.
pub trait Fs: Send + Sync + Debug {
    /// Creates a directory and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries in a directory, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file for appending; fails if it already exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for positional reads.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for appending, truncating and syncing.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Atomically renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// True when paths name real files of the operating system, so a reader may memory-map
    /// them instead of reading through [`FsFile::read_at`].
    fn is_os_filesystem(&self) -> bool {
        false
    }

    /// Makes `to` a second name of the immutable file `from` (`to` must not exist). The default
    /// copies the bytes and syncs the copy, which is what a filesystem without links can do;
    /// either way the caller syncs the directory.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        copy_file(self, from, to).map(drop)
    }
}

/// Copies `from` to the new file `to` through `fs`, 1 MiB at a time, and syncs the copy. If
/// the copy fails once `to` exists, `to` is removed: a caller relying on `to` appearing whole
/// or not at all (as [`Fs::hard_link`] promises a link does) never finds part of a copy there.
pub fn copy_file<F: Fs + ?Sized>(fs: &F, from: &Path, to: &Path) -> io::Result<u64> {
    let source = fs.open_read(from)?;
    let len = source.len()?;
    let mut target = fs.create_new(to)?;
    let copied = copy_into(source.as_ref(), target.as_mut(), len);
    if copied.is_err() {
        drop(target);
        let _ = fs.remove_file(to);
    }
    copied.map(|()| len)
}

fn copy_into(source: &dyn FsFile, target: &mut dyn FsFile, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let want = usize::try_from((len - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        source.read_exact_at(&mut buf[..want], offset)?;
        target.append(&buf[..want])?;
        offset += want as u64;
    }
    target.sync_data()
}

/// An open file.
pub trait FsFile: Send + Sync + Debug {
    /// Appends the whole buffer at the end of the file.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates or extends the file. Appends then go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Extends the file with zeros to `len` bytes without moving where the next append
    /// lands: later appends overwrite the zeros. Writing over space the file already has
    /// spares `fdatasync` the file-size update that every growing append needs. Does nothing
    /// if the file is at least `len` bytes long.
    fn preallocate(&mut self, len: u64) -> io::Result<()>;
    /// Writes `len` zero bytes at `offset`, which lies within the file's length, without
    /// moving where the next append lands. Over preallocated space that reads as zeros
    /// already, this only makes the filesystem allocate the blocks now, rather than when an
    /// append there is first synced.
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// True if the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The real filesystem, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

/// A file written at an offset it tracks itself, never with `O_APPEND`: on Linux a positional
/// write to an `O_APPEND` file goes to the end, past any preallocated space.
#[derive(Debug)]
struct StdFile {
    file: File,
    /// Where the next append lands.
    end: u64,
}

impl StdFile {
    fn at_end(file: File) -> io::Result<StdFile> {
        let end = file.metadata()?.len();
        Ok(StdFile { file, end })
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        create_private_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)?;
        Ok(Box::new(StdFile { file, end: 0 }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(StdFile::at_end(File::open(path)?)?))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile::at_end(file)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        // A checkpoint may sit on another filesystem, where only a copy can do.
        match fs::hard_link(from, to) {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                copy_file(self, from, to).map(drop)
            }
            other => other,
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn is_os_filesystem(&self) -> bool {
        true
    }
}

impl FsFile for StdFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.end)?;
        self.end += buf.len() as u64;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end = len;
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        if self.file.metadata()?.len() < len {
            self.file.set_len(len)?;
        }
        Ok(())
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut at = offset;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "zero range past 2^64"))?;
        while at < end {
            let n = (end - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
