//! [`Examination`]: everything readable in a data directory, damaged or
//! not, with the damage listed beside it and one [`Verdict`].
//!
//! The verdict is the library's own: the directory is first opened exactly
//! as [`Inspection`] opens it (the checks a writer runs, changing nothing).
//! If that succeeds, the view is the writer's view, and the verdict says
//! whether a writer would repair anything or whether redundancy is lost. If
//! it refuses with corruption, that corruption is the first item of
//! [`Examination::damage`], the verdict is [`Verdict::Damaged`], and the
//! rest is read best effort: term and vote from whichever hard-state copy
//! is valid, the longest valid prefix of the log (the walk in `walk.rs`),
//! the newest snapshot that reads back whole. Nothing is written, and the
//! directory stays under a shared lock while the examination lives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::walk::{walk, IntactLog, LogStop};
use crate::catalog::ControlPlaneCatalog;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::directory::{Layout, Survey};
use crate::engine::LogEntry;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::{HARD_STATE_FILE_NAME, HARD_STATE_SLOT_BYTES};
use crate::hard_state::{decode_copies, HardState, NodeRole, SlotFault};
use crate::identity::ClusterVoterIdentity;
use crate::inspect::{Inspection, SegmentSummary, SnapshotSummary};
use crate::io::{LockMode, OsFile, OsStorage, Storage, StorageFile};
use crate::log::segment::Liveness;
use crate::log::RecoveryReport;
use crate::snapshot::{list_snapshots, open_snapshot, read_snapshot, Snapshot};

/// What a directory needs, from best to worst. Each has its own exit code
/// in `cpwal verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing to repair; both hard-state copies hold the current state.
    Clean,
    /// What a crash leaves, which the next writable open repairs and which
    /// was never acknowledged: a torn tail, an interrupted truncation,
    /// snapshot install or hard-state update (one copy valid but older),
    /// leftover files.
    Repairable,
    /// A writer opens it and loses nothing, but redundancy is lost: one
    /// hard-state copy fails its checks or is missing (an update torn by a
    /// power cut, or damage; they cannot be told apart). The next writable
    /// open copies the serving copy over it; until then, one more damaged
    /// copy loses the term and vote.
    Degraded,
    /// A writer refuses it: synced data is damaged or missing
    /// ([`Examination::damage`]). What is shown is what could be read.
    Damaged,
}

/// One of the two copies of the hard state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardStateCopy {
    /// "A" (offset 0, written first by every update) or "B".
    pub name: &'static str,
    /// Its offset in the hard-state file.
    pub offset: u64,
    /// What it holds.
    pub state: HardStateCopyState,
}

/// What a hard-state copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardStateCopyState {
    /// Valid, and the newest state (the one a node serves).
    Current {
        /// Its sequence number.
        sequence: u64,
    },
    /// Valid but older than the other copy: an update a crash interrupted.
    Stale {
        /// Its sequence number.
        sequence: u64,
    },
    /// Fails its checksum or a field check.
    Damaged,
    /// The file is too short to hold it (or missing).
    Missing,
    /// Written by another format version.
    OtherVersion {
        /// The version it carries.
        found: u32,
    },
}

/// The control-plane catalog at the commit point: the snapshot, then every
/// committed entry after it that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogView {
    /// Members, ranges with owner and epoch, the leader history.
    pub catalog: ControlPlaneCatalog,
    /// The snapshot it starts from: entries below this come from it.
    pub snapshot_index_end: Option<ControlPlaneIndex>,
    /// One past the commit point the directory records. Above
    /// `catalog.applied_end()` only when damage hides committed entries.
    pub commit_end: ControlPlaneIndex,
}

/// The newest snapshot that reads back whole.
#[derive(Debug)]
struct ExaminedSnapshot {
    summary: SnapshotSummary,
    snapshot: Snapshot,
}

/// A best-effort, read-only view of a data directory (see the module docs).
#[derive(Debug)]
pub struct Examination {
    directory: PathBuf,
    /// Holds the shared lock for as long as the examination lives.
    _storage: Arc<OsStorage>,
    verdict: Verdict,
    damage: Vec<Corruption>,
    copies: [HardStateCopy; 2],
    /// The hard state a node would serve, with the copy it comes from.
    served: Option<(usize, HardState)>,
    log: IntactLog<OsFile>,
    stop: Option<LogStop>,
    snapshot: Option<ExaminedSnapshot>,
    recovery: RecoveryReport,
    commit_end: u64,
    /// One past the commit point the hard state, the records and the
    /// snapshot claim, whether or not the entries can be read.
    claimed_commit_end: u64,
    /// One past the highest index any evidence says existed (hard state,
    /// records beyond the stop, vouchers).
    evidence_end: u64,
    bytes_beyond: u64,
    segments_beyond: Vec<String>,
}

