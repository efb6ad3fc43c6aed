//! Fuzz target `entry`: see `tests/support/fuzz_bodies.rs` (`entry_bytes`).
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    support::fuzz_bodies::entry_bytes(input);
});
