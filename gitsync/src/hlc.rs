//! Hybrid logical clock: wall-clock milliseconds plus a counter, so chunk names sort in commit
//! order on one writer even when the wall clock stalls or steps back, and stay close to real
//! time across writers.

use std::fmt;

/// A hybrid logical clock reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (never less than any earlier reading's).
    pub ms: u64,
    /// Tie-breaker within one millisecond.
    pub count: u32,
}

impl Hlc {
    /// The next reading after `self` at wall-clock time `now_ms`.
    pub fn next(self, now_ms: u64) -> Hlc {
        if now_ms > self.ms {
            Hlc {
                ms: now_ms,
                count: 0,
            }
        } else {
            Hlc {
                ms: self.ms,
                count: self.count.saturating_add(1),
            }
        }
    }

    /// Parses the form written by `Display`.
    pub fn parse(text: &str) -> Option<Hlc> {
        let (ms, count) = text.split_once('-')?;
        if ms.len() != 16 || count.len() != 6 {
            return None;
        }
        Some(Hlc {
            ms: ms.parse().ok()?,
            count: count.parse().ok()?,
        })
    }
}

impl fmt::Display for Hlc {
    /// Fixed width, so readings sort as text: `0001732233600000-000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}-{:06}", self.ms, self.count)
    }
}

/// When and by whom a version was committed: the chunk it came from. Orders versions written
/// by different writers (whose LSNs are unrelated), newest last; every replica orders them the
/// same way, which is what makes merges deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The chunk's clock reading.
    pub hlc: Hlc,
    /// The writer that committed it.
    pub writer: String,
}

/// Length of an [`Hlc`] as text.
const HLC_TEXT_LEN: usize = 23;

impl Stamp {
    /// Parses `<hlc>-<writer>`, the form written by `Display`.
    pub fn parse(text: &str) -> Option<Stamp> {
        let hlc = Hlc::parse(text.get(..HLC_TEXT_LEN)?)?;
        let writer = text.get(HLC_TEXT_LEN..)?.strip_prefix('-')?;
        if writer.is_empty() || !writer.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Stamp {
            hlc,
            writer: writer.to_owned(),
        })
    }

    /// The stamp a chunk file's name carries (`<hlc>-<writer>.jsonl`).
    pub fn of_chunk(name: &str) -> Option<Stamp> {
        Stamp::parse(name.strip_suffix(".jsonl")?)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.hlc, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_increase_even_when_the_clock_goes_back() {
        let a = Hlc::default().next(100);
        let b = a.next(100);
        let c = b.next(50);
        let d = c.next(200);
        assert!(a < b && b < c && c < d);
        assert!(a.to_string() < b.to_string() && c.to_string() < d.to_string());
        assert_eq!(Hlc::parse(&d.to_string()), Some(d));
        assert_eq!(Hlc::parse("12-3"), None);
    }

    #[test]
    fn stamps_round_trip_and_order_by_clock_then_writer() {
        let a = Stamp {
            hlc: Hlc { ms: 5, count: 1 },
            writer: "wb".into(),
        };
        let b = Stamp {
            hlc: Hlc { ms: 5, count: 1 },
            writer: "wc".into(),
        };
        assert!(a < b);
        assert_eq!(Stamp::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(Stamp::of_chunk(&format!("{a}.jsonl")), Some(a));
        for bad in [
            "",
            "0000000000000005-000001",
            "0000000000000005-000001-",
            "x-y-z",
            "0000000000000005-000001-w/b",
        ] {
            assert_eq!(Stamp::parse(bad), None, "{bad}");
        }
    }
}
