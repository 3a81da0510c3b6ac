//! `strata-benches`: criterion benchmarks for each Strata crate.
//!
//! A number on its own says little about a storage engine: 40 µs per durable append is slow on
//! a laptop NVMe drive and fast on a network disk. So every benchmark here is measured beside a
//! physical or std baseline **in the same run and the same criterion group**, and the report
//! puts the two side by side. What matters is the ratio, which carries over between machines
//! far better than either figure.
//!
//! | bench target | group | measured | baseline |
//! | --- | --- | --- | --- |
//! | `wal` | `wal_append_never` | `Wal::append`, `SyncPolicy::Never`, 100 B and 4 KiB records | [`buffered_appender`]: `BufWriter<File>` with the WAL's buffer size |
//! | `wal` | `wal_durable_latency` | `Wal::append`, `SyncPolicy::Always`, one writer | [`RawLog::append_durable`]: `write_all` + `fdatasync` |
//! | `wal` | `wal_group_commit` | `SyncPolicy::Always` with 1, 4 and 16 writer threads | [`RawLog::append_durable`] from one thread |
//!
//! Run one target with `cargo bench -p strata-benches --bench wal`.
//!
//! Baselines and measured code must write to the same device: put scratch directories under
//! the target directory (`CARGO_TARGET_TMPDIR`), never under a `/tmp` that may be a tmpfs,
//! where an fsync costs nothing. [`filesystem_of`] tells which filesystem a directory is on,
//! so a bench can say so in its output.
//!
//! This library holds only the baselines and helpers the bench targets share; it is not meant
//! to be used outside this crate.

pub mod git_baseline;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode bits of the files the baselines create: the same as the store's own files.
const FILE_MODE: u32 = 0o600;

/// A record payload of `len` bytes. The bytes vary so that nothing on the way to the disk can
/// take a short cut for runs of zeroes.
pub fn record(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Creates `path` (which must not exist) for appending, opened the way the WAL opens its files.
pub fn create_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// The baseline of buffered appends: a `BufWriter` over a freshly created file, with a buffer
/// of `capacity` bytes. Pass the WAL's `write_buffer_size` so both issue writes of the same size.
pub fn buffered_appender(path: &Path, capacity: usize) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(capacity, create_append(path)?))
}

/// The baseline of durable appends: each record is written with one `write_all` and then
/// made durable with `fdatasync`, with nothing else around it. It is what the disk and kernel
/// charge for a durable append, the floor under any write-ahead log.
#[derive(Debug)]
pub struct RawLog {
    file: File,
}

impl RawLog {
    /// Creates `path` (which must not exist) and makes the new file's existence durable, as
    /// the WAL does for its own files, so the first timed append does not pay for it.
    pub fn create(path: &Path) -> io::Result<RawLog> {
        let file = create_append(path)?;
        file.sync_all()?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
        Ok(RawLog { file })
    }

    /// Appends `record` and returns once it is durable (`write_all` then `fdatasync`).
    pub fn append_durable(&mut self, record: &[u8]) -> io::Result<()> {
        self.file.write_all(record)?;
        self.file.sync_data()
    }
}

/// Fsyncs the directory `path`. After removing files under it, this commits the removal
/// (and, on a filesystem mounted with `discard`, the trimming of the freed blocks) before
/// the next measurement, instead of letting the next timed `fdatasync` pay for it.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The filesystem type and source of the mount holding `path` (say `("ext4", "/dev/vda")`),
/// read from `/proc/self/mounts`; `None` where that cannot be told.
pub fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // A mount point with a space in it comes escaped (`\040`) and so never matches.
        let mount_point = PathBuf::from(mount_point);
        let depth = mount_point.components().count();
        if path.starts_with(&mount_point) && best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
            best = Some((depth, fs_type.to_owned(), source.to_owned()));
        }
    }
    best.map(|(_, fs_type, source)| (fs_type, source))
}

/// A deterministic pseudo-random stream (splitmix64), so every run benchmarks the same data.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value of the stream.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_asked_length_and_are_not_zeroes() {
        let r = record(4096);
        assert_eq!(r.len(), 4096);
        assert!(r.iter().any(|&b| b != 0));
    }

    #[test]
    fn the_root_filesystem_is_found() {
        assert!(filesystem_of(Path::new("/")).is_some());
    }
}
