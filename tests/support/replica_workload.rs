//! A seeded replica-mode workload (a node opened with
//! `open_replica_with_storage`), its model, and the checker of G3/G4 and of
//! the catalog after every crash and reopen.
//!
//! The node follows simulated leaders whose logs sometimes diverge from its
//! own (so `append_entries` truncates a conflicting suffix), wins elections
//! and leads (`become_leader`, `append_uncommitted_batch`,
//! `advance_commit`), and compacts its log (`compact`). As in
//! [`super::workload`], the model predicts each call's acknowledged state and
//! the logs a crash during it may leave:
//! * `AppendEntries` truncating at `t`: any prefix of the old log at least
//!   `t` long, or the old log cut at `t` plus any prefix of the new entries;
//!   once acknowledged, only the new log (G4: truncated entries never return);
//! * `AdvanceCommit`: logs unchanged, commit between old and new;
//! * `Compact`: the old start or the new one; once acknowledged only the new
//!   one, and a read below it is `Error::Compacted`;
//! * `InstallSnapshot` (a snapshot a simulated leader built, past our commit
//!   point): when our log holds the snapshot's last entry, the old start or
//!   the snapshot's end with our suffix kept; otherwise any prefix of the old
//!   log down to the commit point (the install truncates first) or an empty
//!   log at the snapshot's end.
//!
//! After every reopen: the commit point is at least the acknowledged one and
//! within the log, and the catalog equals the model's catalog of the
//! committed prefix (rebuilt from every entry ever committed, which stays
//! known to the model after compaction).

use std::ops::Range;

use cpwal::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, ClusterVoterIdentity, ConflictHint,
    ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, Error,
    InstallSnapshotRequest, LogEntry, ReplicaControlPlane,
};

use super::sim_disk::{Rng, SimDisk};
use super::workload::{
    create_or_open, observe_hard, observe_log, options, random_entry, voter, HardView, LogShape,
    LogView, NODE_SUBJECT,
};

/// The engine under test, in replica mode, on a simulated disk.
pub type Replica = ReplicaControlPlane<SimDisk>;

/// One call on the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaOp {
    /// A leader's `append_entries`.
    AppendEntries(AppendEntriesRequest),
    /// `start_election` (the node becomes a candidate).
    StartElection,
    /// `become_leader` in the current term (no disk write).
    BecomeLeader(u64),
    /// `append_uncommitted_batch` as the leader.
    AppendUncommitted(Vec<ControlPlaneEntry>),
    /// `advance_commit` as the leader.
    AdvanceCommit(u64),
    /// `compact(keep_entries)`.
    Compact(u64),
    /// `install_snapshot` of a leader's snapshot covering `covered` (every
    /// `(term, entry)` from index 0 to the snapshot's end).
    InstallSnapshot {
        /// The request sent.
        request: InstallSnapshotRequest,
        /// What the snapshot covers, for the model's committed history.
        covered: Vec<(u64, ControlPlaneEntry)>,
    },
}

/// What an acknowledged call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaReply {
    /// `append_entries`' response.
    Append(AppendEntriesResponse),
    /// The term an election moved to.
    Elected(u64),
    /// Entries appended at these indexes.
    Appended(Range<u64>),
    /// The call returned `Ok(())`.
    Done,
    /// `compact` left the log starting here.
    Compacted(u64),
}

/// What the model tracks about the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// Term and vote.
    pub hard: HardView,
    /// The log.
    pub log: LogView,
    /// One past the highest committed index.
    pub commit_end: u64,
    /// The leader known in the current term (not durable).
    pub leader: Option<ClusterVoterIdentity>,
}

/// An operation's predicted effect.
#[derive(Debug, Clone)]
pub struct ReplicaTransition {
    /// The operation.
    pub op: ReplicaOp,
    /// Its reply when acknowledged.
    pub reply: ReplicaReply,
    /// The state once acknowledged.
    pub after: ReplicaState,
    /// Logs a crash during the call may leave (the old log is always allowed).
    pub crash_logs: Vec<LogShape>,
}

