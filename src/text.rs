//! Checks on names that come from callers or from disk: range names, voter
//! identities, node addresses. They must hold no control characters
//! (Unicode category Cc), which would let a name forge lines in logs and
//! tool output.

/// The byte offset of the first control character in `text`, if any.
///
/// Names are almost always ASCII and this runs for every appended entry, so
/// ASCII text is checked eight bytes at a time; other text is walked char by char.
pub(crate) fn first_control_character(text: &str) -> Option<usize> {
    match ascii_has_control(text.as_bytes()) {
        Some(false) => None,
        Some(true) => text.bytes().position(|byte| byte.is_ascii_control()),
        None => text
            .char_indices()
            .find(|(_, c)| c.is_control())
            .map(|(offset, _)| offset),
    }
}

/// `None` if `bytes` are not all ASCII; otherwise whether they hold a control
/// (0x00..=0x1f or 0x7f). Tested a 64-bit word at a time with the classic
/// "has a byte less than n" and "has a zero byte" tricks, which are exact for
/// words whose bytes are all below 0x80 (checked first).
fn ascii_has_control(bytes: &[u8]) -> Option<bool> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let has_byte_below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH_BITS != 0;
    let mut words = bytes.chunks_exact(8);
    let mut found = false;
    for chunk in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if word & HIGH_BITS != 0 {
            return None;
        }
        found |= has_byte_below(word, 0x20) | has_byte_below(word ^ (ONES * 0x7f), 1);
    }
    let tail = words.remainder();
    if !tail.is_ascii() {
        return None;
    }
    Some(found || tail.iter().any(u8::is_ascii_control))
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
}
