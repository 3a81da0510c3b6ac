//! How the command prints: keys, values, times, and failures as one line.

use std::process::ExitCode;

use base64::Engine;
use strata::tiering::clock::{civil_from_days, days_from_civil};

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An absent key or damage found: exit 1.
    NotFound(String),
    /// Anything else: exit 2.
    Error(String),
}

impl Failure {
    pub fn error(line: impl Into<String>) -> Failure {
        Failure::Error(line.into())
    }

    pub fn report(self) -> ExitCode {
        match self {
            Failure::NotFound(line) => {
                eprintln!("strata: {line}");
                ExitCode::from(1)
            }
            Failure::Error(line) => {
                eprintln!("strata: error: {line}");
                ExitCode::from(2)
            }
        }
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Error(one_line(&error))
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
        source = source.and_then(|s| s.source());
    }
    line.replace('\n', " ")
}

/// A key as text: itself when it is printable UTF-8, escaped otherwise.
pub(crate) fn key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => strata::tiering::escape_bytes(key, usize::MAX),
    }
}

/// A value as a JSON field: `"value"` when UTF-8, `"value_base64"` otherwise.
pub(crate) fn value_json(value: &[u8]) -> (&'static str, serde_json::Value) {
    match std::str::from_utf8(value) {
        Ok(text) => ("value", serde_json::Value::String(text.to_owned())),
        Err(_) => (
            "value_base64",
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(value)),
        ),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` (or `@` and unix seconds) as unix seconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    // Unix seconds carry an `@` (as `date -d @SECS` takes them): bare digits could just as
    // well be an abbreviated commit id.
    if let Some(secs) = text.strip_prefix('@') {
        return secs.parse::<i64>().ok();
    }
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let (y, m, d) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.split(':').map(str::parse::<i64>);
    let (h, min, s) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    let valid = (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&min)
        && (0..=60).contains(&s);
    // `valid` bounds the month and day, so they fit.
    valid.then(|| days_from_civil(y, m as u32, d as u32) * 86_400 + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(1_700_000_000), "2023-11-14T22:13:20Z");
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_time(&iso_time(secs)), Some(secs));
        }
        assert_eq!(parse_time("@1700000000"), Some(1_700_000_000));
        assert_eq!(
            parse_time("1700000000"),
            None,
            "digits alone may be a commit id"
        );
        assert_eq!(parse_time("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn keys_print_readably() {
        assert_eq!(key_text(b"task:1"), "task:1");
        assert_ne!(key_text(b"a\nb"), "a\nb");
        assert_ne!(key_text(&[0xFF, 0x00]), "");
    }
}
