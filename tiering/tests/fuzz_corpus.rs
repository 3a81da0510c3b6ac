//! Replays the committed fuzz corpora of the tiering crate's targets (`fuzz/corpus/<target>`)
//! on stable Rust, so every `cargo test` exercises the inputs the fuzzer found interesting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/record_payload.rs"]
mod record_payload;

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
use corpus::{corpus_dir, replay};

#[test]
fn record_payload_corpus_replays_cleanly() {
    replay("record_payload", record_payload::run);
}

/// Writes the seed corpus of `record_payload`: puts and deletes of every criticality, with and
/// without expiry, the probe record, and damaged or hostile copies. Run with
/// `STRATA_WRITE_SEED_CORPUS=1 cargo test -p strata-tiering --test fuzz_corpus` after a format
/// change, and commit the result; without the variable it does nothing.
#[test]
fn write_seed_corpus() {
    if std::env::var_os("STRATA_WRITE_SEED_CORPUS").is_none() {
        return;
    }
    use strata_tiering::record;
    use strata_tiering::{Criticality, Entry, Key};

    let out = corpus_dir("record_payload");
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).unwrap();
    let key = |s: &[u8]| Key::new(s).unwrap();

    let put = record::encode(Criticality::Medium, &key(b"task:1"), &Entry::put(1, "v"));
    write("put_medium", &put);
    write(
        "put_expiry_high",
        &record::encode(
            Criticality::High,
            &key(b"task:2"),
            &Entry::put(1, r#"{"a":1}"#).with_expiry(1_700_000_000_000),
        ),
    );
    write(
        "delete_critical",
        &record::encode(Criticality::Critical, &key(b"k"), &Entry::tombstone(1)),
    );
    write(
        "delete_low_expiry",
        &record::encode(
            Criticality::Low,
            &key(b"\x00\xff"),
            &Entry::tombstone(1).with_expiry(u64::MAX),
        ),
    );
    write(
        "put_empty_value",
        &record::encode(Criticality::Low, &key(b"e"), &Entry::put(1, "")),
    );
    write(
        "put_long_key",
        &record::encode(
            Criticality::Medium,
            &key(&vec![b'k'; strata_tiering::MAX_KEY_LEN]),
            &Entry::put(1, "x"),
        ),
    );
    let probe = record::encode_probe();
    write("probe", &probe);
    write(
        "forged_probe",
        &record::encode(
            Criticality::Medium,
            &key(record::PROBE_KEY),
            &Entry::tombstone(1),
        ),
    );
    // Damage: cuts, unknown header bytes, hostile lengths.
    write("truncated_header", &put[..3]);
    write("truncated_key", &put[..put.len() - 3]);
    let mut huge = put.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    write("hostile_key_len", &huge);
    let mut too_long = put.clone();
    too_long[4..8].copy_from_slice(&(strata_tiering::MAX_KEY_LEN as u32 + 1).to_le_bytes());
    write("key_len_over_max", &too_long);
    let mut zero_key = put.clone();
    zero_key[4..8].copy_from_slice(&0u32.to_le_bytes());
    write("empty_key", &zero_key);
    let mut bad_version = put.clone();
    bad_version[0] = 2;
    write("bad_version", &bad_version);
    let mut bad_flags = put.clone();
    bad_flags[3] = 0x80;
    write("bad_flags", &bad_flags);
    let mut bad_kind = put.clone();
    bad_kind[2] = 7;
    write("bad_kind", &bad_kind);
    let mut delete_with_value = probe.clone();
    delete_with_value.push(b'!');
    write("delete_with_value", &delete_with_value);
    write("truncated_expiry", &[1, 1, 0, 1, 0, 0, 0]);
    write("empty", &[]);
}
