//! Unit tests of the writer and the reader together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use strata_tiering::io::{Fs, MemFs, StdFs};
use strata_tiering::{Entry, Key, KeyRange, LATEST};

use super::*;
use crate::format::{file_name, TEMP_SUFFIX};
use crate::writer::{write_segment, SegmentWriter, WriterOptions};

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn mem() -> (Arc<dyn Fs>, &'static Path) {
    let fs = MemFs::new();
    let dir = Path::new("/seg");
    fs.create_dir_all(dir).unwrap();
    (Arc::new(fs), dir)
}

/// Three versions of every tenth key, one of most others, a tombstone now and then.
fn sample(n: u32) -> Vec<(Key, Entry)> {
    let mut out = Vec::new();
    for i in 0..n {
        let key = k(&format!("key-{i:06}"));
        let versions = if i % 10 == 0 { 3 } else { 1 };
        for v in (0..versions).rev() {
            let seqno = u64::from(i) * 4 + v + 1;
            let entry = if i % 7 == 3 && v == 0 {
                Entry::tombstone(seqno)
            } else if i % 11 == 5 {
                Entry::put(seqno, format!("value-{i}-{v}")).with_expiry(u64::from(i))
            } else {
                Entry::put(seqno, format!("value-{i}-{v}"))
            };
            out.push((key.clone(), entry));
        }
    }
    out
}

fn open(fs: &Arc<dyn Fs>, dir: &Path, id: u64) -> Arc<Segment> {
    Arc::new(Segment::open(fs.as_ref(), &dir.join(file_name(id)), ReadMode::Mmap).unwrap())
}

fn check_contents(seg: &Arc<Segment>, entries: &[(Key, Entry)]) {
    let all: Vec<(Key, Entry)> = seg
        .iter(&KeyRange::all())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(all, entries);
    seg.verify().unwrap();
    for (key, entry) in entries {
        assert_eq!(
            seg.get(key.as_bytes(), entry.seqno).unwrap().as_ref(),
            Some(entry),
            "{key:?}@{}",
            entry.seqno
        );
    }
}

#[test]
fn round_trip_on_a_test_filesystem() {
    let (fs, dir) = mem();
    let entries = sample(2_000);
    let info = write_segment(
        Arc::clone(&fs),
        dir,
        1,
        WriterOptions::default(),
        entries.clone(),
    )
    .unwrap();
    assert_eq!(info.footer.entry_count, entries.len() as u64);
    assert_eq!(info.footer.key_count, 2_000);
    let seg = open(&fs, dir, 1);
    assert!(!seg.is_mapped());
    assert!(seg.block_count() > 10, "{} blocks", seg.block_count());
    assert_eq!(seg.first_key(), Some(&b"key-000000"[..]));
    assert_eq!(seg.last_key(), Some(&b"key-001999"[..]));
    check_contents(&seg, &entries);
    // No temporary file is left behind.
    assert_eq!(fs.list_dir(dir).unwrap(), vec![file_name(1)]);
}

#[test]
fn round_trip_memory_mapped_and_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let entries = sample(500);
    write_segment(
        Arc::clone(&fs),
        tmp.path(),
        9,
        WriterOptions::default(),
        entries.clone(),
    )
    .unwrap();
    let seg = open(&fs, tmp.path(), 9);
    assert!(seg.is_mapped());
    check_contents(&seg, &entries);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(seg.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o400);
    let read = Segment::open(fs.as_ref(), seg.path(), ReadMode::Read).unwrap();
    assert!(!read.is_mapped());
}

#[test]
fn snapshot_reads_and_misses() {
    let (fs, dir) = mem();
    let entries = vec![
        (k("a"), Entry::put(30, "a30")),
        (k("a"), Entry::tombstone(20)),
        (k("a"), Entry::put(10, "a10")),
        (k("c"), Entry::put(5, "c5")),
    ];
    write_segment(Arc::clone(&fs), dir, 1, WriterOptions::default(), entries).unwrap();
    let seg = open(&fs, dir, 1);
    let get = |key: &str, snap| seg.get(key.as_bytes(), snap).unwrap();
    assert_eq!(get("a", LATEST), Some(Entry::put(30, "a30")));
    assert_eq!(get("a", 29), Some(Entry::tombstone(20)));
    assert_eq!(get("a", 19), Some(Entry::put(10, "a10")));
    assert_eq!(get("a", 9), None);
    assert_eq!(get("b", LATEST), None);
    assert_eq!(get("c", 4), None);
    assert_eq!(get("0", LATEST), None);
    assert_eq!(get("d", LATEST), None);
    assert_eq!(seg.get(b"", LATEST).unwrap(), None);
}

