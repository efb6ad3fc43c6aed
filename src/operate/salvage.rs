//! Salvage: the longest valid prefix of a damaged directory, written into
//! a new directory a node can open, with an exact account of what was lost.
//!
//! For the node with no healthy peer left to copy from (with one, restore
//! from the peer or a backup instead: salvage loses what the damage hides).
//! It is RocksDB's point-in-time recovery and no more (see
//! [`crate::operate`]): the log stops at the first record, segment or chain
//! link that fails, because a log with a hole is not a Raft log.
//!
//! The entries are not copied as bytes: the intact prefix is read with
//! every checksum re-verified and written afresh through the log's own
//! writer (one truncation epoch, a fresh chain of segments), with the
//! newest snapshot that reads back whole and a hard state built from the
//! valid copy. What the new hard state holds:
//!
//! * identity and role from the surviving copy (or from the caller, when
//!   neither copy survived);
//! * the term never below the surviving copy's, nor below any term the
//!   kept log or snapshot holds (a node must not be behind its own log);
//!   when it has to be raised, the old copy's vote was for an older term
//!   and is dropped; when no copy survived there is no vote to keep;
//! * the log start: the surviving copy's, or the snapshot's end when the
//!   snapshot reaches past the intact records (the log restarts there, as
//!   an installed snapshot restarts it);
//! * the commit point capped at what is kept.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::examine::{Examination, Verdict};
use super::staging::StagedDirectory;
use super::Progress;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::{CopyMismatch, Corruption, Error, Result, Unsalvageable};
use crate::hard_state::{HardState, HardStateStore, NodeRole};
use crate::identity::ClusterVoterIdentity;
use crate::inspect::Inspection;
use crate::io::{Access, OsStorage};
use crate::log::{CommitStamp, LatchedStorage, SegmentedLog};
use crate::options::Options;
use crate::snapshot::{encode_snapshot, write_snapshot, Snapshot};

/// Entries written per sync while the new log is filled.
const ENTRIES_PER_SYNC: u64 = 4096;

/// What salvage needs to know that a damaged directory may not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageOptions {
    /// The node the directory belongs to: used only when no hard-state copy
    /// survived (then it is required).
    pub node: Option<ClusterVoterIdentity>,
    /// Its role: used only when no hard-state copy survived (then it is
    /// required).
    pub role: Option<NodeRole>,
}

/// What became of the term and vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteFate {
    /// Kept as the surviving hard-state copy holds them.
    Kept,
    /// The surviving copy's term was below the kept log's or snapshot's
    /// (its hard state was older than its log): the term was raised to
    /// `term` and the vote, cast in an older term, dropped.
    DroppedByTermRaise {
        /// The surviving copy's term.
        old_term: ControlPlaneTerm,
        /// Its vote.
        old_vote: Option<ClusterVoterIdentity>,
    },
    /// No copy survived: term and vote are lost. The new term is the
    /// highest the kept log or snapshot holds, with no vote; the node may
    /// have voted in that term already, so it must not vote before the
    /// cluster has moved past it.
    Lost,
}

/// The entries the source held that the new directory does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEntries {
    /// Indexes known to have existed and not kept (empty when none is
    /// known lost). More may have existed: damage hides how far the log
    /// went.
    pub known: Range<ControlPlaneIndex>,
    /// Of those, the ones below this were committed: below the source's
    /// recorded commit point or, on a sole voter (which commits every entry
    /// once it is durable), all of them. Acknowledged to clients, and now
    /// gone from this node.
    pub committed_end: ControlPlaneIndex,
}

/// What a salvage kept and lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// The new directory.
    pub destination: PathBuf,
    /// The source's verdict.
    pub source_verdict: Verdict,
    /// The source's damage (the writer's refusal first).
    pub damage: Vec<Corruption>,
    /// The node the new directory belongs to.
    pub node: ClusterVoterIdentity,
    /// Its role.
    pub role: NodeRole,
    /// The hard-state copy term and vote came from ("A" or "B"; `None`:
    /// neither survived).
    pub hard_state_from: Option<&'static str>,
    /// The new term.
    pub term: ControlPlaneTerm,
    /// The new vote.
    pub vote: Option<ClusterVoterIdentity>,
    /// What became of the old term and vote.
    pub vote_fate: VoteFate,
    /// The indexes of the new log.
    pub kept: Range<ControlPlaneIndex>,
    /// The new directory's snapshot covers the entries below this.
    pub snapshot_index_end: Option<ControlPlaneIndex>,
    /// One past the new commit point.
    pub commit_end: ControlPlaneIndex,
    /// Entries lost.
    pub lost: LostEntries,
    /// Written bytes of the source's log files that were not kept (records
    /// beyond the damage, segments past a break).
    pub bytes_lost: u64,
    /// The source's segment files wholly beyond the damage.
    pub segments_left_behind: Vec<String>,
}

