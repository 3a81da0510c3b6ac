//! Any bytes presented as a segment file (and as a manifest): an error or a consistent reader,
//! never a panic.
#![no_main]

#[path = "../../segment/tests/harness/segment_reader.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
