//! [`ClusterVoterIdentity`]: who a member is, taken from its certificate.

use std::fmt;
use std::sync::Arc;

use crate::text::{first_control_character, first_forbidden_character, ForbiddenCharacter};

/// The longest identity cpwal accepts, in bytes of UTF-8. Identities go to disk
/// (votes, log entries), so they are bounded; 255 leaves room for any
/// realistic certificate subject and fits a one-byte length.
pub const MAX_IDENTITY_BYTES: usize = 255;

/// A validated node identity, taken from a certificate subject.
///
/// Invariants, checked on construction and again when decoded from disk: the
/// text is trimmed, not empty, at most [`MAX_IDENTITY_BYTES`] bytes, and holds
/// no control characters (a NUL or newline in a subject is an attack, not a
/// name). An identity built by a caller also holds no invisible or
/// bidirectional-control character (Unicode Cf, Zl, Zp: `CN=a\u{200B}b`
/// would print as `CN=ab`); one decoded from disk or from a peer's bytes
/// is only held to the rules above, which are the rules cpwal always
/// enforced, so directories written before stay readable.
///
/// The text is immutable and shared: a clone costs a reference count, not a
/// copy, so the entries a caller builds and the catalog's range owners can
/// all hold the same few identities.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterVoterIdentity(Arc<str>);

/// Why a certificate subject is not a valid identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The subject is empty or only whitespace.
    Blank,
    /// The trimmed subject is longer than [`MAX_IDENTITY_BYTES`].
    TooLong {
        /// Length of the trimmed subject in bytes.
        length_bytes: usize,
    },
    /// The subject holds a control character at this byte offset.
    ControlCharacter {
        /// Byte offset of the character in the trimmed subject.
        offset: usize,
    },
    /// The subject holds an invisible or bidirectional-control character
    /// (Unicode categories Cf, Zl, Zp; see [`ClusterVoterIdentity`]) at this
    /// byte offset.
    InvisibleCharacter {
        /// Byte offset of the character in the trimmed subject.
        offset: usize,
        /// The character.
        character: char,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blank => write!(f, "identity is blank"),
            Self::TooLong { length_bytes } => write!(
                f,
                "identity is {length_bytes} bytes long; the limit is {MAX_IDENTITY_BYTES}"
            ),
            Self::ControlCharacter { offset } => {
                ForbiddenCharacter::Control { offset: *offset }.describe("identity", f)
            }
            Self::InvisibleCharacter { offset, character } => ForbiddenCharacter::Invisible {
                offset: *offset,
                character: *character,
            }
            .describe("identity", f),
        }
    }
}

impl std::error::Error for IdentityError {}

impl ClusterVoterIdentity {
    /// Builds an identity from a certificate subject such as `"CN=node-a"`.
    /// Surrounding whitespace is trimmed; a blank or over-long subject, or
    /// one holding a control or invisible character, is refused.
    pub fn from_certificate_subject(subject: &str) -> Result<Self, IdentityError> {
        let trimmed = subject.trim();
        validate(trimmed)?;
        match first_forbidden_character(trimmed) {
            Some(ForbiddenCharacter::Invisible { offset, character }) => {
                Err(IdentityError::InvisibleCharacter { offset, character })
            }
            // `validate` refused every control character already.
            Some(ForbiddenCharacter::Control { .. }) | None => Ok(Self(Arc::from(trimmed))),
        }
    }

    /// The identity's text, exactly as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of `text`, which must already have passed [`validate`]
    /// (as the codec's borrowed entries have): no second check, no trim.
    pub(crate) fn from_validated(text: &str) -> Self {
        debug_assert!(validate(text).is_ok());
        Self(Arc::from(text))
    }

    /// Whether another clone of this identity exists.
    pub(crate) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

/// Parses a certificate subject exactly as
/// [`from_certificate_subject`](ClusterVoterIdentity::from_certificate_subject)
/// does (trimmed, then validated), so `"CN=node-a".parse()` works.
impl std::str::FromStr for ClusterVoterIdentity {
    type Err = IdentityError;

    fn from_str(subject: &str) -> Result<Self, IdentityError> {
        Self::from_certificate_subject(subject)
    }
}

/// As [`from_certificate_subject`](ClusterVoterIdentity::from_certificate_subject).
impl TryFrom<&str> for ClusterVoterIdentity {
    type Error = IdentityError;

