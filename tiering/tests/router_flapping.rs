//! A flapping disk: 100 cycles of log failure and recovery, with failures striking again in
//! the middle of draining. Every acknowledged write must reach the log exactly once and in
//! acknowledgement order; nothing acknowledged durable may be lost across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use strata_tiering::clock::{Clock, ManualClock};
use strata_tiering::record::{self, Record};
use strata_tiering::router::{BreakerState, DegradationLevel, Router, RouterConfig, TierId};
use strata_tiering::{Tier, Value};
use strata_wal::{Log, LogIter, Lsn, MemLog};

mod router_support;
use router_support::{key, rules, FlakyTier};

/// A log that takes `budget` more appends and then fails until given a new budget; a
/// negative budget never runs out.
#[derive(Default)]
struct FlappingLog {
    inner: MemLog,
    budget: AtomicI64,
}

impl FlappingLog {
    fn allow(&self) -> strata_wal::Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            return Err(strata_wal::Error::Unavailable("disk flapped".into()));
        }
        if left > 0 {
            self.budget.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Log for FlappingLog {
    fn append(&self, batch: &[&[u8]]) -> strata_wal::Result<Lsn> {
        self.allow()?;
        self.inner.append(batch)
    }
    fn sync(&self) -> strata_wal::Result<Lsn> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(strata_wal::Error::Unavailable("disk flapped".into()));
        }
        self.inner.sync()
    }
    fn read_from(&self, lsn: Lsn) -> strata_wal::Result<LogIter> {
        self.inner.read_from(lsn)
    }
    fn truncate_before(&self, lsn: Lsn) -> strata_wal::Result<()> {
        self.inner.truncate_before(lsn)
    }
    fn last_lsn(&self) -> Lsn {
        self.inner.last_lsn()
    }
    fn synced_lsn(&self) -> Lsn {
        self.inner.synced_lsn()
    }
}

fn router(clock: &Arc<ManualClock>, log: &Arc<FlappingLog>, warm: &Arc<FlakyTier>) -> Router {
    Router::builder(
        FlakyTier::new("hot") as Arc<dyn Tier>,
        FlakyTier::new("cache") as Arc<dyn Tier>,
        Arc::clone(log) as Arc<dyn Log>,
    )
    .warm(Arc::clone(warm) as Arc<dyn Tier>)
    .clock(Arc::clone(clock) as Arc<dyn Clock>)
    .rules(rules())
    .config(RouterConfig {
        drain_batch: 7,
        ..RouterConfig::default()
    })
    .build()
}

/// The deterministic pseudo-random numbers of splitmix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn a_hundred_flaps_lose_nothing_and_drain_in_order_without_duplicates() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let log = Arc::new(FlappingLog::default());
    log.budget.store(-1, Ordering::SeqCst);
    let warm = FlakyTier::new("warm");
    let mut router = router(&clock, &log, &warm);
    let mut rng = Rng(42);
    let mut acked: Vec<String> = Vec::new();
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    let mut degraded_acks = 0;
    let mut opened = 0;
    let mut interrupted = 0;
    let mut n = 0u64;
    let mut write = |router: &Router, acked: &mut Vec<String>, latest: &mut BTreeMap<_, _>| {
        n += 1;
        let k = format!("{}:{}", ["med", "high", "crit"][(n % 3) as usize], n % 17);
        let v = format!("v{n}");
        let receipt = router.put(&key(&k), v.as_str()).unwrap();
        assert_eq!(receipt.is_durable(), receipt.degraded.is_none());
        acked.push(v.clone());
        latest.insert(k, v);
        receipt.degraded.is_some()
    };

    for cycle in 0..100 {
        for _ in 0..rng.below(5) {
            write(&router, &mut acked, &mut latest);
        }
        // The disk fails: everything written now is acknowledged as not durable.
        log.budget.store(0, Ordering::SeqCst);
        for _ in 0..1 + rng.below(12) {
            assert!(write(&router, &mut acked, &mut latest), "cycle {cycle}");
            degraded_acks += 1;
        }
        assert_ne!(router.level(), DegradationLevel::Normal);
        if router.breaker(TierId::Log).state() == BreakerState::Open {
            opened += 1;
        }
        // It comes back, but may fail again after a few appends, mid-drain.
        log.budget.store(rng.below(4) as i64 - 1, Ordering::SeqCst);
        clock.advance(60_000);
        router.health_tick();
        router.health_tick();
        router.try_recover();
        if router.queued() > 0 {
            interrupted += 1;
        }
        // Then for good.
        log.budget.store(-1, Ordering::SeqCst);
        for _ in 0..3 {
            clock.advance(60_000);
            router.health_tick();
        }
        assert_eq!(router.queued(), 0, "cycle {cycle}");
        assert_eq!(router.level(), DegradationLevel::Normal, "cycle {cycle}");
        for (k, v) in &latest {
            let got = router.get(k.as_bytes()).unwrap();
            assert_eq!(got, Some(Value::from(v.as_str())), "cycle {cycle}: {k}");
        }
        if cycle % 10 == 9 {
            router = self::router(&clock, &log, &warm);
            router.replay_log(1).unwrap();
        }
    }
    assert!(degraded_acks >= 100);
    assert!(opened > 10, "the breaker opened in {opened} cycles");
    assert!(
        interrupted > 10,
        "a drain was interrupted in {interrupted} cycles"
    );

    let logged: Vec<String> = log
        .inner
        .read_from(1)
        .unwrap()
        .filter_map(|r| {
            let (lsn, bytes) = r.unwrap();
            match record::decode_any(lsn, &bytes).unwrap() {
                Record::Change { change, .. } => {
                    let value = change.entry.value().unwrap().as_bytes().to_vec();
                    Some(String::from_utf8(value).unwrap())
                }
                Record::Probe => None,
            }
        })
        .collect();
    assert_eq!(
        logged, acked,
        "every acknowledged write, once each, in order"
    );

    let router = self::router(&clock, &log, &warm);
    router.replay_log(1).unwrap();
    for (k, v) in &latest {
        assert_eq!(
            router.get(k.as_bytes()).unwrap(),
            Some(Value::from(v.as_str()))
        );
    }
}

