//! [`MemFs`]: an in-memory disk that can lose power.
//!
//! It keeps, for every file, what was written and what the last `sync_data` made durable, and
//! for every directory which names the last `sync_dir` made durable. [`MemFs::crash`] returns
//! the disk a reboot would find: only durable names, and for each file its durable bytes plus,
//! depending on the [`CrashMode`], none, a prefix, or a garbled prefix of what came after.
//! This is the strict POSIX model: a new name that was not followed by a directory fsync is
//! gone, however long ago it was written.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::io::{Fs, FsFile};

/// What a crash does to bytes written after the last fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// They are lost.
    DropUnsynced,
    /// A pseudo-random prefix of them survives.
    KeepPrefix {
        /// Seed of the choice.
        seed: u64,
    },
    /// A pseudo-random prefix survives, with some of its bytes overwritten by garbage.
    GarbleTail {
        /// Seed of the choice.
        seed: u64,
    },
    /// Each 4 KiB page they touch survives or not, independently: a later page can reach
    /// the disk without an earlier one, which then reads as it was before (zeros, in new or
    /// preallocated space), as when the page cache writes pages back out of order.
    ScatterPages {
        /// Seed of the choice.
        seed: u64,
    },
}

/// The page size of [`CrashMode::ScatterPages`].
const PAGE: usize = 4096;

/// A file. Zeros past the written bytes are implicit, so a preallocated file costs no memory:
///
/// ```text
///   data: [written bytes........]
///   len:  [written bytes........][zeros...............]
/// ```
#[derive(Debug, Default)]
struct Node {
    data: Vec<u8>,
    /// The file's length; bytes from `data.len()` to here are zero.
    len: usize,
    durable: Vec<u8>,
    durable_len: usize,
}

impl Node {
    fn full(bytes: &[u8]) -> Node {
        Node {
            data: bytes.to_vec(),
            len: bytes.len(),
            durable: bytes.to_vec(),
            durable_len: bytes.len(),
        }
    }

    /// The file's bytes, zeros included.
    fn contents(&self) -> Vec<u8> {
        let mut bytes = self.data.clone();
        bytes.resize(self.len, 0);
        bytes
    }
}

type NodeRef = Arc<Mutex<Node>>;

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, NodeRef>,
    durable_names: BTreeMap<PathBuf, NodeRef>,
}

/// An in-memory filesystem with a power-loss model. Cloning shares the same disk.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

