//! The JSON documents the cold tier writes: a state blob per key, and a chunk line per change.
//!
//! Both are one JSON object with these fields, in this order, absent ones left out:
//!
//! | field | meaning |
//! |---|---|
//! | `key` | the key, when it is UTF-8 (chunk lines always; state blobs only for shortened names) |
//! | `key_b64` | the key in standard base64, when it is not UTF-8 |
//! | `value` | the value itself, when it is one JSON text with no surrounding white space, other than `null` (which reads as an absent field) |
//! | `value_b64` | the value in standard base64, for any other bytes (the marker of non-JSON) |
//! | `del` | `true` for a deletion (state keeps deletions, so they shadow older versions) |
//! | `lsn` | the change's sequence number (its LSN in the writer's log) |
//! | `expires_at` | expiry in Unix milliseconds, if any |
//! | `at` | state blobs: the chunk the version came from, `<hybrid-logical-clock>-<writer>`; it orders versions from different writers |
//!
//! So `git show HEAD:state/1fa/task%3A7` prints `{"value":{"title":"write docs"},"lsn":42}`,
//! and the value's bytes come back exactly as written: JSON is embedded verbatim, never
//! re-serialised. Chunk lines embed only values without line breaks, so a chunk file stays
//! one change per line.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use strata_tiering::{Entry, EntryKind, Value};

use crate::error::Error;
use crate::hlc::Stamp;

/// A document as read. (Its `Serialize` writes the same bytes as [`DocOut`], which a test
/// checks; [`encode`] uses `DocOut`, which borrows what `Doc` would copy.)
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    value: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_b64: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    del: bool,
    lsn: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

/// A document as [`encode`] writes it: [`Doc`]'s fields in `Doc`'s order, borrowed, with the
/// stamp written straight into the output. A fold encodes thousands of these on its path, and
/// each copy or temporary string was an allocation.
#[derive(Serialize)]
struct DocOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_b64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    del: bool,
    lsn: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "stamp_text")]
    at: Option<&'a Stamp>,
}

fn stamp_text<S: Serializer>(at: &Option<&Stamp>, out: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(stamp) => out.collect_str(stamp),
        None => out.serialize_none(),
    }
}

/// Bytes a document takes beyond its key and value: field names, punctuation, the LSN, the
/// expiry and the stamp, with room to spare.
const DOC_OVERHEAD: usize = 128;

/// Where a document goes: a chunk line must not contain a line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A whole blob under `state/`.
    StateBlob,
    /// One line of a chunk file.
    ChunkLine,
}

/// The value's bytes as a JSON text to embed, if they are one.
fn json_text(value: &[u8], form: Form) -> Option<&RawValue> {
    let text = std::str::from_utf8(value).ok()?;
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.len() != text.len() || text.is_empty() {
        return None;
    }
    if form == Form::ChunkLine && text.contains(['\n', '\r']) {
        return None;
    }
    // `"value":null` would read back as no value at all.
    if text == "null" {
        return None;
    }
    serde_json::from_str::<&RawValue>(text).ok()
}

/// A decoded document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The key, if the document names one.
    pub key: Option<Vec<u8>>,
    /// The version.
    pub entry: Entry,
    /// Where the version came from (state blobs).
    pub at: Option<Stamp>,
}

/// Encodes `entry` (and the key, when given, and the version's origin) as one document.
pub fn encode(
    key: Option<&[u8]>,
    entry: &Entry,
    form: Form,
    at: Option<&Stamp>,
) -> Result<Vec<u8>, Error> {
    let (key_text, key_b64) = match key.map(std::str::from_utf8) {
        None => (None, None),
        Some(Ok(text)) => (Some(text), None),
        Some(Err(_)) => (None, key.map(|k| BASE64.encode(k))),
    };
    let (value, value_b64, del) = match &entry.kind {
        EntryKind::Tombstone => (None, None, true),
        EntryKind::Value(v) => match json_text(v.as_bytes(), form) {
            Some(raw) => (Some(raw), None, false),
            None => (None, Some(BASE64.encode(v.as_bytes())), false),
        },
    };
    let texts = [
        key_text.map_or(0, str::len),
        key_b64.as_ref().map_or(0, String::len),
        value.map_or(0, |raw| raw.get().len()),
        value_b64.as_ref().map_or(0, String::len),
    ];
    let mut out = Vec::with_capacity(DOC_OVERHEAD + texts.iter().sum::<usize>());
    let doc = DocOut {
        key: key_text,
        key_b64,
        value,
        value_b64,
        del,
        lsn: entry.seqno,
        expires_at: entry.expires_at,
        at,
    };
    serde_json::to_writer(&mut out, &doc)
        .map(|()| out)
        .map_err(|e| {
            Error::corrupt(
                "cold document",
                format!("cannot encode the change at LSN {}: {e}", entry.seqno),
            )
        })
}

