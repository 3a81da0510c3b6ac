//! The conformance suite is only worth running if it fails broken tiers. Each fault here wraps
//! the reference tier with one plausible bug and names a check that must catch it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use strata_tiering::{
    conformance, Change, Entry, EntryIter, Error, Health, KeyRange, MemoryTier, SeqNo, Tier,
    TierStats, LATEST,
};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Reads ignore the snapshot.
    IgnoresSnapshot,
    /// Scans leave tombstones out.
    ScanDropsTombstones,
    /// Scans return keys in descending order.
    ScanDescending,
    /// Expiry is not stored.
    DropsExpiry,
    /// The last change applied wins, whatever its seqno.
    LastAppliedWins,
    /// `get` hides tombstones, returning `None`.
    GetHidesTombstones,
    /// Only the first change of a batch is applied.
    FirstChangeOnly,
    /// Scans leave out the last key of the range (an off-by-one at the end bound).
    ScanDropsLast,
    /// A batch is applied one change at a time, letting readers in between.
    NotAtomic,
}

struct Faulty {
    inner: MemoryTier,
    fault: Fault,
    /// For `LastAppliedWins`: the last entry applied per key.
    last: Mutex<BTreeMap<Vec<u8>, Entry>>,
}

impl Tier for Faulty {
    fn name(&self) -> &str {
        "faulty"
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Entry>, Error> {
        match self.fault {
            Fault::IgnoresSnapshot => self.inner.get(key, LATEST),
            Fault::LastAppliedWins => Ok(self.last.lock().unwrap().get(key).cloned()),
            Fault::GetHidesTombstones => {
                Ok(self.inner.get(key, snapshot)?.filter(|e| !e.is_tombstone()))
            }
            _ => self.inner.get(key, snapshot),
        }
    }

    fn apply(&self, batch: &[Change]) -> Result<(), Error> {
        let mut last = self.last.lock().unwrap();
        for c in batch {
            last.insert(c.key.as_bytes().to_vec(), c.entry.clone());
        }
        match self.fault {
            Fault::DropsExpiry => {
                let stripped: Vec<Change> = batch
                    .iter()
                    .map(|c| {
                        let mut c = c.clone();
                        c.entry.expires_at = None;
                        c
                    })
                    .collect();
                self.inner.apply(&stripped)
            }
            Fault::FirstChangeOnly => self.inner.apply(&batch[..batch.len().min(1)]),
            Fault::NotAtomic => {
                drop(last);
                for change in batch {
                    self.inner.apply(std::slice::from_ref(change))?;
                    std::thread::yield_now();
                }
                Ok(())
            }
            _ => self.inner.apply(batch),
        }
    }

    fn scan(&self, range: &KeyRange, snapshot: SeqNo) -> Result<EntryIter<'_>, Error> {
        let snapshot = match self.fault {
            Fault::IgnoresSnapshot => LATEST,
            _ => snapshot,
        };
        let mut items: Vec<_> = self.inner.scan(range, snapshot)?.collect();
        match self.fault {
            Fault::ScanDropsTombstones => {
                items.retain(|item| !item.as_ref().is_ok_and(|(_, e)| e.is_tombstone()));
            }
            Fault::ScanDescending => items.reverse(),
            Fault::ScanDropsLast => {
                items.pop();
            }
            _ => {}
        }
        Ok(Box::new(items.into_iter()))
    }

    fn flush(&self) -> Result<(), Error> {
        self.inner.flush()
    }

    fn health(&self) -> Health {
        self.inner.health()
    }

    fn stats(&self) -> TierStats {
        self.inner.stats()
    }
}

fn caught(fault: Fault, check: &str) -> bool {
    let (_, run) = conformance::CHECKS
        .iter()
        .find(|(name, _)| *name == check)
        .unwrap_or_else(|| panic!("no check named {check}"));
    let tier = Faulty {
        inner: MemoryTier::new(),
        fault,
        last: Mutex::new(BTreeMap::new()),
    };
    catch_unwind(AssertUnwindSafe(|| run(&tier))).is_err()
}

#[test]
fn each_fault_is_caught() {
    let cases = [
        (Fault::IgnoresSnapshot, "snapshot_reads"),
        (Fault::IgnoresSnapshot, "scan_order_and_snapshots"),
        (Fault::ScanDropsTombstones, "scan_order_and_snapshots"),
        (Fault::ScanDescending, "scan_order_and_snapshots"),
        (Fault::ScanDescending, "binary_keys"),
        (Fault::DropsExpiry, "expiry_round_trips"),
        (Fault::LastAppliedWins, "out_of_order_versions"),
        (Fault::GetHidesTombstones, "tombstone_shadows_value"),
        (Fault::FirstChangeOnly, "batch_applied_whole"),
        (Fault::ScanDropsLast, "scan_ranges"),
    ];
    for (fault, check) in cases {
        assert!(caught(fault, check), "{check} let {fault:?} through");
    }
}

#[test]
fn a_torn_batch_is_caught() {
    // The check races a reader against a writer, so one run may miss a torn batch by luck; it
    // must not miss one every time.
    let caught_in = (0..20).filter(|_| caught(Fault::NotAtomic, "batch_atomic_for_readers"));
    assert!(
        caught_in.count() > 0,
        "batch_atomic_for_readers never saw a torn batch"
    );
}
