//! proptest: random appends, syncs, truncations, clean reopens and power losses against a
//! model (a Vec of records). Everything synced survives, in order, with the right LSNs; after
//! a power loss the log's records are a prefix of what was appended that contains everything
//! synced, and LSNs are never reused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use strata_wal::{CrashMode, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Sync,
    TruncateBefore(u8),
    Reopen,
    PowerLoss(u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(0usize..300, 1..5).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => any::<u8>().prop_map(Op::TruncateBefore),
        1 => Just(Op::Reopen),
        1 => (0u8..4, any::<u64>()).prop_map(|(m, s)| Op::PowerLoss(m, s)),
    ]
}

fn open(fs: &MemFs, policy: SyncPolicy) -> Wal {
    let options = WalOptions {
        sync_policy: policy,
        max_file_size: 700,
        write_buffer_size: 256,
        recovery_mode: RecoveryMode::PointInTime,
        ..WalOptions::default()
    };
    Wal::open_with_fs(Arc::new(fs.clone()), common::DIR, options).unwrap()
}

fn check(wal: &Wal, model: &[(u64, Vec<u8>)], floor: u64) {
    let got: Vec<_> = wal.read_from(floor).unwrap().map(|r| r.unwrap()).collect();
    let want: Vec<_> = model.iter().filter(|(l, _)| *l >= floor).cloned().collect();
    assert_eq!(got.len(), want.len(), "record count from LSN {floor}");
    assert!(
        got == want,
        "records from LSN {floor} differ from the model"
    );
    // LSNs of records lost to a power loss stay spent, so the log may be ahead of its records.
    assert!(wal.last_lsn() >= model.last().map_or(0, |(l, _)| *l));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60), always in any::<bool>()) {
        run(ops, always)?;
    }
}

fn run(ops: Vec<Op>, always: bool) -> Result<(), TestCaseError> {
    let policy = if always {
        SyncPolicy::Always
    } else {
        SyncPolicy::Never
    };
    let mut fs = MemFs::new();
    let mut wal = open(&fs, policy);
    let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut synced = 0u64;
    let mut floor = 1u64;
    let mut seed = 0u64;
    for op in ops {
        match op {
            Op::Append(lens) => {
                let records: Vec<Vec<u8>> = lens
                    .iter()
                    .map(|&n| {
                        seed += 1;
                        common::payload(seed, n)
                    })
                    .collect();
                let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                let first = wal.last_lsn() + 1;
                let last = wal.append(&refs).unwrap();
                prop_assert_eq!(last, first + records.len() as u64 - 1);
                for (i, r) in records.into_iter().enumerate() {
                    model.push((first + i as u64, r));
                }
                if always {
                    prop_assert!(wal.synced_lsn() >= last);
                    synced = last;
                }
            }
            Op::Sync => {
                synced = wal.sync().unwrap();
                prop_assert_eq!(synced, wal.last_lsn());
            }
            Op::TruncateBefore(k) => {
                let target = wal.last_lsn().saturating_sub(u64::from(k % 16));
                wal.truncate_before(target).unwrap();
                floor = floor.max(target.max(1));
            }
            Op::Reopen => {
                drop(wal);
                wal = open(&fs, policy);
                prop_assert!(
                    wal.recovery_report().is_clean(),
                    "{:?}",
                    wal.recovery_report()
                );
            }
            Op::PowerLoss(mode, s) => {
                let mode = match mode {
                    0 => CrashMode::DropUnsynced,
                    1 => CrashMode::KeepPrefix { seed: s },
                    2 => CrashMode::ScatterPages { seed: s },
                    _ => CrashMode::GarbleTail { seed: s },
                };
                let after = fs.crash(mode);
                drop(wal);
                fs = after;
                wal = open(&fs, policy);
                // Everything from the floor on may be gone (none of it synced): then the log
                // says so with `Truncated` rather than returning nothing.
                let present: Vec<(u64, Vec<u8>)> = match wal.read_from(floor) {
                    Ok(records) => records.map(|r| r.unwrap()).collect(),
                    Err(strata_wal::Error::Truncated { .. }) => Vec::new(),
                    Err(e) => panic!("reading after a power loss: {e}"),
                };
                let kept = present.last().map_or(floor - 1, |(l, _)| *l);
                // Every record the model holds at or below the synced LSN must have survived.
                let must_keep = model
                    .iter()
                    .map(|(l, _)| *l)
                    .filter(|l| *l <= synced && *l >= floor)
                    .max();
                prop_assert!(
                    must_keep.unwrap_or(0) <= kept,
                    "synced LSN {:?} lost: records end at {}",
                    must_keep,
                    kept
                );
                // Records below the floor were truncated away and are not compared.
                model.retain(|(l, _)| *l >= floor && *l <= kept);
                if present.is_empty() {
                    floor = wal.last_lsn() + 1;
                }
                synced = wal.last_lsn();
            }
        }
        check(&wal, &model, floor);
    }
    Ok(())
}

#[test]
fn power_loss_after_truncation_then_sync() {
    use Op::*;
    let ops = vec![
        Append(vec![66, 17, 77]),
        Append(vec![178, 74, 112]),
        Append(vec![0]),
        Reopen,
        Append(vec![0, 0]),
        TruncateBefore(0),
        PowerLoss(0, 0),
        Sync,
    ];
    run(ops, false).unwrap();
}

#[test]
fn power_losses_in_a_row_under_never() {
    use Op::*;
    let ops = vec![
        Append(vec![0]),
        Append(vec![15]),
        Append(vec![4, 281, 64, 160]),
        Append(vec![0]),
        PowerLoss(1, 0),
        PowerLoss(0, 0),
    ];
    run(ops, false).unwrap();
}

#[test]
fn rolled_unsynced_file_is_made_durable_by_recovery() {
    use Op::*;
    let ops = vec![
        Append(vec![199, 289, 108]),
        Append(vec![0]),
        Reopen,
        Sync,
        PowerLoss(0, 0),
    ];
    run(ops, false).unwrap();
}

#[test]
fn a_file_set_aside_with_no_record_left_still_marks_the_gap() {
    use Op::*;
    let ops = vec![
        Append(vec![138, 192, 83, 159]),
        Append(vec![0]),
        PowerLoss(0, 0),
        Append(vec![0]),
        Sync,
        Reopen,
    ];
    run(ops, false).unwrap();
}

#[test]
fn an_empty_file_after_a_gap_is_replaced_with_the_gap_mark() {
    use Op::*;
    let ops = vec![
        Append(vec![119]),
        Append(vec![289, 188]),
        Append(vec![0]),
        PowerLoss(1, 1958703606053717650),
        Append(vec![0]),
        PowerLoss(0, 0),
        Append(vec![0]),
    ];
    run(ops, false).unwrap();
}
