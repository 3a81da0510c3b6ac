//! Torn tails: for each of the last three records, cut the log at every byte offset inside
//! it, and also pad the cut with zeros and with garbage. Recovery returns exactly the complete
//! batches, never panics and never invents a record. A file that was preallocated says so in
//! its header, and for it alone zeros from a batch boundary to the end are a clean end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use strata_wal::{Error, Log, MemFs, RecoveryMode, SyncPolicy, Wal};

/// Record sizes; the last two records form one batch.
const LENS: [usize; 7] = [40, 7, 100, 0, 33, 64, 18];
const BATCHES: [&[usize]; 6] = [&[0], &[1], &[2], &[3], &[4], &[5, 6]];

fn build(preallocate: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let fs = MemFs::new();
    let mut options = common::options(SyncPolicy::Always, RecoveryMode::PointInTime);
    options.preallocate = preallocate;
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), common::dir(), options).unwrap();
    let records: Vec<Vec<u8>> = LENS
        .iter()
        .enumerate()
        .map(|(i, &n)| common::payload(i as u64, n))
        .collect();
    for batch in BATCHES {
        let refs: Vec<&[u8]> = batch.iter().map(|&i| records[i].as_slice()).collect();
        wal.append(&refs).unwrap();
    }
    drop(wal);
    (fs.read_file(&common::only_file(&fs)).unwrap(), records)
}

/// Records recovery must return when the file is cut at `cut`: every batch whose frames all
/// end at or before the cut.
fn complete_before(cut: u64, offsets: &[u64], records: &[Vec<u8>]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for batch in BATCHES {
        let last = *batch.last().unwrap();
        if offsets[last + 1] > cut {
            break;
        }
        out.extend(batch.iter().map(|&i| (i as u64 + 1, records[i].clone())));
    }
    out
}

fn recover(bytes: &[u8], mode: RecoveryMode) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let fs = MemFs::new();
    let path = common::dir().join(strata_wal::format::file_name(1));
    strata_wal::Fs::create_dir_all(&fs, &common::dir()).unwrap();
    fs.write_file(&path, bytes);
    let wal = common::open_mem(&fs, mode)?;
    let got = common::read_all(&wal);
    // The repaired log accepts new records right after what it kept, and reopens clean.
    let next = wal.append(&[b"after recovery"]).unwrap();
    assert_eq!(next, got.len() as u64 + 1);
    drop(wal);
    let again = common::open_mem(&fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(common::read_all(&again).len(), got.len() + 1);
    Ok(got)
}

fn garbage(seed: u64, len: usize) -> Vec<u8> {
    // Avoid all-zero garbage, which is the zero-padding case.
    let mut bytes = common::payload(seed ^ 0xDEAD_BEEF, len);
    if let Some(first) = bytes.first_mut() {
        *first |= 1;
    }
    bytes
}

#[test]
fn every_cut_of_the_last_three_records_recovers_exactly_the_complete_batches() {
    every_cut(false);
}

#[test]
fn every_cut_of_a_preallocated_file_recovers_exactly_the_complete_batches() {
    every_cut(true);
}

fn every_cut(preallocated: bool) {
    let (bytes, records) = build(preallocated);
    let offsets = common::frame_offsets(&LENS);
    assert_eq!(*offsets.last().unwrap(), bytes.len() as u64);
    let mut cases = 0;
    for record in LENS.len() - 3..LENS.len() {
        for cut in offsets[record]..offsets[record + 1] {
            let want = complete_before(cut, &offsets, &records);
            let prefix = &bytes[..cut as usize];
            let mut variants: Vec<(&str, Vec<u8>)> = vec![("cut", prefix.to_vec())];
            for pad in [1usize, 23, 24, 300] {
                variants.push(("zeros", [prefix, &vec![0u8; pad]].concat()));
                variants.push((
                    "garbage",
                    [prefix, &garbage(cut * 1000 + pad as u64, pad)].concat(),
                ));
            }
            for (kind, damaged) in variants {
                cases += 1;
                let what = format!(
                    "{kind} at byte {cut} (record {}), {} bytes",
                    record + 1,
                    damaged.len()
                );
                let got = recover(&damaged, RecoveryMode::PointInTime)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    got == want,
                    "{what}: point-in-time returned {} records, want {}",
                    got.len(),
                    want.len()
                );
                match recover(&damaged, RecoveryMode::TolerateCorruptedTail) {
                    Ok(got) => assert!(got == want, "{what}: tolerate-tail returned wrong records"),
                    Err(e) => {
                        assert!(e.is_corruption(), "{what}: {e}");
                        assert!(kind != "cut", "{what}: a plain cut is a torn tail: {e}");
                    }
                }
                let batch_boundary = cut == offsets[0]
                    || BATCHES
                        .iter()
                        .any(|b| offsets[*b.last().unwrap() + 1] == cut);
                let ends_cleanly = kind == "cut" || (preallocated && kind == "zeros");
                let clean = ends_cleanly && batch_boundary;
                match recover(&damaged, RecoveryMode::AbsoluteConsistency) {
                    Ok(got) => assert!(
                        clean && got == want,
                        "{what}: absolute consistency accepted damage"
                    ),
                    Err(e) => assert!(!clean && e.is_corruption(), "{what}: {e}"),
                }
            }
        }
    }
    assert!(cases > 1000, "only {cases} cases");
}

#[test]
fn a_torn_batch_is_dropped_whole_and_reported() {
    let (bytes, _) = build(false);
    let offsets = common::frame_offsets(&LENS);
    // Cut inside the last record: the batch [6, 7] loses its end, so record 6 goes too.
    let cut = offsets[6] as usize + 5;
    let fs = MemFs::new();
    strata_wal::Fs::create_dir_all(&fs, &common::dir()).unwrap();
    fs.write_file(
        &common::dir().join(strata_wal::format::file_name(1)),
        &bytes[..cut],
    );
    let wal = common::open_mem(&fs, RecoveryMode::PointInTime).unwrap();
    let report = wal.recovery_report().clone();
    assert_eq!(report.records, 5);
    assert_eq!(report.last_lsn, 5);
    assert_eq!(
        report.dropped_records, 1,
        "record 6 was complete but its batch was not"
    );
    assert_eq!(report.dropped_bytes, cut as u64 - offsets[5]);
    let damage = report.damage.expect("damage reported");
    assert!(damage.torn_tail);
    assert_eq!(damage.offset, offsets[6]);
}
