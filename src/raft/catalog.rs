//! A minimal control-plane catalog: the state the replicated log's entries
//! build, applied deterministically with a typed outcome.
//!
//! **Stand-in.** Issue #4 builds the real catalog (`src/catalog.rs` on the
//! `repl` branch); it had not landed when this module was written, so the
//! state machine applies entries to this one-file catalog with the same
//! shape: members, fenced ownership epochs, elected-term history. Swapping
//! it means replacing this file and [`Catalog::entries`]/[`Catalog::apply`]
//! call sites in `state_machine.rs`.
//!
//! Rules (every node applies the same entries in the same order and reaches
//! the same catalog, because no rule reads anything but the catalog and the
//! entry):
//! * admitting a member twice, or removing a non-member, changes nothing;
//! * an ownership transition wins only with an epoch above the range's
//!   current one — a stale owner coming back is fenced;
//! * a leader configuration is recorded only for a term above every term
//!   already recorded.

use std::collections::{BTreeMap, BTreeSet};

use crate::consensus::{
    ControlPlaneEntry, ControlPlaneTerm, MembershipChange, OwnershipTransition,
};
use crate::identity::ClusterVoterIdentity;

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The entry changed the catalog.
    Applied,
    /// An admitted member was admitted again; nothing changed.
    AlreadyMember,
    /// A member that is not in the catalog was removed; nothing changed.
    NotMember,
    /// A transition's epoch is not above the range's; it was fenced.
    StaleEpoch {
        /// The range's epoch, which the transition did not exceed.
        current_epoch: u64,
    },
    /// A leader configuration for a term at or below the latest recorded.
    StaleTerm {
        /// The latest term recorded.
        latest_term: ControlPlaneTerm,
    },
    /// The log entry was a blank or membership entry of the replication
    /// layer; the catalog was not involved.
    ReplicationOnly,
}

/// The owner and epoch of one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeOwnership {
    /// The current owner.
    pub owner: ClusterVoterIdentity,
    /// The epoch of the transition that made it owner.
    pub epoch: u64,
}

/// The control-plane catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    members: BTreeSet<ClusterVoterIdentity>,
    ranges: BTreeMap<String, RangeOwnership>,
    leaders: BTreeMap<ControlPlaneTerm, ClusterVoterIdentity>,
}

