//! Fuzz harness of `fuzz/fuzz_targets/segment_manifest.rs`, replayed by
//! `facade/tests/fuzz_corpus.rs`: any bytes presented as the `MANIFEST` of a segment directory.
//!
//! The directory also holds four fixed, sound segment files (ids 1 to 4: three flushes and
//! their compaction), so a manifest can name real segments, name them wrongly, or name ones
//! that are not there. Checked, for the input as given and with its two checksums recomputed:
//!
//! - `manifest::decode` never panics, and what it accepts re-encodes to the very same bytes;
//! - `verify_dir` and a read-write open succeed exactly when the manifest decodes; a read-only
//!   open never succeeds on a manifest that does not;
//! - an opened tier holds every record, live (matching its file) or fenced, and its point
//!   reads and scans agree with the fixed contents of the live segments, failing only inside
//!   a fenced range;
//! - opening again finds the same segments and fences, and the directory then verifies clean;
//!   a new flush into it reads back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use strata_segment::manifest::{self, Manifest, MANIFEST_NAME, MAX_COUNTER};
use strata_segment::{format, verify_dir, ReadMode, SegmentId, SegmentOptions, SegmentTier};
use strata_tiering::io::{Fs, MemFs};
use strata_tiering::{Entry, Key, KeyRange, LATEST};

/// The directory every input is opened in.
const DIR: &str = "/segments";

/// The fixed segment files, their contents, and the manifests the tier wrote for them.
#[allow(dead_code)] // The manifests are read only by the seed writer.
pub struct Fixture {
    /// `(id, file bytes)` of segments 1 to 4.
    pub files: Vec<(SegmentId, Vec<u8>)>,
    /// What each segment holds, in segment order.
    pub contents: BTreeMap<SegmentId, Vec<(Key, Entry)>>,
    /// The manifest after the three flushes (segments 1, 2, 3).
    pub flushed: Vec<u8>,
    /// The manifest after the compaction (segment 4 only).
    pub compacted: Vec<u8>,
}

fn options(read_only: bool) -> SegmentOptions {
    SegmentOptions {
        read_mode: ReadMode::Read,
        background_compaction: false,
        read_only,
        ..SegmentOptions::default()
    }
}

fn key(text: &str) -> Key {
    Key::new(text).unwrap_or_else(|e| panic!("fixture key: {e}"))
}

/// Builds the fixture once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let fs = MemFs::new();
        let dir = Path::new(DIR);
        let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options(false))
            .unwrap_or_else(|e| panic!("fixture open: {e}"));
        let flushes: Vec<(Vec<(Key, Entry)>, u64)> = vec![
            (
                (b'a'..=b'h')
                    .zip(1..)
                    .map(|(k, seqno)| {
                        (
                            key(&char::from(k).to_string()),
                            Entry::put(seqno, format!("v{seqno}")),
                        )
                    })
                    .collect(),
                8,
            ),
            (
                vec![
                    (key("c"), Entry::put(10, "c10")),
                    (key("d"), Entry::tombstone(11)),
                    (key("e"), Entry::put(12, "")),
                    (key("x"), Entry::put(13, "x13").with_expiry(u64::MAX / 2)),
                ],
                13,
            ),
            (
                vec![
                    (key("a"), Entry::tombstone(22)),
                    (key("b"), Entry::put(20, "b20")),
                    (key("m"), Entry::put(21, "m21")),
                ],
                22,
            ),
        ];
        for (entries, lsn) in flushes {
            tier.ingest(entries, Some(lsn))
                .unwrap_or_else(|e| panic!("fixture ingest: {e}"));
        }
        let read = |name: &str| {
            fs.read_file(&dir.join(name))
                .unwrap_or_else(|| panic!("fixture file {name}"))
        };
        let flushed = read(MANIFEST_NAME);
        let mut files: Vec<(SegmentId, Vec<u8>)> = (1..=3)
            .map(|id| (id, read(&format::file_name(id))))
            .collect();
        tier.compact_all()
            .unwrap_or_else(|e| panic!("fixture compaction: {e}"));
        let compacted = read(MANIFEST_NAME);
        let decoded = manifest::decode(&compacted, &dir.join(MANIFEST_NAME))
            .unwrap_or_else(|e| panic!("fixture manifest: {e}"));
        for record in &decoded.records {
            files.push((record.id, read(&format::file_name(record.id))));
        }
        let mut contents = BTreeMap::new();
        for seg in tier.segments() {
            contents.insert(seg.id(), entries_of(&seg));
        }
        drop(tier);
        // Segments 1 to 3 were compacted away: read them from their saved bytes.
        for (id, bytes) in &files {
            if contents.contains_key(id) {
                continue;
            }
            let path = dir.join(format::file_name(*id));
            fs.write_file(&path, bytes);
            let seg = strata_segment::Segment::open(&fs, &path, ReadMode::Read)
                .unwrap_or_else(|e| panic!("fixture segment {id}: {e}"));
            contents.insert(*id, entries_of(&Arc::new(seg)));
        }
        Fixture {
            files,
            contents,
            flushed,
            compacted,
        }
    })
}

