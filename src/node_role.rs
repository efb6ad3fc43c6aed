//! [`NodeRole`]: how a node takes part in consensus. A leaf module, so that
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
