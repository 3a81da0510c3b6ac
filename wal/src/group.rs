//! Group commit: one fsync for every appender waiting at that moment.
//!
//! An appender that needs its LSN durable either finds it durable already, or becomes the
//! leader if no sync is running, or parks on the wait list. The leader writes and fsyncs
//! everything buffered so far — its own records and those of every appender that arrived
//! meanwhile. It then wakes the first waiter its fsync did not cover, which leads the next
//! round at once, and the first waiter it did cover; each covered waiter wakes the next one
//! as it leaves. Nobody else is woken, and the leader does not spend its time on a row of
//! wake-up calls while the next fsync waits.
//!
//! If the leader's sync fails, it returns the error to its own caller and the next waiter
//! leads a new attempt (which writes into a fresh file, see the `wal` module).

use std::collections::VecDeque;
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
    /// Covered waiters still to be woken, each by the one before it.
    relay: VecDeque<Thread>,
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
                if let Some(next) = queue.relay.pop_front() {
                    next.unpark();
                }
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

    /// Ends a leader's turn: wakes the next leader and starts the relay of covered waiters.
    fn finish(&self, synced: Lsn) {
        let mut queue = self.lock();
        queue.leader_active = false;
        let mut next_leader = None;
        let mut covered = Vec::new();
        queue.waiters.retain(|waiter| {
            if waiter.lsn <= synced {
                covered.push(waiter.thread.clone());
                return false;
            }
            if next_leader.is_none() {
                next_leader = Some(waiter.thread.clone());
            }
            true
        });
        queue.relay.extend(covered);
        let first_covered = queue.relay.pop_front();
        drop(queue);
        if let Some(leader) = next_leader {
            leader.unpark();
        }
        if let Some(waiter) = first_covered {
            waiter.unpark();
        }
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
