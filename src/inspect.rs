//! Read-only inspection of a data directory, for tools (`cpwal inspect`,
//! `verify`, `dump`) and monitoring.
//!
//! [`Inspection::open`] takes a SHARED lock (refused with
//! [`Error::DirectoryLocked`] while a writer holds the directory), opens the
//! hard state and every segment read-only and runs the same recovery scan a
//! writer would, without changing a byte on disk: a torn tail is reported
//! in [`Inspection::recovery`], not zeroed; leftover files are listed, not
//! removed; no lock file is created. Damage recovery would refuse comes back
//! as the same typed [`Error::Corruption`] a writer would get. The newest
//! snapshot is read and checked exactly as a writable open checks it (the
//! engine's own check is reused); older snapshots a writer would remove are
//! listed with the leftover files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::decode_entry;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::directory::{Layout, Survey};
use crate::engine::{check_latest_snapshot, LogEntry};
use crate::error::{CorruptionKind, Error, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::identity::ClusterVoterIdentity;
use crate::io::{Access, LockMode, OsStorage, Storage, StorageFile};
use crate::log::{RecoveryReport, SegmentedLog};
use crate::snapshot::{list_snapshots, Snapshot};

/// Whether a segment still takes appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// A full, synced segment before the last one; never written again.
    Sealed,
    /// The last segment: appends go here.
    Active,
}

/// One segment file as recovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The file name.
    pub name: String,
    /// The segment's generation (from its header).
    pub generation: u64,
    /// The generation of the segment before it.
    pub previous_generation: u64,
    /// The first index it holds (or would hold).
    pub first_index: ControlPlaneIndex,
    /// One past the last index it holds.
    pub end_index: ControlPlaneIndex,
    /// The file's length (allocated in full when the segment was created).
    pub file_bytes: u64,
    /// Bytes used by the header and live records.
    pub used_bytes: u64,
    /// Sealed or active.
    pub state: SegmentState,
}

/// The newest snapshot file, as a reopened node would load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The file name (`snapshot-<index_end>`).
    pub name: String,
    /// Every index below this is applied in the snapshot.
    pub index_end: ControlPlaneIndex,
    /// The term of the entry at `index_end - 1` (0 when `index_end` is 0).
    pub last_term: ControlPlaneTerm,
    /// The file's length.
    pub file_bytes: u64,
    /// Members in the snapshot's catalog.
    pub members: usize,
    /// Ranges with an owner in the snapshot's catalog.
    pub ranges: usize,
    /// Leader configurations in the snapshot's catalog.
    pub leader_configurations: usize,
    /// Whether the snapshot lies beyond the log's end (an install a crash
    /// interrupted): a writer would restart the log at `index_end`.
    pub restart_pending: bool,
}

/// A data directory opened for reading only. Holds a shared lock for as long
/// as it lives.
#[derive(Debug)]
pub struct Inspection {
    directory: PathBuf,
    hard_state: HardState,
    log: SegmentedLog<OsStorage>,
    recovery: RecoveryReport,
    snapshot: Option<SnapshotSummary>,
}

impl Inspection {
    /// Opens `directory` read-only under a shared lock and scans it as
    /// recovery would, changing nothing. A directory without a hard-state
    /// file is refused as a writer refuses it: segments or snapshots beside
    /// no hard state are [`CorruptionKind::HardStateUnreadable`] (the vote
    /// was lost); with neither, it is not a data directory: an
    /// [`Error::Io`] of kind `NotFound` on the hard-state path.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self> {
        let directory = directory.as_ref().to_path_buf();
        let storage = OsStorage::open(&directory, LockMode::Shared)?;
        refuse_data_without_hard_state(&storage)?;
        let storage = Arc::new(crate::log::LatchedStorage::new(storage));
        let (_store, hard_state) = HardStateStore::open(&*storage, Access::ReadOnly)?;
        let (log, mut recovery) = SegmentedLog::open(
            Arc::clone(&storage),
            &hard_state,
            crate::options::MIN_SEGMENT_SIZE_BYTES,
            Access::ReadOnly,
            |payload| decode_entry(payload).map(drop),
        )?;
        let snapshot = check_latest_snapshot(&log, &hard_state)?
            .map(|s| summarize_snapshot(&*storage, &log, &s))
            .transpose()?;
        let keep = snapshot.as_ref().map_or(0, |s| s.index_end.0);
        recovery.removed_files.extend(
            list_snapshots(&*storage)?
                .into_iter()
                .filter(|&index_end| index_end < keep)
                .map(crate::format::snapshot_file_name),
        );
        Ok(Self {
            directory,
            hard_state,
            log,
            recovery,
            snapshot,
        })
    }

    /// The newest snapshot, checked against the log as a writable open
    /// checks it; `None` when the directory holds none.
    pub fn snapshot(&self) -> Option<&SnapshotSummary> {
        self.snapshot.as_ref()
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The node this directory belongs to.
    pub fn node(&self) -> &ClusterVoterIdentity {
        &self.hard_state.node
    }

    /// Term and vote as a reopened node would have them.
    pub fn durable_vote(&self) -> DurableVoteState {
        self.hard_state.durable_vote()
    }

    /// The commit index a reopened node would have (`None`: nothing
    /// committed).
    pub fn commit_index(&self) -> Option<ControlPlaneIndex> {
        let snapshot_end = self.snapshot.as_ref().map_or(0, |s| s.index_end.0);
        self.log
            .recovered_commit_end()
            .max(snapshot_end)
            .checked_sub(1)
            .map(ControlPlaneIndex)
    }

    /// The first index still in the log (entries below were compacted).
    pub fn first_index(&self) -> ControlPlaneIndex {
        ControlPlaneIndex(self.log.start_index())
    }

    /// The index of the last entry, or `None` if the log holds none.
    pub fn last_index(&self) -> Option<ControlPlaneIndex> {
        let end = self.log.end_index();
        (end > self.log.start_index()).then(|| ControlPlaneIndex(end - 1))
    }

    /// The term of the entry just before the first index (left by a
    /// compaction; 0 when nothing was compacted).
    pub fn first_index_previous_term(&self) -> ControlPlaneTerm {
        ControlPlaneTerm(self.hard_state.log_start_previous_term)
    }

    /// The truncation epoch stamped on live records, and the first index the
    /// latest suffix truncation removed (`None`: never truncated).
    pub fn truncation(&self) -> (u64, Option<ControlPlaneIndex>) {
        self.hard_state.truncation()
    }

    /// What a writable open would repair: a torn tail to drop, an
    /// interrupted truncation to finish, leftover files to remove; and what
    /// it would report without repairing: files cpwal does not own
    /// (`foreign_files`) and permissions wider than cpwal's
    /// (`wide_permissions`). Empty when the directory is clean.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Every segment, oldest first (compacted leftovers a writer would remove
    /// are listed in [`Inspection::recovery`] instead).
    pub fn segments(&self) -> Result<Vec<SegmentSummary>> {
        summarize_segments(self.log.segments(), true)
    }

    /// Reads the entry at `index`, re-verifying its checksum.
    pub fn read(&self, index: ControlPlaneIndex) -> Result<LogEntry> {
        crate::engine::read_entry(&self.log, index)
    }

    /// The hard state as a reopened node would have it.
    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The log as recovery scanned it.
    pub(crate) fn log(&self) -> &SegmentedLog<OsStorage> {
        &self.log
    }

    /// Re-reads every entry (checksum and decoding), returning how many were
    /// read; the first failure is returned as an error.
    pub fn read_all(&self) -> Result<u64> {
        let start = self.log.start_index();
        for index in start..self.log.end_index() {
            self.read(ControlPlaneIndex(index))?;
        }
        Ok(self.log.end_index() - start)
    }
}

