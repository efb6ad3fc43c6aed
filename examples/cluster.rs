//! A three-node cpwal cluster over loopback TCP, replicated with openraft.
//!
//! Run with `cargo run --release --features openraft --example cluster`.
//! Each node has its own data directory (under a temporary directory) and
//! listens on 127.0.0.1 only. The example initializes the cluster, appends
//! through the leader, stops the leader, appends through the newly elected
//! one, prints every survivor's catalog and stops by itself (every wait is
//! bounded).
//!
//! The wire format is this example's own: a frame is a `u32` length and a
//! body; a request body starts with its kind (1 append-entries, 2 vote,
//! 3 install-snapshot), a response body with a status (0 answer, 1 refused
//! by the remote node). Entries travel in cpwal's entry envelope
//! ([`cpwal::raft::envelope`]). To run across machines, bind each node to
//! its own address and list the members' addresses in `initialize`; add
//! TLS (the identities are certificate subjects) before crossing a network
//! you do not trust.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cpwal::codec::DecodeError;
use cpwal::raft::envelope::{decode_membership, decode_payload, encode_membership, encode_payload};
use cpwal::raft::types::{CpwalEntry, CpwalLogId, CpwalRaft, CpwalVote};
use cpwal::raft::{ClusterNode, CpwalRaftConfig, NodeId, NodeRegistry, ReplicatedControlPlane};
use cpwal::{
    ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError,
    MembershipChange, Options,
};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, Config, LogId, RaftNetwork, RaftNetworkFactory, SnapshotMeta,
    StoredMembership, Vote,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest frame either side accepts.
const MAX_FRAME_BYTES: u32 = 64 << 20;
const KIND_APPEND: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;

// ---- encoding -----------------------------------------------------------

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn vote(&mut self, v: &CpwalVote) {
        self.u64(v.leader_id.term);
        self.option_u64(v.leader_id.voted_for);
        self.u8(u8::from(v.committed));
    }
    fn option_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn log_id(&mut self, v: Option<&CpwalLogId>) {
        match v {
            None => self.u8(0),
            Some(id) => {
                self.u8(1);
                self.u64(id.leader_id.term);
                self.u64(id.index);
            }
        }
    }
}

struct In<'a>(&'a [u8]);

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed frame")
}

fn undecodable(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(malformed());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("took 8"),
        ))
    }
    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = usize::try_from(self.u64()?).map_err(|_| malformed())?;
        self.take(n)
    }
    fn flag(&mut self) -> io::Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed()),
        }
    }
    fn option_u64(&mut self) -> io::Result<Option<u64>> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }
    fn vote(&mut self) -> io::Result<CpwalVote> {
        let mut vote = Vote::default();
        vote.leader_id.term = self.u64()?;
        vote.leader_id.voted_for = self.option_u64()?;
        vote.committed = self.flag()?;
        Ok(vote)
    }
    fn log_id(&mut self) -> io::Result<Option<CpwalLogId>> {
        if !self.flag()? {
            return Ok(None);
        }
        let term = self.u64()?;
        Ok(Some(LogId::new(
            CommittedLeaderId::new(term, 0),
            self.u64()?,
        )))
    }
}

fn encode_append(rpc: &AppendEntriesRequest<CpwalRaftConfig>, out: &mut Out) {
    out.vote(&rpc.vote);
    out.log_id(rpc.prev_log_id.as_ref());
    out.log_id(rpc.leader_commit.as_ref());
    out.u64(rpc.entries.len() as u64);
    for entry in &rpc.entries {
        out.log_id(Some(&entry.log_id));
        let mut payload = Vec::new();
        encode_payload(&entry.payload, &mut payload);
        out.bytes(&payload);
    }
}

fn decode_append(input: &mut In<'_>) -> io::Result<AppendEntriesRequest<CpwalRaftConfig>> {
    let vote = input.vote()?;
    let prev_log_id = input.log_id()?;
    let leader_commit = input.log_id()?;
    let count = input.u64()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let log_id = input.log_id()?.ok_or_else(malformed)?;
        let payload = decode_payload(input.bytes()?).map_err(undecodable)?;
        entries.push(CpwalEntry { log_id, payload });
    }
    Ok(AppendEntriesRequest {
        vote,
        prev_log_id,
        entries,
        leader_commit,
    })
}

fn encode_append_response(response: &AppendEntriesResponse<NodeId>, out: &mut Out) {
    match response {
        AppendEntriesResponse::Success => out.u8(0),
        AppendEntriesResponse::PartialSuccess(matched) => {
            out.u8(1);
            out.log_id(matched.as_ref());
        }
        AppendEntriesResponse::Conflict => out.u8(2),
        AppendEntriesResponse::HigherVote(vote) => {
            out.u8(3);
            out.vote(vote);
        }
    }
}

