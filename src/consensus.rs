//! The control-plane consensus boundary: the types every engine speaks and the
//! [`ControlPlaneConsensus`] trait they implement.
//!
//! The control-plane log carries exactly three kinds of fact — membership
//! changes, fenced shard-ownership transitions and the elected-leader history —
//! and nothing else. [`ControlPlaneEntry`] is a closed enum with no variant
//! that could hold user data, so a user write cannot be routed through this log
//! by mistake: it is unrepresentable.
//!
//! Two engines implement the trait in this crate: the in-memory
//! [`SingleNodeControlPlane`](crate::SingleNodeControlPlane), useful as a
//! reference model, and the durable
//! [`DurableControlPlane`](crate::DurableControlPlane).

use crate::identity::ClusterVoterIdentity;

/// An election term: a strictly increasing generation that fences a stale
/// leader. Every log entry is stamped with the term of the leader that wrote
/// it, so a deposed leader's entries can be recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ControlPlaneTerm(pub u64);

impl ControlPlaneTerm {
    /// The term before any election has run.
    pub const GENESIS: ControlPlaneTerm = ControlPlaneTerm(0);

    /// The term a new candidate stands for: one more than this one.
    ///
    /// # Panics
    ///
    /// On `ControlPlaneTerm(u64::MAX)`, in every build: terms must strictly
    /// increase, and wrapping to [`GENESIS`](Self::GENESIS) would let a node
    /// vote again in a term it already voted in. Terms from the network
    /// belong in [`checked_next`](Self::checked_next), which cpwal itself
    /// uses (and its engine stops at [`MAX_TERM`](crate::limits::MAX_TERM)).
    pub fn next(self) -> ControlPlaneTerm {
        self.checked_next()
            .expect("ControlPlaneTerm::next: the term space is exhausted at u64::MAX")
    }

    /// The next term, or `None` at `u64::MAX`.
    pub fn checked_next(self) -> Option<ControlPlaneTerm> {
        self.0.checked_add(1).map(ControlPlaneTerm)
    }
}

/// A 0-based position in the control-plane log. The log is append-only and
/// totally ordered, so an index names exactly one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ControlPlaneIndex(pub u64);

impl ControlPlaneIndex {
    /// The raw positions `range` as a range of indexes: the one conversion
    /// from the engine's internal `u64` positions to the public type.
    pub(crate) fn range(range: std::ops::Range<u64>) -> std::ops::Range<ControlPlaneIndex> {
        ControlPlaneIndex(range.start)..ControlPlaneIndex(range.end)
    }
}

/// The vote state a voter must make durable before it acknowledges a vote, so
/// that a restart in the middle of a term cannot make it vote twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableVoteState {
    /// The highest term this member has seen.
    pub term: ControlPlaneTerm,
    /// The candidate this member voted for in `term`; `None` if it has seen
    /// `term` but not voted in it.
    pub voted_for: Option<ClusterVoterIdentity>,
}

impl DurableVoteState {
    /// The state of a member that has never voted.
    pub fn initial() -> Self {
        Self {
            term: ControlPlaneTerm::GENESIS,
            voted_for: None,
        }
    }
}

/// A fenced change of ownership of one shard or range. The epoch is what
/// fences a stale owner that comes back: a transition only wins if its epoch is
/// higher than the range's current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipTransition {
    /// The range whose owner changes, named opaquely.
    pub range: String,
    /// The owner after the transition.
    pub new_owner: ClusterVoterIdentity,
    /// The ownership epoch this transition moves the range to.
    pub ownership_epoch: u64,
}

/// A change to the set of authorized members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// A member was admitted to the cluster.
    Admit(ClusterVoterIdentity),
    /// A member finished draining and was removed.
    Remove(ClusterVoterIdentity),
}

/// Everything that may ever be appended to the control-plane log.
///
/// There is deliberately no variant for user data: the closed set is what
/// keeps user writes out of control-plane consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPlaneEntry {
    /// A member admitted to or removed from the cluster.
    MembershipChange(MembershipChange),
    /// A fenced shard/range ownership transition.
    OwnershipTransition(OwnershipTransition),
    /// A record that `term` elected `leader`.
    LeaderConfiguration {
        /// The term that elected the leader.
        term: ControlPlaneTerm,
        /// The member elected leader in `term`.
        leader: ClusterVoterIdentity,
    },
}

/// Why an append to the control-plane log was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPlaneError {
    /// This node is not the leader; `leader` names the leader when it is known
    /// so the caller can forward the request.
    NotLeader {
        /// The current leader, if this node knows one.
        leader: Option<ClusterVoterIdentity>,
    },
}

