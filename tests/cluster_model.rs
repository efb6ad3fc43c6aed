//! A randomized three-node cluster on real files, driving every replication
//! operation the engine offers (elections through `grant_vote`, leader
//! appends, AppendEntries rounds with conflict hints, snapshot installs,
//! `advance_commit` by quorum, compaction, reopen) and checking Raft's
//! safety properties after every step.
//!
//! Seeds: `CPWAL_CLUSTER_SEEDS` (default 6) seeds of
//! `CPWAL_CLUSTER_STEPS` (default 120) steps; a failure names its seed.

use cpwal::{
    AppendEntriesRequest, AppendOutcome, ClusterVoterIdentity, ControlPlaneCatalog,
    ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, InstallSnapshotRequest, Options,
    OwnershipTransition, PeerBatch, ReplicaControlPlane, VoteRequest,
};
use std::collections::BTreeMap;

const NODES: usize = 3;

/// How often each kind of event happened, to show the schedule covers them.
#[derive(Debug, Default)]
struct Coverage {
    elections_won: u64,
    mismatches: u64,
    installs: u64,
    commits: u64,
    compactions: u64,
    reopens: u64,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn name(node: usize) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{node}")).unwrap()
}

fn create(dir: &std::path::Path, node: usize) -> ReplicaControlPlane {
    let options = Options::default().with_segment_size_bytes(4096);
    ReplicaControlPlane::create(dir, name(node), options).unwrap()
}

fn open(dir: &std::path::Path, node: usize) -> ReplicaControlPlane {
    let options = Options::default().with_segment_size_bytes(4096);
    ReplicaControlPlane::open(dir, name(node), options).unwrap()
}

/// The caller's view of one leader's peers (Raft's volatile leader state).
struct LeaderState {
    node: usize,
    next: [u64; NODES],
    matched: [Option<u64>; NODES],
}

/// What every node must agree on, learned from any node that committed it.
#[derive(Default)]
struct Committed {
    entries: BTreeMap<u64, (ControlPlaneTerm, ControlPlaneEntry)>,
    catalogs: Vec<ControlPlaneCatalog>,
}

impl Committed {
    /// Checks `node`'s committed entries against what is known, records new
    /// ones, and checks its catalog against the reference at its applied end.
    fn check(&mut self, node: &ReplicaControlPlane, label: &str) {
        let commit_end = node.commit_index().map_or(0, |i| i.0 + 1);
        for index in node.first_index().0..commit_end {
            let read = node.read(ControlPlaneIndex(index)).unwrap();
            let known = self
                .entries
                .entry(index)
                .or_insert((read.term, read.entry.clone()));
            assert_eq!(known, &(read.term, read.entry), "{label}: index {index}");
        }
        if self.catalogs.is_empty() {
            self.catalogs.push(ControlPlaneCatalog::new());
        }
        while let Some((term_entry, index)) = self
            .entries
            .get(&(self.catalogs.len() as u64 - 1))
            .map(|e| (e.clone(), self.catalogs.len() as u64 - 1))
        {
            let mut next = self.catalogs.last().unwrap().clone();
            next.apply(ControlPlaneIndex(index), &term_entry.1).unwrap();
            self.catalogs.push(next);
        }
        let applied = node.applied_end().0 as usize;
        assert_eq!(applied as u64, commit_end, "{label}: applied != committed");
        assert_eq!(node.catalog(), &self.catalogs[applied], "{label}: catalog");
    }
}

fn transfer(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{}", n % 4),
        new_owner: name((n % 3) as usize),
        ownership_epoch: n % 7,
    })
}

fn elect(nodes: &mut [ReplicaControlPlane], candidate: usize) -> Option<LeaderState> {
    nodes[candidate].start_election().unwrap();
    let term = nodes[candidate].current_term();
    let last = nodes[candidate].last_index().or_else(|| {
        let first = nodes[candidate].first_index().0;
        first.checked_sub(1).map(ControlPlaneIndex)
    });
    let request = VoteRequest {
        term,
        candidate: name(candidate),
        last_log_index: last,
        last_log_term: last.map_or(ControlPlaneTerm::GENESIS, |i| {
            nodes[candidate].term_at(i).unwrap()
        }),
    };
    let mut votes = 1;
    for voter in (0..NODES).filter(|&v| v != candidate) {
        let reply = nodes[voter].grant_vote(&request).unwrap();
        votes += usize::from(reply.vote_granted);
        nodes[candidate].observe_term(reply.term).unwrap();
    }
    if votes * 2 <= NODES || nodes[candidate].current_term() != term {
        return None;
    }
    nodes[candidate].become_leader(term).unwrap();
    let announcement = ControlPlaneEntry::LeaderConfiguration {
        term,
        leader: name(candidate),
    };
    nodes[candidate].append_uncommitted(&announcement).unwrap();
    let end = nodes[candidate].last_index().unwrap().0 + 1;
    Some(LeaderState {
        node: candidate,
        next: [end; NODES],
        matched: [None; NODES],
    })
}

