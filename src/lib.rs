//! # cpwal
//!
//! A crash-safe write-ahead log for a Raft-style control plane: the small,
//! precious log that carries cluster membership, leader configurations and
//! fenced shard-ownership transitions, plus the node's term and vote.
//!
//! [`ControlPlaneNode`] is the engine, with the node's role as a type:
//! [`DurableControlPlane`] (a sole voter) implements the
//! [`ControlPlaneConsensus`] boundary, as does the in-memory
//! [`SingleNodeControlPlane`]; [`ReplicaControlPlane`] is one voter of a
//! multi-node cluster driven by the caller's Raft. The file format and the crash argument are in
//! [`format`](mod@format); the io seam that makes power loss testable is [`io`].
#![doc = include_str!("../README.md")]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod catalog;
pub mod codec;
mod consensus;
mod decode_error;
mod directory;
mod engine;
mod error;
pub mod format;
mod hard_state;
mod identity;
pub mod inspect;
pub mod io;
pub mod limits;
mod log;
mod node_role;
pub mod operate;
mod options;
mod parallelism;
#[cfg(feature = "openraft")]
pub mod raft;
mod single_node;
mod snapshot;
mod text;

pub use catalog::{ApplyOutcome, ControlPlaneCatalog, RangeOwnership};
pub use consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState, MembershipChange, OwnershipTransition,
};
pub use directory::{ForeignFile, WidePermission};
pub use engine::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Appended, AppendedBatch,
    CompactionReport, ConflictHint, ControlPlaneNode, DurableControlPlane, InstallSnapshotRequest,
    LogEntry, PeerBatch, ReplicaControlPlane, SharedControlPlane, VoteRequest, VoteResponse,
};
pub use error::{
    CopyMismatch, Corruption, CorruptionKind, Error, InvalidInput, ReplicationError, Result,
    SegmentChainDetail, Unsalvageable,
};
pub use identity::{ClusterVoterIdentity, IdentityError, MAX_IDENTITY_BYTES};
pub use log::{DroppedTail, RecoveryReport};
pub use node_role::{NodeRole, Replica, Role, SoleVoter};
pub use options::{Options, MAX_SEGMENT_SIZE_BYTES, MIN_SEGMENT_SIZE_BYTES};
pub use single_node::SingleNodeControlPlane;
pub use text::RangeNameError;
