//! Checks on names that come from callers or from disk: range names, voter
//! identities, node addresses.
//!
//! Two rules, because what is already on disk must stay readable:
//!
//! * **Stored names** (every name read from disk or decoded from a peer's
//!   bytes) hold no control characters (Unicode category Cc), which would
//!   let a name forge lines in logs and tool output. This is the rule cpwal
//!   has always enforced, so every log written before stays readable.
//! * **New names** (an identity built by a caller, a range name in an entry
//!   written to the log) also hold no *invisible* character: Unicode
//!   categories Cf (format: the soft hyphen U+00AD, zero-width space and
//!   joiners U+200B..U+200D, the directional marks, embeddings, overrides
//!   and isolates U+200E..U+200F, U+202A..U+202E, U+2066..U+2069, the word
//!   joiner and invisible operators U+2060..U+2064, the byte-order mark
//!   U+FEFF, tag characters, ...), Zl and Zp (U+2028 LINE SEPARATOR and
//!   U+2029 PARAGRAPH SEPARATOR, which break lines in many renderers). Such a
//!   character makes `CN=a\u{200B}b` print exactly as `CN=ab`, or reverses
//!   what follows it on screen, in every message that names the member.
//!   The table is [`INVISIBLE`] (Unicode 15.1's Cf, plus Zl and Zp).
//!
//! Homoglyphs (a Cyrillic `а` for a Latin `a`) and other visible look-alikes
//! are not refused: telling them apart needs a confusables table and a
//! policy only the deployment can set.
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
/// `char::is_control` is exactly `< 0x20` or `0x7f`). The bytes are checked
/// sixteen at a time, each block without an early exit so that it compiles
/// to vector compares; the last block overlaps the one before it rather
/// than leaving a tail to check byte by byte, and a text shorter than a
/// block is padded with spaces. (A range name is typically 50 to 100
/// bytes and this runs for every appended and every recovered entry: the
/// byte-at-a-time tail was most of its cost.)
fn is_printable_ascii(bytes: &[u8]) -> bool {
    const LANES: usize = 16;
    fn block_is_printable(block: &[u8; LANES]) -> bool {
        block.iter().fold(0u8, |outside, &b| {
            outside | u8::from(!(0x20..0x7f).contains(&b))
        }) == 0
    }
    let Some(last) = bytes.last_chunk::<LANES>() else {
        let mut padded = [b' '; LANES];
        padded[..bytes.len()].copy_from_slice(bytes);
        return block_is_printable(&padded);
    };
    let (blocks, _) = bytes.as_chunks::<LANES>();
    blocks.iter().all(block_is_printable) && block_is_printable(last)
}

/// The characters a new name may not hold besides controls: Unicode 15.1's
/// general category Cf (format), plus Zl (U+2028) and Zp (U+2029). Sorted,
/// inclusive, disjoint ranges. Python's `unicodedata` (Unicode 14.0) lists
/// the same ranges but U+13439..U+1343F, which Unicode 15 added to Cf.
const INVISIBLE: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, joiners, LRM, RLM
    ('\u{2028}', '\u{202E}'),   // line/paragraph separators, embeddings, overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // isolates, deprecated format characters
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (byte-order mark)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// Whether `c` is in [`INVISIBLE`].
fn is_invisible(c: char) -> bool {
    INVISIBLE
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// A character a new name may not hold, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForbiddenCharacter {
    /// A control character (Cc) at this byte offset.
    Control { offset: usize },
    /// An invisible character (see [`INVISIBLE`]) at this byte offset.
    Invisible { offset: usize, character: char },
}

impl ForbiddenCharacter {
    /// "`name` holds a control character at byte N", or "... the invisible
    /// character U+XXXX at byte N": one wording for every kind of name.
    pub(crate) fn describe(self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Control { offset } => {
                write!(f, "{name} holds a control character at byte {offset}")
            }
            Self::Invisible { offset, character } => write!(
                f,
                "{name} holds the invisible character U+{:04X} at byte {offset}",
                u32::from(character)
            ),
        }
    }
}

/// The first character of `text` that a new name may not hold (see the
/// module docs), if any. Printable ASCII is settled by the same
/// branch-free pass as [`first_control_character`].
pub(crate) fn first_forbidden_character(text: &str) -> Option<ForbiddenCharacter> {
    if is_printable_ascii(text.as_bytes()) {
        return None;
    }
    text.char_indices().find_map(|(offset, c)| {
        if c.is_control() {
            Some(ForbiddenCharacter::Control { offset })
        } else if is_invisible(c) {
            Some(ForbiddenCharacter::Invisible {
                offset,
                character: c,
            })
        } else {
            None
        }
    })
}