/// The model: acknowledged state, call in flight, every committed entry.
#[derive(Debug, Clone)]
pub struct ReplicaModel {
    /// The node's identity.
    pub node: ClusterVoterIdentity,
    /// The acknowledged (or recovered) state.
    pub state: ReplicaState,
    /// The call that failed, until the next successful reopen.
    pub in_flight: Option<ReplicaTransition>,
    /// `(term, entry)` of every index below `state.commit_end`, from index 0
    /// (committed entries never change, so compaction does not lose them).
    committed: Vec<(u64, ControlPlaneEntry)>,
    /// The catalog of `committed`.
    catalog: ControlPlaneCatalog,
}

/// The simulated leader of `term`: one identity per term, never the node.
pub fn leader_of(term: u64) -> ClusterVoterIdentity {
    voter(if term.is_multiple_of(2) {
        "CN=node-b"
    } else {
        "CN=node-c"
    })
}

impl ReplicaModel {
    /// A replica opened on an empty directory: term 0, no vote, empty log.
    pub fn new(node: ClusterVoterIdentity) -> Self {
        Self {
            node,
            state: ReplicaState {
                hard: HardView {
                    term: 0,
                    vote: None,
                },
                log: LogView {
                    start_index: 0,
                    entries: Vec::new(),
                },
                commit_end: 0,
                leader: None,
            },
            in_flight: None,
            committed: Vec::new(),
            catalog: ControlPlaneCatalog::new(),
        }
    }

    /// Whether the node leads its current term.
    pub fn leads(&self) -> bool {
        self.state.leader.as_ref() == Some(&self.node)
    }

    /// The term of `index`, from the log or the committed history.
    fn term_at(&self, index: u64) -> u64 {
        let log = &self.state.log;
        if index >= log.start_index {
            log.entries[(index - log.start_index) as usize].0
        } else {
            self.committed[index as usize].0
        }
    }

    /// The transition `op` makes from the acknowledged state.
    pub fn predict(&self, op: &ReplicaOp) -> ReplicaTransition {
        let mut after = self.state.clone();
        let mut crash_logs = Vec::new();
        let reply = match op {
            ReplicaOp::AppendEntries(request) => {
                self.predict_append_entries(request, &mut after, &mut crash_logs)
            }
            ReplicaOp::StartElection => {
                after.hard = HardView {
                    term: self.state.hard.term + 1,
                    vote: Some(self.node.clone()),
                };
                after.leader = None;
                ReplicaReply::Elected(after.hard.term)
            }
            ReplicaOp::BecomeLeader(_) => {
                after.leader = Some(self.node.clone());
                ReplicaReply::Done
            }
            ReplicaOp::AppendUncommitted(entries) => {
                let term = self.state.hard.term;
                let new: Vec<_> = entries.iter().map(|e| (term, e.clone())).collect();
                let start = after.log.end_index();
                after.log.entries.extend(new.iter().cloned());
                crash_logs.push(LogShape {
                    fixed: self.state.log.clone(),
                    optional_tail: new,
                });
                ReplicaReply::Appended(start..after.log.end_index())
            }
            ReplicaOp::AdvanceCommit(index) => {
                after.commit_end = after.commit_end.max(index + 1);
                ReplicaReply::Done
            }
            ReplicaOp::Compact(keep) => {
                let log = &self.state.log;
                let new_start = self
                    .state
                    .commit_end
                    .saturating_sub(*keep)
                    .max(log.start_index);
                after.log = LogView {
                    start_index: new_start,
                    entries: log.entries[(new_start - log.start_index) as usize..].to_vec(),
                };
                crash_logs.push(LogShape::exact(&after.log));
                ReplicaReply::Compacted(new_start)
            }
            ReplicaOp::InstallSnapshot { request, covered } => {
                self.predict_install(request, covered, &mut after, &mut crash_logs)
            }
        };
        ReplicaTransition {
            op: op.clone(),
            reply,
            after,
            crash_logs,
        }
    }

