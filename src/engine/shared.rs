//! [`SharedControlPlane`]: a cloneable, thread-safe handle through which
//! many threads append at once, sharing syncs through the log's one group
//! commit ([`crate::log::GroupCommit`], where the protocol and its safety
//! argument live).
//!
//! What this handle adds to it:
//! * **Order.** Indexes are assigned under the engine lock, so a call that
//!   starts after another returned gets a higher index.
//! * **Commit.** On a sole voter an entry is committed when it is durable:
//!   under the engine lock, whatever makes entries durable (the group's
//!   sync, a rollover inside a write, `with_engine`'s sync) moves the commit
//!   point to the log's durable end, never to its written end, and the
//!   catalog applies what became committed, before the lock is released.
//!   The sync's leader applies the entries its sync covers while the disk
//!   writes them, hidden until they are committed (see
//!   [`super::applied_ahead`]). On
//!   a replica the handle only makes entries durable; commit waits for
//!   [`ReplicaControlPlane::advance_commit`], and entries a leader's
//!   [`ReplicaControlPlane::append_entries`] truncates (through
//!   [`SharedControlPlane::with_engine`]) while their sync is in flight
//!   come back as [`Error::Truncated`](crate::Error::Truncated), never `Ok`.
//! * **Outcomes.** On a sole voter each call gets back what applying its
//!   own entries did, though the thread that recorded their sync applied
//!   them (see [`super::outcome_board`]).
//! * **Fail-stop.** A failed sync is latched by the storage; the node steps
//!   down and every caller whose entries it did not cover fails.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::{ApplyOutcome, ControlPlaneCatalog};
use crate::consensus::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, DurableVoteState,
};
use crate::error::{Error, InvalidInput, Result};
use crate::identity::ClusterVoterIdentity;
use crate::io::{OsStorage, Storage};
use crate::log::{GroupCommit, LogFile, SyncDescription, SyncOwner, TailSync};
use crate::node_role::{Replica, Role, SoleVoter};

use super::outcome_board::Claim;
use super::sole_voter::{trait_answer, unreported};
use super::{Appended, AppendedBatch, ControlPlaneNode, LogEntry};
#[cfg(doc)]
use super::{DurableControlPlane, ReplicaControlPlane};

/// A cloneable handle on a [`ControlPlaneNode`] of role `R` (by default a
/// [`DurableControlPlane`]) shared by many threads, whose appends share
/// syncs (group commit). Every append returns only once its own entries
/// are durable (and, on a sole voter, committed). Its reads (term, leader,
/// commit index, `read`, `read_range`, `term_at`, `with_catalog`) do not
/// sync; a sole voter's handle implements [`ControlPlaneConsensus`], each
/// thread appending through its own clone.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cpwal::{ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneIndex};
/// use cpwal::{DurableControlPlane, MembershipChange, Options, SharedControlPlane};
///
/// /// The supervisor's code, written against the seed's trait.
/// fn admit(consensus: &mut impl ControlPlaneConsensus, n: usize) -> Option<ControlPlaneIndex> {
///     let member = ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{n}")).ok()?;
///     let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
///     consensus.append(entry).ok()
/// }
///
/// let dir = tempfile::tempdir()?;
/// let me = ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
/// let shared = SharedControlPlane::new(DurableControlPlane::create(dir.path(), me, Options::default())?);
/// let workers: Vec<_> = (0..4)
///     .map(|n| {
///         let mut mine = shared.clone();
///         std::thread::spawn(move || admit(&mut mine, n))
///     })
///     .collect();
/// for worker in workers {
///     assert!(worker.join().expect("no panic").is_some());
/// }
/// assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(3)));
/// assert_eq!(shared.with_catalog(|c| c.members().len()), 4);
/// # Ok(())
/// # }
/// ```
///
/// A replica's handle makes entries durable but cannot commit them (its
/// caller's quorum does), so it has no committing append that would
/// report an outcome; its appends are `append_uncommitted` and
/// `append_uncommitted_batch`:
///
/// ```compile_fail
/// fn append(shared: &cpwal::SharedControlPlane<cpwal::Replica>, entry: &cpwal::ControlPlaneEntry) {
///     let _ = shared.try_append(entry);
/// }
/// ```
///
/// ```
/// fn append(shared: &cpwal::SharedControlPlane<cpwal::Replica>, entry: &cpwal::ControlPlaneEntry) {
///     let _ = shared.append_uncommitted(entry);
/// }
/// ```
pub struct SharedControlPlane<R: Role = SoleVoter, S: Storage = OsStorage> {
    inner: Arc<Inner<R, S>>,
    /// The typed error of this handle's last refused trait `append` (each
    /// clone keeps its own: a thread sees its own calls' errors only).
    last_append_error: Option<Error>,
}

