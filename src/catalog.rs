//! [`ControlPlaneCatalog`]: the control-plane state obtained by applying the
//! committed log entries in order.
//!
//! Applying is deterministic: the same entries in the same order give the
//! same catalog on every node, and every entry gets a typed
//! [`ApplyOutcome`], including the entries the catalog refuses (a fenced
//! ownership transition, a stale leader record). A refused entry leaves the
//! state unchanged apart from the count of refusals.
//!
//! Applying is on every acknowledgement's path and on open's rebuild, so it
//! costs one hashed lookup of the range name per ownership transition. The
//! ranges are kept in no order; what needs one (the snapshot encoding,
//! which must be byte-identical for the same catalog, and the listing
//! [`ControlPlaneCatalog::ranges`]) sorts when it is asked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::codec::EntryView;
use crate::consensus::{ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm};
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

/// The hasher of the range index.
pub(crate) type RangeHasher = foldhash::fast::RandomState;

/// Every range's ownership, by name, hashed (see the module documentation).
pub(crate) type RangeTable = HashMap<Box<str>, RangeOwnership, RangeHasher>;

/// The applied control-plane state.
///
/// Invariants: `applied_end` is one past the last applied index (entries
/// `0..applied_end` were applied in order, exactly once); every recorded
/// leader term is strictly greater than the one before it; each range's epoch
/// only grows.
#[derive(Clone, Default)]
pub struct ControlPlaneCatalog {
    members: BTreeSet<ClusterVoterIdentity>,
    ranges: RangeTable,
    leaders: Vec<(ControlPlaneTerm, ClusterVoterIdentity)>,
    refused: u64,
    applied_end: u64,
    /// Where the identities the catalog keeps come from (not part of its
    /// state: equality ignores it).
    identities: IdentityPool,
}

/// Two catalogs are equal when their state is; the identity pool is a
/// cache.
impl PartialEq for ControlPlaneCatalog {
    fn eq(&self, other: &Self) -> bool {
        self.members == other.members
            && self.ranges == other.ranges
            && self.leaders == other.leaders
            && self.refused == other.refused
            && self.applied_end == other.applied_end
    }
}

impl Eq for ControlPlaneCatalog {}

/// The identities a catalog holds, each allocated once: thousands of ranges
/// have a handful of owners, so a range's owner is a shared clone
/// ([`ClusterVoterIdentity`] is reference-counted) of the pool's, found by
/// one hashed lookup of the owner's text, and applying a transfer allocates
/// nothing.
///
/// Invariant: the pool holds every identity the catalog refers to, plus
/// identities no longer referred to, which are dropped once the pool has
/// doubled since it was last pruned (so it stays within twice what is in
/// use, plus [`IdentityPool::MIN_PRUNE_LEN`]).
#[derive(Clone, Default)]
struct IdentityPool {
    identities: HashSet<ClusterVoterIdentity, RangeHasher>,
    prune_at: usize,
}

impl IdentityPool {
    /// The pool is never pruned below this size.
    const MIN_PRUNE_LEN: usize = 64;

