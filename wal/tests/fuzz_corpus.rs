//! Replays the committed fuzz corpus of `fuzz/corpus/wal_recovery` on stable Rust, so every
//! `cargo test` exercises the inputs the fuzzer found interesting.

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
#[path = "harness/wal_recovery.rs"]
mod harness;

#[test]
fn wal_recovery_corpus_replays_cleanly() {
    corpus::replay("wal_recovery", harness::run);
}