    fn try_from(subject: &str) -> Result<Self, IdentityError> {
        Self::from_certificate_subject(subject)
    }
}

/// Identities compare, order and hash exactly as their text does (the
/// derived impls use the one `Arc<str>` field, which compares and hashes as
/// its `str`), so sets and maps of identities can be searched with a `&str`.
impl std::borrow::Borrow<str> for ClusterVoterIdentity {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Checks the invariants of a stored identity's text (see
/// [`ClusterVoterIdentity`]; not the invisible characters, which only new
/// identities are refused for). A string that passes is already trimmed.
pub(crate) fn validate(text: &str) -> Result<(), IdentityError> {
    if text.is_empty() {
        return Err(IdentityError::Blank);
    }
    if text.len() > MAX_IDENTITY_BYTES {
        return Err(IdentityError::TooLong {
            length_bytes: text.len(),
        });
    }
    if let Some(offset) = first_control_character(text) {
        return Err(IdentityError::ControlCharacter { offset });
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        // Not trimmed. Only reachable from disk: constructors trim first.
        return Err(IdentityError::Blank);
    }
    Ok(())
}

impl fmt::Display for ClusterVoterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_certificate_subject_trims_whitespace() {
        let id = ClusterVoterIdentity::from_certificate_subject("  CN=node-a\t").unwrap();
        assert_eq!(id.as_str(), "CN=node-a");
        assert_eq!(id.to_string(), "CN=node-a");
    }

    #[test]
    fn from_certificate_subject_rejects_blank() {
        assert_eq!(
            ClusterVoterIdentity::from_certificate_subject(""),
            Err(IdentityError::Blank)
        );
        assert_eq!(
            ClusterVoterIdentity::from_certificate_subject(" \n\t "),
            Err(IdentityError::Blank)
        );
    }

    #[test]
    fn from_certificate_subject_bounds_length() {
        let longest = "x".repeat(MAX_IDENTITY_BYTES);
        assert!(ClusterVoterIdentity::from_certificate_subject(&longest).is_ok());
        let too_long = "x".repeat(MAX_IDENTITY_BYTES + 1);
        assert_eq!(
            ClusterVoterIdentity::from_certificate_subject(&too_long),
            Err(IdentityError::TooLong {
                length_bytes: MAX_IDENTITY_BYTES + 1
            })
        );
    }

    #[test]
    fn from_certificate_subject_rejects_control_characters() {
        assert_eq!(
            ClusterVoterIdentity::from_certificate_subject("CN=a\0b"),
            Err(IdentityError::ControlCharacter { offset: 4 })
        );
        assert!(ClusterVoterIdentity::from_certificate_subject("CN=a\nb").is_err());
    }

    #[test]
    fn parse_and_try_from_round_trip_through_display() {
        // Goal: `FromStr` and `TryFrom<&str>` are the certificate-subject
        // constructor (trimmed, validated), and an identity's `Display`
        // parses back to the same identity.
        let parsed: ClusterVoterIdentity = " CN=node-a ".parse().unwrap();
        let tried = ClusterVoterIdentity::try_from("CN=node-a").unwrap();
        assert_eq!(parsed, tried);
        assert_eq!(
            parsed.to_string().parse::<ClusterVoterIdentity>(),
            Ok(parsed)
        );
        assert_eq!(
            "".parse::<ClusterVoterIdentity>(),
            Err(IdentityError::Blank)
        );
        assert_eq!(
            ClusterVoterIdentity::try_from("CN=a\0b"),
            Err(IdentityError::ControlCharacter { offset: 4 })
        );
    }

    #[test]
    fn from_certificate_subject_rejects_invisible_characters() {
        // Goal: a subject that would print like another one is refused,
        // naming the character and its byte; the stored rule (disk) still
        // takes it, so an old directory's identity decodes.
        let error = ClusterVoterIdentity::from_certificate_subject("CN=a\u{200B}b").unwrap_err();
        assert_eq!(
            error,
            IdentityError::InvisibleCharacter {
                offset: 4,
                character: '\u{200B}'
            }
        );
        assert_eq!(
            error.to_string(),
            "identity holds the invisible character U+200B at byte 4"
        );
        for subject in [
            "\u{202E}CN=a",
            "CN=a\u{00AD}",
            "CN=\u{FEFF}a",
            "CN=\u{2066}a\u{2069}",
        ] {
            assert!(
                matches!(
                    ClusterVoterIdentity::from_certificate_subject(subject),
                    Err(IdentityError::InvisibleCharacter { .. })
                ),
                "{subject:?}"
            );
        }
        assert_eq!(validate("CN=a\u{200B}b"), Ok(()));
        assert!(ClusterVoterIdentity::from_certificate_subject("CN=José").is_ok());
    }

    #[test]
    fn identities_order_and_hash_by_text() {
        use std::collections::HashSet;
        let a = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
        let b = ClusterVoterIdentity::from_certificate_subject(" CN=b").unwrap();
        assert!(a < b);
        let set: HashSet<_> = [a.clone(), a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 2);
    }
}
