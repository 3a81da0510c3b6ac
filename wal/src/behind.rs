//! Write-behind under `Interval` and `Never`: a full append buffer goes to the OS on a
//! background thread while appends go on into the next one.
//!
//! ```text
//!   appender ── encode ──► buffer ── full (write_buffer_size) ──► request
//!                                                                    │
//!   writer thread ◄──────────────────────────────────────────────────┘
//!      [io lock] take buffer ──► notify "taken" ──► write(2) into the active file
//!
//!   an appender waits only while the buffer holds 2 × write_buffer_size, until it is taken
//! ```
//!
//! Under these policies an append only has to reach memory, yet the append whose record
//! filled the buffer used to pay for the kernel copying the whole buffer into the page cache:
//! for records of a few KiB that copy is most of an append's cost. On another core it runs
//! alongside the appends. Memory stays bounded: an appender that fills a second buffer's worth
//! before the writer has taken the first waits for it, so a disk slower than the appenders
//! slows them down instead of piling up buffers.
//!
//! A write that fails on the writer thread is handled as any failed write: the file is
//! abandoned, the records stay pending, and the next write or sync puts them into a fresh
//! file. The error goes to the next `append`, so the failure is reported rather than
//! swallowed; an fsync that makes every record appended before the failure durable, before
//! anyone appends, makes it moot and clears it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::wal::{lock, Inner};
use crate::Lsn;

/// How long a wait sleeps before it looks again by itself. Every wake-up it needs is sent;
/// this only bounds the cost of one that goes astray.
const WAIT_BACKSTOP: Duration = Duration::from_millis(50);

/// The same for the writer thread while it has nothing to do: long, so an idle log does not
/// wake a thread many times a second.
const IDLE_BACKSTOP: Duration = Duration::from_secs(1);

/// The background writer thread; stopped and joined by [`WriteBehind::stop`].
#[derive(Debug)]
pub(crate) struct WriteBehind {
    signal: Arc<Signal>,
    handle: Option<JoinHandle<()>>,
}

/// What appenders and the writer thread share.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// A full buffer waits to be taken. Set by appenders, cleared by the writer as it starts.
    requested: AtomicBool,
    /// `State::failure` holds an error nobody has been told of yet.
    failed: AtomicBool,
    /// The writer thread has ended (stopped, or by a panic): appenders write for themselves.
    ended: AtomicBool,
    /// Append buffers taken by the io side so far, by the writer thread or anyone else.
    /// Counted under the append lock.
    takes: AtomicU64,
    state: Mutex<State>,
    /// Wakes the writer.
    wake: Condvar,
    /// Wakes appenders waiting for the buffer to be taken.
    taken: Condvar,
}

#[derive(Debug, Default)]
struct State {
    stop: bool,
    /// A background write's failure nobody has been told of yet, with the last LSN appended
    /// when it happened: once that LSN is durable, the failure is moot.
    failure: Option<(Error, Lsn)>,
}

impl WriteBehind {
    /// Starts the writer thread of `inner`, which shares `signal`. `None` if the thread
    /// cannot be created: appenders then write full buffers themselves, as without it.
    pub(crate) fn start(inner: Weak<Inner>, signal: Arc<Signal>) -> Option<WriteBehind> {
        let shared = Arc::clone(&signal);
        let handle = std::thread::Builder::new()
            .name("strata-wal-writer".into())
            .spawn(move || run(&inner, &shared))
            .ok()?;
        Some(WriteBehind {
            signal,
            handle: Some(handle),
        })
    }

    /// Stops the thread once its current write is done, and waits for it.
    pub(crate) fn stop(mut self) {
        lock(&self.signal.state).stop = true;
        self.signal.wake.notify_all();
        self.signal.taken.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Marks the writer ended however its thread leaves, so no appender waits for it in vain.
struct EndedOnDrop<'s>(&'s Signal);

impl Drop for EndedOnDrop<'_> {
    fn drop(&mut self) {
        let _state = lock(&self.0.state);
        self.0.ended.store(true, Ordering::Release);
        self.0.taken.notify_all();
    }
}

