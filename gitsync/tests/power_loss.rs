//! Power loss during commits, folds and pack merges of the cold tier.
//!
//! ```text
//!   ColdStore ── ColdOptions::fs ──► TapFs ─┬─► the real files (libgit2 reads them)
//!                                           └─► PowerCutFs: the same operations on an
//!                                               in-memory disk, imaged just before
//!                                               operation N as a power cut would leave it
//!   libgit2 ── moves the branch ──► the real ref file (outside the seam; the test reads
//!                                   it before every operation)
//! ```
//!
//! Every file the store writes itself (packs, their indexes, the examined watermark), and
//! every rename, link, removal and directory fsync, goes through the seam. The branch is
//! moved by libgit2, which writes a lock file, fsyncs it, renames it over the branch and
//! fsyncs the directory (the store turns libgit2's fsyncs on), so an update that returned is
//! durable; the test notes where the branch points before each operation, and a crash
//! image comes with the branch as it was then.
//!
//! For every operation N of a run of commits, with folds and merges of packs, the image
//! before N is written out as a repository (the files libgit2 made at creation, the image's
//! files, the branch) and reopened. It must pass `git fsck --strict`, hold exactly the
//! changes up to its committed watermark, have a watermark at least that of every commit
//! acknowledged before N, and take further commits.
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

    /// The branch when operation `n` (1 = the first) was about to run.
    fn before(&self, n: u64) -> Option<String> {
        let notes = self.notes.lock().unwrap();
        notes
            .iter()
            .rev()
            .find(|(done, _)| *done < n)
            .and_then(|(_, b)| b.clone())
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
    /// `(operations done when the commit returned, its watermark)`, in order.
    acknowledged: Vec<(u64, u64)>,
    image: Option<MemFs>,
    branch: Option<String>,
}

fn run(repo: &Path, cut_before: u64, mode: CrashMode) -> Run {
    let mirror = PowerCutFs::new(cut_before, mode);
    mirror.create_dir_all(&repo.join("objects/pack")).unwrap();
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
        acknowledged.push((mirror.ops(), store.committed_lsn()));
        store.record_examined(store.committed_lsn()).unwrap();
    }
    drop(store);
    log.note();
    Run {
        ops: mirror.ops(),
        acknowledged,
        image: mirror.image(),
        branch: log.before(cut_before),
    }
}

/// Writes the crash image out as a repository at `to`: the files libgit2 made when the
/// repository was created (`skeleton`), the image's files, and the branch.
fn materialize(skeleton: &Path, repo: &Path, image: &MemFs, branch: Option<&str>, to: &Path) {
    copy_dir(skeleton, to);
    for dir in [PathBuf::new(), PathBuf::from("objects/pack")] {
        for name in image.list_dir(&repo.join(&dir)).unwrap() {
            let path = repo.join(&dir).join(&name);
            if let Some(bytes) = image.read_file(&path) {
                std::fs::write(to.join(&dir).join(&name), bytes).unwrap();
            }
        }
    }
    if let Some(branch) = branch {
        std::fs::write(to.join("refs/heads/main"), format!("{branch}\n")).unwrap();
    }
}

fn check(at: &Path, cut_before: u64, run: &Run) {
    let what = format!("power cut before operation {cut_before} of {}", run.ops);
    common::assert_fsck_clean(at);
    let store = ColdStore::open(at, options(Arc::new(StdFs)), clock()).unwrap();
    let head = store.head().map(|id| id.to_string());
    assert_eq!(head, run.branch, "{what}: the head is the branch written");
    let watermark = store.committed_lsn();
    let durable = run
        .acknowledged
        .iter()
        .filter(|(done, _)| *done < cut_before)
        .map(|&(_, lsn)| lsn)
        .max()
        .unwrap_or(0);
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
        materialize(&skeleton, &repo, image, cut.branch.as_deref(), &at);
        check(&at, cut_before, &cut);
        branches_seen.insert(cut.branch.clone());
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