fn entries_of(seg: &Arc<strata_segment::Segment>) -> Vec<(Key, Entry)> {
    seg.iter(&KeyRange::all())
        .unwrap_or_else(|e| panic!("fixture iter: {e}"))
        .map(|item| item.unwrap_or_else(|e| panic!("fixture read: {e}")))
        .collect()
}

/// Runs one input. Panics only on a broken invariant, which is what a fuzzer reports.
pub fn run(data: &[u8]) {
    check(data);
    let resealed = resealed(data);
    if resealed != data {
        check(&resealed);
    }
}

/// The input with its header and trailer checksums recomputed. Best effort.
pub fn resealed(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() >= manifest::HEADER_LEN {
        let crc = crc32fast::hash(&out[..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
    }
    if let Some(end) = out.len().checked_sub(4) {
        let crc = crc32fast::hash(&out[..end]);
        out[end..].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// A fresh directory holding the fixture's segments and `manifest` as its `MANIFEST`.
fn directory(manifest: &[u8]) -> MemFs {
    let fs = MemFs::new();
    let dir = Path::new(DIR);
    fs.create_dir_all(dir)
        .unwrap_or_else(|e| panic!("create the directory: {e}"));
    for (id, bytes) in &fixture().files {
        fs.write_file(&dir.join(format::file_name(*id)), bytes);
    }
    fs.write_file(&dir.join(MANIFEST_NAME), manifest);
    fs
}

fn check(bytes: &[u8]) {
    let dir = Path::new(DIR);
    let decoded = manifest::decode(bytes, &dir.join(MANIFEST_NAME));
    if let Ok(m) = &decoded {
        assert_eq!(
            manifest::encode(m),
            bytes,
            "a manifest that decodes re-encodes to its own bytes"
        );
        let ids: BTreeSet<SegmentId> = m.records.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), m.records.len(), "record ids are unique");
        for r in &m.records {
            assert!(r.id < m.next_segment_id, "ids are below the next id");
            assert!(r.first_key <= r.last_key && r.min_seqno <= r.max_seqno);
        }
    }

    // verify_dir reads the manifest and checks every live segment it names.
    let fs = directory(bytes);
    match (&decoded, verify_dir(&fs, dir)) {
        (Ok(m), Ok(report)) => {
            assert_eq!(report.flushed_lsn, m.flushed_lsn);
            let quarantined = m.records.iter().filter(|r| r.quarantined).count();
            assert_eq!(
                report.quarantined, quarantined,
                "quarantined records counted"
            );
            assert_eq!(
                report.segments + report.problems.len(),
                m.records.len() - quarantined,
                "every live record is a segment or a problem"
            );
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("verify_dir refused a manifest that decodes: {e}"),
        (Err(e), Ok(_)) => panic!("verify_dir accepted a manifest that does not decode: {e}"),
    }

    // A reader beside the owner: fails where a named live file is missing, fences damage.
    let fs = directory(bytes);
    match SegmentTier::open(Arc::new(fs.clone()), dir, options(true)) {
        Ok(tier) => {
            let m = decoded
                .as_ref()
                .unwrap_or_else(|e| panic!("a read-only open accepted a bad manifest: {e}"));
            assert_eq!(tier.flushed_lsn(), m.flushed_lsn);
            check_tier(&tier, m);
        }
        Err(e) => {
            if let Ok(m) = &decoded {
                let all_present = m
                    .records
                    .iter()
                    .all(|r| r.quarantined || fixture().contents.contains_key(&r.id));
                assert!(
                    !all_present,
                    "a read-only open failed on a sound directory: {e}"
                );
            }
        }
    }

    // The owner: repairs what it can, and fails only on a manifest it cannot use.
    let fs = directory(bytes);
    let tier = match (
        SegmentTier::open(Arc::new(fs.clone()), dir, options(false)),
        &decoded,
    ) {
        (Ok(tier), Ok(_)) => tier,
        (Err(_), Err(_)) => return,
        (Ok(_), Err(e)) => panic!("an open accepted a manifest that does not decode: {e}"),
        (Err(e), Ok(_)) => panic!("an open refused a manifest that decodes: {e}"),
    };
    let Ok(m) = &decoded else { return };
    assert_eq!(tier.flushed_lsn(), m.flushed_lsn);
    check_tier(&tier, m);
    let live: Vec<SegmentId> = tier.segments().iter().map(|s| s.id()).collect();
    let fenced: Vec<SegmentId> = tier.quarantined().iter().map(|q| q.id).collect();
    // Unreferenced segment files are gone; so are the live ones that did not match.
    let names = fs.list_dir(dir).unwrap_or_else(|e| panic!("list: {e}"));
    for name in &names {
        if let Some(id) = format::parse_file_name(name) {
            assert!(live.contains(&id), "{name} left behind though not live");
        }
    }
    drop(tier);

    // Opening again finds the same state, and the rewritten manifest verifies clean.
    let tier = SegmentTier::open(Arc::new(fs.clone()), dir, options(false))
        .unwrap_or_else(|e| panic!("a repaired directory reopens: {e}"));
    let again: Vec<SegmentId> = tier.segments().iter().map(|s| s.id()).collect();
    let again_fenced: Vec<SegmentId> = tier.quarantined().iter().map(|q| q.id).collect();
    assert_eq!(again, live, "the same live segments after a reopen");
    assert_eq!(again_fenced, fenced, "the same fences after a reopen");
    assert_eq!(
        tier.flushed_lsn(),
        m.flushed_lsn,
        "the flushed LSN survives a reopen"
    );
    let report = verify_dir(&fs, dir).unwrap_or_else(|e| panic!("verify after open: {e}"));
    assert!(
        report.problems.is_empty(),
        "problems after a repair: {:?}",
        report.problems
    );
    assert_eq!(report.segments, live.len());

    // A new flush goes in under a fresh id and reads back (unless a fence covers it).
    let new_key = key("zz");
    let new_entry = Entry::put(1 << 40, "new");
    let id = match tier.ingest([(new_key.clone(), new_entry.clone())], Some(1 << 40)) {
        Ok(id) => id.unwrap_or_else(|| panic!("an ingest of one entry makes a segment")),
        // A manifest whose counters have no room for one more segment refuses the flush,
        // rather than write a manifest no reader accepts.
        Err(e) if e.to_string().contains("no room") => {
            let room = MAX_COUNTER - 1;
            assert!(
                m.next_segment_id >= room || m.generation >= room - 2,
                "refused with room left: {e}"
            );
            return;
        }
        Err(e) => panic!("ingest into a repaired directory: {e}"),
    };
    assert!(!live.contains(&id) && !fenced.contains(&id), "a fresh id");
    assert!(
        m.records.iter().all(|r| r.id != id),
        "the new id was never used by a record"
    );
    let covered = tier
        .quarantined()
        .iter()
        .any(|q| q.first_key <= new_key && new_key <= q.last_key);
    match tier.get_entry(new_key.as_bytes(), LATEST) {
        Ok(found) => assert_eq!(found, Some(new_entry), "a new flush reads back"),
        Err(e) => assert!(covered, "a read outside every fence failed: {e}"),
    }
    drop(tier);
    let tier = SegmentTier::open(Arc::new(fs), dir, options(false))
        .unwrap_or_else(|e| panic!("reopen after a flush: {e}"));
    assert!(
        tier.segments().iter().any(|s| s.id() == id),
        "the flush survives a reopen"
    );
}

/// Reads of an opened tier agree with the contents of its live segments.
fn check_tier(tier: &SegmentTier, m: &Manifest) {
    let fixture = fixture();
    let live = tier.segments();
    let fences = tier.quarantined();
    let live_ids: BTreeSet<SegmentId> = live.iter().map(|s| s.id()).collect();
    let fence_ids: BTreeSet<SegmentId> = fences.iter().map(|q| q.id).collect();
    assert!(
        live_ids.is_disjoint(&fence_ids),
        "a segment both live and fenced"
    );
    let record_ids: BTreeSet<SegmentId> = m.records.iter().map(|r| r.id).collect();
    assert_eq!(
        live_ids.union(&fence_ids).copied().collect::<BTreeSet<_>>(),
        record_ids,
        "every record is live or fenced"
    );
    for seg in &live {
        let record = m.records.iter().find(|r| r.id == seg.id());
        let record = record.unwrap_or_else(|| panic!("segment {} has no record", seg.id()));
        assert!(!record.quarantined, "a quarantined record came back live");
        assert_eq!(
            seg.file_len(),
            record.file_len,
            "a live segment matches its record"
        );
        assert_eq!(seg.footer_crc(), record.footer_crc);
        assert_eq!(seg.first_key(), Some(record.first_key.as_bytes()));
        assert_eq!(seg.last_key(), Some(record.last_key.as_bytes()));
    }

    // The newest version of each key among the live segments.
    let mut model: BTreeMap<Key, Entry> = BTreeMap::new();
    for id in &live_ids {
        for (k, e) in fixture.contents.get(id).into_iter().flatten() {
            if model.get(k).is_none_or(|old| old.seqno < e.seqno) {
                model.insert(k.clone(), e.clone());
            }
        }
    }
    let covered = |k: &[u8]| {
        fences
            .iter()
            .any(|q| q.first_key.as_bytes() <= k && k <= q.last_key.as_bytes())
    };
    for probe in ["a", "b", "c", "d", "e", "h", "m", "x", "0", "zzz"] {
        match tier.get_entry(probe.as_bytes(), LATEST) {
            Ok(found) => assert_eq!(
                found.as_ref(),
                model.get(probe.as_bytes()),
                "point read of {probe}"
            ),
            Err(e) => assert!(
                covered(probe.as_bytes()),
                "read of {probe} failed outside every fence: {e}"
            ),
        }
    }

    // A scan yields the model up to the first fenced key, then fails.
    let first_fence = fences.iter().map(|q| q.first_key.clone()).min();
    let expected: Vec<(Key, Entry)> = model
        .iter()
        .filter(|(k, _)| first_fence.as_ref().is_none_or(|f| *k < f))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    let mut got = Vec::new();
    let mut failed = false;
    match tier.scan_segments(&KeyRange::all(), LATEST) {
        Ok(items) => {
            for item in items {
                match item {
                    Ok(pair) => got.push(pair),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        Err(_) => failed = true,
    }
    assert_eq!(
        failed,
        first_fence.is_some(),
        "a scan fails exactly when a fence is in range"
    );
    if !failed || !got.is_empty() {
        assert_eq!(
            got, expected,
            "a scan yields the live segments' newest versions"
        );
    }
}

/// Hand-made seed inputs: the manifests the tier wrote, and edited copies of them.
#[allow(dead_code)] // Used by the seed writer in `facade/tests/fuzz_corpus.rs`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let fixture = fixture();
    let path = Path::new("MANIFEST");
    let decode = |bytes: &[u8]| {
        manifest::decode(bytes, path).unwrap_or_else(|e| panic!("seed manifest: {e}"))
    };
    let flushed = decode(&fixture.flushed);
    let compacted = decode(&fixture.compacted);
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("flushed".into(), fixture.flushed.clone()),
        ("compacted".into(), fixture.compacted.clone()),
    ];
    let mut edit = |name: &str, base: &Manifest, change: &dyn Fn(&mut Manifest)| {
        let mut m = base.clone();
        change(&mut m);
        seeds.push((name.into(), manifest::encode(&m)));
    };
    edit("empty", &flushed, &|m| m.records.clear());
    edit("quarantined_middle", &flushed, &|m| {
        m.records[1].quarantined = true
    });
    edit("missing_file", &flushed, &|m| {
        m.records[0].id = 9;
        m.next_segment_id = 10;
    });
    edit("wrong_length", &flushed, &|m| m.records[2].file_len += 1);
    edit("wrong_crc", &compacted, &|m| m.records[0].footer_crc ^= 1);
    edit("wide_fence", &flushed, &|m| {
        m.records[0].last_key = Key::new("zzzz").unwrap_or_else(|e| panic!("{e}"));
    });
    edit("all_four", &flushed, &|m| {
        m.records.extend(compacted.records.iter().cloned());
        m.next_segment_id = 5;
    });
    edit("no_flushed_lsn", &compacted, &|m| m.flushed_lsn = None);
    let mut cut = fixture.flushed.clone();
    cut.truncate(cut.len() - 7);
    seeds.push(("truncated".into(), cut));
    let mut huge_count = fixture.flushed.clone();
    huge_count[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    seeds.push(("hostile_count".into(), resealed(&huge_count)));
    let mut huge_key = fixture.flushed.clone();
    huge_key[manifest::HEADER_LEN + 48..manifest::HEADER_LEN + 52]
        .copy_from_slice(&u32::MAX.to_le_bytes());
    seeds.push(("hostile_key_len".into(), resealed(&huge_key)));
    let mut stale_crc = fixture.compacted.clone();
    stale_crc[20] ^= 0x10;
    seeds.push(("stale_checksum".into(), stale_crc));
    seeds.push(("zeros".into(), vec![0; 52]));
    seeds
}
