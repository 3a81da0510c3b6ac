//! Replays committed fuzz corpora on stable Rust, so every `cargo test` exercises the inputs
//! the fuzzer found interesting: `store_model` (this crate's), and `segment_manifest`, whose
//! harness lives in `fuzz/harness/` and is replayed here because this crate depends on
//! `strata-segment`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/store_model.rs"]
mod store_model;

#[path = "../../fuzz/harness/segment_manifest.rs"]
mod segment_manifest;

#[path = "../../fuzz/harness/corpus.rs"]
mod corpus;
use corpus::replay;

#[test]
fn store_model_corpus_replays_cleanly() {
    replay("store_model", store_model::run);
}

#[test]
fn segment_manifest_corpus_replays_cleanly() {
    replay("segment_manifest", segment_manifest::run);
}

/// Writes the seed corpora of `store_model` and `segment_manifest`. Run with
/// `STRATA_WRITE_SEED_CORPUS=1 cargo test -p strata --test fuzz_corpus write_seed_corpus`
/// after a format change, and commit the result; without the variable it does nothing.
#[test]
fn write_seed_corpus() {
    if std::env::var_os("STRATA_WRITE_SEED_CORPUS").is_none() {
        return;
    }
    corpus::write_seeds("store_model", store_model::seeds());
    corpus::write_seeds("segment_manifest", segment_manifest::seeds());
}
