//! [`SharedControlPlane`]: group commit. A cloneable, thread-safe handle
//! through which many threads append at once, sharing syncs.
//!
//! # How an append goes
//! 1. Under the engine lock the entries are validated and encoded into the
//!    log's write buffer (no system call). The caller remembers `my_end`,
//!    one past its last index.
//! 2. Without the engine lock the caller waits until `durable_end >= my_end`.
//!    If no sync is in flight it becomes the *leader*: under the engine lock
//!    it takes [`SegmentedLog::tail_sync_handle`] (which writes everything
//!    buffered with one `pwrite`, and returns the tail file and the end it
//!    covers), releases the lock, runs `fdatasync` (through the log's
//!    latched storage, so it never overlaps a sync made under the lock, and fails
//!    if any earlier sync of the log failed), then under the lock
//!    records the result with [`SegmentedLog::mark_durable`] and advances the
//!    commit point to what is durable. Everyone who wrote while that sync was
//!    in flight waits for the next one, which one of them leads: so a burst of
//!    callers costs two syncs, not one per caller.
//!
//! # Why it is safe
//! * **No sync skipped.** A caller returns `Ok` only once `durable_end`
//!   covers its entries, and `durable_end` only moves after a sync that was
//!   *started after* those entries were written (the leader reads the end to
//!   cover under the lock, after every write it covers).
//! * **Rollover.** Only the tail segment can hold unsynced records: a write
//!   that fills the tail syncs it under the engine lock before the next
//!   segment is created (`SegmentedLog::write`). A leader syncing an old tail
//!   after a rollover syncs a file that is already durable, harmlessly.
//! * **Order.** Indexes are assigned under the engine lock, so a call that
//!   starts after another returned gets a higher index.
//! * **Commit.** On a sole voter an entry is committed when it is durable:
//!   the commit point is set to the log's durable end, never to its written
//!   end, and the catalog applies what became committed. On a replica the
//!   handle only makes entries durable; commit waits for
//!   [`DurableControlPlane::advance_commit`].
//! * **Fail-stop.** A failed sync is latched in the engine (which steps
//!   down) and fails every caller whose entries it did not cover; no later
//!   sync is attempted, so nothing written before the failure is ever
//!   acknowledged after it.

use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::consensus::{ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneIndex};
use crate::error::{Error, Result};
use crate::io::{OsStorage, Storage};

use super::DurableControlPlane;

/// A cloneable handle on a [`DurableControlPlane`] shared by many threads,
/// whose appends share syncs (group commit). Every append returns only once
/// its own entries are durable and committed.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cpwal::{ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex};
/// use cpwal::{DurableControlPlane, MembershipChange, Options, SharedControlPlane};
///
/// let dir = tempfile::tempdir()?;
/// let me = ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
/// let shared = SharedControlPlane::new(DurableControlPlane::open(dir.path(), me, Options::default())?);
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
pub struct SharedControlPlane<S: Storage = OsStorage> {
    inner: Arc<Inner<S>>,
}

impl<S: Storage> std::fmt::Debug for SharedControlPlane<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedControlPlane")
            .field("group", &*self.lock_group())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Clone for SharedControlPlane<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S: Storage> {
    engine: Mutex<DurableControlPlane<S>>,
    group: Mutex<GroupState>,
    /// Signalled whenever `group` changes.
    group_changed: Condvar,
}

/// The group-commit bookkeeping, kept apart from the engine lock so waiting
/// callers never hold up writers.
///
/// Invariants: `durable_end` never decreases and never exceeds what the log
/// has made durable; at most one caller leads a sync (`sync_in_flight`);
/// `failure` is set once and never cleared.
#[derive(Debug)]
struct GroupState {
    durable_end: u64,
    sync_in_flight: bool,
    failure: Option<Arc<Error>>,
}

/// What a waiting caller should do next.
enum Turn {
    Done,
    Failed(Arc<Error>),
    Lead,
}

impl<S: Storage> SharedControlPlane<S> {
    /// Wraps an open engine. Use [`SharedControlPlane::into_inner`] to get it
    /// back once every other clone is dropped.
    pub fn new(engine: DurableControlPlane<S>) -> Self {
        let group = GroupState {
            durable_end: engine.log.durable_end(),
            sync_in_flight: false,
            failure: engine.latched_failure(),
        };
        Self {
            inner: Arc::new(Inner {
                engine: Mutex::new(engine),
                group: Mutex::new(group),
                group_changed: Condvar::new(),
            }),
        }
    }