impl std::fmt::Display for ControlPlaneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => {
                write!(f, "not the control-plane leader; current leader is {l}")
            }
            Self::NotLeader { leader: None } => {
                write!(f, "not the control-plane leader; no leader currently known")
            }
        }
    }
}

impl std::error::Error for ControlPlaneError {}

/// The seam between callers and a control-plane consensus engine.
///
/// Callers depend on this trait, not on an engine: the in-memory engine, the
/// durable single-node engine and a replicated engine are interchangeable
/// behind it.
pub trait ControlPlaneConsensus {
    /// The current election term.
    fn current_term(&self) -> ControlPlaneTerm;

    /// The leader of [`current_term`](Self::current_term), if one is known.
    fn leader(&self) -> Option<ClusterVoterIdentity>;

    /// Whether this node is the current leader.
    fn is_leader(&self) -> bool;

    /// The vote state, as persisted before any vote was acknowledged.
    fn durable_vote(&self) -> DurableVoteState;

    /// The index of the highest committed entry; `None` while nothing is
    /// committed.
    fn commit_index(&self) -> Option<ControlPlaneIndex>;

    /// Appends `entry` as the leader and returns its committed index, or
    /// [`ControlPlaneError::NotLeader`] on a node that must forward instead.
    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError>;
}

/// The bare number, so that it composes into messages ("term 4").
impl std::fmt::Display for ControlPlaneTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The bare number, so that it composes into messages ("index 7").
impl std::fmt::Display for ControlPlaneIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One line in plain words, e.g. `admit CN=node-b`,
/// `range "shard-7" to CN=node-b at epoch 3`, `term 4 elected CN=node-a`.
/// The range name is quoted and escaped as [`Debug`](std::fmt::Debug)
/// quotes a string: it is caller text, and an entry that was never
/// validated may hold anything.
impl std::fmt::Display for ControlPlaneEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MembershipChange(MembershipChange::Admit(member)) => write!(f, "admit {member}"),
            Self::MembershipChange(MembershipChange::Remove(member)) => {
                write!(f, "remove {member}")
            }
            Self::OwnershipTransition(t) => write!(
                f,
                "range {:?} to {} at epoch {}",
                t.range, t.new_owner, t.ownership_epoch
            ),
            Self::LeaderConfiguration { term, leader } => {
                write!(f, "term {term} elected {leader}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(subject: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(subject).expect("valid identity")
    }

    #[test]
    fn display_prints_terms_and_indexes_as_bare_numbers() {
        // Goal: terms and indexes compose into messages as plain numbers,
        // from the smallest to the largest value.
        assert_eq!(ControlPlaneTerm::GENESIS.to_string(), "0");
        assert_eq!(ControlPlaneTerm(u64::MAX).to_string(), u64::MAX.to_string());
        assert_eq!(ControlPlaneIndex(7).to_string(), "7");
        assert_eq!(format!("index {:>3}", ControlPlaneIndex(7)), "index   7");
    }

    #[test]
    fn display_prints_each_entry_kind_in_plain_words() {
        // Goal: every entry kind has a one-line rendering naming all its
        // fields. Method: one entry of each kind, compared whole.
        let cases = [
            (
                ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id("CN=b"))),
                "admit CN=b",
            ),
            (
                ControlPlaneEntry::MembershipChange(MembershipChange::Remove(id("CN=b"))),
                "remove CN=b",
            ),
            (
                ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                    range: "shard-7".into(),
                    new_owner: id("CN=c"),
                    ownership_epoch: 3,
                }),
                "range \"shard-7\" to CN=c at epoch 3",
            ),
            (
                ControlPlaneEntry::LeaderConfiguration {
                    term: ControlPlaneTerm(4),
                    leader: id("CN=a"),
                },
                "term 4 elected CN=a",
            ),
        ];
        for (entry, shown) in cases {
            assert_eq!(entry.to_string(), shown);
        }
    }

    #[test]
    fn display_escapes_a_range_name_that_could_forge_a_line() {
        // Goal: an entry built by a caller and never validated cannot make
        // its rendering span two lines or hide characters.
        let entry = ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "r\nforged\u{202E}".into(),
            new_owner: id("CN=c"),
            ownership_epoch: 1,
        });
        assert_eq!(
            entry.to_string(),
            "range \"r\\nforged\\u{202e}\" to CN=c at epoch 1"
        );
    }
}
