//! Corruption: a segment whose checksum fails is moved to `quarantine/`, reported by `health`,
//! never returns wrong data, and everything else keeps being served. Its key range stays fenced
//! until the owner has rebuilt it and released the quarantine, across reopens too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_segment::{SegmentError, SegmentOptions, SegmentTier, QUARANTINE_DIR};
use strata_tiering::io::{Fs, MemFs, StdFs};
use strata_tiering::{Entry, ErrorKind, Key, KeyRange, Tier, LATEST};

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn options() -> SegmentOptions {
    SegmentOptions {
        background_compaction: false,
        ..SegmentOptions::default()
    }
}

/// Three segments with disjoint key ranges: `a…`, `m…` and `x…`, 200 keys each.
fn fill(tier: &SegmentTier) -> BTreeMap<Key, Entry> {
    let mut model = BTreeMap::new();
    for (n, prefix) in ["a", "m", "x"].iter().enumerate() {
        let entries: Vec<(Key, Entry)> = (0..200u64)
            .map(|i| {
                let seqno = n as u64 * 1000 + i + 1;
                (
                    k(&format!("{prefix}{i:04}")),
                    Entry::put(seqno, format!("value {prefix}{i}")),
                )
            })
            .collect();
        model.extend(entries.iter().cloned());
        tier.ingest(entries, None).unwrap();
    }
    model
}

fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x5A;
    file.write_at(&byte, offset).unwrap();
}

#[test]
fn a_damaged_block_is_quarantined_fenced_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let tier = SegmentTier::open(Arc::clone(&fs), dir.path(), options()).unwrap();
    let model = fill(&tier);
    let middle = tier.segments()[1].clone();
    assert!(middle.is_mapped());
    let path: PathBuf = middle.path().to_owned();
    // Damage the first data block of the `m` segment in place, under the live mapping.
    flip_byte(&path, 100);

    let err = tier.get(b"m0000", LATEST).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    let message = format!("{:?}", std::error::Error::source(&err));
    assert!(message.contains("00000000000000000002.seg"), "{message}");
    assert!(!path.exists(), "moved out of the live directory");
    assert!(dir
        .path()
        .join(QUARANTINE_DIR)
        .join("00000000000000000002.seg")
        .exists());
    let health = tier.health();
    assert!(!health.is_healthy());
    assert!(health.to_string().contains("quarantined"), "{health}");

    // Keys in the fenced range fail; never a wrong or stale answer.
    for key in ["m0000", "m0150", "m0100x"] {
        match tier.get_entry(key.as_bytes(), LATEST) {
            Err(SegmentError::Quarantined { .. }) => {}
            other => panic!("{key}: expected a quarantine error, got {other:?}"),
        }
    }
    // Everything else is served.
    for (key, entry) in model
        .iter()
        .filter(|(key, _)| !key.as_bytes().starts_with(b"m"))
    {
        assert_eq!(
            tier.get(key.as_bytes(), LATEST).unwrap().as_ref(),
            Some(entry)
        );
    }
    let outside = KeyRange::prefix(b"x");
    assert_eq!(
        tier.scan(&outside, LATEST)
            .unwrap()
            .filter(|r| r.is_ok())
            .count(),
        200
    );
    // A scan across the fence yields what lies before it, then an error.
    let items: Vec<_> = tier.scan(&KeyRange::all(), LATEST).unwrap().collect();
    assert_eq!(items.len(), 201);
    assert!(items[..200].iter().all(|r| r.is_ok()));
    assert!(items[200].is_err());

    // The fence survives a reopen.
    drop(tier);
    let tier = SegmentTier::open(Arc::clone(&fs), dir.path(), options()).unwrap();
    assert_eq!(tier.quarantined().len(), 1);
    assert!(tier.get(b"m0001", LATEST).is_err());

    // The owner rebuilds the lost versions (here from the model) and releases the fence.
    let rebuilt: Vec<(Key, Entry)> = model
        .iter()
        .filter(|(key, _)| key.as_bytes().starts_with(b"m"))
        .map(|(key, e)| (key.clone(), e.clone()))
        .collect();
    tier.ingest(rebuilt, None).unwrap();
    tier.release_quarantine(2).unwrap();
    assert!(tier.health().is_healthy(), "{}", tier.health());
    let all: BTreeMap<Key, Entry> = tier
        .scan(&KeyRange::all(), LATEST)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(all, model);
    assert!(matches!(
        tier.release_quarantine(2),
        Err(SegmentError::NotQuarantined { id: 2 })
    ));
}

#[test]
fn a_version_newer_than_the_quarantined_segment_is_still_served() {
    let mem = MemFs::new();
    let tier = SegmentTier::open(Arc::new(mem.clone()), "/s", options()).unwrap();
    tier.ingest(
        vec![(k("a"), Entry::put(1, "a1")), (k("z"), Entry::put(2, "z2"))],
        None,
    )
    .unwrap();
    tier.ingest(vec![(k("b"), Entry::put(5, "b5"))], None)
        .unwrap();
    // Damage segment 1 and let verify find it after a reopen (through the seam the tier reads
    // each segment into memory once; what it serves is what it checks).
    drop(tier);
    let seg = Path::new("/s/00000000000000000001.seg");
    let mut bytes = mem.read_file(seg).unwrap();
    bytes[20] ^= 1;
    mem.write_file(seg, &bytes);
    let tier = SegmentTier::open(Arc::new(mem.clone()), "/s", options()).unwrap();
    assert_eq!(tier.verify().unwrap(), vec![1]);
    // `b` lies inside the fenced range a..=z, but its version (seqno 5) is newer than anything
    // segment 1 held (seqnos 1..=2), so nothing in it could have shadowed b5.
    assert_eq!(tier.get(b"b", LATEST).unwrap(), Some(Entry::put(5, "b5")));
    assert!(tier.get(b"c", LATEST).is_err());
    // A snapshot older than everything the segment held cannot have seen it either.
    assert_eq!(tier.get(b"a", 0).unwrap(), None);
}

