//! Checks on names that come from callers or from disk: range names, voter
//! identities, node addresses. They must hold no control characters
//! (Unicode category Cc), which would let a name forge lines in logs and
//! tool output.

/// The longest range name accepted in an
/// [`OwnershipTransition`](crate::OwnershipTransition), in bytes.
pub const MAX_RANGE_NAME_BYTES: usize = 1024;

/// The byte offset of the first control character in `text`, if any.
///
/// Names are almost always printable ASCII and this runs for every appended
/// and every recovered entry, so such text is settled by one branch-free pass
/// over its bytes; anything else is walked char by char.
pub(crate) fn first_control_character(text: &str) -> Option<usize> {
    if is_printable_ascii(text.as_bytes()) {
        return None;
    }
    text.char_indices()
        .find(|(_, c)| c.is_control())
        .map(|(offset, _)| offset)
}

/// Whether every byte is printable ASCII (`0x20..0x7f`; for ASCII,
/// `char::is_control` is exactly `< 0x20` or `0x7f`). No early exit, so the
/// check compiles to vector instructions (the texts checked are at most
/// [`MAX_RANGE_NAME_BYTES`] long).
fn is_printable_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |outside, &b| {
        outside | u8::from(!(0x20..0x7f).contains(&b))
    }) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_control_character_agrees_with_char_is_control() {
        // Goal: the ASCII fast path finds exactly what `char::is_control`
        // finds. Method: every char below U+00A0 (all of Cc and its
        // neighbours), placed in ASCII and in non-ASCII text.
        for code in 0u32..0xa0 {
            let c = char::from_u32(code).expect("valid scalar");
            for prefix in ["range-", "ränge-"] {
                let text = format!("{prefix}{c}-tail");
                let expected = c.is_control().then_some(prefix.len());
                assert_eq!(first_control_character(&text), expected, "U+{code:04X}");
            }
        }
        // Every position of a word and its remainder, for each control and
        // the printable bytes around them.
        let probes = (0u8..=0x21).chain([0x7e, 0x7f]);
        for byte in probes {
            for at in 0..40 {
                let mut text = vec![b'x'; 40];
                text[at] = byte;
                let text = String::from_utf8(text).expect("ASCII");
                let expected = (byte as char).is_control().then_some(at);
                assert_eq!(
                    first_control_character(&text),
                    expected,
                    "{byte:#x} at {at}"
                );
            }
        }
        assert_eq!(first_control_character(""), None);
        assert_eq!(first_control_character("plain"), None);
    }

    proptest::proptest! {
        #[test]
        fn first_control_character_matches_a_scan_of_every_character(
            text in "(\\PC|[\\x00-\\x7f]|[\\u{80}-\\u{a0}]){0,24}"
        ) {
            // Goal: the ASCII fast path finds exactly what checking each
            // character with `char::is_control` finds. Method: arbitrary text
            // mixing printable characters, ASCII controls and the C1
            // controls (U+0080..U+009F), compared with the plain scan.
            let expected = text.char_indices().find(|(_, c)| c.is_control()).map(|(o, _)| o);
            proptest::prop_assert_eq!(first_control_character(&text), expected);
        }
    }
}
