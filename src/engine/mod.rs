//! [`ControlPlaneNode`] and its two roles, [`DurableControlPlane`] and
//! [`ReplicaControlPlane`]: the consensus rules — terms, votes, leadership,
//! commit — on top of the hard state and the segmented log.

use std::marker::PhantomData;

mod applied_ahead;
mod backup;
mod compaction;
mod follower;
mod install;
mod leader;
mod opening;
mod outcome_board;
mod reads;
mod rebuild;
mod shared;
mod sole_voter;
mod unapplied;

pub(crate) use compaction::check_latest_snapshot;
pub use compaction::CompactionReport;
pub use follower::{AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, ConflictHint};
pub use install::InstallSnapshotRequest;
#[cfg(feature = "openraft")]
pub(crate) use opening::open_or_create_replica_hard_state;
pub use reads::PeerBatch;
pub use shared::SharedControlPlane;
pub use sole_voter::{Appended, AppendedBatch};

use crate::catalog::{ApplyOutcome, ControlPlaneCatalog};
use crate::codec::{decode_entry, encode_checked_entry};
#[cfg(doc)]
use crate::consensus::ControlPlaneConsensus;
use crate::consensus::{ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::error::{CorruptionKind, Error, InvalidInput, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::identity::ClusterVoterIdentity;
use crate::io::{OsStorage, Storage};
use crate::limits::{check_term, end_after, end_plus, next_term};
use crate::log::latch::Latch;
use crate::log::{CommitStamp, LogFile, RecoveryReport, SegmentedLog, TailSync, Ticket};
use crate::node_role::{Replica, Role, SoleVoter};
use applied_ahead::AppliedAhead;
use outcome_board::{Claim, OutcomeBoard};
use unapplied::UnappliedEntries;

/// One entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Where it is.
    pub index: ControlPlaneIndex,
    /// The term of the leader that wrote it.
    pub term: ControlPlaneTerm,
    /// The entry.
    pub entry: ControlPlaneEntry,
}

/// A candidate's request for this node's vote (Raft's RequestVote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRequest {
    /// The term the candidate stands in.
    pub term: ControlPlaneTerm,
    /// Who asks.
    pub candidate: ClusterVoterIdentity,
    /// The index of the candidate's last entry; `None` for an empty log.
    pub last_log_index: Option<ControlPlaneIndex>,
    /// The term of the candidate's last entry (`GENESIS` for an empty log).
    pub last_log_term: ControlPlaneTerm,
}

/// This node's answer to a [`VoteRequest`], durable before it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteResponse {
    /// This node's term after handling the request.
    pub term: ControlPlaneTerm,
    /// Whether the vote was granted.
    pub vote_granted: bool,
}

