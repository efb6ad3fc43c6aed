//! What only a sole voter does: append and commit at once, and stand where
//! the seed's [`ControlPlaneConsensus`] is expected.

use std::panic::{self, AssertUnwindSafe};

use crate::catalog::ApplyOutcome;
use crate::codec::EntryView;
use crate::consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState,
};
use crate::error::{Error, Result};
use crate::identity::ClusterVoterIdentity;
use crate::io::Storage;

use super::{ControlPlaneNode, DurableControlPlane};

/// An entry a sole voter appended: where it is, and what applying it to the
/// catalog did. A fenced ownership transition is durable and committed
/// like any entry, and its outcome says it changed nothing
/// ([`ApplyOutcome::OwnershipFenced`]): check the outcome, not only `Ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The entry's index.
    pub index: ControlPlaneIndex,
    /// What applying it to the catalog did.
    pub outcome: ApplyOutcome,
}

/// Entries a sole voter appended in one call, at consecutive indexes from
/// `first_index`, with what applying each did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedBatch {
    /// The index of the first entry (of the first outcome).
    pub first_index: ControlPlaneIndex,
    /// What applying each entry did, in index order: one per entry.
    pub outcomes: Vec<ApplyOutcome>,
}

impl AppendedBatch {
    /// The index of the last entry; `None` for an empty batch.
    pub fn last_index(&self) -> Option<ControlPlaneIndex> {
        let count = self.outcomes.len() as u64;
        count
            .checked_sub(1)
            .map(|n| ControlPlaneIndex(self.first_index.0 + n))
    }

    /// Each entry's index with what applying it did, in order.
    pub fn iter(&self) -> impl Iterator<Item = (ControlPlaneIndex, &ApplyOutcome)> {
        let first = self.first_index.0;
        (first..).map(ControlPlaneIndex).zip(&self.outcomes)
    }
}

impl<S: Storage> DurableControlPlane<S> {
    /// Appends `entry` as the leader and returns, once it is durable and
    /// (this node being the sole voter) committed and applied to the
    /// catalog, its index and what applying it did. Unlike the trait's
    /// `append`, every refusal comes back typed: [`Error::NotLeader`] on a
    /// follower, [`Error::InvalidInput`] for an entry cpwal cannot store, a
    /// storage error otherwise.
    pub fn try_append(&mut self, entry: &ControlPlaneEntry) -> Result<Appended> {
        let mut outcomes = std::mem::take(&mut self.single_outcome);
        let appended = self.append_applying(std::slice::from_ref(entry), &mut outcomes);
        let outcome = outcomes.pop();
        outcomes.clear();
        self.single_outcome = outcomes;
        let index = appended?;
        let outcome = outcome.ok_or_else(|| unreported(index))?;
        Ok(Appended {
            index: ControlPlaneIndex(index),
            outcome,
        })
    }

    /// Appends several entries with a single sync, committed as
    /// [`DurableControlPlane::try_append`]'s, and returns the index of the
    /// first with what applying each did. Either every entry is validated
    /// and written or, on a refusal, none is.
    pub fn try_append_batch(&mut self, entries: &[ControlPlaneEntry]) -> Result<AppendedBatch> {
        let mut outcomes = Vec::with_capacity(entries.len());
        let first = self.append_applying(entries, &mut outcomes)?;
        if outcomes.len() != entries.len() {
            return Err(unreported(first + outcomes.len() as u64));
        }
        Ok(AppendedBatch {
            first_index: ControlPlaneIndex(first),
            outcomes,
        })
    }

    /// Writes `entries` after the log's end with one sync, commits and
    /// applies them (a sole voter's entries are committed by being
    /// durable), pushes what applying each did to `outcomes` (empty when
    /// called), in order, and returns the first one's index. On an error
    /// the caller discards `outcomes`.
    ///
    /// The catalog applies them while the disk writes them, between
    /// [`SegmentedLog::start_sync`](crate::log::SegmentedLog::start_sync)
    /// and the end of the sync, so the apply costs the caller no time of
    /// its own where the writeback takes longer. The catalog is ahead of
    /// the disk until the sync returns, which nothing can observe: the call
    /// holds `&mut self` throughout, and a failed sync (or a panic in it)
    /// undoes the apply, newest entry first, before its error returns (or
    /// the panic goes on). A failed append thus leaves the catalog as it
    /// found it (and the node stopped, as every failed sync does).
    fn append_applying(
        &mut self,
        entries: &[ControlPlaneEntry],
        outcomes: &mut Vec<ApplyOutcome>,
    ) -> Result<u64> {
        debug_assert!(outcomes.is_empty(), "outcomes pair with entries");
        let start = self.log.end_index();
        self.write_unsynced(entries)?;
        if self.catalog.applied_end().0 != start {
            // Committed entries wait to be applied before these (never
            // after a successful call): the plain order, sync then apply.
            self.log.sync()?;
            self.commit_written(start, entries, |applied| outcomes.push(applied))?;
            return Ok(start);
        }
        self.log.start_sync()?;
        // A panic in the apply or the sync (a bug, or a `Storage` that
        // panics) must not leave the catalog ahead of the disk for whoever
        // reads it next (a shared handle goes on past a poisoned lock): it
        // is undone before the panic goes on.
        let synced = panic::catch_unwind(AssertUnwindSafe(|| {
            self.apply_ahead(start, entries, outcomes)?;
            self.log.sync()
        }));
        match synced {
            Ok(Ok(())) => {
                self.commit_end = self.log.durable_end();
                Ok(start)
            }
            Ok(Err(error)) => {
                self.undo_ahead(entries, outcomes);
                Err(error)
            }
            Err(panicked) => {
                self.undo_ahead(entries, outcomes);
                panic::resume_unwind(panicked)
            }
        }
    }

