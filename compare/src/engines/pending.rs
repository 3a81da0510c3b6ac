//! Grouping single puts into transactions, for the engines whose only write path is one.
//!
//! redb, LMDB and SQLite commit a transaction per write; committing one per `put` would
//! measure commit overhead, not a non-durable fill. Their adapters collect puts here and
//! commit every [`GROUP`] of them (and the rest at `finish`), as db_bench's ports to those
//! engines do with a batch size.

/// Puts per transaction when single puts are grouped.
pub const GROUP: usize = 1_000;

/// Puts waiting for their transaction.
#[derive(Debug, Default)]
pub struct Pending {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Pending {
    /// Adds a put; returns the full group when it has [`GROUP`] puts, to be committed.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        self.pairs.push((key.to_vec(), value.to_vec()));
        (self.pairs.len() >= GROUP).then(|| self.take())
    }

    /// Takes whatever is waiting.
    pub fn take(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::replace(&mut self.pairs, Vec::with_capacity(GROUP))
    }
}