    /// Raft's AppendEntries receiver rules, as `append_entries` documents.
    fn predict_append_entries(
        &self,
        request: &AppendEntriesRequest,
        after: &mut ReplicaState,
        crash_logs: &mut Vec<LogShape>,
    ) -> ReplicaReply {
        let reply = |after: &ReplicaState, outcome| {
            ReplicaReply::Append(AppendEntriesResponse {
                term: ControlPlaneTerm(after.hard.term),
                outcome,
            })
        };
        if request.term.0 < after.hard.term {
            return reply(after, AppendOutcome::StaleTerm);
        }
        if request.term.0 > after.hard.term {
            after.hard = HardView {
                term: request.term.0,
                vote: None,
            };
        }
        after.leader = Some(request.leader.clone());
        let old = &self.state.log;
        let prev_end = request.prev_log_index.map_or(0, |i| i.0 + 1);
        if prev_end > old.end_index() {
            let hint = ConflictHint {
                conflict_term: None,
                first_index: ControlPlaneIndex(old.end_index()),
            };
            return reply(after, AppendOutcome::Mismatch(hint));
        }
        let first_new = request
            .entries
            .iter()
            .position(|e| {
                e.index.0 >= old.end_index()
                    || (e.index.0 >= old.start_index && self.term_at(e.index.0) != e.term.0)
            })
            .unwrap_or(request.entries.len());
        let new: Vec<_> = request.entries[first_new..]
            .iter()
            .map(|e| (e.term.0, e.entry.clone()))
            .collect();
        let kept = new
            .first()
            .map_or(old.entries.len(), |_| {
                (request.entries[first_new].index.0 - old.start_index) as usize
            })
            .min(old.entries.len());
        let cut = LogView {
            start_index: old.start_index,
            entries: old.entries[..kept].to_vec(),
        };
        crash_logs.push(LogShape {
            fixed: cut.clone(),
            optional_tail: old.entries[kept..].to_vec(),
        });
        crash_logs.push(LogShape {
            fixed: cut.clone(),
            optional_tail: new.clone(),
        });
        after.log = cut;
        after.log.entries.extend(new);
        let last_new_end = prev_end + request.entries.len() as u64;
        let leader_commit_end = request.leader_commit.map_or(0, |i| i.0 + 1);
        after.commit_end = after.commit_end.max(leader_commit_end.min(last_new_end));
        let match_index = last_new_end.checked_sub(1).map(ControlPlaneIndex);
        reply(after, AppendOutcome::Accepted { match_index })
    }

    /// `install_snapshot`'s rules (see its documentation): a snapshot past
    /// the commit point replaces the log up to its end, keeping our suffix
    /// only when our log holds its last entry with the same term.
    fn predict_install(
        &self,
        request: &InstallSnapshotRequest,
        covered: &[(u64, ControlPlaneEntry)],
        after: &mut ReplicaState,
        crash_logs: &mut Vec<LogShape>,
    ) -> ReplicaReply {
        if request.term.0 > after.hard.term {
            after.hard = HardView {
                term: request.term.0,
                vote: None,
            };
        }
        after.leader = Some(request.leader.clone());
        let index_end = covered.len() as u64;
        let reply = ReplicaReply::Append(AppendEntriesResponse {
            term: ControlPlaneTerm(after.hard.term),
            outcome: AppendOutcome::Accepted {
                match_index: index_end.checked_sub(1).map(ControlPlaneIndex),
            },
        });
        if index_end <= self.state.commit_end {
            return reply;
        }
        let old = &self.state.log;
        let last_term = covered.last().map_or(0, |(term, _)| *term);
        let keeps_suffix = index_end <= old.end_index() && self.term_at(index_end - 1) == last_term;
        let kept = if keeps_suffix {
            old.entries[(index_end - old.start_index) as usize..].to_vec()
        } else {
            let cut = (self.state.commit_end.max(old.start_index) - old.start_index) as usize;
            crash_logs.push(LogShape {
                fixed: LogView {
                    start_index: old.start_index,
                    entries: old.entries[..cut].to_vec(),
                },
                optional_tail: old.entries[cut..].to_vec(),
            });
            Vec::new()
        };
        after.log = LogView {
            start_index: index_end,
            entries: kept,
        };
        after.commit_end = index_end;
        crash_logs.push(LogShape::exact(&after.log));
        reply
    }

