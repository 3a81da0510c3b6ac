//! Power loss during commits, folds and pack merges of the cold tier.
//!
//! ```text
//!   ColdStore ── ColdOptions::fs ──► TapFs ─┬─► the real files (libgit2 reads them)
//!                                           └─► PowerCutFs: the same operations on an
//!                                               in-memory disk, imaged just before
//!                                               operation N as a power cut would leave it
//! ```
//!
//! Every file the store writes (packs, their indexes, the examined watermark, the branch and
//! its lock), and every rename, link, removal and directory fsync, goes through the seam. The
//! test also notes where the real branch points before each operation.
//!
//! For every operation N of a run of commits, with folds and merges of packs, the image
//! before N is written out as a repository (the files libgit2 made at creation, then the
//! image's files, the branch among them) and reopened. It must pass `git fsck --strict`, its
//! head must be a position the branch held before N and no older than the head of the last
//! commit acknowledged before N, it must hold exactly the changes up to its committed
//! watermark, that watermark must be at least that of every commit acknowledged before N, and
//! it must take further commits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strata_gitsync::{ColdOptions, ColdStore};
use strata_tiering::clock::ManualClock;
use strata_tiering::LATEST;
use strata_wal::{CrashMode, Fs, MemFs, PowerCutFs, StdFs};

use common::tap::TapFs;

const KEYS: u64 = 37;
const BATCH: u64 = 20;
const COMMITS: u64 = 9;

/// The branch as it was before each operation: `(operations done before it, branch)`.
#[derive(Debug)]
struct BranchLog {
    ref_file: PathBuf,
    mirror: PowerCutFs,
    notes: Mutex<Vec<(u64, Option<String>)>>,
}

impl BranchLog {
    fn note(&self) {
        let branch = std::fs::read_to_string(&self.ref_file)
            .ok()
            .map(|s| s.trim().to_owned());
        let mut notes = self.notes.lock().unwrap();
        if notes.last().map(|(_, b)| b) != Some(&branch) {
            notes.push((self.mirror.ops(), branch));
        }
    }

    /// The positions the branch held before operation `n` (1 = the first) ran, oldest first.
    fn before(&self, n: u64) -> Vec<Option<String>> {
        let notes = self.notes.lock().unwrap();
        notes
            .iter()
            .filter(|(done, _)| *done < n)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn base_dir() -> &'static Path {
    // Fsyncs on tmpfs cost nothing, and the run is repeated for every operation.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        Path::new("/tmp")
    }
}

