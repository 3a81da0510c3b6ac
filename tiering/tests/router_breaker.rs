//! The circuit breaker's state machine on a hand-driven clock: the default thresholds, excluded
//! error kinds, and the events every state change publishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strata_tiering::clock::{Clock, ManualClock};
use strata_tiering::router::{
    BreakerConfig, BreakerEvent, BreakerState, CircuitBreaker, EventHub, TierId,
};
use strata_tiering::{Error, ErrorKind};

mod router_support;

const T0: u64 = 1_000_000;

fn breaker(config: BreakerConfig) -> (Arc<ManualClock>, Arc<EventHub>, CircuitBreaker) {
    let clock = Arc::new(ManualClock::new(T0));
    let hub = Arc::new(EventHub::new(16));
    let b = CircuitBreaker::new(
        TierId::Warm,
        config,
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&hub),
    );
    (clock, hub, b)
}

fn io() -> Error {
    Error::tier("warm", ErrorKind::Io, "disk error")
}

fn transitions(events: &[BreakerEvent]) -> Vec<(BreakerState, BreakerState, u64)> {
    events.iter().map(|e| (e.from, e.to, e.at_ms)).collect()
}

#[test]
fn defaults_are_five_failures_sixty_seconds_two_successes() {
    let c = BreakerConfig::default();
    assert_eq!(c.failure_threshold, 5);
    assert_eq!(c.success_threshold, 2);
    assert_eq!(c.open_timeout, Duration::from_secs(60));
    assert_eq!(c.excluded, vec![ErrorKind::InvalidInput]);
}

#[test]
fn five_failures_open_sixty_seconds_half_open_two_successes_close() {
    use BreakerState::*;
    let (clock, hub, b) = breaker(BreakerConfig::default());
    let rx = hub.subscribe();
    for i in 1..5 {
        assert!(b.record_failure(&io()));
        assert_eq!((b.state(), b.failures()), (Closed, i));
    }
    clock.advance(5);
    b.record_failure(&io());
    assert_eq!(b.state(), Open);
    assert!(!b.allow());

    clock.advance(59_999);
    assert_eq!(b.state(), Open, "one millisecond short of the timeout");
    clock.advance(1);
    assert_eq!(b.state(), HalfOpen);
    assert!(b.allow());

    clock.advance(100);
    b.record_success();
    assert_eq!(b.state(), HalfOpen);
    b.record_success();
    assert_eq!(b.state(), Closed);

    let events: Vec<BreakerEvent> = rx.try_iter().collect();
    assert_eq!(
        transitions(&events),
        vec![
            (Closed, Open, T0 + 5),
            // Stamped when the timeout ran out, not when it was noticed.
            (Open, HalfOpen, T0 + 60_005),
            (HalfOpen, Closed, T0 + 60_105),
        ]
    );
    assert!(events.iter().all(|e| e.tier == TierId::Warm));
    assert!(events[0].cause.as_deref().unwrap().contains("warm"));
    assert_eq!(hub.recent(), events);
}

#[test]
fn a_success_resets_the_count_while_closed() {
    let (_, _, b) = breaker(BreakerConfig::default());
    for _ in 0..4 {
        b.record_failure(&io());
    }
    b.record_success();
    assert_eq!(b.failures(), 0);
    for _ in 0..4 {
        b.record_failure(&io());
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn any_failure_while_half_open_reopens_for_a_full_timeout() {
    use BreakerState::*;
    let (clock, hub, b) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        b.record_failure(&io());
    }
    clock.advance(60_000);
    b.record_success();
    assert_eq!(b.state(), HalfOpen);
    b.record_failure(&io());
    assert_eq!(b.state(), Open);
    clock.advance(59_999);
    assert_eq!(b.state(), Open);
    clock.advance(1);
    assert_eq!(b.state(), HalfOpen);
    // The success counted before the failure does not carry over.
    b.record_success();
    assert_eq!(b.state(), HalfOpen);
    let kinds: Vec<_> = transitions(&hub.recent())
        .into_iter()
        .map(|(f, t, _)| (f, t))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen)
        ]
    );
}

