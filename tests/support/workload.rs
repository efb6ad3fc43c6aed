//! A seeded workload for `DurableControlPlane`, a model of what it must do,
//! and the checker of G1–G5 after every crash and reopen.
//!
//! The model predicts, for every operation, the state it leads to once
//! acknowledged ([`Transition::after`]) and the logs a crash *during* it may
//! leave ([`Transition::crash_logs`]). The harness runs each operation on the
//! engine, compares the reply with the prediction and, on success, adopts the
//! predicted state as acknowledged. When a call fails (a power cut, a failed
//! sync, a full disk) the transition stays *in flight*: after the crash the
//! recovered state must be the acknowledged one or one the in-flight call may
//! have produced, and nothing else.
//!
//! # Extension point (follower appends, commit advancement, compaction)
//!
//! An operation is one [`Op`] variant plus one arm in [`Model::predict`]
//! (its acknowledged state and its crash logs) and one arm in
//! [`Harness::run_op`] (the engine call). For issue #4:
//! * `Op::AppendEntries { prev_index, prev_term, entries, leader_commit }`:
//!   `after.log` = model log truncated at the first conflict plus the new
//!   entries; `crash_logs` = the old log, and the truncated log with any
//!   prefix of the new entries as `optional_tail` (G4: never the old
//!   suffix once acknowledged, which [`LogShape::matches`] already enforces);
//! * `Op::AdvanceCommit(end)`: `after.commit_end = end`, logs unchanged;
//! * `Op::Compact { through }`: `after.log.start_index = through + 1` with
//!   the entries below dropped; `crash_logs` holds both starts.
//!
//! Nothing else needs to change: [`Model::check_recovered`] already checks
//! start index, entries, commit and hard state against the allowed shapes.
//!
//! The replication operations themselves need a node opened in replica mode
//! and are modelled in [`super::replica_workload`] (reusing [`LogShape`]),
//! driven by `tests/crash_sim_replica.rs`.

use std::collections::BTreeMap;
use std::ops::Range;

use cpwal::{
    ClusterVoterIdentity, ControlPlaneCatalog, ControlPlaneConsensus, ControlPlaneEntry,
    ControlPlaneError, ControlPlaneIndex, ControlPlaneNode, ControlPlaneTerm, DurableControlPlane,
    Error, MembershipChange, Options, OwnershipTransition, Role, VoteRequest, VoteResponse,
};

use super::sim_disk::{Rng, SimDisk};

/// The engine under test, on a simulated disk.
pub type Node = DurableControlPlane<SimDisk>;

/// The identity of the node under test.
pub const NODE_SUBJECT: &str = "CN=node-a";

/// Segment size of every simulated directory: tiny, so rollovers are common.
pub fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

/// A validated identity (test input is always valid).
pub fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).expect("valid test identity")
}

/// One call on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The trait's `append`.
    Append(ControlPlaneEntry),
    /// `try_append`.
    TryAppend(ControlPlaneEntry),
    /// `try_append_batch`.
    AppendBatch(Vec<ControlPlaneEntry>),
    /// `grant_vote`.
    GrantVote(VoteRequest),
    /// `observe_term`.
    ObserveTerm(u64),
    /// `start_election`.
    StartElection,
    // Extension point: follower appends, commit advancement and compaction
    // (issue #4) go here; see the module doc.
}

/// What an acknowledged call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Entries appended at these indexes.
    Appended(Range<u64>),
    /// `NotLeader`: the node refused to append.
    Refused,
    /// A vote response.
    Vote(VoteResponse),
    /// Whether `observe_term` changed the term.
    TermChanged(bool),
    /// The term an election moved to.
    Elected(u64),
}

/// Term and vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardView {
    /// The current term.
    pub term: u64,
    /// The vote in `term`.
    pub vote: Option<ClusterVoterIdentity>,
}

/// The log from its first kept index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    /// The first index kept.
    pub start_index: u64,
    /// `(term, entry)` from `start_index` on.
    pub entries: Vec<(u64, ControlPlaneEntry)>,
}

