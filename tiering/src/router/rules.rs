//! Classification rules: which [`Class`] a key belongs to, and how the rules are persisted.
//!
//! A [`RuleSet`] holds rules keyed by [`Pattern`] and a default class. The most specific rule
//! matching a key wins:
//!
//! 1. an exact rule for the key;
//! 2. the most specific matching glob — most literal bytes, then longest literal prefix, then
//!    the pattern text in byte order, so ties always break the same way;
//! 3. the default of the key's keyspace (the part before its first `:`);
//! 4. the set's default class, which starts as the store's defaults: MEDIUM, evictable, not
//!    compressible, archived after 30 days.
//!
//! # Persisted form
//!
//! JSON, written by temporary file, fsync, rename and directory fsync:
//!
//! ```json
//! {"version":1,
//!  "default":{"criticality":"medium","evictable":true,"compressible":false,"ttl_secs":2592000},
//!  "rules":[{"match":"glob","pattern":"got:task:*","criticality":"critical",
//!            "evictable":true,"compressible":false,"ttl_secs":2592000}]}
//! ```
//!
//! `match` is `exact`, `glob` or `keyspace`; `pattern` is the pattern's text (see
//! [`pattern`](super::pattern) syntax). In a rule, `evictable`, `compressible` and `ttl_secs`
//! may be left out and take the defaults above. Unknown fields are an error, so a misspelt
//! field is not silently ignored.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pattern::{Pattern, PatternKind};
use crate::error::Error;
use crate::types::Criticality;

const FORMAT_VERSION: u32 = 1;

/// How a class of keys is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// How far down the tiers writes travel.
    pub criticality: Criticality,
    /// Whether a cached copy may be evicted from memory.
    pub evictable: bool,
    /// Whether values should be compressed before they reach git.
    pub compressible: bool,
    /// How long an entry stays in the warm tier before it is archived to cold.
    pub ttl: Duration,
}

impl Class {
    /// The default archival age: 30 days.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    /// The default class with another criticality.
    pub fn new(criticality: Criticality) -> Class {
        Class {
            criticality,
            ..Class::default()
        }
    }

    /// The same class with another archival age.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Class {
        self.ttl = ttl;
        self
    }

    /// The same class, evictable or pinned.
    #[must_use]
    pub fn with_evictable(mut self, evictable: bool) -> Class {
        self.evictable = evictable;
        self
    }

    /// The same class, compressible or not.
    #[must_use]
    pub fn with_compressible(mut self, compressible: bool) -> Class {
        self.compressible = compressible;
        self
    }
}

/// MEDIUM, evictable, not compressible, 30 days.
impl Default for Class {
    fn default() -> Class {
        Class {
            criticality: Criticality::Medium,
            evictable: true,
            compressible: false,
            ttl: Class::DEFAULT_TTL,
        }
    }
}

/// A pattern and the class of the keys it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Which keys the rule covers.
    pub pattern: Pattern,
    /// How they are handled.
    pub class: Class,
}

impl Rule {
    /// A rule for `pattern`.
    pub fn new(pattern: Pattern, class: Class) -> Rule {
        Rule { pattern, class }
    }
}

/// The classification rules of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    default: Class,
    exact: BTreeMap<Vec<u8>, Rule>,
    /// Most specific first.
    globs: Vec<Rule>,
    keyspaces: BTreeMap<Vec<u8>, Rule>,
    /// First bytes of the keys each kind of rule can match, so that most keys are ruled out
    /// with a bit test instead of comparisons (classification runs on every read).
    exact_first: FirstBytes,
    glob_first: FirstBytes,
    keyspace_first: FirstBytes,
}

/// A set of byte values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FirstBytes([u64; 4]);

impl FirstBytes {
    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }

    fn of<'a>(literals: impl Iterator<Item = &'a [u8]>) -> FirstBytes {
        let mut set = FirstBytes::default();
        for literal in literals {
            match literal.first() {
                Some(&b) => set.insert(b),
                // A glob starting with a wildcard can match any first byte.
                None => set = FirstBytes([u64::MAX; 4]),
            }
        }
        set
    }
}

