//! Any bytes presented as a pack index and a pack file: listed and read, or refused, never a
//! panic, and no allocation beyond what the input holds.
#![no_main]

#[path = "../../gitsync/tests/harness/pack_read.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
