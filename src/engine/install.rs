//! Installing a snapshot received from a leader (Raft's InstallSnapshot),
//! for a follower that lags behind the leader's log start.

use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::{InvalidInput, Result};
use crate::identity::ClusterVoterIdentity;
use crate::io::Storage;
use crate::limits::check_term;
use crate::log::LogStart;
use crate::snapshot::{
    decode_snapshot, list_snapshots, remove_snapshots_below, snapshot_file_bytes, write_snapshot,
};

use super::{AppendEntriesResponse, AppendOutcome, ControlPlaneNode, ReplicaControlPlane};
use crate::node_role::Role;

/// A leader's snapshot, sent whole (control-plane catalogs are small; the
/// file is bounded by `MAX_SNAPSHOT_BODY_BYTES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: ControlPlaneTerm,
    /// The leader.
    pub leader: ClusterVoterIdentity,
    /// The bytes of the leader's snapshot file, from
    /// [`ControlPlaneNode::snapshot_for_peer`].
    pub snapshot: Vec<u8>,
}

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// The bytes of this node's newest snapshot file, to send to a peer
    /// that was told [`PeerBatch::SendSnapshot`](super::PeerBatch) (or to
    /// seed a new replica from a sole voter); `None` when there is no
    /// snapshot.
    pub fn snapshot_for_peer(&self) -> Result<Option<Vec<u8>>> {
        let storage = &**self.log.storage();
        match list_snapshots(storage)?.last() {
            Some(&index_end) => snapshot_file_bytes(storage, index_end).map(Some),
            None => Ok(None),
        }
    }
}

impl<S: Storage> ReplicaControlPlane<S> {
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
    /// term above [`MAX_TERM`](crate::limits::MAX_TERM), or a snapshot whose
    /// last term is above the leader's (no honest leader has one; installing
    /// it would make the next open refuse the directory as
    /// `TermAheadOfHardState`), is [`InvalidInput::Term`] (nothing changed);
    /// a storage failure is latched.
    pub fn install_snapshot(
        &mut self,
        request: &InstallSnapshotRequest,
    ) -> Result<AppendEntriesResponse> {
        self.check_not_failed()?;
        check_term(request.term)?;
        if request.term.0 < self.hard_state.term {
            return Ok(self.append_reply(AppendOutcome::StaleTerm));
        }
        let storage = std::sync::Arc::clone(self.log.storage());
        let snapshot = decode_snapshot(&request.snapshot, &storage.path_of("received-snapshot"))?;
        if snapshot.last_term > request.term.0 {
            return Err(InvalidInput::Term {
                term: snapshot.last_term,
                reason: "a leader's snapshot cannot end in a term above the leader's",
            }
            .into());
        }
        self.follow(request.term, &request.leader)?;
        let index_end = snapshot.index_end;
        let match_index = index_end.checked_sub(1).map(ControlPlaneIndex);
        if index_end <= self.commit_end {
            return Ok(self.append_reply(AppendOutcome::Accepted { match_index }));
        }
        let keeps_suffix = index_end <= self.log.end_index()
            && self.log.term_at(index_end - 1).ok() == Some(snapshot.last_term);
        if !keeps_suffix {
            // Before the snapshot is durable: a crash in between must not
            // leave a log that contradicts the snapshot under its end.
            self.truncate_uncommitted()?;
        }
        write_snapshot(&*storage, index_end, &request.snapshot)?;
        let start = LogStart {
            index: index_end,
            previous_term: snapshot.last_term,
        };
        // The snapshot's entries are committed: the floor is its end.
        let (store, state) = (&mut self.hard_state_store, &mut self.hard_state);
        if keeps_suffix {
            self.log.remove_prefix(start, index_end, store, state)?;
        } else {
            self.log.restart_at(start, index_end, store, state)?;
        }
        self.catalog = snapshot.catalog;
        self.commit_end = index_end;
        remove_snapshots_below(&*storage, index_end)?;
        Ok(self.append_reply(AppendOutcome::Accepted { match_index }))
    }