impl Catalog {
    /// Applies `entry` by the rules in the module documentation.
    pub fn apply(&mut self, entry: &ControlPlaneEntry) -> ApplyOutcome {
        match entry {
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member)) => {
                if self.members.insert(member.clone()) {
                    ApplyOutcome::Applied
                } else {
                    ApplyOutcome::AlreadyMember
                }
            }
            ControlPlaneEntry::MembershipChange(MembershipChange::Remove(member)) => {
                if self.members.remove(member) {
                    ApplyOutcome::Applied
                } else {
                    ApplyOutcome::NotMember
                }
            }
            ControlPlaneEntry::OwnershipTransition(transition) => self.transfer(transition),
            ControlPlaneEntry::LeaderConfiguration { term, leader } => {
                match self.leaders.keys().next_back() {
                    Some(&latest_term) if *term <= latest_term => {
                        ApplyOutcome::StaleTerm { latest_term }
                    }
                    _ => {
                        self.leaders.insert(*term, leader.clone());
                        ApplyOutcome::Applied
                    }
                }
            }
        }
    }

    fn transfer(&mut self, transition: &OwnershipTransition) -> ApplyOutcome {
        if let Some(current) = self.ranges.get(&transition.range) {
            if transition.ownership_epoch <= current.epoch {
                return ApplyOutcome::StaleEpoch {
                    current_epoch: current.epoch,
                };
            }
        }
        self.ranges.insert(
            transition.range.clone(),
            RangeOwnership {
                owner: transition.new_owner.clone(),
                epoch: transition.ownership_epoch,
            },
        );
        ApplyOutcome::Applied
    }

    /// The admitted members.
    pub fn members(&self) -> &BTreeSet<ClusterVoterIdentity> {
        &self.members
    }

    /// The owner and epoch of `range`.
    pub fn ownership(&self, range: &str) -> Option<&RangeOwnership> {
        self.ranges.get(range)
    }

    /// The elected leaders by term.
    pub fn leaders(&self) -> &BTreeMap<ControlPlaneTerm, ClusterVoterIdentity> {
        &self.leaders
    }

    /// A sequence of entries that rebuilds exactly this catalog when applied
    /// to an empty one, each with outcome [`ApplyOutcome::Applied`]; the
    /// snapshot format stores the catalog this way.
    pub fn entries(&self) -> Vec<ControlPlaneEntry> {
        let members = self
            .members
            .iter()
            .map(|m| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(m.clone())));
        let ranges = self.ranges.iter().map(|(range, ownership)| {
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: range.clone(),
                new_owner: ownership.owner.clone(),
                ownership_epoch: ownership.epoch,
            })
        });
        let leaders =
            self.leaders
                .iter()
                .map(|(term, leader)| ControlPlaneEntry::LeaderConfiguration {
                    term: *term,
                    leader: leader.clone(),
                });
        members.chain(ranges).chain(leaders).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(text).unwrap()
    }

    fn transition(range: &str, owner: &str, epoch: u64) -> ControlPlaneEntry {
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: range.into(),
            new_owner: id(owner),
            ownership_epoch: epoch,
        })
    }

    #[test]
    fn apply_fences_stale_ownership_epochs() {
        // Goal: a transition at or below the current epoch loses. Method:
        // move a range to epoch 5, then replay epochs 5 and 4, then 6.
        let mut catalog = Catalog::default();
        assert_eq!(
            catalog.apply(&transition("r", "CN=a", 5)),
            ApplyOutcome::Applied
        );
        for stale in [5, 4] {
            assert_eq!(
                catalog.apply(&transition("r", "CN=b", stale)),
                ApplyOutcome::StaleEpoch { current_epoch: 5 }
            );
        }
        assert_eq!(catalog.ownership("r").unwrap().owner, id("CN=a"));
        assert_eq!(
            catalog.apply(&transition("r", "CN=b", 6)),
            ApplyOutcome::Applied
        );
        assert_eq!(catalog.ownership("r").unwrap().owner, id("CN=b"));
    }

    #[test]
    fn apply_tracks_members_and_terms() {
        // Goal: duplicate admits, absent removals and old terms change
        // nothing and say so. Method: apply each twice or out of order.
        let mut catalog = Catalog::default();
        let admit = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id("CN=a")));
        let remove = ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id("CN=a")));
        assert_eq!(catalog.apply(&admit), ApplyOutcome::Applied);
        assert_eq!(catalog.apply(&admit), ApplyOutcome::AlreadyMember);
        assert_eq!(catalog.apply(&remove), ApplyOutcome::Applied);
        assert_eq!(catalog.apply(&remove), ApplyOutcome::NotMember);
        let leader = |term| ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(term),
            leader: id("CN=a"),
        };
        assert_eq!(catalog.apply(&leader(3)), ApplyOutcome::Applied);
        assert_eq!(
            catalog.apply(&leader(2)),
            ApplyOutcome::StaleTerm {
                latest_term: ControlPlaneTerm(3)
            }
        );
        assert_eq!(catalog.leaders().len(), 1);
    }

    #[test]
    fn entries_rebuild_the_same_catalog() {
        // Goal: the snapshot form loses nothing. Method: build a catalog,
        // replay its entries into an empty one, compare.
        let mut catalog = Catalog::default();
        catalog.apply(&ControlPlaneEntry::MembershipChange(
            MembershipChange::Admit(id("CN=a")),
        ));
        catalog.apply(&transition("r1", "CN=a", 2));
        catalog.apply(&transition("r2", "CN=b", 9));
        catalog.apply(&ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(4),
            leader: id("CN=b"),
        });
        let mut rebuilt = Catalog::default();
        for entry in catalog.entries() {
            assert_eq!(rebuilt.apply(&entry), ApplyOutcome::Applied);
        }
        assert_eq!(rebuilt, catalog);
    }
}