impl LogView {
    /// One past the last index.
    pub fn end_index(&self) -> u64 {
        self.start_index + self.entries.len() as u64
    }

    /// The term of the last entry (0 when empty).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |(term, _)| *term)
    }
}

/// A set of logs: `fixed` followed by any prefix of `optional_tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogShape {
    /// Entries that must all be there.
    pub fixed: LogView,
    /// Entries that may be there, in order, each only if all before it are.
    pub optional_tail: Vec<(u64, ControlPlaneEntry)>,
}

impl LogShape {
    /// Exactly `log`.
    pub fn exact(log: &LogView) -> Self {
        Self {
            fixed: log.clone(),
            optional_tail: Vec::new(),
        }
    }

    /// Whether `observed` is one of the logs this shape allows: every fixed
    /// entry byte-identical and in order (G3), then a prefix of the optional
    /// tail, nothing else (nothing invented, nothing truncated resurrected).
    pub fn matches(&self, observed: &LogView) -> bool {
        let fixed = &self.fixed.entries;
        observed.start_index == self.fixed.start_index
            && observed.entries.len() >= fixed.len()
            && observed.entries.len() <= fixed.len() + self.optional_tail.len()
            && observed.entries[..fixed.len()] == fixed[..]
            && observed.entries[fixed.len()..]
                == self.optional_tail[..observed.entries.len() - fixed.len()]
    }
}

/// Everything the model tracks about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Term and vote.
    pub hard: HardView,
    /// The log.
    pub log: LogView,
    /// One past the highest committed index.
    pub commit_end: u64,
}

/// What an operation does, as the model predicts it.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The operation.
    pub op: Op,
    /// Its reply when acknowledged.
    pub reply: Reply,
    /// The state once acknowledged.
    pub after: State,
    /// Logs a crash during the call may leave (the old log is always allowed).
    pub crash_logs: Vec<LogShape>,
}

/// The model: acknowledged state, the call in flight, every vote ever seen.
#[derive(Debug, Clone)]
pub struct Model {
    /// The node's identity.
    pub node: ClusterVoterIdentity,
    /// The acknowledged (or recovered and observed) state.
    pub state: State,
    /// The call that failed or was cut off, until the next successful reopen.
    pub in_flight: Option<Transition>,
    /// Every vote acknowledged or observed, by term (G1: one per term).
    votes_by_term: BTreeMap<u64, ClusterVoterIdentity>,
}

impl Model {
    /// A node opened on an empty directory: term 1, its own vote, empty log.
    pub fn new(node: ClusterVoterIdentity) -> Self {
        let state = State {
            hard: HardView {
                term: 1,
                vote: Some(node.clone()),
            },
            log: LogView {
                start_index: 0,
                entries: Vec::new(),
            },
            commit_end: 0,
        };
        let votes_by_term = BTreeMap::from([(1, node.clone())]);
        Self {
            node,
            state,
            in_flight: None,
            votes_by_term,
        }
    }

    /// A sole voter leads exactly when it holds its own vote.
    pub fn is_leader(&self) -> bool {
        self.state.hard.vote.as_ref() == Some(&self.node)
    }

