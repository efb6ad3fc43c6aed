//! The binary encoding of [`ControlPlaneEntry`]: versioned, little-endian and
//! bounded. See [`crate::format`] for the byte layout.
//!
//! Decoding re-validates everything it reads and never trusts a length beyond
//! the bytes in hand, so no input can make it panic or allocate more than the
//! input's own size.
//!
//! The encoding also keeps a property the record framing relies on: an encoded
//! entry never holds more than [`MAX_ZERO_RUN_BYTES`] zero bytes in a row (its
//! strings hold no NUL and every length is non-zero). A torn write leaves
//! whole sectors at their old content, zero in a fresh segment; because no
//! written record can contain a zero sector, a zero sector inside a failed
//! record proves the write was torn rather than the data rotted.

use crate::consensus::{
    ControlPlaneEntry, ControlPlaneTerm, MembershipChange, OwnershipTransition,
};
pub use crate::decode_error::DecodeError;
use crate::error::InvalidInput;
use crate::identity::{self, ClusterVoterIdentity, MAX_IDENTITY_BYTES};
pub use crate::text::MAX_RANGE_NAME_BYTES;
use crate::text::{check_new_range_name, is_stored_range_name};

/// An entry decoded in place: its strings borrow the encoded bytes. It holds
/// exactly what the owned [`ControlPlaneEntry`] holds and meets the same
/// invariants (every identity passed [`identity::validate`], every range
/// name [`is_stored_range_name`]); it is built only by
/// [`decode_entry_view`], borrowed from an owned entry with
/// [`EntryView::of`], or rebuilt by group commit's cache of unapplied
/// entries from the strings of such a view, so those checks cannot be
/// skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryView<'a> {
    /// [`MembershipChange::Admit`] of this identity.
    Admit(&'a str),
    /// [`MembershipChange::Remove`] of this identity.
    Remove(&'a str),
    /// An [`OwnershipTransition`].
    OwnershipTransition {
        range: &'a str,
        new_owner: &'a str,
        ownership_epoch: u64,
    },
    /// [`ControlPlaneEntry::LeaderConfiguration`].
    LeaderConfiguration {
        term: ControlPlaneTerm,
        leader: &'a str,
    },
}

impl<'a> EntryView<'a> {
    /// The view of an owned entry (valid by construction, see
    /// [`validate_entry`] for its range name).
    pub(crate) fn of(entry: &'a ControlPlaneEntry) -> Self {
        match entry {
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id)) => {
                Self::Admit(id.as_str())
            }
            ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id)) => {
                Self::Remove(id.as_str())
            }
            ControlPlaneEntry::OwnershipTransition(t) => Self::OwnershipTransition {
                range: &t.range,
                new_owner: t.new_owner.as_str(),
                ownership_epoch: t.ownership_epoch,
            },
            ControlPlaneEntry::LeaderConfiguration { term, leader } => Self::LeaderConfiguration {
                term: *term,
                leader: leader.as_str(),
            },
        }
    }

    /// The owned entry, copying the strings.
    pub(crate) fn to_entry(self) -> ControlPlaneEntry {
        let id = ClusterVoterIdentity::from_validated;
        match self {
            Self::Admit(member) => {
                ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id(member)))
            }
            Self::Remove(member) => {
                ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id(member)))
            }
            Self::OwnershipTransition {
                range,
                new_owner,
                ownership_epoch,
            } => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: range.to_owned(),
                new_owner: id(new_owner),
                ownership_epoch,
            }),
            Self::LeaderConfiguration { term, leader } => ControlPlaneEntry::LeaderConfiguration {
                term,
                leader: id(leader),
            },
        }
    }
}

/// The entry encoding this build writes and reads.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// The largest encoded entry: an ownership transition with a maximal range
/// name and a maximal identity.
pub const MAX_ENTRY_BYTES: usize = 2 + (2 + MAX_RANGE_NAME_BYTES) + (1 + MAX_IDENTITY_BYTES) + 8;

/// The longest run of zero bytes an encoded entry can contain: one `u64` that
/// is zero followed by nothing, or preceded by the high byte of a length.
pub const MAX_ZERO_RUN_BYTES: usize = 9;