    /// Truncates every uncommitted entry (the caller checked
    /// `index_end > commit_end`; they may disagree with the snapshot). Done
    /// before the snapshot file is written, and cutting at the commit point
    /// rather than at `index_end`, so that a crash at any later step leaves
    /// a log that ends below the snapshot, which recovery recognises as an
    /// interrupted install, never one holding an entry that contradicts the
    /// snapshot under its end.
    fn truncate_uncommitted(&mut self) -> Result<()> {
        let cut = self.commit_end.max(self.log.start_index());
        self.log.truncate_suffix(
            cut,
            self.commit_end,
            &mut self.hard_state_store,
            &mut self.hard_state,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ControlPlaneCatalog;
    use crate::consensus::{ControlPlaneEntry, MembershipChange};
    use crate::io::{LockMode, OsStorage};
    use crate::snapshot::encode_snapshot;
    use crate::{AppendEntriesRequest, LogEntry};

    fn id(name: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(name).unwrap()
    }

    fn storage(dir: &std::path::Path) -> OsStorage {
        OsStorage::open(dir, LockMode::Exclusive).unwrap()
    }

    fn options() -> crate::Options {
        crate::Options::default().with_segment_size_bytes(4096)
    }

    fn create(dir: &std::path::Path) -> ReplicaControlPlane<OsStorage> {
        ReplicaControlPlane::create_with_storage(storage(dir), id("CN=f"), options()).unwrap()
    }

    fn reopen(dir: &std::path::Path) -> ReplicaControlPlane<OsStorage> {
        ReplicaControlPlane::open_with_storage(storage(dir), id("CN=f"), options()).unwrap()
    }

    fn admit(n: u64) -> ControlPlaneEntry {
        ControlPlaneEntry::MembershipChange(MembershipChange::Admit(id(&format!("CN=m{n}"))))
    }

    #[test]
    fn install_crash_after_truncation_never_keeps_a_contradicting_entry() {
        // Goal: a crash after an install wrote the snapshot and truncated the
        // conflicting log, but before the restart, reopens to the snapshot's
        // state: no entry that contradicts the snapshot stays under its end.
        // Method: a follower holds 30 term-1 entries, 2 committed; run the
        // install's first two steps (snapshot file, truncation at the cut
        // `truncate_uncommitted` uses) on the real files, drop the handle (the
        // crash), reopen.
        let dir = tempfile::tempdir().unwrap();
        let mut node = create(dir.path());
        let entries = (0..30)
            .map(|i| LogEntry {
                index: ControlPlaneIndex(i),
                term: ControlPlaneTerm(1),
                entry: admit(i),
            })
            .collect();
        let request = AppendEntriesRequest {
            term: ControlPlaneTerm(1),
            leader: id("CN=old"),
            prev_log_index: None,
            prev_log_term: ControlPlaneTerm(0),
            entries,
            leader_commit: Some(ControlPlaneIndex(1)),
        };
        node.append_entries(&request).unwrap();
        let mut catalog = ControlPlaneCatalog::new();
        for i in 0..20 {
            catalog
                .apply(ControlPlaneIndex(i), &admit(i + 100))
                .unwrap();
        }
        let bytes = encode_snapshot(&catalog, 2).unwrap();
        // The leader's term (>= the snapshot's last term) is adopted durably
        // before the snapshot is written, as `install_snapshot` does.
        node.observe_term(ControlPlaneTerm(2)).unwrap();
        let storage = std::sync::Arc::clone(node.log.storage());
        write_snapshot(&*storage, 20, &bytes).unwrap();
        drop(storage);
        let cut = node.commit_end.max(node.log.start_index());
        node.log
            .truncate_suffix(
                cut,
                node.commit_end,
                &mut node.hard_state_store,
                &mut node.hard_state,
            )
            .unwrap();
        drop(node);
        let node = reopen(dir.path());
        assert_eq!(node.catalog(), &catalog);
        assert_eq!(node.first_index(), ControlPlaneIndex(20));
        assert_eq!(node.last_index(), None);
        assert_eq!(
            node.term_at(ControlPlaneIndex(19)).unwrap(),
            ControlPlaneTerm(2)
        );
    }
}
