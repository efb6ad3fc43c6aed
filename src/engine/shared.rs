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
//!   catalog applies what became committed, before the lock is released. On
//!   a replica the handle only makes entries durable; commit waits for
//!   [`ReplicaControlPlane::advance_commit`], and entries a leader's
//!   [`ReplicaControlPlane::append_entries`] truncates (through
//!   [`SharedControlPlane::with_engine`]) while their sync is in flight
//!   come back as [`Error::Truncated`](crate::Error::Truncated), never `Ok`.
//! * **Fail-stop.** A failed sync is latched by the storage; the node steps
//!   down and every caller whose entries it did not cover fails.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::consensus::{ControlPlaneEntry, ControlPlaneIndex};
use crate::error::Result;
use crate::io::{OsStorage, Storage};
use crate::log::{GroupCommit, LogFile, SyncOwner, TailSync};
use crate::node_role::{Role, SoleVoter};

use super::ControlPlaneNode;
#[cfg(doc)]
use super::{DurableControlPlane, ReplicaControlPlane};

/// A cloneable handle on a [`ControlPlaneNode`] of role `R` (by default a
/// [`DurableControlPlane`]) shared by many threads, whose appends share
/// syncs (group commit). Every append returns only once its own entries
/// are durable (and, on a sole voter, committed).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cpwal::{ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex};
/// use cpwal::{DurableControlPlane, MembershipChange, Options, SharedControlPlane};
///
/// let dir = tempfile::tempdir()?;
/// let me = ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
/// let shared = SharedControlPlane::new(DurableControlPlane::create(dir.path(), me, Options::default())?);
/// let workers: Vec<_> = (0..4)
///     .map(|n| {
///         let shared = shared.clone();
///         std::thread::spawn(move || {
///             let member = ClusterVoterIdentity::from_certificate_subject(&format!("CN=node-{n}"))?;
///             let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
///             Ok::<_, Box<dyn std::error::Error + Send + Sync>>(shared.append(&entry)?)
///         })
///     })
///     .collect();
/// for worker in workers {
///     worker.join().expect("no panic").map_err(|e| e.to_string())?;
/// }
/// assert_eq!(shared.with_engine(|e| e.last_index())?, Some(ControlPlaneIndex(3)));
/// # Ok(())
/// # }
/// ```
pub struct SharedControlPlane<R: Role = SoleVoter, S: Storage = OsStorage> {
    inner: Arc<Inner<R, S>>,
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
        }
    }
}

struct Inner<R: Role, S: Storage> {
    engine: Mutex<ControlPlaneNode<R, S>>,
    /// The engine's log's group commit, reached without the engine lock.
    group: Arc<GroupCommit>,
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

    fn begin_sync(&self) -> Result<TailSync<LogFile<S>>> {
        self.lock_engine().log.tail_sync_handle()
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
                engine: Mutex::new(engine),
                group,
            }),
        }
    }

    /// Appends `entry` as the leader and returns its index once it is durable
    /// (and, on a sole voter, committed); errors as
    /// [`DurableControlPlane::try_append`].
    pub fn append(&self, entry: &ControlPlaneEntry) -> Result<ControlPlaneIndex> {
        let range = self.append_batch(std::slice::from_ref(entry))?;
        Ok(ControlPlaneIndex(range.start))
    }

    /// Appends `entries` (contiguous indexes, all or none written) and returns
    /// their index range once all are durable (and, on a sole voter,
    /// committed). On a replica, [`Error::Truncated`](crate::Error::Truncated) if a leader's entries
    /// replaced some of them first.
    pub fn append_batch(&self, entries: &[ControlPlaneEntry]) -> Result<Range<u64>> {
        let (range, ticket) = self.lock_engine().write_batch_unsynced(entries)?;
        self.inner.group.wait(&ticket, &*self.inner)?;
        Ok(range)
    }

    /// Runs `f` with exclusive access to the engine (reads, votes, elections,
    /// a leader's requests) after making every entry written so far durable,
    /// so the engine it sees holds no unsynced entry. `f` must not use this
    /// handle (or a clone): the engine lock is held while it runs, so that
    /// would deadlock. Whatever `f` changes in the log reaches the waiting
    /// callers through the log itself.
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut ControlPlaneNode<R, S>) -> T) -> Result<T> {
        let mut engine = self.lock_engine();
        engine.check_not_failed()?;
        engine.log.sync()?;
        engine.commit_durable();
        Ok(f(&mut engine))
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
            Ok(inner) => Ok(inner.engine.into_inner().unwrap_or_else(|p| p.into_inner())),
            Err(inner) => Err(Self { inner }),
        }
    }

    fn lock_engine(&self) -> MutexGuard<'_, ControlPlaneNode<R, S>> {
        self.inner.lock_engine()
    }
}
