//! Group commit: one fsync for every appender waiting at that moment.
//!
//! An appender that needs its LSN durable either finds it durable already, or becomes the
//! leader if no sync is running, or parks on the wait list. The leader writes and fsyncs
//! everything buffered so far — its own records and those of every appender that arrived
//! meanwhile. It then wakes the first waiter its fsync did not cover, which leads the next
//! round, and the first two waiters it did cover; each covered waiter wakes two more as it
//! leaves, so eight waiters are all running after three hops rather than eight, and the
//! leader does not spend its time on a row of wake-up calls.
//!
//! The next leader first [gathers](CommitQueue::gather): it waits, for at most the time the
//! last write and fsync took, until the appenders that fsync released have appended again.
//! Without that, a steady load from many threads splits into two half-size groups that
//! alternate around each fsync, because the released threads trickle back only while the
//! next fsync is already running:
//!
//! ```text
//!   without: fsync(A: 8) | fsync(B: 8) | fsync(A: 8) ...      8 records per fsync
//!   with:    fsync(16) . gather . fsync(16) . gather ...     16 records per fsync
//! ```
//!
//! A lone appender never waits: the only thread its fsync released is itself, and its own
//! next append has already come back.
//!
//! Sleeping costs latency where CPUs idle: a thread woken on an idle CPU of a virtual
//! machine starts tens of microseconds later, a sizeable part of a fast fsync. So, for at
//! most [`WalOptions::group_commit_spin`], one waiter at a time — the *watcher* — checks for
//! its turn with the CPU yielded between checks instead of sleeping, and the gathering
//! leader yields instead of sleeping too. That keeps a CPU busy so the others' wake-ups land
//! on a running one (RocksDB's adaptive yield trades CPU for latency the same way). A zero
//! spin makes every wait sleep.
//!
//! [`WalOptions::group_commit_spin`]: crate::WalOptions::group_commit_spin
//!
//! If the leader's sync fails, it returns the error to its own caller and the next waiter
//! leads a new attempt (which writes into a fresh file, see the `wal` module).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

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
    /// How long a watcher or a gathering leader yields before it sleeps; zero: never.
    spin: Duration,
    /// A sync is running. Set and cleared only under the `state` lock, which makes its
    /// check-and-set atomic; read without the lock by the watcher.
    leader_active: AtomicBool,
    /// A waiter is watching (see [`CommitQueue::watch`]).
    watching: AtomicBool,
    /// Appenders the last sync released (its leader included) that have not appended since.
    returning: AtomicUsize,
    /// A leader waiting in [`CommitQueue::gather`], for the last returning appender to wake.
    gatherer: Mutex<Option<Thread>>,
    gathering: AtomicBool,
}

#[derive(Debug, Default)]
struct QueueState {
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
    /// Waiting for its own append (rather than in an explicit `sync`): it will likely append
    /// again once released, which is what [`CommitQueue::gather`] waits for.
    appender: bool,
}

/// How long a parked waiter sleeps before it looks again by itself. Every wake-up it needs
/// is sent; this only bounds the cost of one that goes astray.
const PARK_BACKSTOP: Duration = Duration::from_millis(50);

impl CommitQueue {
    /// A queue whose watcher and gathering leader yield for at most `spin` before sleeping.
    pub(crate) fn new(spin: Duration) -> CommitQueue {
        CommitQueue {
            spin,
            ..CommitQueue::default()
        }
    }

    /// Waits until `lsn` is durable, or until the caller must lead the next sync. `appender`
    /// is true when the caller waits for its own append (see [`Waiter::appender`]).
    pub(crate) fn wait<'q>(&'q self, lsn: Lsn, synced: &'q AtomicU64, appender: bool) -> Turn<'q> {
        let mut ticket = None;
        loop {
            let mut queue = self.lock();
            if let Some(mine) = ticket.take() {
                queue.waiters.retain(|w| w.ticket != mine);
            }
            if synced.load(Ordering::Acquire) >= lsn {
                // This thread may have been put on the relay and then woken some other way
                // (as the next leader, say): an entry left there would wake nobody and cut
                // that branch of the relay short.
                let me = thread::current().id();
                queue.relay.retain(|t| t.id() != me);
                let (first, second) = (queue.relay.pop_front(), queue.relay.pop_front());
                drop(queue);
                for next in [first, second].into_iter().flatten() {
                    next.unpark();
                }
                return Turn::Done;
            }
            if !self.leader_active.load(Ordering::SeqCst) {
                self.leader_active.store(true, Ordering::SeqCst);
                return Turn::Lead(Leadership {
                    queue: self,
                    synced,
                    appender,
                    succeeded: false,
                });
            }
            let mine = queue.next_ticket;
            queue.next_ticket += 1;
            queue.waiters.push(Waiter {
                lsn,
                ticket: mine,
                thread: thread::current(),
                appender,
            });
            ticket = Some(mine);
            drop(queue);
            if self.watch(lsn, synced) {
                continue;
            }
            // An unpark that lands before this park makes it return at once; a spurious
            // return just goes round the loop again.
            thread::park_timeout(PARK_BACKSTOP);
        }
    }

