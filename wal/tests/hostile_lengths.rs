//! A length field is never trusted for an allocation: a frame that claims 4 GiB in a 1 KiB
//! file is an error (or, in point-in-time mode, the end of the log), and nothing close to its
//! claim is ever allocated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use strata_wal::format::{self, FileHeader, FRAME_HEADER_LEN};
use strata_wal::{Fs, Log, MemFs, RecoveryMode, SyncPolicy, Wal, WalOptions};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only records the request size.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// A frame header with valid checksums that claims `len` payload bytes.
fn lying_frame(lsn: u64, len: u32) -> Vec<u8> {
    let mut frame = Vec::new();
    format::encode_frame(&mut frame, lsn, true, b"");
    frame[4..8].copy_from_slice(&len.to_le_bytes());
    let header_crc = crc32fast::hash(&frame[4..20]);
    frame[20..24].copy_from_slice(&header_crc.to_le_bytes());
    frame
}

fn disk_with(frames: &[u8]) -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(&common::dir()).unwrap();
    let mut bytes = format::encode_file_header(FileHeader {
        first_lsn: 1,
        follows_gap: false,
        preallocated: false,
    })
    .to_vec();
    format::encode_frame(&mut bytes, 1, true, b"a real record");
    bytes.extend_from_slice(frames);
    bytes.resize(1024, 0xA5);
    fs.write_file(&common::dir().join(format::file_name(1)), &bytes);
    fs
}

#[test]
fn a_four_gib_claim_in_a_small_file_allocates_nothing_large() {
    for max_record_len in [257 << 20, u32::MAX as usize] {
        let open = |mode| {
            let fs = disk_with(&lying_frame(2, u32::MAX));
            let options = WalOptions {
                recovery_mode: mode,
                max_record_len,
                sync_policy: SyncPolicy::Always,
                ..WalOptions::default()
            };
            Wal::open_with_fs(Arc::new(fs), common::DIR, options)
        };
        let err = open(RecoveryMode::AbsoluteConsistency).expect_err("4 GiB claimed in 1 KiB");
        assert!(err.is_corruption(), "{err}");
        match open(RecoveryMode::TolerateCorruptedTail) {
            // Under the default limit the claim is impossible, so it is damage.
            Err(err) => assert!(err.is_corruption(), "{err}"),
            // A limit of 4 GiB makes it indistinguishable from a torn write of a huge record.
            Ok(wal) => {
                assert_eq!(max_record_len, u32::MAX as usize);
                assert_eq!(common::read_all(&wal).len(), 1);
            }
        }
        let wal = open(RecoveryMode::PointInTime).unwrap();
        assert_eq!(common::read_all(&wal).len(), 1);
        assert!(wal.recovery_report().damage.is_some());
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 64 << 20,
        "an allocation of {largest} bytes was made"
    );
}

#[test]
fn oversized_records_are_refused_at_append() {
    let fs = MemFs::new();
    let options = WalOptions {
        max_record_len: 1000,
        ..WalOptions::default()
    };
    let wal = Wal::open_with_fs(Arc::new(fs), common::DIR, options).unwrap();
    let err = wal.append(&[&[0u8; 1001]]).unwrap_err();
    assert!(
        matches!(
            err,
            strata_wal::Error::RecordTooLarge {
                len: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    assert!(matches!(
        wal.append(&[]),
        Err(strata_wal::Error::EmptyBatch)
    ));
    assert_eq!(wal.last_lsn(), 0, "a refused append must not spend an LSN");
    let _ = FRAME_HEADER_LEN;
}
