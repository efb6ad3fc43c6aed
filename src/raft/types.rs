//! The openraft type configuration of a cpwal cluster.
//!
//! openraft is built with `single-term-leader`: a term elects at most one
//! leader, exactly the rule [`DurableControlPlane`](crate::DurableControlPlane)
//! and the hard state already follow. A committed leader id is then just a
//! term, so a log id is `(term, index)` — precisely what a cpwal record
//! stores — and a vote is `(term, voted_for: Option<node>, committed)`,
//! which maps onto the hard state's term and optional vote identity.

use std::fmt;
use std::io::Cursor;

use crate::catalog::ApplyOutcome;
use crate::consensus::ControlPlaneEntry;
use crate::identity::ClusterVoterIdentity;
use crate::raft::node_id::NodeId;

openraft::declare_raft_types!(
    /// openraft's type configuration for cpwal: entries are
    /// [`ControlPlaneEntry`] values, each answered with the catalog's
    /// [`ApplyOutcome`] (`None` for the replication layer's own blank and
    /// membership entries); nodes are [`ClusterNode`]s named by [`NodeId`]s
    /// (see [`crate::raft::node_id`]); snapshots are byte buffers in the
    /// format of [`crate::format`]'s "openraft snapshot" section.
    pub CpwalRaftConfig:
        D = ControlPlaneEntry,
        R = Option<ApplyOutcome>,
        NodeId = NodeId,
        Node = ClusterNode,
        Entry = openraft::Entry<CpwalRaftConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The longest network address a [`ClusterNode`] may carry, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// What a membership entry records about a node: who it is and where to
/// reach it.
///
/// `identity` is `None` only for the placeholder openraft builds when a
/// membership names an id without node data (`Node: Default`); a cluster
/// started through [`ReplicatedControlPlane`](crate::raft::ReplicatedControlPlane)
/// always fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterNode {
    /// The member's certificate identity.
    pub identity: Option<ClusterVoterIdentity>,
    /// Where its peers reach it (for example `127.0.0.1:7001`); may be empty
    /// for an in-process network. At most [`MAX_ADDRESS_BYTES`] bytes of
    /// UTF-8 without control characters.
    pub address: String,
}

impl ClusterNode {
    /// A node with an identity and an address.
    pub fn new(identity: ClusterVoterIdentity, address: impl Into<String>) -> Self {
        Self {
            identity: Some(identity),
            address: address.into(),
        }
    }
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.identity {
            Some(identity) => write!(f, "{identity}@{}", self.address),
            None => write!(f, "<unnamed>@{}", self.address),
        }
    }
}

/// openraft's log id for cpwal: `(term, index)`.
pub type CpwalLogId = openraft::LogId<NodeId>;
/// openraft's vote for cpwal.
pub type CpwalVote = openraft::Vote<NodeId>;
/// openraft's log entry for cpwal.
pub type CpwalEntry = openraft::Entry<CpwalRaftConfig>;
/// openraft's membership for cpwal.
pub type CpwalMembership = openraft::Membership<NodeId, ClusterNode>;
/// openraft's storage error for cpwal.
pub type CpwalStorageError = openraft::StorageError<NodeId>;
/// A running openraft node for cpwal.
pub type CpwalRaft = openraft::Raft<CpwalRaftConfig>;
