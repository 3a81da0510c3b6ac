//! Any bytes presented as a cold-tier chunk file, chunk line or state blob: a document that
//! round-trips through the encoder, or an error, never a panic.
#![no_main]

#[path = "../../gitsync/tests/harness/chunk_lines.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