/// The new directory, decided before anything is written.
#[derive(Debug)]
struct SalvagePlan<'a> {
    hard_state: HardState,
    vote_fate: VoteFate,
    entries: Range<u64>,
    snapshot: Option<&'a Snapshot>,
    segment_size_bytes: u64,
}

/// Copies the longest valid prefix of the directory `damaged` into the new
/// directory `destination` (absent or empty) and reports what was lost.
/// `damaged` is read under a shared lock and never changed; the new
/// directory is verified entry by entry against what was read before it is
/// put in place. A clean directory is salvaged whole (a plain copy).
pub fn salvage(
    damaged: impl AsRef<Path>,
    destination: impl AsRef<Path>,
    options: &SalvageOptions,
    progress: &dyn Progress,
) -> Result<SalvageReport> {
    let source = Examination::open(damaged)?;
    let plan = plan(&source, options)?;
    let mut staged = StagedDirectory::begin(destination.as_ref())?;
    let storage = staged.storage().expect("a new staged directory is locked");
    write(&source, &plan, storage, progress)?;
    staged.release();
    verify(&source, &plan, staged.path())?;
    let destination = staged.commit()?;
    Ok(report(&source, &plan, destination))
}

/// Decides the new directory's hard state, log range and snapshot.
fn plan<'a>(source: &'a Examination, options: &SalvageOptions) -> Result<SalvagePlan<'a>> {
    let refuse = |reason| Err(Error::Unsalvageable(reason));
    let served = source.hard_state();
    let (node, role) = match (served, &options.node, options.role) {
        (Some(state), _, _) => (state.node.clone(), state.role),
        (None, Some(node), Some(role)) => (node.clone(), role),
        (None, _, _) => return refuse(Unsalvageable::HardStateLost),
    };
    let log = source.intact_log();
    let snapshot = source.whole_snapshot();
    let snapshot_end = snapshot.map_or(0, |s| s.index_end);
    let (start, previous_term) = if snapshot_end > log.end_index {
        // The snapshot reaches past the intact records: restart there.
        (snapshot_end, snapshot.map_or(0, |s| s.last_term))
    } else if log.end_index < log.start_index {
        let (log_start, intact_end) = (log.start_index, log.end_index);
        return refuse(Unsalvageable::LogBeginsInDamage {
            log_start,
            intact_end,
        });
    } else if log.start_index > snapshot_end {
        let log_start = log.start_index;
        return refuse(Unsalvageable::CompactedWithoutSnapshot { log_start });
    } else if let Some(state) = served {
        (log.start_index, state.log_start_previous_term)
    } else {
        // No hard state records the previous term; the snapshot's does.
        (snapshot_end, snapshot.map_or(0, |s| s.last_term))
    };
    let entries = start..log.end_index.max(start);
    let term_of = |index: u64| -> Result<u64> {
        match index.checked_add(1) {
            Some(end) if end == start => Ok(previous_term),
            _ => Ok(log.read_payload(index)?.0),
        }
    };
    if let Some(snapshot) = snapshot.filter(|s| s.index_end > 0) {
        let last = snapshot.index_end - 1;
        if last + 1 >= start && last < entries.end && term_of(last)? != snapshot.last_term {
            return refuse(Unsalvageable::SnapshotContradictsLog { index: last });
        }
    }
    let highest_term = match entries.end.checked_sub(1) {
        Some(last) if last >= start => term_of(last)?,
        _ => previous_term,
    }
    .max(snapshot.map_or(0, |s| s.last_term));
    let (term, vote, vote_committed, vote_fate) = match served {
        Some(state) if state.term >= highest_term => (
            state.term,
            state.vote.clone(),
            state.vote_committed,
            VoteFate::Kept,
        ),
        Some(state) => (
            highest_term,
            None,
            false,
            VoteFate::DroppedByTermRaise {
                old_term: ControlPlaneTerm(state.term),
                old_vote: state.vote.clone(),
            },
        ),
        None => (highest_term, None, false, VoteFate::Lost),
    };
    let commit_end = source.claimed_commit_end().min(entries.end).max(start);
    let hard_state = HardState {
        term,
        vote,
        vote_committed,
        commit_end,
        log_start: start,
        log_start_previous_term: previous_term,
        ..HardState::new(node, role)
    };
    let segment_size_bytes = log
        .segments
        .first()
        .map_or(Options::default().segment_size_bytes, |s| {
            s.header.size_bytes
        })
        .clamp(crate::MIN_SEGMENT_SIZE_BYTES, crate::MAX_SEGMENT_SIZE_BYTES);
    Ok(SalvagePlan {
        hard_state,
        vote_fate,
        entries,
        snapshot: snapshot.filter(|s| s.index_end >= start),
        segment_size_bytes,
    })
}

