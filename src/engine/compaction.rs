//! Snapshots and prefix compaction: bounded disk use for a log that keeps
//! growing. The order of durable steps and the crash argument are in
//! [`crate::format`] ("Compaction with a snapshot").

use crate::catalog::ControlPlaneCatalog;
use crate::consensus::ControlPlaneIndex;
use crate::error::{CorruptionKind, Error, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::io::Storage;
use crate::log::{LogFile, LogStart, SegmentedLog};
use crate::snapshot::{
    encode_snapshot, list_snapshots, read_latest, remove_snapshots_below, write_snapshot, Snapshot,
};

use super::ControlPlaneNode;
use crate::node_role::Role;

/// What [`ControlPlaneNode::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// The snapshot now on disk covers every index below this.
    pub snapshot_index_end: ControlPlaneIndex,
    /// The first index still in the log; reads below it are
    /// [`Error::Compacted`].
    pub log_start: ControlPlaneIndex,
    /// Segment files removed.
    pub removed_segments: usize,
    /// Older snapshot files removed.
    pub removed_snapshots: Vec<String>,
}

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Snapshots the catalog at [`ControlPlaneNode::applied_end`] and
    /// compacts the log up to `keep_entries` entries before it (kept so that
    /// slightly lagging peers can still be served from the log). Steps, each
    /// durable before the next: the snapshot file; the new log start in the
    /// hard state (with the commit point, which removed records may have
    /// carried); removal of the segments wholly below it; removal of older
    /// snapshots. A storage failure is latched.
    pub fn compact(&mut self, keep_entries: u64) -> Result<CompactionReport> {
        self.check_not_failed()?;
        let index_end = self.catalog.applied_end().0;
        let storage = std::sync::Arc::clone(self.log.storage());
        self.write_snapshot_at_applied(&*storage)?;
        let segments_before = self.log.segments().len();
        let new_start = index_end
            .saturating_sub(keep_entries)
            .max(self.log.start_index());
        if new_start > self.log.start_index() {
            let start = LogStart {
                index: new_start,
                previous_term: self.log.term_at(new_start - 1)?,
            };
            self.log.remove_prefix(
                start,
                self.commit_end,
                &mut self.hard_state_store,
                &mut self.hard_state,
            )?;
        }
        let removed_snapshots = remove_snapshots_below(&*storage, index_end)?;
        Ok(CompactionReport {
            snapshot_index_end: ControlPlaneIndex(index_end),
            log_start: ControlPlaneIndex(self.log.start_index()),
            removed_segments: segments_before - self.log.segments().len(),
            removed_snapshots,
        })
    }

    /// Writes the snapshot of the catalog unless one at the same index exists.
    fn write_snapshot_at_applied(&self, storage: &impl Storage) -> Result<()> {
        let index_end = self.catalog.applied_end().0;
        if list_snapshots(storage)?.last() == Some(&index_end) {
            return Ok(());
        }
        let last_term = match index_end.checked_sub(1) {
            Some(last) => self.log.term_at(last)?,
            None => 0,
        };
        let bytes = encode_snapshot(&self.catalog, last_term)?;
        write_snapshot(storage, index_end, &bytes)
    }

    /// The index below which a snapshot covers the log (0: no snapshot).
    pub fn snapshot_index_end(&self) -> Result<ControlPlaneIndex> {
        let newest = list_snapshots(&**self.log.storage())?.last().copied();
        Ok(ControlPlaneIndex(newest.unwrap_or(0)))
    }
}

