//! The openraft adapter's stores on the simulated disk: `CpwalLogStore`, its
//! flusher and `CpwalStateMachine`, each in its subdirectory of one
//! simulated node directory, through a scripted sequence of the calls
//! openraft makes: with the power cut before every disk operation, and in
//! sequences where the process is killed or a sync fails, a supervisor
//! restarts the stores in the same boot, they serve and acknowledge more,
//! and then the power fails.
//!
//! Seeds: `CPWAL_SIM_SEEDS` / `CPWAL_SIM_SEED` as in `crash_sim` (the seed
//! chooses what each crash keeps).
#![cfg(feature = "openraft")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cpwal::raft::types::{CpwalEntry, CpwalLogId, CpwalMembership, CpwalVote};
use cpwal::raft::{
    ClusterNode, CpwalLogStore, CpwalStateMachine, NodeRegistry, LOG_DIRECTORY, SNAPSHOT_DIRECTORY,
};
use cpwal::{ClusterVoterIdentity, ControlPlaneEntry, MembershipChange, Options};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote};
use support::sim_disk::{DiskCounters, SimDisk, Stop};

type LogStore = CpwalLogStore<SimDisk>;
type Machine = CpwalStateMachine<SimDisk>;

fn identity(text: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(text).unwrap()
}

fn registry() -> NodeRegistry {
    let registry = NodeRegistry::default();
    registry.bind(0, &identity("CN=node-0")).unwrap();
    registry
}

fn log_id(term: u64, index: u64) -> CpwalLogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn admit(term: u64, index: u64) -> CpwalEntry {
    let member = identity(&format!("CN=member-{term}-{index}"));
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(ControlPlaneEntry::MembershipChange(
            MembershipChange::Admit(member),
        )),
    }
}

fn membership(term: u64, index: u64) -> CpwalEntry {
    let nodes: BTreeMap<u64, ClusterNode> =
        [(0, ClusterNode::new(identity("CN=node-0"), "127.0.0.1:1"))].into();
    let voters: BTreeSet<u64> = [0].into();
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(CpwalMembership::new(vec![voters], nodes)),
    }
}

/// Both stores, each opened on its subdirectory of the node's disk.
fn open(disk: &SimDisk) -> cpwal::Result<(LogStore, Machine)> {
    let options = Options::default().with_segment_size_bytes(4096);
    let log_dir = cpwal::io::Storage::open_subdirectory(disk, LOG_DIRECTORY)?;
    let log = LogStore::open_with_storage(log_dir, identity("CN=node-0"), registry(), options)?;
    let machine_dir = cpwal::io::Storage::open_subdirectory(disk, SNAPSHOT_DIRECTORY)?;
    let machine = Machine::open_with_storage(machine_dir, registry())?;
    Ok((log, machine))
}

/// One call openraft makes, with what it changes in the model once
/// acknowledged.
#[derive(Debug, Clone)]
enum Step {
    SaveVote(CpwalVote),
    Append(Vec<CpwalEntry>),
    SaveCommitted(CpwalLogId),
    ApplyAndSnapshot(u64),
    Purge(CpwalLogId),
    Truncate(CpwalLogId),
}

fn script() -> Vec<Step> {
    let mut steps = vec![
        Step::SaveVote(Vote::new(1, 0)),
        Step::Append(vec![membership(1, 0), admit(1, 1), admit(1, 2)]),
        Step::SaveVote(Vote::new_committed(1, 0)),
        Step::Append((3..50).map(|i| admit(1, i)).collect()),
        Step::SaveCommitted(log_id(1, 40)),
        Step::ApplyAndSnapshot(40),
        Step::Purge(log_id(1, 30)),
        Step::SaveVote(Vote::new_committed(2, 0)),
        Step::Truncate(log_id(1, 45)),
    ];
    steps.extend(
        (0..4).map(|k| Step::Append((45 + 10 * k..55 + 10 * k).map(|i| admit(2, i)).collect())),
    );
    steps
}