    /// Whether a hard-state write may be in flight.
    pub fn hard_state_in_flight(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|t| t.after.hard != self.state.hard)
    }

    /// The transition `op` makes from the acknowledged state.
    pub fn predict(&self, op: &Op) -> Transition {
        let before = &self.state;
        let mut after = before.clone();
        let mut crash_logs = Vec::new();
        let reply = match op {
            Op::Append(entry) | Op::TryAppend(entry) => {
                self.predict_append(std::slice::from_ref(entry), &mut after, &mut crash_logs)
            }
            Op::AppendBatch(entries) => self.predict_append(entries, &mut after, &mut crash_logs),
            Op::GrantVote(request) => self.predict_vote(request, &mut after.hard),
            Op::ObserveTerm(term) => {
                let changed = *term > before.hard.term;
                if changed {
                    after.hard = HardView {
                        term: *term,
                        vote: None,
                    };
                }
                Reply::TermChanged(changed)
            }
            Op::StartElection => {
                after.hard = HardView {
                    term: before.hard.term + 1,
                    vote: Some(self.node.clone()),
                };
                Reply::Elected(after.hard.term)
            }
        };
        Transition {
            op: op.clone(),
            reply,
            after,
            crash_logs,
        }
    }

    fn predict_append(
        &self,
        entries: &[ControlPlaneEntry],
        after: &mut State,
        crash_logs: &mut Vec<LogShape>,
    ) -> Reply {
        if !self.is_leader() {
            return Reply::Refused;
        }
        let term = self.state.hard.term;
        let new: Vec<_> = entries.iter().map(|e| (term, e.clone())).collect();
        let start = after.log.end_index();
        after.log.entries.extend(new);
        after.commit_end = after.log.end_index();
        // A batch is atomic: a crash leaves all of it or none (the old log
        // is always allowed).
        crash_logs.push(LogShape::exact(&after.log));
        Reply::Appended(start..after.log.end_index())
    }

    /// Raft's vote rules, as `grant_vote` documents them.
    fn predict_vote(&self, request: &VoteRequest, hard: &mut HardView) -> Reply {
        if request.term.0 < hard.term {
            return Reply::Vote(VoteResponse {
                term: ControlPlaneTerm(hard.term),
                vote_granted: false,
            });
        }
        if request.term.0 > hard.term {
            *hard = HardView {
                term: request.term.0,
                vote: None,
            };
        }
        let log = &self.state.log;
        let candidate_end = request.last_log_index.map_or(0, |i| i.0 + 1);
        let up_to_date =
            (request.last_log_term.0, candidate_end) >= (log.last_term(), log.end_index());
        let free = hard.vote.as_ref().is_none_or(|v| *v == request.candidate);
        let granted = free && up_to_date;
        if granted {
            hard.vote = Some(request.candidate.clone());
        }
        Reply::Vote(VoteResponse {
            term: ControlPlaneTerm(hard.term),
            vote_granted: granted,
        })
    }

    /// Records a vote seen in `hard`; two candidates in one term is a G1
    /// violation.
    fn record_vote(&mut self, hard: &HardView) -> Result<(), String> {
        let Some(vote) = &hard.vote else {
            return Ok(());
        };
        match self.votes_by_term.insert(hard.term, vote.clone()) {
            Some(earlier) if earlier != *vote => Err(format!(
                "G1: two votes in term {}: {earlier} and then {vote}",
                hard.term
            )),
            _ => Ok(()),
        }
    }

    /// Adopts an acknowledged transition after checking the engine agrees.
    pub fn acknowledge(&mut self, transition: Transition, node: &Node) -> Result<(), String> {
        let observed = observe_hard(node);
        if observed != transition.after.hard {
            return Err(format!(
                "{:?} acknowledged with term/vote {observed:?}, model expects {:?}",
                transition.op, transition.after.hard
            ));
        }
        let commit_end = node.commit_index().map_or(0, |i| i.0 + 1);
        let log_end = node.last_index().map_or(node.first_index().0, |i| i.0 + 1);
        if log_end != transition.after.log.end_index()
            || commit_end != transition.after.commit_end
            || node.is_leader() != (observed.vote.as_ref() == Some(&self.node))
        {
            return Err(format!(
                "{:?}: engine has log end {log_end}, commit end {commit_end}, leader {}; model expects {:?}",
                transition.op,
                node.is_leader(),
                transition.after
            ));
        }
        self.record_vote(&observed)?;
        self.state = transition.after;
        Ok(())
    }

    /// Checks a freshly reopened node against G1–G5 and adopts what it
    /// recovered as the new acknowledged state (it is durable now).
    pub fn check_recovered(&mut self, node: &Node) -> Result<(), String> {
        let hard = observe_hard(node);
        let log = observe_log(node)?;
        let commit_end = node.commit_index().map_or(0, |i| i.0 + 1);
        let mut allowed_hard = vec![self.state.hard.clone()];
        let mut allowed_logs = vec![LogShape::exact(&self.state.log)];
        if let Some(in_flight) = &self.in_flight {
            allowed_hard.push(in_flight.after.hard.clone());
            allowed_logs.extend(in_flight.crash_logs.iter().cloned());
        }
        if !allowed_hard.contains(&hard) {
            return Err(format!(
                "G1: recovered term/vote {hard:?}; acknowledged {:?}, in flight {:?}",
                self.state.hard,
                self.in_flight.as_ref().map(|t| (&t.op, &t.after.hard))
            ));
        }
        self.record_vote(&hard)?;
        if !allowed_logs.iter().any(|shape| shape.matches(&log)) {
            return Err(format!(
                "G3/G4: recovered log (start {}, {} entries) is not the acknowledged one (start {}, {} entries) nor one the call in flight ({:?}) may leave",
                log.start_index,
                log.entries.len(),
                self.state.log.start_index,
                self.state.log.entries.len(),
                self.in_flight.as_ref().map(|t| &t.op)
            ));
        }
        if commit_end < self.state.commit_end || commit_end > log.end_index() {
            return Err(format!(
                "G3: recovered commit end {commit_end}; acknowledged {}, log end {}",
                self.state.commit_end,
                log.end_index()
            ));
        }
        if node.is_leader() != (hard.vote.as_ref() == Some(&self.node)) {
            return Err(format!(
                "leadership {} after reopen with {hard:?}",
                node.is_leader()
            ));
        }
        self.state = State {
            hard,
            log,
            commit_end,
        };
        self.in_flight = None;
        Ok(())
    }
}

