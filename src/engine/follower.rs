//! The follower side of replication: Raft's AppendEntries, durably.
//!
//! Order of effects in [`ReplicaControlPlane::append_entries`], each durable
//! before the next starts:
//! 1. a higher term is adopted (hard state: term, no vote);
//! 2. a conflicting suffix is truncated (G4: hard state marks it removed,
//!    then the records are zeroed and synced) — never below the commit point;
//! 3. the new entries are written with one sync, each record stamped with the
//!    new commit point, so the commit knowledge is durable with them;
//! 4. a commit advance that wrote no record goes to the hard state.
//!
//! The reply is built only after the last of these returned, so everything
//! it claims survives a crash.

use crate::codec::validate_entry;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::{Error, InvalidInput, ReplicationError, Result};
use crate::hard_state::HardState;
use crate::identity::ClusterVoterIdentity;
use crate::io::Storage;
use crate::limits::{check_term, end_after, end_plus};
use crate::log::CommitStamp;

use super::{LogEntry, ReplicaControlPlane};

/// A leader's AppendEntries request (also its heartbeat, with no entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEntriesRequest {
    /// The leader's term.
    pub term: ControlPlaneTerm,
    /// The leader.
    pub leader: ClusterVoterIdentity,
    /// The index just before `entries`; `None` when they start at index 0.
    pub prev_log_index: Option<ControlPlaneIndex>,
    /// The term of `prev_log_index` (ignored when it is `None`).
    pub prev_log_term: ControlPlaneTerm,
    /// The entries, at consecutive indexes from `prev_log_index + 1`, with
    /// non-decreasing terms no higher than `term`.
    pub entries: Vec<LogEntry>,
    /// The leader's commit index; `None` while nothing is committed.
    pub leader_commit: Option<ControlPlaneIndex>,
}

/// This node's answer to an [`AppendEntriesRequest`]; everything it claims is
/// durable when it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEntriesResponse {
    /// This node's term after handling the request.
    pub term: ControlPlaneTerm,
    /// What happened.
    pub outcome: AppendOutcome,
}

/// The result of an AppendEntries request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The log matches the leader's through `match_index` (the last entry of
    /// the request, or `prev_log_index` for a heartbeat); `None` for an
    /// empty prefix.
    Accepted {
        /// The highest index known to match the leader's log.
        match_index: Option<ControlPlaneIndex>,
    },
    /// The leader's term is older than this node's: it must step down.
    StaleTerm,
    /// The log does not hold `prev_log_index` with `prev_log_term`.
    Mismatch(ConflictHint),
}

/// Where the leader should retry after a mismatch (the "fast backup" of the
/// Raft thesis, §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictHint {
    /// The term this node holds at `prev_log_index`; `None` when its log is
    /// too short to hold that index.
    pub conflict_term: Option<ControlPlaneTerm>,
    /// With `conflict_term`: the first index this node holds in that term.
    /// Without: the end of this node's log. A leader that has no entry of
    /// `conflict_term` retries with `next_index = first_index`; one that has
    /// retries just after its own last entry of that term.
    pub first_index: ControlPlaneIndex,
}

