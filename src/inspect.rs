//! Read-only inspection of a data directory, for tools (`cpwal inspect`,
//! `verify`, `dump`) and monitoring.
//!
//! [`Inspection::open`] takes a SHARED lock (refused with
//! [`Error::DirectoryLocked`] while a writer holds the directory), opens the
//! hard state and every segment read-only and runs the same recovery scan a
//! writer would, without changing a byte on disk: a torn tail is reported
//! in [`Inspection::recovery`], not zeroed; leftover files are listed, not
//! removed; no lock file is created. Damage recovery would refuse comes back
//! as the same typed [`Error::Corruption`] a writer would get.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::decode_entry;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::engine::LogEntry;
use crate::error::{CorruptionKind, Error, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::identity::ClusterVoterIdentity;
use crate::io::{LockMode, OsStorage, StorageFile};
use crate::log::{RecoveryReport, SegmentedLog};

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
    pub first_index: u64,
    /// One past the last index it holds.
    pub end_index: u64,
    /// The file's length (allocated in full when the segment was created).
    pub file_bytes: u64,
    /// Bytes used by the header and live records.
    pub used_bytes: u64,
    /// Sealed or active.
    pub state: SegmentState,
}

/// A data directory opened for reading only. Holds a shared lock for as long
/// as it lives.
#[derive(Debug)]
pub struct Inspection {
    directory: PathBuf,
    hard_state: HardState,
    log: SegmentedLog<OsStorage>,
    recovery: RecoveryReport,
}

impl Inspection {
    /// Opens `directory` read-only under a shared lock and scans it as
    /// recovery would, changing nothing. A directory without a hard-state
    /// file is not a data directory: that is an [`Error::Io`] of kind
    /// `NotFound` on the hard-state path.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self> {
        let directory = directory.as_ref().to_path_buf();
        let storage = Arc::new(OsStorage::open(&directory, LockMode::Shared)?);
        let (_store, hard_state) = HardStateStore::open(&*storage, false)?;
        let (log, recovery) = SegmentedLog::open(
            storage,
            &hard_state,
            crate::options::MIN_SEGMENT_SIZE_BYTES,
            false,
            |payload| decode_entry(payload).map(drop),
        )?;
        Ok(Self {
            directory,
            hard_state,
            log,
            recovery,
        })
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
        DurableVoteState {
            term: ControlPlaneTerm(self.hard_state.term),
            voted_for: self.hard_state.vote.clone(),
        }
    }

    /// The commit index a reopened node would have (`None`: nothing
    /// committed).
    pub fn commit_index(&self) -> Option<ControlPlaneIndex> {
        self.log
            .recovered_commit_end()
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
    /// latest suffix truncation removed (`u64::MAX`: never truncated).
    pub fn truncation(&self) -> (u64, u64) {
        (self.hard_state.log_epoch, self.hard_state.truncated_from)
    }

    /// What a writable open would repair: a torn tail to drop, an
    /// interrupted truncation to finish, leftover files to remove. Empty when
    /// the directory is clean.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Every segment, oldest first (compacted leftovers a writer would remove
    /// are listed in [`Inspection::recovery`] instead).
    pub fn segments(&self) -> Result<Vec<SegmentSummary>> {
        let segments = self.log.segments();
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
                    first_index: segment.first_index(),
                    end_index: segment.end_index(),
                    file_bytes,
                    used_bytes: segment.end_offset,
                    state: if position == last {
                        SegmentState::Active
                    } else {
                        SegmentState::Sealed
                    },
                })
            })
            .collect()
    }

    /// Reads the entry at `index`, re-verifying its checksum.
    pub fn read(&self, index: ControlPlaneIndex) -> Result<LogEntry> {
        let (term, payload) = self.log.read(index.0)?;
        let entry = decode_entry(&payload).map_err(|e| {
            let (path, offset) = self.log.location_of(index.0);
            Error::corruption(
                path,
                offset,
                Some(index.0),
                CorruptionKind::UndecodableEntry(e),
            )
        })?;
        Ok(LogEntry {
            index,
            term: ControlPlaneTerm(term),
            entry,
        })
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