impl RuleSet {
    /// No rules; every key gets the default class.
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// The class of keys no rule matches.
    pub fn default_class(&self) -> Class {
        self.default
    }

    /// Changes the class of keys no rule matches.
    pub fn set_default(&mut self, class: Class) {
        self.default = class;
    }

    /// Adds `rule`, returning the rule it replaces (one with an equal pattern).
    pub fn insert(&mut self, rule: Rule) -> Option<Rule> {
        let replaced = self.insert_unindexed(rule);
        self.reindex();
        replaced
    }

    fn reindex(&mut self) {
        self.exact_first = FirstBytes::of(self.exact.keys().map(Vec::as_slice));
        self.glob_first = FirstBytes::of(self.globs.iter().map(|r| r.pattern.literal()));
        self.keyspace_first = FirstBytes::of(self.keyspaces.keys().map(Vec::as_slice));
    }

    fn insert_unindexed(&mut self, rule: Rule) -> Option<Rule> {
        match rule.pattern.kind() {
            PatternKind::Exact => self.exact.insert(rule.pattern.literal().to_vec(), rule),
            PatternKind::Keyspace => self.keyspaces.insert(rule.pattern.literal().to_vec(), rule),
            PatternKind::Glob => {
                let replaced = self
                    .globs
                    .iter()
                    .position(|r| r.pattern == rule.pattern)
                    .map(|at| self.globs.remove(at));
                let at = self
                    .globs
                    .partition_point(|r| r.pattern.specificity_order(&rule.pattern).is_lt());
                self.globs.insert(at, rule);
                replaced
            }
        }
    }

    /// Parses `pattern` (see [`Pattern::parse`]) and adds a rule for it.
    pub fn add(&mut self, pattern: &str, class: Class) -> Result<Option<Rule>, Error> {
        Ok(self.insert(Rule::new(Pattern::parse(pattern)?, class)))
    }

    /// Removes the rule for `pattern`, returning it.
    pub fn remove(&mut self, pattern: &Pattern) -> Option<Rule> {
        let removed = self.remove_unindexed(pattern);
        self.reindex();
        removed
    }

    fn remove_unindexed(&mut self, pattern: &Pattern) -> Option<Rule> {
        match pattern.kind() {
            PatternKind::Exact => self.exact.remove(pattern.literal()),
            PatternKind::Keyspace => self.keyspaces.remove(pattern.literal()),
            PatternKind::Glob => {
                let at = self.globs.iter().position(|r| &r.pattern == pattern)?;
                Some(self.globs.remove(at))
            }
        }
    }

    /// The class of `key`.
    pub fn classify(&self, key: &[u8]) -> Class {
        self.matching_rule(key).map_or(self.default, |r| r.class)
    }

    /// The rule deciding `key`'s class, or `None` when the default applies.
    pub fn matching_rule(&self, key: &[u8]) -> Option<&Rule> {
        let first = *key.first()?;
        if self.exact_first.contains(first) {
            if let Some(rule) = self.exact.get(key) {
                return Some(rule);
            }
        }
        if self.glob_first.contains(first) {
            if let Some(rule) = self.globs.iter().find(|r| r.pattern.matches(key)) {
                return Some(rule);
            }
        }
        if !self.keyspace_first.contains(first) {
            return None;
        }
        let colon = key.iter().position(|&b| b == b':')?;
        self.keyspaces.get(key.get(..colon)?)
    }

    /// Every rule, in the order they take precedence: exact keys (in key order), globs (most
    /// specific first), keyspace defaults (in name order).
    pub fn list(&self) -> Vec<&Rule> {
        self.exact
            .values()
            .chain(&self.globs)
            .chain(self.keyspaces.values())
            .collect()
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.exact.len() + self.globs.len() + self.keyspaces.len()
    }

