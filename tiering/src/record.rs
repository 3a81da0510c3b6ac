//! The WAL record of one change: how the Router writes a put or delete into the [`Log`]
//! and how every stage that tails the log (memtable replay, the git committer) reads it back.
//!
//! A change's sequence number is the LSN of its record, so it is not stored. All integers are
//! little-endian.
//!
//! ```text
//! +---------+-------------+------+-------+--------------+-----------+-----+-------------+
//! | version | criticality | kind | flags | [expires_at] | key len   | key | [value]     |
//! | u8 = 1  | u8 0..=3    | u8   | u8    | u64, if flag | u32       |     | rest, puts  |
//! +---------+-------------+------+-------+--------------+-----------+-----+-------------+
//!   kind  = 0 put, 1 delete (a delete has no value bytes)
//!   flags = bit 0: an expiry (unix milliseconds) follows; other bits 0
//!   criticality = 0 low, 1 medium, 2 high, 3 critical
//! ```
//!
//! A batch of changes written together is one WAL batch of such records, atomic on recovery.
//!
//! [`Log`]: strata_wal::Log

use crate::error::Error;
use crate::types::{Change, Criticality, Entry, EntryKind, Key, Lsn, Value};

const VERSION: u8 = 1;
const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;
const FLAG_EXPIRY: u8 = 0b1;

/// Encodes one change (its entry's seqno is not stored: it is the record's LSN).
pub fn encode(criticality: Criticality, key: &Key, entry: &Entry) -> Vec<u8> {
    let value = entry.value().map_or(&[][..], Value::as_bytes);
    let mut out = Vec::with_capacity(16 + key.as_bytes().len() + value.len());
    out.push(VERSION);
    out.push(criticality.as_u8());
    out.push(if entry.is_tombstone() {
        KIND_DELETE
    } else {
        KIND_PUT
    });
    out.push(if entry.expires_at.is_some() {
        FLAG_EXPIRY
    } else {
        0
    });
    if let Some(expires_at) = entry.expires_at {
        out.extend_from_slice(&expires_at.to_le_bytes());
    }
    // Keys are at most 64 KiB, so the length always fits.
    out.extend_from_slice(&(key.as_bytes().len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes the record at `lsn` into its criticality and change.
pub fn decode(lsn: Lsn, record: &[u8]) -> Result<(Criticality, Change), Error> {
    let bad = |detail: &str| Error::BadRecord {
        lsn,
        detail: detail.to_owned(),
    };
    let [version, criticality, kind, flags, rest @ ..] = record else {
        return Err(bad("shorter than its 4-byte header"));
    };
    if *version != VERSION {
        return Err(bad(&format!("unknown record version {version}")));
    }
    let criticality =
        Criticality::from_u8(*criticality).ok_or_else(|| bad("unknown criticality"))?;
    if flags & !FLAG_EXPIRY != 0 {
        return Err(bad("unknown flags"));
    }
    let (expires_at, rest) = if flags & FLAG_EXPIRY != 0 {
        let (bytes, rest) = split(rest, 8).ok_or_else(|| bad("truncated expiry"))?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        (Some(u64::from_le_bytes(word)), rest)
    } else {
        (None, rest)
    };
    let (len, rest) = split(rest, 4).ok_or_else(|| bad("truncated key length"))?;
    let mut word = [0u8; 4];
    word.copy_from_slice(len);
    let (key, value) = split(rest, u32::from_le_bytes(word) as usize)
        .ok_or_else(|| bad("key runs past the record"))?;
    let key = Key::new(key).map_err(|e| bad(&e.to_string()))?;
    let kind = match *kind {
        KIND_PUT => EntryKind::Value(Value::from(value)),
        KIND_DELETE if value.is_empty() => EntryKind::Tombstone,
        KIND_DELETE => return Err(bad("a delete carries value bytes")),
        other => return Err(bad(&format!("unknown change kind {other}"))),
    };
    let entry = Entry {
        seqno: lsn,
        kind,
        expires_at,
    };
    Ok((criticality, Change { key, entry }))
}

fn split(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (at <= bytes.len()).then(|| bytes.split_at(at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn puts_and_deletes_round_trip() {
        let key = Key::new("task:1").unwrap();
        let put = Entry::put(7, "v").with_expiry(99);
        let record = encode(Criticality::High, &key, &put);
        let (criticality, change) = decode(7, &record).unwrap();
        assert_eq!(criticality, Criticality::High);
        assert_eq!(change.key, key);
        assert_eq!(change.entry, put);
        let del = Entry::tombstone(8);
        let (_, change) = decode(8, &encode(Criticality::Low, &key, &del)).unwrap();
        assert_eq!(change.entry, del);
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_never_a_panic() {
        let key = Key::new("k").unwrap();
        let record = encode(
            Criticality::Medium,
            &key,
            &Entry::put(1, "value").with_expiry(5),
        );
        // Header, expiry, key length and the one-byte key: any cut before their end fails; a
        // cut inside the value decodes to a shorter value (the WAL's CRC guards against that).
        let value_start = 4 + 8 + 4 + 1;
        for cut in 0..record.len() {
            assert_eq!(
                decode(1, &record[..cut]).is_err(),
                cut < value_start,
                "cut at {cut}"
            );
        }
        for byte in 0..4 {
            let mut bad = record.clone();
            bad[byte] = 0xFF;
            assert!(decode(1, &bad).is_err(), "header byte {byte}");
        }
        let mut huge = encode(Criticality::Medium, &key, &Entry::put(1, "v"));
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(3, &huge),
            Err(Error::BadRecord { lsn: 3, .. })
        ));
    }
}
