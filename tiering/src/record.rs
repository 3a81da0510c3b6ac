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
//! # Probe records
//!
//! The Router's health check of the log appends and syncs a *probe record*, which carries no
//! data. It is an ordinary record of the layout above, so every reader of version 1 decodes it
//! without error: a LOW delete (criticality 0, kind 1, flags 0, no expiry) of the reserved key
//! [`PROBE_KEY`] (`\xFF\xFFstrata.probe`, 14 bytes):
//!
//! ```text
//! 01 00 01 00 | 0e 00 00 00 | ff ff 73 74 72 61 74 61 2e 70 72 6f 62 65
//! ```
//!
//! Readers that copy only HIGH and CRITICAL changes (the git committer) skip it as they skip any
//! LOW record; [`decode_any`] tells it apart as [`Record::Probe`], so replay can skip it too. The
//! Router refuses writes and reads of the reserved key, so no user change ever looks like a
//! probe. A record naming the reserved key in any other form is malformed.
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

/// The key of probe records, reserved: no user write may use it.
pub const PROBE_KEY: &[u8] = b"\xFF\xFFstrata.probe";

/// Whether `key` is reserved for the store's own records.
pub fn is_reserved(key: &[u8]) -> bool {
    key == PROBE_KEY
}

/// A decoded record of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A put or delete.
    Change {
        /// The criticality of the key when it was written.
        criticality: Criticality,
        /// The change, its seqno set to the record's LSN.
        change: Change,
    },
    /// A health-check record carrying no data.
    Probe,
}

/// Encodes a probe record (see [the module documentation](self#probe-records)).
pub fn encode_probe() -> Vec<u8> {
    encode(
        Criticality::Low,
        &Key::from_valid(PROBE_KEY),
        &Entry::tombstone(0),
    )
}

/// Decodes the record at `lsn`, telling probe records apart from changes.
///
/// [`decode`] reads a probe record as the LOW delete it is encoded as; readers that replay
/// every change should use this function instead and skip [`Record::Probe`].
pub fn decode_any(lsn: Lsn, record: &[u8]) -> Result<Record, Error> {
    let (criticality, change) = decode(lsn, record)?;
    if !is_reserved(change.key.as_bytes()) {
        return Ok(Record::Change {
            criticality,
            change,
        });
    }
    let canonical = criticality == Criticality::Low
        && change.entry.is_tombstone()
        && change.entry.expires_at.is_none();
    if canonical {
        Ok(Record::Probe)
    } else {
        Err(Error::BadRecord {
            lsn,
            detail: "a change of the reserved probe key".to_owned(),
        })
    }
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
    fn probe_records_decode_apart_from_changes() {
        let probe = encode_probe();
        assert_eq!(
            probe,
            [
                &[1u8, 0, 1, 0, 14, 0, 0, 0][..],
                b"\xFF\xFFstrata.probe".as_slice()
            ]
            .concat()
        );
        assert_eq!(decode_any(5, &probe).unwrap(), Record::Probe);
        // Readers of changes see a LOW delete, which they skip or apply harmlessly.
        let (criticality, change) = decode(5, &probe).unwrap();
        assert_eq!(criticality, Criticality::Low);
        assert!(change.entry.is_tombstone());

        let key = Key::new("k").unwrap();
        let put = Entry::put(9, "v");
        assert_eq!(
            decode_any(9, &encode(Criticality::High, &key, &put)).unwrap(),
            Record::Change {
                criticality: Criticality::High,
                change: Change::new(key, put),
            }
        );
        let forged = encode(
            Criticality::Medium,
            &Key::new(PROBE_KEY).unwrap(),
            &Entry::tombstone(0),
        );
        assert!(matches!(
            decode_any(3, &forged),
            Err(Error::BadRecord { lsn: 3, .. })
        ));
        assert!(is_reserved(PROBE_KEY) && !is_reserved(b"k"));
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
