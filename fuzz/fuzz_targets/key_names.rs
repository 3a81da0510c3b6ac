//! Any bytes as a key: a safe git tree entry name that gives the key back; any bytes as a
//! name: unescaped only if canonical, never a panic.
#![no_main]

#[path = "../../gitsync/tests/harness/key_names.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