    /// Applies `entries`, the next ones of the catalog from `start`, before
    /// they are durable (see [`Self::append_applying`]), pushing what
    /// applying each did to `outcomes`. A failure stops the node.
    fn apply_ahead(
        &mut self,
        start: u64,
        entries: &[ControlPlaneEntry],
        outcomes: &mut Vec<ApplyOutcome>,
    ) -> Result<()> {
        for (offset, entry) in entries.iter().enumerate() {
            let applied = self
                .catalog
                .apply(ControlPlaneIndex(start + offset as u64), entry);
            outcomes.push(self.stop_on_failure(applied)?);
        }
        Ok(())
    }

    /// Takes back what [`Self::apply_ahead`] applied: `outcomes[i]` is
    /// what applying `entries[i]` returned (there may be fewer outcomes
    /// than entries), the last of them the catalog's last applied entry.
    fn undo_ahead(&mut self, entries: &[ControlPlaneEntry], outcomes: &mut Vec<ApplyOutcome>) {
        for (entry, outcome) in entries.iter().zip(outcomes.drain(..)).rev() {
            let undone = self.catalog.undo_last(EntryView::of(entry), outcome);
            debug_assert!(undone.is_ok(), "an applied entry is there to undo");
        }
    }

    /// Commits what the sole voter just made durable (its entries are
    /// committed by being durable) and applies it, reporting the outcome of
    /// each entry of `entries`, written at `start`.
    fn commit_written(
        &mut self,
        start: u64,
        entries: &[ControlPlaneEntry],
        report: impl FnMut(ApplyOutcome),
    ) -> Result<()> {
        self.commit_end = self.log.durable_end();
        self.apply_in_hand(start, entries, report)
    }

    /// The typed error of the last trait [`append`](ControlPlaneConsensus::append)
    /// that was refused, set by each refused call and cleared by each
    /// successful one: right after a refusal, what the seed's
    /// `NotLeader` could not say (see the mapping on the trait impl).
    pub fn last_append_error(&self) -> Option<&Error> {
        self.last_append_error.as_ref()
    }
}

/// The sole voter is the seed's consensus engine. A replica is not: the
/// trait's `append` returns a committed index, which a replica's append
/// cannot (commit needs a quorum its caller counts); the replicated
/// implementor is `cpwal::raft::ReplicatedControlPlane` (feature
/// `openraft`).
impl<S: Storage> ControlPlaneConsensus for DurableControlPlane<S> {
    fn current_term(&self) -> ControlPlaneTerm {
        ControlPlaneNode::current_term(self)
    }

    fn leader(&self) -> Option<ClusterVoterIdentity> {
        ControlPlaneNode::leader(self)
    }

    fn is_leader(&self) -> bool {
        ControlPlaneNode::is_leader(self)
    }

    fn durable_vote(&self) -> DurableVoteState {
        ControlPlaneNode::durable_vote(self)
    }

    fn commit_index(&self) -> Option<ControlPlaneIndex> {
        ControlPlaneNode::commit_index(self)
    }

    /// Appends as [`DurableControlPlane::try_append`] does. The seed's error
    /// type has only `NotLeader`, so each typed refusal maps to the closest
    /// honest answer, and never names this node (a forwarding caller would
    /// send the request back to itself):
    ///
    /// | [`DurableControlPlane::try_append`] refuses with | the trait returns |
    /// |---|---|
    /// | [`Error::NotLeader`] `{ leader }` (not the leader) | `NotLeader { leader }`: the leader this node knows, to forward to |
    /// | [`Error::InvalidInput`] (an entry cpwal cannot store; the node still leads) | `NotLeader { leader: None }` |
    /// | a storage error, or [`Error::Failed`] once one stopped the node (it steps down) | `NotLeader { leader: None }` |
    ///
    /// The typed error of the call is [`DurableControlPlane::last_append_error`]
    /// right after it returns; a successful append clears it.
    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError> {
        let appended = self.try_append(&entry);
        trait_answer(appended, &self.identity, &mut self.last_append_error)
    }
}

/// An entry committed by an append whose outcome was not reported: the
/// catalog applied it elsewhere, which the engine's order rules out. Said,
/// not assumed.
pub(super) fn unreported(index: u64) -> Error {
    Error::OutcomeNotReported { index }
}

/// The trait's `append` answer for what `try_append` returned (the table on
/// the trait impl), keeping a refusal's typed error in `last_error` and
/// clearing it on success.
pub(super) fn trait_answer(
    appended: Result<Appended>,
    me: &ClusterVoterIdentity,
    last_error: &mut Option<Error>,
) -> Result<ControlPlaneIndex, ControlPlaneError> {
    match appended {
        Ok(appended) => {
            *last_error = None;
            Ok(appended.index)
        }
        Err(error) => {
            let refusal = refusal_for(&error, me);
            *last_error = Some(error);
            Err(refusal)
        }
    }
}

/// The seed's answer for a refused append (the table on the trait impl):
/// the known leader when this node is not it, otherwise no leader; never
/// `me`.
fn refusal_for(error: &Error, me: &ClusterVoterIdentity) -> ControlPlaneError {
    let leader = match error {
        Error::NotLeader { leader } => leader.clone().filter(|l| l != me),
        _ => None,
    };
    ControlPlaneError::NotLeader { leader }
}
