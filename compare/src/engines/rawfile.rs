//! Baseline: records appended to one file, with `fdatasync` for durable writes.
//!
//! The floor under any durable store: a write is `key ‖ value` appended to `data.log`.
//!
//! - `Bulk` mode: appends go through a 1 MiB `BufWriter`; nothing is fsynced until `settle`.
//! - `Durable` mode: each put is one `write` of the record then `fdatasync`.
//! - There is no index, so no reads, scans or reopen; overwrites append again.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use super::{Capability, Engine, Mode, Res};

/// The open log file.
pub struct RawFile {
    out: BufWriter<File>,
    record: Vec<u8>,
}

/// Creates `dir/data.log`.
pub fn open(dir: &Path, _mode: Mode) -> Res<Box<dyn Engine>> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("data.log"))?;
    Ok(Box::new(RawFile {
        out: BufWriter::with_capacity(1 << 20, file),
        record: Vec::new(),
    }))
}

fn unsupported<T>(what: &str) -> Res<T> {
    Err(format!("the raw file baseline has no {what}").into())
}

impl Engine for RawFile {
    fn supports(&self, capability: Capability) -> bool {
        capability == Capability::Sync
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.out.write_all(key)?;
        self.out.write_all(value)?;
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        for (key, value) in pairs {
            self.put(key, value)?;
        }
        Ok(())
    }

    fn put_sync(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.record.clear();
        self.record.extend_from_slice(key);
        self.record.extend_from_slice(value);
        let file = self.out.get_mut();
        file.write_all(&self.record)?;
        file.sync_data()?;
        Ok(())
    }

    fn finish(&mut self) -> Res<()> {
        self.out.flush()?;
        Ok(())
    }

    fn get(&mut self, _key: &[u8]) -> Res<Option<usize>> {
        unsupported("reads")
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        unsupported("scans")
    }

    fn settle(&mut self) -> Res<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        unsupported("reopen")
    }

    fn close(mut self: Box<Self>) -> Res<()> {
        self.settle()
    }
}
