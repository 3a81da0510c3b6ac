//! The Router against a model: random writes at every criticality, reads, injected failures of
//! the log, warm and cold tiers, recoveries, flushes, archival and restarts.
//!
//! The model keeps, per key, the newest acknowledged version and the newest durable one, and
//! the writes acknowledged while degraded in queue order. It checks that
//! - every read answers exactly the newest acknowledged version (or fails, only while a tier
//!   it needs is failing or fenced off by its breaker), so no read is ever older than an
//!   acknowledgement;
//! - a durable read answers exactly the newest durable version;
//! - after a restart every durable write is still there, and only non-durable ones are lost;
//! - no LOW change ever reaches the log, and no change is logged twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use strata_tiering::router::{
    BreakerState, Op as WriteOp, ReadLevel, ReadOptions, RouterConfig, TierId,
};
use strata_tiering::{Criticality, ErrorKind, Value};

mod router_support;
use router_support::{cases, key, logged_changes, Harness};

const CLASSES: [&str; 4] = ["low", "med", "high", "crit"];

fn key_name(k: u8) -> String {
    format!("{}:{}", CLASSES[usize::from(k % 4)], k / 4)
}

fn is_low(k: u8) -> bool {
    k.is_multiple_of(4)
}

#[derive(Clone, Debug)]
enum Op {
    /// Writes as one batch; `false` deletes.
    Write(Vec<(u8, bool)>),
    Get(u8),
    GetDurable(u8),
    FailLog(bool),
    FailWarm(bool),
    FailCold(bool),
    Flush,
    Tick(u64),
    Recover,
    Archive,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..16;
    prop_oneof![
        8 => prop::collection::vec((k.clone(), prop::bool::weighted(0.8)), 1..4).prop_map(Op::Write),
        6 => k.clone().prop_map(Op::Get),
        2 => k.prop_map(Op::GetDurable),
        1 => any::<bool>().prop_map(Op::FailLog),
        1 => any::<bool>().prop_map(Op::FailWarm),
        1 => prop::bool::weighted(0.3).prop_map(Op::FailCold),
        2 => Just(Op::Flush),
        2 => prop_oneof![Just(1_000u64), Just(30_000), Just(61_000)].prop_map(Op::Tick),
        1 => Just(Op::Recover),
        1 => Just(Op::Archive),
        1 => Just(Op::Restart),
    ]
}

#[derive(Default)]
struct Model {
    /// Newest acknowledged version; `None` inside means deleted.
    acked: BTreeMap<u8, Option<String>>,
    /// Newest durable version of logged keys.
    durable: BTreeMap<u8, Option<String>>,
    /// Writes acknowledged while degraded, oldest first.
    queue: VecDeque<Vec<(u8, Option<String>)>>,
    queued_changes: usize,
}

impl Model {
    /// Moves the writes the Router drained (`drained` changes, whole writes) to durable.
    fn drained(&mut self, mut drained: usize) {
        while drained > 0 {
            let write = self
                .queue
                .pop_front()
                .expect("the Router drained more than queued");
            drained -= write.len();
            self.queued_changes -= write.len();
            for (k, v) in write {
                self.durable.insert(k, v);
            }
        }
    }

    fn restart(&mut self) {
        self.queue.clear();
        self.queued_changes = 0;
        self.acked = self.durable.clone();
    }
}

fn config() -> RouterConfig {
    RouterConfig {
        replay_capacity: 12,
        fallback_capacity: 6,
        drain_batch: 4,
        warm_capacity_bytes: 600,
        archive_batch: 3,
        // Promotions from warm race flushes and writes in the model; keep them in play.
        promote_from_warm: true,
        ..RouterConfig::default()
    }
}

/// Whether a read may fail: a tier below the hot level is failing or fenced off.
fn read_may_fail(h: &Harness) -> bool {
    let failing = |t: &router_support::FlakyTier| t.fail_reads.load(Ordering::SeqCst);
    failing(&h.warm)
        || failing(&h.cold)
        || [TierId::Warm, TierId::Cold]
            .iter()
            .any(|t| h.router.breaker(*t).state() != BreakerState::Closed)
}

fn text(v: Option<Value>) -> Option<String> {
    v.map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}