    /// Extends the committed history and its catalog to `state.commit_end`,
    /// taking entries below the log start from `installed` (a snapshot's).
    fn extend_committed(&mut self, installed: &[(u64, ControlPlaneEntry)]) {
        let log = &self.state.log;
        while (self.committed.len() as u64) < self.state.commit_end {
            let index = self.committed.len() as u64;
            let entry = if index < log.start_index {
                installed[index as usize].clone()
            } else {
                log.entries[(index - log.start_index) as usize].clone()
            };
            // A refusal (stale epoch, old leader term) is an outcome, not an
            // error; only an out-of-order index is an error, never here.
            let _ = self.catalog.apply(ControlPlaneIndex(index), &entry.1);
            self.committed.push(entry);
        }
    }

    /// Checks what the node reports against `state` (the model's view).
    fn check_node(&self, node: &Replica, what: &str) -> Result<(), String> {
        let observed = observe_hard(node);
        let commit_end = node.commit_index_end();
        let log_end = node.last_index().map_or(node.first_index().0, |i| i.0 + 1);
        let state = &self.state;
        if observed != state.hard
            || commit_end != state.commit_end
            || log_end != state.log.end_index()
            || node.first_index().0 != state.log.start_index
        {
            return Err(format!(
                "{what}: engine has {observed:?}, log {}..{log_end}, commit end {commit_end}; model expects {:?}, log {}..{}, commit end {}",
                node.first_index().0,
                state.hard,
                state.log.start_index,
                state.log.end_index(),
                state.commit_end
            ));
        }
        if node.applied_end().0 != state.commit_end || *node.catalog() != self.catalog {
            return Err(format!(
                "{what}: catalog applied through {} differs from the model's catalog of the {} committed entries",
                node.applied_end(),
                state.commit_end
            ));
        }
        Ok(())
    }

    /// Adopts an acknowledged transition after checking the engine agrees.
    pub fn acknowledge(
        &mut self,
        transition: ReplicaTransition,
        node: &Replica,
    ) -> Result<(), String> {
        let op = format!("{:?}", transition.op);
        self.state = transition.after;
        self.extend_committed(installed_by(&transition.op));
        self.check_node(node, &op)
    }

    /// Checks a freshly reopened replica (G3/G4, commit bounds, catalog,
    /// compaction) and adopts what it recovered.
    pub fn check_recovered(&mut self, node: &Replica) -> Result<(), String> {
        let hard = observe_hard(node);
        let log = observe_log(node)?;
        let commit_end = node.commit_index_end();
        let mut allowed_hard = vec![self.state.hard.clone()];
        let mut allowed_logs = vec![LogShape::exact(&self.state.log)];
        if let Some(in_flight) = &self.in_flight {
            allowed_hard.push(in_flight.after.hard.clone());
            allowed_logs.extend(in_flight.crash_logs.iter().cloned());
        }
        let in_flight_op = self.in_flight.as_ref().map(|t| &t.op);
        if !allowed_hard.contains(&hard) {
            return Err(format!(
                "G1: recovered term/vote {hard:?}; acknowledged {:?}, in flight {in_flight_op:?}",
                self.state.hard
            ));
        }
        if !allowed_logs.iter().any(|shape| shape.matches(&log)) {
            return Err(format!(
                "G3/G4: recovered log (start {}, {} entries, terms {:?}) is not the acknowledged one (start {}, {} entries, terms {:?}) nor one the call in flight ({in_flight_op:?}) may leave",
                log.start_index,
                log.entries.len(),
                log.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
                self.state.log.start_index,
                self.state.log.entries.len(),
                self.state.log.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            ));
        }
        if commit_end < self.state.commit_end || commit_end > log.end_index() {
            return Err(format!(
                "G3: recovered commit end {commit_end}; acknowledged {}, log end {}, in flight {in_flight_op:?}",
                self.state.commit_end,
                log.end_index()
            ));
        }
        check_compacted_read(node, log.start_index)?;
        self.state = ReplicaState {
            hard,
            log,
            commit_end,
            leader: None,
        };
        let in_flight = self.in_flight.take();
        self.extend_committed(in_flight.as_ref().map_or(&[], |t| installed_by(&t.op)));
        self.check_node(node, "reopen")
    }
}

