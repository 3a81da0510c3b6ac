//! [`FaultyFs`]: a filesystem that fails on command, for tests of error paths.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::io::{Fs, FsFile};

/// Linux errno values the tests inject.
pub mod errno {
    /// I/O error.
    pub const EIO: i32 = 5;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
}

/// The kinds of call a [`FaultyFs`] counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsOp {
    /// `create_new`.
    Create,
    /// `FsFile::append`.
    Write,
    /// `FsFile::sync_data`.
    Sync,
    /// `Fs::sync_dir`.
    SyncDir,
    /// `Fs::rename`.
    Rename,
    /// `Fs::remove_file`.
    Remove,
    /// `FsFile::set_len` and `FsFile::preallocate`.
    SetLen,
    /// `FsFile::write_zeros`.
    WriteZeros,
}

/// One call seen by a [`FaultyFs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEvent {
    /// The kind of call.
    pub op: FsOp,
    /// The file or directory; for a rename, the destination.
    pub path: PathBuf,
    /// True if the call was made to fail.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    op: FsOp,
    /// 1-based count of calls of `op` at which the fault starts.
    nth: u64,
    errno: i32,
    /// Keep failing every later call of `op` too.
    persistent: bool,
}

/// Called before each counted call runs (see [`FaultyFs::before_each`]).
pub type CallHook = Arc<dyn Fn(&FsEvent) + Send + Sync>;

#[derive(Default)]
struct State {
    counts: HashMap<FsOp, u64>,
    faults: Vec<Fault>,
    events: Vec<FsEvent>,
    before_each: Option<CallHook>,
    /// The count of the write that panics half-way (see [`FaultyFs::panic_in_nth_write`]).
    panicking_write: Option<u64>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("counts", &self.counts)
            .field("faults", &self.faults)
            .field("events", &self.events.len())
            .field("before_each", &self.before_each.is_some())
            .field("panicking_write", &self.panicking_write)
            .finish()
    }
}

/// Wraps another [`Fs`] and makes chosen calls fail with a chosen errno. A failing write
/// first writes half of its buffer, as a full disk does.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    inner: Arc<dyn Fs>,
    state: Arc<Mutex<State>>,
}

impl FaultyFs {
    /// Wraps `inner`; no call fails until told to.
    pub fn new(inner: Arc<dyn Fs>) -> FaultyFs {
        FaultyFs {
            inner,
            state: Arc::default(),
        }
    }

    /// Fails the `nth` call of `op` from now on counting (1 = the next one), once.
    pub fn fail_nth(&self, op: FsOp, nth: u64, errno: i32) {
        self.add(op, nth, errno, false);
    }

    /// Fails the `nth` call of `op` from now on counting and every call of `op` after it.
    pub fn fail_from(&self, op: FsOp, nth: u64, errno: i32) {
        self.add(op, nth, errno, true);
    }

    /// Makes the `nth` write from now on counting write half of its buffer and then panic, as
    /// a faulty `Fs` implementation might. A log must not append after those bytes.
    pub fn panic_in_nth_write(&self, nth: u64) {
        let mut state = self.lock();
        let seen = state.counts.get(&FsOp::Write).copied().unwrap_or(0);
        state.panicking_write = Some(seen + nth.max(1));
    }

    /// Removes every planned fault.
    pub fn heal(&self) {
        self.lock().faults.clear();
    }

    /// Every call seen so far, in order.
    pub fn events(&self) -> Vec<FsEvent> {
        self.lock().events.clone()
    }

    /// Calls `hook` before each counted call runs (after it is counted, and told whether it
    /// will fail), on the thread making it. A crash test's hook kills its own process at a
    /// chosen call, so the kill lands inside a file operation it can name and repeat.
    pub fn before_each(&self, hook: CallHook) {
        self.lock().before_each = Some(hook);
    }