fn decode_append_response(input: &mut In<'_>) -> io::Result<AppendEntriesResponse<NodeId>> {
    Ok(match input.u8()? {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(input.log_id()?),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(input.vote()?),
        _ => return Err(malformed()),
    })
}

fn encode_snapshot_request(rpc: &InstallSnapshotRequest<CpwalRaftConfig>, out: &mut Out) {
    out.vote(&rpc.vote);
    out.log_id(rpc.meta.last_log_id.as_ref());
    out.log_id(rpc.meta.last_membership.log_id().as_ref());
    let mut membership = Vec::new();
    encode_membership(rpc.meta.last_membership.membership(), &mut membership);
    out.bytes(&membership);
    out.bytes(rpc.meta.snapshot_id.as_bytes());
    out.u64(rpc.offset);
    out.bytes(&rpc.data);
    out.u8(u8::from(rpc.done));
}

fn decode_snapshot_request(
    input: &mut In<'_>,
) -> io::Result<InstallSnapshotRequest<CpwalRaftConfig>> {
    let vote = input.vote()?;
    let last_log_id = input.log_id()?;
    let membership_log_id = input.log_id()?;
    let membership = decode_membership(input.bytes()?).map_err(undecodable)?;
    let snapshot_id = String::from_utf8(input.bytes()?.to_vec()).map_err(|_| malformed())?;
    let meta = SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(membership_log_id, membership),
        snapshot_id,
    };
    let offset = input.u64()?;
    let data = input.bytes()?.to_vec();
    let done = input.flag()?;
    Ok(InstallSnapshotRequest {
        vote,
        meta,
        offset,
        data,
        done,
    })
}

// ---- transport ----------------------------------------------------------

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    stream.write_all(&(body.len() as u32).to_le_bytes()).await?;
    stream.write_all(body).await
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let length = stream.read_u32_le().await?;
    if length > MAX_FRAME_BYTES {
        return Err(malformed());
    }
    let mut body = vec![0; length as usize];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Answers one request frame with the node's response frame.
async fn answer(raft: &CpwalRaft, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut input = In(request);
    let mut out = Out::default();
    match input.u8()? {
        KIND_APPEND => match raft.append_entries(decode_append(&mut input)?).await {
            Ok(response) => {
                out.u8(0);
                encode_append_response(&response, &mut out);
            }
            Err(_) => out.u8(1),
        },
        KIND_VOTE => {
            let vote = input.vote()?;
            let last_log_id = input.log_id()?;
            match raft.vote(VoteRequest { vote, last_log_id }).await {
                Ok(response) => {
                    out.u8(0);
                    out.vote(&response.vote);
                    out.u8(u8::from(response.vote_granted));
                    out.log_id(response.last_log_id.as_ref());
                }
                Err(_) => out.u8(1),
            }
        }
        KIND_SNAPSHOT => match raft
            .install_snapshot(decode_snapshot_request(&mut input)?)
            .await
        {
            Ok(response) => {
                out.u8(0);
                out.vote(&response.vote);
            }
            Err(_) => out.u8(1),
        },
        _ => return Err(malformed()),
    }
    Ok(out.0)
}

