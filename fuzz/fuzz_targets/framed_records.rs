//! Fuzz target `framed_records`: see `tests/support/fuzz_bodies.rs`
//! (`framed_records`): valid framing, arbitrary header fields and payloads.
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

libfuzzer_sys::fuzz_target!(|records: Vec<([u64; 5], Vec<u8>)>| {
    support::fuzz_bodies::framed_records(&records);
});
