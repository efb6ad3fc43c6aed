//! [`AppliedAhead`]: the entries a sole voter's [`SharedControlPlane`]
//! applies to its catalog while the sync that makes them durable runs.
//!
//! Applying a batch to a catalog the caches have forgotten costs about as
//! much as the batch's sync on a fast disk, so the `&mut` append applies
//! while the disk writes (see `DurableControlPlane::append_applying`). The
//! shared handle does the same in the group-commit leader's
//! [`begin_sync`](crate::log::SyncOwner::begin_sync), under the engine
//! lock: it writes the buffered records, starts their writeback, applies
//! every entry the sync will cover, and releases the lock before waiting
//! for the sync. Until the sync ends those entries are not committed, and
//! nothing may show them:
//! * **Outcomes** wait here and are posted to their writers' claims only
//!   as the commit point passes them
//!   ([`ControlPlaneNode::commit_durable`]), in the same critical section
//!   that moves it.
//! * **Readers** of the catalog ([`SharedControlPlane::with_catalog`],
//!   [`SharedControlPlane::into_inner`]) first take them back, newest
//!   first ([`ControlPlaneNode::cancel_applied_ahead`]); the sync's end then
//!   applies them after it, as when nothing was applied ahead. A reader
//!   never waits for the disk: it pays at most the undo of one sync's
//!   entries, and only while such a sync runs. After a reader took entries
//!   back, the next [`READER_PAUSE_SYNCS`] syncs apply after the sync, so
//!   that a node read all the time does not apply every batch twice.
//! * **A failed sync** (the node stops) or **a panic** in it leaves them
//!   here: they are written, so a later sync that succeeds makes them
//!   durable and commits them like any others, and a reader takes them back
//!   first.
//!
//! [`SharedControlPlane`]: super::SharedControlPlane
//! [`SharedControlPlane::with_catalog`]: super::SharedControlPlane::with_catalog
//! [`SharedControlPlane::into_inner`]: super::SharedControlPlane::into_inner

use std::collections::VecDeque;

use crate::catalog::ApplyOutcome;
use crate::codec::EntryView;
use crate::consensus::ControlPlaneIndex;
use crate::error::Result;
use crate::io::Storage;
use crate::log::{LogFile, SyncDescription, TailSync};
use crate::node_role::Role;

use super::ControlPlaneNode;

/// What applying each entry from `start` did, for entries the catalog
/// applied before their sync ended.
///
/// Invariant (checked by [`ControlPlaneNode::check_applied_ahead`]): when
/// not empty, the outcomes are those of the catalog's last applied
/// entries, `start..catalog.applied_end()`, none of them committed
/// (`start >= commit_end`), each still held by the node's cache of
/// unapplied entries.
#[derive(Debug, Default)]
pub(super) struct AppliedAhead {
    start: u64,
    outcomes: VecDeque<ApplyOutcome>,
    /// How many more syncs apply after the sync, not ahead of it, because a
    /// reader took entries back.
    paused_syncs: u32,
}

/// How many syncs after a reader took entries back apply after the sync.
const READER_PAUSE_SYNCS: u32 = 16;

impl AppliedAhead {
    /// Whether no entry is applied ahead of its sync.
    fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Takes out the oldest entry's index and outcome, if its index is
    /// below `commit_end`.
    fn pop_committed(&mut self, commit_end: u64) -> Option<(u64, ApplyOutcome)> {
        if self.start >= commit_end {
            return None;
        }
        let outcome = self.outcomes.pop_front()?;
        self.start += 1;
        Some((self.start - 1, outcome))
    }