    /// Whether the set holds no rules (the default class still applies).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The persisted form (see the [module documentation](self)).
    pub fn to_json(&self) -> String {
        let file = FileRepr {
            version: FORMAT_VERSION,
            default: ClassRepr::from(self.default),
            rules: self.list().into_iter().map(RuleRepr::from).collect(),
        };
        // Serialising plain structs of strings, bools and integers cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Parses the persisted form.
    pub fn from_json(text: &str) -> Result<RuleSet, Error> {
        parse(text).map_err(|detail| Error::BadRules {
            origin: "in memory".to_owned(),
            detail,
        })
    }

    /// Writes the rules to `path` durably: temporary file, fsync, rename, fsync of the
    /// directory. A crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let io = |op: &'static str| {
            move |source| Error::RulesIo {
                path: path.to_owned(),
                op,
                source,
            }
        };
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut file = strata_wal::io::create_private_file(&tmp).map_err(io("create"))?;
        file.write_all(self.to_json().as_bytes())
            .map_err(io("write"))?;
        file.sync_all().map_err(io("fsync"))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io("rename"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory"))
    }

    /// Reads rules written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<RuleSet, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::RulesIo {
            path: path.to_owned(),
            op: "read",
            source,
        })?;
        parse(&text).map_err(|detail| Error::BadRules {
            origin: path.display().to_string(),
            detail,
        })
    }
}

fn parse(text: &str) -> Result<RuleSet, String> {
    let file: FileRepr = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!("unknown format version {}", file.version));
    }
    let mut set = RuleSet::new();
    set.default = file.default.into_class()?;
    for (i, rule) in file.rules.into_iter().enumerate() {
        let kind = match rule.kind.as_str() {
            "exact" => PatternKind::Exact,
            "glob" => PatternKind::Glob,
            "keyspace" => PatternKind::Keyspace,
            other => return Err(format!("rule {i}: unknown match `{other}`")),
        };
        let pattern =
            Pattern::with_kind(kind, &rule.pattern).map_err(|e| format!("rule {i}: {e}"))?;
        let class = rule
            .class()
            .into_class()
            .map_err(|e| format!("rule {i}: {e}"))?;
        if set.insert(Rule::new(pattern, class)).is_some() {
            return Err(format!("rule {i}: a second rule for `{}`", rule.pattern));
        }
    }
    Ok(set)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    version: u32,
    default: ClassRepr,
    rules: Vec<RuleRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassRepr {
    criticality: String,
    #[serde(default = "yes")]
    evictable: bool,
    #[serde(default)]
    compressible: bool,
    #[serde(default = "default_ttl_secs")]
    ttl_secs: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRepr {
    #[serde(rename = "match")]
    kind: String,
    pattern: String,
    criticality: String,
    #[serde(default = "yes")]
    evictable: bool,
    #[serde(default)]
    compressible: bool,
    #[serde(default = "default_ttl_secs")]
    ttl_secs: u64,
}

fn yes() -> bool {
    true
}

fn default_ttl_secs() -> u64 {
    Class::DEFAULT_TTL.as_secs()
}

impl From<Class> for ClassRepr {
    fn from(class: Class) -> ClassRepr {
        ClassRepr {
            criticality: class.criticality.as_str().to_owned(),
            evictable: class.evictable,
            compressible: class.compressible,
            ttl_secs: class.ttl.as_secs(),
        }
    }
}

impl ClassRepr {
    fn into_class(self) -> Result<Class, String> {
        Ok(Class {
            criticality: self.criticality.parse().map_err(|e: Error| e.to_string())?,
            evictable: self.evictable,
            compressible: self.compressible,
            ttl: Duration::from_secs(self.ttl_secs),
        })
    }
}

impl From<&Rule> for RuleRepr {
    fn from(rule: &Rule) -> RuleRepr {
        let class = ClassRepr::from(rule.class);
        RuleRepr {
            kind: rule.pattern.kind().as_str().to_owned(),
            pattern: rule.pattern.text().to_owned(),
            criticality: class.criticality,
            evictable: class.evictable,
            compressible: class.compressible,
            ttl_secs: class.ttl_secs,
        }
    }
}

impl RuleRepr {
    fn class(&self) -> ClassRepr {
        ClassRepr {
            criticality: self.criticality.clone(),
            evictable: self.evictable,
            compressible: self.compressible,
            ttl_secs: self.ttl_secs,
        }
    }
}