impl<R: Role, S: Storage> std::fmt::Debug for SharedControlPlane<R, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedControlPlane")
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

impl<R: Role, S: Storage> Clone for SharedControlPlane<R, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            last_append_error: None,
        }
    }
}

struct Inner<R: Role, S: Storage> {
    engine: Mutex<ControlPlaneNode<R, S>>,
    /// The engine's log's group commit, reached without the engine lock.
    group: Arc<GroupCommit>,
    /// The node's identity (it never changes), reached without the lock.
    identity: ClusterVoterIdentity,
}

impl<R: Role, S: Storage> Inner<R, S> {
    /// The engine lock. A panic while it was held (a bug, never a storage
    /// fault) does not leave the log half updated in a way later callers
    /// could misread: a storage error inside any write path is latched
    /// before it returns, so the poisoned state is used as is.
    fn lock_engine(&self) -> MutexGuard<'_, ControlPlaneNode<R, S>> {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<R: Role, S: Storage> SyncOwner for Inner<R, S> {
    type Storage = S;

    fn begin_sync(&self, description: SyncDescription) -> Result<TailSync<LogFile<S>>> {
        self.lock_engine().begin_sync_applying_ahead(description)
    }

    fn end_sync(&self, sync: &TailSync<LogFile<S>>) {
        self.lock_engine().finish_sync(sync);
    }
}

impl<R: Role, S: Storage> SharedControlPlane<R, S> {
    /// Wraps an open engine. Use [`SharedControlPlane::into_inner`] to get it
    /// back once every other clone is dropped.
    pub fn new(engine: ControlPlaneNode<R, S>) -> Self {
        let group = Arc::clone(engine.log.group_commit());
        Self {
            inner: Arc::new(Inner {
                identity: engine.identity.clone(),
                engine: Mutex::new(engine),
                group,
            }),
            last_append_error: None,
        }
    }

    /// Writes `entries` under the engine lock, then waits without it until
    /// they are durable (on a sole voter, committed and applied too),
    /// leading a sync if none is in flight. Returns their indexes and, on a
    /// sole voter, the claim on what applying each did.
    fn write_and_wait(&self, entries: &[ControlPlaneEntry]) -> Result<(Range<u64>, Option<Claim>)> {
        let (written, ticket, claim) = self.lock_engine().write_batch_unsynced(entries)?;
        self.inner.group.wait(&ticket, &*self.inner)?;
        Ok((written, claim))
    }

    /// Runs `f` with exclusive access to the engine (votes, elections, a
    /// leader's requests, compaction) after making every entry written so
    /// far durable, so the engine it sees holds no unsynced entry, and
    /// returns what `f` returns: a failure of the sync or of `f` alike is
    /// the one error. `f` must not use this handle (or a clone): the engine
    /// lock is held while it runs, so that would deadlock. Whatever `f`
    /// changes in the log reaches the waiting callers through the log
    /// itself. For reads, the handle's own reads are cheaper: they do not
    /// sync.
    pub fn with_engine<T>(
        &self,
        f: impl FnOnce(&mut ControlPlaneNode<R, S>) -> Result<T>,
    ) -> Result<T> {
        let mut engine = self.lock_engine();
        engine.check_not_failed()?;
        engine.log.sync()?;
        engine.commit_durable();
        f(&mut engine)
    }

    /// The current term. Does not sync (nor does any read of this handle).
    pub fn current_term(&self) -> ControlPlaneTerm {
        self.lock_engine().current_term()
    }

    /// The leader of the current term, if known; none once a failure
    /// stopped the node.
    pub fn leader(&self) -> Option<ClusterVoterIdentity> {
        self.lock_engine().leader()
    }

    /// Whether this node leads the current term.
    pub fn is_leader(&self) -> bool {
        self.lock_engine().is_leader()
    }

    /// The term and vote, as durable.
    pub fn durable_vote(&self) -> DurableVoteState {
        self.lock_engine().durable_vote()
    }

