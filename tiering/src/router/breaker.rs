//! Circuit breakers: stop calling a tier that keeps failing, and try it again later.
//!
//! ```text
//!   CLOSED ──(failure_threshold consecutive failures)──► OPEN
//!     ▲  └─ a success resets the count                    │ open_timeout passes
//!     │                                                   ▼
//!     └──────(success_threshold successes)─────────── HALF_OPEN ──(any failure)──► OPEN
//! ```
//!
//! The defaults: 5 failures, 60 s, 2 successes. Errors whose kind is in
//! [`BreakerConfig::excluded`] (by default [`ErrorKind::InvalidInput`], which says nothing about
//! a tier's health) are not counted. Time comes from a [`Clock`], so tests move it by hand;
//! the move from OPEN to HALF_OPEN happens when the breaker is next consulted, and its event is
//! stamped with the instant the timeout ran out.
//!
//! Every state change is a [`BreakerEvent`], kept in a bounded list of recent events and sent
//! to every subscriber of the [`EventHub`] the breakers share.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::TierId;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind};

/// When a breaker opens and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// Successes in a row that close a half-open breaker.
    pub success_threshold: u32,
    /// How long a breaker stays open before letting trial calls through.
    pub open_timeout: Duration,
    /// Error kinds that do not count as failures.
    pub excluded: Vec<ErrorKind>,
    /// Error kinds that open a closed breaker at the first failure: a full disk does not
    /// heal by trying again, and every retry until the threshold would fail the same way.
    pub immediate: Vec<ErrorKind>,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_secs(60),
            excluded: vec![ErrorKind::InvalidInput],
            immediate: vec![ErrorKind::Full],
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused without trying the tier.
    Open,
    /// Trial calls go through; their outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A breaker changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerEvent {
    /// Whose breaker.
    pub tier: TierId,
    /// The state it left.
    pub from: BreakerState,
    /// The state it entered.
    pub to: BreakerState,
    /// When, in the breaker clock's unix milliseconds.
    pub at_ms: u64,
    /// The failure that caused it, for changes caused by one.
    pub cause: Option<String>,
}

/// Where breaker events go: a bounded list of recent ones, and every subscriber.
#[derive(Debug)]
pub struct EventHub {
    capacity: usize,
    recent: Mutex<VecDeque<BreakerEvent>>,
    subscribers: Mutex<Vec<Sender<BreakerEvent>>>,
}

impl EventHub {
    /// A hub remembering the last `capacity` events.
    pub fn new(capacity: usize) -> EventHub {
        EventHub {
            capacity,
            recent: Mutex::new(VecDeque::new()),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// A receiver of every event from now on. Dropping it unsubscribes.
    pub fn subscribe(&self) -> Receiver<BreakerEvent> {
        let (tx, rx) = channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<BreakerEvent> {
        lock(&self.recent).iter().cloned().collect()
    }

    fn publish(&self, event: BreakerEvent) {
        lock(&self.subscribers).retain(|tx| tx.send(event.clone()).is_ok());
        let mut recent = lock(&self.recent);
        if recent.len() >= self.capacity {
            recent.pop_front();
        }
        if self.capacity > 0 {
            recent.push_back(event);
        }
    }
}

/// One tier's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    tier: TierId,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    events: Arc<EventHub>,
    inner: Mutex<Inner>,
    /// Set while the breaker is closed with no failure counted, so the common case — a
    /// healthy tier — costs one atomic load per call instead of a lock.
    quiet: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    successes: u32,
    opened_at: u64,
}

impl CircuitBreaker {
    /// A closed breaker for `tier`.
    pub fn new(
        tier: TierId,
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        events: Arc<EventHub>,
    ) -> CircuitBreaker {
        CircuitBreaker {
            tier,
            config,
            clock,
            events,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                successes: 0,
                opened_at: 0,
            }),
            quiet: AtomicBool::new(true),
        }
    }

