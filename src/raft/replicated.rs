//! [`ReplicatedControlPlane`]: the [`ControlPlaneConsensus`] trait on top of
//! an openraft node whose storage is cpwal.
//!
//! **Bridging to async.** The trait is synchronous and openraft is async.
//! Each handle owns a multi-threaded tokio runtime on which the openraft
//! node runs; a trait call blocks the calling thread on that runtime
//! (`Runtime::block_on`) until openraft answers. A blocking call made from
//! inside an async context would stall (or panic) an executor, so it is
//! refused instead: the call fails with [`ReplicationError::InsideAsyncContext`]
//! (through [`ReplicatedControlPlane::last_error`] for trait methods), never
//! blocks. Async callers use [`ReplicatedControlPlane::raft`] directly.
//!
//! Term, leader and commit point come from the node's metrics. openraft
//! 0.9 publishes the applied index rather than the commit index, so
//! [`commit_index`](ControlPlaneConsensus::commit_index) reports the last
//! applied index: committed by a quorum, and never ahead of the real commit
//! point.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{Config, RaftNetworkFactory, ServerState};

use crate::catalog::{ApplyOutcome, ControlPlaneCatalog};
use crate::consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState,
};
use crate::error::Error;
use crate::identity::ClusterVoterIdentity;
use crate::options::Options;
use crate::raft::log_store::{CpwalLogReader, CpwalLogStore};
use crate::raft::node_id::{NodeId, NodeRegistry};
use crate::raft::state_machine::CpwalStateMachine;
use crate::raft::types::{ClusterNode, CpwalRaft, CpwalRaftConfig};
use crate::raft::{LOG_DIRECTORY, SNAPSHOT_DIRECTORY};

/// Why a replicated operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicationError {
    /// cpwal storage failed or refused.
    Storage(Error),
    /// The identity is not in the registry under its node id.
    UnknownIdentity(ClusterVoterIdentity),
    /// openraft's configuration is invalid.
    Config(Box<openraft::ConfigError>),
    /// The tokio runtime could not be built.
    Runtime(std::io::Error),
    /// A blocking call was made from inside an async context.
    InsideAsyncContext,
    /// The openraft node stopped.
    Fatal(Box<Fatal<NodeId>>),
    /// Initializing the cluster failed.
    Initialize(Box<RaftError<NodeId, InitializeError<NodeId, ClusterNode>>>),
    /// A write was not committed.
    Write(Box<RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>>),
}

impl std::fmt::Display for ReplicationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "storage: {e}"),
            Self::UnknownIdentity(id) => write!(f, "{id} is not in the node registry"),
            Self::Config(e) => write!(f, "openraft configuration: {e}"),
            Self::Runtime(e) => write!(f, "tokio runtime: {e}"),
            Self::InsideAsyncContext => write!(f, "blocking call inside an async context"),
            Self::Fatal(e) => write!(f, "openraft node stopped: {e}"),
            Self::Initialize(e) => write!(f, "initialize: {e}"),
            Self::Write(e) => write!(f, "write: {e}"),
        }
    }
}

impl std::error::Error for ReplicationError {}

/// A control-plane member replicated with openraft over cpwal storage.
pub struct ReplicatedControlPlane {
    identity: ClusterVoterIdentity,
    node_id: NodeId,
    registry: NodeRegistry,
    raft: CpwalRaft,
    log: CpwalLogReader,
    state_machine: CpwalStateMachine,
    runtime: Option<tokio::runtime::Runtime>,
    last_error: Option<ReplicationError>,
}

impl std::fmt::Debug for ReplicatedControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedControlPlane")
            .field("identity", &self.identity)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn refuse_inside_async() -> Result<(), ReplicationError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(ReplicationError::InsideAsyncContext),
        Err(_) => Ok(()),
    }
}