    /// If no other waiter is watching, watches for this one's turn (its LSN durable, or no
    /// sync running) for at most the spin time, yielding the CPU between checks. True if the
    /// turn came; false if it did not or another thread watches, and the caller sleeps.
    fn watch(&self, lsn: Lsn, synced: &AtomicU64) -> bool {
        if self.spin.is_zero() || self.watching.swap(true, Ordering::AcqRel) {
            return false;
        }
        let deadline = Instant::now() + self.spin;
        let turn = loop {
            if synced.load(Ordering::Acquire) >= lsn || !self.leader_active.load(Ordering::SeqCst) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            thread::yield_now();
        };
        self.watching.store(false, Ordering::Release);
        turn
    }

    /// Counts an append toward the appenders the last sync released.
    pub(crate) fn note_append(&self) {
        if self.returning.load(Ordering::Relaxed) == 0 {
            return;
        }
        let last = self
            .returning
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            == Ok(1);
        if last && self.gathering.load(Ordering::SeqCst) {
            if let Some(leader) = lock(&self.gatherer).as_ref() {
                leader.unpark();
            }
        }
    }

    /// Called by a new leader before it writes: while appenders the last sync released are
    /// still on their way back (woken, not yet appended), gives them the CPU, for at most
    /// `patience`. Under a steady load from many threads this turns two half-size groups
    /// alternating around each fsync into one nearly whole group per fsync. A lone appender
    /// never waits: it is the only one released, and its own append has counted.
    pub(crate) fn gather(&self, patience: Duration) {
        if self.returning.load(Ordering::SeqCst) == 0 {
            return;
        }
        let start = Instant::now();
        let deadline = start + patience;
        let stop_yielding = start + self.spin;
        *lock(&self.gatherer) = Some(thread::current());
        // Either the last appender sees `gathering` and wakes this thread, or this thread
        // sees `returning` at zero: both sides store before they load (SeqCst).
        self.gathering.store(true, Ordering::SeqCst);
        while self.returning.load(Ordering::SeqCst) > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now < stop_yielding {
                thread::yield_now();
            } else {
                thread::park_timeout(deadline - now);
            }
        }
        self.gathering.store(false, Ordering::SeqCst);
        *lock(&self.gatherer) = None;
    }

    /// Ends a leader's turn: wakes the next leader and starts the relay of covered waiters.
    /// After a successful sync, the appenders it released (the leader too, if it appended)
    /// are counted as coming back; after a failed one, nobody is waited for.
    fn finish(&self, synced: Lsn, succeeded: bool, leader_appended: bool) {
        let mut queue = self.lock();
        self.leader_active.store(false, Ordering::SeqCst);
        let mut next_leader = None;
        let mut covered = Vec::new();
        let mut appenders = usize::from(leader_appended);
        queue.waiters.retain(|waiter| {
            if waiter.lsn <= synced {
                covered.push(waiter.thread.clone());
                appenders += usize::from(waiter.appender);
                return false;
            }
            if next_leader.is_none() {
                next_leader = Some(waiter.thread.clone());
            }
            true
        });
        let returning = if succeeded { appenders } else { 0 };
        self.returning.store(returning, Ordering::Release);
        queue.relay.extend(covered);
        let first_covered = (queue.relay.pop_front(), queue.relay.pop_front());
        drop(queue);
        if let Some(leader) = next_leader {
            leader.unpark();
        }
        for waiter in [first_covered.0, first_covered.1].into_iter().flatten() {
            waiter.unpark();
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        lock(&self.state)
    }
}

/// The turn of the thread running a sync. Dropping it (after success, failure or a panic)
/// hands the turn on.
pub(crate) struct Leadership<'q> {
    queue: &'q CommitQueue,
    synced: &'q AtomicU64,
    appender: bool,
    succeeded: bool,
}

