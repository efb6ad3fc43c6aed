//! Three openraft nodes over cpwal storage in one process, joined by an
//! in-process network (openraft's router pattern): replication, failover
//! and recovery of a restarted leader from its own data directory.
#![cfg(feature = "openraft")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpwal::raft::types::CpwalRaft;
use cpwal::raft::{ClusterNode, CpwalRaftConfig, NodeId, NodeRegistry, ReplicatedControlPlane};
use cpwal::{
    ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError,
    ControlPlaneIndex, MembershipChange, Options,
};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, RaftNetwork, RaftNetworkFactory};

/// The running nodes by id; a node absent from the map is unreachable.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, CpwalRaft>>>,
}

impl Router {
    fn target(&self, id: NodeId) -> Option<CpwalRaft> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }
}

struct RouterConnection {
    router: Router,
    target: NodeId,
}

fn unreachable<E: std::error::Error>(target: NodeId) -> RPCError<NodeId, ClusterNode, E> {
    let gone = std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("node {target} is down"),
    );
    RPCError::Unreachable(Unreachable::new(&gone))
}

impl RaftNetworkFactory<CpwalRaftConfig> for Router {
    type Network = RouterConnection;

    async fn new_client(&mut self, target: NodeId, _node: &ClusterNode) -> RouterConnection {
        RouterConnection {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<CpwalRaftConfig> for RouterConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<CpwalRaftConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>>
    {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<CpwalRaftConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ClusterNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>> {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn identity(text: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(text).unwrap()
}

fn config() -> Config {
    Config {
        cluster_name: "cpwal-test".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Config::default()
    }
}

struct Cluster {
    router: Router,
    registry: NodeRegistry,
    identities: Vec<ClusterVoterIdentity>,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<ReplicatedControlPlane>>,
}

impl Cluster {
    fn new(size: usize) -> Self {
        let identities: Vec<_> = (0..size)
            .map(|i| identity(&format!("CN=node-{i}")))
            .collect();
        let registry = NodeRegistry::with_members(&identities).unwrap();
        let dirs = (0..size).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Self {
            router: Router::default(),
            registry,
            identities,
            dirs,
            nodes: (0..size).map(|_| None).collect(),
        };
        for i in 0..size {
            cluster.start(i, true);
        }
        cluster
    }

    /// Starts node `i` from its directory; `reachable` adds it to the router.
    fn start(&mut self, i: usize, reachable: bool) {
        let node = ReplicatedControlPlane::start(
            self.dirs[i].path(),
            self.identities[i].clone(),
            self.registry.clone(),
            self.router.clone(),
            config(),
            Options::default(),
        )
        .unwrap();
        if reachable {
            self.connect(i, &node);
        }
        self.nodes[i] = Some(node);
    }

    fn connect(&self, i: usize, node: &ReplicatedControlPlane) {
        let _ = i;
        let mut nodes = self.router.nodes.lock().unwrap();
        nodes.insert(node.node_id(), node.raft().clone());
    }

    fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node is running");
        self.router.nodes.lock().unwrap().remove(&node.node_id());
        node.shutdown();
    }

    fn members(&self) -> BTreeMap<NodeId, ClusterNode> {
        self.identities
            .iter()
            .map(|id| {
                (
                    cpwal::raft::node_id_of(id),
                    ClusterNode::new(id.clone(), ""),
                )
            })
            .collect()
    }

    /// Waits until a running node leads, and returns its position.
    fn wait_for_leader(&self, not: Option<usize>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for (i, node) in self.nodes.iter().enumerate() {
                if Some(i) != not && node.as_ref().is_some_and(|n| n.is_leader()) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no leader elected within 20 s");
    }

    fn node(&mut self, i: usize) -> &mut ReplicatedControlPlane {
        self.nodes[i].as_mut().expect("node is running")
    }
}

fn admit(n: usize) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(identity(&format!(
        "CN=member-{n}"
    ))))
}

#[test]
fn cluster_fails_over_and_restarted_leader_catches_up() {
    // Goal: acknowledged entries survive the loss of the leader and a
    // restart from disk. Method: three nodes; append through the leader;
    // check a follower refuses with the leader's identity; stop the leader;
    // append through the newly elected one; restart the old leader from its
    // directory while unreachable and check it recovered term, vote and log
    // from disk; reconnect it and check every node applied every
    // acknowledged entry.
    let started = Instant::now();
    let mut cluster = Cluster::new(3);
    let members = cluster.members();
    cluster.node(0).initialize(members).unwrap();
    let first_leader = cluster.wait_for_leader(None);
    let leader_identity = cluster.identities[first_leader].clone();
    let mut acknowledged: Vec<(ControlPlaneIndex, usize)> = Vec::new();
    for n in 0..5 {
        let index = cluster.node(first_leader).append(admit(n)).unwrap();
        acknowledged.push((index, n));
    }
    let follower = (first_leader + 1) % 3;
    assert_eq!(
        cluster.node(follower).append(admit(99)),
        Err(ControlPlaneError::NotLeader {
            leader: Some(leader_identity.clone())
        })
    );
    assert_eq!(cluster.node(follower).leader(), Some(leader_identity));

    let old = cluster.node(first_leader);
    let old_vote = old.durable_vote();
    let old_last = old.last_log_index();
    cluster.stop(first_leader);
    let failover = Instant::now();
    let second_leader = cluster.wait_for_leader(Some(first_leader));
    let elected_after = failover.elapsed();
    assert!(cluster.node(second_leader).current_term() > old_vote.term);
    for n in 5..10 {
        let index = cluster.node(second_leader).append(admit(n)).unwrap();
        acknowledged.push((index, n));
    }

    cluster.start(first_leader, false);
    let restarted = cluster.node(first_leader);
    assert_eq!(
        restarted.durable_vote(),
        old_vote,
        "term and vote recovered from disk"
    );
    assert_eq!(restarted.last_log_index(), old_last, "log recovered");
    let restarted_node = cluster.nodes[first_leader].take().unwrap();
    cluster.connect(first_leader, &restarted_node);
    cluster.nodes[first_leader] = Some(restarted_node);

    let last = acknowledged.last().unwrap().0;
    for i in 0..3 {
        let node = cluster.node(i);
        assert!(
            node.wait_for_applied(last, Duration::from_secs(20)),
            "node {i} caught up"
        );
        let catalog = node.catalog();
        for (_, n) in &acknowledged {
            let member = identity(&format!("CN=member-{n}"));
            assert!(
                catalog.is_member(&member),
                "node {i} lost acknowledged entry {n}"
            );
        }
        assert_eq!(catalog.members().len(), acknowledged.len());
    }
    eprintln!(
        "three-node failover test: {:.2?} total, new leader elected {:.2?} after the old one stopped",
        started.elapsed(),
        elected_after
    );
}