/// The entries a snapshot install covers (none for other operations).
fn installed_by(op: &ReplicaOp) -> &[(u64, ControlPlaneEntry)] {
    match op {
        ReplicaOp::InstallSnapshot { covered, .. } => covered,
        _ => &[],
    }
}

/// G4 for compaction: the index just below the log start reads `Compacted`.
fn check_compacted_read(node: &Replica, start: u64) -> Result<(), String> {
    let Some(below) = start.checked_sub(1) else {
        return Ok(());
    };
    match node.read(ControlPlaneIndex(below)) {
        Err(Error::Compacted { .. }) => Ok(()),
        other => Err(format!(
            "G4: read of compacted index {below} (log start {start}) returned {other:?}"
        )),
    }
}

/// One past the commit index (0 when nothing is committed).
trait CommitEnd {
    fn commit_index_end(&self) -> u64;
}

impl CommitEnd for Replica {
    fn commit_index_end(&self) -> u64 {
        self.commit_index().map_or(0, |i| i.0 + 1)
    }
}

/// The next operation, valid for the model's state (every call the
/// generator makes is one the engine must accept).
pub fn random_replica_op(rng: &mut Rng, model: &ReplicaModel) -> ReplicaOp {
    let state = &model.state;
    let candidate = state.hard.vote.as_ref() == Some(&model.node) && state.leader.is_none();
    if model.leads() {
        return match rng.below(10) {
            0..=3 => ReplicaOp::AppendUncommitted(random_entries(rng)),
            4..=6 => advance_commit_op(rng, model)
                .unwrap_or_else(|| ReplicaOp::AppendUncommitted(random_entries(rng))),
            7 => ReplicaOp::Compact(rng.below(4)),
            _ => ReplicaOp::AppendEntries(random_request(rng, model)),
        };
    }
    match rng.below(10) {
        0..=5 => ReplicaOp::AppendEntries(random_request(rng, model)),
        6 => ReplicaOp::StartElection,
        7 if candidate => ReplicaOp::BecomeLeader(state.hard.term),
        7 => ReplicaOp::StartElection,
        8 if candidate => ReplicaOp::BecomeLeader(state.hard.term),
        8 => install_op(rng, model),
        _ => ReplicaOp::Compact(rng.below(4)),
    }
}

fn random_entries(rng: &mut Rng) -> Vec<ControlPlaneEntry> {
    (0..1 + rng.below(3)).map(|_| random_entry(rng)).collect()
}

/// A commit advance to an entry of the leader's own term, if it has one.
fn advance_commit_op(rng: &mut Rng, model: &ReplicaModel) -> Option<ReplicaOp> {
    let log = &model.state.log;
    let term = model.state.hard.term;
    let first_own = log.entries.iter().position(|e| e.0 == term)? as u64 + log.start_index;
    let low = first_own.max(model.state.commit_end);
    let high = log.end_index();
    (low < high).then(|| ReplicaOp::AdvanceCommit(low + rng.below(high - low)))
}

