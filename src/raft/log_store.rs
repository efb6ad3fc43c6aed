//! [`CpwalLogStore`]: openraft's [`RaftLogStorage`] over cpwal's
//! [`SegmentedLog`] and hard state, in the `log/` directory of a node.
//!
//! * A log id is `(record term, record index)`; the payload is the
//!   [envelope](crate::raft::envelope).
//! * `save_vote` maps openraft's vote onto the hard state — term, voted-for
//!   identity (through the [`NodeRegistry`]) and the committed flag — and
//!   returns once both copies are synced.
//! * `append` writes the records under the lock, then hands a sync request
//!   to the [flusher](crate::raft::flusher); the `LogFlushed` callback fires
//!   only after the sync, and appends that arrive while a sync runs share
//!   the next one.
//! * `truncate` is [`SegmentedLog::truncate_suffix`]; `purge` is
//!   [`SegmentedLog::remove_prefix`] or, past the end,
//!   [`SegmentedLog::restart_at`]; both are durable on return and leave the
//!   log contiguous.
//! * `save_committed` records the commit point in the hard state, durably.
//!
//! All I/O here is synchronous and short (one `pwrite`, or the hard state's
//! two syncs); the long wait — the log sync — runs on the flusher thread.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, CommittedLeaderId, EntryPayload, LogId, RaftLogReader, StorageIOError, Vote,
};

use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::error::{Error, InvalidInput, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::identity::ClusterVoterIdentity;
use crate::io::{Access, LockMode, OsStorage, Storage};
use crate::limits::{check_term, end_after, end_plus};
use crate::log::{
    CommitStamp, LatchedStorage, LogFile, LogStart, RecoveryReport, SegmentedLog, SyncDescription,
    SyncOwner, TailSync, Ticket,
};
use crate::options::Options;
use crate::raft::envelope::{decode_payload, encode_payload, validate_payload};
use crate::raft::flusher::{FlushRequest, Flusher};
use crate::raft::node_id::{NodeId, NodeRegistry};
use crate::raft::types::{CpwalEntry, CpwalLogId, CpwalRaftConfig, CpwalStorageError, CpwalVote};

/// The log and the hard state, behind one lock shared with the flusher.
#[derive(Debug)]
pub(crate) struct LogShared<S: Storage> {
    pub(crate) log: SegmentedLog<S>,
    pub(crate) hard_state_store: HardStateStore<LogFile<S>>,
    pub(crate) hard_state: HardState,
}

impl<S: Storage> LogShared<S> {
    /// `Err(Error::Failed)` once the storage latch holds a failure.
    pub(crate) fn check_not_failed(&self) -> Result<()> {
        self.log.storage().latch().check()
    }

    fn save_hard_state(&mut self, next: HardState) -> Result<()> {
        self.check_not_failed()?;
        self.hard_state_store.save(&next)?;
        self.hard_state = next;
        Ok(())
    }

    /// The log id of the entry just before the log start, if any entry was
    /// ever purged.
    fn last_purged(&self) -> Option<CpwalLogId> {
        let start = self.log.start_index();
        let term = self.hard_state.log_start_previous_term;
        start.checked_sub(1).map(|index| log_id(term, index))
    }

    fn last_log_id(&self) -> Result<Option<CpwalLogId>> {
        let (start, end) = (self.log.start_index(), self.log.end_index());
        if end == start {
            return Ok(self.last_purged());
        }
        Ok(Some(log_id(self.log.term_at(end - 1)?, end - 1)))
    }

    fn read_entries(&self, from: u64, to: u64) -> Result<Vec<CpwalEntry>> {
        let from = from.max(self.log.start_index());
        let to = to.min(self.log.end_index());
        (from..to.max(from))
            .map(|index| {
                let (term, payload) = self.log.read(index)?;
                let payload = decode_payload(&payload).map_err(|e| {
                    let (path, offset) = self.log.location_of(index);
                    Error::corruption(
                        path,
                        offset,
                        Some(index),
                        crate::error::CorruptionKind::UndecodableEntry(e),
                    )
                })?;
                Ok(CpwalEntry {
                    log_id: log_id(term, index),
                    payload,
                })
            })
            .collect()
    }
}

/// `(term, index)` as an openraft log id.
pub(crate) fn log_id(term: u64, index: u64) -> CpwalLogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// openraft's error for a failed cpwal operation.
pub(crate) fn storage_error(
    make: impl FnOnce(AnyError) -> StorageIOError<NodeId>,
    error: &Error,
) -> CpwalStorageError {
    make(AnyError::new(error)).into()
}

fn read_error(error: Error) -> CpwalStorageError {
    storage_error(StorageIOError::read_logs, &error)
}

fn write_error(error: Error) -> CpwalStorageError {
    storage_error(StorageIOError::write_logs, &error)
}

/// The log half of a cpwal openraft node, over any [`Storage`] (the real
/// file system by default; a simulated disk in tests).
#[derive(Debug)]
pub struct CpwalLogStore<S: Storage = OsStorage> {
    shared: Arc<Mutex<LogShared<S>>>,
    flusher: Flusher,
    registry: NodeRegistry,
    encode_buffer: Vec<u8>,
    recovery: RecoveryReport,
}

/// How the flusher's group commit reaches the log: through the store's lock.
struct LockedLog<S: Storage>(Arc<Mutex<LogShared<S>>>);

impl<S: Storage> SyncOwner for LockedLog<S> {
    type Storage = S;

    fn begin_sync(&self, description: SyncDescription) -> Result<TailSync<LogFile<S>>> {
        lock(&self.0).log.tail_sync_handle(description)
    }

    fn end_sync(&self, sync: &TailSync<LogFile<S>>) {
        lock(&self.0).log.mark_durable(sync);
    }
}

/// A reader over the same log, for openraft's replication tasks.
#[derive(Debug)]
pub struct CpwalLogReader<S: Storage = OsStorage> {
    shared: Arc<Mutex<LogShared<S>>>,
}

impl<S: Storage> Clone for CpwalLogReader<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

fn lock<S: Storage>(shared: &Mutex<LogShared<S>>) -> MutexGuard<'_, LogShared<S>> {
    // A panic while holding the lock leaves the log as the panicking call
    // left it; the latched failure (if any) still guards it.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl CpwalLogStore<OsStorage> {
    /// Opens (creating it durably if needed, with any missing parent) the
    /// log directory `directory` of node `identity`, locking it and
    /// recovering from any crash. Votes name nodes through `registry`.
    pub fn open(
        directory: impl AsRef<Path>,
        identity: ClusterVoterIdentity,
        registry: NodeRegistry,
        options: Options,
    ) -> Result<Self> {
        options.validate()?;
        let storage = OsStorage::open(directory, LockMode::Exclusive)?;
        Self::open_with_storage(storage, identity, registry, options)
    }
}

