//! Replays the committed fuzz corpora of the gitsync crate's targets (`fuzz/corpus/<target>`)
//! on stable Rust, so every `cargo test` exercises the inputs the fuzzer found interesting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/chunk_lines.rs"]
mod chunk_lines;
#[path = "harness/key_names.rs"]
mod key_names;
#[path = "harness/pack_read.rs"]
mod pack_read;

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
use corpus::{corpus_dir, replay};

#[test]
fn chunk_lines_corpus_replays_cleanly() {
    replay("chunk_lines", chunk_lines::run);
}

#[test]
fn key_names_corpus_replays_cleanly() {
    replay("key_names", key_names::run);
}

#[test]
fn pack_read_corpus_replays_cleanly() {
    replay("pack_read", pack_read::run);
}

/// Writes the seed corpus of `pack_read`: the index and pack of every pack a small store
/// writes (commit packs, a fold's, a merge's with deltas and compressed objects), and damaged
/// copies of one. Run with `STRATA_WRITE_SEED_CORPUS=1`, like `write_seed_corpus`.
#[test]
fn write_pack_read_seed_corpus() {
    if std::env::var_os("STRATA_WRITE_SEED_CORPUS").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("cold.git");
    let options = strata_gitsync::ColdOptions {
        keep_chunks: 2,
        writer_id: Some("seed".into()),
        max_packs: 4,
        ..Default::default()
    };
    let clock = std::sync::Arc::new(strata_tiering::clock::ManualClock::new(1_700_000_000_000));
    let store = strata_gitsync::ColdStore::open(&repo, options, clock).unwrap();
    let mut seqno = 0;
    let mut seeds = Vec::new();
    let collect = |seeds: &mut Vec<(String, Vec<u8>)>| {
        for entry in std::fs::read_dir(repo.join("objects/pack")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pack") {
                let idx = std::fs::read(path.with_extension("idx")).unwrap();
                let pack = std::fs::read(&path).unwrap();
                let name = path.file_stem().unwrap().to_string_lossy()[5..17].to_owned();
                seeds.push((name, pack_read::input(&idx, &pack)));
            }
        }
    };
    for batch in 0..9u64 {
        let changes: Vec<_> = (0..6u64)
            .map(|i| {
                seqno += 1;
                let key = strata_tiering::Key::new(format!("k{}", (batch * 5 + i) % 11)).unwrap();
                let value = if i == 0 {
                    vec![b'x'; 2000]
                } else {
                    format!("{{\"n\":{seqno}}}").into_bytes()
                };
                strata_tiering::Change::put(key, seqno, value)
            })
            .collect();
        store
            .commit(&changes, strata_gitsync::Trigger::Manual, None)
            .unwrap();
        collect(&mut seeds);
    }
    seeds.sort();
    seeds.dedup();
    let (_, first) = seeds[0].clone();
    seeds.push(("truncated".into(), first[..first.len() / 2].to_vec()));
    let mut flipped = first.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    seeds.push(("flipped".into(), flipped));
    seeds.push(("empty".into(), Vec::new()));
    corpus::write_seeds("pack_read", seeds);
}