/// The `step`-th operation of a short scripted workload that always holds a
/// follower append, an election, uncommitted appends, a commit advance, a
/// truncation of the node's own uncommitted entries by a newer leader, and a
/// compaction (contents and sizes are random).
pub fn scripted_replica_op(step: usize, rng: &mut Rng, model: &ReplicaModel) -> ReplicaOp {
    let state = &model.state;
    match step {
        0 => {
            let mut request = diverging_request(rng, model);
            request.leader_commit = Some(ControlPlaneIndex(0));
            ReplicaOp::AppendEntries(request)
        }
        1 => ReplicaOp::StartElection,
        2 => ReplicaOp::BecomeLeader(state.hard.term),
        3 | 5 => ReplicaOp::AppendUncommitted(random_entries(rng)),
        4 => advance_commit_op(rng, model).unwrap_or(ReplicaOp::Compact(0)),
        6 => ReplicaOp::AppendEntries(diverging_request(rng, model)),
        7 => ReplicaOp::Compact(rng.below(2)),
        8 => install_op(rng, model),
        _ => random_replica_op(rng, model),
    }
}

/// A request from the leader of the next term whose log diverges from ours
/// right after our commit point (so every uncommitted entry is truncated),
/// with one to three new entries and a commit point among them.
fn diverging_request(rng: &mut Rng, model: &ReplicaModel) -> AppendEntriesRequest {
    let state = &model.state;
    let term = state.hard.term + 1;
    let prev_end = state.commit_end.max(state.log.start_index);
    let entries: Vec<_> = (0..1 + rng.below(3))
        .map(|offset| log_entry(prev_end + offset, term, random_entry(rng)))
        .collect();
    let commit_end = prev_end + rng.below(entries.len() as u64 + 1);
    append_request(model, rng, term, prev_end, entries, commit_end)
}

/// A snapshot from a simulated leader, past our commit point: half the time
/// the leader's log holds our uncommitted entries up to the snapshot's end
/// (so our suffix is kept), otherwise it holds new entries of the next term
/// there (so our log restarts at the snapshot's end).
fn install_op(rng: &mut Rng, model: &ReplicaModel) -> ReplicaOp {
    let state = &model.state;
    let log = &state.log;
    let mut covered = model.committed.clone();
    let uncommitted = log.end_index() - state.commit_end;
    let keeps_suffix = uncommitted > 0 && !model.leads() && rng.chance(1, 2);
    let term = if keeps_suffix && state.hard.vote.is_none() {
        state.hard.term.max(1)
    } else {
        state.hard.term + 1
    };
    if keeps_suffix {
        let from = (state.commit_end - log.start_index) as usize;
        let count = 1 + rng.below(uncommitted) as usize;
        covered.extend(log.entries[from..from + count].iter().cloned());
    } else {
        covered.extend((0..1 + rng.below(3)).map(|_| (term, random_entry(rng))));
    }
    let request = InstallSnapshotRequest {
        term: ControlPlaneTerm(term),
        leader: leader_of(term),
        snapshot: leader_snapshot(term, &covered),
    };
    ReplicaOp::InstallSnapshot { request, covered }
}

/// The snapshot file a leader holding `covered`, all committed, sends: built
/// by a real replica on a disk of its own (never crashed).
fn leader_snapshot(term: u64, covered: &[(u64, ControlPlaneEntry)]) -> Vec<u8> {
    let mut leader = Replica::create_with_storage(SimDisk::new(), leader_of(term), options())
        .expect("leader created");
    let entries = covered
        .iter()
        .enumerate()
        .map(|(index, (term, entry))| log_entry(index as u64, *term, entry.clone()))
        .collect();
    let request = AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: voter("CN=node-z"),
        prev_log_index: None,
        prev_log_term: ControlPlaneTerm(0),
        entries,
        leader_commit: (covered.len() as u64).checked_sub(1).map(ControlPlaneIndex),
    };
    leader.append_entries(&request).expect("leader's log");
    leader.compact(0).expect("leader's snapshot");
    leader
        .snapshot_for_peer()
        .expect("leader's snapshot reads")
        .expect("leader has a snapshot")
}