fn run(inner: &Weak<Inner>, signal: &Signal) {
    let _ended = EndedOnDrop(signal);
    loop {
        {
            let mut state = lock(&signal.state);
            loop {
                if state.stop {
                    return;
                }
                if signal.requested.swap(false, Ordering::AcqRel) {
                    break;
                }
                state = signal
                    .wake
                    .wait_timeout(state, IDLE_BACKSTOP)
                    .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut io = lock(&inner.io);
        if let Err(error) = inner.write_out(&mut io, false) {
            // Still under the io lock: no sync can repair the failure and look for it to
            // clear before it is stored.
            let upto = lock(&inner.append).next_lsn - 1;
            signal.fail(error, upto);
        }
    }
}

impl Signal {
    /// Called by an appender that left `buffered` bytes in the buffer, at least
    /// `write_buffer_size`, when [`Signal::takes`] said `takes_seen`: asks the writer to take
    /// them and, if they are `limit` bytes or more, waits until that buffer has been taken.
    pub(crate) fn hand_over(&self, buffered: usize, limit: usize, takes_seen: u64) {
        if !self.requested.swap(true, Ordering::AcqRel) {
            // Under the lock, so the writer cannot check the flag and then sleep through this.
            let _state = lock(&self.state);
            self.wake.notify_one();
        }
        if buffered < limit {
            return;
        }
        let mut state = lock(&self.state);
        // The count is read under the state lock, which `notify_taken` takes after counting:
        // a take after this read wakes this wait.
        while !state.stop
            && !self.failed.load(Ordering::Acquire)
            && !self.ended.load(Ordering::Acquire)
            && self.takes.load(Ordering::Acquire) == takes_seen
        {
            state = self
                .taken
                .wait_timeout(state, WAIT_BACKSTOP)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
        }
    }

    /// True while the writer thread runs.
    pub(crate) fn running(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }

    /// Append buffers taken so far; read under the append lock, it counts every take of a
    /// buffer that held the records appended so far.
    pub(crate) fn takes(&self) -> u64 {
        self.takes.load(Ordering::Acquire)
    }

    /// Counts a take of the append buffer; called under the append lock.
    pub(crate) fn count_take(&self) {
        self.takes.fetch_add(1, Ordering::AcqRel);
    }

    /// Wakes the appenders waiting for a take, once it is counted.
    pub(crate) fn notify_taken(&self) {
        let _state = lock(&self.state);
        self.taken.notify_all();
    }

    fn fail(&self, error: Error, upto: Lsn) {
        let mut state = lock(&self.state);
        match &mut state.failure {
            // The first failure is the cause; a later one is usually its echo, but the records
            // it left undurable reach further.
            Some((_, reach)) => *reach = (*reach).max(upto),
            None => state.failure = Some((error, upto)),
        }
        self.failed.store(true, Ordering::Release);
        self.taken.notify_all();
    }

    /// The writer's failure nobody has been told of yet, once.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let mut state = lock(&self.state);
        self.failed.store(false, Ordering::Release);
        state.failure.take().map(|(error, _)| error)
    }

    /// Forgets an unreported failure once every record appended before it is durable:
    /// `durable` is the log's durable LSN, read under the io lock.
    pub(crate) fn clear_failure(&self, durable: Lsn) {
        if self.failed.load(Ordering::Acquire) {
            let mut state = lock(&self.state);
            if state
                .failure
                .as_ref()
                .is_some_and(|(_, upto)| *upto <= durable)
            {
                self.failed.store(false, Ordering::Release);
                state.failure = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Instant;

    use crate::{errno, FaultyFs, FsOp, Log, MemFs, SyncPolicy, Wal, WalOptions};

    use super::*;

    /// Waits, without a clock of its own, until `done` holds; fails the test after a minute.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited for {what}"
            );
            std::thread::yield_now();
        }
    }

    /// A log under `Never` whose file operations all wait until the returned gate opens, and
    /// whose first write then fails. One append past the buffer size and short of the
    /// hand-over limit has been made: the writer is on its way to that failure, and nobody
    /// has looked for it yet.
    fn log_whose_background_write_will_fail() -> (Wal, Arc<(Mutex<bool>, Condvar)>) {
        let fs = FaultyFs::new(Arc::new(MemFs::new()));
        let options = WalOptions {
            sync_policy: SyncPolicy::Never,
            write_buffer_size: 100,
            ..WalOptions::default()
        };
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), "/wal", options).unwrap();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let held = Arc::clone(&gate);
        fs.before_each(Arc::new(move |_| {
            let (open, opened) = &*held;
            let mut open = lock(open);
            while !*open {
                open = opened.wait(open).unwrap();
            }
        }));
        fs.fail_nth(FsOp::Write, 1, errno::EIO);
        assert_eq!(wal.append(&[&[7; 130]]).unwrap(), 1);
        (wal, gate)
    }

    fn open_gate_and_wait_for_the_failure(wal: &Wal, gate: &(Mutex<bool>, Condvar)) {
        *lock(&gate.0) = true;
        gate.1.notify_all();
        let signal = wal.inner.behind.get().unwrap();
        wait_for("the background write to fail", || {
            signal.failed.load(Ordering::Acquire)
        });
    }

    #[test]
    fn a_sync_after_a_failed_background_write_makes_it_moot() {
        let (wal, gate) = log_whose_background_write_will_fail();
        open_gate_and_wait_for_the_failure(&wal, &gate);
        assert_eq!(wal.synced_lsn(), 0);
        assert_eq!(wal.sync().unwrap(), 1, "the sync rewrites the record");
        let signal = wal.inner.behind.get().unwrap();
        assert!(!signal.failed.load(Ordering::Acquire));
        assert_eq!(wal.append(&[b"next"]).unwrap(), 2, "nothing stale reported");
    }

    #[test]
    fn a_failed_background_write_is_reported_by_the_next_append() {
        let (wal, gate) = log_whose_background_write_will_fail();
        open_gate_and_wait_for_the_failure(&wal, &gate);
        let error = wal.append(&[b"next"]).unwrap_err();
        assert!(
            matches!(error, Error::NotDurable { durable: 0, .. }),
            "{error}"
        );
        assert_eq!(wal.append(&[b"after"]).unwrap(), 3, "reported once");
        assert_eq!(wal.sync().unwrap(), 3);
    }
}
