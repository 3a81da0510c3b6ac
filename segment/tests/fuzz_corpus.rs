//! Replays the committed fuzz corpus of `fuzz/corpus/segment_reader` on stable Rust, so every
//! `cargo test` exercises the inputs the fuzzer found interesting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/segment_reader.rs"]
mod harness;

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;

#[test]
fn segment_reader_corpus_replays_cleanly() {
    corpus::replay("segment_reader", harness::run);
}

/// Writes the seed corpus: valid segments and manifests of several shapes, and damaged copies.
/// Run with `STRATA_WRITE_SEED_CORPUS=1 cargo test -p strata-segment --test fuzz_corpus` after
/// a format change, and commit the result; without the variable it does nothing.
#[test]
fn write_seed_corpus() {
    if std::env::var_os("STRATA_WRITE_SEED_CORPUS").is_none() {
        return;
    }
    use std::sync::Arc;
    use strata_segment::{write_segment, WriterOptions};
    use strata_tiering::io::{Fs, MemFs};
    use strata_tiering::{Entry, Key};

    let fs = MemFs::new();
    let dir = std::path::Path::new("/seed");
    fs.create_dir_all(dir).unwrap();
    let key = |s: &str| Key::new(s).unwrap();
    let small_blocks = WriterOptions {
        block_size: 256,
        ..WriterOptions::default()
    };
    type Shape = (&'static str, WriterOptions, Vec<(Key, Entry)>);
    let shapes: Vec<Shape> = vec![
        ("empty", WriterOptions::default(), vec![]),
        (
            "one",
            WriterOptions::default(),
            vec![(key("k"), Entry::put(1, "v"))],
        ),
        (
            "versions",
            WriterOptions::default(),
            vec![
                (key("a"), Entry::put(9, "a9").with_expiry(1_700_000_000_000)),
                (key("a"), Entry::tombstone(5)),
                (key("a"), Entry::put(2, "a2")),
                (key("b"), Entry::put(7, "")),
            ],
        ),
        (
            "blocks",
            small_blocks,
            (0..60)
                .map(|i| {
                    (
                        key(&format!("key-{i:03}")),
                        Entry::put(i + 1, format!("value {i}")),
                    )
                })
                .collect(),
        ),
    ];
    let out = corpus::corpus_dir("segment_reader");
    std::fs::create_dir_all(&out).unwrap();
    for (id, (name, options, entries)) in shapes.into_iter().enumerate() {
        let id = id as u64 + 1;
        let info = write_segment(Arc::new(fs.clone()), dir, id, options, entries).unwrap();
        let mut bytes = fs.read_file(&info.path).unwrap();
        // The harness presents every input as segment 1.
        let footer_at = bytes.len() - 128;
        bytes[footer_at + 112..footer_at + 120].copy_from_slice(&1u64.to_le_bytes());
        let crc = crc32fast::hash(&bytes[footer_at..footer_at + 124]);
        bytes[footer_at + 124..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(out.join(name), &bytes).unwrap();
        if bytes.len() > 200 {
            let mut flipped = bytes.clone();
            flipped[10] ^= 0x40;
            std::fs::write(out.join(format!("{name}_flipped_block")), &flipped).unwrap();
            std::fs::write(
                out.join(format!("{name}_truncated")),
                &bytes[..bytes.len() - 1],
            )
            .unwrap();
        }
    }
    // Sound checksums around hostile counts and lengths: a claimed 2^40 blocks, and an index
    // record claiming a 4 GiB key.
    let one = std::fs::read(out.join("one")).unwrap();
    let footer_at = one.len() - 128;
    let reseal_footer = |bytes: &mut Vec<u8>| {
        let crc = crc32fast::hash(&bytes[footer_at..footer_at + 124]);
        bytes[footer_at + 124..].copy_from_slice(&crc.to_le_bytes());
    };
    let mut many_blocks = one.clone();
    many_blocks[footer_at + 64..footer_at + 72].copy_from_slice(&(1u64 << 40).to_le_bytes());
    reseal_footer(&mut many_blocks);
    std::fs::write(out.join("hostile_block_count"), &many_blocks).unwrap();
    let data_len = u64::from_le_bytes(one[footer_at + 56..footer_at + 64].try_into().unwrap());
    let index_len = u64::from_le_bytes(one[footer_at + 72..footer_at + 80].try_into().unwrap());
    let (index_at, index_end) = (data_len as usize, (data_len + index_len) as usize);
    let mut huge_key = one.clone();
    // The first index record follows the 4-byte first-key length and the 1-byte first key.
    let record_key_len = index_at + 4 + 1 + 20;
    huge_key[record_key_len..record_key_len + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32fast::hash(&huge_key[index_at..index_end]);
    huge_key[footer_at + 88..footer_at + 92].copy_from_slice(&crc.to_le_bytes());
    reseal_footer(&mut huge_key);
    std::fs::write(out.join("hostile_index_key_len"), &huge_key).unwrap();

    let manifest = strata_segment::manifest::Manifest {
        flushed_lsn: Some(42),
        next_segment_id: 8,
        generation: 3,
        records: vec![strata_segment::manifest::SegmentRecord {
            id: 7,
            file_len: 4096,
            min_seqno: 1,
            max_seqno: 9,
            entry_count: 12,
            footer_crc: 0x1234_5678,
            quarantined: true,
            first_key: key("a"),
            last_key: key("z"),
        }],
    };
    std::fs::write(
        out.join("manifest"),
        strata_segment::manifest::encode(&manifest),
    )
    .unwrap();
    std::fs::write(out.join("zeros"), [0u8; 200]).unwrap();
    std::fs::write(out.join("short"), b"STRATASG").unwrap();
}
