//! [`DecodeError`]: why bytes read from disk or from a peer do not decode.
//! A leaf module, so that both the codecs and [`crate::error`] can name it
//! without depending on each other.

use std::fmt;

use crate::identity::IdentityError;

/// Why bytes do not decode into an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the entry does.
    Truncated,
    /// The entry was written by an encoding version this build does not know.
    UnknownVersion(u8),
    /// The entry kind is not one this version defines.
    UnknownTag(u8),
    /// An identity fails validation.
    Identity(IdentityError),
    /// A range name is empty, too long or holds control characters.
    RangeName,
    /// A string is not UTF-8.
    NotUtf8,
    /// Bytes remain after the entry.
    TrailingBytes(usize),
    /// A field of an enclosing structure (such as the openraft entry
    /// envelope) is out of its documented range; names the field.
    Malformed(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "entry is truncated"),
            Self::UnknownVersion(v) => write!(f, "unknown entry encoding version {v}"),
            Self::UnknownTag(t) => write!(f, "unknown entry kind {t}"),
            Self::Identity(e) => write!(f, "bad identity: {e}"),
            Self::RangeName => write!(f, "bad range name"),
            Self::NotUtf8 => write!(f, "string is not UTF-8"),
            Self::TrailingBytes(n) => write!(f, "{n} bytes after the entry"),
            Self::Malformed(field) => write!(f, "malformed {field}"),
        }
    }
}

impl std::error::Error for DecodeError {}
