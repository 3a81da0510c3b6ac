//! Where the committed corpora live and how a crate's `tests/fuzz_corpus.rs` replays one on
//! stable Rust. Included by `#[path]` so that each crate's replay test needs no shared crate.

use std::path::{Path, PathBuf};

/// The corpus directory of `target`, `fuzz/corpus/<target>` at the workspace root.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs `run` on every input in `target`'s corpus. A corpus of fewer than eight inputs means
/// it was lost or never written, which is a failure rather than a vacuous pass.
pub fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut inputs = 0;
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read the corpus at {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
            .path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        run(&bytes);
        inputs += 1;
    }
    assert!(
        inputs >= 8,
        "the corpus at {} has only {inputs} inputs",
        dir.display()
    );
}

/// Writes `seeds` into `target`'s corpus, for the `write_seed_corpus` tests.
#[allow(dead_code)] // Not every crate's replay test writes seeds.
pub fn write_seeds(target: &str, seeds: Vec<(String, Vec<u8>)>) {
    let out = corpus_dir(target);
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    for (name, bytes) in seeds {
        let path = out.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
