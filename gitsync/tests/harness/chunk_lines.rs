//! Fuzz harness shared by `fuzz/fuzz_targets/chunk_lines.rs` and the corpus replay test: any
//! bytes presented as a chunk file (split into lines as the reader splits it), as one chunk
//! line, or as a state blob decode to a document or to an error, never a panic. A decoded
//! document re-encodes to one that decodes to the same document, and re-encoding that gives
//! the same bytes again; a chunk line stays one line. The input also drives the encoder: a key
//! and a value cut from it come back exactly, in both forms.

use strata_gitsync::codec::{self, Document, Form};
use strata_gitsync::hlc::{Hlc, Stamp};
use strata_tiering::{Entry, EntryKind, Value};

/// Lines decoded per input at most, so a file of empty objects cannot stall the fuzzer.
const MAX_LINES: usize = 256;

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    check_document(data, Form::StateBlob);
    check_document(data, Form::ChunkLine);
    for line in data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .take(MAX_LINES)
    {
        if line.len() != data.len() {
            check_document(line, Form::ChunkLine);
        }
    }
    check_encoder(data);
}

fn encode(document: &Document, form: Form) -> Vec<u8> {
    codec::encode(
        document.key.as_deref(),
        &document.entry,
        form,
        document.at.as_ref(),
    )
    .unwrap_or_else(|e| panic!("a decoded document re-encodes: {e}"))
}

fn check_document(bytes: &[u8], form: Form) {
    let Ok(document) = codec::decode(bytes) else {
        return;
    };
    if let EntryKind::Value(value) = &document.entry.kind {
        // A `value` field holds one JSON text, kept verbatim; `value_b64` any bytes. Neither
        // can hold more than the document does.
        assert!(
            value.len() <= bytes.len(),
            "a value of {} bytes from a document of {}: {:?}",
            value.len(),
            bytes.len(),
            String::from_utf8_lossy(bytes)
        );
    }
    let encoded = encode(&document, form);
    if form == Form::ChunkLine {
        assert!(
            !encoded.contains(&b'\n') && !encoded.contains(&b'\r'),
            "a chunk line with a line break: {}",
            String::from_utf8_lossy(&encoded)
        );
    }
    let again = codec::decode(&encoded).unwrap_or_else(|e| {
        panic!(
            "a re-encoded document decodes: {e}: {}",
            String::from_utf8_lossy(&encoded)
        )
    });
    assert_eq!(again, document, "a document survives re-encoding");
    assert_eq!(encode(&again, form), encoded, "re-encoding is stable");
}

/// Cuts a change out of `data` (one control byte, a key, a value), encodes it in both forms and
/// reads it back: keys and values of any bytes come back exactly.
fn check_encoder(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let key_len = usize::from(control & 0x0F).min(rest.len());
    let (key, value) = rest.split_at(key_len);
    let key = (key_len > 0).then_some(key);
    let seqno = u64::from(control) * 0x0101_0101_0101;
    let mut entry = if control & 0x80 != 0 {
        Entry::tombstone(seqno)
    } else {
        Entry::put(seqno, Value::from(value))
    };
    if control & 0x40 != 0 {
        entry = entry.with_expiry(u64::MAX - seqno);
    }
    let at = (control & 0x20 != 0).then(|| Stamp {
        hlc: Hlc {
            ms: seqno,
            count: u32::from(control),
        },
        writer: "w1".into(),
    });
    for form in [Form::StateBlob, Form::ChunkLine] {
        let encoded = codec::encode(key, &entry, form, at.as_ref())
            .unwrap_or_else(|e| panic!("any change encodes: {e}"));
        if form == Form::ChunkLine {
            assert!(
                !encoded.contains(&b'\n') && !encoded.contains(&b'\r'),
                "a chunk line with a line break"
            );
        }
        let document = codec::decode(&encoded).unwrap_or_else(|e| {
            panic!(
                "an encoded change decodes: {e}: {}",
                String::from_utf8_lossy(&encoded)
            )
        });
        assert_eq!(document.key.as_deref(), key, "the key comes back");
        assert_eq!(document.entry, entry, "the entry comes back exactly");
        assert_eq!(document.at, at, "the origin comes back");
    }
}