/// Serves one node's listener until the process ends.
async fn serve(listener: TcpListener, raft: CpwalRaft) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let raft = raft.clone();
        tokio::spawn(async move {
            while let Ok(request) = read_frame(&mut stream).await {
                let Ok(response) = answer(&raft, &request).await else {
                    break;
                };
                if write_frame(&mut stream, &response).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Opens connections to peers by the address in their membership entry.
struct TcpNetwork;

struct TcpConnection {
    address: String,
    stream: Option<TcpStream>,
}

impl RaftNetworkFactory<CpwalRaftConfig> for TcpNetwork {
    type Network = TcpConnection;

    async fn new_client(&mut self, _target: NodeId, node: &ClusterNode) -> TcpConnection {
        TcpConnection {
            address: node.address.clone(),
            stream: None,
        }
    }
}

/// A failed call: the peer did not answer, or refused the request.
enum CallError {
    Unreachable(io::Error),
    Refused,
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, ClusterNode, E> {
        match self {
            Self::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Self::Refused => {
                let e = io::Error::other("the peer refused the request");
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }
}

impl TcpConnection {
    /// Sends one request and returns the answer's body (after the status).
    async fn call(&mut self, request: Out, timeout: Duration) -> Result<Vec<u8>, CallError> {
        let exchange = async {
            if self.stream.is_none() {
                self.stream = Some(TcpStream::connect(&self.address).await?);
            }
            let stream = self.stream.as_mut().expect("connected above");
            write_frame(stream, &request.0).await?;
            read_frame(stream).await
        };
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.stream = None;
                return Err(CallError::Unreachable(e));
            }
            Err(_) => {
                self.stream = None;
                return Err(CallError::Unreachable(io::ErrorKind::TimedOut.into()));
            }
        };
        match answer.split_first() {
            Some((0, body)) => Ok(body.to_vec()),
            Some((1, _)) => Err(CallError::Refused),
            _ => Err(CallError::Unreachable(malformed())),
        }
    }
}

impl RaftNetwork<CpwalRaftConfig> for TcpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<CpwalRaftConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>>
    {
        let mut out = Out::default();
        out.u8(KIND_APPEND);
        encode_append(&rpc, &mut out);
        let body = self
            .call(out, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        decode_append_response(&mut In(&body)).map_err(|e| CallError::Unreachable(e).into_rpc())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<CpwalRaftConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ClusterNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let mut out = Out::default();
        out.u8(KIND_SNAPSHOT);
        encode_snapshot_request(&rpc, &mut out);
        let body = self
            .call(out, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        let vote = In(&body)
            .vote()
            .map_err(|e| CallError::Unreachable(e).into_rpc())?;
        Ok(InstallSnapshotResponse { vote })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>> {
        let mut out = Out::default();
        out.u8(KIND_VOTE);
        out.vote(&rpc.vote);
        out.log_id(rpc.last_log_id.as_ref());
        let body = self
            .call(out, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        let mut input = In(&body);
        let decoded = (|| {
            Ok::<_, io::Error>(VoteResponse {
                vote: input.vote()?,
                vote_granted: input.flag()?,
                last_log_id: input.log_id()?,
            })
        })();
        decoded.map_err(|e| CallError::Unreachable(e).into_rpc())
    }
}

// ---- the demonstration --------------------------------------------------

fn admit(name: &str) -> ControlPlaneEntry {
    let member = ClusterVoterIdentity::from_certificate_subject(name).expect("valid identity");
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

fn leader_position(nodes: &[Option<ReplicatedControlPlane>], deadline: Instant) -> Option<usize> {
    while Instant::now() < deadline {
        let leader = nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.is_leader()));
        if leader.is_some() {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let root = tempfile::tempdir()?;
    let network_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let identities: Vec<_> = (1..=3)
        .map(|i| ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{i}")))
        .collect::<Result<_, _>>()?;
    let registry = NodeRegistry::with_members(&identities)?;
    let listeners = (0..3)
        .map(|_| network_runtime.block_on(TcpListener::bind("127.0.0.1:0")))
        .collect::<io::Result<Vec<_>>>()?;
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<_>>()?;
    let config = Config {
        cluster_name: "cpwal-example".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        ..Config::default()
    };
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let node = ReplicatedControlPlane::start(
            root.path().join(format!("node-{}", i + 1)),
            identities[i].clone(),
            registry.clone(),
            TcpNetwork,
            config.clone(),
            Options::default(),
        )?;
        network_runtime.spawn(serve(listener, node.raft().clone()));
        println!("{} listening on {}", identities[i], addresses[i]);
        nodes.push(Some(node));
    }
    let members: BTreeMap<NodeId, ClusterNode> = identities
        .iter()
        .zip(&addresses)
        .map(|(id, address)| {
            (
                cpwal::raft::node_id_of(id),
                ClusterNode::new(id.clone(), address.to_string()),
            )
        })
        .collect();
    nodes[0].as_ref().expect("started").initialize(members)?;

    let first = leader_position(&nodes, deadline).ok_or("no leader elected")?;
    println!("leader: {}", identities[first]);
    for n in 0..5 {
        let leader = nodes[first].as_mut().expect("running");
        let index = leader.append(admit(&format!("CN=member-{n}")))?;
        println!("appended CN=member-{n} at index {}", index.0);
    }
    let follower = nodes[(first + 1) % 3].as_mut().expect("running");
    if let Err(ControlPlaneError::NotLeader { leader }) = follower.append(admit("CN=refused")) {
        println!("a follower refuses and names the leader: {leader:?}");
    }

    println!("stopping the leader {}", identities[first]);
    nodes[first].take().expect("running").shutdown();
    let second = leader_position(&nodes, deadline).ok_or("no new leader elected")?;
    println!("new leader: {}", identities[second]);
    for n in 5..8 {
        let leader = nodes[second].as_mut().expect("running");
        let index = leader.append(admit(&format!("CN=member-{n}")))?;
        println!("appended CN=member-{n} at index {}", index.0);
    }
    let last = nodes
        .iter()
        .flatten()
        .filter_map(|n| n.commit_index())
        .max();
    let last = last.ok_or("nothing committed")?;
    for node in nodes.iter().flatten() {
        node.wait_for_applied(last, deadline.saturating_duration_since(Instant::now()));
    }
    for node in nodes.iter().flatten() {
        let catalog = node.catalog();
        println!(
            "{}: term {}, {} members admitted: {:?}",
            node.identity(),
            node.current_term().0,
            catalog.members().len(),
            catalog
                .members()
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
        );
    }
    for node in nodes.into_iter().flatten() {
        node.shutdown();
    }
    network_runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