impl Examination {
    /// Examines `directory` under a shared lock (refused while a writer
    /// holds it) without changing a byte. Errors only when nothing can be
    /// judged: the lock is held, the path is not a data directory (an
    /// [`Error::Io`] of kind `NotFound` on the hard-state path, as
    /// [`Inspection::open`]), a file cannot be read, or the directory was
    /// written by another format version.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self> {
        let directory = directory.as_ref().to_path_buf();
        let storage = Arc::new(OsStorage::open(&directory, LockMode::Shared)?);
        match Inspection::open(&directory) {
            Ok(inspection) => Self::of_inspection(directory, storage, &inspection),
            Err(error) => match error.as_corruption() {
                Some(corruption) => Self::best_effort(directory, storage, corruption.clone()),
                None => Err(error),
            },
        }
    }

    /// The writer's view: the directory opened.
    fn of_inspection(
        directory: PathBuf,
        storage: Arc<OsStorage>,
        inspection: &Inspection,
    ) -> Result<Self> {
        let (copies, served) = read_copies(&storage)?;
        let served = served.filter(|(_, state)| state == inspection.hard_state());
        let snapshot = match inspection.snapshot() {
            Some(summary) => Some(ExaminedSnapshot {
                summary: summary.clone(),
                snapshot: read_snapshot(&*storage, summary.index_end.0)?,
            }),
            None => None,
        };
        let recovery = inspection.recovery().clone();
        let stale_copy = copies
            .iter()
            .any(|c| matches!(c.state, HardStateCopyState::Stale { .. }));
        let repairs = recovery.repairs_anything()
            || stale_copy
            || snapshot.as_ref().is_some_and(|s| s.summary.restart_pending);
        let degraded = copies.iter().any(|c| {
            !matches!(
                c.state,
                HardStateCopyState::Current { .. } | HardStateCopyState::Stale { .. }
            )
        });
        let verdict = match (degraded, repairs) {
            (true, _) => Verdict::Degraded,
            (false, true) => Verdict::Repairable,
            (false, false) => Verdict::Clean,
        };
        Ok(Self {
            directory,
            _storage: storage,
            verdict,
            damage: Vec::new(),
            copies,
            served,
            log: IntactLog::of(inspection.log()),
            stop: None,
            snapshot,
            recovery,
            commit_end: inspection.commit_index().map_or(0, |i| i.0 + 1),
            claimed_commit_end: inspection.commit_index().map_or(0, |i| i.0 + 1),
            evidence_end: 0,
            bytes_beyond: 0,
            segments_beyond: Vec::new(),
        })
    }

    /// What can be read of a directory a writer refuses with `refusal`.
    fn best_effort(
        directory: PathBuf,
        storage: Arc<OsStorage>,
        refusal: Corruption,
    ) -> Result<Self> {
        let (copies, served) = read_copies(&storage)?;
        // Files cpwal does not own are not damage (the survey reports them).
        let generations = Survey::of(&*storage, Layout::Node)?.segments;
        let mut damage = vec![refusal];
        let hard_state = served.as_ref().map(|(_, state)| state);
        // Without a hard state the last truncation is unknown: every record
        // counts as live (the walk reports one from a later epoch anyway).
        let liveness = hard_state.map_or(
            Liveness {
                log_epoch: u64::MAX,
                truncated_from: u64::MAX,
            },
            |state| Liveness {
                log_epoch: state.log_epoch,
                truncated_from: state.truncated_from,
            },
        );
        let walked = walk(
            &*storage,
            &generations,
            hard_state.map(|s| s.log_start),
            liveness,
        )?;
        let snapshot = newest_whole_snapshot(&storage, &walked.log, &mut damage)?;
        if let Some(stop) = &walked.stop {
            if let super::walk::StopReason::Record { kind, .. } = &stop.reason {
                let corruption = corruption(
                    stop.path.clone(),
                    stop.offset,
                    Some(stop.index.0),
                    kind.clone(),
                );
                note(&mut damage, corruption);
            }
        }
        let readable_end = walked.log.readable().end;
        let snapshot_end = snapshot.as_ref().map_or(0, |s| s.summary.index_end.0);
        let claimed = hard_state
            .map_or(0, |s| s.commit_end)
            .max(walked.log.commit_stamp_end)
            .max(walked.commit_evidence_end)
            .max(snapshot_end);
        Ok(Self {
            directory,
            _storage: storage,
            verdict: Verdict::Damaged,
            damage,
            copies,
            commit_end: claimed.min(readable_end.max(snapshot_end)),
            claimed_commit_end: claimed,
            evidence_end: walked.evidence_end.max(claimed),
            served,
            log: walked.log,
            stop: walked.stop,
            snapshot,
            recovery: RecoveryReport::default(),
            bytes_beyond: walked.bytes_beyond,
            segments_beyond: walked.segments_beyond,
        })
    }

    /// The directory examined.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// What the directory needs.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Damage a writer refuses, the writer's own refusal first, then what
    /// else the best-effort read found (empty unless the verdict is
    /// [`Verdict::Damaged`]).
    pub fn damage(&self) -> &[Corruption] {
        &self.damage
    }

    /// What each hard-state copy holds.
    pub fn hard_state_copies(&self) -> &[HardStateCopy; 2] {
        &self.copies
    }

    /// The copy the term and vote come from (`None`: neither is valid).
    pub fn served_by(&self) -> Option<&HardStateCopy> {
        self.served.as_ref().map(|(slot, _)| &self.copies[*slot])
    }

    /// The node the directory belongs to, if a hard-state copy survived.
    pub fn node(&self) -> Option<&ClusterVoterIdentity> {
        self.hard_state().map(|s| &s.node)
    }

    /// Its role, if a hard-state copy survived.
    pub fn role(&self) -> Option<NodeRole> {
        self.hard_state().map(|s| s.role)
    }

    /// Term and vote, if a hard-state copy survived.
    pub fn durable_vote(&self) -> Option<DurableVoteState> {
        self.hard_state().map(HardState::durable_vote)
    }

    /// The truncation epoch and the first index the latest truncation
    /// removed (`None`: never), if a hard-state copy survived.
    pub fn truncation(&self) -> Option<(u64, Option<ControlPlaneIndex>)> {
        self.hard_state().map(HardState::truncation)
    }

    /// The term of the entry before the log's first index, if a hard-state
    /// copy survived.
    pub fn first_index_previous_term(&self) -> Option<ControlPlaneTerm> {
        self.hard_state()
            .map(|s| ControlPlaneTerm(s.log_start_previous_term))
    }

    /// The commit point: the last committed entry that can be read or that
    /// the snapshot holds (`None`: nothing committed).
    pub fn commit_index(&self) -> Option<ControlPlaneIndex> {
        self.commit_end.checked_sub(1).map(ControlPlaneIndex)
    }

    /// The first index of the log (entries below were compacted).
    pub fn first_index(&self) -> ControlPlaneIndex {
        ControlPlaneIndex(self.log.start_index)
    }

    /// The indexes of the log that read back intact: all of the log unless
    /// the verdict is [`Verdict::Damaged`]. Empty when none does.
    pub fn readable(&self) -> std::ops::Range<ControlPlaneIndex> {
        ControlPlaneIndex::range(self.log.readable())
    }

    /// Where the intact prefix ends on damage (`None`: at the log's end).
    pub fn log_stop(&self) -> Option<&LogStop> {
        self.stop.as_ref()
    }

    /// Segment files beyond the damage, not part of the intact prefix.
    pub fn segments_beyond(&self) -> &[String] {
        &self.segments_beyond
    }

    /// Written bytes of log files beyond the intact prefix.
    pub fn bytes_beyond(&self) -> u64 {
        self.bytes_beyond
    }

    /// The newest snapshot that reads back whole.
    pub fn snapshot(&self) -> Option<&SnapshotSummary> {
        self.snapshot.as_ref().map(|s| &s.summary)
    }

    /// The catalog the newest whole snapshot holds.
    pub fn snapshot_catalog(&self) -> Option<&ControlPlaneCatalog> {
        self.snapshot.as_ref().map(|s| &s.snapshot.catalog)
    }

    /// What a writable open would repair (empty for a damaged directory,
    /// which a writer refuses).
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The segments of the intact prefix, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentSummary>> {
        let damaged = self.verdict == Verdict::Damaged;
        crate::inspect::summarize_segments(&self.log.segments, !damaged)
    }

    /// The entry at `index` of the intact log, checksum re-verified.
    pub fn read(&self, index: ControlPlaneIndex) -> Result<LogEntry> {
        self.log.read(index.0)
    }

    /// The catalog at the commit point: the snapshot's, then every
    /// committed entry after it that reads back, applied in order.
    pub fn catalog(&self) -> Result<CatalogView> {
        let (mut catalog, snapshot_index_end) = match &self.snapshot {
            Some(s) => (s.snapshot.catalog.clone(), Some(s.summary.index_end)),
            None => (ControlPlaneCatalog::new(), None),
        };
        let readable = self.log.readable();
        let from = catalog.applied_end().0;
        if from >= readable.start {
            for index in from..self.commit_end.min(readable.end) {
                let entry = self.read(ControlPlaneIndex(index))?;
                catalog.apply(entry.index, &entry.entry)?;
            }
        }
        Ok(CatalogView {
            catalog,
            snapshot_index_end,
            commit_end: ControlPlaneIndex(self.commit_end),
        })
    }

    /// The hard state a node would serve.
    pub(crate) fn hard_state(&self) -> Option<&HardState> {
        self.served.as_ref().map(|(_, state)| state)
    }

    /// The intact log.
    pub(crate) fn intact_log(&self) -> &IntactLog<OsFile> {
        &self.log
    }

    /// The newest whole snapshot, decoded.
    pub(crate) fn whole_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|s| &s.snapshot)
    }

    /// One past the commit point the directory claims, readable or not.
    pub(crate) fn claimed_commit_end(&self) -> u64 {
        self.claimed_commit_end
    }

    /// One past the highest index any evidence says the log held: the
    /// recorded commit point, records beyond the damage, records vouching
    /// for earlier ones.
    pub(crate) fn evidence_end(&self) -> u64 {
        self.evidence_end
    }
}

