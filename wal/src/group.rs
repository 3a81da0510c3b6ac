//! Group commit: one fsync for every appender waiting at that moment.
//!
//! An appender that needs its LSN durable either finds it durable already, or becomes the
//! leader if no sync is running, or parks on the wait list. The leader writes and fsyncs
//! everything buffered so far — its own records and those of every appender that arrived
//! meanwhile — then wakes exactly the waiters its fsync covered, plus the first one still
//! uncovered, which leads the next round. Nobody else is woken, so sixteen writers cost one
//! fsync and one wake-up each per round rather than a herd on a mutex.
//!
//! If the leader's sync fails, it returns the error to its own caller and the next waiter
//! leads a new attempt (which writes into a fresh file, see the `wal` module).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

use crate::Lsn;

/// Who does what next for an appender waiting on an LSN.
pub(crate) enum Turn<'q> {
    /// The LSN is durable.
    Done,
    /// No sync is running: the caller must run one, holding the [`Leadership`] until it ends.
    Lead(Leadership<'q>),
}

#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    leader_active: bool,
    waiters: Vec<Waiter>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Waiter {
    lsn: Lsn,
    ticket: u64,
    thread: Thread,
}

impl CommitQueue {
    /// Waits until `lsn` is durable, or until the caller must lead the next sync.
    pub(crate) fn wait<'q>(&'q self, lsn: Lsn, synced: &'q AtomicU64) -> Turn<'q> {
        let mut ticket = None;
        loop {
            let mut queue = self.lock();
            if let Some(mine) = ticket.take() {
                queue.waiters.retain(|w| w.ticket != mine);
            }
            if synced.load(Ordering::Acquire) >= lsn {
                return Turn::Done;
            }
            if !queue.leader_active {
                queue.leader_active = true;
                return Turn::Lead(Leadership {
                    queue: self,
                    synced,
                });
            }
            let mine = queue.next_ticket;
            queue.next_ticket += 1;
            queue.waiters.push(Waiter {
                lsn,
                ticket: mine,
                thread: thread::current(),
            });
            ticket = Some(mine);
            drop(queue);
            // An unpark that lands before this park makes it return at once; a spurious
            // return just goes round the loop again.
            thread::park();
        }
    }

    /// Ends a leader's turn: wakes the waiters now covered and the next leader.
    fn finish(&self, synced: Lsn) {
        let mut queue = self.lock();
        queue.leader_active = false;
        let mut next_leader_woken = false;
        queue.waiters.retain(|waiter| {
            if waiter.lsn <= synced {
                waiter.thread.unpark();
                return false;
            }
            if !next_leader_woken {
                waiter.thread.unpark();
                next_leader_woken = true;
            }
            true
        });
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The turn of the thread running a sync. Dropping it (after success, failure or a panic)
/// hands the turn on.
pub(crate) struct Leadership<'q> {
    queue: &'q CommitQueue,
    synced: &'q AtomicU64,
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        self.queue.finish(self.synced.load(Ordering::Acquire));
    }
}