#[test]
fn range_iteration_across_blocks() {
    let (fs, dir) = mem();
    let entries = sample(3_000);
    let options = WriterOptions {
        block_size: 512,
        ..WriterOptions::default()
    };
    write_segment(Arc::clone(&fs), dir, 1, options, entries.clone()).unwrap();
    let seg = open(&fs, dir, 1);
    use std::ops::Bound::*;
    let cases = [
        KeyRange::new(Included(k("key-000100")), Excluded(k("key-000200"))),
        KeyRange::new(Excluded(k("key-000100")), Included(k("key-000200"))),
        KeyRange::new(Included(k("key-0001005")), Unbounded),
        KeyRange::new(Unbounded, Excluded(k("key-000000"))),
        KeyRange::prefix(b"key-0029"),
        KeyRange::new(Included(k("z")), Unbounded),
        KeyRange::new(Included(k("key-000200")), Excluded(k("key-000100"))),
    ];
    for range in cases {
        let got: Vec<(Key, Entry)> = seg.iter(&range).unwrap().map(|r| r.unwrap()).collect();
        let want: Vec<(Key, Entry)> = entries
            .iter()
            .filter(|(key, _)| range.contains(key.as_bytes()))
            .cloned()
            .collect();
        assert_eq!(got, want, "{range:?}");
    }
}

#[test]
fn a_large_value_gets_its_own_block() {
    let (fs, dir) = mem();
    let big: Vec<u8> = (0..1usize << 20).map(|i| (i * 7) as u8).collect();
    let entries = vec![
        (k("a"), Entry::put(1, "small")),
        (k("big"), Entry::put(2, big.clone())),
        (k("c"), Entry::put(3, "small")),
    ];
    write_segment(
        Arc::clone(&fs),
        dir,
        1,
        WriterOptions::default(),
        entries.clone(),
    )
    .unwrap();
    let seg = open(&fs, dir, 1);
    assert_eq!(seg.block_count(), 3);
    check_contents(&seg, &entries);
}

#[test]
fn empty_segment_is_valid() {
    let (fs, dir) = mem();
    write_segment(
        Arc::clone(&fs),
        dir,
        1,
        WriterOptions::default(),
        Vec::new(),
    )
    .unwrap();
    let seg = open(&fs, dir, 1);
    assert_eq!(seg.first_key(), None);
    assert_eq!(seg.last_key(), None);
    assert_eq!(seg.get(b"a", LATEST).unwrap(), None);
    assert_eq!(seg.iter(&KeyRange::all()).unwrap().count(), 0);
    seg.verify().unwrap();
}

#[test]
fn out_of_order_input_is_rejected_and_leaves_nothing() {
    let (fs, dir) = mem();
    let cases = [
        vec![(k("b"), Entry::put(1, "x")), (k("a"), Entry::put(2, "x"))],
        vec![(k("a"), Entry::put(1, "x")), (k("a"), Entry::put(2, "x"))],
        vec![(k("a"), Entry::put(1, "x")), (k("a"), Entry::put(1, "y"))],
    ];
    for entries in cases {
        let err =
            write_segment(Arc::clone(&fs), dir, 1, WriterOptions::default(), entries).unwrap_err();
        assert!(matches!(err, SegmentError::OutOfOrder { .. }), "{err}");
        assert!(err.to_string().contains("out of order"), "{err}");
        assert!(fs.list_dir(dir).unwrap().is_empty());
    }
}

#[test]
fn an_abandoned_writer_removes_its_temporary_file() {
    let (fs, dir) = mem();
    let mut writer =
        SegmentWriter::create(Arc::clone(&fs), dir, 4, WriterOptions::default()).unwrap();
    writer.add(&k("a"), &Entry::put(1, "v")).unwrap();
    assert_eq!(
        fs.list_dir(dir).unwrap(),
        vec![format!("{}{TEMP_SUFFIX}", file_name(4))]
    );
    drop(writer);
    assert!(fs.list_dir(dir).unwrap().is_empty());
}