impl<S: Storage> CpwalLogStore<S> {
    /// Opens the log directory `storage` (for a node on a simulated disk,
    /// the node's storage's [`Storage::open_subdirectory`] of
    /// [`LOG_DIRECTORY`](crate::raft::LOG_DIRECTORY)), as
    /// [`CpwalLogStore::open`] does.
    pub fn open_with_storage(
        storage: S,
        identity: ClusterVoterIdentity,
        registry: NodeRegistry,
        options: Options,
    ) -> Result<Self> {
        options.validate()?;
        let storage = Arc::new(LatchedStorage::new(storage));
        let (hard_state_store, hard_state) = open_or_create(&*storage, &identity)?;
        let (log, recovery) = SegmentedLog::open(
            storage,
            &hard_state,
            options.segment_size_bytes,
            Access::Writable,
            |payload| decode_payload(payload).map(drop),
        )?;
        log.group_commit()
            .set_second_sync_after(options.second_sync_after);
        let shared = Arc::new(Mutex::new(LogShared {
            log,
            hard_state_store,
            hard_state,
        }));
        let group = Arc::clone(lock(&shared).log.group_commit());
        let flusher = Flusher::start(LockedLog(Arc::clone(&shared)), group)?;
        Ok(Self {
            shared,
            flusher,
            registry,
            encode_buffer: Vec::new(),
            recovery,
        })
    }