    /// The pool's identity of `text`, which must have passed
    /// [`crate::identity::validate`] (as every [`EntryView`] string has).
    fn identity(&mut self, text: &str) -> ClusterVoterIdentity {
        if let Some(identity) = self.identities.get(text) {
            return identity.clone();
        }
        if self.identities.len() >= self.prune_at {
            self.identities.retain(ClusterVoterIdentity::is_shared);
            self.prune_at = (2 * self.identities.len()).max(Self::MIN_PRUNE_LEN);
        }
        let identity = ClusterVoterIdentity::from_validated(text);
        self.identities.insert(identity.clone());
        identity
    }
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
        self.apply_view(index, EntryView::of(entry))
    }

    /// Applies a decoded entry as [`ControlPlaneCatalog::apply`] does (the
    /// rebuild at open, group commit's entries in hand).
    pub(crate) fn apply_decoded(
        &mut self,
        index: ControlPlaneIndex,
        entry: EntryView<'_>,
    ) -> Result<ApplyOutcome> {
        self.apply_view(index, entry)
    }

    /// The one apply behind both entry points. It allocates only what the
    /// catalog must keep that it does not hold yet: a new range name, an
    /// identity it has never seen.
    fn apply_view(
        &mut self,
        index: ControlPlaneIndex,
        entry: EntryView<'_>,
    ) -> Result<ApplyOutcome> {
        if index.0 != self.applied_end {
            return Err(InvalidInput::Index {
                index: index.0,
                reason: "catalog entries must be applied in order, each once",
            }
            .into());
        }
        let outcome = match entry {
            EntryView::Admit(member) => self.admit(member),
            EntryView::Remove(member) => self.remove(member),
            EntryView::OwnershipTransition {
                range,
                new_owner,
                ownership_epoch,
            } => self.apply_ownership(range, new_owner, ownership_epoch),
            EntryView::LeaderConfiguration { term, leader } => self.apply_leader(term, leader),
        };
        if outcome.is_refusal() {
            self.refused += 1;
        }
        self.applied_end += 1;
        Ok(outcome)
    }

    /// Takes back the last applied entry, `entry` at index
    /// `applied_end - 1`, whose apply returned `outcome`: the catalog is
    /// then what it was before that apply (the identity pool, a cache, may
    /// keep an identity the apply added). Undoing a batch newest first
    /// undoes all of it. The appends that apply entries while their sync
    /// runs use it: the sole voter's `&mut` append when the sync fails, the
    /// shared handle before anyone reads the catalog.
    ///
    /// Refused with [`InvalidInput::Index`], changing nothing, when nothing
    /// is applied. An `outcome` that is not what applying `entry` returned
    /// is a caller's bug; the undo then restores nothing it cannot match.
    pub(crate) fn undo_last(&mut self, entry: EntryView<'_>, outcome: ApplyOutcome) -> Result<()> {
        if self.applied_end == 0 {
            return Err(InvalidInput::Index {
                index: 0,
                reason: "no applied entry to undo",
            }
            .into());
        }
        if outcome.is_refusal() {
            self.refused = self.refused.saturating_sub(1);
        }
        match (entry, outcome) {
            (EntryView::Admit(member), ApplyOutcome::Admitted) => {
                self.members.remove(member);
            }
            (EntryView::Remove(member), ApplyOutcome::Removed) => {
                let member = self.identities.identity(member);
                self.members.insert(member);
            }
            (
                EntryView::OwnershipTransition { range, .. },
                ApplyOutcome::OwnershipTransferred { previous },
            ) => match previous {
                Some(previous) => {
                    if let Some(current) = self.ranges.get_mut(range) {
                        *current = previous;
                    }
                }
                None => {
                    self.ranges.remove(range);
                }
            },
            (EntryView::LeaderConfiguration { .. }, ApplyOutcome::LeaderRecorded) => {
                self.leaders.pop();
            }
            // Refusals and no-ops changed nothing else.
            _ => {}
        }
        self.applied_end -= 1;
        Ok(())
    }

    fn admit(&mut self, member: &str) -> ApplyOutcome {
        if self.members.contains(member) {
            return ApplyOutcome::AlreadyMember;
        }
        let member = self.identities.identity(member);
        self.members.insert(member);
        ApplyOutcome::Admitted
    }

    fn remove(&mut self, member: &str) -> ApplyOutcome {
        if self.members.remove(member) {
            ApplyOutcome::Removed
        } else {
            ApplyOutcome::NotMember
        }
    }

    /// One hashed lookup of `range`; a transfer swaps in the pool's
    /// identity of the new owner and hands the replaced ownership to the
    /// outcome, allocating nothing for a range and owner already known.
    fn apply_ownership(&mut self, range: &str, new_owner: &str, epoch: u64) -> ApplyOutcome {
        let Some(current) = self.ranges.get_mut(range) else {
            let next = RangeOwnership {
                owner: self.identities.identity(new_owner),
                epoch,
            };
            self.ranges.insert(range.into(), next);
            return ApplyOutcome::OwnershipTransferred { previous: None };
        };
        if epoch <= current.epoch {
            return ApplyOutcome::OwnershipFenced {
                current_epoch: current.epoch,
            };
        }
        let owner = if current.owner.as_str() == new_owner {
            current.owner.clone()
        } else {
            self.identities.identity(new_owner)
        };
        let previous = std::mem::replace(current, RangeOwnership { owner, epoch });
        ApplyOutcome::OwnershipTransferred {
            previous: Some(previous),
        }
    }

    fn apply_leader(&mut self, term: ControlPlaneTerm, leader: &str) -> ApplyOutcome {
        if let Some(&(latest_term, _)) = self.leaders.last() {
            if term <= latest_term {
                return ApplyOutcome::LeaderTermNotNewer { latest_term };
            }
        }
        let leader = self.identities.identity(leader);
        self.leaders.push((term, leader));
        ApplyOutcome::LeaderRecorded
    }

    /// One past the last applied index (`ControlPlaneIndex(0)`: nothing
    /// applied).
    pub fn applied_end(&self) -> ControlPlaneIndex {
        ControlPlaneIndex(self.applied_end)
    }

    /// The authorized members.
    pub fn members(&self) -> &BTreeSet<ClusterVoterIdentity> {
        &self.members
    }

    /// Whether `member` is authorized.
    pub fn is_member(&self, member: &ClusterVoterIdentity) -> bool {
        self.members.contains(member)
    }

    /// The ownership of every range, in name order. The catalog keeps its
    /// ranges hashed for applying, so this sorts them on each call
    /// (O(n log n)); use [`ControlPlaneCatalog::owner_of`] for one range and
    /// [`ControlPlaneCatalog::range_count`] for the count.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (&str, &RangeOwnership)> + '_ {
        let mut sorted: Vec<(&str, &RangeOwnership)> = self
            .ranges
            .iter()
            .map(|(name, ownership)| (&**name, ownership))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted.into_iter()
    }

    /// How many ranges have an owner.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
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
    /// has validated them). Leader terms must be strictly increasing. Every
    /// identity is replaced by the pool's, so each is held once.
    pub(crate) fn from_parts(
        members: BTreeSet<ClusterVoterIdentity>,
        mut ranges: RangeTable,
        mut leaders: Vec<(ControlPlaneTerm, ClusterVoterIdentity)>,
        refused: u64,
        applied_end: u64,
    ) -> Self {
        let mut identities = IdentityPool::default();
        let mut pooled = |identity: &mut ClusterVoterIdentity| {
            *identity = identities.identity(identity.as_str());
        };
        ranges.values_mut().for_each(|r| pooled(&mut r.owner));
        leaders.iter_mut().for_each(|(_, leader)| pooled(leader));
        let members = members
            .into_iter()
            .map(|mut member| {
                pooled(&mut member);
                member
            })
            .collect();
        Self {
            members,
            ranges,
            leaders,
            refused,
            applied_end,
            identities,
        }
    }
}

