//! The Router's current rules, read on every get and put without taking a lock.
//!
//! Even an uncontended read lock costs two atomic read-modify-write instructions on a shared
//! cache line, which measured at most of the Router's overhead on a hot-tier hit. So readers
//! keep a per-thread copy of the rules' `Arc` tagged with the Router's id and the rules'
//! version, and check the version with one plain atomic load; only after a change (or on a
//! thread's first use) do they take the lock to refresh their copy. A thread's copy keeps an
//! old rule set alive until that thread next classifies a key or exits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::rules::RuleSet;
use crate::error::Error;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (Router id, rules version, rules) of the rules this thread last used.
    static LOCAL: RefCell<Option<(u64, u64, Arc<RuleSet>)>> = const { RefCell::new(None) };
}

/// A rule set shared by every thread using one Router.
#[derive(Debug)]
pub(crate) struct LiveRules {
    id: u64,
    /// Bumped after each change is in place, so a reader seeing a version finds rules at
    /// least that new under the lock.
    version: AtomicU64,
    current: RwLock<Arc<RuleSet>>,
}

impl LiveRules {
    pub fn new(rules: RuleSet) -> LiveRules {
        LiveRules {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            current: RwLock::new(Arc::new(rules)),
        }
    }

    /// Runs `f` on the current rules.
    pub fn with<R>(&self, f: impl Fn(&RuleSet) -> R) -> R {
        let version = self.version.load(Ordering::Acquire);
        // `f` runs inside the borrow: cloning the cached `Arc` out would cost the atomic
        // increment the cache is there to avoid.
        let hit = LOCAL.try_with(|local| {
            let local = local.try_borrow().ok()?;
            match local.as_ref() {
                Some((id, v, rules)) if *id == self.id && *v == version => Some(f(rules)),
                _ => None,
            }
        });
        if let Ok(Some(out)) = hit {
            return out;
        }
        let rules = self.snapshot();
        let out = f(&rules);
        // Skipped while the thread is being torn down or `f` is itself inside `with`.
        let _ = LOCAL.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut() {
                *local = Some((self.id, version, rules));
            }
        });
        out
    }

    /// The current rules.
    pub fn snapshot(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the rules: `change` edits a copy, `persist` may refuse it (then nothing
    /// changes), and the copy replaces the current rules.
    pub fn change<T>(
        &self,
        change: impl FnOnce(&mut RuleSet) -> T,
        persist: impl FnOnce(&RuleSet) -> Result<(), Error>,
    ) -> Result<T, Error> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = RuleSet::clone(&current);
        let out = change(&mut next);
        persist(&next)?;
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
        Ok(out)
    }
}
