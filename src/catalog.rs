//! [`ControlPlaneCatalog`]: the control-plane state obtained by applying the
//! committed log entries in order.
//!
//! Applying is deterministic: the same entries in the same order give the
//! same catalog on every node, and every entry gets a typed
//! [`ApplyOutcome`], including the entries the catalog refuses (a fenced
//! ownership transition, a stale leader record). A refused entry leaves the
//! state unchanged apart from the count of refusals.

use std::collections::{BTreeMap, BTreeSet};

use crate::consensus::{
    ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, MembershipChange, OwnershipTransition,
};
use crate::error::{InvalidInput, Result};
use crate::identity::ClusterVoterIdentity;

/// Who owns a range, and under which ownership epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeOwnership {
    /// The current owner.
    pub owner: ClusterVoterIdentity,
    /// The epoch of the transition that made it owner; only a higher epoch
    /// may replace it.
    pub epoch: u64,
}

/// What applying one committed entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A new member was admitted.
    Admitted,
    /// The member was already admitted; nothing changed.
    AlreadyMember,
    /// A member was removed.
    Removed,
    /// The member to remove was not a member; nothing changed.
    NotMember,
    /// The range changed owner; `previous` is the ownership it replaced.
    OwnershipTransferred {
        /// The ownership before, `None` for a range seen for the first time.
        previous: Option<RangeOwnership>,
    },
    /// Fenced: the transition's epoch does not exceed the range's current
    /// epoch. Recorded as refused; the range is unchanged.
    OwnershipFenced {
        /// The range's epoch, which the transition did not exceed.
        current_epoch: u64,
    },
    /// The election of a leader for a new term was recorded.
    LeaderRecorded,
    /// Refused: a leader record for a term not above the latest recorded one.
    LeaderTermNotNewer {
        /// The latest term already recorded.
        latest_term: ControlPlaneTerm,
    },
}

impl ApplyOutcome {
    /// Whether the catalog refused the entry (state unchanged).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::OwnershipFenced { .. } | Self::LeaderTermNotNewer { .. }
        )
    }
}

/// The applied control-plane state.
///
/// Invariants: `applied_end` is one past the last applied index (entries
/// `0..applied_end` were applied in order, exactly once); every recorded
/// leader term is strictly greater than the one before it; each range's epoch
/// only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlaneCatalog {
    members: BTreeSet<ClusterVoterIdentity>,
    ranges: BTreeMap<String, RangeOwnership>,
    leaders: Vec<(ControlPlaneTerm, ClusterVoterIdentity)>,
    refused: u64,
    applied_end: u64,
}

impl ControlPlaneCatalog {
    /// The empty catalog, before index 0 is applied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the entry at `index`, which must be the next one
    /// ([`ControlPlaneCatalog::applied_end`]); anything else is refused with
    /// [`InvalidInput::Index`] and changes nothing.
    pub fn apply(
        &mut self,
        index: ControlPlaneIndex,
        entry: &ControlPlaneEntry,
    ) -> Result<ApplyOutcome> {
        if index.0 != self.applied_end {
            return Err(InvalidInput::Index {
                index: index.0,
                reason: "catalog entries must be applied in order, each once",
            }
            .into());
        }
        let outcome = match entry {
            ControlPlaneEntry::MembershipChange(change) => self.apply_membership(change),
            ControlPlaneEntry::OwnershipTransition(transition) => self.apply_ownership(transition),
            ControlPlaneEntry::LeaderConfiguration { term, leader } => {
                self.apply_leader(*term, leader)
            }
        };
        if outcome.is_refusal() {
            self.refused += 1;
        }
        self.applied_end += 1;
        Ok(outcome)
    }

    fn apply_membership(&mut self, change: &MembershipChange) -> ApplyOutcome {
        match change {
            MembershipChange::Admit(member) if self.members.insert(member.clone()) => {
                ApplyOutcome::Admitted
            }
            MembershipChange::Admit(_) => ApplyOutcome::AlreadyMember,
            MembershipChange::Remove(member) if self.members.remove(member) => {
                ApplyOutcome::Removed
            }
            MembershipChange::Remove(_) => ApplyOutcome::NotMember,
        }
    }

    fn apply_ownership(&mut self, transition: &OwnershipTransition) -> ApplyOutcome {
        let current = self.ranges.get(&transition.range);
        if let Some(current) = current {
            if transition.ownership_epoch <= current.epoch {
                return ApplyOutcome::OwnershipFenced {
                    current_epoch: current.epoch,
                };
            }
        }
        let next = RangeOwnership {
            owner: transition.new_owner.clone(),
            epoch: transition.ownership_epoch,
        };
        let previous = self.ranges.insert(transition.range.clone(), next);
        ApplyOutcome::OwnershipTransferred { previous }
    }

    fn apply_leader(
        &mut self,
        term: ControlPlaneTerm,
        leader: &ClusterVoterIdentity,
    ) -> ApplyOutcome {
        if let Some(&(latest_term, _)) = self.leaders.last() {
            if term <= latest_term {
                return ApplyOutcome::LeaderTermNotNewer { latest_term };
            }
        }
        self.leaders.push((term, leader.clone()));
        ApplyOutcome::LeaderRecorded
    }

    /// One past the last applied index (0: nothing applied).
    pub fn applied_end(&self) -> u64 {
        self.applied_end
    }

    /// The authorized members.
    pub fn members(&self) -> &BTreeSet<ClusterVoterIdentity> {
        &self.members
    }

