//! [`TapFs`]: the operating system's filesystem with a hook before every changing operation
//! and, if asked, the same operations mirrored on a power-losing in-memory disk under the
//! same paths. A cold store given one as its `ColdOptions::fs` writes its real files as
//! usual (libgit2 reads them), while a test counts, stops or images its operations.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use strata_wal::{Fs, FsFile, PowerCutFs, StdFs};

/// Called before every changing operation.
pub type Hook = Arc<dyn Fn() + Send + Sync>;

pub struct TapFs {
    before: Hook,
    mirror: Option<PowerCutFs>,
}

impl TapFs {
    pub fn new(before: Hook, mirror: Option<PowerCutFs>) -> TapFs {
        TapFs { before, mirror }
    }

    fn both<T>(
        &self,
        real: impl FnOnce(&StdFs) -> io::Result<T>,
        mirror: impl FnOnce(&PowerCutFs) -> io::Result<()>,
    ) -> io::Result<T> {
        (self.before)();
        let out = real(&StdFs)?;
        if let Some(m) = &self.mirror {
            mirror(m).expect("the mirror follows the real files");
        }
        Ok(out)
    }
}

impl fmt::Debug for TapFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapFs")
            .field("mirror", &self.mirror)
            .finish()
    }
}

struct TapFile {
    real: Box<dyn FsFile>,
    mirror: Option<Box<dyn FsFile>>,
    before: Hook,
}

impl fmt::Debug for TapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapFile").field("real", &self.real).finish()
    }
}

impl Fs for TapFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.both(|r| r.create_dir_all(path), |m| m.create_dir_all(path))
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        (self.before)();
        let real = StdFs.create_new(path)?;
        let mirror = self
            .mirror
            .as_ref()
            .map(|m| m.create_new(path).expect("mirror create"));
        Ok(Box::new(TapFile {
            real,
            mirror,
            before: Arc::clone(&self.before),
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        StdFs.open_read(path)
    }
    fn open_write(&self, _path: &Path) -> io::Result<Box<dyn FsFile>> {
        unreachable!("the cold tier never reopens a file to write it")
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.both(|r| r.rename(from, to), |m| m.rename(from, to))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.both(|r| r.remove_file(path), |m| m.remove_file(path))
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.both(|r| r.sync_dir(path), |m| m.sync_dir(path))
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.both(|r| r.hard_link(from, to), |m| m.hard_link(from, to))
    }
    fn is_os_filesystem(&self) -> bool {
        true
    }
}

impl FsFile for TapFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        (self.before)();
        self.real.append(buf)?;
        match &mut self.mirror {
            Some(m) => m.append(buf),
            None => Ok(()),
        }
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.real.read_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        (self.before)();
        self.real.sync_data()?;
        match &mut self.mirror {
            Some(m) => m.sync_data(),
            None => Ok(()),
        }
    }
    fn set_len(&mut self, _len: u64) -> io::Result<()> {
        unreachable!("the cold tier never truncates")
    }
    fn preallocate(&mut self, _len: u64) -> io::Result<()> {
        unreachable!("the cold tier never preallocates")
    }
    fn write_zeros(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        unreachable!("the cold tier never preallocates")
    }
    fn len(&self) -> io::Result<u64> {
        self.real.len()
    }
}
