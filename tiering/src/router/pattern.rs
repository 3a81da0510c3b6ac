//! Classification patterns: which keys a rule applies to.
//!
//! A pattern is written as text and matched bytewise against keys:
//!
//! - **exact** — text without wildcards names one key: `user:42:profile`;
//! - **glob** — `*` matches any run of bytes (empty included, `:` included), `?` exactly one
//!   byte: `got:task:*`, `cache:query:*`, `user:??:profile`;
//! - **keyspace** — made with [`Pattern::keyspace`], not parsed from text: the name of a
//!   keyspace, matching every key of the form `<name>:<anything>`. The keyspace of a key is the
//!   part before its first `:`; a key without `:` is in no keyspace.
//!
//! In text, `\*`, `\?` and `\\` stand for those characters literally, and `\xNN` (two hex
//! digits) for any byte, which is how keys that are not UTF-8 or hold control bytes are
//! written. There are no character classes: `[` and `]` are ordinary characters.
//!
//! A pattern is refused ([`Error::InvalidPattern`]) when it is empty, longer than
//! [`MAX_PATTERN_LEN`] bytes once unescaped, holds an unescaped control character, a dangling
//! or unknown escape, or (for exact patterns) names the reserved probe key. The length bound
//! also bounds the cost of matching a glob: at worst pattern length × key length steps.

use std::cmp::Ordering;
use std::fmt;

use crate::error::Error;
use crate::record;
use crate::types::{escape_bytes, MAX_KEY_LEN};

/// The longest pattern accepted, in bytes after unescaping (wildcards count one each).
pub const MAX_PATTERN_LEN: usize = 1024;

/// How a [`Pattern`] matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternKind {
    /// One key.
    Exact,
    /// A glob with `*` and `?`.
    Glob,
    /// Every key of a keyspace.
    Keyspace,
}

impl PatternKind {
    /// The lowercase name used in the persisted rules.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Exact => "exact",
            PatternKind::Glob => "glob",
            PatternKind::Keyspace => "keyspace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tok {
    Byte(u8),
    /// `?`
    One,
    /// `*`
    Star,
}

/// A parsed pattern. Two patterns are equal when they match the same way, whatever escapes
/// their texts used.
#[derive(Clone)]
pub struct Pattern {
    kind: PatternKind,
    /// The text as given (or rendered, for [`Pattern::exact`]).
    text: String,
    toks: Vec<Tok>,
    /// The literal bytes before the first wildcard; the whole key or keyspace name otherwise.
    prefix: Vec<u8>,
    literals: usize,
}

impl Pattern {
    /// Parses `text`: a glob if it holds an unescaped `*` or `?`, an exact key otherwise.
    pub fn parse(text: &str) -> Result<Pattern, Error> {
        let toks = tokenize(text)?;
        let kind = if toks.iter().any(|t| !matches!(t, Tok::Byte(_))) {
            PatternKind::Glob
        } else {
            PatternKind::Exact
        };
        Pattern::build(kind, text.to_owned(), toks)
    }

    /// The pattern naming exactly `key`, whatever bytes it holds.
    pub fn exact(key: &[u8]) -> Result<Pattern, Error> {
        let text = render(key);
        let toks = key.iter().map(|&b| Tok::Byte(b)).collect();
        Pattern::build(PatternKind::Exact, text, toks)
    }

    /// The default of keyspace `name`: every key `<name>:...`. The name is text as for
    /// [`parse`](Self::parse) but may hold neither wildcards nor `:`.
    pub fn keyspace(name: &str) -> Result<Pattern, Error> {
        let toks = tokenize(name)?;
        if toks.iter().any(|t| !matches!(t, Tok::Byte(_))) {
            return Err(invalid(name, "a keyspace name holds no wildcards"));
        }
        if toks.contains(&Tok::Byte(b':')) {
            return Err(invalid(name, "a keyspace name holds no `:`"));
        }
        Pattern::build(PatternKind::Keyspace, name.to_owned(), toks)
    }

    /// Parses a pattern of a kind given separately, as the persisted rules do.
    pub fn with_kind(kind: PatternKind, text: &str) -> Result<Pattern, Error> {
        match kind {
            PatternKind::Keyspace => Pattern::keyspace(text),
            PatternKind::Exact | PatternKind::Glob => {
                let pattern = Pattern::parse(text)?;
                if pattern.kind != kind {
                    return Err(invalid(
                        text,
                        &format!(
                            "declared {} but parses as {}",
                            kind.as_str(),
                            pattern.kind.as_str()
                        ),
                    ));
                }
                Ok(pattern)
            }
        }
    }