// An encoded entry is a record payload: it must fit the record framing and
// keep the torn-write rule (see `crate::format`).
const _: () = assert!(MAX_ENTRY_BYTES <= crate::format::MAX_RECORD_PAYLOAD_BYTES);
const _: () = assert!(MAX_ZERO_RUN_BYTES <= crate::format::MAX_PAYLOAD_ZERO_RUN_BYTES);

const TAG_ADMIT: u8 = 1;
const TAG_REMOVE: u8 = 2;
const TAG_OWNERSHIP_TRANSITION: u8 = 3;
const TAG_LEADER_CONFIGURATION: u8 = 4;

/// Checks what may not be written: a range name that is empty, longer than
/// [`MAX_RANGE_NAME_BYTES`] or holding a control or invisible character
/// (the rule for new names, see [`RangeNameError`](crate::RangeNameError)).
/// Identities are valid by construction. Decoding holds range names only to
/// the rule for stored names, so logs written before stay readable.
pub fn validate_entry(entry: &ControlPlaneEntry) -> Result<(), InvalidInput> {
    if let ControlPlaneEntry::OwnershipTransition(t) = entry {
        check_new_range_name(&t.range).map_err(InvalidInput::RangeName)?;
    }
    Ok(())
}

/// Appends the encoding of `entry` to `out`. The entry must be one cpwal
/// stores: it passed [`validate_entry`], or it was decoded (a snapshot of a
/// catalog that holds a name an older build wrote re-encodes it, under the
/// rule for stored names); a caller that has not checked it uses
/// [`encode_checked_entry`].
pub fn encode_entry(entry: &ControlPlaneEntry, out: &mut Vec<u8>) {
    debug_assert!(match entry {
        ControlPlaneEntry::OwnershipTransition(t) => is_stored_range_name(&t.range),
        _ => true,
    });
    encode_fields(entry, out);
}

/// Checks `entry` ([`validate_entry`]) and appends its encoding to `out`;
/// a refused entry leaves `out` unchanged. This is the append path's one
/// check of each field: identities were checked when they were built, the
/// range name is checked here, and nothing is checked again while
/// encoding.
pub fn encode_checked_entry(
    entry: &ControlPlaneEntry,
    out: &mut Vec<u8>,
) -> Result<(), InvalidInput> {
    validate_entry(entry)?;
    encode_fields(entry, out);
    Ok(())
}

/// The encoding itself, with no check.
fn encode_fields(entry: &ControlPlaneEntry, out: &mut Vec<u8>) {
    out.push(ENTRY_FORMAT_VERSION);
    match entry {
        ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id)) => {
            out.push(TAG_ADMIT);
            put_identity(out, id);
        }
        ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id)) => {
            out.push(TAG_REMOVE);
            put_identity(out, id);
        }
        ControlPlaneEntry::OwnershipTransition(t) => {
            out.push(TAG_OWNERSHIP_TRANSITION);
            out.extend_from_slice(&(t.range.len() as u16).to_le_bytes());
            out.extend_from_slice(t.range.as_bytes());
            put_identity(out, &t.new_owner);
            out.extend_from_slice(&t.ownership_epoch.to_le_bytes());
        }
        ControlPlaneEntry::LeaderConfiguration { term, leader } => {
            out.push(TAG_LEADER_CONFIGURATION);
            out.extend_from_slice(&term.0.to_le_bytes());
            put_identity(out, leader);
        }
    }
}

/// The encoding of `entry` in a fresh buffer.
pub fn encoded_entry(entry: &ControlPlaneEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_entry(entry, &mut out);
    out
}

fn put_identity(out: &mut Vec<u8>, id: &ClusterVoterIdentity) {
    out.push(id.as_str().len() as u8);
    out.extend_from_slice(id.as_str().as_bytes());
}

/// Decodes one entry that must fill `bytes` exactly.
pub fn decode_entry(bytes: &[u8]) -> Result<ControlPlaneEntry, DecodeError> {
    decode_entry_view(bytes).map(EntryView::to_entry)
}