/// A durable control-plane node of role `R` on a data directory: the
/// shared durable core (hard state, segmented log, catalog, recovery) and
/// the rules of its role. The role is a type, so each handle exposes only
/// what its role can do: use it through [`DurableControlPlane`] (a sole
/// voter) or [`ReplicaControlPlane`] (one voter of a multi-node cluster).
/// Reads, votes, `observe_term`, compaction, backup, `failure` and
/// `recovery_report` are the same for both.
///
/// Every call that changes state returns only once the change is durable.
/// A storage failure is fail-stop: the error is latched (see
/// [`ControlPlaneNode::failure`]), the node steps down, and every later
/// change fails until the directory is reopened.
///
/// A replica's operations do not exist on a sole voter:
///
/// ```compile_fail
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let me = cpwal::ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
/// let mut node = cpwal::DurableControlPlane::create(dir.path(), me, Default::default())?;
/// node.become_leader(node.current_term())?; // a sole voter leads by its own vote
/// # Ok(())
/// # }
/// ```
///
/// nor does the sole voter's committing append on a replica:
///
/// ```compile_fail
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cpwal::{ClusterVoterIdentity, ControlPlaneEntry, MembershipChange};
/// let dir = tempfile::tempdir()?;
/// let me = ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
/// let mut node = cpwal::ReplicaControlPlane::create(dir.path(), me.clone(), Default::default())?;
/// node.try_append(&ControlPlaneEntry::MembershipChange(MembershipChange::Admit(me)))?;
/// # Ok(())
/// # }
/// ```
///
/// and a replica cannot stand where the seed's trait is expected:
///
/// ```compile_fail
/// fn supervise(_: &mut impl cpwal::ControlPlaneConsensus) {}
/// fn check(node: &mut cpwal::ReplicaControlPlane) {
///     supervise(node);
/// }
/// ```
#[derive(Debug)]
pub struct ControlPlaneNode<R: Role, S: Storage = OsStorage> {
    identity: ClusterVoterIdentity,
    hard_state_store: HardStateStore<LogFile<S>>,
    hard_state: HardState,
    log: SegmentedLog<S>,
    leader: Option<ClusterVoterIdentity>,
    commit_end: u64,
    /// The typed error of the last refused trait `append`; `None` after a
    /// success (see [`DurableControlPlane::last_append_error`]).
    last_append_error: Option<Error>,
    recovery: RecoveryReport,
    encode_buffer: Vec<u8>,
    /// The role, held by the type only.
    role: PhantomData<R>,
    /// The committed entries applied in order; `applied_end <= commit_end`,
    /// but for the entries in `applied_ahead` and, inside the sole voter's
    /// `&mut` append, its own (see `append_applying`).
    catalog: ControlPlaneCatalog,
    /// Reused per batch: each entry's term and span in `encode_buffer`.
    entry_spans: Vec<(u64, std::ops::Range<usize>)>,
    /// Reused by each single append of a sole voter, empty between calls:
    /// what applying its entry did, kept for the undo should its sync fail,
    /// so that a single append allocates nothing.
    single_outcome: Vec<ApplyOutcome>,
    /// A sole voter's entries written through [`SharedControlPlane`] and
    /// not yet applied, so the catalog applies them without a read back.
    unapplied: UnappliedEntries,
    /// Where the entries in `unapplied` are applied, their outcomes wait
    /// for the [`SharedControlPlane`] callers that wrote them.
    outcomes: std::sync::Arc<OutcomeBoard>,
    /// What a [`SharedControlPlane`]'s sync leader applied while the sync
    /// runs, not yet committed (empty outside a shared handle).
    applied_ahead: AppliedAhead,
}

/// A node that is its cluster's only voter: created as leader of term 1
/// with its own vote (like
/// [`SingleNodeControlPlane::bootstrap_leader`](crate::SingleNodeControlPlane::bootstrap_leader)),
/// every durable entry committed at once. After a restart it is leader
/// again in the same term if it holds its own vote for that term. It
/// implements [`ControlPlaneConsensus`].
pub type DurableControlPlane<S = OsStorage> = ControlPlaneNode<SoleVoter, S>;