    /// What opening this store found and repaired: a torn tail dropped
    /// (with its indexes), a truncation finished, leftover files removed,
    /// files cpwal does not own, permissions wider than the owner's — as
    /// [`DurableControlPlane::recovery_report`](crate::DurableControlPlane)
    /// reports them for the engine. A supervisor logs it at start.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// A reader sharing this store's log (and its view of the hard state).
    pub fn reader(&self) -> CpwalLogReader<S> {
        CpwalLogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The storage failure that stopped this store, if any.
    pub fn failure(&self) -> Option<Arc<Error>> {
        lock(&self.shared).log.storage().latch().failure().cloned()
    }

    fn vote_of(&self, state: &HardState) -> Result<Option<CpwalVote>> {
        if state.term == 0 && state.vote.is_none() {
            return Ok(None);
        }
        let voted_for = match &state.vote {
            None => None,
            Some(identity) => Some(self.registry.node_id_bound_to(identity).ok_or(
                Error::InvalidInput(InvalidInput::Option {
                    name: "vote",
                    reason: "the voted-for identity is not in the node registry",
                }),
            )?),
        };
        let mut vote = Vote::default();
        vote.leader_id.term = state.term;
        vote.leader_id.voted_for = voted_for;
        vote.committed = state.vote_committed;
        Ok(Some(vote))
    }

    /// Writes `entries` (without syncing) and returns the group-commit
    /// ticket that redeems them. Entries below the log start are skipped:
    /// they are covered by the snapshot, hence committed, hence (by log
    /// matching) equal to what was purged. openraft itself never sends
    /// them; its storage suite does.
    fn write_entries(&mut self, entries: Vec<CpwalEntry>) -> Result<Option<Ticket>> {
        let mut shared = lock(&self.shared);
        shared.check_not_failed()?;
        let start = shared.log.start_index();
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| e.log_id.index >= start)
            .collect();
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        check_entries(&entries)?;
        self.place_first_entry(&mut shared, first.log_id)?;
        self.encode_buffer.clear();
        let mut bounds = Vec::with_capacity(entries.len());
        for entry in &entries {
            let begin = self.encode_buffer.len();
            encode_payload(&entry.payload, &mut self.encode_buffer);
            bounds.push((entry.log_id.leader_id.term, begin, self.encode_buffer.len()));
            self.register_nodes(&entry.payload)?;
        }
        let buffer = &self.encode_buffer;
        let payloads = bounds.iter().map(|&(term, b, e)| (term, &buffer[b..e]));
        let stamp = CommitStamp::Known(shared.hard_state.commit_end);
        let start = shared.log.end_index();
        shared.log.write(payloads, stamp)?;
        Ok(Some(shared.log.ticket(start..shared.log.end_index())))
    }

    /// Checks that an append starts at the end of the log. openraft always
    /// appends there; only an empty log may be asked to start further on
    /// (openraft's storage suite does so), which restarts it at that index
    /// with the entry's own term standing for its unknown predecessor's.
    fn place_first_entry(&self, shared: &mut LogShared<S>, first: CpwalLogId) -> Result<()> {
        let end = shared.log.end_index();
        if first.index == end {
            return Ok(());
        }
        if first.index < end || shared.log.start_index() != end {
            return Err(hole(first.index));
        }
        let LogShared {
            log,
            hard_state_store,
            hard_state,
        } = shared;
        let start = LogStart {
            index: first.index,
            previous_term: first.leader_id.term,
        };
        log.restart_at(start, hard_state.commit_end, hard_state_store, hard_state)
    }

    fn register_nodes(&self, payload: &EntryPayload<CpwalRaftConfig>) -> Result<()> {
        if let EntryPayload::Membership(membership) = payload {
            register_membership(&self.registry, membership)?;
        }
        Ok(())
    }
}

/// Adds the named nodes of `membership` to `registry`.
pub(crate) fn register_membership(
    registry: &NodeRegistry,
    membership: &crate::raft::types::CpwalMembership,
) -> Result<()> {
    for (node_id, node) in membership.nodes() {
        if let Some(identity) = &node.identity {
            registry.bind(*node_id, identity).map_err(|_| {
                Error::InvalidInput(InvalidInput::Option {
                    name: "membership",
                    reason: "a node id is bound to another identity in the registry",
                })
            })?;
        }
    }
    Ok(())
}