/// Decodes one entry that must fill `bytes` exactly, in place: the one
/// decoder, which [`decode_entry`] wraps. Nothing is allocated.
pub(crate) fn decode_entry_view(bytes: &[u8]) -> Result<EntryView<'_>, DecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.u8()?;
    if version != ENTRY_FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let entry = match reader.u8()? {
        TAG_ADMIT => EntryView::Admit(reader.identity()?),
        TAG_REMOVE => EntryView::Remove(reader.identity()?),
        TAG_OWNERSHIP_TRANSITION => EntryView::OwnershipTransition {
            range: reader.range_name()?,
            new_owner: reader.identity()?,
            ownership_epoch: reader.u64()?,
        },
        TAG_LEADER_CONFIGURATION => EntryView::LeaderConfiguration {
            term: ControlPlaneTerm(reader.u64()?),
            leader: reader.identity()?,
        },
        tag => return Err(DecodeError::UnknownTag(tag)),
    };
    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.bytes.len()));
    }
    Ok(entry)
}

/// Decodes identity text read from disk, re-checking every invariant.
pub fn decode_identity(bytes: &[u8]) -> Result<ClusterVoterIdentity, DecodeError> {
    decode_identity_text(bytes).map(ClusterVoterIdentity::from_validated)
}

/// Identity text read from disk, in place, once every invariant of
/// [`ClusterVoterIdentity`] is checked ([`identity::validate`]).
fn decode_identity_text(bytes: &[u8]) -> Result<&str, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
    identity::validate(text).map_err(DecodeError::Identity)?;
    Ok(text)
}

/// A cursor that refuses to read past its input.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("took 8 bytes")))
    }

    fn identity(&mut self) -> Result<&'a str, DecodeError> {
        let length = self.u8()? as usize;
        decode_identity_text(self.take(length)?)
    }

    fn range_name(&mut self) -> Result<&'a str, DecodeError> {
        let length = u16::from_le_bytes(self.take(2)?.try_into().expect("took 2 bytes")) as usize;
        if length > MAX_RANGE_NAME_BYTES {
            return Err(DecodeError::RangeName);
        }
        let text = std::str::from_utf8(self.take(length)?).map_err(|_| DecodeError::NotUtf8)?;
        if !is_stored_range_name(text) {
            return Err(DecodeError::RangeName);
        }
        Ok(text)
    }
}

