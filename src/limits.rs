//! The ranges of terms and indexes, and the checks that keep numbers from
//! peers, callers and files inside them.
//!
//! A peer's request can carry any `u64`. Obeying a term of `u64::MAX` used
//! to wedge a node (its next election overflowed: a panic in debug builds,
//! and in release a durable term of 0 that the next open refused), and an
//! index of `u64::MAX` panicked in `index + 1`. The rule:
//!
//! * A node holds terms up to [`MAX_TERM`] and entries at indexes up to
//!   [`MAX_INDEX`], so every "one past" value (a log's end, a commit end)
//!   is at most `MAX_INDEX + 1` and no arithmetic on them can overflow.
//! * A term above `MAX_TERM`, or an index above `MAX_INDEX`, from a peer or
//!   a caller is refused with
//!   [`InvalidInput::Term`] or
//!   [`InvalidInput::Index`] before anything
//!   changes: the term is not adopted, no vote is recorded, nothing is
//!   written. Such a value is a bug or an attack (a `-1` cast to unsigned
//!   is the usual one); no honest cluster reaches it, since terms rise by
//!   one per election: 2^63 elections, a thousand a second, take 292
//!   million years.
//! * A node at `MAX_TERM` refuses to start an election (there is no next
//!   term) with `InvalidInput::Term`, instead of wrapping to term 0: the
//!   cluster stops electing loudly, never silently rolls back. It is
//!   reachable only through a peer that sent exactly `MAX_TERM`.
//! * Values read from disk outside these ranges (a segment starting past
//!   `MAX_INDEX + 1`, say) are corruption
//!   ([`CorruptionKind::OutOfRange`](crate::CorruptionKind::OutOfRange)):
//!   cpwal never writes them.
//!
//! The bound is 2^63 − 1 for both so that peers written with signed 64-bit
//! integers (as some Raft implementations and wire formats are) can carry
//! every value cpwal accepts.

use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::InvalidInput;

/// The highest term a node adopts or stands in: 2^63 − 1.
pub const MAX_TERM: u64 = (1 << 63) - 1;

/// The highest index an entry can have: 2^63 − 1. A log's end (one past
/// its last index) is at most `MAX_INDEX + 1`.
pub const MAX_INDEX: u64 = (1 << 63) - 1;

/// The highest "one past the last index" any log or commit point reaches.
pub const MAX_END: u64 = MAX_INDEX + 1;

/// `term` if it is at most [`MAX_TERM`].
pub(crate) fn check_term(term: ControlPlaneTerm) -> Result<u64, InvalidInput> {
    if term.0 > MAX_TERM {
        return Err(InvalidInput::Term {
            term: term.0,
            reason: "above MAX_TERM (2^63 - 1), the highest term a node adopts",
        });
    }
    Ok(term.0)
}

/// The term after `term`, if one is left.
pub(crate) fn next_term(term: u64) -> Result<u64, InvalidInput> {
    match ControlPlaneTerm(term).checked_next() {
        Some(next) if next.0 <= MAX_TERM => Ok(next.0),
        _ => Err(InvalidInput::Term {
            term,
            reason: "no election is possible: the next term would be above MAX_TERM (2^63 - 1)",
        }),
    }
}

/// `index` if it is at most [`MAX_INDEX`].
pub(crate) fn check_index(index: u64) -> Result<u64, InvalidInput> {
    if index > MAX_INDEX {
        return Err(InvalidInput::Index {
            index,
            reason: "above MAX_INDEX (2^63 - 1): no log holds an entry there",
        });
    }
    Ok(index)
}

/// One past `index` (0 for `None`, an empty prefix), if `index` is at most
/// [`MAX_INDEX`].
pub(crate) fn end_after(index: Option<ControlPlaneIndex>) -> Result<u64, InvalidInput> {
    match index {
        None => Ok(0),
        Some(index) => Ok(check_index(index.0)? + 1),
    }
}

/// `end + count` if it is at most [`MAX_END`]: where a run of `count`
/// entries starting at `end` would leave the log.
pub(crate) fn end_plus(end: u64, count: usize) -> Result<u64, InvalidInput> {
    let count = count as u64;
    match end.checked_add(count) {
        Some(new_end) if new_end <= MAX_END => Ok(new_end),
        _ => Err(InvalidInput::Index {
            index: end.saturating_add(count.saturating_sub(1)),
            reason: "above MAX_INDEX (2^63 - 1): no log holds an entry there",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_plus_stops_at_the_last_index() {
        assert_eq!(end_plus(5, 0), Ok(5));
        assert_eq!(end_plus(5, 3), Ok(8));
        assert_eq!(end_plus(MAX_INDEX, 1), Ok(MAX_END));
        assert!(end_plus(MAX_END, 1).is_err());
        assert!(end_plus(MAX_INDEX, 2).is_err());
        assert!(end_plus(u64::MAX, 2).is_err());
        assert_eq!(end_plus(MAX_END, 0), Ok(MAX_END));
    }

    #[test]
    fn terms_and_indexes_stop_at_their_maximum() {
        assert_eq!(check_term(ControlPlaneTerm(MAX_TERM)), Ok(MAX_TERM));
        assert!(check_term(ControlPlaneTerm(MAX_TERM + 1)).is_err());
        assert_eq!(next_term(MAX_TERM - 1), Ok(MAX_TERM));
        assert!(next_term(MAX_TERM).is_err());
        assert!(next_term(u64::MAX).is_err());
        assert_eq!(end_after(None), Ok(0));
        assert_eq!(end_after(Some(ControlPlaneIndex(MAX_INDEX))), Ok(MAX_END));
        assert!(end_after(Some(ControlPlaneIndex(u64::MAX))).is_err());
    }
}