/// What [`SegmentSummary`] says of each of `segments`, oldest first; the
/// last is active when `last_is_active` (a damaged log has none).
pub(crate) fn summarize_segments<F: StorageFile>(
    segments: &[crate::log::segment::Segment<F>],
    last_is_active: bool,
) -> Result<Vec<SegmentSummary>> {
    let last = segments.len().saturating_sub(1);
    segments
        .iter()
        .enumerate()
        .map(|(position, segment)| {
            let file_bytes = segment
                .file
                .len()
                .map_err(|e| Error::io("stat segment", &segment.path, e))?;
            Ok(SegmentSummary {
                name: segment.name.clone(),
                generation: segment.generation(),
                previous_generation: segment.header.previous_generation,
                first_index: ControlPlaneIndex(segment.first_index()),
                end_index: ControlPlaneIndex(segment.end_index()),
                file_bytes,
                used_bytes: segment.end_offset,
                state: if position == last && last_is_active {
                    SegmentState::Active
                } else {
                    SegmentState::Sealed
                },
            })
        })
        .collect()
}

/// Segments or snapshots beside no hard-state file: the vote and the log
/// bounds were lost, which a writer refuses as
/// [`CorruptionKind::HardStateUnreadable`] (it would otherwise start afresh
/// and forget votes); so does the read-only view.
fn refuse_data_without_hard_state(storage: &OsStorage) -> Result<()> {
    let survey = Survey::of(storage, Layout::Node)?;
    let holds_data = !survey.segments.is_empty() || !survey.snapshots.is_empty();
    if holds_data && !survey.hard_state {
        let path = storage.path_of(crate::format::HARD_STATE_FILE_NAME);
        let kind = CorruptionKind::HardStateUnreadable;
        return Err(Error::corruption(path, 0, None, kind));
    }
    Ok(())
}

/// What [`Inspection`] reports about `snapshot` (already checked).
fn summarize_snapshot(
    storage: &impl Storage,
    log: &SegmentedLog<OsStorage>,
    snapshot: &Snapshot,
) -> Result<SnapshotSummary> {
    let name = crate::format::snapshot_file_name(snapshot.index_end);
    let path = storage.path_of(&name);
    let file_bytes = storage
        .open(&name, false)
        .and_then(|file| file.len())
        .map_err(|e| Error::io("stat snapshot", &path, e))?;
    let restart_pending = snapshot.index_end > log.end_index();
    Ok(SnapshotSummary::of(snapshot, file_bytes, restart_pending))
}

impl SnapshotSummary {
    /// What is said of `snapshot`, whose file is `file_bytes` long.
    pub(crate) fn of(snapshot: &Snapshot, file_bytes: u64, restart_pending: bool) -> Self {
        let catalog = &snapshot.catalog;
        SnapshotSummary {
            name: crate::format::snapshot_file_name(snapshot.index_end),
            index_end: ControlPlaneIndex(snapshot.index_end),
            last_term: ControlPlaneTerm(snapshot.last_term),
            file_bytes,
            members: catalog.members().len(),
            ranges: catalog.range_count(),
            leader_configurations: catalog.leader_history().len(),
            restart_pending,
        }
    }
}
