//! Classification: the default class, precedence of exact keys, globs and keyspace
//! defaults, clear errors for bad patterns, and the persisted form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_tiering::router::{Class, Pattern, PatternKind, Router, Rule, RuleSet};
use strata_tiering::{Criticality, Error, ErrorKind, MemoryTier, Tier};
use strata_wal::{Log, MemLog};

mod router_support;

fn class(c: Criticality) -> Class {
    Class::new(c)
}

#[test]
fn unmatched_keys_get_the_default_class() {
    let rules = RuleSet::new();
    let c = rules.classify(b"anything");
    assert_eq!(c.criticality, Criticality::Medium);
    assert!(c.evictable);
    assert!(!c.compressible);
    assert_eq!(c.ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(c, Class::default());
    assert!(rules.matching_rule(b"anything").is_none());
}

#[test]
fn typical_rules_classify() {
    let mut rules = RuleSet::new();
    rules
        .add("got:task:*", class(Criticality::Critical))
        .unwrap();
    rules
        .add("reasoning:graph:*", class(Criticality::High))
        .unwrap();
    rules.add("cache:query:*", class(Criticality::Low)).unwrap();
    rules.add("session:abc", class(Criticality::Low)).unwrap();
    rules
        .add("index:documents", class(Criticality::Medium))
        .unwrap();
    let crit = |k: &str| rules.classify(k.as_bytes()).criticality;
    assert_eq!(crit("got:task:T-20251222-001"), Criticality::Critical);
    assert_eq!(crit("reasoning:graph:g1"), Criticality::High);
    assert_eq!(crit("cache:query:q"), Criticality::Low);
    assert_eq!(crit("session:abc"), Criticality::Low);
    assert_eq!(crit("session:abd"), Criticality::Medium);
    assert_eq!(crit("got:other"), Criticality::Medium);
}

#[test]
fn the_most_specific_rule_wins() {
    let mut rules = RuleSet::new();
    rules.add("*", class(Criticality::High)).unwrap();
    rules.add("got:*", class(Criticality::Low)).unwrap();
    rules
        .add("got:task:*", class(Criticality::Critical))
        .unwrap();
    rules
        .add("got:task:*:draft", class(Criticality::Medium))
        .unwrap();
    rules
        .add("got:task:pinned", class(Criticality::Low))
        .unwrap();
    rules.insert(Rule::new(
        Pattern::keyspace("got").unwrap(),
        class(Criticality::High),
    ));
    rules.insert(Rule::new(
        Pattern::keyspace("tmp").unwrap(),
        class(Criticality::Low),
    ));
    let crit = |k: &str| rules.classify(k.as_bytes()).criticality;
    assert_eq!(
        crit("got:task:pinned"),
        Criticality::Low,
        "exact beats every glob"
    );
    assert_eq!(
        crit("got:task:1:draft"),
        Criticality::Medium,
        "more literals win"
    );
    assert_eq!(crit("got:task:1"), Criticality::Critical);
    assert_eq!(
        crit("got:x"),
        Criticality::Low,
        "a glob beats the keyspace default"
    );
    // `*` is a glob, so it beats the `tmp` keyspace default; keyspace defaults apply where
    // no glob matches.
    assert_eq!(crit("tmp:x"), Criticality::High);
    rules.remove(&Pattern::parse("*").unwrap()).unwrap();
    let crit = |k: &str| rules.classify(k.as_bytes()).criticality;
    assert_eq!(crit("tmp:x"), Criticality::Low, "keyspace default");
    assert_eq!(
        crit("tmpx"),
        Criticality::Medium,
        "no keyspace: global default"
    );

    let listed: Vec<String> = rules.list().iter().map(|r| r.pattern.to_string()).collect();
    assert_eq!(
        listed,
        [
            "got:task:pinned",
            "got:task:*:draft",
            "got:task:*",
            "got:*",
            "keyspace got",
            "keyspace tmp"
        ]
    );
}

#[test]
fn equal_patterns_replace_and_ties_break_deterministically() {
    let mut rules = RuleSet::new();
    assert!(rules.add("a*", class(Criticality::High)).unwrap().is_none());
    let old = rules.add("a*", class(Criticality::Low)).unwrap().unwrap();
    assert_eq!(old.class.criticality, Criticality::High);
    assert_eq!(rules.len(), 1);
    // Same literal count and prefix: the pattern text decides, whatever the insertion order.
    for order in [["a*b", "a?b"], ["a?b", "a*b"]] {
        let mut rules = RuleSet::new();
        rules.add(order[0], class(Criticality::High)).unwrap();
        rules.add(order[1], class(Criticality::Low)).unwrap();
        let winner = rules.matching_rule(b"axb").unwrap();
        assert_eq!(winner.pattern.text(), "a*b");
    }
    // An escaped wildcard is the same exact pattern however it was spelt.
    let mut rules = RuleSet::new();
    rules.add(r"k\x2a", class(Criticality::High)).unwrap();
    assert!(rules
        .add(r"k\*", class(Criticality::Low))
        .unwrap()
        .is_some());
    assert_eq!(rules.classify(b"k*").criticality, Criticality::Low);
}

#[test]
fn invalid_patterns_are_clear_errors() {
    let mut rules = RuleSet::new();
    for bad in ["", "bad\\", "a\\y", "nl\n", "\\x1"] {
        let err = rules.add(bad, Class::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{bad:?}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with("invalid classification pattern"),
            "{err}"
        );
    }
    assert!(rules.is_empty());
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strata-router-rules-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn full_rules() -> RuleSet {
    let mut rules = RuleSet::new();
    rules
        .add(
            "got:task:*",
            class(Criticality::Critical)
                .with_compressible(true)
                .with_ttl(Duration::from_secs(7)),
        )
        .unwrap();
    rules
        .add(
            "cache:query:*",
            class(Criticality::Low).with_evictable(false),
        )
        .unwrap();
    rules.insert(Rule::new(
        Pattern::exact(b"bin\x00\xff*").unwrap(),
        class(Criticality::High),
    ));
    rules.insert(Rule::new(
        Pattern::keyspace("héllo").unwrap(),
        class(Criticality::Low),
    ));
    rules.set_default(class(Criticality::High).with_ttl(Duration::from_secs(99)));
    rules
}

#[test]
fn rules_round_trip_through_json_and_files() {
    let rules = full_rules();
    let json = rules.to_json();
    assert!(json.contains(r#""match": "glob""#), "{json}");
    assert_eq!(RuleSet::from_json(&json).unwrap(), rules);

    let dir = scratch("roundtrip");
    let path = dir.join("rules.json");
    rules.save(&path).unwrap();
    assert!(!dir.join("rules.json.tmp").exists());
    let back = RuleSet::load(&path).unwrap();
    assert_eq!(back, rules);
    assert_eq!(
        back.classify(b"bin\x00\xff*").criticality,
        Criticality::High
    );
    assert_eq!(back.list().len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_rule_files_are_clear_errors() {
    let cases = [
        ("not json", "expected"),
        (
            r#"{"version":2,"default":{"criticality":"low"},"rules":[]}"#,
            "version 2",
        ),
        (
            r#"{"version":1,"default":{"criticality":"urgent"},"rules":[]}"#,
            "urgent",
        ),
        (
            r#"{"version":1,"default":{"criticality":"low"},"rules":[{"match":"glob","pattern":"a\\","criticality":"low"}]}"#,
            "rule 0",
        ),
        (
            r#"{"version":1,"default":{"criticality":"low"},"rules":[{"match":"regex","pattern":"a","criticality":"low"}]}"#,
            "regex",
        ),
        (
            r#"{"version":1,"default":{"criticality":"low","colour":1},"rules":[]}"#,
            "colour",
        ),
        (
            r#"{"version":1,"default":{"criticality":"low"},"rules":[{"match":"exact","pattern":"a","criticality":"low"},{"match":"exact","pattern":"a","criticality":"high"}]}"#,
            "second rule",
        ),
    ];
    for (text, needle) in cases {
        let err = RuleSet::from_json(text).unwrap_err();
        assert!(matches!(err, Error::BadRules { .. }), "{text}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
    // Omitted class fields take the defaults.
    let minimal = r#"{"version":1,"default":{"criticality":"medium"},
        "rules":[{"match":"keyspace","pattern":"tmp","criticality":"low"}]}"#;
    let rules = RuleSet::from_json(minimal).unwrap();
    assert_eq!(rules.classify(b"tmp:1"), Class::new(Criticality::Low));

    let dir = scratch("bad");
    let missing = RuleSet::load(&dir.join("absent.json")).unwrap_err();
    assert!(
        matches!(missing, Error::RulesIo { op: "read", .. }),
        "{missing}"
    );
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let broken = RuleSet::load(&dir.join("broken.json")).unwrap_err();
    assert!(broken.to_string().contains("broken.json"), "{broken}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_router_persists_rule_changes_before_applying_them() {
    let dir = scratch("router");
    let path = dir.join("config-rules.json");
    let router = Router::builder(
        Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
        Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
        Arc::new(MemLog::new()) as Arc<dyn Log>,
    )
    .rules_path(&path)
    .build();
    router
        .set_rule(Rule::new(
            Pattern::parse("got:task:*").unwrap(),
            class(Criticality::Critical),
        ))
        .unwrap();
    router.set_default_class(class(Criticality::High)).unwrap();
    assert_eq!(
        router.classify(b"got:task:1").criticality,
        Criticality::Critical
    );
    assert_eq!(router.classify(b"x").criticality, Criticality::High);
    let saved = RuleSet::load(&path).unwrap();
    assert_eq!(saved, router.rule_set());
    assert_eq!(router.list_rules().len(), 1);

    // A rules file that cannot be written leaves the rules unchanged.
    std::fs::remove_dir_all(&dir).unwrap();
    let err = router
        .set_rule(Rule::new(
            Pattern::parse("x:*").unwrap(),
            class(Criticality::Low),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::RulesIo { .. }), "{err}");
    assert_eq!(router.classify(b"x:1").criticality, Criticality::High);
    let removed = router.remove_rule(&Pattern::parse("got:task:*").unwrap());
    assert!(removed.is_err());
    assert_eq!(router.list_rules()[0].pattern.kind(), PatternKind::Glob);
}

#[test]
fn rule_changes_reach_every_thread_and_routers_keep_their_own_rules() {
    let build = |default: Criticality| {
        let mut rules = RuleSet::new();
        rules.set_default(class(default));
        Router::builder(
            Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
            Arc::new(MemoryTier::new()) as Arc<dyn Tier>,
            Arc::new(MemLog::new()) as Arc<dyn Log>,
        )
        .rules(rules)
        .build()
    };
    let a = Arc::new(build(Criticality::High));
    let b = build(Criticality::Low);
    // Alternating between two routers on one thread never mixes up their rules.
    for _ in 0..3 {
        assert_eq!(a.classify(b"k").criticality, Criticality::High);
        assert_eq!(b.classify(b"k").criticality, Criticality::Low);
    }
    let reader = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || a.classify(b"k").criticality)
    };
    assert_eq!(reader.join().unwrap(), Criticality::High);
    a.set_rule(Rule::new(
        Pattern::exact(b"k").unwrap(),
        class(Criticality::Critical),
    ))
    .unwrap();
    assert_eq!(a.classify(b"k").criticality, Criticality::Critical);
    let reader = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || a.classify(b"k").criticality)
    };
    assert_eq!(reader.join().unwrap(), Criticality::Critical);
    assert_eq!(b.classify(b"k").criticality, Criticality::Low);
}