/// At open: the newest snapshot's catalog (or an empty one) and its
/// `index_end`, after [`check_latest_snapshot`]; older snapshots are
/// removed. A snapshot beyond the end of the log is an install from a leader
/// that a crash interrupted before the log restarted at it (see
/// [`ControlPlaneNode::install_snapshot`]): the restart is finished here.
/// (The entries below a snapshot are never needed again, so this cannot hide
/// the loss of anything the node still needs.)
pub(super) fn load_snapshot<S: Storage>(
    log: &mut SegmentedLog<S>,
    hard_state_store: &mut HardStateStore<LogFile<S>>,
    hard_state: &mut HardState,
    removed_files: &mut Vec<String>,
) -> Result<(ControlPlaneCatalog, u64)> {
    let storage = std::sync::Arc::clone(log.storage());
    let (catalog, index_end, last_term) = match check_latest_snapshot(log, hard_state)? {
        Some(snapshot) => (snapshot.catalog, snapshot.index_end, snapshot.last_term),
        None => (ControlPlaneCatalog::new(), 0, 0),
    };
    if index_end > log.end_index() {
        // The snapshot's entries are committed: the floor is its end.
        let start = LogStart {
            index: index_end,
            previous_term: last_term,
        };
        log.restart_at(start, index_end, hard_state_store, hard_state)?;
    }
    removed_files.extend(remove_snapshots_below(&*storage, index_end)?);
    Ok((catalog, index_end))
}

/// The newest snapshot (if any), read and checked against the log and the
/// hard state without changing anything: neither it nor the log may carry a
/// term above the hard state's, it must cover everything the log compacted,
/// and where the log still holds its last covered entry, the terms must
/// agree. Shared by the writable open ([`load_snapshot`]) and
/// read-only inspection, so both refuse exactly the same directories.
pub(crate) fn check_latest_snapshot<S: Storage>(
    log: &SegmentedLog<S>,
    hard_state: &HardState,
) -> Result<Option<Snapshot>> {
    let storage = log.storage();
    let snapshot = read_latest(&**storage)?;
    let (index_end, last_term) = snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.index_end, s.last_term));
    check_terms_within_hard_state(log, hard_state, index_end, last_term)?;
    if hard_state.log_start > index_end {
        return Err(Error::corruption(
            storage.path_of(crate::format::HARD_STATE_FILE_NAME),
            0,
            Some(index_end),
            CorruptionKind::CommittedEntryMissing {
                commit_end: hard_state.log_start,
                log_end: index_end,
            },
        ));
    }
    let covered_last = index_end.checked_sub(1).filter(|&i| i < log.end_index());
    if let Some(last) = covered_last.filter(|&i| i + 1 >= log.start_index()) {
        if log.term_at(last)? != last_term {
            // The log contradicts the snapshot under its end: no sequence of
            // crashes leaves this (see `install_snapshot`).
            return Err(Error::corruption(
                storage.path_of(&crate::format::snapshot_file_name(index_end)),
                crate::format::SNAPSHOT_LAST_TERM_OFFSET,
                Some(last),
                CorruptionKind::SnapshotInvalid,
            ));
        }
    }
    Ok(snapshot)
}

/// No record and no snapshot can carry a term above the hard state's: a
/// term is durable in the hard state before anything is written in it (a
/// leader appends in its own term; a follower adopts the leader's term
/// durably before writing its entries or installing its snapshot, which
/// carries committed terms). A log ahead of its hard state means the hard
/// state is stale (restored from an older backup, say) and may have
/// forgotten a vote: corruption of the hard state, reported at the highest
/// index whose term exceeds it.
fn check_terms_within_hard_state<S: Storage>(
    log: &SegmentedLog<S>,
    hard_state: &HardState,
    snapshot_end: u64,
    snapshot_last_term: u64,
) -> Result<()> {
    let log_last = log.end_index().checked_sub(1);
    let (index, entry_term) = match log_last {
        Some(last) if log.last_term() > hard_state.term => (Some(last), log.last_term()),
        _ if snapshot_last_term > hard_state.term => {
            (snapshot_end.checked_sub(1), snapshot_last_term)
        }
        _ => return Ok(()),
    };
    Err(Error::corruption(
        log.storage().path_of(crate::format::HARD_STATE_FILE_NAME),
        0,
        index,
        CorruptionKind::TermAheadOfHardState {
            entry_term,
            hard_state_term: hard_state.term,
        },
    ))
}