    /// Takes out the newest entry's index and outcome.
    fn pop_newest(&mut self) -> Option<(u64, ApplyOutcome)> {
        let outcome = self.outcomes.pop_back()?;
        Some((self.start + self.outcomes.len() as u64, outcome))
    }
}

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// The group-commit leader's start of a sync on `description`, under the
    /// engine lock: the tail's sync handle, and on a sole voter whose
    /// catalog is at its commit point, the writeback of the records started
    /// and every entry the sync covers that the cache holds applied ahead
    /// (see the module documentation). A failure to write or to start the
    /// writeback is latched as a failed sync.
    pub(super) fn begin_sync_applying_ahead(
        &mut self,
        description: SyncDescription,
    ) -> Result<TailSync<LogFile<S>>> {
        if !R::OWN_VOTE_IS_MAJORITY || self.catalog.applied_end().0 != self.commit_end {
            return self.log.tail_sync_handle(description);
        }
        if self.applied_ahead.paused_syncs > 0 {
            self.applied_ahead.paused_syncs -= 1;
            return self.log.tail_sync_handle(description);
        }
        self.log.start_sync()?;
        let sync = self.log.tail_sync_handle(description)?;
        self.apply_ahead_to(sync.covered_end());
        Ok(sync)
    }

    /// Applies the entries from the catalog's end up to `end`, while the
    /// cache holds them, keeping each outcome in `applied_ahead`.
    fn apply_ahead_to(&mut self, end: u64) {
        debug_assert!(self.applied_ahead.is_empty(), "the catalog was committed");
        self.applied_ahead.start = self.catalog.applied_end().0;
        while self.catalog.applied_end().0 < end {
            let index = self.catalog.applied_end();
            let Some(entry) = self.unapplied.peek(index.0) else {
                break;
            };
            // Refused only out of order, which the loop cannot be: what is
            // not applied here is applied after the sync.
            let Ok(outcome) = self.catalog.apply_decoded(index, entry) else {
                break;
            };
            self.applied_ahead.outcomes.push_back(outcome);
        }
        self.check_applied_ahead();
    }

    /// Posts the outcome of each entry applied ahead that the commit point
    /// has now passed, and takes those entries out of the cache.
    pub(super) fn post_committed_ahead(&mut self) {
        if self.applied_ahead.is_empty() {
            return;
        }
        let mut poster = self.outcomes.poster();
        let mut last_posted = None;
        while let Some((index, outcome)) = self.applied_ahead.pop_committed(self.commit_end) {
            poster.post(index, outcome);
            last_posted = Some(index);
        }
        if let Some(index) = last_posted {
            // Taking an entry takes every one below it too.
            self.unapplied.take(index);
        }
    }

    /// Takes back every entry applied ahead of its sync, newest first: the
    /// catalog is then at the commit point, and whatever commits those
    /// entries applies them again. Called before anything reads the
    /// catalog of a shared node.
    pub(super) fn cancel_applied_ahead(&mut self) {
        if !self.applied_ahead.is_empty() {
            self.applied_ahead.paused_syncs = READER_PAUSE_SYNCS;
        }
        while let Some((index, outcome)) = self.applied_ahead.pop_newest() {
            let undone = match self.unapplied.peek(index) {
                Some(entry) => self.catalog.undo_last(entry, outcome),
                None => self.read(ControlPlaneIndex(index)).and_then(|read| {
                    let entry = EntryView::of(&read.entry);
                    self.catalog.undo_last(entry, outcome)
                }),
            };
            debug_assert!(undone.is_ok(), "an entry applied ahead is held to undo");
            let _ = self.stop_on_failure(undone);
        }
        self.check_applied_ahead();
    }

    /// [`AppliedAhead`]'s invariant, in debug builds.
    fn check_applied_ahead(&self) {
        let ahead = &self.applied_ahead;
        let applied_end = self.catalog.applied_end().0;
        if ahead.is_empty() {
            debug_assert!(
                applied_end <= self.commit_end,
                "applied past the commit point"
            );
        } else {
            debug_assert!(ahead.start >= self.commit_end, "a committed entry is held");
            debug_assert_eq!(ahead.start + ahead.outcomes.len() as u64, applied_end);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{ApplyOutcome, ControlPlaneCatalog};
    use crate::consensus::{
        ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, MembershipChange,
        OwnershipTransition,
    };
    use crate::identity::ClusterVoterIdentity;
    use crate::log::SyncDescription;
    use crate::options::Options;
    use crate::DurableControlPlane;

    use super::READER_PAUSE_SYNCS;

    fn voter(n: u64) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{n}")).unwrap()
    }

    fn transition(range: u64, owner: u64, epoch: u64) -> ControlPlaneEntry {
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: format!("range-{range}"),
            new_owner: voter(owner),
            ownership_epoch: epoch,
        })
    }

    /// Every kind of outcome: moved, new, fenced, admitted, already a
    /// member, removed, not a member, leader, stale leader.
    fn batch() -> Vec<ControlPlaneEntry> {
        let member = |change| ControlPlaneEntry::MembershipChange(change);
        let leader = |term| ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(term),
            leader: voter(1),
        };
        vec![
            transition(1, 2, 10),
            transition(9, 3, 1),
            transition(2, 3, 1),
            member(MembershipChange::Admit(voter(7))),
            member(MembershipChange::Admit(voter(1))),
            member(MembershipChange::Remove(voter(2))),
            member(MembershipChange::Remove(voter(8))),
            leader(50),
            leader(40),
            transition(9, 4, 2),
        ]
    }

    /// What applying `entries` from `catalog`'s end does, on a copy.
    fn applied(
        catalog: &ControlPlaneCatalog,
        entries: &[ControlPlaneEntry],
    ) -> (ControlPlaneCatalog, Vec<ApplyOutcome>) {
        let mut catalog = catalog.clone();
        let outcomes = entries
            .iter()
            .map(|entry| catalog.apply(catalog.applied_end(), entry).unwrap())
            .collect();
        (catalog, outcomes)
    }

    #[test]
    fn entries_applied_ahead_are_hidden_taken_back_and_committed_with_their_outcomes() {
        // Goal: the group-commit leader's start of a sync applies the
        // entries it covers (so that applying overlaps the disk), without
        // committing them; taking them back restores the catalog exactly;
        // the sync's end commits them and posts each outcome to its writer,
        // the ones a fresh apply gives. Method: a sole voter with ranges,
        // members and a leader; write a batch of every kind of outcome
        // unsynced; begin a sync; check, take back, compare; begin again
        // (the syncs right after a reader took entries back apply nothing
        // ahead; a second start while ahead applies nothing more); run the
        // sync, record it; collect the claim.
        let dir = tempfile::tempdir().unwrap();
        let mut node =
            DurableControlPlane::create(dir.path(), voter(1), Options::default()).unwrap();
        let setup = [
            transition(1, 1, 5),
            transition(2, 1, 5),
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(1))),
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(2))),
        ];
        node.try_append_batch(&setup).unwrap();
        let before = node.catalog().clone();
        let entries = batch();
        let (expected, outcomes) = applied(&before, &entries);
        let (written, _ticket, claim) = node.write_batch_unsynced(&entries).unwrap();
        let claim = claim.unwrap();

        let sync = node
            .begin_sync_applying_ahead(SyncDescription::Writer)
            .unwrap();
        assert_eq!(node.catalog(), &expected, "applied ahead of the sync");
        assert_eq!(
            node.commit_index(),
            Some(ControlPlaneIndex(written.start - 1))
        );
        assert!(
            !claim.collect(|_| {}),
            "an outcome was posted before its commit"
        );
        node.cancel_applied_ahead();
        assert_eq!(node.catalog(), &before, "taken back");
        drop(sync);
        // A reader took entries back: the next syncs apply after the sync.
        for _ in 0..READER_PAUSE_SYNCS {
            drop(node.begin_sync_applying_ahead(SyncDescription::Writer));
            assert_eq!(
                node.catalog(),
                &before,
                "applied ahead right after a reader"
            );
        }

        let sync = node
            .begin_sync_applying_ahead(SyncDescription::Writer)
            .unwrap();
        let again = node
            .begin_sync_applying_ahead(SyncDescription::Second)
            .unwrap();
        assert_eq!(node.catalog(), &expected, "applied once");
        sync.run().unwrap();
        node.finish_sync(&sync);
        drop(again);
        assert!(node.applied_ahead.is_empty());
        assert_eq!(node.catalog(), &expected);
        assert_eq!(
            node.commit_index(),
            Some(ControlPlaneIndex(written.end - 1))
        );
        let mut collected = Vec::new();
        assert!(claim.collect(|outcome| collected.push(outcome)));
        assert_eq!(collected, outcomes);
    }
}