/// The node's durable term and vote.
pub fn observe_hard<R: Role>(node: &ControlPlaneNode<R, SimDisk>) -> HardView {
    let vote = node.durable_vote();
    HardView {
        term: vote.term.0,
        vote: vote.voted_for,
    }
}

/// Reads the whole log back, every checksum re-verified.
pub fn observe_log<R: Role>(node: &ControlPlaneNode<R, SimDisk>) -> Result<LogView, String> {
    let start = node.first_index();
    let end = node.last_index().map_or(start.0, |i| i.0 + 1);
    let entries = node
        .read_range(start, ControlPlaneIndex(end))
        .map_err(|e| format!("reading back the recovered log failed: {e}"))?;
    Ok(LogView {
        start_index: start.0,
        entries: entries.into_iter().map(|e| (e.term.0, e.entry)).collect(),
    })
}

/// A random valid entry; now and then a large one, so records span sectors.
pub fn random_entry(rng: &mut Rng) -> ControlPlaneEntry {
    match rng.below(4) {
        0 => {
            let identity = random_member(rng);
            ControlPlaneEntry::MembershipChange(if rng.chance(1, 2) {
                MembershipChange::Admit(identity)
            } else {
                MembershipChange::Remove(identity)
            })
        }
        1 => ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(rng.below(1000)),
            leader: voter(NODE_SUBJECT),
        },
        _ => {
            let length = if rng.chance(1, 8) {
                300 + rng.below(700)
            } else {
                1 + rng.below(60)
            };
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789:,[)-";
            let range = (0..length)
                .map(|_| *rng.pick(alphabet) as char)
                .collect::<String>();
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range,
                new_owner: random_member(rng),
                ownership_epoch: rng.next_u64(),
            })
        }
    }
}

fn random_member(rng: &mut Rng) -> ClusterVoterIdentity {
    voter(&format!("CN=node-{}", rng.below(40)))
}

/// The next operation: mostly appends; votes, term changes and elections
/// often enough that terms move and the node steps down and back up.
pub fn random_op(rng: &mut Rng, model: &Model) -> Op {
    if !model.is_leader() && rng.chance(1, 2) {
        return Op::StartElection;
    }
    match rng.below(20) {
        0..=5 => Op::Append(random_entry(rng)),
        6..=9 => Op::TryAppend(random_entry(rng)),
        10..=12 => {
            let count = 1 + rng.below(4);
            Op::AppendBatch((0..count).map(|_| random_entry(rng)).collect())
        }
        13..=15 => Op::GrantVote(random_vote_request(rng, model)),
        16 => Op::ObserveTerm(model.state.hard.term + rng.below(3)),
        _ => Op::StartElection,
    }
}

