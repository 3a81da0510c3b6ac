//! [`PowerCutFs`]: a [`MemFs`] that cuts the power at a chosen operation.
//!
//! ```text
//!   op 1   op 2   ...   op n-1 │ op n   op n+1 ...
//!   ───────────────────────────┼──────────────────►  the run goes on to the end
//!                              └─ image = disk.crash(mode): what a reboot would find
//! ```
//!
//! Every operation that changes the disk (a creation, an append, an fsync, a truncation, a
//! rename, a removal, a directory fsync; a link is a copy made of those) is counted. Just before the `cut_before`-th
//! one, the disk a power cut would leave is taken with [`MemFs::crash`] and kept; the run goes
//! on undisturbed, so one scenario yields the image of any chosen point. A test then runs the
//! scenario once with `u64::MAX` to count its operations, and again for every cut point.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::io::{Fs, FsFile};
use crate::memfs::{CrashMode, MemFs};

#[derive(Debug)]
struct Cut {
    disk: MemFs,
    ops: AtomicU64,
    cut_before: u64,
    mode: CrashMode,
    image: Mutex<Option<MemFs>>,
}

impl Cut {
    fn tick(&self) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.cut_before {
            let image = self.disk.crash(self.mode);
            *self.image.lock().unwrap_or_else(PoisonError::into_inner) = Some(image);
        }
    }
}

/// An in-memory disk that keeps the image a power cut would leave just before its
/// `cut_before`-th changing operation. Cloning shares the disk and the count.
#[derive(Debug, Clone)]
pub struct PowerCutFs {
    disk: MemFs,
    cut: Arc<Cut>,
}

impl PowerCutFs {
    /// An empty disk whose power is cut before operation `cut_before` (1 = the first).
    pub fn new(cut_before: u64, mode: CrashMode) -> PowerCutFs {
        let disk = MemFs::new();
        PowerCutFs {
            cut: Arc::new(Cut {
                disk: disk.clone(),
                ops: AtomicU64::new(0),
                cut_before,
                mode,
                image: Mutex::new(None),
            }),
            disk,
        }
    }

    /// Changing operations so far.
    pub fn ops(&self) -> u64 {
        self.cut.ops.load(Ordering::SeqCst)
    }

    /// The disk after the cut, once the cut point has been passed.
    pub fn image(&self) -> Option<MemFs> {
        self.cut
            .image
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The disk as it is now, power on.
    pub fn disk(&self) -> &MemFs {
        &self.disk
    }

    fn wrap(&self, inner: Box<dyn FsFile>) -> Box<dyn FsFile> {
        Box::new(CutFile {
            inner,
            cut: Arc::clone(&self.cut),
        })
    }
}

#[derive(Debug)]
struct CutFile {
    inner: Box<dyn FsFile>,
    cut: Arc<Cut>,
}

impl FsFile for CutFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.cut.tick();
        self.inner.append(buf)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.cut.tick();
        self.inner.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.cut.tick();
        self.inner.set_len(len)
    }
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.cut.tick();
        self.inner.write_zeros(offset, len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.cut.tick();
        self.inner.preallocate(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Fs for PowerCutFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.disk.list_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.cut.tick();
        Ok(self.wrap(self.disk.create_new(path)?))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.disk.open_read(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(self.wrap(self.disk.open_write(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.cut.tick();
        self.disk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.cut.tick();
        self.disk.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.cut.tick();
        self.disk.sync_dir(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_the_disk_just_before_the_cut() {
        let fs = PowerCutFs::new(4, CrashMode::DropUnsynced);
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut file = fs.create_new(&dir.join("a")).unwrap(); // op 1
        file.append(b"durable").unwrap(); // op 2
        file.sync_data().unwrap(); // op 3
        fs.sync_dir(dir).unwrap(); // op 4: cut before it
        file.append(b" and more").unwrap();
        assert_eq!(fs.ops(), 5);
        let image = fs.image().unwrap();
        // The name was never made durable by a directory fsync before the cut.
        assert!(image.read_file(&dir.join("a")).is_none());
        assert_eq!(
            fs.disk().read_file(&dir.join("a")).unwrap(),
            b"durable and more"
        );
    }
}