async fn run(step: &Step, log: &mut LogStore, machine: &mut Machine) -> Result<(), String> {
    let error = |e: openraft::StorageError<u64>| e.to_string();
    match step {
        Step::SaveVote(vote) => log.save_vote(vote).await.map_err(error),
        Step::Append(entries) => log.blocking_append(entries.clone()).await.map_err(error),
        Step::SaveCommitted(id) => log.save_committed(Some(*id)).await.map_err(error),
        Step::ApplyAndSnapshot(end) => {
            let entries = log.try_get_log_entries(0..=*end).await.map_err(error)?;
            machine.apply(entries).await.map_err(error)?;
            let mut builder = machine.get_snapshot_builder().await;
            builder.build_snapshot().await.map(drop).map_err(error)
        }
        Step::Purge(id) => log.purge(*id).await.map_err(error),
        Step::Truncate(id) => log.truncate(*id).await.map_err(error),
    }
}

/// What the acknowledged steps promise.
#[derive(Debug, Default)]
struct Model {
    vote: Option<CpwalVote>,
    entries: BTreeMap<u64, CpwalEntry>,
    committed: Option<CpwalLogId>,
    snapshot_last: Option<CpwalLogId>,
    purged: Option<u64>,
}

impl Model {
    fn acknowledge(&mut self, step: &Step) {
        match step {
            Step::SaveVote(vote) => self.vote = Some(*vote),
            Step::Append(entries) => self
                .entries
                .extend(entries.iter().map(|e| (e.log_id.index, e.clone()))),
            Step::SaveCommitted(id) => self.committed = Some(*id),
            Step::ApplyAndSnapshot(end) => self.snapshot_last = Some(self.entries[end].log_id),
            Step::Purge(id) => {
                self.entries.retain(|&i, _| i > id.index);
                self.purged = Some(id.index);
            }
            Step::Truncate(id) => self.entries.retain(|&i, _| i < id.index),
        }
    }

    /// Checks the reopened stores; `in_flight` may have happened or not.
    async fn check(
        &self,
        in_flight: Option<&Step>,
        log: &mut LogStore,
        machine: &mut Machine,
    ) -> Result<(), String> {
        let vote = log.read_vote().await.map_err(|e| e.to_string())?;
        if vote < self.vote {
            return Err(format!(
                "vote {vote:?} behind the acknowledged {:?}",
                self.vote
            ));
        }
        let committed = log.read_committed().await.map_err(|e| e.to_string())?;
        if committed < self.committed {
            return Err(format!("commit {committed:?} behind {:?}", self.committed));
        }
        let state = log.get_log_state().await.map_err(|e| e.to_string())?;
        let purged = state.last_purged_log_id.map(|id| id.index);
        if purged < self.purged {
            return Err(format!("purged {purged:?} behind {:?}", self.purged));
        }
        let cut = match in_flight {
            Some(Step::Truncate(id)) => id.index,
            _ => u64::MAX,
        };
        let from = self.purged.max(purged).map_or(0, |p| p + 1);
        for (index, expected) in self.entries.range(from..cut) {
            let found = log.try_get_log_entries(*index..=*index).await;
            let found = found.map_err(|e| e.to_string())?;
            if found.first() != Some(expected) {
                return Err(format!(
                    "entry {index}: {found:?}, acknowledged {expected:?}"
                ));
            }
        }
        let snapshot = machine
            .get_current_snapshot()
            .await
            .map_err(|e| e.to_string())?;
        let snapshot_last = snapshot.and_then(|s| s.meta.last_log_id);
        if snapshot_last < self.snapshot_last {
            return Err(format!(
                "snapshot at {snapshot_last:?}, acknowledged {:?}",
                self.snapshot_last
            ));
        }
        Ok(())
    }

    /// What reopened stores serve, as a promise: a store that reports a
    /// vote, a commit point, an entry or a snapshot after a restart must
    /// keep it through a later power cut, because openraft acts on it
    /// (votes, elections and replication read the log's last id).
    async fn observe(log: &mut LogStore, machine: &mut Machine) -> Result<Self, String> {
        let error = |e: openraft::StorageError<u64>| e.to_string();
        let state = log.get_log_state().await.map_err(error)?;
        let purged = state.last_purged_log_id.map(|id| id.index);
        let from = purged.map_or(0, |p| p + 1);
        let entries = match state.last_log_id {
            Some(last) if last.index >= from => log
                .try_get_log_entries(from..=last.index)
                .await
                .map_err(error)?,
            _ => Vec::new(),
        };
        let snapshot = machine.get_current_snapshot().await.map_err(error)?;
        Ok(Model {
            vote: log.read_vote().await.map_err(error)?,
            entries: entries.into_iter().map(|e| (e.log_id.index, e)).collect(),
            committed: log.read_committed().await.map_err(error)?,
            snapshot_last: snapshot.and_then(|s| s.meta.last_log_id),
            purged,
        })
    }

