//! Any bytes presented as a WAL file: every recovery mode opens or refuses without a panic.
#![no_main]

#[path = "../../wal/tests/harness/wal_recovery.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