fn run(ops: Vec<Op>) {
    let mut h = Harness::with_config(config());
    let mut m = Model::default();
    let mut counter = 0u64;
    for op in ops {
        let mut before = h.router.queued();
        let mut queued_now = 0;
        let mut durable_write: Option<Vec<(u8, Option<String>)>> = None;
        match op {
            Op::Write(items) => {
                let mut batch = Vec::new();
                let mut ops = Vec::new();
                for (k, put) in items {
                    counter += 1;
                    let v = put.then(|| format!("v{counter}"));
                    ops.push(match &v {
                        Some(v) => WriteOp::put(key(&key_name(k)), v.as_str()),
                        None => WriteOp::delete(key(&key_name(k))),
                    });
                    batch.push((k, v));
                }
                match h.router.write(&ops) {
                    Ok(receipt) => {
                        for (k, v) in &batch {
                            m.acked.insert(*k, v.clone());
                        }
                        let logged: Vec<_> =
                            batch.into_iter().filter(|(k, _)| !is_low(*k)).collect();
                        if logged.is_empty() {
                            assert!(!receipt.is_durable());
                        } else if receipt.degraded.is_some() {
                            assert!(!receipt.is_durable() && receipt.lsn.is_none());
                            queued_now = logged.len();
                            m.queued_changes += logged.len();
                            m.queue.push_back(logged);
                        } else {
                            assert!(receipt.is_durable(), "{receipt:?}");
                            durable_write = Some(logged);
                        }
                    }
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Full, "{e}"),
                }
            }
            Op::Get(k) => match h.router.get(key_name(k).as_bytes()) {
                Ok(v) => assert_eq!(
                    text(v),
                    m.acked.get(&k).cloned().flatten(),
                    "read of {}",
                    key_name(k)
                ),
                Err(e) => assert!(read_may_fail(&h), "{}: {e}", key_name(k)),
            },
            Op::GetDurable(k) => {
                let options = ReadOptions {
                    level: ReadLevel::Durable,
                    allow_partial: false,
                };
                match h.router.read(key_name(k).as_bytes(), options) {
                    Ok(out) => {
                        let want = if is_low(k) {
                            None
                        } else {
                            m.durable.get(&k).cloned().flatten()
                        };
                        assert_eq!(
                            text(out.value().cloned()),
                            want,
                            "durable read of {}",
                            key_name(k)
                        );
                    }
                    Err(e) => assert!(read_may_fail(&h), "{}: {e}", key_name(k)),
                }
            }
            Op::FailLog(fail) => h.log.set_failing(fail.then_some("injected")),
            Op::FailWarm(fail) => h.warm.set_failing(fail),
            Op::FailCold(fail) => h.cold.set_failing(fail),
            Op::Flush => {
                h.flush();
            }
            Op::Tick(ms) => {
                h.clock.advance(ms);
                h.router.health_tick();
            }
            Op::Recover => {
                h.router.try_recover();
            }
            Op::Archive => {
                let _ = h.router.archive_tick();
            }
            Op::Restart => {
                h = h.restart();
                m.restart();
                before = 0;
            }
        }
        let after = h.router.queued();
        m.drained(before + queued_now - after);
        if let Some(write) = durable_write {
            for (k, v) in write {
                m.durable.insert(k, v);
            }
        }
        assert_eq!(after, m.queued_changes);
    }

    // Everything heals: the queue drains, every acknowledged write is durable and readable,
    // and survives a restart.
    h.log.set_failing(None);
    h.warm.set_failing(false);
    h.cold.set_failing(false);
    let before = h.router.queued();
    h.heal();
    h.router.try_recover();
    m.drained(before - h.router.queued());
    assert_eq!(h.router.queued(), 0);
    for k in 0..16 {
        let got = text(h.router.get(key_name(k).as_bytes()).unwrap());
        assert_eq!(
            got,
            m.acked.get(&k).cloned().flatten(),
            "final read of {}",
            key_name(k)
        );
    }
    let h = h.restart();
    m.restart();
    for k in 0..16 {
        let got = text(h.router.get(key_name(k).as_bytes()).unwrap());
        let want = if is_low(k) {
            None
        } else {
            m.durable.get(&k).cloned().flatten()
        };
        assert_eq!(got, want, "read of {} after restart", key_name(k));
    }

    let mut seen = BTreeSet::new();
    for (criticality, change) in logged_changes(&h.log) {
        assert_ne!(criticality, Criticality::Low);
        assert!(!change.key.as_bytes().starts_with(b"low:"));
        if let Some(v) = change.entry.value() {
            assert!(seen.insert(v.as_bytes().to_vec()), "logged twice: {v:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn router_matches_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
