//! Fuzz target `record`: see `tests/support/fuzz_bodies.rs` (`segment_record_bytes`).
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    support::fuzz_bodies::segment_record_bytes(input);
});