impl ReplicatedControlPlane {
    /// Opens the data directory `directory` (subdirectories `log/` and
    /// `snapshot/`) as member `identity`, which `registry` must hold under
    /// its node id, and starts its openraft node on `network`.
    pub fn start<N: RaftNetworkFactory<CpwalRaftConfig>>(
        directory: impl AsRef<Path>,
        identity: ClusterVoterIdentity,
        registry: NodeRegistry,
        network: N,
        config: Config,
        options: Options,
    ) -> Result<Self, ReplicationError> {
        refuse_inside_async()?;
        let node_id = registry
            .node_id_bound_to(&identity)
            .ok_or_else(|| ReplicationError::UnknownIdentity(identity.clone()))?;
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| ReplicationError::Config(Box::new(e)))?,
        );
        let directory = directory.as_ref();
        let log = CpwalLogStore::open(
            directory.join(LOG_DIRECTORY),
            identity.clone(),
            registry.clone(),
            options,
        )
        .map_err(ReplicationError::Storage)?;
        let state_machine =
            CpwalStateMachine::open(directory.join(SNAPSHOT_DIRECTORY), registry.clone())
                .map_err(ReplicationError::Storage)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cpwal-raft")
            .enable_all()
            .build()
            .map_err(ReplicationError::Runtime)?;
        let reader = log.reader();
        let raft = runtime
            .block_on(CpwalRaft::new(
                node_id,
                config,
                network,
                log,
                state_machine.clone(),
            ))
            .map_err(|e| ReplicationError::Fatal(Box::new(e)))?;
        Ok(Self {
            identity,
            node_id,
            registry,
            raft,
            log: reader,
            state_machine,
            runtime: Some(runtime),
            last_error: None,
        })
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> Result<F::Output, ReplicationError> {
        refuse_inside_async()?;
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        Ok(runtime.block_on(future))
    }

    /// Initializes a new cluster with `members` as its voters. Call it on
    /// one member of a brand-new cluster; calling it again with the same
    /// members is harmless, with other members it splits the cluster.
    pub fn initialize(
        &self,
        members: BTreeMap<NodeId, ClusterNode>,
    ) -> Result<(), ReplicationError> {
        self.block_on(self.raft.initialize(members))?
            .map_err(|e| ReplicationError::Initialize(Box::new(e)))
    }

    /// Appends `entry` and returns its index and the catalog's outcome once
    /// a quorum committed and this node applied it.
    pub fn try_append(
        &self,
        entry: ControlPlaneEntry,
    ) -> Result<(ControlPlaneIndex, Option<ApplyOutcome>), ReplicationError> {
        let response = self
            .block_on(self.raft.client_write(entry))?
            .map_err(|e| ReplicationError::Write(Box::new(e)))?;
        Ok((ControlPlaneIndex(response.log_id.index), response.data))
    }

    /// Waits up to `timeout` until this node knows a leader, and returns it.
    pub fn wait_for_leader(&self, timeout: Duration) -> Option<ClusterVoterIdentity> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` until this node applied `index`.
    pub fn wait_for_applied(&self, index: ControlPlaneIndex, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.commit_index() < Some(index) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The index of the last entry in this node's local log, read from the
    /// log itself (written, not necessarily committed).
    pub fn last_log_index(&self) -> Option<ControlPlaneIndex> {
        self.log.last_index()
    }

    /// The openraft node, for async callers and networks.
    pub fn raft(&self) -> &CpwalRaft {
        &self.raft
    }

    /// This member's identity.
    pub fn identity(&self) -> &ClusterVoterIdentity {
        &self.identity
    }

    /// This member's openraft node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The catalog as applied on this node.
    pub fn catalog(&self) -> ControlPlaneCatalog {
        self.state_machine.catalog()
    }

    /// The error behind the most recent trait call that failed for a reason
    /// other than leadership (the trait's error type has room only for
    /// `NotLeader`).
    pub fn last_error(&self) -> Option<&ReplicationError> {
        self.last_error.as_ref()
    }

    /// Stops the openraft node and releases the data directory.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if refuse_inside_async().is_ok() {
            let _ = runtime.block_on(self.raft.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(5));
        } else {
            runtime.shutdown_background();
        }
    }

    fn identity_of(&self, node_id: NodeId) -> Option<ClusterVoterIdentity> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let named = metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .and_then(|node| node.identity.clone());
        named.or_else(|| self.registry.identity_of(node_id))
    }
}

impl Drop for ReplicatedControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ControlPlaneConsensus for ReplicatedControlPlane {
    fn current_term(&self) -> ControlPlaneTerm {
        ControlPlaneTerm(self.raft.metrics().borrow().current_term)
    }

    fn leader(&self) -> Option<ClusterVoterIdentity> {
        let leader = self.raft.metrics().borrow().current_leader;
        leader.and_then(|id| self.identity_of(id))
    }

    fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id)
    }

    fn durable_vote(&self) -> DurableVoteState {
        self.log.durable_vote()
    }

    fn commit_index(&self) -> Option<ControlPlaneIndex> {
        let applied = self.raft.metrics().borrow().last_applied;
        applied.map(|id| ControlPlaneIndex(id.index))
    }

    /// Appends through openraft and returns once a quorum committed the
    /// entry. A follower answers `NotLeader` with the leader openraft
    /// forwards to; any other failure is `NotLeader` with the leader this
    /// node knows, the typed error kept in
    /// [`ReplicatedControlPlane::last_error`].
    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError> {
        match self.try_append(entry) {
            Ok((index, _)) => Ok(index),
            Err(ReplicationError::Write(error))
                if matches!(
                    *error,
                    RaftError::APIError(ClientWriteError::ForwardToLeader(_))
                ) =>
            {
                let RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) = *error else {
                    unreachable!("matched above");
                };
                let leader = forward
                    .leader_node
                    .and_then(|node| node.identity)
                    .or_else(|| forward.leader_id.and_then(|id| self.identity_of(id)));
                Err(ControlPlaneError::NotLeader { leader })
            }
            Err(error) => {
                self.last_error = Some(error);
                Err(ControlPlaneError::NotLeader {
                    leader: self.leader(),
                })
            }
        }
    }
}
