//! The fuzz targets of `fuzz/` as bounded property tests, so CI exercises
//! them without a nightly toolchain. Goal: no input — a damaged hard state,
//! damaged or hostile records, any entry bytes, any directory image — makes
//! cpwal panic. Method: proptest feeds each target's body (shared with the
//! cargo-fuzz crate through `tests/support/fuzz_bodies.rs`) random inputs,
//! both raw and derived from a valid directory so the deep paths run.
//! Cases per test: `CPWAL_FUZZ_CASES` (default 1024).

mod support;

use proptest::collection::vec;
use proptest::prelude::*;
use support::fuzz_bodies;

fn cases() -> u32 {
    support::env_number("CPWAL_FUZZ_CASES").unwrap_or(1024)
}

/// Bytes that look like the valid ones with a few edits: more likely to get
/// past the first check than uniform noise.
fn edited(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let length = base.len().max(1);
    vec((0..length, any::<u8>()), 1..6).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (at, value) in edits {
            if let Some(byte) = bytes.get_mut(at) {
                *byte = value;
            }
        }
        bytes
    })
}

fn base_file(name: &str) -> Vec<u8> {
    fuzz_bodies::base_directory()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, image)| image.clone())
        .expect("base file")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn decode_entry_any_bytes_never_panics(bytes in vec(any::<u8>(), 0..1400)) {
        fuzz_bodies::entry_bytes(&bytes);
    }

    #[test]
    fn open_any_hard_state_bytes_never_panics(
        bytes in prop_oneof![vec(any::<u8>(), 0..2100), edited(base_file("hardstate"))]
    ) {
        fuzz_bodies::hard_state_bytes(&bytes);
    }

    #[test]
    fn open_any_segment_record_bytes_never_panics(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..1200),
            edited(base_file(fuzz_bodies::FIRST_SEGMENT)[64..].to_vec()),
        ]
    ) {
        fuzz_bodies::segment_record_bytes(&bytes);
    }

    #[test]
    fn open_framed_records_with_any_fields_never_panics(
        records in vec(
            (
                prop_oneof![
                    any::<[u64; 5]>(),
                    (prop_oneof![Just(0u64), 0u64..16], 0u64..4, 0u64..2, 0u64..16, 0u64..16)
                        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e]),
                ],
                prop_oneof![
                    vec(any::<u8>(), 0..120),
                    any::<u64>().prop_map(|seed| cpwal::codec::encoded_entry(
                        &support::workload::random_entry(&mut support::sim_disk::Rng::new(seed))
                    )),
                ],
            ),
            0..12,
        )
    ) {
        fuzz_bodies::framed_records(&records);
    }

    #[test]
    fn open_any_directory_image_never_panics(bytes in vec(any::<u8>(), 0..3000)) {
        fuzz_bodies::directory_bytes(&bytes);
    }
}