#[test]
fn writers_racing_a_flapping_log_and_recoveries_keep_their_order() {
    const THREADS: usize = 4;
    const WRITES: usize = 300;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let log = Arc::new(FlappingLog::default());
    // The writers start against a failed log, so some of their writes are surely queued.
    log.budget.store(0, Ordering::SeqCst);
    let warm = FlakyTier::new("warm");
    let router = Arc::new(router(&clock, &log, &warm));
    let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (router, start) = (Arc::clone(&router), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut degraded = 0;
                for i in 0..WRITES {
                    let k = key(&format!("med:{t}:{}", i % 5));
                    let receipt = router.put(&k, format!("{t}-{i}")).unwrap();
                    degraded += usize::from(receipt.degraded.is_some());
                    std::thread::yield_now();
                }
                degraded
            })
        })
        .collect();
    let chaos = {
        let (router, log, clock) = (Arc::clone(&router), Arc::clone(&log), Arc::clone(&clock));
        let (start, done) = (Arc::clone(&start), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            start.wait();
            while !done.load(Ordering::SeqCst) {
                log.budget.store(rng.below(4) as i64 - 1, Ordering::SeqCst);
                clock.advance(rng.below(70_000));
                router.health_tick();
                router.try_recover();
                std::thread::yield_now();
            }
        })
    };
    let degraded: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    done.store(true, Ordering::SeqCst);
    chaos.join().unwrap();
    eprintln!("{degraded} writes were acknowledged while degraded");
    log.budget.store(-1, Ordering::SeqCst);
    for _ in 0..3 {
        clock.advance(60_000);
        router.health_tick();
    }
    assert_eq!(router.queued(), 0);

    let mut next = [0usize; THREADS];
    for r in log.inner.read_from(1).unwrap() {
        let (lsn, bytes) = r.unwrap();
        if let Record::Change { change, .. } = record::decode_any(lsn, &bytes).unwrap() {
            let v = String::from_utf8(change.entry.value().unwrap().as_bytes().to_vec()).unwrap();
            let (t, i) = v.split_once('-').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(
                i, next[t],
                "thread {t}: logged out of order or twice at LSN {lsn}"
            );
            next[t] += 1;
        }
    }
    assert_eq!(
        next, [WRITES; THREADS],
        "every acknowledged write is logged"
    );
    for t in 0..THREADS {
        for slot in 0..5 {
            let last = (0..WRITES).rev().find(|i| i % 5 == slot).unwrap();
            let got = router.get(format!("med:{t}:{slot}").as_bytes()).unwrap();
            assert_eq!(got, Some(Value::from(format!("{t}-{last}"))));
        }
    }
}