impl MemFs {
    /// An empty disk.
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// The disk as it would be found after power was lost now.
    pub fn crash(&self, mode: CrashMode) -> MemFs {
        let state = self.lock();
        let mut rng = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::KeepPrefix { seed }
            | CrashMode::GarbleTail { seed }
            | CrashMode::ScatterPages { seed } => seed | 1,
        };
        let mut names = BTreeMap::new();
        for (path, node) in &state.durable_names {
            let node = lock(node);
            let mut data = node.durable.clone();
            // Bytes from the first one that differs from the durable image on were written
            // after the last fsync: appended, or written over preallocated zeros.
            let start = node
                .data
                .iter()
                .zip(&node.durable)
                .take_while(|(now, durable)| now == durable)
                .count();
            let tail = &node.data[start..];
            if let (CrashMode::ScatterPages { .. }, false) = (mode, tail.is_empty()) {
                let mut page_start = start;
                while page_start < node.data.len() {
                    let page_end = ((page_start / PAGE + 1) * PAGE).min(node.data.len());
                    if next_random(&mut rng) & 1 == 1 {
                        if data.len() < page_end {
                            data.resize(page_end, 0);
                        }
                        data[page_start..page_end]
                            .copy_from_slice(&node.data[page_start..page_end]);
                    }
                    page_start = page_end;
                }
            } else if mode != CrashMode::DropUnsynced && !tail.is_empty() {
                let keep = (next_random(&mut rng) % (tail.len() as u64 + 1)) as usize;
                let kept = &tail[..keep];
                let overlap = kept.len().min(data.len().saturating_sub(start));
                data[start..start + overlap].copy_from_slice(&kept[..overlap]);
                data.extend_from_slice(&kept[overlap..]);
                if matches!(mode, CrashMode::GarbleTail { .. }) && keep > 0 {
                    for _ in 0..1 + keep / 64 {
                        let at = start + (next_random(&mut rng) % keep as u64) as usize;
                        data[at] = next_random(&mut rng) as u8;
                    }
                }
            }
            let len = data.len().max(node.durable_len);
            let node = Arc::new(Mutex::new(Node {
                durable: data.clone(),
                data,
                len,
                durable_len: len,
            }));
            names.insert(path.clone(), node);
        }
        MemFs {
            state: Arc::new(Mutex::new(State {
                dirs: state.dirs.clone(),
                durable_names: names.clone(),
                names,
            })),
        }
    }

    /// The current bytes of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock()
            .names
            .get(path)
            .map(|node| lock(node).contents())
    }

    /// Replaces a file's bytes, durably (for tests that damage files on purpose).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let node = Arc::new(Mutex::new(Node::full(bytes)));
        state.names.insert(path.to_owned(), Arc::clone(&node));
        state.durable_names.insert(path.to_owned(), node);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Fs for MemFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_owned());
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let children = state.names.keys().chain(state.dirs.iter());
        Ok(children
            .filter(|child| child.parent() == Some(path))
            .filter_map(|child| child.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.lock();
        if state.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        if !path.parent().is_some_and(|dir| state.dirs.contains(dir)) {
            return Err(not_found(path));
        }
        let node = NodeRef::default();
        state.names.insert(path.to_owned(), Arc::clone(&node));
        Ok(Box::new(MemFile { node, end: 0 }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let node = self
            .lock()
            .names
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        let end = lock(&node).len;
        Ok(Box::new(MemFile { node, end }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let node = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_owned(), node);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lock()
            .names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|name, _| name.parent() != Some(path) || names.contains_key(name));
        for (name, node) in names.iter() {
            if name.parent() == Some(path) {
                durable_names.insert(name.clone(), Arc::clone(node));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct MemFile {
    node: NodeRef,
    /// Where the next append lands (before the file's end after a preallocation).
    end: usize,
}

impl FsFile for MemFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut node = lock(&self.node);
        let new_end = self.end + buf.len();
        if node.data.len() < new_end {
            node.data.resize(new_end, 0);
        }
        node.data[self.end..new_end].copy_from_slice(buf);
        node.len = node.len.max(new_end);
        self.end = new_end;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let node = lock(&self.node);
        let start = (offset as usize).min(node.len);
        let n = buf.len().min(node.len - start);
        let explicit = node.data.len().saturating_sub(start).min(n);
        if explicit > 0 {
            buf[..explicit].copy_from_slice(&node.data[start..start + explicit]);
        }
        buf[explicit..n].fill(0);
        Ok(n)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut node = lock(&self.node);
        node.durable = node.data.clone();
        node.durable_len = node.len;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut node = lock(&self.node);
        node.data.truncate(len as usize);
        node.len = len as usize;
        self.end = len as usize;
        Ok(())
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        // Bytes past `data` are zeros already and cost no memory; only those inside it need
        // clearing.
        let mut node = lock(&self.node);
        let start = (offset as usize).min(node.data.len());
        let end = (offset.saturating_add(len) as usize).min(node.data.len());
        node.data[start..end].fill(0);
        node.len = node.len.max(offset.saturating_add(len) as usize);
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let mut node = lock(&self.node);
        node.len = node.len.max(len as usize);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.node).len as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_names_and_bytes_are_lost_in_a_crash() {
        let fs = MemFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut kept = fs.create_new(&dir.join("kept")).unwrap();
        kept.append(b"durable").unwrap();
        kept.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        kept.append(b" lost").unwrap();
        let mut gone = fs.create_new(&dir.join("gone")).unwrap();
        gone.sync_data().unwrap();

        let after = fs.crash(CrashMode::DropUnsynced);
        assert_eq!(after.read_file(&dir.join("kept")).unwrap(), b"durable");
        assert_eq!(after.read_file(&dir.join("gone")), None);
        let prefix = fs.crash(CrashMode::KeepPrefix { seed: 3 });
        assert!(prefix
            .read_file(&dir.join("kept"))
            .unwrap()
            .starts_with(b"durable"));
    }

    #[test]
    fn scattered_pages_can_keep_a_later_page_without_an_earlier_one() {
        let fs = MemFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut file = fs.create_new(&dir.join("f")).unwrap();
        file.append(b"durable").unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        let written: Vec<u8> = (0..3 * PAGE).map(|i| (i % 251 + 1) as u8).collect();
        file.append(&written).unwrap();
        let full = [&b"durable"[..], &written].concat();
        let mut gap_then_data = 0;
        for seed in 0..64 {
            let image = fs.crash(CrashMode::ScatterPages { seed });
            let got = image.read_file(&dir.join("f")).unwrap();
            assert!(got.starts_with(b"durable"));
            // Every byte is what was written or still zero; pages go whole.
            for (i, byte) in got.iter().enumerate() {
                assert!(*byte == full[i] || *byte == 0, "seed {seed} byte {i}");
            }
            let page_kept = |p: usize| got.len() > p * PAGE && got[p * PAGE] == full[p * PAGE];
            if !page_kept(1) && page_kept(2) {
                gap_then_data += 1;
            }
        }
        assert!(
            gap_then_data > 0,
            "no later page ever survived an earlier one"
        );
    }
}
