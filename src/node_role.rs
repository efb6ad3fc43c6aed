//! How a node takes part in consensus: [`NodeRole`], the value its hard
//! state records, and [`Role`], the same as a type ([`SoleVoter`],
//! [`Replica`]) that a node's handle carries. A leaf module, so that
//! [`crate::error`] can name it without depending on the hard state.

/// How a node takes part in consensus; fixed when its directory is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// The only voter of its cluster: leads with its own vote and commits
    /// every durable entry.
    SoleVoter,
    /// One voter of a multi-node cluster: leadership and commit come from
    /// quorums the caller counts.
    Replica,
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::SoleVoter => "sole voter",
            NodeRole::Replica => "replica",
        })
    }
}

impl NodeRole {
    pub(crate) fn to_disk(self) -> u16 {
        match self {
            NodeRole::SoleVoter => 0,
            NodeRole::Replica => 1,
        }
    }

    pub(crate) fn from_disk(value: u16) -> Option<Self> {
        match value {
            0 => Some(NodeRole::SoleVoter),
            1 => Some(NodeRole::Replica),
            _ => None,
        }
    }
}

mod sealed {
    /// Keeps [`Role`](super::Role) closed: its two implementors are the
    /// only roles the engine's rules are written for.
    pub trait Sealed {}
    impl Sealed for super::SoleVoter {}
    impl Sealed for super::Replica {}
}

/// A node's role as a type: the role marker of a
/// [`ControlPlaneNode`](crate::ControlPlaneNode), which exposes only the
/// operations of its role. Sealed: [`SoleVoter`] and [`Replica`] are the
/// only roles.
///
/// What differs between the roles is one fact, held here as constants so
/// the compiler resolves it per role (no flag is stored or tested at run
/// time): whether the node's own vote is a majority of its cluster.
pub trait Role: sealed::Sealed + std::fmt::Debug + Send + Sync + 'static {
    /// How the node's hard state records this role; a directory created in
    /// one role is refused in the other ([`Error::RoleMismatch`](crate::Error::RoleMismatch)).
    const NODE_ROLE: NodeRole;
    /// Whether the node's own vote is a majority, so that (a sole voter)
    /// holding its own vote for the current term makes it the leader of
    /// that term (at creation, after an election, after a restart), and
    /// every entry it makes durable is committed by that. Without it (a
    /// replica) leadership and commit come only from quorums the caller
    /// counts.
    const OWN_VOTE_IS_MAJORITY: bool;
}

/// The role of a node that is its cluster's only voter: it leads with its
/// own vote and commits every entry it makes durable
/// ([`DurableControlPlane`](crate::DurableControlPlane)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoleVoter {}

/// The role of a node that is one voter of a multi-node cluster, driven
/// by the caller's Raft ([`ReplicaControlPlane`](crate::ReplicaControlPlane)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replica {}

impl Role for SoleVoter {
    const NODE_ROLE: NodeRole = NodeRole::SoleVoter;
    const OWN_VOTE_IS_MAJORITY: bool = true;
}

impl Role for Replica {
    const NODE_ROLE: NodeRole = NodeRole::Replica;
    const OWN_VOTE_IS_MAJORITY: bool = false;
}