/// Writes the planned directory into `storage`: the snapshot, the entries
/// through the log's own writer (synced every [`ENTRIES_PER_SYNC`]), then
/// the hard state.
fn write(
    source: &Examination,
    plan: &SalvagePlan<'_>,
    storage: &std::sync::Arc<OsStorage>,
    progress: &dyn Progress,
) -> Result<()> {
    let storage = &std::sync::Arc::new(LatchedStorage::shared(std::sync::Arc::clone(storage)));
    if let Some(snapshot) = plan.snapshot {
        let bytes = encode_snapshot(&snapshot.catalog, snapshot.last_term)?;
        write_snapshot(&**storage, snapshot.index_end, &bytes)?;
    }
    // The log opens empty: the commit point it checks is the start's.
    let empty = HardState {
        commit_end: plan.hard_state.log_start,
        ..plan.hard_state.clone()
    };
    let (mut log, _) = SegmentedLog::open(
        std::sync::Arc::clone(storage),
        &empty,
        plan.segment_size_bytes,
        Access::Writable,
        |_| Ok(()),
    )?;
    // A sole voter's kept entries were all committed (durable is committed
    // for it); they are written in large batches, so they carry that commit
    // point rather than per-batch stamps (which would confine a batch to one
    // segment).
    let stamp = match plan.hard_state.role {
        NodeRole::SoleVoter => CommitStamp::Known(plan.entries.end),
        NodeRole::Replica => CommitStamp::Known(plan.hard_state.commit_end),
    };
    let total = plan.entries.end - plan.entries.start;
    let mut from = plan.entries.start;
    while from < plan.entries.end {
        let to = plan.entries.end.min(from + ENTRIES_PER_SYNC);
        let batch = (from..to)
            .map(|index| source.intact_log().read_payload(index))
            .collect::<Result<Vec<_>>>()?;
        log.write(batch.iter().map(|(t, p)| (*t, p.as_slice())), stamp)?;
        log.sync()?;
        progress.update(to - plan.entries.start, total);
        from = to;
    }
    drop(log);
    HardStateStore::create(&**storage, &plan.hard_state)?;
    Ok(())
}

/// Opens the new directory read-only as `cpwal verify` does and checks it
/// holds the plan: nothing to repair, the planned hard state, log range and
/// snapshot, and every entry equal to the source's.
fn verify(source: &Examination, plan: &SalvagePlan<'_>, path: &Path) -> Result<()> {
    let mismatch = |detail| Error::CopyMismatch {
        path: path.to_path_buf(),
        detail,
    };
    let copy = Inspection::open(path).map_err(|error| match error.as_corruption() {
        Some(_) => mismatch(CopyMismatch::NeedsRepair),
        None => error,
    })?;
    if *copy.recovery() != crate::log::RecoveryReport::default() {
        return Err(mismatch(CopyMismatch::NeedsRepair));
    }
    if *copy.hard_state() != plan.hard_state {
        return Err(mismatch(CopyMismatch::HardState));
    }
    let first = copy.first_index().0;
    let found = first..copy.last_index().map_or(first, |i| i.0 + 1);
    if found != plan.entries {
        let expected = plan.entries.clone();
        return Err(mismatch(CopyMismatch::LogRange { expected, found }));
    }
    if copy.snapshot().map(|s| s.index_end.0) != plan.snapshot.map(|s| s.index_end) {
        return Err(mismatch(CopyMismatch::Snapshot));
    }
    for index in plan.entries.clone() {
        let index = ControlPlaneIndex(index);
        let same = match (copy.read(index), source.read(index)) {
            (Ok(kept), Ok(original)) => kept == original,
            _ => false,
        };
        if !same {
            return Err(mismatch(CopyMismatch::Entry { index: index.0 }));
        }
    }
    Ok(())
}

fn report(source: &Examination, plan: &SalvagePlan<'_>, destination: PathBuf) -> SalvageReport {
    let kept = plan.entries.clone();
    let state = &plan.hard_state;
    let lost_from = kept.end;
    let known_end = source.evidence_end().max(lost_from);
    SalvageReport {
        destination,
        source_verdict: source.verdict(),
        damage: source.damage().to_vec(),
        node: state.node.clone(),
        role: state.role,
        hard_state_from: source.served_by().map(|copy| copy.name),
        term: ControlPlaneTerm(state.term),
        vote: state.vote.clone(),
        vote_fate: plan.vote_fate.clone(),
        snapshot_index_end: plan.snapshot.map(|s| ControlPlaneIndex(s.index_end)),
        commit_end: ControlPlaneIndex(state.commit_end),
        lost: LostEntries {
            known: ControlPlaneIndex::range(lost_from..known_end),
            committed_end: ControlPlaneIndex(match state.role {
                NodeRole::SoleVoter => known_end,
                NodeRole::Replica => source.claimed_commit_end().clamp(lost_from, known_end),
            }),
        },
        bytes_lost: source.bytes_beyond(),
        segments_left_behind: source.segments_beyond().to_vec(),
        kept: ControlPlaneIndex::range(kept),
    }
}