/// One AppendEntries (or InstallSnapshot) round from the leader to `peer`,
/// then a commit advance if a quorum holds an entry of the leader's term.
fn replicate(
    nodes: &mut [ReplicaControlPlane],
    state: &mut LeaderState,
    peer: usize,
    budget: usize,
    coverage: &mut Coverage,
) {
    let leader = &nodes[state.node];
    let term = leader.current_term();
    let reply = match leader
        .entries_for_peer(ControlPlaneIndex(state.next[peer]), budget)
        .unwrap()
    {
        PeerBatch::Entries {
            prev_log_index,
            prev_log_term,
            entries,
        } => {
            let request = AppendEntriesRequest {
                term,
                leader: name(state.node),
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: leader.commit_index(),
            };
            nodes[peer].append_entries(&request).unwrap()
        }
        PeerBatch::SendSnapshot { .. } => {
            coverage.installs += 1;
            let request = InstallSnapshotRequest {
                term,
                leader: name(state.node),
                snapshot: leader.snapshot_for_peer().unwrap().unwrap(),
            };
            nodes[peer].install_snapshot(&request).unwrap()
        }
    };
    if reply.term > term {
        nodes[state.node].observe_term(reply.term).unwrap();
        return;
    }
    match reply.outcome {
        AppendOutcome::Accepted { match_index } => {
            state.matched[peer] = match_index.map(|i| i.0).max(state.matched[peer]);
            state.next[peer] = state.matched[peer].map_or(0, |m| m + 1);
        }
        AppendOutcome::Mismatch(hint) => {
            coverage.mismatches += 1;
            state.next[peer] = hint.first_index.0.min(state.next[peer].saturating_sub(1));
        }
        AppendOutcome::StaleTerm => unreachable!("reply.term > term handled above"),
    }
    if advance_by_quorum(nodes, state) {
        coverage.commits += 1;
    }
}

/// Commits the highest index a quorum holds if it has the leader's term;
/// returns whether the commit point moved.
fn advance_by_quorum(nodes: &mut [ReplicaControlPlane], state: &mut LeaderState) -> bool {
    let leader = &mut nodes[state.node];
    let mut matched: Vec<u64> = (0..NODES)
        .map(|n| match n == state.node {
            true => leader.last_index().map_or(0, |i| i.0 + 1),
            false => state.matched[n].map_or(0, |m| m + 1),
        })
        .collect();
    matched.sort_unstable();
    let quorum_end = matched[NODES / 2];
    let Some(index) = quorum_end.checked_sub(1) else {
        return false;
    };
    let commit_end = leader.commit_index().map_or(0, |i| i.0 + 1);
    if index < commit_end || index < leader.first_index().0 {
        return false;
    }
    if leader.term_at(ControlPlaneIndex(index)).unwrap() != leader.current_term() {
        return false;
    }
    leader.advance_commit(ControlPlaneIndex(index)).unwrap();
    true
}

fn run_seed(seed: u64, steps: usize, coverage: &mut Coverage) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<_> = (0..NODES).map(|n| create(dirs[n].path(), n)).collect();
    let mut leader: Option<LeaderState> = None;
    let mut committed = Committed::default();
    let mut highest_commit = [0u64; NODES];
    let mut appended = 0;
    for step in 0..steps {
        let pick = rng.below(NODES as u64) as usize;
        let label = format!("seed {seed} step {step}");
        match rng.below(10) {
            0 => {
                if let Some(won) = elect(&mut nodes, pick) {
                    coverage.elections_won += 1;
                    leader = Some(won);
                }
            }
            1..=3 => {
                if let Some(state) = leader.as_ref().filter(|s| nodes[s.node].is_leader()) {
                    nodes[state.node]
                        .append_uncommitted(&transfer(appended))
                        .unwrap();
                    appended += 1;
                }
            }
            4..=7 => {
                if let Some(state) = leader.as_mut().filter(|s| nodes[s.node].is_leader()) {
                    if pick != state.node {
                        let budget = [0, 200, usize::MAX][rng.below(3) as usize];
                        replicate(&mut nodes, state, pick, budget, coverage);
                    }
                }
            }
            8 => {
                nodes[pick].compact(rng.below(4)).unwrap();
                coverage.compactions += 1;
            }
            _ => {
                coverage.reopens += 1;
                // Release the directory lock before reopening it.
                let scratch = tempfile::tempdir().unwrap();
                drop(std::mem::replace(
                    &mut nodes[pick],
                    create(scratch.path(), pick),
                ));
                nodes[pick] = open(dirs[pick].path(), pick);
            }
        }
        for (n, node) in nodes.iter().enumerate() {
            let commit_end = node.commit_index().map_or(0, |i| i.0 + 1);
            assert!(
                commit_end >= highest_commit[n],
                "{label}: node {n} commit regressed"
            );
            highest_commit[n] = commit_end;
            committed.check(node, &format!("{label} node {n}"));
        }
    }
}

#[test]
fn cluster_model_keeps_raft_safety_across_reopen_and_compaction() {
    // Goal: with every operation interleaved at random — elections, leader
    // appends, AppendEntries with budgets, snapshot installs, quorum
    // commits, compaction, reopen — committed entries agree on every node,
    // each node's commit never regresses (across reopen too), and each
    // catalog equals the reference built from the committed entries.
    // Method: seeded random schedules over three replicas on real files.
    let seeds: u64 = std::env::var("CPWAL_CLUSTER_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let steps: usize = std::env::var("CPWAL_CLUSTER_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let mut coverage = Coverage::default();
    for seed in 1..=seeds {
        run_seed(seed, steps, &mut coverage);
    }
    let counts = [
        coverage.elections_won,
        coverage.mismatches,
        coverage.installs,
        coverage.commits,
        coverage.compactions,
        coverage.reopens,
    ];
    assert!(
        seeds < 6 || counts.iter().all(|&c| c > 0),
        "the schedule missed an operation: {coverage:?}"
    );
    eprintln!("{coverage:?}");
}