/// The longest run of zero bytes in `bytes`.
pub fn longest_zero_run(bytes: &[u8]) -> usize {
    bytes.split(|&b| b != 0).map(<[u8]>::len).max().unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::IdentityError;
    use proptest::prelude::*;

    pub fn identity_strategy() -> impl Strategy<Value = ClusterVoterIdentity> {
        "[!-~]{1,40}( [!-~é]{1,20})?"
            .prop_map(|s| ClusterVoterIdentity::from_certificate_subject(&s).unwrap())
    }

    pub fn entry_strategy() -> impl Strategy<Value = ControlPlaneEntry> {
        prop_oneof![
            identity_strategy()
                .prop_map(|id| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id))),
            identity_strategy()
                .prop_map(|id| ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id))),
            (
                "[a-z:\\[\\],0-9() ]{1,64}",
                identity_strategy(),
                any::<u64>()
            )
                .prop_map(|(range, new_owner, ownership_epoch)| {
                    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                        range,
                        new_owner,
                        ownership_epoch,
                    })
                }),
            (any::<u64>(), identity_strategy()).prop_map(|(term, leader)| {
                ControlPlaneEntry::LeaderConfiguration {
                    term: ControlPlaneTerm(term),
                    leader,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn decode_entry_round_trips_every_variant(entry in entry_strategy()) {
            let bytes = encoded_entry(&entry);
            prop_assert!(bytes.len() <= MAX_ENTRY_BYTES);
            prop_assert!(longest_zero_run(&bytes) <= MAX_ZERO_RUN_BYTES);
            prop_assert_eq!(decode_entry(&bytes), Ok(entry));
        }

        #[test]
        fn decode_entry_view_borrows_what_decode_entry_owns(entry in entry_strategy()) {
            // Goal: the in-place decoder (used at open) and the owned one see
            // the same entry. Method: decode an encoding both ways.
            let bytes = encoded_entry(&entry);
            prop_assert_eq!(decode_entry_view(&bytes), Ok(EntryView::of(&entry)));
            prop_assert_eq!(decode_entry_view(&bytes).map(EntryView::to_entry), Ok(entry));
        }

        #[test]
        fn decode_entry_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_entry(&bytes);
        }

        #[test]
        fn decode_entry_rejects_every_truncation(entry in entry_strategy()) {
            let bytes = encoded_entry(&entry);
            for cut in 0..bytes.len() {
                prop_assert!(decode_entry(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn encode_entry_of_maximal_entry_fits_the_bound() {
        let entry = ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "r".repeat(MAX_RANGE_NAME_BYTES),
            new_owner: ClusterVoterIdentity::from_certificate_subject(
                &"i".repeat(MAX_IDENTITY_BYTES),
            )
            .unwrap(),
            ownership_epoch: 0,
        });
        assert!(validate_entry(&entry).is_ok());
        assert_eq!(encoded_entry(&entry).len(), MAX_ENTRY_BYTES);
    }

    #[test]
    fn validate_entry_refuses_bad_range_names() {
        // Goal: an entry to be written is refused for each broken rule of
        // its range name, and the error names that rule.
        use crate::text::RangeNameError;
        let owner = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
        for (range, rule) in [
            ("".to_string(), RangeNameError::Empty),
            (
                "r".repeat(MAX_RANGE_NAME_BYTES + 1),
                RangeNameError::TooLong {
                    length_bytes: MAX_RANGE_NAME_BYTES + 1,
                },
            ),
            (
                "a\0b".into(),
                RangeNameError::ControlCharacter { offset: 1 },
            ),
            (
                "a\u{200B}b".into(),
                RangeNameError::InvisibleCharacter {
                    offset: 1,
                    character: '\u{200B}',
                },
            ),
        ] {
            let entry = ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range,
                new_owner: owner.clone(),
                ownership_epoch: 1,
            });
            assert_eq!(validate_entry(&entry), Err(InvalidInput::RangeName(rule)));
        }
    }

    #[test]
    fn decode_entry_reads_invisible_characters_written_before_the_rule() {
        // Goal: an entry an older build wrote with an invisible character in
        // its range name or an identity (allowed then) still decodes: the
        // new rule refuses new names, never a log already on disk. Method:
        // encode without validation, as the older build did, and decode.
        let legacy_owner = ClusterVoterIdentity::from_validated("CN=a\u{200B}b");
        let entry = ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "shard\u{202E}7".into(),
            new_owner: legacy_owner.clone(),
            ownership_epoch: 2,
        });
        assert!(validate_entry(&entry).is_err());
        let mut bytes = Vec::new();
        encode_fields(&entry, &mut bytes);
        assert_eq!(decode_entry(&bytes), Ok(entry));
        assert_eq!(decode_identity(b"CN=a\xE2\x80\x8Bb"), Ok(legacy_owner));
    }

    #[test]
    fn decode_entry_rejects_unknown_version_and_tag() {
        assert_eq!(decode_entry(&[9, 1]), Err(DecodeError::UnknownVersion(9)));
        assert_eq!(decode_entry(&[1, 77]), Err(DecodeError::UnknownTag(77)));
        assert_eq!(decode_entry(&[]), Err(DecodeError::Truncated));
    }

    #[test]
    fn decode_entry_revalidates_identities_from_disk() {
        // Admit of an identity with a NUL byte, of a blank one, of one with
        // trailing bytes, and of untrimmed ones.
        assert!(matches!(
            decode_entry(&[1, TAG_ADMIT, 3, b'a', 0, b'b']),
            Err(DecodeError::Identity(
                IdentityError::ControlCharacter { .. }
            ))
        ));
        assert!(matches!(
            decode_entry(&[1, TAG_ADMIT, 1, b' ']),
            Err(DecodeError::Identity(IdentityError::Blank))
        ));
        assert_eq!(
            decode_entry(&[1, TAG_ADMIT, 1, b'a', 0]),
            Err(DecodeError::TrailingBytes(1))
        );
        // Untrimmed identities (whitespace before or after the text).
        for untrimmed in [&b" a"[..], b"a ", "a\u{2003}".as_bytes()] {
            let mut bytes = vec![1, TAG_ADMIT, untrimmed.len() as u8];
            bytes.extend_from_slice(untrimmed);
            assert_eq!(
                decode_entry(&bytes),
                Err(DecodeError::Identity(IdentityError::Blank))
            );
        }
    }
}