/// Decodes a document.
pub fn decode(bytes: &[u8]) -> Result<Document, String> {
    let doc: Doc<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let key = match (doc.key, doc.key_b64) {
        (Some(text), None) => Some(text.into_bytes()),
        (None, Some(b64)) => Some(BASE64.decode(b64).map_err(|e| format!("key_b64: {e}"))?),
        (None, None) => None,
        (Some(_), Some(_)) => return Err("both key and key_b64".into()),
    };
    let kind = match (doc.value, doc.value_b64, doc.del) {
        (Some(raw), None, false) => EntryKind::Value(Value::from(raw.get().as_bytes())),
        (None, Some(b64), false) => {
            let bytes = BASE64.decode(b64).map_err(|e| format!("value_b64: {e}"))?;
            EntryKind::Value(Value::from(bytes))
        }
        (None, None, true) => EntryKind::Tombstone,
        _ => return Err("exactly one of value, value_b64 and del must be given".into()),
    };
    let entry = Entry {
        seqno: doc.lsn,
        kind,
        expires_at: doc.expires_at,
    };
    let at = match doc.at {
        Some(text) => Some(Stamp::parse(&text).ok_or_else(|| format!("at: {text:?}"))?),
        None => None,
    };
    Ok(Document { key, entry, at })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(key: &[u8], value: &[u8], form: Form) -> Vec<u8> {
        let entry = Entry::put(9, value).with_expiry(77);
        let doc = encode(Some(key), &entry, form, None).unwrap();
        let back = decode(&doc).unwrap();
        assert_eq!(back.key.as_deref(), Some(key));
        assert_eq!(back.entry, entry, "{}", String::from_utf8_lossy(&doc));
        doc
    }

    #[test]
    fn json_values_stay_readable_and_exact() {
        let doc = round_trip(b"task:1", br#"{"b": 1.0e2,  "a":[1, 2]}"#, Form::StateBlob);
        let text = String::from_utf8(doc).unwrap();
        assert!(
            text.contains(r#""value":{"b": 1.0e2,  "a":[1, 2]}"#),
            "{text}"
        );
        round_trip(b"k", b"\"just a string\"", Form::ChunkLine);
        round_trip(b"k", b"12", Form::ChunkLine);
    }

    #[test]
    fn other_bytes_are_base64_with_their_marker() {
        for value in [
            &b"not json"[..],
            b" 1",
            b"1 ",
            b"",
            b"\xff\x00",
            b"{\"a\":\n1}",
            b"null",
        ] {
            let doc = round_trip(b"k", value, Form::ChunkLine);
            assert!(String::from_utf8(doc).unwrap().contains("value_b64"));
        }
        let pretty = round_trip(b"k", b"{\"a\":\n1}", Form::StateBlob);
        assert!(!String::from_utf8(pretty).unwrap().contains("value_b64"));
    }

    #[test]
    fn binary_keys_and_deletions() {
        round_trip(&[0xFF, 0, 1], b"1", Form::ChunkLine);
        let doc = encode(Some(b"gone"), &Entry::tombstone(3), Form::ChunkLine, None).unwrap();
        assert_eq!(
            String::from_utf8(doc.clone()).unwrap(),
            r#"{"key":"gone","del":true,"lsn":3}"#
        );
        assert_eq!(decode(&doc).unwrap().entry, Entry::tombstone(3));
        let at = Stamp::parse("0000000000000005-000001-wb").unwrap();
        let doc = encode(None, &Entry::put(4, b"1"), Form::StateBlob, Some(&at)).unwrap();
        assert_eq!(
            String::from_utf8(doc.clone()).unwrap(),
            r#"{"value":1,"lsn":4,"at":"0000000000000005-000001-wb"}"#
        );
        assert_eq!(decode(&doc).unwrap().at, Some(at));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"lsn\":1}",
            b"{\"lsn\":1,\"value\":1,\"del\":true}",
            b"{\"lsn\":1,\"value_b64\":\"!\"}",
            b"{\"lsn\":1,\"del\":true,\"x\":1}",
            b"{\"lsn\":1,\"del\":true,\"at\":\"yesterday\"}",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Values that are JSON text, and others that must go to base64.
    fn value_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(br#"{"title":"t","done":false,"n":[1,2.5e3]}"#.to_vec()),
            Just(b"\"with \\\"escapes\\\" and \\u00e9\"".to_vec()),
            Just(b"{\"a\":\n1}".to_vec()),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest::proptest! {
        /// `encode` writes exactly what serialising the decoded [`Doc`] writes: `DocOut`
        /// keeps `Doc`'s fields, order and rules.
        #[test]
        fn encoding_is_the_documented_doc(
            key in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..20)),
            value in value_strategy(),
            tombstone in proptest::prelude::any::<bool>(),
            seqno in proptest::prelude::any::<u64>(),
            expiry in proptest::option::of(proptest::prelude::any::<u64>()),
            stamped in proptest::prelude::any::<bool>(),
            chunk_line in proptest::prelude::any::<bool>(),
        ) {
            let mut entry = if tombstone { Entry::tombstone(seqno) } else { Entry::put(seqno, value) };
            entry.expires_at = expiry;
            let at = Stamp::parse("0001700000000000-000042-writer1").unwrap();
            let form = if chunk_line { Form::ChunkLine } else { Form::StateBlob };
            let out = encode(key.as_deref(), &entry, form, stamped.then_some(&at)).unwrap();
            let doc: Doc<'_> = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(serde_json::to_vec(&doc).unwrap(), out.clone());
            let back = decode(&out).unwrap();
            proptest::prop_assert_eq!(back.entry, entry);
            proptest::prop_assert_eq!(back.key, key);
        }
    }
}