/// Refuses, before anything changes, entries that cannot be stored: a
/// payload the envelope cannot carry, a term above `MAX_TERM`, indexes past
/// `MAX_INDEX` or not consecutive.
fn check_entries(entries: &[CpwalEntry]) -> Result<()> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    end_plus(first.log_id.index, entries.len())?;
    for (offset, entry) in entries.iter().enumerate() {
        validate_payload(&entry.payload)?;
        check_term(ControlPlaneTerm(entry.log_id.leader_id.term))?;
        if entry.log_id.index != first.log_id.index + offset as u64 {
            return Err(hole(entry.log_id.index));
        }
    }
    Ok(())
}

fn hole(index: u64) -> Error {
    InvalidInput::Index {
        index,
        reason: "an append must continue the log without a gap or overlap",
    }
    .into()
}

/// The raft store's hard state: a replica's (no term, no vote at creation),
/// with the engine's checks — identity, role, no re-bootstrap over a lost
/// hard state.
fn open_or_create<S: Storage>(
    storage: &LatchedStorage<S>,
    identity: &ClusterVoterIdentity,
) -> Result<(HardStateStore<LogFile<S>>, HardState)> {
    crate::engine::open_or_create_replica_hard_state(storage, identity)
}

fn range_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl<S: Storage> CpwalLogReader<S> {
    /// The durable vote state as cpwal types: term and voted-for identity.
    pub fn durable_vote(&self) -> DurableVoteState {
        lock(&self.shared).hard_state.durable_vote()
    }

    /// The index of the last entry in the local log (written, perhaps not
    /// yet committed); `None` for a log that never held an entry.
    pub fn last_index(&self) -> Option<ControlPlaneIndex> {
        let end = lock(&self.shared).log.end_index();
        end.checked_sub(1).map(ControlPlaneIndex)
    }
}

impl<S: Storage> RaftLogReader<CpwalRaftConfig> for CpwalLogReader<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<CpwalEntry>, CpwalStorageError> {
        read_range(&self.shared, &range)
    }
}

impl<S: Storage> RaftLogReader<CpwalRaftConfig> for CpwalLogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<CpwalEntry>, CpwalStorageError> {
        read_range(&self.shared, &range)
    }
}

/// The entries in `range`, for both the store and its readers.
#[allow(clippy::result_large_err)] // openraft's error type, as its trait returns it
fn read_range<S: Storage>(
    shared: &Mutex<LogShared<S>>,
    range: &impl RangeBounds<u64>,
) -> std::result::Result<Vec<CpwalEntry>, CpwalStorageError> {
    let (from, to) = range_bounds(range);
    lock(shared).read_entries(from, to).map_err(read_error)
}

impl<S: Storage> RaftLogStorage<CpwalRaftConfig> for CpwalLogStore<S> {
    type LogReader = CpwalLogReader<S>;