impl Leadership<'_> {
    /// Marks the sync as done: the threads it releases may be gathered by the next leader.
    pub(crate) fn succeeded(&mut self) {
        self.succeeded = true;
    }
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        self.queue.finish(
            self.synced.load(Ordering::Acquire),
            self.succeeded,
            self.appender,
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_with_nobody_to_wait_for_does_not_wait() {
        let queue = CommitQueue::default();
        let start = Instant::now();
        queue.gather(Duration::from_secs(3600));
        assert!(start.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_leader_waits_for_the_released_appenders_and_the_last_one_wakes_it() {
        let queue = CommitQueue::default();
        queue.returning.store(3, Ordering::SeqCst);
        let start = Instant::now();
        thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    queue.note_append();
                }
            });
            queue.gather(Duration::from_secs(3600));
        });
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "woken, not timed out"
        );
        assert_eq!(queue.returning.load(Ordering::SeqCst), 0);
        // Appends beyond the released count do not underflow it.
        queue.note_append();
        assert_eq!(queue.returning.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_yielding_leader_also_ends_its_gather_when_the_appenders_are_back() {
        let queue = CommitQueue::new(Duration::from_secs(3600));
        queue.returning.store(2, Ordering::SeqCst);
        thread::scope(|s| {
            s.spawn(|| {
                queue.note_append();
                queue.note_append();
            });
            queue.gather(Duration::from_secs(3600));
        });
        assert_eq!(queue.returning.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiter_woken_some_other_way_takes_itself_off_the_relay() {
        let queue = CommitQueue::default();
        let synced = AtomicU64::new(10);
        queue.lock().relay.push_back(thread::current());
        assert!(matches!(queue.wait(5, &synced, true), Turn::Done));
        assert!(queue.lock().relay.is_empty());
    }

    #[test]
    fn only_a_successful_sync_has_appenders_to_gather() {
        let queue = CommitQueue::default();
        let synced = AtomicU64::new(0);
        let Turn::Lead(failed) = queue.wait(1, &synced, true) else {
            panic!("nobody leads yet");
        };
        drop(failed);
        assert_eq!(queue.returning.load(Ordering::SeqCst), 0);
        let Turn::Lead(mut done) = queue.wait(1, &synced, true) else {
            panic!("the failed leader handed the turn on");
        };
        synced.store(1, Ordering::SeqCst);
        done.succeeded();
        drop(done);
        assert_eq!(
            queue.returning.load(Ordering::SeqCst),
            1,
            "the leader itself"
        );
        let Turn::Lead(mut sync_only) = queue.wait(2, &synced, false) else {
            panic!("free to lead");
        };
        synced.store(2, Ordering::SeqCst);
        sync_only.succeeded();
        drop(sync_only);
        assert_eq!(
            queue.returning.load(Ordering::SeqCst),
            0,
            "an explicit sync"
        );
    }

    #[test]
    fn a_watcher_sees_its_lsn_made_durable_without_being_woken() {
        let queue = CommitQueue::new(Duration::from_secs(3600));
        let synced = AtomicU64::new(0);
        let Turn::Lead(_leader) = queue.wait(1, &synced, true) else {
            panic!("nobody leads yet");
        };
        let turn = thread::scope(|s| {
            let watcher = s.spawn(|| queue.watch(1, &synced));
            synced.store(1, Ordering::SeqCst);
            watcher.join().unwrap()
        });
        assert!(
            turn,
            "saw the fsync, long before its hour of spinning ran out"
        );
        assert!(!queue.watching.load(Ordering::SeqCst));
    }

    #[test]
    fn a_watcher_sees_the_leader_leave() {
        let queue = CommitQueue::new(Duration::from_secs(3600));
        let synced = AtomicU64::new(0);
        assert!(queue.watch(5, &synced), "no leader: its turn to lead");
    }

    #[test]
    fn one_waiter_watches_at_a_time_and_a_zero_spin_never_watches() {
        let synced = AtomicU64::new(0);
        let queue = CommitQueue::new(Duration::from_secs(3600));
        queue.watching.store(true, Ordering::SeqCst);
        assert!(!queue.watch(5, &synced), "another thread watches");
        let sleeper = CommitQueue::new(Duration::ZERO);
        assert!(!sleeper.watch(5, &synced));
    }

    #[test]
    fn a_watcher_gives_up_after_the_spin_time() {
        let queue = CommitQueue::new(Duration::from_millis(5));
        let synced = AtomicU64::new(0);
        let Turn::Lead(_leader) = queue.wait(1, &synced, true) else {
            panic!("nobody leads yet");
        };
        assert!(!queue.watch(1, &synced));
        assert!(!queue.watching.load(Ordering::SeqCst));
    }

    #[test]
    fn a_leader_stops_waiting_after_its_patience() {
        let queue = CommitQueue::default();
        queue.returning.store(1, Ordering::SeqCst);
        let patience = Duration::from_millis(20);
        let start = Instant::now();
        queue.gather(patience);
        assert!(start.elapsed() >= patience);
        assert!(!queue.gathering.load(Ordering::SeqCst));
    }
}