impl<S: Storage> ReplicaControlPlane<S> {
    /// Handles a leader's AppendEntries with Raft's rules (see the module
    /// documentation for the order of durable effects).
    ///
    /// Errors: [`Error::InvalidInput`] for a malformed request, including
    /// a term above [`MAX_TERM`](crate::limits::MAX_TERM) or an index above
    /// [`MAX_INDEX`](crate::limits::MAX_INDEX) (nothing changed, the term
    /// not adopted); [`Error::Replication`] when obeying would break safety
    /// — a second leader in this term, or a conflict at a committed index;
    /// a storage error otherwise (latched).
    pub fn append_entries(
        &mut self,
        request: &AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse> {
        self.check_not_failed()?;
        let bounds = check_request_shape(request)?;
        if request.term.0 < self.hard_state.term {
            return Ok(self.append_reply(AppendOutcome::StaleTerm));
        }
        self.follow(request.term, &request.leader)?;
        let prev_end = bounds.prev_end;
        if let Some(hint) = self.mismatch_at(prev_end, request.prev_log_term)? {
            return Ok(self.append_reply(AppendOutcome::Mismatch(hint)));
        }
        let first_new = self.skip_matching(&request.entries)?;
        let last_new_end = bounds.last_new_end;
        let commit_end = self
            .commit_end
            .max(bounds.leader_commit_end.min(last_new_end));
        let new_entries = &request.entries[first_new..];
        if !new_entries.is_empty() {
            let pairs = new_entries.iter().map(|e| (e.term.0, &e.entry));
            self.write_durably(pairs, CommitStamp::Known(commit_end))?;
        } else if commit_end > self.commit_end {
            self.persist_commit_end(commit_end)?;
        }
        self.commit_end = commit_end;
        self.apply_committed()?;
        let match_index = last_new_end.checked_sub(1).map(ControlPlaneIndex);
        Ok(self.append_reply(AppendOutcome::Accepted { match_index }))
    }

    pub(super) fn append_reply(&self, outcome: AppendOutcome) -> AppendEntriesResponse {
        AppendEntriesResponse {
            term: self.current_term_value(),
            outcome,
        }
    }

    fn current_term_value(&self) -> ControlPlaneTerm {
        ControlPlaneTerm(self.hard_state.term)
    }

    /// Recognises the request's leader: a higher term is adopted durably
    /// (vote cleared); in the same term a different leader than the one
    /// already known is a safety violation.
    pub(super) fn follow(
        &mut self,
        term: ControlPlaneTerm,
        leader: &ClusterVoterIdentity,
    ) -> Result<()> {
        // A follower's log may be truncated and rewritten by the leader:
        // entries remembered as this node's own may no longer be the log's.
        self.unapplied.clear();
        if term.0 > self.hard_state.term {
            let next = HardState {
                term: term.0,
                vote: None,
                ..self.hard_state.clone()
            };
            self.save_hard_state(next)?;
        } else if let Some(known) = &self.leader {
            if known != leader {
                return Err(Error::Replication(ReplicationError::ConflictingLeader {
                    term: self.hard_state.term,
                    known: known.clone(),
                    claimed: leader.clone(),
                }));
            }
        }
        self.leader = Some(leader.clone());
        Ok(())
    }

    /// Raft's log-matching check on the entry before the request's entries
    /// (`prev_end - 1`); `None` when it matches. An index below the log start
    /// matches: compacted entries are committed, and committed entries agree
    /// with every later leader's log.
    fn mismatch_at(
        &self,
        prev_end: u64,
        prev_term: ControlPlaneTerm,
    ) -> Result<Option<ConflictHint>> {
        let end = self.log.end_index();
        if prev_end > end {
            return Ok(Some(ConflictHint {
                conflict_term: None,
                first_index: ControlPlaneIndex(end),
            }));
        }
        if prev_end == 0 || prev_end < self.log.start_index() {
            return Ok(None);
        }
        let held = self.log.term_at(prev_end - 1)?;
        if held == prev_term.0 {
            return Ok(None);
        }
        Ok(Some(ConflictHint {
            conflict_term: Some(ControlPlaneTerm(held)),
            first_index: ControlPlaneIndex(self.first_index_of_term(held, prev_end - 1)?),
        }))
    }

    /// The first index in `[log start, at]` whose term is `term`, given that
    /// `at` has it (terms never decrease along the log).
    fn first_index_of_term(&self, term: u64, at: u64) -> Result<u64> {
        let (mut low, mut high) = (self.log.start_index(), at);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.log.term_at(middle)? < term {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Skips the entries the log already holds with the same term (a replay)
    /// and truncates at the first conflicting one, durably. Returns the
    /// position in `entries` of the first entry still to write.
    fn skip_matching(&mut self, entries: &[LogEntry]) -> Result<usize> {
        for (position, entry) in entries.iter().enumerate() {
            let index = entry.index.0;
            if index < self.log.start_index() {
                continue;
            }
            if index >= self.log.end_index() {
                return Ok(position);
            }
            if self.log.term_at(index)? == entry.term.0 {
                continue;
            }
            if index < self.commit_end {
                return Err(Error::Replication(ReplicationError::TruncatesCommitted {
                    index,
                    commit_end: self.commit_end,
                }));
            }
            // The removed records may be the only ones carrying the commit
            // point (stamped by an earlier call); the truncation's hard-state
            // save carries it instead, at no extra sync.
            self.log.truncate_suffix(
                index,
                self.commit_end,
                &mut self.hard_state_store,
                &mut self.hard_state,
            )?;
            return Ok(position);
        }
        Ok(entries.len())
    }

    /// Makes `commit_end` durable in the hard state (for a commit advance
    /// that writes no record to carry it).
    pub(super) fn persist_commit_end(&mut self, commit_end: u64) -> Result<()> {
        let next = HardState {
            commit_end,
            ..self.hard_state.clone()
        };
        self.save_hard_state(next)
    }
}

/// The "one past" positions an [`AppendEntriesRequest`] names, each at most
/// [`MAX_END`](crate::limits::MAX_END).
struct RequestBounds {
    /// One past `prev_log_index` (0 for `None`): where the entries start.
    prev_end: u64,
    /// One past the request's last entry.
    last_new_end: u64,
    /// One past `leader_commit` (0 for `None`).
    leader_commit_end: u64,
}

/// Refuses, before anything changes, a request no honest leader sends: a
/// term above `MAX_TERM`; an index above `MAX_INDEX` (`prev_log_index`,
/// `leader_commit`, or entries running past it); entries not at
/// consecutive indexes after `prev_log_index`, with decreasing terms or
/// terms above the leader's, or that cannot be stored. (A previous term
/// above the leader's needs no rule: it never matches this node's log, so
/// the request is answered `Mismatch`.)
fn check_request_shape(request: &AppendEntriesRequest) -> Result<RequestBounds> {
    check_term(request.term)?;
    let prev_end = end_after(request.prev_log_index)?;
    let leader_commit_end = end_after(request.leader_commit)?;
    let last_new_end = end_plus(prev_end, request.entries.len())?;
    let mut previous_term = 0;
    for (position, entry) in request.entries.iter().enumerate() {
        let reason = if entry.index.0 != prev_end + position as u64 {
            "entries must follow prev_log_index at consecutive indexes"
        } else if entry.term < ControlPlaneTerm(previous_term) || entry.term > request.term {
            "entry terms must not decrease nor exceed the leader's term"
        } else {
            validate_entry(&entry.entry)?;
            previous_term = entry.term.0;
            continue;
        };
        return Err(InvalidInput::Index {
            index: entry.index.0,
            reason,
        }
        .into());
    }
    Ok(RequestBounds {
        prev_end,
        last_new_end,
        leader_commit_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::ControlPlaneEntry;
    use crate::io::OsStorage;
    use crate::MembershipChange;

    fn entry(index: u64, term: u64) -> LogEntry {
        let name = format!("CN=m-{index}-{term}");
        LogEntry {
            index: ControlPlaneIndex(index),
            term: ControlPlaneTerm(term),
            entry: ControlPlaneEntry::MembershipChange(MembershipChange::Admit(
                ClusterVoterIdentity::from_certificate_subject(&name).unwrap(),
            )),
        }
    }

    fn request(
        term: u64,
        prev: Option<u64>,
        prev_term: u64,
        entries: Vec<LogEntry>,
        commit: Option<u64>,
    ) -> AppendEntriesRequest {
        AppendEntriesRequest {
            term: ControlPlaneTerm(term),
            leader: ClusterVoterIdentity::from_certificate_subject(&format!("CN=leader-{term}"))
                .unwrap(),
            prev_log_index: prev.map(ControlPlaneIndex),
            prev_log_term: ControlPlaneTerm(prev_term),
            entries,
            leader_commit: commit.map(ControlPlaneIndex),
        }
    }

    fn storage(dir: &std::path::Path) -> OsStorage {
        OsStorage::open(dir, crate::io::LockMode::Exclusive).unwrap()
    }

    fn identity() -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject("CN=f").unwrap()
    }

    fn create(dir: &std::path::Path) -> ReplicaControlPlane<OsStorage> {
        let options = crate::Options::default();
        ReplicaControlPlane::create_with_storage(storage(dir), identity(), options).unwrap()
    }

    fn reopen(dir: &std::path::Path) -> ReplicaControlPlane<OsStorage> {
        let options = crate::Options::default();
        ReplicaControlPlane::open_with_storage(storage(dir), identity(), options).unwrap()
    }

    #[test]
    fn truncation_crash_before_write_keeps_acknowledged_commit() {
        // Goal: G3 commit never regresses — when the only records carrying
        // the commit point are truncated and the node crashes before the new
        // entries are written, the commit point survives. Method: commit 4
        // through a record at index 4 only, then run only the truncation step of a
        // conflicting request (the on-disk state a crash right after it
        // leaves), drop the handle and reopen.
        let dir = tempfile::tempdir().unwrap();
        let mut node = create(dir.path());
        let first: Vec<_> = (0..4).map(|i| entry(i, 1)).collect();
        node.append_entries(&request(1, None, 0, first, Some(1)))
            .unwrap();
        // Commit 4 (leader commit 3) is stamped only on the record at 4.
        node.append_entries(&request(1, Some(3), 1, vec![entry(4, 1)], Some(3)))
            .unwrap();
        assert_eq!(node.commit_end, 4);
        let leader = ClusterVoterIdentity::from_certificate_subject("CN=leader-2").unwrap();
        node.follow(ControlPlaneTerm(2), &leader).unwrap();
        assert_eq!(node.skip_matching(&[entry(4, 2)]).unwrap(), 0);
        drop(node);
        let node = reopen(dir.path());
        assert_eq!(node.last_index(), Some(ControlPlaneIndex(3)));
        assert_eq!(node.commit_end, 4, "the acknowledged commit regressed");
    }
}
