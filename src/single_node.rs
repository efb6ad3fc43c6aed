//! The in-memory reference engine: a sole voter, leader of term 1, that keeps
//! its log in a `Vec`. It is the model the durable engine is checked against.

use crate::consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState,
};
use crate::identity::ClusterVoterIdentity;

/// A single-node control plane held in memory: the node is the only voter and
/// therefore leader of term 1, having voted for itself. Nothing survives the
/// process; use [`DurableControlPlane`](crate::DurableControlPlane) for that.
#[derive(Debug)]
pub struct SingleNodeControlPlane {
    identity: ClusterVoterIdentity,
    term: ControlPlaneTerm,
    is_leader: bool,
    vote: DurableVoteState,
    log: Vec<ControlPlaneEntry>,
}

impl SingleNodeControlPlane {
    /// A control plane in which `identity` has elected itself leader of term 1
    /// with its own vote: the one-member majority.
    pub fn bootstrap_leader(identity: ClusterVoterIdentity) -> Self {
        let term = ControlPlaneTerm::GENESIS.next();
        Self {
            term,
            is_leader: true,
            vote: DurableVoteState {
                term,
                voted_for: Some(identity.clone()),
            },
            identity,
            log: Vec::new(),
        }
    }

    /// The committed entries, in log order.
    pub fn entries(&self) -> &[ControlPlaneEntry] {
        &self.log
    }
}

impl ControlPlaneConsensus for SingleNodeControlPlane {
    fn current_term(&self) -> ControlPlaneTerm {
        self.term
    }

    fn leader(&self) -> Option<ClusterVoterIdentity> {
        self.is_leader.then(|| self.identity.clone())
    }

    fn is_leader(&self) -> bool {
        self.is_leader
    }

    fn durable_vote(&self) -> DurableVoteState {
        self.vote.clone()
    }

    fn commit_index(&self) -> Option<ControlPlaneIndex> {
        let last = self.log.len().checked_sub(1)?;
        Some(ControlPlaneIndex(last as u64))
    }

    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError> {
        if !self.is_leader {
            return Err(ControlPlaneError::NotLeader {
                leader: self.leader(),
            });
        }
        self.log.push(entry);
        Ok(ControlPlaneIndex(self.log.len() as u64 - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{MembershipChange, OwnershipTransition};

    fn voter(subject: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
    }

    #[test]
    fn bootstrap_leader_votes_for_itself_in_term_one() {
        let id = voter("CN=node-a");
        let cp = SingleNodeControlPlane::bootstrap_leader(id.clone());

        assert_eq!(cp.current_term(), ControlPlaneTerm(1));
        assert!(cp.is_leader());
        assert_eq!(cp.leader(), Some(id.clone()));
        assert_eq!(
            cp.durable_vote(),
            DurableVoteState {
                term: ControlPlaneTerm(1),
                voted_for: Some(id),
            }
        );
        assert_eq!(cp.commit_index(), None, "an empty log has no commit index");
    }

    #[test]
    fn append_ownership_transition_advances_commit_index() {
        let mut cp = SingleNodeControlPlane::bootstrap_leader(voter("CN=node-a"));
        let entry = ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "users:[0,1000)".to_string(),
            new_owner: voter("CN=node-b"),
            ownership_epoch: 7,
        });

        let index = cp.append(entry).expect("the leader may append");

        assert_eq!(index, ControlPlaneIndex(0));
        assert_eq!(cp.commit_index(), Some(ControlPlaneIndex(0)));
        assert_eq!(cp.entries().len(), 1);
    }

    #[test]
    fn append_assigns_increasing_indexes() {
        let mut cp = SingleNodeControlPlane::bootstrap_leader(voter("CN=node-a"));
        let first = cp
            .append(ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(1),
                leader: voter("CN=node-a"),
            })
            .unwrap();
        let second = cp
            .append(ControlPlaneEntry::MembershipChange(
                MembershipChange::Admit(voter("CN=node-b")),
            ))
            .unwrap();

        assert!(second > first);
        assert_eq!(cp.commit_index(), Some(second));
    }

    #[test]
    fn append_on_follower_is_not_leader() {
        let mut cp = SingleNodeControlPlane::bootstrap_leader(voter("CN=node-a"));
        cp.is_leader = false;

        let err = cp
            .append(ControlPlaneEntry::MembershipChange(
                MembershipChange::Remove(voter("CN=node-b")),
            ))
            .expect_err("a follower must not append");

        assert_eq!(err, ControlPlaneError::NotLeader { leader: None });
        assert!(cp.entries().is_empty());
    }
}