    fn add(&self, op: FsOp, nth: u64, errno: i32, persistent: bool) {
        let mut state = self.lock();
        let seen = state.counts.get(&op).copied().unwrap_or(0);
        state.faults.push(Fault {
            op,
            nth: seen + nth.max(1),
            errno,
            persistent,
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a call and says whether it must fail.
    fn check(&self, op: FsOp, path: &Path) -> Option<io::Error> {
        check(&self.state, op, path)
    }
}

fn check(state: &Mutex<State>, op: FsOp, path: &Path) -> Option<io::Error> {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let count = state.counts.entry(op).or_insert(0);
    *count += 1;
    let count = *count;
    let errno = state
        .faults
        .iter()
        .find(|f| f.op == op && (f.nth == count || (f.persistent && count >= f.nth)))
        .map(|f| f.errno);
    let event = FsEvent {
        op,
        path: path.to_owned(),
        failed: errno.is_some(),
    };
    let hook = state.before_each.clone();
    state.events.push(event.clone());
    // Called without the lock: a hook may use the filesystem, or never return.
    drop(state);
    if let Some(hook) = hook {
        hook(&event);
    }
    errno.map(io::Error::from_raw_os_error)
}

impl Fs for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        if let Some(error) = self.check(FsOp::Create, path) {
            return Err(error);
        }
        Ok(self.wrap(path, self.inner.create_new(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.open_read(path)
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(self.wrap(path, self.inner.open_write(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.check(FsOp::Rename, to) {
            Some(error) => Err(error),
            None => self.inner.rename(from, to),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.check(FsOp::Remove, path) {
            Some(error) => Err(error),
            None => self.inner.remove_file(path),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match self.check(FsOp::SyncDir, path) {
            Some(error) => Err(error),
            None => self.inner.sync_dir(path),
        }
    }

    fn is_os_filesystem(&self) -> bool {
        self.inner.is_os_filesystem()
    }
}

impl FaultyFs {
    fn wrap(&self, path: &Path, file: Box<dyn FsFile>) -> Box<dyn FsFile> {
        Box::new(FaultyFile {
            inner: file,
            path: path.to_owned(),
            state: Arc::clone(&self.state),
        })
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn FsFile>,
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl FaultyFile {
    /// True for the write [`FaultyFs::panic_in_nth_write`] chose, once counted.
    fn panics_now(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let count = state.counts.get(&FsOp::Write).copied();
        if count.is_some() && state.panicking_write == count {
            state.panicking_write = None;
            return true;
        }
        false
    }
}

impl FsFile for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(error) = check(&self.state, FsOp::Write, &self.path) {
            self.inner.append(&buf[..buf.len() / 2])?;
            return Err(error);
        }
        if self.panics_now() {
            self.inner.append(&buf[..buf.len() / 2])?;
            panic!(
                "a planned panic half-way through a write of {}",
                self.path.display()
            );
        }
        self.inner.append(buf)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        match check(&self.state, FsOp::Sync, &self.path) {
            Some(error) => Err(error),
            None => self.inner.sync_data(),
        }
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        match check(&self.state, FsOp::SetLen, &self.path) {
            Some(error) => Err(error),
            None => self.inner.set_len(len),
        }
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match check(&self.state, FsOp::WriteZeros, &self.path) {
            Some(error) => Err(error),
            None => self.inner.write_zeros(offset, len),
        }
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        match check(&self.state, FsOp::SetLen, &self.path) {
            Some(error) => Err(error),
            None => self.inner.preallocate(len),
        }
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;

    /// A link made by copying (the default `hard_link`) that fails leaves nothing at its
    /// destination, as a failed link does.
    #[test]
    fn a_failed_copy_leaves_no_partial_destination() {
        let disk = MemFs::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        disk.write_file(Path::new("/d/from"), &[7u8; 5000]);
        let faulty = FaultyFs::new(Arc::new(disk.clone()));
        for op in [FsOp::Write, FsOp::Sync] {
            faulty.fail_nth(op, 1, errno::ENOSPC);
            assert!(faulty
                .hard_link(Path::new("/d/from"), Path::new("/d/to"))
                .is_err());
            assert_eq!(disk.read_file(Path::new("/d/to")), None, "{op:?}");
        }
        faulty
            .hard_link(Path::new("/d/from"), Path::new("/d/to"))
            .unwrap();
        assert_eq!(disk.read_file(Path::new("/d/to")), Some(vec![7u8; 5000]));
    }

    /// The hook sees every counted call, in order, before it runs, and may use the
    /// filesystem itself without deadlocking.
    #[test]
    fn the_hook_runs_before_each_counted_call() {
        let disk = MemFs::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        let faulty = FaultyFs::new(Arc::new(disk.clone()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, reader) = (Arc::clone(&seen), faulty.clone());
        faulty.before_each(Arc::new(move |event: &FsEvent| {
            // The file is not there yet when its creation is announced.
            let exists = reader
                .list_dir(Path::new("/d"))
                .unwrap()
                .contains(&"f".into());
            log.lock().unwrap().push((event.op, event.failed, exists));
        }));
        faulty.fail_nth(FsOp::Sync, 1, errno::EIO);
        let mut file = faulty.create_new(Path::new("/d/f")).unwrap();
        file.append(b"x").unwrap();
        assert!(file.sync_data().is_err());
        faulty.sync_dir(Path::new("/d")).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (FsOp::Create, false, false),
                (FsOp::Write, false, true),
                (FsOp::Sync, true, true),
                (FsOp::SyncDir, false, true),
            ]
        );
    }
}