#[test]
fn every_bit_flip_is_caught_by_open_or_verify() {
    let (fs, dir) = mem();
    let entries = vec![
        (k("apple"), Entry::put(3, "red")),
        (k("apple"), Entry::tombstone(2)),
        (k("kiwi"), Entry::put(4, "green").with_expiry(99)),
        (k("plum"), Entry::put(1, "purple")),
    ];
    let options = WriterOptions {
        block_size: 256,
        ..WriterOptions::default()
    };
    write_segment(Arc::clone(&fs), dir, 1, options, entries).unwrap();
    let path = dir.join(file_name(1));
    let mem = MemFs::new();
    mem.create_dir_all(dir).unwrap();
    let good = {
        let file = fs.open_read(&path).unwrap();
        let mut buf = vec![0u8; file.len().unwrap() as usize];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    };
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        mem.write_file(&path, &bad);
        let caught = match Segment::open(&mem, &path, ReadMode::Read) {
            Err(e) => e.is_corruption(),
            Ok(seg) => seg.verify().is_err(),
        };
        assert!(caught, "bit {bit} (byte {}) not caught", bit / 8);
    }
}

#[test]
fn truncated_and_padded_files_are_rejected() {
    let (fs, dir) = mem();
    write_segment(
        Arc::clone(&fs),
        dir,
        1,
        WriterOptions::default(),
        sample(50),
    )
    .unwrap();
    let path = dir.join(file_name(1));
    let mem = MemFs::new();
    mem.create_dir_all(dir).unwrap();
    let file = fs.open_read(&path).unwrap();
    let mut good = vec![0u8; file.len().unwrap() as usize];
    file.read_exact_at(&mut good, 0).unwrap();
    for len in [0, 1, 127, 128, good.len() - 1] {
        mem.write_file(&path, &good[..len]);
        assert!(Segment::open(&mem, &path, ReadMode::Read).is_err(), "{len}");
    }
    let mut padded = good.clone();
    padded.push(0);
    mem.write_file(&path, &padded);
    assert!(Segment::open(&mem, &path, ReadMode::Read).is_err());
    // A good file under another segment's name is rejected too.
    let other = dir.join(file_name(2));
    mem.write_file(&other, &good);
    let err = Segment::open(&mem, &other, ReadMode::Read).unwrap_err();
    assert!(err.to_string().contains("segment 1"), "{err}");
}

/// Point reads search a block's directory by key prefixes taken past the head its keys share,
/// without checking a key against that head first; a key that lacks the head must still read
/// as absent, whichever block it lands in, before and after the block was first checked.
#[test]
fn point_reads_of_keys_outside_a_blocks_shared_head() {
    let (fs, dir) = mem();
    let mut entries = Vec::new();
    for (h, head) in ["alpha/", "beta/", "beta/x", "gamma/"].iter().enumerate() {
        for i in 0..40u64 {
            let seqno = h as u64 * 100 + i + 1;
            entries.push((k(&format!("{head}{i:04}")), Entry::put(seqno, "v")));
        }
    }
    let options = WriterOptions {
        block_size: 256,
        ..WriterOptions::default()
    };
    write_segment(Arc::clone(&fs), dir, 1, options, entries.clone()).unwrap();
    let seg = open(&fs, dir, 1);
    assert!(seg.block_count() > 8, "the heads must span several blocks");
    let absent = [
        "alpha/",
        "alpha/00",
        "alpha/00015",
        "alpha/0040",
        "alpha/9",
        "alphb",
        "al",
        "b",
        "beta",
        "beta/",
        "beta/0039x",
        "beta/w",
        "beta/x",
        "beta/x0040",
        "beta/y",
        "g",
        "gamma/0",
        "gamma/0039/",
        "alpha/\u{0}",
        "beta/\u{ff}",
    ];
    for _ in 0..2 {
        for (key, entry) in &entries {
            assert_eq!(
                seg.get(key.as_bytes(), LATEST).unwrap().as_ref(),
                Some(entry)
            );
        }
        for key in absent {
            assert_eq!(seg.get(key.as_bytes(), LATEST).unwrap(), None, "{key:?}");
            let block = seg.block_for(key.as_bytes(), LATEST);
            let found = seg.find_in(block, key.as_bytes(), LATEST).unwrap();
            assert!(found.is_none(), "{key:?} found in block {block}");
        }
    }
}