    /// Calls that continue from what the restarted stores serve: a vote in
    /// a new term, appends after the last entry, a commit point among them.
    fn continuation(&self) -> Vec<Step> {
        let term = self.vote.map_or(0, |v| v.leader_id().get_term()) + 1;
        let next = self
            .entries
            .keys()
            .next_back()
            .map_or(self.purged.map_or(0, |p| p + 1), |last| last + 1);
        vec![
            Step::SaveVote(Vote::new_committed(term, 0)),
            Step::Append((next..next + 5).map(|i| admit(term, i)).collect()),
            Step::SaveCommitted(log_id(term, next + 2)),
            Step::Append((next + 5..next + 12).map(|i| admit(term, i)).collect()),
        ]
    }
}

/// Runs `steps` until one fails, acknowledging each that succeeds into
/// `model`; returns the step in flight.
fn run_steps(
    runtime: &tokio::runtime::Runtime,
    steps: Vec<Step>,
    model: &mut Model,
    log: &mut LogStore,
    machine: &mut Machine,
) -> Option<Step> {
    for step in steps {
        if runtime.block_on(run(&step, log, machine)).is_err() {
            return Some(step);
        }
        model.acknowledge(&step);
    }
    None
}

/// Runs the script on `disk` until a step fails; returns the model of what
/// was acknowledged and the step in flight.
fn run_script(runtime: &tokio::runtime::Runtime, disk: &SimDisk) -> (Model, Option<Step>) {
    let mut model = Model::default();
    let Ok((mut log, mut machine)) = open(disk) else {
        return (model, None);
    };
    let in_flight = run_steps(runtime, script(), &mut model, &mut log, &mut machine);
    (model, in_flight)
}

/// How the first phase of a sequence is interrupted.
#[derive(Debug, Clone, Copy)]
enum Interruption {
    /// Killed just before this disk operation; restarted in the same boot.
    ProcessKill(u64),
    /// This sync fails with Linux's semantics (its pages marked clean); the
    /// stores stop, and a supervisor restarts them in the same boot.
    FailedSync(u64),
    /// The power fails just before this disk operation.
    PowerCut(u64),
}

/// One sequence: the script interrupted, a restart checked against what
/// was acknowledged, what the restarted stores serve taken as promised,
/// more calls acknowledged, then a power cut before one of the next
/// `cut_after` operations (or after all of them), and a last reopen
/// checked against every promise.
fn sequence_seed(
    runtime: &tokio::runtime::Runtime,
    interruption: Interruption,
    cut_after: u64,
    seed: u64,
    continued: &AtomicU64,
) -> Result<(), String> {
    let disk = SimDisk::new();
    match interruption {
        Interruption::ProcessKill(operation) => disk.kill_before_operation(operation),
        Interruption::FailedSync(sync) => disk.fail_sync(sync),
        Interruption::PowerCut(operation) => disk.cut_power_before_operation(operation),
    }
    let (model, in_flight) = run_script(runtime, &disk);
    match disk.stopped() {
        Some(Stop::PowerCut) => disk.crash(seed),
        _ => disk.restart_process(),
    }
    let context = |stage: &str, e: String| format!("{interruption:?}, {stage}: {e}");
    let (mut log, mut machine) = open(&disk).map_err(|e| context("restart", e.to_string()))?;
    runtime
        .block_on(model.check(in_flight.as_ref(), &mut log, &mut machine))
        .map_err(|e| context("restart", e))?;
    let mut promised = runtime
        .block_on(Model::observe(&mut log, &mut machine))
        .map_err(|e| context("restart", e))?;
    let operations = disk.counters().operations;
    disk.cut_power_before_operation(operations + 1 + seed % (cut_after + 1));
    let steps = promised.continuation();
    let in_flight = run_steps(runtime, steps, &mut promised, &mut log, &mut machine);
    if in_flight.is_none() {
        continued.fetch_add(1, Ordering::Relaxed);
    }
    drop((log, machine));
    disk.crash(seed);
    let (mut log, mut machine) = open(&disk).map_err(|e| context("last reopen", e.to_string()))?;
    runtime
        .block_on(promised.check(in_flight.as_ref(), &mut log, &mut machine))
        .map_err(|e| {
            context(
                &format!("after the power cut (in flight: {in_flight:?})"),
                e,
            )
        })
}

