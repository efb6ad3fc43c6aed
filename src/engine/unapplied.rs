//! [`UnappliedEntries`]: the entries a [`SharedControlPlane`] wrote and whose
//! sync has not yet committed them, kept in memory so the catalog can apply
//! them (while the sync runs, or after it) without reading them back from
//! the log. An entry applied while its sync runs stays here until it is
//! committed, so that a reader can take it back ([`UnappliedEntries::peek`]).
//!
//! Reading back costs a checksum, a decode with its allocations and page
//! faults on the read map for every entry; on the group-commit path it was a
//! third of the CPU spent per append. Decoding a copy of the encoded bytes
//! instead still re-validated every name (5–10% of a 64-entry batch). So the
//! cache keeps each entry's fields, its strings copied into one reused text
//! buffer: nothing is allocated once the buffers have grown, and nothing is
//! validated twice. It is only a cache: an index it does not hold is read
//! from the log as before.
//!
//! [`SharedControlPlane`]: super::SharedControlPlane

use std::ops::Range;

use crate::codec::EntryView;
use crate::consensus::{ControlPlaneEntry, ControlPlaneTerm};

/// Entries at consecutive indexes from `start`, written to the log by this
/// node and not yet applied to the catalog.
///
/// Invariant: `held[next + k]`, with its strings in `text`, is exactly the
/// entry the log holds at index `start + k` (so it passed the same checks as
/// any [`ControlPlaneEntry`]). Whoever changes what the log holds at an index
/// this may cover calls [`UnappliedEntries::clear`].
///
/// Bound: taken entries (`held[..next]`) are dropped once they are at least
/// half of `held`, so under writes that always overlap a sync in flight
/// (the cache never empties) it holds at most about twice the entries not
/// yet applied, plus [`DROP_TAKEN_AFTER`].
#[derive(Debug, Default)]
pub(super) struct UnappliedEntries {
    start: u64,
    text: String,
    held: Vec<Held>,
    next: usize,
}

/// How many taken entries may wait in the cache before they are dropped
/// (dropping moves the rest down, so it is done in bulk).
const DROP_TAKEN_AFTER: usize = 64;

/// One entry's fields; strings are spans of `UnappliedEntries::text`.
#[derive(Debug)]
enum Held {
    Admit(Range<usize>),
    Remove(Range<usize>),
    OwnershipTransition {
        range: Range<usize>,
        new_owner: Range<usize>,
        ownership_epoch: u64,
    },
    LeaderConfiguration {
        term: ControlPlaneTerm,
        leader: Range<usize>,
    },
}

impl Held {
    /// Where the entry's first string starts in the text buffer (strings
    /// are kept in entry order, so every later entry's start after it).
    fn text_start(&self) -> usize {
        match self {
            Held::Admit(span) | Held::Remove(span) => span.start,
            Held::OwnershipTransition { range, .. } => range.start,
            Held::LeaderConfiguration { leader, .. } => leader.start,
        }
    }

    /// Moves every span `by` bytes toward the front of the buffer.
    fn shift_text(&mut self, by: usize) {
        let shift = |span: &mut Range<usize>| *span = span.start - by..span.end - by;
        match self {
            Held::Admit(span) | Held::Remove(span) => shift(span),
            Held::OwnershipTransition {
                range, new_owner, ..
            } => {
                shift(range);
                shift(new_owner);
            }
            Held::LeaderConfiguration { leader, .. } => shift(leader),
        }
    }
}