    /// Whether `member` is authorized.
    pub fn is_member(&self, member: &ClusterVoterIdentity) -> bool {
        self.members.contains(member)
    }

    /// The ownership of every range, by name.
    pub fn ranges(&self) -> &BTreeMap<String, RangeOwnership> {
        &self.ranges
    }

    /// The ownership of `range`, if any transition for it was applied.
    pub fn owner_of(&self, range: &str) -> Option<&RangeOwnership> {
        self.ranges.get(range)
    }

    /// The elected-leader history, oldest term first, strictly increasing.
    pub fn leader_history(&self) -> &[(ControlPlaneTerm, ClusterVoterIdentity)] {
        &self.leaders
    }

    /// How many applied entries were refused (fenced or stale).
    pub fn refused_count(&self) -> u64 {
        self.refused
    }

    /// Rebuilds a catalog from its parts (used when reading a snapshot, which
    /// has validated them). Leader terms must be strictly increasing.
    pub(crate) fn from_parts(
        members: BTreeSet<ClusterVoterIdentity>,
        ranges: BTreeMap<String, RangeOwnership>,
        leaders: Vec<(ControlPlaneTerm, ClusterVoterIdentity)>,
        refused: u64,
        applied_end: u64,
    ) -> Self {
        Self {
            members,
            ranges,
            leaders,
            refused,
            applied_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(name).unwrap()
    }

    fn transfer(range: &str, owner: &str, epoch: u64) -> ControlPlaneEntry {
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: range.into(),
            new_owner: id(owner),
            ownership_epoch: epoch,
        })
    }

    fn apply_all(entries: &[ControlPlaneEntry]) -> (ControlPlaneCatalog, Vec<ApplyOutcome>) {
        let mut catalog = ControlPlaneCatalog::new();
        let outcomes = entries
            .iter()
            .enumerate()
            .map(|(i, e)| catalog.apply(ControlPlaneIndex(i as u64), e).unwrap())
            .collect();
        (catalog, outcomes)
    }

    #[test]
    fn apply_ownership_fences_epochs_not_above_current() {
        // Goal: a transition whose epoch does not exceed the range's epoch is
        // refused and leaves the range unchanged. Method: epochs 5, 5, 3, 6.
        let (catalog, outcomes) = apply_all(&[
            transfer("r1", "CN=a", 5),
            transfer("r1", "CN=b", 5),
            transfer("r1", "CN=c", 3),
            transfer("r1", "CN=d", 6),
        ]);
        assert_eq!(
            outcomes[0],
            ApplyOutcome::OwnershipTransferred { previous: None }
        );
        assert_eq!(
            outcomes[1],
            ApplyOutcome::OwnershipFenced { current_epoch: 5 }
        );
        assert_eq!(
            outcomes[2],
            ApplyOutcome::OwnershipFenced { current_epoch: 5 }
        );
        assert_eq!(
            outcomes[3],
            ApplyOutcome::OwnershipTransferred {
                previous: Some(RangeOwnership {
                    owner: id("CN=a"),
                    epoch: 5
                })
            }
        );
        assert_eq!(catalog.owner_of("r1").unwrap().owner, id("CN=d"));
        assert_eq!(catalog.refused_count(), 2);
        assert_eq!(catalog.applied_end(), 4);
    }

    #[test]
    fn apply_membership_admits_and_removes_idempotently() {
        // Goal: Admit/Remove keep the member set, and repeats are typed
        // no-ops. Method: admit a twice, remove a twice, remove unknown b.
        let a = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id("CN=a")));
        let remove_a = ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id("CN=a")));
        let remove_b = ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id("CN=b")));
        let (catalog, outcomes) = apply_all(&[a.clone(), a, remove_a.clone(), remove_a, remove_b]);
        assert_eq!(
            outcomes,
            vec![
                ApplyOutcome::Admitted,
                ApplyOutcome::AlreadyMember,
                ApplyOutcome::Removed,
                ApplyOutcome::NotMember,
                ApplyOutcome::NotMember,
            ]
        );
        assert!(catalog.members().is_empty());
    }

    #[test]
    fn apply_leader_history_refuses_terms_not_newer() {
        // Goal: the elected-term history only grows in term. Method: record
        // terms 2, 2, 1, 4 and check the history and outcomes.
        let leader = |t, n: &str| ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(t),
            leader: id(n),
        };
        let (catalog, outcomes) = apply_all(&[
            leader(2, "CN=a"),
            leader(2, "CN=b"),
            leader(1, "CN=c"),
            leader(4, "CN=d"),
        ]);
        assert!(outcomes[1].is_refusal() && outcomes[2].is_refusal());
        assert_eq!(
            catalog.leader_history(),
            &[
                (ControlPlaneTerm(2), id("CN=a")),
                (ControlPlaneTerm(4), id("CN=d"))
            ]
        );
    }

    #[test]
    fn apply_out_of_order_is_refused_without_change() {
        // Goal: the catalog applies each index once, in order. Method: apply
        // index 1 on an empty catalog, then index 0 twice.
        let mut catalog = ControlPlaneCatalog::new();
        let entry = transfer("r", "CN=a", 1);
        assert!(catalog.apply(ControlPlaneIndex(1), &entry).is_err());
        assert_eq!(catalog, ControlPlaneCatalog::new());
        catalog.apply(ControlPlaneIndex(0), &entry).unwrap();
        assert!(catalog.apply(ControlPlaneIndex(0), &entry).is_err());
        assert_eq!(catalog.applied_end(), 1);
    }
}