/// Ranges print in name order, so the output does not depend on the
/// hash table's layout.
impl fmt::Debug for ControlPlaneCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneCatalog")
            .field("members", &self.members)
            .field("ranges", &RangesInOrder(self))
            .field("leaders", &self.leaders)
            .field("refused", &self.refused)
            .field("applied_end", &self.applied_end)
            .finish()
    }
}

struct RangesInOrder<'a>(&'a ControlPlaneCatalog);

impl fmt::Debug for RangesInOrder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.ranges()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{MembershipChange, OwnershipTransition};
    use proptest::prelude::*;

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
        assert_eq!(catalog.applied_end(), ControlPlaneIndex(4));
    }

    #[test]
    fn apply_ownership_to_same_owner_reports_previous_epoch() {
        // Goal: a transfer that keeps the owner but raises the epoch still
        // reports the ownership it replaced. Method: epochs 5 then 6 for a.
        let (catalog, outcomes) =
            apply_all(&[transfer("r1", "CN=a", 5), transfer("r1", "CN=a", 6)]);
        assert_eq!(
            outcomes[1],
            ApplyOutcome::OwnershipTransferred {
                previous: Some(RangeOwnership {
                    owner: id("CN=a"),
                    epoch: 5
                })
            }
        );
        assert_eq!(catalog.owner_of("r1").unwrap().epoch, 6);
    }

    /// Entries over few ranges, owners, members and terms, so that every
    /// branch of apply (new range, same owner, other owner, fenced, repeat
    /// admit, stale leader) comes up often.
    fn colliding_entry() -> impl Strategy<Value = ControlPlaneEntry> {
        let name = || prop::sample::select(vec!["CN=a", "CN=b", "CN=c"]).prop_map(id);
        prop_oneof![
            name().prop_map(|n| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(n))),
            name().prop_map(|n| ControlPlaneEntry::MembershipChange(MembershipChange::Remove(n))),
            (prop::sample::select(vec!["r1", "r2"]), name(), 0u64..6).prop_map(
                |(range, new_owner, ownership_epoch)| {
                    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                        range: range.into(),
                        new_owner,
                        ownership_epoch,
                    })
                }
            ),
            (0u64..6, name()).prop_map(|(term, leader)| ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(term),
                leader
            }),
        ]
    }

    proptest! {
        #[test]
        fn apply_decoded_matches_apply(entries in prop::collection::vec(colliding_entry(), 0..40)) {
            // Goal: the rebuild at open (entries decoded in place, outcome
            // discarded) reaches exactly the catalog that applying the owned
            // entries does, step by step. Method: apply each entry both ways
            // to two catalogs and compare them after every step.
            let mut owned = ControlPlaneCatalog::new();
            let mut decoded = ControlPlaneCatalog::new();
            for (i, entry) in entries.iter().enumerate() {
                let index = ControlPlaneIndex(i as u64);
                owned.apply(index, entry).unwrap();
                let bytes = crate::codec::encoded_entry(entry);
                let view = crate::codec::decode_entry_view(&bytes).unwrap();
                decoded.apply_decoded(index, view).unwrap();
                prop_assert_eq!(&owned, &decoded);
            }
        }
    }

    proptest! {
        #[test]
        fn undoing_a_batch_newest_first_restores_the_catalog(
            before in prop::collection::vec(colliding_entry(), 0..30),
            batch in prop::collection::vec(colliding_entry(), 0..30),
        ) {
            // Goal: an append that applied a batch while its sync ran, and
            // whose sync then failed, leaves the catalog exactly as it was.
            // Method: apply `before`, copy the catalog, apply `batch`, undo
            // it newest first with the outcomes it returned, compare (the
            // state, the refusal count, the applied end), then check the
            // catalog still applies the batch as the copy does.
            let mut catalog = ControlPlaneCatalog::new();
            for (i, entry) in before.iter().enumerate() {
                catalog.apply(ControlPlaneIndex(i as u64), entry).unwrap();
            }
            let copy = catalog.clone();
            let start = before.len() as u64;
            let outcomes: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, entry)| catalog.apply(ControlPlaneIndex(start + i as u64), entry).unwrap())
                .collect();
            for (entry, outcome) in batch.iter().zip(outcomes.clone()).rev() {
                catalog.undo_last(EntryView::of(entry), outcome).unwrap();
            }
            prop_assert_eq!(&catalog, &copy);
            prop_assert_eq!(catalog.refused_count(), copy.refused_count());
            let mut reference = copy;
            for (i, entry) in batch.iter().enumerate() {
                let index = ControlPlaneIndex(start + i as u64);
                let again = catalog.apply(index, entry).unwrap();
                prop_assert_eq!(&again, &outcomes[i]);
                reference.apply(index, entry).unwrap();
            }
            prop_assert_eq!(&catalog, &reference);
        }
    }

    #[test]
    fn undo_last_refuses_an_empty_catalog() {
        let mut catalog = ControlPlaneCatalog::new();
        let entry = transfer("r1", "CN=a", 1);
        let refused = catalog.undo_last(EntryView::of(&entry), ApplyOutcome::LeaderRecorded);
        assert!(
            matches!(
                refused,
                Err(crate::Error::InvalidInput(InvalidInput::Index {
                    index: 0,
                    ..
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(catalog, ControlPlaneCatalog::new());
    }

    proptest! {
        #[test]
        fn ranges_match_an_ordered_reference_model(
            moves in prop::collection::vec((0u8..40, 0u8..3, 0u64..30), 0..200)
        ) {
            // Goal: the hashed range index keeps exactly what an ordered map
            // would, and lists it in name order. Method: random transitions
            // over 40 ranges (so most revisit a range, fenced or not),
            // applied to the catalog and to a BTreeMap model of the fencing
            // rule; compare every lookup, the count and the listing.
            let owners = ["CN=a", "CN=b", "CN=c"];
            let mut catalog = ControlPlaneCatalog::new();
            let mut model = std::collections::BTreeMap::<String, (&str, u64)>::new();
            for (index, &(range, owner, epoch)) in moves.iter().enumerate() {
                let name = format!("range-{range}");
                let entry = transfer(&name, owners[owner as usize], epoch);
                catalog.apply(ControlPlaneIndex(index as u64), &entry).unwrap();
                let fenced = model.get(&name).is_some_and(|&(_, current)| epoch <= current);
                if !fenced {
                    model.insert(name, (owners[owner as usize], epoch));
                }
            }
            let listed: Vec<(String, String, u64)> = catalog
                .ranges()
                .map(|(name, o)| (name.to_owned(), o.owner.to_string(), o.epoch))
                .collect();
            let expected: Vec<(String, String, u64)> = model
                .iter()
                .map(|(name, &(owner, epoch))| (name.clone(), owner.to_owned(), epoch))
                .collect();
            prop_assert_eq!(listed, expected);
            prop_assert_eq!(catalog.range_count(), model.len());
            for range in 0..40 {
                let name = format!("range-{range}");
                let found = catalog.owner_of(&name).map(|o| (o.owner.to_string(), o.epoch));
                let modelled = model.get(&name).map(|&(owner, epoch)| (owner.to_owned(), epoch));
                prop_assert_eq!(found, modelled);
            }
        }
    }

    #[test]
    fn identity_pool_holds_each_owner_once_and_forgets_unused_ones() {
        // Goal: ranges share their owner's identity instead of each holding
        // a copy, and identities no range, member or leader uses any more
        // are dropped, so the pool stays bounded. Method: 500 ranges owned
        // by one owner (one pooled identity), then 5000 transfers of one
        // range, each to a new owner that the next one replaces; the pool
        // never holds more than twice the identities in use plus its
        // minimum prune size.
        let mut catalog = ControlPlaneCatalog::new();
        let mut index = 0;
        let mut apply = |catalog: &mut ControlPlaneCatalog, entry: ControlPlaneEntry| {
            catalog.apply(ControlPlaneIndex(index), &entry).unwrap();
            index += 1;
        };
        for range in 0..500 {
            apply(&mut catalog, transfer(&format!("r{range}"), "CN=a", 1));
        }
        assert_eq!(catalog.identities.identities.len(), 1);
        for owner in 0..5000 {
            apply(
                &mut catalog,
                transfer("moving", &format!("CN=o{owner}"), owner + 1),
            );
            let pooled = catalog.identities.identities.len();
            assert!(
                pooled <= 2 * 2 + IdentityPool::MIN_PRUNE_LEN,
                "{pooled} pooled"
            );
        }
        assert_eq!(catalog.owner_of("moving").unwrap().owner, id("CN=o4999"));
        assert_eq!(catalog.owner_of("r7").unwrap().owner, id("CN=a"));
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
        assert_eq!(catalog.applied_end(), ControlPlaneIndex(1));
    }
}
