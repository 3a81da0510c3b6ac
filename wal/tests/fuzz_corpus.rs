//! Replays the committed fuzz corpus of `fuzz/corpus/wal_recovery` on stable Rust, so every
//! `cargo test` exercises the inputs the fuzzer found interesting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/wal_recovery.rs"]
mod harness;

#[test]
fn wal_recovery_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wal_recovery");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        harness::run(&std::fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(
        inputs >= 8,
        "the corpus at {} has only {inputs} inputs",
        dir.display()
    );
}