/// A request from a simulated leader: stale now and then, mostly of a newer
/// term (whose log may diverge from ours anywhere past our commit point) or
/// of the current leader's term (which extends ours).
fn random_request(rng: &mut Rng, model: &ReplicaModel) -> AppendEntriesRequest {
    let state = &model.state;
    let log = &state.log;
    let current = state.hard.term;
    let newer = model.leads()
        || state.leader.is_none() && state.hard.vote.is_some()
        || current == 0
        || rng.chance(2, 5);
    let term = match rng.below(12) {
        0 if current > 1 => current - 1,
        _ if newer => current + 1,
        _ => current,
    };
    let diverges = term > log.last_term();
    let low = state.commit_end.max(log.start_index);
    let prev_end = if rng.chance(1, 12) {
        log.end_index() + 1 + rng.below(2)
    } else if diverges {
        low + rng.below(log.end_index() - low + 1)
    } else {
        log.end_index() - rng.below(log.end_index() - low + 1).min(2)
    };
    let mut entries = Vec::new();
    let copied = if diverges && prev_end <= log.end_index() {
        rng.below(log.end_index() - prev_end + 1)
    } else {
        log.end_index().saturating_sub(prev_end)
    };
    for index in prev_end..prev_end + copied {
        let (entry_term, entry) = log.entries[(index - log.start_index) as usize].clone();
        entries.push(log_entry(index, entry_term, entry));
    }
    if term >= current {
        for _ in 0..rng.below(4) {
            let index = prev_end + entries.len() as u64;
            entries.push(log_entry(index, term, random_entry(rng)));
        }
    }
    if prev_end > log.end_index() || term < current {
        entries.clear();
    }
    let last_end = prev_end + entries.len() as u64;
    let commit_end = rng.below(last_end + 2);
    append_request(model, rng, term, prev_end, entries, commit_end)
}

/// The request of `term`'s leader carrying `entries` after the first
/// `prev_end` entries and a leader commit point of `commit_end` (one past);
/// the previous entry's term is drawn by [`prev_term`].
fn append_request(
    model: &ReplicaModel,
    rng: &mut Rng,
    term: u64,
    prev_end: u64,
    entries: Vec<LogEntry>,
    commit_end: u64,
) -> AppendEntriesRequest {
    AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: leader_of(term),
        prev_log_index: prev_end.checked_sub(1).map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(prev_term(model, prev_end, rng)),
        entries,
        leader_commit: commit_end.checked_sub(1).map(ControlPlaneIndex),
    }
}

fn prev_term(model: &ReplicaModel, prev_end: u64, rng: &mut Rng) -> u64 {
    match prev_end.checked_sub(1) {
        Some(prev) if prev < model.state.log.end_index() => model.term_at(prev),
        Some(_) => rng.below(model.state.hard.term + 1),
        None => 0,
    }
}

fn log_entry(index: u64, term: u64, entry: ControlPlaneEntry) -> LogEntry {
    LogEntry {
        index: ControlPlaneIndex(index),
        term: ControlPlaneTerm(term),
        entry,
    }
}

/// A simulated disk, the replica on it, the model, and the workload's PRNG.
#[derive(Debug)]
pub struct ReplicaHarness {
    /// The disk.
    pub disk: SimDisk,
    /// The replica, while open.
    pub node: Option<Replica>,
    /// The model.
    pub model: ReplicaModel,
    /// Drives operation choice.
    pub rng: Rng,
    /// Every operation run, for failure reports.
    pub history: Vec<ReplicaOp>,
    /// Whether a creation of the replica was acknowledged (see
    /// [`create_or_open`]).
    created: bool,
}

