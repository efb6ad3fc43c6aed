//! Replication on openraft (cargo feature `openraft`).
//!
//! cpwal does not implement Raft's replication itself: it is the durable
//! storage of [openraft](https://docs.rs/openraft/0.9.25) 0.9.25, and
//! [`ReplicatedControlPlane`] puts an openraft node behind the
//! [`ControlPlaneConsensus`](crate::ControlPlaneConsensus) trait.
//!
//! A node's data directory holds two subdirectories, each locked:
//! `log/` (hard state and segments, [`CpwalLogStore`]) and `snapshot/`
//! (the state machine's durable snapshot, [`CpwalStateMachine`]).
//!
//! One concept per file: [`types`] (openraft type configuration),
//! [`node_id`] (identity ↔ node id), [`envelope`] (entry encoding),
//! [`CpwalLogStore`] and its flusher, the state machine over the
//! [`ControlPlaneCatalog`](crate::ControlPlaneCatalog),
//! the snapshot file, and [`ReplicatedControlPlane`].

pub mod envelope;
mod flusher;
mod log_store;
pub mod node_id;
mod replicated;
mod snapshot_file;
mod state_machine;
pub mod types;

pub use log_store::{CpwalLogReader, CpwalLogStore};
pub use node_id::{node_id_of, NodeId, NodeRegistry, RegistryConflict};
pub use replicated::{ReplicatedControlPlane, ReplicationError};
pub use snapshot_file::{
    RAFT_SNAPSHOT_FILE_NAME, RAFT_SNAPSHOT_FORMAT_VERSION, RAFT_SNAPSHOT_HEADER_BYTES,
    RAFT_SNAPSHOT_MAGIC,
};
pub use state_machine::CpwalStateMachine;
pub use types::{ClusterNode, CpwalRaftConfig};

/// The subdirectory of a node's data directory that holds its log.
pub const LOG_DIRECTORY: &str = "log";
/// The subdirectory of a node's data directory that holds its snapshot.
pub const SNAPSHOT_DIRECTORY: &str = "snapshot";