fn random_vote_request(rng: &mut Rng, model: &Model) -> VoteRequest {
    let term = (model.state.hard.term + rng.below(4)).saturating_sub(1);
    let subjects: [&str; 3] = [NODE_SUBJECT, "CN=node-b", "CN=node-c"];
    let candidate = voter(subjects[rng.below(3) as usize]);
    let log = &model.state.log;
    let (last_end, last_term) = match rng.below(3) {
        0 => (log.end_index() + rng.below(3), log.last_term()),
        1 => (log.end_index().saturating_sub(1), log.last_term()),
        _ => (rng.below(log.end_index() + 2), rng.below(term + 1)),
    };
    VoteRequest {
        term: ControlPlaneTerm(term),
        candidate,
        last_log_index: last_end.checked_sub(1).map(ControlPlaneIndex),
        last_log_term: ControlPlaneTerm(last_term),
    }
}

/// How one step ended.
#[derive(Debug)]
pub enum Step {
    /// The call was acknowledged (or refused as the model predicted).
    Acknowledged,
    /// The call failed; it is in flight until the next reopen.
    Failed(Error),
}

/// A simulated disk, the node on it, the model, and the workload's PRNG.
#[derive(Debug)]
pub struct Harness {
    /// The disk.
    pub disk: SimDisk,
    /// The node, while open.
    pub node: Option<Node>,
    /// The model.
    pub model: Model,
    /// Drives operation choice.
    pub rng: Rng,
    /// Every operation run, for failure reports.
    pub history: Vec<Op>,
    /// Whether the engine has told us both hard-state copies hold the
    /// current state: a hard-state change or an open returned `Ok` since the
    /// last failed hard-state change or cut-short open.
    hard_state_settled: bool,
    /// Whether a creation of the node was acknowledged: it is opened from
    /// then on, and created before.
    created: bool,
}

/// Brings up the node a harness drives: created until a creation is
/// acknowledged, opened after. A creation cut short once its hard state
/// was durable left a whole node behind: the retry finds it
/// ([`Error::NodeExists`]) and opens it, as a supervisor would.
pub fn create_or_open<N>(
    created: bool,
    create: impl FnOnce() -> Result<N, Error>,
    open: impl FnOnce() -> Result<N, Error>,
) -> Result<N, Error> {
    if created {
        return open();
    }
    match create() {
        Err(Error::NodeExists { .. }) => open(),
        other => other,
    }
}

impl Harness {
    /// A fresh disk and model; the node is not open yet.
    pub fn new(seed: u64) -> Self {
        Self {
            disk: SimDisk::new(),
            node: None,
            model: Model::new(voter(NODE_SUBJECT)),
            rng: Rng::new(seed),
            history: Vec::new(),
            hard_state_settled: false,
            created: false,
        }
    }

