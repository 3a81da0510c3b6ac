//! Keyspaces: independent namespaces inside one store, each with its own default
//! criticality.
//!
//! A keyspace `name` holds the keys `name:<key>` — the same notion of keyspace the
//! classification rules use — so a keyspace's default class is a keyspace rule, persisted
//! with the other rules, and a more specific rule (`tasks:urgent:*`) still wins inside it.
//! Keyspaces are listed from those rules.
//!
//! ```text
//!   store.keyspace("tasks")?.put("1", v)   ──►  key "tasks:1", class from rule keyspace=tasks
//! ```

use strata_tiering::router::{Class, PatternKind, Receipt};
use strata_tiering::{Criticality, Key, Value};

use crate::error::{Error, Result};
use crate::store::{Store, WriteOptions};
use crate::txn::Isolation;

/// One keyspace of a store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Keyspace {
    store: Store,
    name: String,
}

fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name
            .chars()
            .any(|c| matches!(c, ':' | '\\' | '*' | '?') || c.is_control());
    if bad {
        return Err(Error::Config {
            path: name.into(),
            detail: "a keyspace name is 1 to 255 bytes without `:`, `\\`, `*`, `?` or control \
                     characters"
                .into(),
        });
    }
    Ok(())
}

impl Store {
    /// The keyspace `name` (it need not have been created: its keys then take the store's
    /// default class).
    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        check_name(name)?;
        Ok(Keyspace {
            store: self.clone(),
            name: name.to_owned(),
        })
    }

    /// Creates (or re-classes) the keyspace `name` with a default criticality.
    pub fn create_keyspace(&self, name: &str, criticality: Criticality) -> Result<Keyspace> {
        let keyspace = self.keyspace(name)?;
        keyspace.set_default(Class::new(criticality))?;
        Ok(keyspace)
    }

    /// The keyspaces created, with their default classes, by name.
    pub fn keyspaces(&self) -> Vec<(String, Class)> {
        let mut found: Vec<(String, Class)> = self
            .rules()
            .into_iter()
            .filter(|rule| rule.pattern.kind() == PatternKind::Keyspace)
            .map(|rule| (rule.pattern.text().to_owned(), rule.class))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The live pairs whose key, within its keyspace, starts with `prefix`, across the named
    /// keyspaces (every created one when `names` is empty): `(keyspace, key, value)` in
    /// keyspace order, then key order, from one snapshot.
    pub fn scan_keyspaces(
        &self,
        names: &[&str],
        prefix: impl AsRef<[u8]>,
    ) -> Result<Vec<(String, Key, Value)>> {
        let names: Vec<String> = if names.is_empty() {
            self.keyspaces().into_iter().map(|(n, _)| n).collect()
        } else {
            names.iter().map(|n| (*n).to_owned()).collect()
        };
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for name in names {
            check_name(&name)?;
            let mut full = format!("{name}:").into_bytes();
            full.extend_from_slice(prefix.as_ref());
            for item in snapshot.scan_prefix(&full)? {
                let (key, value) = item?;
                let inner = Key::new(&key.as_bytes()[name.len() + 1..])?;
                out.push((name.clone(), inner, value));
            }
        }
        Ok(out)
    }

    /// Moves `key` from keyspace `from` to keyspace `to` atomically: one batch deletes it
    /// there and writes it here, at the higher of the two keyspaces' criticalities. Fails if
    /// the key is absent from `from`; retried on a conflicting write.
    pub fn move_key(&self, key: impl AsRef<[u8]>, from: &str, to: &str) -> Result<Receipt> {
        let source = self.keyspace(from)?.full_key(key.as_ref())?;
        let target = self.keyspace(to)?.full_key(key.as_ref())?;
        let criticality = self
            .class_of(source.as_bytes())
            .criticality
            .max(self.class_of(target.as_bytes()).criticality);
        let (_, receipt) = self.transact(Isolation::Snapshot, 16, |tx| {
            let value = tx.get(source.as_bytes())?.ok_or_else(|| Error::NotFound {
                key: source.clone(),
            })?;
            tx.delete(source.as_bytes()).put(target.as_bytes(), value);
            tx.at(criticality);
            Ok(())
        })?;
        receipt.ok_or_else(|| Error::NotFound { key: source })
    }
}

impl Keyspace {
    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store key of `key` in this keyspace: `name:key`.
    pub fn full_key(&self, key: &[u8]) -> Result<Key> {
        let mut full = Vec::with_capacity(self.name.len() + 1 + key.len());
        full.extend_from_slice(self.name.as_bytes());
        full.push(b':');
        full.extend_from_slice(key);
        Ok(Key::new(full)?)
    }

    /// Sets the default class of the keyspace's keys.
    pub fn set_default(&self, class: Class) -> Result<()> {
        self.store.classify_keyspace(&self.name, class)?;
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<Receipt> {
        self.store.put(self.full_key(key.as_ref())?, value)
    }

    /// Sets `key` to `value` as `options` say.
    pub fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        options: WriteOptions,
    ) -> Result<Receipt> {
        self.store
            .put_with(self.full_key(key.as_ref())?, value, options)
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.store.get(self.full_key(key.as_ref())?)
    }

    /// Deletes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<Receipt> {
        self.store.delete(self.full_key(key.as_ref())?)
    }

    /// The live pairs of this keyspace whose key starts with `prefix`, keys without the
    /// keyspace's name.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<(Key, Value)>> {
        let name = self.name.as_str();
        Ok(self
            .store
            .scan_keyspaces(&[name], prefix)?
            .into_iter()
            .map(|(_, key, value)| (key, value))
            .collect())
    }
}