/// Why a range name was refused: the rule it breaks, with the number that
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_RANGE_NAME_BYTES`].
    TooLong {
        /// Length of the name in bytes.
        length_bytes: usize,
    },
    /// The name holds a control character (Unicode Cc) at this byte offset.
    ControlCharacter {
        /// Byte offset of the character.
        offset: usize,
    },
    /// The name holds an invisible or bidirectional-control character (see
    /// the module docs of the rule) at this byte offset.
    InvisibleCharacter {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        character: char,
    },
}

/// Checks a range name that a caller wants written (the rule for new
/// names, see the module docs).
pub(crate) fn check_new_range_name(name: &str) -> Result<(), RangeNameError> {
    if name.is_empty() {
        return Err(RangeNameError::Empty);
    }
    if name.len() > MAX_RANGE_NAME_BYTES {
        return Err(RangeNameError::TooLong {
            length_bytes: name.len(),
        });
    }
    match first_forbidden_character(name) {
        None => Ok(()),
        Some(ForbiddenCharacter::Control { offset }) => {
            Err(RangeNameError::ControlCharacter { offset })
        }
        Some(ForbiddenCharacter::Invisible { offset, character }) => {
            Err(RangeNameError::InvisibleCharacter { offset, character })
        }
    }
}

/// Whether a range name read from disk or from a peer's bytes is one cpwal
/// could have stored (the rule for stored names, see the module docs).
pub(crate) fn is_stored_range_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_RANGE_NAME_BYTES
        && first_control_character(name).is_none()
}

impl std::fmt::Display for RangeNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("range name is empty"),
            Self::TooLong { length_bytes } => write!(
                f,
                "range name is {length_bytes} bytes long; the limit is {MAX_RANGE_NAME_BYTES}"
            ),
            Self::ControlCharacter { offset } => {
                ForbiddenCharacter::Control { offset: *offset }.describe("range name", f)
            }
            Self::InvisibleCharacter { offset, character } => ForbiddenCharacter::Invisible {
                offset: *offset,
                character: *character,
            }
            .describe("range name", f),
        }
    }
}

impl std::error::Error for RangeNameError {}

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
        // Every position in texts of every length up to past four blocks
        // (shorter than one, whole blocks, an overlapping last block), for
        // each control and the printable bytes around them.
        let probes = (0u8..=0x21).chain([0x7e, 0x7f]);
        for byte in probes {
            for length in 1..70 {
                for at in 0..length {
                    let mut text = vec![b'x'; length];
                    text[at] = byte;
                    let text = String::from_utf8(text).expect("ASCII");
                    let expected = (byte as char).is_control().then_some(at);
                    assert_eq!(
                        first_control_character(&text),
                        expected,
                        "{byte:#x} at {at} of {length}"
                    );
                }
            }
        }
        assert_eq!(first_control_character(""), None);
        assert_eq!(first_control_character("plain"), None);
    }

    #[test]
    fn first_forbidden_character_refuses_every_invisible_character_named_in_issue_13() {
        // Goal: each invisible or bidirectional-control character the issue
        // names is refused, reported with its byte offset, in ASCII and in
        // non-ASCII text. Method: each one placed after a prefix.
        let named = [0x00AD, 0xFEFF]
            .into_iter()
            .chain(0x200B..=0x200F)
            .chain(0x202A..=0x202E)
            .chain(0x2060..=0x2064)
            .chain(0x2066..=0x2069)
            .chain([0x2028, 0x2029, 0xE0041]);
        for code in named {
            let character = char::from_u32(code).expect("valid scalar");
            for prefix in ["CN=a", "CN=é"] {
                let text = format!("{prefix}{character}b");
                assert_eq!(
                    first_forbidden_character(&text),
                    Some(ForbiddenCharacter::Invisible {
                        offset: prefix.len(),
                        character
                    }),
                    "U+{code:04X}"
                );
            }
        }
        assert_eq!(
            first_forbidden_character("CN=a\u{200B}b"),
            Some(ForbiddenCharacter::Invisible {
                offset: 4,
                character: '\u{200B}'
            })
        );
        assert_eq!(
            first_forbidden_character("r\0"),
            Some(ForbiddenCharacter::Control { offset: 1 })
        );
    }

    #[test]
    fn first_forbidden_character_allows_visible_text_and_the_table_edges() {
        // Goal: the rule refuses exactly the table: visible non-ASCII text
        // passes, and so does the character just outside each range (unless
        // it is a control or in the next range). Method: the neighbours of
        // every range, and a few real names.
        for name in ["CN=José", "节点-7", "ränge/ß", "emoji-\u{1F600}", "a b"] {
            assert_eq!(first_forbidden_character(name), None, "{name}");
        }
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].1 < pair[1].0, "unsorted or overlapping: {pair:?}");
        }
        for &(first, last) in &INVISIBLE {
            for edge in [first, last] {
                assert!(is_invisible(edge) && !edge.is_control(), "{edge:?}");
            }
            let outside = [u32::from(first) - 1, u32::from(last) + 1];
            for code in outside {
                let c = char::from_u32(code).expect("valid scalar");
                let in_table = INVISIBLE.iter().any(|&(a, b)| (a..=b).contains(&c));
                if !in_table && !c.is_control() {
                    assert_eq!(
                        first_forbidden_character(&format!("x{c}")),
                        None,
                        "U+{code:04X}"
                    );
                }
            }
        }
    }

    #[test]
    fn check_new_range_name_names_the_rule_that_failed() {
        // Goal: a refused range name says which rule it broke, with the
        // number that shows it; the stored rule still accepts an invisible
        // character (old logs stay readable).
        let long = "r".repeat(MAX_RANGE_NAME_BYTES + 1);
        let cases = [
            ("", RangeNameError::Empty, "range name is empty".to_string()),
            (
                long.as_str(),
                RangeNameError::TooLong {
                    length_bytes: MAX_RANGE_NAME_BYTES + 1,
                },
                format!("range name is 1025 bytes long; the limit is {MAX_RANGE_NAME_BYTES}"),
            ),
            (
                "shard\n7",
                RangeNameError::ControlCharacter { offset: 5 },
                "range name holds a control character at byte 5".to_string(),
            ),
            (
                "shard-\u{202E}7",
                RangeNameError::InvisibleCharacter {
                    offset: 6,
                    character: '\u{202E}',
                },
                "range name holds the invisible character U+202E at byte 6".to_string(),
            ),
        ];
        for (name, error, message) in cases {
            assert_eq!(check_new_range_name(name), Err(error.clone()), "{name:?}");
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(
            check_new_range_name(&"r".repeat(MAX_RANGE_NAME_BYTES)),
            Ok(())
        );
        assert!(is_stored_range_name("shard-\u{202E}7"));
        assert!(!is_stored_range_name("shard\n7"));
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
