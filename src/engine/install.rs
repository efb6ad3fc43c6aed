//! Installing a snapshot received from a leader (Raft's InstallSnapshot),
//! for a follower that lags behind the leader's log start.

use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::Result;
use crate::identity::ClusterVoterIdentity;
use crate::io::Storage;
use crate::snapshot::{
    decode_snapshot, list_snapshots, remove_snapshots_below, snapshot_file_bytes, write_snapshot,
};

use super::{AppendEntriesResponse, AppendOutcome, DurableControlPlane};

/// A leader's snapshot, sent whole (control-plane catalogs are small; the
/// file is bounded by `MAX_SNAPSHOT_BODY_BYTES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: ControlPlaneTerm,
    /// The leader.
    pub leader: ClusterVoterIdentity,
    /// The bytes of the leader's snapshot file, from
    /// [`DurableControlPlane::snapshot_for_peer`].
    pub snapshot: Vec<u8>,
}

impl<S: Storage> DurableControlPlane<S> {
    /// The bytes of this node's newest snapshot file, to send to a peer
    /// that was told [`PeerBatch::SendSnapshot`](super::PeerBatch); `None`
    /// when there is no snapshot.
    pub fn snapshot_for_peer(&self) -> Result<Option<Vec<u8>>> {
        let storage = &**self.log.storage();
        match list_snapshots(storage)?.last() {
            Some(&index_end) => snapshot_file_bytes(storage, index_end).map(Some),
            None => Ok(None),
        }
    }

    /// Installs a leader's snapshot. A stale term is refused; a higher one
    /// adopted. A snapshot that does not go beyond this node's commit point
    /// changes nothing. Otherwise, each step durable before the next: the
    /// snapshot file; then, if the log holds the snapshot's last entry with
    /// its term, the log is compacted up to it and the entries after it are
    /// kept (Raft §7); if not, entries after the snapshot are truncated and
    /// the log restarts empty at the snapshot's end; then older snapshots are
    /// removed. The catalog becomes the snapshot's and the commit point its
    /// end. Replies `Accepted` with the snapshot's last index.
    ///
    /// Errors: damaged bytes are [`Error::Corruption`](crate::Error) naming
    /// `<directory>/received-snapshot` (nothing changed, not latched); a
    /// storage failure is latched.
    pub fn install_snapshot(
        &mut self,
        request: &InstallSnapshotRequest,
    ) -> Result<AppendEntriesResponse> {
        self.check_not_failed()?;
        if request.term.0 < self.hard_state.term {
            return Ok(self.append_reply(AppendOutcome::StaleTerm));
        }
        let storage = std::sync::Arc::clone(self.log.storage());
        let snapshot = decode_snapshot(&request.snapshot, &storage.path_of("received-snapshot"))?;
        self.follow(request.term, &request.leader)?;
        let index_end = snapshot.index_end;
        let match_index = index_end.checked_sub(1).map(ControlPlaneIndex);
        if index_end <= self.commit_end {
            return Ok(self.append_reply(AppendOutcome::Accepted { match_index }));
        }
        let written = write_snapshot(&*storage, index_end, &request.snapshot);
        self.latch(written)?;
        let keeps_suffix = index_end <= self.log.end_index()
            && self.log.term_at(index_end - 1).ok() == Some(snapshot.last_term);
        let replaced = if keeps_suffix {
            self.hard_state.commit_end = index_end;
            self.log.remove_prefix(
                index_end,
                snapshot.last_term,
                &mut self.hard_state_store,
                &mut self.hard_state,
            )
        } else {
            self.restart_log_at(index_end, snapshot.last_term)
        };
        self.latch(replaced)?;
        self.catalog = snapshot.catalog;
        self.commit_end = index_end;
        let removed = remove_snapshots_below(&*storage, index_end);
        self.latch(removed)?;
        Ok(self.append_reply(AppendOutcome::Accepted { match_index }))
    }

    /// Truncates the entries at and after `index_end` (uncommitted: the
    /// caller checked `index_end > commit_end`), then restarts the log empty
    /// at `index_end`, recording the commit point with the new start.
    fn restart_log_at(&mut self, index_end: u64, last_term: u64) -> Result<()> {
        let cut = index_end.max(self.log.start_index());
        self.log
            .truncate_suffix(cut, &mut self.hard_state_store, &mut self.hard_state)?;
        self.hard_state.commit_end = index_end;
        self.log.restart_at(
            index_end,
            last_term,
            &mut self.hard_state_store,
            &mut self.hard_state,
        )
    }
}