/// What a dry run of the script acknowledged, and the disk operations
/// and syncs it made (each a point a sequence can be interrupted at).
fn dry_run(runtime: &tokio::runtime::Runtime) -> (Model, DiskCounters) {
    let disk = SimDisk::new();
    let (model, in_flight) = run_script(runtime, &disk);
    assert!(in_flight.is_none(), "the dry run failed at {in_flight:?}");
    (model, disk.counters())
}

/// Runs [`sequence_seed`] for each seed of `test_name`, interrupted as
/// `interruption` says for that seed, then checks that some sequences
/// acknowledged their whole continuation (so the last power cut had
/// promises to break).
fn run_sequences(
    runtime: &tokio::runtime::Runtime,
    test_name: &str,
    salt: u64,
    seeds: u64,
    interruption: impl Fn(u64) -> Interruption,
) {
    let continued = AtomicU64::new(0);
    support::for_each_seed(
        "openraft_sim --features openraft",
        test_name,
        salt,
        seeds,
        |seed| sequence_seed(runtime, interruption(seed), 40, seed, &continued),
    );
    if support::replay_seed().is_none() {
        assert!(
            continued.load(Ordering::Relaxed) > 0,
            "no sequence acknowledged its whole continuation before the power cut"
        );
    }
}

#[test]
fn raft_stores_power_cut_at_every_operation_keep_what_they_acknowledged() {
    // Goal: the openraft stores, generic over the io seam, keep every
    // acknowledged vote, commit point, entry and snapshot through a power
    // loss at any disk operation, including the creation of their
    // subdirectories, and keep what they serve after it through the next.
    // Method: count the disk operations of a dry run of a scripted
    // sequence (vote, appends across 4 KiB segments, commit, apply and
    // snapshot, purge, truncation, appends in a new term); for each seed,
    // cut the power before one of them (seed modulo the count, so every
    // operation is hit), crash keeping a seeded subset of what was
    // unsynced, reopen both stores and check against the acknowledgements;
    // then as in every sequence: a continuation, a second power cut, a
    // last check.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (model, counters) = dry_run(&runtime);
    assert!(model.purged.is_some() && model.snapshot_last.is_some());
    let operations = counters.operations;
    run_sequences(
        &runtime,
        "raft_stores_power_cut_at_every_operation_keep_what_they_acknowledged",
        21,
        (operations + 1) * 2,
        |seed| Interruption::PowerCut(1 + seed % (operations + 1)),
    );
}

#[test]
fn raft_stores_kill_or_failed_sync_then_restart_then_power_cut_keep_what_they_served() {
    // Goal: what the openraft stores serve after a restart in the same
    // boot is durable — a killed process or a failed sync leaves unsynced
    // pages in the page cache, and a reopen that served them without making
    // them durable would lose a vote, a commit point or entries to a later
    // power cut. Method: for each seed, interrupt the script with a process
    // kill before any disk operation or a failed sync at any sync (seed
    // modulo the counts of a dry run, so every point is hit); restart and
    // check against the acknowledgements; take what the stores then serve
    // as promised; acknowledge a continuation (new vote, appends, commit
    // point); cut the power before one of its operations, crash keeping a
    // seeded subset of what was unsynced, reopen and check.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_, counters) = dry_run(&runtime);
    let (operations, syncs) = (counters.operations, counters.syncs);
    run_sequences(
        &runtime,
        "raft_stores_kill_or_failed_sync_then_restart_then_power_cut_keep_what_they_served",
        22,
        (operations + syncs) * 2,
        |seed| {
            let point = seed / 2;
            match seed % 2 {
                0 => Interruption::ProcessKill(1 + point % (operations + 1)),
                _ => Interruption::FailedSync(1 + point % (syncs + 1)),
            }
        },
    );
}