#[test]
fn excluded_kinds_do_not_count() {
    let (_, _, b) = breaker(BreakerConfig {
        excluded: vec![ErrorKind::InvalidInput, ErrorKind::Full],
        ..BreakerConfig::default()
    });
    for _ in 0..10 {
        assert!(!b.record_failure(&Error::EmptyKey));
        assert!(!b.record_failure(&Error::tier("warm", ErrorKind::Full, "quota")));
    }
    assert_eq!((b.state(), b.failures()), (BreakerState::Closed, 0));
}

#[test]
fn a_full_disk_opens_the_breaker_at_the_first_failure() {
    let (_, hub, b) = breaker(BreakerConfig::default());
    assert_eq!(BreakerConfig::default().immediate, vec![ErrorKind::Full]);
    b.record_failure(&io());
    assert_eq!(b.state(), BreakerState::Closed);
    b.record_failure(&Error::tier(
        "warm",
        ErrorKind::Full,
        "no space left on device",
    ));
    assert_eq!(b.state(), BreakerState::Open);
    let last = hub.recent().pop().unwrap();
    assert_eq!(
        last.cause.as_deref().map(|c| c.contains("no space")),
        Some(true)
    );
}

#[test]
fn successes_of_calls_started_before_opening_are_ignored_and_reset_closes() {
    let (_, hub, b) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        b.record_failure(&io());
    }
    b.record_success();
    b.record_success();
    assert_eq!(b.state(), BreakerState::Open);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    let last = hub.recent().pop().unwrap();
    assert_eq!(
        (last.from, last.to),
        (BreakerState::Open, BreakerState::Closed)
    );
    assert_eq!(last.cause.as_deref(), Some("reset"));
}

#[test]
fn recent_events_are_bounded_and_dropped_subscribers_are_forgotten() {
    let clock = Arc::new(ManualClock::new(0));
    let hub = Arc::new(EventHub::new(3));
    let b = CircuitBreaker::new(
        TierId::Log,
        BreakerConfig {
            failure_threshold: 1,
            success_threshold: 1,
            ..BreakerConfig::default()
        },
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&hub),
    );
    drop(hub.subscribe());
    let rx = hub.subscribe();
    for _ in 0..4 {
        b.record_failure(&io());
        clock.advance(60_000);
        b.record_success();
    }
    assert_eq!(rx.try_iter().count(), 12);
    let recent = hub.recent();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[2].to, BreakerState::Closed);
}

/// The state diagram of the module documentation, as a reference model.
#[derive(Clone, Copy, Debug)]
enum Step {
    Fail,
    Succeed,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Fail),
        3 => Just(Step::Succeed),
        1 => (0u64..90_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(router_support::cases(128)))]

    #[test]
    fn matches_the_state_diagram(steps in prop::collection::vec(step(), 1..80)) {
        use BreakerState::*;
        let (clock, hub, b) = breaker(BreakerConfig::default());
        let (mut state, mut failures, mut successes, mut opened) = (Closed, 0, 0, 0);
        let mut changes = 0;
        for s in steps {
            let now = clock.now_ms();
            if state == Open && now >= opened + 60_000 {
                state = HalfOpen;
                successes = 0;
                changes += 1;
            }
            match s {
                Step::Wait(ms) => clock.advance(ms),
                Step::Fail => {
                    b.record_failure(&io());
                    match state {
                        Closed => {
                            failures += 1;
                            if failures >= 5 {
                                state = Open;
                                opened = now;
                                failures = 0;
                                changes += 1;
                            }
                        }
                        HalfOpen => {
                            state = Open;
                            opened = now;
                            changes += 1;
                        }
                        Open => {}
                    }
                }
                Step::Succeed => {
                    b.record_success();
                    match state {
                        Closed => failures = 0,
                        HalfOpen => {
                            successes += 1;
                            if successes >= 2 {
                                state = Closed;
                                failures = 0;
                                changes += 1;
                            }
                        }
                        Open => {}
                    }
                }
            }
            if state != Open || clock.now_ms() < opened + 60_000 {
                prop_assert_eq!(b.state(), state);
            }
        }
        prop_assert_eq!(hub.recent().len().min(16), changes.min(16));
    }
}
