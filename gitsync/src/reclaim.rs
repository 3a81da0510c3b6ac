//! Freeing large structures off the commit path.
//!
//! Two things a commit lets go of are slow to free: the repository handle a merge of packs
//! replaces (libgit2 unmaps every old pack and empties its object cache: 8.5 ms after a merge
//! of 33 packs) and the overlay of versions a fold has written into `state/` (2.4 ms for 9,000
//! keys). Neither is needed once replaced, so each is dropped on a short-lived thread while
//! the commit returns. The store joins those threads when it is dropped: none outlives it.

use std::thread::JoinHandle;

/// Threads dropping what the store let go of.
#[derive(Debug, Default)]
pub(crate) struct Reclaimer {
    threads: Vec<JoinHandle<()>>,
}

impl Reclaimer {
    /// Drops `value` on a thread of its own, or here if no thread can be started.
    pub fn drop_later<T: Send + 'static>(&mut self, value: T) {
        // A finished thread's handle is let go of; its thread is gone already.
        self.threads.retain(|thread| !thread.is_finished());
        let spawned = std::thread::Builder::new()
            .name("strata-reclaim".into())
            .spawn(move || drop(value));
        // On failure the closure, and `value` with it, has been dropped on this thread.
        if let Ok(thread) = spawned {
            self.threads.push(thread);
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        for thread in self.threads.drain(..) {
            // A panic while freeing leaves nothing to recover.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn everything_handed_over_is_dropped_by_the_time_the_reclaimer_is() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut reclaimer = Reclaimer::default();
        for _ in 0..20 {
            reclaimer.drop_later(Counted(Arc::clone(&dropped)));
        }
        drop(reclaimer);
        assert_eq!(dropped.load(Ordering::SeqCst), 20);
    }
}
