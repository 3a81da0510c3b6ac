//! Any bytes presented as the manifest of a segment directory (beside four sound segment
//! files): decoded canonically or refused, and a directory that opens reads consistently.
#![no_main]

#[path = "../harness/segment_manifest.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
