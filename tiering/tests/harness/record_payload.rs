//! Fuzz harness shared by `fuzz/fuzz_targets/record_payload.rs` and the corpus replay test:
//! any bytes presented as the payload of a WAL record decode to a change or to an error, never
//! a panic, and a decoded change re-encodes to exactly the bytes it came from (the record
//! format has one encoding per change), which decode again to the same change.

use strata_tiering::record::{self, Record};
use strata_tiering::{Criticality, Error, MAX_KEY_LEN};

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    // The LSN only becomes the entry's seqno: try the edges of its range.
    for lsn in [0, 1, u64::MAX] {
        check(lsn, data);
    }
}

fn check(lsn: u64, data: &[u8]) {
    let decoded = record::decode(lsn, data);
    let any = record::decode_any(lsn, data);
    let (criticality, change) = match decoded {
        Ok(decoded) => decoded,
        Err(e) => {
            assert!(
                matches!(e, Error::BadRecord { lsn: at, .. } if at == lsn),
                "a record that does not decode is a BadRecord naming its LSN: {e:?}"
            );
            assert!(any.is_err(), "decode_any accepts what decode refuses");
            return;
        }
    };
    assert_eq!(change.entry.seqno, lsn, "the seqno is the record's LSN");
    let key = change.key.as_bytes();
    assert!(
        !key.is_empty() && key.len() <= MAX_KEY_LEN,
        "keys are valid"
    );
    assert!(data.len() >= 4 + 4 + key.len(), "the header and key fit");
    assert!(
        !(change.entry.is_tombstone() && change.entry.value().is_some()),
        "a tombstone has no value"
    );

    // The format is canonical: re-encoding gives back the very bytes.
    let encoded = record::encode(criticality, &change.key, &change.entry);
    assert_eq!(
        encoded, data,
        "a decoded record re-encodes to its own bytes"
    );
    match record::decode(lsn, &encoded) {
        Ok((again_criticality, again)) => {
            assert_eq!(again_criticality, criticality, "criticality survives");
            assert_eq!(again, change, "the change survives a round trip");
        }
        Err(e) => panic!("a re-encoded record decodes: {e}"),
    }

    // decode_any tells the probe apart and refuses any other use of the reserved key.
    let reserved = record::is_reserved(key);
    match any {
        Ok(Record::Probe) => {
            assert!(reserved, "only the reserved key is a probe");
            assert_eq!(data, record::encode_probe(), "the probe has one encoding");
            assert_eq!(criticality, Criticality::Low, "probes are LOW");
        }
        Ok(Record::Change {
            criticality: any_criticality,
            change: any_change,
        }) => {
            assert!(!reserved, "the reserved key never decodes as a change");
            assert_eq!((any_criticality, &any_change), (criticality, &change));
        }
        Err(e) => {
            assert!(reserved, "decode_any refuses only reserved keys: {e}");
            assert_ne!(data, record::encode_probe(), "the probe decodes");
        }
    }
}