#[test]
fn damage_found_at_open_quarantines_and_the_rest_opens() {
    let fs = MemFs::new();
    let dir = Path::new("/s");
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    let model = fill(&tier);
    drop(tier);
    // Break the footer of the `x` segment: found as soon as the directory is opened.
    let seg = dir.join("00000000000000000003.seg");
    let mut bytes = fs.read_file(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xFF;
    fs.write_file(&seg, &bytes);
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    let quarantined = tier.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].id, 3);
    assert!(
        quarantined[0].reason.contains("footer"),
        "{}",
        quarantined[0].reason
    );
    assert_eq!(quarantined[0].first_key, k("x0000"));
    assert!(fs.read_file(&seg).is_none());
    assert!(fs
        .read_file(&dir.join(QUARANTINE_DIR).join("00000000000000000003.seg"))
        .is_some());
    for (key, entry) in &model {
        let got = tier.get(key.as_bytes(), LATEST);
        if key.as_bytes().starts_with(b"x") {
            assert!(got.is_err());
        } else {
            assert_eq!(got.unwrap().as_ref(), Some(entry));
        }
    }
    // A missing segment file is treated the same way.
    drop(tier);
    fs.remove_file(&dir.join("00000000000000000001.seg"))
        .unwrap();
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    assert_eq!(tier.quarantined().len(), 2);
    assert!(tier.get(b"a0001", LATEST).is_err());
    assert!(tier.get(b"m0001", LATEST).is_ok());
}

#[test]
fn damage_met_by_a_compaction_quarantines_that_input_only() {
    let fs = MemFs::new();
    let dir = Path::new("/s");
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    fill(&tier);
    let seg = dir.join("00000000000000000001.seg");
    let mut bytes = fs.read_file(&seg).unwrap();
    bytes[2000] ^= 0x01;
    fs.write_file(&seg, &bytes);
    // The tier read segment 1 at ingest; reopen so it sees the damaged bytes.
    drop(tier);
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    let err = tier.compact_all().unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!(tier.quarantined().len(), 1);
    assert_eq!(tier.segments().len(), 2);
    // The next compaction merges what is left.
    let report = tier.compact_all().unwrap().unwrap();
    assert_eq!(report.inputs, vec![2, 3]);
    assert!(
        !report.bottom,
        "the quarantined segment may hold older versions"
    );
    assert_eq!(
        tier.get(b"m0005", LATEST).unwrap().map(|e| e.seqno),
        Some(1006)
    );
}

/// Every byte of a small segment, damaged in turn: each read either returns exactly the right
/// entry or fails; none ever returns a different one.
#[test]
fn no_byte_of_damage_ever_returns_wrong_data() {
    let fs = MemFs::new();
    let dir = Path::new("/s");
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options()).unwrap();
    let entries: Vec<(Key, Entry)> = vec![
        (k("apple"), Entry::put(9, "red")),
        (k("apple"), Entry::tombstone(4)),
        (k("kiwi"), Entry::put(7, "green").with_expiry(5)),
        (k("plum"), Entry::put(3, "purple")),
    ];
    tier.ingest(entries.clone(), Some(9)).unwrap();
    drop(tier);
    let seg = dir.join("00000000000000000001.seg");
    let good = fs.read_file(&seg).unwrap();
    let probes = [
        ("apple", LATEST),
        ("apple", 5),
        ("kiwi", LATEST),
        ("plum", LATEST),
        ("pear", LATEST),
    ];
    let truth = |key: &str, snapshot| {
        entries
            .iter()
            .find(|(k2, e)| k2.as_bytes() == key.as_bytes() && e.seqno <= snapshot)
            .map(|(_, e)| e.clone())
    };
    for at in 0..good.len() {
        let disk = fs.crash(strata_tiering::io::CrashMode::DropUnsynced);
        let mut bad = good.clone();
        bad[at] ^= 0xA5;
        disk.write_file(&seg, &bad);
        let tier = SegmentTier::open(Arc::new(disk.clone()), dir, options()).unwrap();
        for (key, snapshot) in probes {
            if let Ok(got) = tier.get(key.as_bytes(), snapshot) {
                assert_eq!(got, truth(key, snapshot), "byte {at}: {key}@{snapshot}");
            }
        }
        // Items up to the first error must be right; after an error the scan ends.
        for (key, entry) in tier
            .scan(&KeyRange::all(), LATEST)
            .unwrap()
            .map_while(Result::ok)
        {
            let key = std::str::from_utf8(key.as_bytes()).unwrap().to_owned();
            assert_eq!(Some(entry), truth(&key, LATEST), "byte {at}: scan");
        }
        // Whatever the reads did or did not meet, a full check finds the damage.
        tier.verify().unwrap();
        assert!(
            !tier.health().is_healthy(),
            "byte {at}: damage went unnoticed"
        );
    }
}
