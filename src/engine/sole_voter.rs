//! What only a sole voter does: append and commit at once, and stand where
//! the seed's [`ControlPlaneConsensus`] is expected.

use crate::consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState,
};
use crate::error::{Error, Result};
use crate::identity::ClusterVoterIdentity;
use crate::io::Storage;

use super::{ControlPlaneNode, DurableControlPlane};

impl<S: Storage> DurableControlPlane<S> {
    /// Appends `entry` as the leader and returns its index once it is
    /// durable and (this node being the sole voter) committed and applied
    /// to the catalog. Unlike the trait's `append`, every refusal comes back
    /// typed: [`Error::NotLeader`] on a follower, [`Error::InvalidInput`]
    /// for an entry cpwal cannot store, a storage error otherwise.
    pub fn try_append(&mut self, entry: &ControlPlaneEntry) -> Result<ControlPlaneIndex> {
        let range = self.try_append_batch(std::slice::from_ref(entry))?;
        Ok(ControlPlaneIndex(range.start))
    }

    /// Appends several entries with a single sync, committed as
    /// [`DurableControlPlane::try_append`]'s, and returns the range of
    /// indexes they received. Either every entry is validated and written
    /// or, on a refusal, none is.
    pub fn try_append_batch(
        &mut self,
        entries: &[ControlPlaneEntry],
    ) -> Result<std::ops::Range<u64>> {
        let written = self.append_durably(entries)?;
        self.commit_end = self.log.durable_end();
        self.apply_in_hand(written.start, entries)?;
        Ok(written)
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
        let error = match self.try_append(&entry) {
            Ok(index) => {
                self.last_append_error = None;
                return Ok(index);
            }
            Err(error) => error,
        };
        let leader = match &error {
            Error::NotLeader { leader } => leader.clone().filter(|l| *l != self.identity),
            _ => None,
        };
        self.last_append_error = Some(error);
        Err(ControlPlaneError::NotLeader { leader })
    }
}
