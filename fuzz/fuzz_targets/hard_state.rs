//! Fuzz target `hard_state`: see `tests/support/fuzz_bodies.rs` (`hard_state_bytes`).
#![no_main]

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    support::fuzz_bodies::hard_state_bytes(input);
});