    /// Opens the node. On success the recovered state is checked (G1–G5).
    /// An open cut short by a power cut returns the engine's error.
    pub fn open(&mut self) -> Result<Result<(), Error>, String> {
        self.node = None;
        let disk = &self.disk;
        let opened = create_or_open(
            self.created,
            || Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()),
            || Node::open_with_storage(disk.clone(), voter(NODE_SUBJECT), options()),
        );
        match opened {
            Ok(node) => {
                self.created = true;
                self.model.check_recovered(&node)?;
                self.node = Some(node);
                self.hard_state_settled = true;
                Ok(Ok(()))
            }
            Err(error) if self.disk.has_failed() => {
                self.hard_state_settled = false;
                Ok(Err(error))
            }
            Err(error) => Err(format!("reopen failed without an injected fault: {error}")),
        }
    }

    /// Runs one random operation.
    pub fn step(&mut self) -> Result<Step, String> {
        let op = random_op(&mut self.rng, &self.model);
        self.run_op(op)
    }

    /// Runs `op` on the open node and checks its reply against the model.
    pub fn run_op(&mut self, op: Op) -> Result<Step, String> {
        self.history.push(op.clone());
        let transition = self.model.predict(&op);
        let node = self.node.as_mut().ok_or("run_op without an open node")?;
        let visible_before = visible_state(node);
        let result = match &op {
            Op::Append(entry) => match node.append(entry.clone()) {
                Ok(index) => Ok(Reply::Appended(index.0..index.0 + 1)),
                Err(ControlPlaneError::NotLeader { leader }) => match node.last_append_error() {
                    Some(error) => Err(error.clone()),
                    None => Err(Error::NotLeader { leader }),
                },
            },
            Op::TryAppend(entry) => node
                .try_append(entry)
                .map(|a| Reply::Appended(a.index.0..a.index.0 + 1)),
            Op::AppendBatch(entries) => node.try_append_batch(entries).map(|batch| {
                let first = batch.first_index.0;
                Reply::Appended(first..first + batch.outcomes.len() as u64)
            }),
            Op::GrantVote(request) => node.grant_vote(request).map(Reply::Vote),
            Op::ObserveTerm(term) => node
                .observe_term(ControlPlaneTerm(*term))
                .map(Reply::TermChanged),
            Op::StartElection => node.start_election().map(|t| Reply::Elected(t.0)),
        };
        super::trace(format_args!("  {op:?} -> {result:?}"));
        let result = match result {
            Err(Error::NotLeader { .. }) if transition.reply == Reply::Refused => {
                Ok(Reply::Refused)
            }
            other => other,
        };
        match result {
            Ok(reply) if reply == transition.reply => {
                self.model.acknowledge(transition, node)?;
                Ok(Step::Acknowledged)
            }
            Ok(reply) => Err(format!(
                "{op:?} replied {reply:?}; model expects {:?}",
                transition.reply
            )),
            Err(error) => {
                if visible_state(node) != visible_before {
                    return Err(format!(
                        "{op:?} failed ({error}) but changed the catalog or the commit point"
                    ));
                }
                if transition.after.hard != self.model.state.hard {
                    self.hard_state_settled = false;
                }
                self.model.in_flight = Some(transition);
                Ok(Step::Failed(error))
            }
        }
    }

    /// Power loss: the node is dropped and the disk keeps what `seed` says.
    /// Then, for one seed in three, one hard-state copy rots — only when the
    /// engine has acknowledged that both copies hold the current state (the
    /// design survives one damaged copy of an acknowledged state, not a tear
    /// plus rot). This is what catches a missing sync after copy B.
    pub fn crash(&mut self, seed: u64) {
        self.node = None;
        super::trace(format_args!("  power cut (crash seed {seed})"));
        self.disk.crash(seed);
        let mut rng = Rng::new(seed ^ 0x00DA_3A6E);
        let hard_state_exists = self.disk.durable_image("hardstate").is_some();
        let settled = self.hard_state_settled && !self.model.hard_state_in_flight();
        if hard_state_exists && settled && rng.chance(1, 3) {
            let copy_offset = 1024 * rng.below(2);
            self.disk.zero_sector("hardstate", copy_offset);
        }
    }

    /// The process dies and restarts on the same boot: the node is dropped,
    /// the page cache and every unsynced change survive (see
    /// [`SimDisk::restart_process`]).
    pub fn restart(&mut self) {
        super::trace(format_args!("  process restart"));
        self.node = None;
        self.disk.restart_process();
    }
}

/// What a caller sees of the applied state: a failed call must leave it
/// as it was (an append applies its entries while their sync runs, and
/// undoes them if the sync fails).
fn visible_state(
    node: &Node,
) -> (
    ControlPlaneCatalog,
    Option<ControlPlaneIndex>,
    ControlPlaneIndex,
) {
    (
        node.catalog().clone(),
        node.commit_index(),
        node.applied_end(),
    )
}

/// The command that replays a failing seed (add `CPWAL_SIM_TRACE=1` to see
/// every operation of the run).
pub fn replay_command(test_file: &str, test_name: &str, seed: u64) -> String {
    format!(
        "CPWAL_SIM_SEED={seed} cargo test --test {test_file} -- {test_name} --exact --nocapture"
    )
}