    fn build(kind: PatternKind, text: String, toks: Vec<Tok>) -> Result<Pattern, Error> {
        if toks.is_empty() {
            return Err(invalid(&text, "empty pattern"));
        }
        if toks.len() > MAX_PATTERN_LEN {
            return Err(invalid(
                &text,
                &format!(
                    "{} bytes, over the {MAX_PATTERN_LEN}-byte limit",
                    toks.len()
                ),
            ));
        }
        let prefix: Vec<u8> = toks
            .iter()
            .map_while(|t| match t {
                Tok::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        if kind == PatternKind::Exact && record::is_reserved(&prefix) {
            return Err(invalid(&text, "names the reserved probe key"));
        }
        // Unreachable with MAX_PATTERN_LEN below MAX_KEY_LEN, but keeps the two in step.
        if kind == PatternKind::Exact && prefix.len() > MAX_KEY_LEN {
            return Err(invalid(&text, "longer than any key"));
        }
        let literals = toks.iter().filter(|t| matches!(t, Tok::Byte(_))).count();
        Ok(Pattern {
            kind,
            text,
            toks,
            prefix,
            literals,
        })
    }

    /// How the pattern matches.
    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// The pattern's text (for a keyspace, its name).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// For exact patterns and keyspaces, the key or name as bytes.
    pub(crate) fn literal(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self.kind {
            PatternKind::Exact => key == self.prefix.as_slice(),
            PatternKind::Keyspace => {
                key.starts_with(&self.prefix) && key.get(self.prefix.len()) == Some(&b':')
            }
            PatternKind::Glob => key.starts_with(&self.prefix) && glob(&self.toks, key),
        }
    }

    /// Orders globs most specific first: more literal bytes, then a longer literal prefix,
    /// then by text so that ties break the same way every time.
    pub(crate) fn specificity_order(&self, other: &Pattern) -> Ordering {
        other
            .literals
            .cmp(&self.literals)
            .then_with(|| other.prefix.len().cmp(&self.prefix.len()))
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.kind == other.kind && self.toks == other.toks
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({} `{}`)", self.kind.as_str(), self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PatternKind::Keyspace => write!(f, "keyspace {}", self.text),
            _ => f.write_str(&self.text),
        }
    }
}

impl TryFrom<&str> for Pattern {
    type Error = Error;
    fn try_from(text: &str) -> Result<Pattern, Error> {
        Pattern::parse(text)
    }
}

fn invalid(text: &str, reason: &str) -> Error {
    Error::InvalidPattern {
        pattern: escape_bytes(text.as_bytes(), 64),
        reason: reason.to_owned(),
    }
}

fn tokenize(text: &str) -> Result<Vec<Tok>, Error> {
    let bytes = text.as_bytes();
    let mut toks = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let tok = match b {
            b'*' => Tok::Star,
            b'?' => Tok::One,
            b'\\' => {
                let Some(&next) = bytes.get(i) else {
                    return Err(invalid(text, "ends in a lone `\\`"));
                };
                i += 1;
                match next {
                    b'*' | b'?' | b'\\' => Tok::Byte(next),
                    b'x' => {
                        let hex = bytes
                            .get(i..i + 2)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| {
                                invalid(text, "`\\x` must be followed by two hex digits")
                            })?;
                        i += 2;
                        Tok::Byte(hex)
                    }
                    _ => return Err(invalid(text, "unknown escape; use \\*, \\?, \\\\ or \\xNN")),
                }
            }
            b if b < 0x20 || b == 0x7F => {
                return Err(invalid(text, "control characters must be written as \\xNN"));
            }
            b => Tok::Byte(b),
        };
        toks.push(tok);
        if toks.len() > MAX_PATTERN_LEN {
            return Err(invalid(
                text,
                &format!("over the {MAX_PATTERN_LEN}-byte limit"),
            ));
        }
    }
    Ok(toks)
}

