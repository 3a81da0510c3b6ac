//! An in-memory [`Log`] for tests of the crates above the WAL.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::{Log, LogIter, Lsn};

/// A [`Log`] held in memory. Appends are "durable" at once (for the life of the value), and
/// the log can be told to fail, to test how callers degrade when their log is unavailable.
#[derive(Debug, Default)]
pub struct MemLog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    records: VecDeque<(Lsn, Vec<u8>)>,
    last: Lsn,
    /// LSN of the oldest record kept; everything before was truncated.
    oldest: Lsn,
    failing: Option<String>,
}

impl MemLog {
    /// An empty log whose first record will get LSN 1.
    pub fn new() -> MemLog {
        MemLog::default()
    }

    /// Makes every later append and sync fail with `Error::Unavailable(reason)`, or, with
    /// `None`, work again.
    pub fn set_failing(&self, reason: Option<&str>) {
        self.lock().failing = reason.map(str::to_owned);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Log for MemLog {
    fn append(&self, batch: &[&[u8]]) -> Result<Lsn> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut state = self.lock();
        if let Some(reason) = &state.failing {
            return Err(Error::Unavailable(reason.clone()));
        }
        for record in batch {
            state.last += 1;
            let lsn = state.last;
            state.records.push_back((lsn, record.to_vec()));
        }
        Ok(state.last)
    }

    fn sync(&self) -> Result<Lsn> {
        let state = self.lock();
        match &state.failing {
            Some(reason) => Err(Error::Unavailable(reason.clone())),
            None => Ok(state.last),
        }
    }

    fn read_from(&self, lsn: Lsn) -> Result<LogIter> {
        let from = lsn.max(1);
        let state = self.lock();
        if from < state.oldest && from <= state.last {
            return Err(Error::Truncated {
                requested: from,
                oldest: state.oldest,
            });
        }
        let records: Vec<(Lsn, Vec<u8>)> = state
            .records
            .iter()
            .filter(|(l, _)| *l >= from)
            .cloned()
            .collect();
        Ok(Box::new(records.into_iter().map(Ok)))
    }

    fn truncate_before(&self, lsn: Lsn) -> Result<()> {
        let mut state = self.lock();
        while state.records.front().is_some_and(|(l, _)| *l < lsn) {
            state.records.pop_front();
        }
        state.oldest = state.oldest.max(lsn.min(state.last + 1));
        Ok(())
    }

    fn last_lsn(&self) -> Lsn {
        self.lock().last
    }

    fn synced_lsn(&self) -> Lsn {
        self.lock().last
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn appends_reads_truncates_and_fails_on_demand() {
        let log = MemLog::new();
        assert_eq!(log.append(&[b"a", b"b"]).unwrap(), 2);
        assert_eq!(log.append(&[b"c"]).unwrap(), 3);
        let all: Vec<_> = log.read_from(0).unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(all, vec![1, 2, 3]);
        log.truncate_before(3).unwrap();
        assert!(matches!(
            log.read_from(1),
            Err(Error::Truncated { oldest: 3, .. })
        ));
        assert_eq!(log.read_from(3).unwrap().count(), 1);
        log.set_failing(Some("disk gone"));
        assert!(matches!(log.append(&[b"d"]), Err(Error::Unavailable(_))));
        assert!(log.sync().is_err());
        log.set_failing(None);
        assert_eq!(log.append(&[b"d"]).unwrap(), 4);
        assert!(matches!(log.append(&[]), Err(Error::EmptyBatch)));
    }
}
