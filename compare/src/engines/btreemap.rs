//! Baseline: `std::collections::BTreeMap<Vec<u8>, Vec<u8>>` in memory.
//!
//! The ceiling for an in-process ordered map: no logging, no disk, no durability. It has no
//! durable writes and nothing to reopen; its bytes on disk are zero.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Capability, Engine, Mode, Res};

/// The map.
#[derive(Default)]
pub struct BTreeMapEngine {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A new, empty map; `dir` stays empty.
pub fn open(_dir: &Path, _mode: Mode) -> Res<Box<dyn Engine>> {
    Ok(Box::new(BTreeMapEngine::default()))
}

impl Engine for BTreeMapEngine {
    fn supports(&self, capability: Capability) -> bool {
        capability == Capability::Reads
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Res<()> {
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn write_batch(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        for (key, value) in pairs {
            self.map.insert(key.clone(), value.clone());
        }
        Ok(())
    }

    fn put_sync(&mut self, _key: &[u8], _value: &[u8]) -> Res<()> {
        Err("an in-memory map has no durable writes".into())
    }

    fn get(&mut self, key: &[u8]) -> Res<Option<usize>> {
        Ok(self.map.get(key).map(Vec::len))
    }

    fn scan(&mut self) -> Res<(u64, u64)> {
        let bytes = self
            .map
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        Ok((self.map.len() as u64, bytes))
    }

    fn settle(&mut self) -> Res<()> {
        Ok(())
    }

    fn reopen(&mut self) -> Res<Duration> {
        Err("an in-memory map cannot be reopened".into())
    }

    fn close(self: Box<Self>) -> Res<()> {
        Ok(())
    }
}
