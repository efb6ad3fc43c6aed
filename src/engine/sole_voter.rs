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

    /// Appends as [`DurableControlPlane::try_append`] does. The trait's error
    /// type has room only for `NotLeader`, so a storage failure (which also
    /// makes the node step down) or a refused entry is reported as
    /// `NotLeader` with the leader this node now knows, and the typed error
    /// is kept in [`DurableControlPlane::last_error`].
    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError> {
        match self.try_append(&entry) {
            Ok(index) => Ok(index),
            Err(Error::NotLeader { leader }) => Err(ControlPlaneError::NotLeader { leader }),
            Err(error) => {
                self.last_error = Some(error);
                Err(ControlPlaneError::NotLeader {
                    leader: self.leader(),
                })
            }
        }
    }
}
