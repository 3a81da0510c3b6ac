//! Any bytes as a WAL record payload: a change that re-encodes to the same bytes, or an error,
//! never a panic.
#![no_main]

#[path = "../../tiering/tests/harness/record_payload.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