    async fn get_log_state(
        &mut self,
    ) -> std::result::Result<LogState<CpwalRaftConfig>, CpwalStorageError> {
        let shared = lock(&self.shared);
        Ok(LogState {
            last_purged_log_id: shared.last_purged(),
            last_log_id: shared.last_log_id().map_err(read_error)?,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        CpwalLogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Refuses (changing nothing) a term above
    /// [`MAX_TERM`](crate::limits::MAX_TERM) and a term below the saved one:
    /// openraft's votes only rise, so a lower term could only be a wrapped
    /// one, which would silently roll the node back.
    async fn save_vote(&mut self, vote: &CpwalVote) -> std::result::Result<(), CpwalStorageError> {
        let refuse = |error: InvalidInput| storage_error(StorageIOError::write_vote, &error.into());
        let term = check_term(ControlPlaneTerm(vote.leader_id.term)).map_err(refuse)?;
        let identity = match vote.leader_id.voted_for {
            None => None,
            Some(node_id) => Some(self.registry.identity_of(node_id).ok_or_else(|| {
                let error = Error::InvalidInput(InvalidInput::Option {
                    name: "vote",
                    reason: "the voted-for node id is not in the node registry",
                });
                storage_error(StorageIOError::write_vote, &error)
            })?),
        };
        let mut shared = lock(&self.shared);
        if term < shared.hard_state.term {
            return Err(refuse(InvalidInput::Term {
                term,
                reason: "a saved vote's term never goes back",
            }));
        }
        let next = HardState {
            term,
            vote: identity,
            vote_committed: vote.committed,
            ..shared.hard_state.clone()
        };
        shared
            .save_hard_state(next)
            .map_err(|e| storage_error(StorageIOError::write_vote, &e))
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<CpwalVote>, CpwalStorageError> {
        let state = lock(&self.shared).hard_state.clone();
        self.vote_of(&state)
            .map_err(|e| storage_error(StorageIOError::read_vote, &e))
    }

    async fn save_committed(
        &mut self,
        committed: Option<CpwalLogId>,
    ) -> std::result::Result<(), CpwalStorageError> {
        // Recorded no further than the local log reaches: after a snapshot
        // install openraft may commit past the log before purging it, and a
        // commit point beyond the log would make recovery report committed
        // entries missing. A lagging record is safe: openraft re-derives the
        // commit point from the state machine at startup.
        let mut shared = lock(&self.shared);
        let requested = committed.map_or(0, |id| id.index.saturating_add(1));
        let commit_end = requested.min(shared.log.end_index());
        if commit_end == shared.hard_state.commit_end {
            return Ok(());
        }
        let next = HardState {
            commit_end,
            ..shared.hard_state.clone()
        };
        shared.save_hard_state(next).map_err(write_error)
    }

    async fn read_committed(
        &mut self,
    ) -> std::result::Result<Option<CpwalLogId>, CpwalStorageError> {
        let shared = lock(&self.shared);
        let Some(index) = shared.hard_state.commit_end.checked_sub(1) else {
            return Ok(None);
        };
        if index + 1 < shared.log.start_index() {
            // Purged entries were applied, hence committed.
            return Ok(shared.last_purged());
        }
        let term = shared.log.term_at(index).map_err(read_error)?;
        Ok(Some(log_id(term, index)))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<CpwalRaftConfig>,
    ) -> std::result::Result<(), CpwalStorageError>
    where
        I: IntoIterator<Item = CpwalEntry> + Send,
        I::IntoIter: Send,
    {
        match self.write_entries(entries.into_iter().collect()) {
            Ok(Some(ticket)) => {
                self.flusher.request(FlushRequest { ticket, callback });
                Ok(())
            }
            Ok(None) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => Err(write_error(error)),
        }
    }

    async fn truncate(&mut self, log_id: CpwalLogId) -> std::result::Result<(), CpwalStorageError> {
        let mut shared = lock(&self.shared);
        shared.check_not_failed().map_err(write_error)?;
        let LogShared {
            log,
            hard_state_store,
            hard_state,
        } = &mut *shared;
        // openraft records its commit point itself (`save_committed`): the
        // floor is the one on record.
        let floor = hard_state.commit_end;
        log.truncate_suffix(log_id.index, floor, hard_state_store, hard_state)
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: CpwalLogId) -> std::result::Result<(), CpwalStorageError> {
        let refuse = |e: InvalidInput| write_error(e.into());
        let new_start = end_after(Some(ControlPlaneIndex(log_id.index))).map_err(refuse)?;
        check_term(ControlPlaneTerm(log_id.leader_id.term)).map_err(refuse)?;
        let mut shared = lock(&self.shared);
        shared.check_not_failed().map_err(write_error)?;
        let start = LogStart {
            index: new_start,
            previous_term: log_id.leader_id.term,
        };
        let LogShared {
            log,
            hard_state_store,
            hard_state,
        } = &mut *shared;
        let floor = hard_state.commit_end;
        let purged = if start.index <= log.end_index() {
            log.remove_prefix(start, floor, hard_state_store, hard_state)
        } else {
            log.restart_at(start, floor, hard_state_store, hard_state)
        };
        purged.map_err(write_error)
    }
}