/// A node that is one voter of a multi-node cluster. The voter set is the
/// caller's: it sends the requests, counts the votes and
/// acknowledgements, and tells the node what it learned
/// ([`ReplicaControlPlane::become_leader`],
/// [`ReplicaControlPlane::advance_commit`]). The engine keeps only what
/// must survive a crash, so it needs no copy of the voter set that could
/// disagree with the caller's.
///
/// Differences from a sole voter: a new node starts at term 0 with no vote
/// and no leader; holding its own vote never makes the node leader
/// (leadership is not durable: a restarted replica is a follower); appends
/// ([`ReplicaControlPlane::append_uncommitted`]) are durable but committed
/// only by [`ReplicaControlPlane::advance_commit`] or a leader's
/// [`ReplicaControlPlane::append_entries`]. It does not implement
/// [`ControlPlaneConsensus`], whose `append` returns a committed index;
/// the replicated implementor is `cpwal::raft::ReplicatedControlPlane`
/// (feature `openraft`).
pub type ReplicaControlPlane<S = OsStorage> = ControlPlaneNode<Replica, S>;

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Whether this node voted for itself in the current term, which makes a
    /// sole voter the leader.
    fn holds_own_vote(&self) -> bool {
        self.hard_state.vote.as_ref() == Some(&self.identity)
    }

    /// A node whose own vote is a majority leads the term it holds its own
    /// vote in; a replica waits for the caller's count
    /// ([`ReplicaControlPlane::become_leader`]).
    fn lead_if_own_vote_is_majority(&mut self) {
        if R::OWN_VOTE_IS_MAJORITY && self.holds_own_vote() {
            self.leader = Some(self.identity.clone());
        }
    }

    /// The current election term.
    pub fn current_term(&self) -> ControlPlaneTerm {
        ControlPlaneTerm(self.hard_state.term)
    }

    /// The leader of the current term, if this node knows one; none once a
    /// failure stopped the node.
    pub fn leader(&self) -> Option<ClusterVoterIdentity> {
        self.known_leader().cloned()
    }

    /// Whether this node is the leader of the current term.
    pub fn is_leader(&self) -> bool {
        self.known_leader() == Some(&self.identity)
    }

    /// The term and vote, as durable.
    pub fn durable_vote(&self) -> DurableVoteState {
        DurableVoteState {
            term: self.current_term(),
            voted_for: self.hard_state.vote.clone(),
        }
    }

    /// The index of the highest committed entry; `None` while nothing is
    /// committed.
    pub fn commit_index(&self) -> Option<ControlPlaneIndex> {
        self.commit_end.checked_sub(1).map(ControlPlaneIndex)
    }

    /// This node's identity.
    pub fn identity(&self) -> &ClusterVoterIdentity {
        &self.identity
    }

    /// The storage failure that stopped this handle, if any. Once set, every
    /// state change fails with [`Error::Failed`]; reopen to recover.
    pub fn failure(&self) -> Option<&Error> {
        self.latch().failure().map(|cause| &**cause)
    }

    /// What recovery found and repaired when this handle was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
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

    /// The term of the entry at `index`.
    pub fn term_at(&self, index: ControlPlaneIndex) -> Result<ControlPlaneTerm> {
        self.log.term_at(index.0).map(ControlPlaneTerm)
    }

    /// Reads the entry at `index`, re-verifying its checksum.
    pub fn read(&self, index: ControlPlaneIndex) -> Result<LogEntry> {
        read_entry(&self.log, index)
    }

    /// Reads the entries in `[from, to)`.
    pub fn read_range(
        &self,
        from: ControlPlaneIndex,
        to: ControlPlaneIndex,
    ) -> Result<Vec<LogEntry>> {
        (from.0..to.0)
            .map(|i| self.read(ControlPlaneIndex(i)))
            .collect()
    }

    /// Writes `entries` as the leader of the current term (see
    /// [`Self::write_unsynced`]) with one sync, and returns the indexes
    /// they received once all are durable.
    fn append_durably(&mut self, entries: &[ControlPlaneEntry]) -> Result<std::ops::Range<u64>> {
        let start = self.log.end_index();
        self.write_unsynced(entries)?;
        self.log.sync()?;
        Ok(start..self.log.end_index())
    }

    /// Validates, encodes and writes `entries` after the log's end as the
    /// leader of the current term, without syncing. Either every entry is
    /// written or, on a refusal, none is; a storage error is latched.
    pub(super) fn write_unsynced(&mut self, entries: &[ControlPlaneEntry]) -> Result<()> {
        self.check_leads()?;
        let term = self.hard_state.term;
        // A sole voter's records commit themselves once durable; a
        // replica's carry the commit point known when they were written.
        let stamp = if R::OWN_VOTE_IS_MAJORITY {
            CommitStamp::SelfCommitting
        } else {
            CommitStamp::Known(self.commit_end)
        };
        self.write_entries(entries.iter().map(|e| (term, e)), stamp)
    }

    /// [`Self::write_unsynced`], returning the index range written, the
    /// group-commit ticket that redeems it and, on a sole voter, the claim
    /// on what applying each entry did (which the sync that commits them
    /// posts to [`ControlPlaneNode::outcomes`]).
    fn write_batch_unsynced(
        &mut self,
        entries: &[ControlPlaneEntry],
    ) -> Result<(std::ops::Range<u64>, Ticket, Option<Claim>)> {
        let start = self.log.end_index();
        self.write_unsynced(entries)?;
        let written = start..self.log.end_index();
        let claim = if R::OWN_VOTE_IS_MAJORITY {
            // Committed by the sync that makes them durable, which applies
            // them from here; a rollover inside the write may have done so.
            self.unapplied.remember(start, entries);
            let claim = self.outcomes.expect(written.clone());
            self.commit_durable();
            Some(claim)
        } else {
            None
        };
        let ticket = self.log.ticket(written.clone());
        Ok((written, ticket, claim))
    }

    /// Records a group-commit sync that succeeded, then commits what it made
    /// durable (a sole voter).
    pub(super) fn finish_sync(&mut self, sync: &TailSync<LogFile<S>>) {
        self.log.mark_durable(sync);
        self.commit_durable();
    }

    /// A sole voter's durable entries are committed: its commit point
    /// follows the log's durable end and the catalog applies them. Called,
    /// under the lock that guards the engine, after anything that can make
    /// entries durable, before the lock is released: a group-commit waiter
    /// may return as soon as the log says its entries are durable, and
    /// whoever then looks finds them committed. A failure to apply stops the
    /// handle (`stop_on_failure`); callers read the latch.
    pub(super) fn commit_durable(&mut self) {
        if R::OWN_VOTE_IS_MAJORITY {
            self.commit_end = self.commit_end.max(self.log.durable_end());
            self.post_committed_ahead();
            let _ = self.apply_committed();
        }
    }

    /// Writes `(term, entry)` pairs after the end of the log with a single
    /// sync, each record stamped with `stamp`; returns once all are durable.
    /// Its caller (a follower's append) checks the entries before it
    /// truncates anything; encoding checks them once more.
    fn write_durably<'a>(
        &mut self,
        entries: impl Iterator<Item = (u64, &'a ControlPlaneEntry)>,
        stamp: CommitStamp,
    ) -> Result<()> {
        self.write_entries(entries, stamp)?;
        self.log.sync()
    }

    /// Checks and encodes every entry (each field checked once, see
    /// [`encode_checked_entry`]), then writes the `(term, entry)` pairs
    /// after the end of the log, in one `pwrite` per segment, without
    /// syncing. An invalid entry refuses the whole batch before anything
    /// reaches the log. A storage error is latched.
    fn write_entries<'a>(
        &mut self,
        entries: impl Iterator<Item = (u64, &'a ControlPlaneEntry)>,
        stamp: CommitStamp,
    ) -> Result<()> {
        self.encode_buffer.clear();
        self.entry_spans.clear();
        for (term, entry) in entries {
            let begin = self.encode_buffer.len();
            encode_checked_entry(entry, &mut self.encode_buffer)?;
            self.entry_spans
                .push((term, begin..self.encode_buffer.len()));
        }
        end_plus(self.log.end_index(), self.entry_spans.len())?;
        let buffer = std::mem::take(&mut self.encode_buffer);
        let spans = std::mem::take(&mut self.entry_spans);
        let payloads = spans
            .iter()
            .map(|(term, span)| (*term, &buffer[span.clone()]));
        let written = self.log.write(payloads, stamp);
        self.encode_buffer = buffer;
        self.entry_spans = spans;
        written
    }

    /// Applies every committed entry not yet applied to the catalog, in
    /// order: from group commit's in-memory copy when it holds the entry,
    /// otherwise read back with its checksum re-verified. A storage or
    /// decoding failure is latched. Open uses
    /// [`Self::apply_committed_at_open`] instead.
    fn apply_committed(&mut self) -> Result<()> {
        self.apply_committed_reporting(u64::MAX, |_| {})
    }

    /// [`Self::apply_committed`], handing `report` the outcome of each
    /// entry applied at `report_from` or later, in index order; the outcome
    /// of each one before goes to the board of [`SharedControlPlane`]
    /// writers (kept only if one waits for it).
    fn apply_committed_reporting(
        &mut self,
        report_from: u64,
        mut report: impl FnMut(ApplyOutcome),
    ) -> Result<()> {
        let board = std::sync::Arc::clone(&self.outcomes);
        let mut poster = None;
        while self.catalog.applied_end().0 < self.commit_end {
            let index = self.catalog.applied_end();
            let applied = match self.unapplied.take(index.0) {
                Some(entry) => self.catalog.apply_decoded(index, entry),
                None => {
                    let read = self.read(index);
                    let entry = self.stop_on_failure(read)?.entry;
                    self.catalog.apply(index, &entry)
                }
            };
            let outcome = self.stop_on_failure(applied)?;
            if index.0 >= report_from {
                report(outcome);
            } else {
                poster
                    .get_or_insert_with(|| board.poster())
                    .post(index.0, outcome);
            }
        }
        Ok(())
    }

    /// Applies `entries`, just written at `start` and committed, handing
    /// `report` what applying each did, in order: without reading them back
    /// when the catalog is exactly at `start`; otherwise (earlier committed
    /// entries not yet applied) through [`Self::apply_committed_reporting`].
    fn apply_in_hand(
        &mut self,
        start: u64,
        entries: &[ControlPlaneEntry],
        mut report: impl FnMut(ApplyOutcome),
    ) -> Result<()> {
        if self.catalog.applied_end().0 == start {
            for (offset, entry) in entries.iter().enumerate() {
                let applied = self
                    .catalog
                    .apply(ControlPlaneIndex(start + offset as u64), entry);
                report(self.stop_on_failure(applied)?);
            }
        }
        self.apply_committed_reporting(start, report)
    }

    /// The control-plane state: every committed entry applied in order.
    pub fn catalog(&self) -> &ControlPlaneCatalog {
        &self.catalog
    }

    /// One past the last index applied to [`ControlPlaneNode::catalog`];
    /// always equal to one past the commit index once a call returns.
    pub fn applied_end(&self) -> ControlPlaneIndex {
        self.catalog.applied_end()
    }

    /// Starts an election: moves to the next term and votes for itself,
    /// durably. As the sole voter it wins at once and leads the new term; a
    /// replica becomes a candidate (no leader known) until
    /// [`ReplicaControlPlane::become_leader`].
    ///
    /// A node at [`MAX_TERM`](crate::limits::MAX_TERM) has no next term: it
    /// refuses with [`InvalidInput::Term`] and changes nothing.
    pub fn start_election(&mut self) -> Result<ControlPlaneTerm> {
        self.check_not_failed()?;
        let next = HardState {
            term: next_term(self.hard_state.term)?,
            vote: Some(self.identity.clone()),
            ..self.hard_state.clone()
        };
        self.save_hard_state(next)?;
        // A sole voter's own vote is a majority; a replica is only a
        // candidate until the caller counts a quorum (`become_leader`).
        self.leader = None;
        self.lead_if_own_vote_is_majority();
        Ok(self.current_term())
    }

    /// Handles a vote request with Raft's rules, durably before returning:
    /// a stale term is refused; a higher term is adopted (stepping down);
    /// at most one candidate gets the vote in a term (asking again is
    /// idempotent); and only a candidate whose log is at least as up to date
    /// as this node's gets it.
    ///
    /// A request no honest candidate sends is refused with
    /// [`Error::InvalidInput`] before anything changes: a term above
    /// [`MAX_TERM`](crate::limits::MAX_TERM), a last log index above
    /// [`MAX_INDEX`](crate::limits::MAX_INDEX), a last log term above the
    /// candidate's term.
    pub fn grant_vote(&mut self, request: &VoteRequest) -> Result<VoteResponse> {
        self.check_not_failed()?;
        check_term(request.term)?;
        let candidate_end = end_after(request.last_log_index)?;
        let current = self.hard_state.term;
        if request.term.0 < current {
            return Ok(VoteResponse {
                term: ControlPlaneTerm(current),
                vote_granted: false,
            });
        }
        if request.last_log_term > request.term {
            return Err(InvalidInput::Term {
                term: request.last_log_term.0,
                reason: "a candidate's last entry cannot have a term above the candidate's own",
            }
            .into());
        }
        let mut next = self.hard_state.clone();
        if request.term.0 > current {
            next.term = request.term.0;
            next.vote = None;
        }
        let free_to_vote = next.vote.as_ref().is_none_or(|v| *v == request.candidate);
        let vote_granted = free_to_vote && self.is_up_to_date(request, candidate_end);
        if vote_granted {
            next.vote = Some(request.candidate.clone());
        }
        if next != self.hard_state {
            self.save_hard_state(next)?;
            if self.hard_state.term != current {
                self.leader = None;
            }
            self.lead_if_own_vote_is_majority();
        }
        Ok(VoteResponse {
            term: self.current_term(),
            vote_granted,
        })
    }

    /// Whether a candidate's log, ending at `candidate_end`, is at least as
    /// up to date as this node's: a later last term wins; with equal last
    /// terms, the longer log wins.
    fn is_up_to_date(&self, request: &VoteRequest, candidate_end: u64) -> bool {
        (request.last_log_term.0, candidate_end) >= (self.log.last_term(), self.log.end_index())
    }

    /// Adopts `term` if it is higher than the current one: the vote is
    /// cleared and the node steps down, durably. Returns whether it changed.
    /// A term above [`MAX_TERM`](crate::limits::MAX_TERM) is refused with
    /// [`InvalidInput::Term`] and changes nothing.
    pub fn observe_term(&mut self, term: ControlPlaneTerm) -> Result<bool> {
        self.check_not_failed()?;
        check_term(term)?;
        if term.0 <= self.hard_state.term {
            return Ok(false);
        }
        let next = HardState {
            term: term.0,
            vote: None,
            ..self.hard_state.clone()
        };
        self.save_hard_state(next)?;
        self.leader = None;
        Ok(true)
    }

    fn save_hard_state(&mut self, next: HardState) -> Result<()> {
        self.check_not_failed()?;
        self.hard_state_store.save(&next)?;
        self.hard_state = next;
        Ok(())
    }

    /// The leader this node follows or is; none once a failure stopped the
    /// node (it steps down: it can no longer make anything durable).
    fn known_leader(&self) -> Option<&ClusterVoterIdentity> {
        match self.failure() {
            Some(_) => None,
            None => self.leader.as_ref(),
        }
    }

    /// `Err(Error::Failed)` once the storage latch holds a failure.
    fn check_not_failed(&self) -> Result<()> {
        self.latch().check()
    }

    /// `Err(Error::Failed)` once a failure is latched, else
    /// `Err(Error::NotLeader)` unless this node leads the current term.
    ///
    /// The latch is read once: a sync failing on another thread latches
    /// without the engine lock, and a second read (as `is_leader` makes)
    /// could turn that failure into a refusal naming this very node as the
    /// leader. A failure latched after the read fails what the caller then
    /// writes, at its sync.
    fn check_leads(&self) -> Result<()> {
        self.check_not_failed()?;
        if self.leader.as_ref() != Some(&self.identity) {
            return Err(Error::NotLeader {
                leader: self.leader.clone(),
            });
        }
        Ok(())
    }

    /// The storage latch: the one record of whether this handle failed.
    fn latch(&self) -> &Latch {
        self.log.storage().latch()
    }

    /// Stops the handle on a failure to apply a committed entry (see
    /// [`Latch::stop`]); storage failures are latched already.
    fn stop_on_failure<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.latch().stop(error);
        }
        result
    }
}

/// Reads and decodes the entry at `index` of `log`, checksum re-verified; a
/// payload that does not decode is corruption at its record.
pub(crate) fn read_entry<S: Storage>(
    log: &SegmentedLog<S>,
    index: ControlPlaneIndex,
) -> Result<LogEntry> {
    let (term, payload) = log.read(index.0)?;
    let entry = decode_entry(&payload).map_err(|e| {
        let (path, offset) = log.location_of(index.0);
        let kind = CorruptionKind::UndecodableEntry(e);
        Error::corruption(path, offset, Some(index.0), kind)
    })?;
    Ok(LogEntry {
        index,
        term: ControlPlaneTerm(term),
        entry,
    })
}