    /// The storage failure that stopped the node, if any: every later
    /// append (and `with_engine`) fails with [`Error::Failed`].
    pub fn failure(&self) -> Option<Error> {
        self.lock_engine().failure().cloned()
    }

    /// Reads the entry at `index`, checksum re-verified. Only a durable
    /// entry is served: one written by a call still waiting for its sync
    /// is refused ([`InvalidInput::Index`]), so a read never shows an
    /// entry a crash could take back; an index past the log is
    /// [`Error::NotFound`].
    pub fn read(&self, index: ControlPlaneIndex) -> Result<LogEntry> {
        let engine = self.lock_engine();
        check_durable(&engine, index)?;
        engine.read(index)
    }

    /// Reads the entries in `[from, to)`, each durable (see
    /// [`SharedControlPlane::read`]), under one lock.
    pub fn read_range(
        &self,
        from: ControlPlaneIndex,
        to: ControlPlaneIndex,
    ) -> Result<Vec<LogEntry>> {
        let engine = self.lock_engine();
        if to > from {
            check_durable(&engine, ControlPlaneIndex(to.0 - 1))?;
        }
        engine.read_range(from, to)
    }

    /// The term of the durable entry at `index`.
    pub fn term_at(&self, index: ControlPlaneIndex) -> Result<ControlPlaneTerm> {
        let engine = self.lock_engine();
        check_durable(&engine, index)?;
        engine.term_at(index)
    }

    /// Runs `f` on the catalog (every committed entry applied in order)
    /// under the engine lock, without syncing: keep `f` short, appends wait
    /// for it. Clone what must outlive the call. It never waits for the
    /// disk: entries a sync in flight covers that were applied ahead of it
    /// are taken back first, and applied again when the sync ends.
    pub fn with_catalog<T>(&self, f: impl FnOnce(&ControlPlaneCatalog) -> T) -> T {
        let mut engine = self.lock_engine();
        engine.cancel_applied_ahead();
        f(engine.catalog())
    }

    /// The commit point now: on a sole voter, the last entry known durable.
    /// Entries written but still waiting for their sync are not committed.
    /// Does not sync.
    pub fn commit_index(&self) -> Option<ControlPlaneIndex> {
        self.lock_engine().commit_index()
    }

    /// The last index written, durable or not: entries after
    /// [`SharedControlPlane::commit_index`] are waiting for their sync (and
    /// may still be in the write buffer). Does not sync.
    pub fn last_written_index(&self) -> Option<ControlPlaneIndex> {
        self.lock_engine().last_index()
    }

    /// The engine back, if this is the last handle.
    pub fn into_inner(self) -> std::result::Result<ControlPlaneNode<R, S>, Self> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let mut engine = inner.engine.into_inner().unwrap_or_else(|p| p.into_inner());
                engine.cancel_applied_ahead();
                Ok(engine)
            }
            Err(inner) => Err(Self {
                inner,
                last_append_error: self.last_append_error,
            }),
        }
    }

    fn lock_engine(&self) -> MutexGuard<'_, ControlPlaneNode<R, S>> {
        self.inner.lock_engine()
    }
}

impl<S: Storage> SharedControlPlane<Replica, S> {
    /// Appends `entry` as the leader of the current term and returns its
    /// index once it is durable, as
    /// [`ReplicaControlPlane::append_uncommitted`]: committed only when the
    /// caller's quorum says so ([`ReplicaControlPlane::advance_commit`],
    /// through [`SharedControlPlane::with_engine`]).
    /// [`Error::Truncated`](crate::Error::Truncated) if a leader's entries
    /// replaced it first.
    pub fn append_uncommitted(&self, entry: &ControlPlaneEntry) -> Result<ControlPlaneIndex> {
        let range = self.append_uncommitted_batch(std::slice::from_ref(entry))?;
        Ok(range.start)
    }

    /// Appends `entries` (contiguous indexes, all or none written) and
    /// returns their index range once all are durable, as
    /// [`SharedControlPlane::append_uncommitted`].
    pub fn append_uncommitted_batch(
        &self,
        entries: &[ControlPlaneEntry],
    ) -> Result<Range<ControlPlaneIndex>> {
        let (written, _) = self.write_and_wait(entries)?;
        Ok(ControlPlaneIndex::range(written))
    }
}

