//! The background compaction thread.
//!
//! ```text
//!  ingest ──notify──► [worker] wait ──► compact_once ─┬─ more work? loop
//!                        ▲                           └─ error: report in health, wait again
//!  drop(SegmentTier) ── stop + join (a running merge notices `closing` and cancels)
//! ```
//!
//! The thread never sleeps on a timer: it waits on a condition variable that an ingest (or the
//! tier closing) signals. After a failed compaction it waits for the next signal rather than
//! retrying at once, so a full disk does not turn into a busy loop.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::state::{lock, Inner};

#[derive(Debug, Default)]
struct Signal {
    pending: bool,
    running: bool,
    stop: bool,
}

/// Handle of the background thread.
#[derive(Debug)]
pub(crate) struct Worker {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// The most compactions one wake-up runs, so a stream of abandoned merges cannot spin.
const MAX_ROUNDS_PER_WAKE: usize = 64;

impl Worker {
    pub fn start(inner: Arc<Inner>) -> std::io::Result<Worker> {
        let signal: Arc<(Mutex<Signal>, Condvar)> = Arc::default();
        let shared = Arc::clone(&signal);
        let handle = std::thread::Builder::new()
            .name(format!("{}-compaction", inner.options.name))
            .spawn(move || run(&inner, &shared))?;
        Ok(Worker {
            signal,
            handle: Some(handle),
        })
    }

    /// Asks the thread to look for work.
    pub fn notify(&self) {
        lock(&self.signal.0).pending = true;
        self.signal.1.notify_all();
    }

    /// Waits until the thread has nothing left to do: no wake-up pending, no compaction running.
    pub fn wait_idle(&self) {
        let (state, wake) = &*self.signal;
        let mut s = lock(state);
        while (s.pending || s.running) && !s.stop {
            s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        lock(&self.signal.0).stop = true;
        self.signal.1.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(inner: &Inner, signal: &(Mutex<Signal>, Condvar)) {
    let (state, wake) = signal;
    loop {
        {
            let mut s = lock(state);
            while !s.pending && !s.stop {
                s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.pending = false;
            s.running = true;
        }
        compact_until_done(inner);
        lock(state).running = false;
        wake.notify_all();
    }
}

fn compact_until_done(inner: &Inner) {
    for _ in 0..MAX_ROUNDS_PER_WAKE {
        if inner.closing.load(Ordering::Acquire) {
            return;
        }
        match inner.compact_once(false) {
            Ok(Some(_)) => lock(&inner.problems).compaction = None,
            Ok(None) => {
                lock(&inner.problems).compaction = None;
                return;
            }
            Err(e) => {
                if !inner.closing.load(Ordering::Acquire) {
                    lock(&inner.problems).compaction =
                        Some(format!("background compaction failed: {e}"));
                }
                return;
            }
        }
    }
}