fn options(fs: Arc<dyn Fs>) -> ColdOptions {
    ColdOptions {
        keep_chunks: 2,
        writer_id: Some("wpower".into()),
        max_packs: 3,
        fs,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One run with the power cut before operation `cut_before`.
struct Run {
    /// Changing operations of the whole run.
    ops: u64,
    /// `(operations done when the commit returned, its watermark, the head)`, in order.
    acknowledged: Vec<(u64, u64, Option<String>)>,
    image: Option<MemFs>,
    /// The positions of the branch before the cut, oldest first.
    branches: Vec<Option<String>>,
}

fn run(repo: &Path, cut_before: u64, mode: CrashMode) -> Run {
    let mirror = PowerCutFs::new(cut_before, mode);
    mirror.create_dir_all(&repo.join("objects/pack")).unwrap();
    mirror.create_dir_all(&repo.join("refs/heads")).unwrap();
    let log = Arc::new(BranchLog {
        ref_file: repo.join("refs/heads/main"),
        mirror: mirror.clone(),
        notes: Mutex::new(Vec::new()),
    });
    let noting = Arc::clone(&log);
    let fs = Arc::new(TapFs::new(
        Arc::new(move || noting.note()),
        Some(mirror.clone()),
    ));
    let store = ColdStore::open(repo, options(fs), clock()).unwrap();
    let mut acknowledged = Vec::new();
    for _ in 0..COMMITS {
        common::commit_next(&store, BATCH, KEYS).unwrap();
        let head = store.head().map(|id| id.to_string());
        acknowledged.push((mirror.ops(), store.committed_lsn(), head));
        store.record_examined(store.committed_lsn()).unwrap();
    }
    drop(store);
    log.note();
    Run {
        ops: mirror.ops(),
        acknowledged,
        image: mirror.image(),
        branches: log.before(cut_before),
    }
}

/// Writes the crash image out as a repository at `to`: the files libgit2 made when the
/// repository was created (`skeleton`), then the image's files.
fn materialize(skeleton: &Path, repo: &Path, image: &MemFs, to: &Path) {
    copy_dir(skeleton, to);
    for dir in ["", "objects/pack", "refs/heads"].map(PathBuf::from) {
        for name in image.list_dir(&repo.join(&dir)).unwrap() {
            let path = repo.join(&dir).join(&name);
            if let Some(bytes) = image.read_file(&path) {
                std::fs::write(to.join(&dir).join(&name), bytes).unwrap();
            }
        }
    }
}

fn check(at: &Path, cut_before: u64, run: &Run) {
    let what = format!("power cut before operation {cut_before} of {}", run.ops);
    common::assert_fsck_clean(at);
    let store = ColdStore::open(at, options(Arc::new(StdFs)), clock()).unwrap();
    let head = store.head().map(|id| id.to_string());
    let acknowledged = run
        .acknowledged
        .iter()
        .rfind(|(done, ..)| *done < cut_before);
    let oldest = acknowledged.map_or(0, |(.., acked)| {
        run.branches
            .iter()
            .position(|b| b == acked)
            .expect("an acknowledged head is a position the branch held")
    });
    assert!(
        run.branches.get(oldest..).unwrap_or_default().contains(&head)
            || (head.is_none() && acknowledged.is_none()),
        "{what}: head {head:?} is not a position the branch held since the last acknowledged commit"
    );
    let watermark = store.committed_lsn();
    let durable = acknowledged.map_or(0, |&(_, lsn, _)| lsn);
    assert!(
        watermark >= durable,
        "{what}: watermark {watermark} lost acknowledged {durable}"
    );
    assert_eq!(watermark % BATCH, 0, "{what}: a batch was half committed");
    let examined = store.examined_lsn().unwrap();
    assert!(
        examined.is_multiple_of(BATCH) && examined <= BATCH * COMMITS,
        "{what}: examined watermark {examined}"
    );
    for key in 0..KEYS {
        let got = store.get(format!("k{key}").as_bytes(), LATEST).unwrap();
        let want = common::numbered_value(key, watermark, KEYS);
        assert_eq!(got, want, "{what}: key k{key} at watermark {watermark}");
    }
    // The repository takes further commits, folds and merges.
    for _ in 0..3 {
        common::commit_next(&store, BATCH, KEYS).unwrap();
    }
    drop(store);
    common::assert_fsck_clean(at);
}

#[test]
fn every_power_cut_during_commits_folds_and_merges_recovers() {
    let scratch = tempfile::tempdir_in(base_dir()).unwrap();
    let skeleton = scratch.path().join("skeleton.git");
    drop(ColdStore::open(&skeleton, options(Arc::new(StdFs)), clock()).unwrap());

    let counting_repo = scratch.path().join("count.git");
    copy_dir(&skeleton, &counting_repo);
    let counting = run(&counting_repo, u64::MAX, CrashMode::DropUnsynced);
    assert!(counting.ops > 50, "only {} operations", counting.ops);
    let merged = common::packs(&counting_repo);
    assert!(
        merged < COMMITS as usize,
        "{merged} packs after {COMMITS} commits: no merge ran"
    );

    let mut branches_seen = std::collections::BTreeSet::new();
    for cut_before in 1..=counting.ops {
        let seed = cut_before.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mode = match cut_before % 4 {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::KeepPrefix { seed },
            2 => CrashMode::GarbleTail { seed },
            _ => CrashMode::ScatterPages { seed },
        };
        let repo = scratch.path().join(format!("run-{cut_before}.git"));
        copy_dir(&skeleton, &repo);
        let cut = run(&repo, cut_before, mode);
        assert_eq!(cut.ops, counting.ops, "runs differ in their operations");
        let image = cut.image.as_ref().expect("the cut point was passed");
        let at = scratch.path().join(format!("after-{cut_before}.git"));
        materialize(&skeleton, &repo, image, &at);
        check(&at, cut_before, &cut);
        branches_seen.insert(
            ColdStore::open_read_only(&at, options(Arc::new(StdFs)), clock())
                .unwrap()
                .head(),
        );
        std::fs::remove_dir_all(&repo).unwrap();
        std::fs::remove_dir_all(&at).unwrap();
    }
    eprintln!(
        "{} power cuts, between {} branch positions",
        counting.ops,
        branches_seen.len()
    );
    assert!(
        branches_seen.len() > COMMITS as usize,
        "cuts fell between only {} branch positions",
        branches_seen.len()
    );
}
