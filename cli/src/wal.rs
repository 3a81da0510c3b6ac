//! `strata wal dump`: every WAL record as a JSON line.
//!
//! A record the store wrote is decoded: `{"lsn":…,"criticality":…,"key":…,"value":…}` (or
//! `"value_base64"`, or `"deleted":true`, and `"expires_at"` in unix milliseconds when
//! set); a health-check record is `{"lsn":…,"probe":true}`; anything else is shown raw, as
//! `{"lsn":…,"bytes":…,"hex":…}`.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};
use strata::tiering::record::{decode_any, Record};
use strata::wal::{read_dir, StdFs, WalOptions};

use crate::output::{key_text, value_json, Failure};

fn line(lsn: u64, bytes: &[u8]) -> Value {
    match decode_any(lsn, bytes) {
        Ok(Record::Probe) => json!({"lsn": lsn, "probe": true}),
        Ok(Record::Change {
            criticality,
            change,
        }) => {
            let mut out = Map::new();
            out.insert("lsn".into(), lsn.into());
            out.insert("criticality".into(), criticality.as_str().into());
            out.insert("key".into(), key_text(change.key.as_bytes()).into());
            match change.entry.value() {
                Some(value) => {
                    let (field, value) = value_json(value.as_bytes());
                    out.insert(field.into(), value);
                }
                None => {
                    out.insert("deleted".into(), true.into());
                }
            }
            if let Some(at) = change.entry.expires_at {
                out.insert("expires_at".into(), at.into());
            }
            Value::Object(out)
        }
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!({"lsn": lsn, "bytes": bytes.len(), "hex": hex})
        }
    }
}

/// Prints the log of the store in `dir`. The log is read where it lies, without the store's
/// lock and without repairing anything, so it works beside a running writer. Damage ends the
/// dump with an error naming it; a torn last record (what a write in progress, or a crash
/// during one, looks like) only with a warning.
pub(crate) fn dump(dir: &Path) -> Result<(), Failure> {
    let wal_dir = dir.join("wal");
    if !wal_dir.is_dir() {
        return Err(Failure::error(format!(
            "no write-ahead log at {}",
            wal_dir.display()
        )));
    }
    let max = WalOptions::default().max_record_len;
    let (found, records) = read_dir(&StdFs, &wal_dir, 0, max)?;
    let mut out = std::io::stdout().lock();
    for record in records {
        let (lsn, bytes) = record?;
        writeln!(out, "{}", line(lsn, &bytes))?;
    }
    match found.damage {
        Some(damage) if damage.torn_tail => {
            eprintln!(
                "strata: warning: the log ends in a torn record: {} at offset {}: {}",
                damage.path.display(),
                damage.offset,
                damage.detail
            );
            Ok(())
        }
        Some(damage) => Err(Failure::error(format!(
            "damaged log: {} at offset {}: {}",
            damage.path.display(),
            damage.offset,
            damage.detail
        ))),
        None => Ok(()),
    }
}
