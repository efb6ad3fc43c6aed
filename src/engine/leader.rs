//! The leader side of a multi-node cluster (a [`ReplicaControlPlane`]):
//! winning an election the caller counted, appending entries that are durable but not yet committed, and
//! committing them once the caller learned a quorum holds them.

use crate::consensus::{ControlPlaneEntry, ControlPlaneIndex};
use crate::error::{Error, InvalidInput, ReplicationError, Result};
use crate::io::Storage;

use super::ReplicaControlPlane;

impl<S: Storage> ReplicaControlPlane<S> {
    /// Makes this replica the leader of `term` after the caller counted a
    /// quorum of granted votes for it. The node must be a candidate in
    /// `term`: its current term, with its own vote (from
    /// [`start_election`](super::ControlPlaneNode::start_election)). Nothing
    /// is written: the vote is already durable, and leadership is not (a
    /// restarted node follows).
    /// Raft's leader then appends an entry of its term (for instance a
    /// `LeaderConfiguration`) so that it can commit.
    pub fn become_leader(&mut self, term: crate::ControlPlaneTerm) -> Result<()> {
        self.check_not_failed()?;
        if term.0 != self.hard_state.term || !self.holds_own_vote() {
            return Err(Error::Replication(ReplicationError::NotCandidate {
                term: term.0,
                current_term: self.hard_state.term,
            }));
        }
        self.leader = Some(self.identity.clone());
        Ok(())
    }

    /// Appends `entry` in the leader's term and returns its index once it is
    /// durable here. It is NOT committed: the caller replicates it and calls
    /// [`ReplicaControlPlane::advance_commit`] once a quorum holds it.
    /// Refusals are typed: [`Error::NotLeader`] on a node that is not the
    /// leader, [`Error::InvalidInput`] for an entry cpwal cannot store, a
    /// storage error otherwise.
    pub fn append_uncommitted(&mut self, entry: &ControlPlaneEntry) -> Result<ControlPlaneIndex> {
        let written = self.append_durably(std::slice::from_ref(entry))?;
        Ok(ControlPlaneIndex(written.start))
    }

    /// Several entries with one sync, as
    /// [`ReplicaControlPlane::append_uncommitted`]; returns their indexes.
    pub fn append_uncommitted_batch(
        &mut self,
        entries: &[ControlPlaneEntry],
    ) -> Result<std::ops::Range<ControlPlaneIndex>> {
        let written = self.append_durably(entries)?;
        Ok(ControlPlaneIndex::range(written))
    }

    /// Commits every entry through `index`, for a leader that learned a
    /// quorum holds it; durable before it returns, then applied to the
    /// catalog. An index at or below the commit index changes nothing (commit
    /// never decreases). Refused: an index past the durable log
    /// ([`InvalidInput::Index`]); an entry of an older term
    /// ([`ReplicationError::CommitOfOlderTerm`]: Raft commits older entries
    /// only through one of the leader's own term, figure 8); a node that is
    /// not the leader ([`Error::NotLeader`]).
    pub fn advance_commit(&mut self, index: ControlPlaneIndex) -> Result<()> {
        self.check_leads()?;
        if index.0 < self.commit_end {
            return Ok(());
        }
        if index.0 >= self.log.durable_end() {
            return Err(InvalidInput::Index {
                index: index.0,
                reason: "cannot commit past the durable end of the log",
            }
            .into());
        }
        let entry_term = self.log.term_at(index.0)?;
        if entry_term != self.hard_state.term {
            return Err(Error::Replication(ReplicationError::CommitOfOlderTerm {
                index: index.0,
                entry_term,
                leader_term: self.hard_state.term,
            }));
        }
        self.persist_commit_end(index.0 + 1)?;
        self.commit_end = index.0 + 1;
        self.apply_committed()
    }
}