    /// The tier the breaker guards.
    pub fn tier(&self) -> TierId {
        self.tier
    }

    /// The breaker's settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state, moving from open to half-open if the timeout has run out.
    pub fn state(&self) -> BreakerState {
        if self.quiet.load(Ordering::Acquire) {
            return BreakerState::Closed;
        }
        let mut inner = self.lock();
        self.refresh(&mut inner);
        inner.state
    }

    /// Whether a call may go to the tier: closed or half-open.
    pub fn allow(&self) -> bool {
        self.state() != BreakerState::Open
    }

    /// Whether the breaker is closed.
    pub fn is_closed(&self) -> bool {
        self.state() == BreakerState::Closed
    }

    /// Consecutive failures counted while closed.
    pub fn failures(&self) -> u32 {
        self.lock().failures
    }

    /// Records a call that worked.
    pub fn record_success(&self) {
        if self.quiet.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        self.refresh(&mut inner);
        match inner.state {
            BreakerState::Closed => inner.failures = 0,
            BreakerState::HalfOpen => {
                inner.successes += 1;
                if inner.successes >= self.config.success_threshold {
                    self.transition(&mut inner, BreakerState::Closed, None);
                }
            }
            // A call let through before the breaker opened may finish after; it says nothing
            // about the tier now.
            BreakerState::Open => {}
        }
        self.quiet.store(
            inner.state == BreakerState::Closed && inner.failures == 0,
            Ordering::Release,
        );
    }

    /// Records a failed call, unless its kind is excluded. Returns whether it counted.
    pub fn record_failure(&self, error: &Error) -> bool {
        self.record_failure_kind(error.kind(), &super::describe(error))
    }

    /// Records a failure of `kind` described by `cause`, unless the kind is excluded.
    pub fn record_failure_kind(&self, kind: ErrorKind, cause: &str) -> bool {
        if self.config.excluded.contains(&kind) {
            return false;
        }
        let mut inner = self.lock();
        self.refresh(&mut inner);
        match inner.state {
            BreakerState::Closed => {
                inner.failures += 1;
                if inner.failures >= self.config.failure_threshold
                    || self.config.immediate.contains(&kind)
                {
                    self.transition(&mut inner, BreakerState::Open, Some(cause));
                }
            }
            BreakerState::HalfOpen => self.transition(&mut inner, BreakerState::Open, Some(cause)),
            BreakerState::Open => {}
        }
        self.quiet.store(false, Ordering::Release);
        true
    }

    /// Closes the breaker at once, as an operator override.
    pub fn reset(&self) {
        let mut inner = self.lock();
        if inner.state != BreakerState::Closed {
            self.transition(&mut inner, BreakerState::Closed, Some("reset"));
        }
        inner.failures = 0;
        self.quiet.store(true, Ordering::Release);
    }

    fn refresh(&self, inner: &mut Inner) {
        if inner.state != BreakerState::Open {
            return;
        }
        let timeout = u64::try_from(self.config.open_timeout.as_millis()).unwrap_or(u64::MAX);
        let due = inner.opened_at.saturating_add(timeout);
        if self.clock.now_ms() >= due {
            self.transition_at(inner, BreakerState::HalfOpen, None, due);
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, cause: Option<&str>) {
        let now = self.clock.now_ms();
        self.transition_at(inner, to, cause, now);
    }

    fn transition_at(&self, inner: &mut Inner, to: BreakerState, cause: Option<&str>, at: u64) {
        let from = inner.state;
        inner.state = to;
        inner.failures = 0;
        inner.successes = 0;
        if to == BreakerState::Open {
            inner.opened_at = at;
        }
        self.events.publish(BreakerEvent {
            tier: self.tier,
            from,
            to,
            at_ms: at,
            cause: cause.map(str::to_owned),
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
}

// Every critical section above leaves the state consistent between statements, so a panic
// elsewhere while holding the lock leaves nothing half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