/// Refuses `index` if the log holds it but not durably yet: the shared
/// handle's reads never show an entry whose sync has not completed. An
/// index past the log is left to the engine's read ([`Error::NotFound`]).
fn check_durable<R: Role, S: Storage>(
    engine: &ControlPlaneNode<R, S>,
    index: ControlPlaneIndex,
) -> Result<()> {
    let log = &engine.log;
    if index.0 < log.durable_end() || index.0 >= log.end_index() {
        return Ok(());
    }
    Err(InvalidInput::Index {
        index: index.0,
        reason: "the entry is written but not durable yet (its sync is still running)",
    }
    .into())
}

impl<S: Storage> SharedControlPlane<SoleVoter, S> {
    /// Appends `entry` as the leader and returns, once it is durable,
    /// committed and applied, its index and what applying it did (a fenced
    /// ownership transition is durable and committed too: check the
    /// outcome). Errors as [`DurableControlPlane::try_append`]; a storage
    /// failure while this call waited is [`Error::Failed`].
    pub fn try_append(&self, entry: &ControlPlaneEntry) -> Result<Appended> {
        let mut outcome = None;
        let index = self.append_collecting(std::slice::from_ref(entry), |o| outcome = Some(o))?;
        let outcome = outcome.ok_or_else(|| unreported(index))?;
        Ok(Appended {
            index: ControlPlaneIndex(index),
            outcome,
        })
    }

    /// Appends `entries` (contiguous indexes, all or none written) and
    /// returns, once all are durable, committed and applied, the index of
    /// the first with what applying each did, as
    /// [`DurableControlPlane::try_append_batch`].
    pub fn try_append_batch(&self, entries: &[ControlPlaneEntry]) -> Result<AppendedBatch> {
        let mut outcomes = Vec::with_capacity(entries.len());
        let first = self.append_collecting(entries, |o| outcomes.push(o))?;
        Ok(AppendedBatch {
            first_index: ControlPlaneIndex(first),
            outcomes,
        })
    }

    /// Appends `entries`, hands `collect` what applying each did, in order,
    /// and returns the first one's index. Whoever records the sync that
    /// makes them durable applies them, in the same critical section of the
    /// engine lock, and posts each outcome to this call's claim (see
    /// [`super::outcome_board`]): if some are missing when the wait
    /// returns, that section has not ended yet, so taking the lock once
    /// waits for it; missing after that, the apply failed and stopped the
    /// node.
    fn append_collecting(
        &self,
        entries: &[ControlPlaneEntry],
        mut collect: impl FnMut(ApplyOutcome),
    ) -> Result<u64> {
        let (written, claim) = self.write_and_wait(entries)?;
        let claim = claim.ok_or_else(|| unreported(written.start))?;
        if claim.collect(&mut collect) {
            return Ok(written.start);
        }
        self.lock_engine().check_not_failed()?;
        if claim.collect(&mut collect) {
            return Ok(written.start);
        }
        Err(unreported(written.start))
    }

    /// The typed error of this handle's last refused trait
    /// [`append`](ControlPlaneConsensus::append); cleared by its next
    /// successful one. Each clone keeps its own.
    pub fn last_append_error(&self) -> Option<&Error> {
        self.last_append_error.as_ref()
    }
}

/// The shared handle stands where the seed's trait is expected: it is
/// `Clone`, so each thread appends through its own clone's `&mut self`,
/// and its appends share syncs. Reads do not sync. `append` maps refusals
/// as [`DurableControlPlane`]'s does (never naming this node; see the table
/// there), keeping the typed error in this clone's
/// [`SharedControlPlane::last_append_error`].
impl<S: Storage> ControlPlaneConsensus for SharedControlPlane<SoleVoter, S> {
    fn current_term(&self) -> ControlPlaneTerm {
        SharedControlPlane::current_term(self)
    }

    fn leader(&self) -> Option<ClusterVoterIdentity> {
        SharedControlPlane::leader(self)
    }

    fn is_leader(&self) -> bool {
        SharedControlPlane::is_leader(self)
    }

    fn durable_vote(&self) -> DurableVoteState {
        SharedControlPlane::durable_vote(self)
    }

    fn commit_index(&self) -> Option<ControlPlaneIndex> {
        SharedControlPlane::commit_index(self)
    }

    fn append(&mut self, entry: ControlPlaneEntry) -> Result<ControlPlaneIndex, ControlPlaneError> {
        let appended = self.try_append(&entry);
        trait_answer(appended, &self.inner.identity, &mut self.last_append_error)
    }
}