    /// Appends `entry` as the leader and returns its index once it is durable
    /// and committed; errors as [`DurableControlPlane::try_append`].
    pub fn append(&self, entry: &ControlPlaneEntry) -> Result<ControlPlaneIndex> {
        let range = self.append_batch(std::slice::from_ref(entry))?;
        Ok(ControlPlaneIndex(range.start))
    }

    /// Appends `entries` (contiguous indexes, all or none written) and returns
    /// their index range once all are durable and committed.
    pub fn append_batch(&self, entries: &[ControlPlaneEntry]) -> Result<Range<u64>> {
        let range = self.lock_engine().write_batch_unsynced(entries)?;
        self.wait_durable(range.end)?;
        Ok(range)
    }

    /// Runs `f` with exclusive access to the engine (reads, votes, elections)
    /// after making every entry written so far durable, so the engine it sees
    /// holds no unsynced entry. `f` must not use this handle (or a clone):
    /// the engine lock is held while it runs, so that would deadlock.
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut DurableControlPlane<S>) -> T) -> Result<T> {
        let mut engine = self.lock_engine();
        engine.check_not_failed()?;
        engine.log.sync()?;
        let durable_end = engine.log.durable_end();
        engine.note_durable(durable_end);
        let durable_end = engine.log.durable_end();
        let result = f(&mut engine);
        let failure = engine.latched_failure();
        drop(engine);
        self.publish(durable_end, failure);
        Ok(result)
    }

    /// The commit point now: the last entry known durable (this node being
    /// the sole voter). Entries written but still waiting for their sync are
    /// not committed. Does not sync.
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
    pub fn into_inner(self) -> std::result::Result<DurableControlPlane<S>, Self> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.engine.into_inner().unwrap_or_else(|p| p.into_inner())),
            Err(inner) => Err(Self { inner }),
        }
    }

    /// The engine lock. A panic while it was held (a bug, never a storage
    /// fault) does not leave the log half updated in a way later callers could
    /// misread: every write path latches before returning, so the poisoned
    /// state is used as is.
    fn lock_engine(&self) -> MutexGuard<'_, DurableControlPlane<S>> {
        self.inner
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_group(&self) -> MutexGuard<'_, GroupState> {
        self.inner
            .group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once everything below `end` is durable, leading syncs as
    /// needed; fails if a sync failed before covering `end`.
    fn wait_durable(&self, end: u64) -> Result<()> {
        loop {
            match self.next_turn(end) {
                Turn::Done => return Ok(()),
                Turn::Failed(cause) => return Err(Error::Failed { cause }),
                Turn::Lead => self.lead_sync(),
            }
        }
    }

    /// Waits until `end` is durable, the handle has failed, or no sync is in
    /// flight (then the caller leads the next one).
    fn next_turn(&self, end: u64) -> Turn {
        let mut group = self.lock_group();
        loop {
            if group.durable_end >= end {
                return Turn::Done;
            }
            if let Some(cause) = &group.failure {
                return Turn::Failed(Arc::clone(cause));
            }
            if !group.sync_in_flight {
                group.sync_in_flight = true;
                return Turn::Lead;
            }
            group = self
                .inner
                .group_changed
                .wait(group)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// One sync of the tail, outside the engine lock, covering every entry
    /// written before it started; the result is recorded in the engine and
    /// published to the waiters.
    fn lead_sync(&self) {
        let tail_sync = {
            let mut engine = self.lock_engine();
            // Writes the records buffered since the last sync (one `pwrite`
            // for the whole group), unless the engine already failed.
            let handle = if engine.latched_failure().is_none() {
                let handle = engine.log.tail_sync_handle();
                handle.ok()
            } else {
                None
            };
            let Some(handle) = handle else {
                let cause = engine.latched_failure();
                drop(engine);
                return self.publish_after_sync(0, cause);
            };
            handle
        };
        let synced = tail_sync.run();
        let mut engine = self.lock_engine();
        if synced.is_ok() {
            engine.note_durable(tail_sync.covered_end());
        }
        let (durable_end, failure) = (engine.log.durable_end(), engine.latched_failure());
        drop(engine);
        self.publish_after_sync(durable_end, failure);
    }

    fn publish_after_sync(&self, durable_end: u64, failure: Option<Arc<Error>>) {
        self.lock_group().sync_in_flight = false;
        self.publish(durable_end, failure);
    }

    /// Tells the waiters what is durable now and whether the engine failed.
    fn publish(&self, durable_end: u64, failure: Option<Arc<Error>>) {
        let mut group = self.lock_group();
        group.durable_end = group.durable_end.max(durable_end);
        if group.failure.is_none() {
            group.failure = failure;
        }
        drop(group);
        self.inner.group_changed.notify_all();
    }
}
