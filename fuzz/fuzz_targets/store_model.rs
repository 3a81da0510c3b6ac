//! Any bytes as a program of store operations, reopens included: the Store agrees with a
//! `BTreeMap` model after every step.
#![no_main]

#[path = "../../facade/tests/harness/store_model.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