fn corruption(path: PathBuf, offset: u64, index: Option<u64>, kind: CorruptionKind) -> Corruption {
    Corruption {
        path,
        offset,
        index,
        kind,
    }
}

/// Adds `corruption` to `damage` unless the same damage of the same file
/// is listed already.
fn note(damage: &mut Vec<Corruption>, corruption: Corruption) {
    let listed = damage.iter().any(|d| {
        d.path == corruption.path && (d.offset == corruption.offset || d.kind == corruption.kind)
    });
    if !listed {
        damage.push(corruption);
    }
}

/// Names cpwal writes (a hard state, segments, snapshots, temporary files).
/// Each hard-state copy, judged on its own, and the one a node serves (the
/// valid copy with the highest sequence) with its position.
#[allow(clippy::type_complexity)]
fn read_copies(storage: &OsStorage) -> Result<([HardStateCopy; 2], Option<(usize, HardState)>)> {
    let bytes = match storage.open(HARD_STATE_FILE_NAME, false) {
        Ok(file) => {
            let path = storage.path_of(HARD_STATE_FILE_NAME);
            let length = file
                .len()
                .map_err(|e| Error::io("stat hard state", &path, e))?;
            let readable = length.min(2 * HARD_STATE_SLOT_BYTES) as usize;
            file.read_at(0, readable)
                .map_err(|e| Error::io("read hard state", &path, e))?
                .into_owned()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            let path = storage.path_of(HARD_STATE_FILE_NAME);
            return Err(Error::io("open hard state", path, e));
        }
    };
    let decoded = decode_copies(&bytes);
    let newest = decoded
        .iter()
        .filter_map(|copy| copy.as_ref().ok().map(|(sequence, _)| *sequence))
        .max();
    let served = decoded
        .iter()
        .position(|copy| matches!(copy, Ok((sequence, _)) if Some(*sequence) == newest))
        .and_then(|slot| decoded[slot].clone().ok().map(|(_, state)| (slot, state)));
    let copies = [0, 1].map(|slot| HardStateCopy {
        name: ["A", "B"][slot],
        offset: slot as u64 * HARD_STATE_SLOT_BYTES,
        state: match &decoded[slot] {
            Ok((sequence, _)) if Some(*sequence) == newest => HardStateCopyState::Current {
                sequence: *sequence,
            },
            Ok((sequence, _)) => HardStateCopyState::Stale {
                sequence: *sequence,
            },
            Err(SlotFault::Damaged) => HardStateCopyState::Damaged,
            Err(SlotFault::Missing) => HardStateCopyState::Missing,
            Err(SlotFault::Version(found)) => HardStateCopyState::OtherVersion { found: *found },
        },
    });
    Ok((copies, served))
}

/// The newest snapshot that reads back whole; each newer one that does not
/// is noted as damage.
fn newest_whole_snapshot(
    storage: &OsStorage,
    log: &IntactLog<OsFile>,
    damage: &mut Vec<Corruption>,
) -> Result<Option<ExaminedSnapshot>> {
    for index_end in list_snapshots(storage)?.into_iter().rev() {
        let snapshot = match read_snapshot(storage, index_end) {
            Ok(snapshot) => snapshot,
            Err(Error::Corruption(found)) => {
                note(damage, found);
                continue;
            }
            Err(other) => return Err(other),
        };
        let (_, _, file_bytes) = open_snapshot(storage, index_end)?;
        let restart_pending = index_end > log.readable().end;
        let summary = SnapshotSummary::of(&snapshot, file_bytes, restart_pending);
        return Ok(Some(ExaminedSnapshot { summary, snapshot }));
    }
    Ok(None)
}