/// Writes the seed corpora of `chunk_lines` and `key_names`: documents as the store writes
/// them, chunk files, damaged and hostile documents; keys that try to confuse git, and names
/// in and out of canonical form. Run with
/// `STRATA_WRITE_SEED_CORPUS=1 cargo test -p strata-gitsync --test fuzz_corpus` after a
/// format change, and commit the result; without the variable it does nothing.
#[test]
fn write_seed_corpus() {
    if std::env::var_os("STRATA_WRITE_SEED_CORPUS").is_none() {
        return;
    }
    use strata_gitsync::codec::{self, Form};
    use strata_gitsync::Stamp;
    use strata_tiering::Entry;

    let out = corpus_dir("chunk_lines");
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).unwrap();
    let line =
        |key: &[u8], entry: &Entry| codec::encode(Some(key), entry, Form::ChunkLine, None).unwrap();
    let json_put = line(b"task:1", &Entry::put(42, r#"{"title":"write docs"}"#));
    write("json_put", &json_put);
    write(
        "string_put",
        &line(b"k", &Entry::put(1, "\"just a string\"")),
    );
    write(
        "binary_put",
        &line(b"k", &Entry::put(2, &b"\xff\x00not json"[..])),
    );
    write(
        "binary_key_expiry",
        &line(
            &[0xFF, 0, 1],
            &Entry::put(3, "12").with_expiry(1_700_000_000_000),
        ),
    );
    write("delete", &line(b"gone", &Entry::tombstone(u64::MAX)));
    let at = Stamp::parse("0001700000000000-000001-wb").unwrap();
    write(
        "state_blob_with_origin",
        &codec::encode(
            None,
            &Entry::put(4, "{\"a\":\n [1, 2.5e3, null, true]}"),
            Form::StateBlob,
            Some(&at),
        )
        .unwrap(),
    );
    let mut chunk = Vec::new();
    for (i, value) in ["1", "\"two\"", "[3]", "{\"four\":4}", "not json"]
        .iter()
        .enumerate()
    {
        chunk.extend(line(
            format!("key:{i}").as_bytes(),
            &Entry::put(i as u64 + 1, *value),
        ));
        chunk.push(b'\n');
    }
    chunk.extend(line(b"key:0", &Entry::tombstone(9)));
    chunk.push(b'\n');
    write("chunk_file", &chunk);
    // Hand-written documents the store does not write but may read.
    write(
        "spaced",
        br#" { "key" : "a" , "value" : [ 1 , 2 ] , "lsn" : 7 } "#,
    );
    write(
        "key_b64_utf8",
        br#"{"key_b64":"dGFzazox","value_b64":"","lsn":0}"#,
    );
    write(
        "escaped_key",
        br#"{"key":"\u0000\ud83d\ude00\n","del":true,"lsn":5,"expires_at":null}"#,
    );
    write(
        "plus_in_stamp",
        br#"{"value":1,"lsn":4,"at":"+000000000000005-000001-wb"}"#,
    );
    write("crlf_value", b"{\"key\":\"k\",\"value\":[1,\r2],\"lsn\":1}");
    // Malformed: every one must be an error.
    write("empty_object", b"{}");
    write(
        "both_keys",
        br#"{"key":"a","key_b64":"YQ==","del":true,"lsn":1}"#,
    );
    write(
        "value_and_del",
        br#"{"key":"a","value":1,"del":true,"lsn":1}"#,
    );
    write("bad_base64", br#"{"key":"a","value_b64":"!","lsn":1}"#);
    write("unknown_field", br#"{"key":"a","del":true,"lsn":1,"x":1}"#);
    write("bad_stamp", br#"{"value":1,"lsn":1,"at":"yesterday"}"#);
    write(
        "lsn_overflow",
        br#"{"key":"a","del":true,"lsn":18446744073709551616}"#,
    );
    write("null_value", br#"{"key":"a","value":null,"lsn":1}"#);
    write(
        "duplicate_field",
        br#"{"key":"a","del":true,"lsn":1,"lsn":2}"#,
    );
    write(
        "deep_nesting",
        &[
            b"{\"key\":\"a\",\"lsn\":1,\"value\":".as_slice(),
            &[b'['; 200],
            &[b']'; 200],
            b"}",
        ]
        .concat(),
    );
    write("truncated", &json_put[..json_put.len() / 2]);
    write("not_utf8", b"{\"key\":\"\xff\",\"del\":true,\"lsn\":1}");

    let out = corpus_dir("key_names");
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).unwrap();
    let keys: &[(&str, &[u8])] = &[
        ("plain", b"task-1_a"),
        ("colon", b"task:1"),
        ("dot", b"."),
        ("dotdot", b".."),
        ("dot_git", b".git"),
        ("dot_git_upper", b".GIT"),
        ("git_tilde", b"git~1"),
        ("traversal", b"../../etc/passwd"),
        ("backslash", b"..\\..\\x"),
        ("trailing_dot", b"trailing."),
        ("inner_dot", b"a.b"),
        ("zero_width", "\u{200C}.git".as_bytes()),
        ("nul", b"nul\0inside"),
        ("binary", b"\xff\xfe\x00\x80"),
        ("percent", b"%2E"),
        ("canonical_name", b"task%3A1"),
        ("lower_hex_name", b"task%3a1"),
        ("cut_escape_name", b"abc%4"),
        (
            "hashed_name",
            b"abc~0123456789abcdef0123456789abcdef01234567",
        ),
    ];
    for (name, key) in keys {
        write(name, key);
    }
    write("long_plain", &[b'a'; 300]);
    write("long_escaped", &[0xE2; 120]);
    // Escaped length lands the cut just inside a `%XX` triple.
    let mut straddle = vec![b'a'; 149];
    straddle.extend_from_slice(&[b':'; 40]);
    write("long_straddle", &straddle);
    write("exactly_plain_limit", &[b'b'; 200]);
    write("one_over_plain_limit", &[b'b'; 201]);
}