/// Renders key bytes as pattern text that parses back to exactly those bytes.
fn render(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '*' | '?' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() && (c as u32) < 0x80 => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Iterative glob match: on a mismatch, retry from the last `*` one byte further along. Only
/// the last star needs remembering, as an earlier star can absorb whatever a later one could.
fn glob(toks: &[Tok], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&byte) = key.get(k) {
        match toks.get(p) {
            Some(Tok::Star) => {
                star = Some((p, k));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                k += 1;
            }
            Some(Tok::Byte(b)) if *b == byte => {
                p += 1;
                k += 1;
            }
            _ => match star {
                Some((sp, sk)) => {
                    p = sp + 1;
                    k = sk + 1;
                    star = Some((sp, sk + 1));
                }
                None => return false,
            },
        }
    }
    toks.get(p..)
        .is_some_and(|rest| rest.iter().all(|t| *t == Tok::Star))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn globs_match_bytewise() {
        let task = p("got:task:*");
        assert_eq!(task.kind(), PatternKind::Glob);
        assert!(task.matches(b"got:task:T-1"));
        assert!(task.matches(b"got:task:"));
        assert!(task.matches(b"got:task:a:b"));
        assert!(!task.matches(b"got:tas"));
        assert!(!task.matches(b"xgot:task:1"));
        let q = p("user:??:x*y");
        assert!(q.matches(b"user:ab:xy"));
        assert!(q.matches(b"user:ab:x123y"));
        assert!(!q.matches(b"user:a:xy"));
        assert!(!q.matches(b"user:ab:x123"));
        assert!(p("*a*b*").matches(b"zzazzbzz"));
        assert!(!p("*a*b").matches(b"zzazzbzz"));
        assert!(p("*").matches(b"\x00\xff"));
        assert!(p("a*****").matches(b"a"));
    }

    #[test]
    fn escapes_and_exact_keys() {
        let star = p(r"a\*b");
        assert_eq!(star.kind(), PatternKind::Exact);
        assert!(star.matches(b"a*b"));
        assert!(!star.matches(b"axb"));
        let bin = p(r"k\x00\xFF");
        assert!(bin.matches(b"k\x00\xff"));
        let key = Pattern::exact(b"we*rd\x01\xfe?").unwrap();
        assert_eq!(key.kind(), PatternKind::Exact);
        assert!(key.matches(b"we*rd\x01\xfe?"));
        let reparsed = Pattern::parse(key.text()).unwrap();
        assert_eq!(reparsed, key);
        assert_eq!(p("héllo").text(), "héllo");
        assert!(p("héllo").matches("héllo".as_bytes()));
    }

    #[test]
    fn keyspaces_match_up_to_the_first_colon() {
        let ks = Pattern::keyspace("got").unwrap();
        assert!(ks.matches(b"got:x"));
        assert!(ks.matches(b"got:"));
        assert!(!ks.matches(b"got"));
        assert!(!ks.matches(b"gotx:y"));
        assert!(Pattern::keyspace("a:b").is_err());
        assert!(Pattern::keyspace("a*").is_err());
        assert_eq!(ks.to_string(), "keyspace got");
    }

    #[test]
    fn invalid_patterns_are_clear_errors() {
        for (text, needle) in [
            ("", "empty"),
            ("abc\\", "lone"),
            ("a\\q", "unknown escape"),
            ("a\\x4", "two hex digits"),
            ("a\\xZZ", "two hex digits"),
            ("a\tb", "control"),
        ] {
            let err = Pattern::parse(text).unwrap_err();
            assert!(matches!(err, Error::InvalidPattern { .. }), "{text:?}");
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        }
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(Pattern::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        assert!(Pattern::parse(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
        assert!(Pattern::exact(record::PROBE_KEY).is_err());
        assert!(Pattern::exact(b"").is_err());
        assert!(Pattern::with_kind(PatternKind::Glob, "plain").is_err());
        assert!(Pattern::with_kind(PatternKind::Exact, "a*").is_err());
    }

    #[test]
    fn specificity_prefers_literals_then_prefix_then_text() {
        let mut globs = [p("*"), p("a*"), p("ab*"), p("*ab"), p("a*b"), p("a?b*")];
        globs.sort_by(Pattern::specificity_order);
        let order: Vec<&str> = globs.iter().map(Pattern::text).collect();
        assert_eq!(order, ["ab*", "a*b", "a?b*", "*ab", "a*", "*"]);
    }
}