impl ReplicaHarness {
    /// A fresh disk and model; the replica is not open yet.
    pub fn new(seed: u64) -> Self {
        Self {
            disk: SimDisk::new(),
            node: None,
            model: ReplicaModel::new(voter(NODE_SUBJECT)),
            rng: Rng::new(seed),
            history: Vec::new(),
            created: false,
        }
    }

    /// Opens the replica and checks what it recovered; an open cut short by
    /// a power cut returns the engine's error.
    pub fn open(&mut self) -> Result<Result<(), Error>, String> {
        self.node = None;
        let disk = &self.disk;
        let opened = create_or_open(
            self.created,
            || Replica::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()),
            || Replica::open_with_storage(disk.clone(), voter(NODE_SUBJECT), options()),
        );
        match opened {
            Ok(node) => {
                self.created = true;
                self.model.check_recovered(&node)?;
                self.node = Some(node);
                Ok(Ok(()))
            }
            Err(error) if self.disk.has_failed() => Ok(Err(error)),
            Err(error) => Err(format!("reopen failed without an injected fault: {error}")),
        }
    }

    /// Runs one random operation; `Ok(false)` when it failed (power cut).
    pub fn step(&mut self) -> Result<bool, String> {
        let op = random_replica_op(&mut self.rng, &self.model);
        self.run_op(op)
    }

    /// Runs the `step`-th scripted operation (see [`scripted_replica_op`]).
    pub fn scripted_step(&mut self, step: usize) -> Result<bool, String> {
        let op = scripted_replica_op(step, &mut self.rng, &self.model);
        self.run_op(op)
    }

    /// Runs `op` and checks its reply; a failure is only allowed once the
    /// power is off, and leaves the call in flight.
    pub fn run_op(&mut self, op: ReplicaOp) -> Result<bool, String> {
        self.history.push(op.clone());
        let transition = self.model.predict(&op);
        let node = self.node.as_mut().ok_or("run_op without an open node")?;
        let result = match &op {
            ReplicaOp::AppendEntries(request) => {
                node.append_entries(request).map(ReplicaReply::Append)
            }
            ReplicaOp::StartElection => node.start_election().map(|t| ReplicaReply::Elected(t.0)),
            ReplicaOp::BecomeLeader(term) => node
                .become_leader(ControlPlaneTerm(*term))
                .map(|()| ReplicaReply::Done),
            ReplicaOp::AppendUncommitted(entries) => node
                .append_uncommitted_batch(entries)
                .map(|written| ReplicaReply::Appended(written.start.0..written.end.0)),
            ReplicaOp::AdvanceCommit(index) => node
                .advance_commit(ControlPlaneIndex(*index))
                .map(|()| ReplicaReply::Done),
            ReplicaOp::Compact(keep) => node
                .compact(*keep)
                .map(|report| ReplicaReply::Compacted(report.log_start.0)),
            ReplicaOp::InstallSnapshot { request, .. } => {
                node.install_snapshot(request).map(ReplicaReply::Append)
            }
        };
        match result {
            Ok(reply) if reply == transition.reply => {
                self.model.acknowledge(transition, node)?;
                Ok(true)
            }
            Ok(reply) => Err(format!(
                "{op:?} replied {reply:?}; model expects {:?}",
                transition.reply
            )),
            Err(_) if self.disk.has_failed() => {
                self.model.in_flight = Some(transition);
                Ok(false)
            }
            Err(error) => Err(format!("{op:?} failed without an injected fault: {error}")),
        }
    }

    /// Power loss: the replica is dropped and the disk keeps what `seed`
    /// says.
    pub fn crash(&mut self, seed: u64) {
        self.node = None;
        self.disk.crash(seed);
    }

    /// The process dies and restarts on the same boot: the replica is
    /// dropped, the page cache and every unsynced change survive.
    pub fn restart(&mut self) {
        self.node = None;
        self.disk.restart_process();
    }
}