impl UnappliedEntries {
    /// Remembers `entries`, just written at consecutive indexes from
    /// `start`. If they do not follow the ones held, those are forgotten: the
    /// cache holds one run of consecutive indexes.
    pub(super) fn remember(&mut self, start: u64, entries: &[ControlPlaneEntry]) {
        if self.next == self.held.len() || start != self.start + self.count() {
            self.clear();
            self.start = start;
        } else if self.next >= DROP_TAKEN_AFTER && self.next * 2 >= self.held.len() {
            self.drop_taken();
        }
        for entry in entries {
            let held = match EntryView::of(entry) {
                EntryView::Admit(member) => Held::Admit(self.keep(member)),
                EntryView::Remove(member) => Held::Remove(self.keep(member)),
                EntryView::OwnershipTransition {
                    range,
                    new_owner,
                    ownership_epoch,
                } => Held::OwnershipTransition {
                    range: self.keep(range),
                    new_owner: self.keep(new_owner),
                    ownership_epoch,
                },
                EntryView::LeaderConfiguration { term, leader } => Held::LeaderConfiguration {
                    term,
                    leader: self.keep(leader),
                },
            };
            self.held.push(held);
        }
    }

    /// The entry at `index`, taken out of the cache together with every
    /// entry below it; `None` if the cache does not hold it.
    pub(super) fn take(&mut self, index: u64) -> Option<EntryView<'_>> {
        let position = self.position(index)?;
        self.next = position + 1;
        self.start = index + 1;
        Some(self.view(position))
    }

    /// The entry at `index`, left in the cache; `None` if the cache does
    /// not hold it.
    pub(super) fn peek(&self, index: u64) -> Option<EntryView<'_>> {
        self.position(index).map(|position| self.view(position))
    }

    /// Where `held` keeps the entry at `index`, if it does.
    fn position(&self, index: u64) -> Option<usize> {
        if index < self.start || index - self.start >= self.count() {
            return None;
        }
        Some(self.next + (index - self.start) as usize)
    }

    /// The entry `held[position]`, its strings borrowed from the text buffer.
    fn view(&self, position: usize) -> EntryView<'_> {
        let text = |span: &Range<usize>| &self.text[span.clone()];
        match &self.held[position] {
            Held::Admit(member) => EntryView::Admit(text(member)),
            Held::Remove(member) => EntryView::Remove(text(member)),
            Held::OwnershipTransition {
                range,
                new_owner,
                ownership_epoch,
            } => EntryView::OwnershipTransition {
                range: text(range),
                new_owner: text(new_owner),
                ownership_epoch: *ownership_epoch,
            },
            Held::LeaderConfiguration { term, leader } => EntryView::LeaderConfiguration {
                term: *term,
                leader: text(leader),
            },
        }
    }

    /// Forgets every entry (keeping the buffers' capacity).
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.held.clear();
        self.next = 0;
    }

    /// Drops the entries already taken and their text, moving the rest to
    /// the front (their spans shifted by the text dropped).
    fn drop_taken(&mut self) {
        let text_taken = self.held[self.next].text_start();
        self.held.drain(..self.next);
        self.text.drain(..text_taken);
        for held in &mut self.held {
            held.shift_text(text_taken);
        }
        self.next = 0;
    }

    /// How many entries are held.
    fn count(&self) -> u64 {
        (self.held.len() - self.next) as u64
    }

    /// Copies `text` into the buffer and returns its span there.
    fn keep(&mut self, text: &str) -> Range<usize> {
        let begin = self.text.len();
        self.text.push_str(text);
        begin..self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{MembershipChange, OwnershipTransition};
    use crate::identity::ClusterVoterIdentity;

    fn voter(n: u64) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{n}")).unwrap()
    }

    /// A different kind of entry for each index, so a mix-up shows.
    fn entry(index: u64) -> ControlPlaneEntry {
        match index % 4 {
            0 => ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(index))),
            1 => ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter(index))),
            2 => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: format!("range-{index}"),
                new_owner: voter(index),
                ownership_epoch: index,
            }),
            _ => ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(index),
                leader: voter(index),
            },
        }
    }

    fn remember(cache: &mut UnappliedEntries, indexes: Range<u64>) {
        let entries: Vec<_> = indexes.clone().map(entry).collect();
        cache.remember(indexes.start, &entries);
    }

    fn taken(cache: &mut UnappliedEntries, index: u64) -> Option<ControlPlaneEntry> {
        cache.take(index).map(EntryView::to_entry)
    }

    #[test]
    fn take_serves_only_the_indexes_remembered() {
        // Goal: the cache answers an index only with the entry written
        // there, of every kind. Method: remember runs, one not following the
        // other, and take indexes inside, below and past them.
        let mut cache = UnappliedEntries::default();
        remember(&mut cache, 5..8);
        assert_eq!(taken(&mut cache, 4), None);
        assert_eq!(taken(&mut cache, 6), Some(entry(6)), "skips 5");
        assert_eq!(taken(&mut cache, 6), None, "taken once");
        remember(&mut cache, 8..10);
        assert_eq!(taken(&mut cache, 7), Some(entry(7)));
        assert_eq!(taken(&mut cache, 8), Some(entry(8)));
        assert_eq!(taken(&mut cache, 9), Some(entry(9)));
        assert_eq!(taken(&mut cache, 10), None);
        remember(&mut cache, 20..21);
        assert_eq!(taken(&mut cache, 10), None, "a gap resets the run");
        assert_eq!(taken(&mut cache, 20), Some(entry(20)));
        remember(&mut cache, 21..23);
        cache.clear();
        assert_eq!(taken(&mut cache, 21), None);
    }

    #[test]
    fn peek_serves_what_take_would_and_keeps_it() {
        // Goal: a peeked entry stays in the cache (an entry applied while
        // its sync runs is taken only once committed, and may be peeked
        // again to undo it), and peeking disturbs nothing. Method: peek
        // held, taken and unknown indexes around takes and a later write.
        let mut cache = UnappliedEntries::default();
        remember(&mut cache, 3..6);
        let peeked = |cache: &UnappliedEntries, index| cache.peek(index).map(EntryView::to_entry);
        assert_eq!(peeked(&cache, 4), Some(entry(4)));
        assert_eq!(peeked(&cache, 4), Some(entry(4)), "still held");
        assert_eq!(peeked(&cache, 2), None);
        assert_eq!(peeked(&cache, 6), None);
        assert_eq!(taken(&mut cache, 3), Some(entry(3)), "peeking took nothing");
        assert_eq!(peeked(&cache, 3), None, "taken");
        remember(&mut cache, 6..7);
        assert_eq!(peeked(&cache, 5), Some(entry(5)));
        assert_eq!(peeked(&cache, 6), Some(entry(6)));
        assert_eq!(taken(&mut cache, 4), Some(entry(4)));
    }

    #[test]
    fn taken_entries_are_dropped_while_newer_ones_wait() {
        // Goal: a cache that never empties (each write lands while an
        // earlier entry still waits for its sync: steady concurrent load)
        // stays bounded, and serves every entry exactly as written across
        // the drops. Method: remember one entry per round while one older
        // entry is still held, take the older one; check each taken entry
        // and the buffers' lengths.
        let mut cache = UnappliedEntries::default();
        remember(&mut cache, 0..1);
        for index in 1..2000u64 {
            remember(&mut cache, index..index + 1);
            assert_eq!(taken(&mut cache, index - 1), Some(entry(index - 1)));
            assert!(
                cache.held.len() <= 2 * DROP_TAKEN_AFTER + 2,
                "{}",
                cache.held.len()
            );
            assert!(cache.text.len() <= 64 * (2 * DROP_TAKEN_AFTER + 2));
        }
        assert_eq!(taken(&mut cache, 1999), Some(entry(1999)));
    }

    #[test]
    fn remember_reuses_the_buffers_once_everything_was_taken() {
        // Goal: steady state allocates nothing. Method: remember and take
        // the same amount repeatedly; the buffers never hold more than one
        // batch.
        let mut cache = UnappliedEntries::default();
        for round in 0..10u64 {
            remember(&mut cache, round * 4..round * 4 + 4);
            for index in round * 4..round * 4 + 4 {
                assert_eq!(taken(&mut cache, index), Some(entry(index)));
            }
            assert!(cache.held.len() <= 4);
        }
    }
}
