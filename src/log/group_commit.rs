//! [`GroupCommit`]: many writers, one sync — the one group commit of cpwal,
//! used by the engine's [`SharedControlPlane`](crate::SharedControlPlane)
//! and the openraft log store's flusher alike.
//!
//! # How a write becomes durable
//! 1. Under its owner's lock (the engine's, the raft store's) a writer
//!    encodes its records into the log's write buffer
//!    ([`SegmentedLog::write`]) and takes a [`Ticket`]: the indexes it
//!    wrote and the log's epoch, which every suffix truncation and every
//!    restart raises.
//! 2. Without that lock it [waits](GroupCommit::wait). If no sync is in
//!    flight it *leads* one: under the owner's lock it takes the tail's sync
//!    ([`SegmentedLog::tail_sync_handle`], which writes everything buffered
//!    with one `pwrite` and stamps the sync with the epoch), runs `fdatasync`
//!    without the lock, then under the lock records it
//!    ([`SegmentedLog::mark_durable`]) and lets the owner act on it (a sole
//!    voter commits and applies). Everyone who wrote while that sync was in
//!    flight waits for the next one, which one of them leads: a burst of
//!    callers costs two syncs, not one per caller.
//! 3. On a slow disk that next sync need not wait: once the sync in flight
//!    has run for [`GroupCommit::set_second_sync_after`] (1 ms by default,
//!    beyond a fast disk's syncs), a writer it does not cover leads a
//!    second one beside it, on a second file description of the tail
//!    ([`SyncDescription`]). At most two are in flight; they are numbered
//!    as they start and end in that order: a sync that returns first waits
//!    for the earlier one before it is recorded, and is not recorded if
//!    any sync failed.
//!
//! # Why it is safe
//! * **No sync skipped.** The durable end the waiters see only moves when
//!   the log records a sync that was taken after every record it covers was
//!   written (the log publishes it itself, from every path that syncs).
//! * **No stale sync.** A sync taken before a truncation or a restart
//!   carries the old epoch; [`SegmentedLog::mark_durable`] ignores it, so it
//!   can never mark entries written after the truncation durable.
//! * **Truncated entries are never acknowledged.** For every epoch that
//!   still has tickets out, the group keeps the lowest index any truncation
//!   since then cut the log at. A ticket whose indexes reach that cut gets
//!   [`Error::Truncated`], never `Ok`, even if its records had been synced
//!   before another leader's entries replaced them.
//! * **Entries behind a restart.** A restart moves the log start to or past
//!   the end of the log, behind a snapshot its owner made durable first; the
//!   durable end becomes the new start, so tickets below it are done.
//! * **Fail-stop.** A failed sync is latched by the storage
//!   ([`super::latch`]); every waiter it did not cover fails with
//!   [`Error::Failed`], and no later sync is attempted, so nothing written
//!   before the failure is acknowledged after it. A second sync in flight
//!   that succeeded before the first failed is not recorded either: syncs
//!   are recorded in the order they started, each only while no failure
//!   is latched.
//! * **Each sync learns of every lost write.** Linux reports a writeback
//!   error once per file description: two syncs overlapping on one
//!   description could both succeed while a page one of them waited for
//!   was lost. Syncs on one description never overlap (the latch orders
//!   them), and two in flight run on two descriptions, each of which is
//!   told of every error recorded since it last synced (or, opened later,
//!   of any error nobody was told of).
//!
//! The owner's lock is never taken while the group's own lock is held (the
//! log publishes to the group under the owner's lock, never the reverse),
//! so the two cannot deadlock.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::Storage;

use super::latch::Latch;
use super::{LogFile, SyncDescription, TailSync};

/// How group commit reaches the log through its owner's lock. Implemented
/// by the engine's shared handle and by the openraft log store, which lock
/// their logs differently.
pub trait SyncOwner {
    /// The storage of the owner's log.
    type Storage: Storage;

    /// Under the owner's lock: [`SegmentedLog::tail_sync_handle`] on
    /// `description`, and whatever the owner does before the sync runs (a
    /// sole voter's shared handle starts the writeback and applies the
    /// entries the sync covers, hidden until `end_sync` commits them).
    ///
    /// [`SegmentedLog::tail_sync_handle`]: super::SegmentedLog::tail_sync_handle
    fn begin_sync(&self, description: SyncDescription) -> Result<TailSync<LogFile<Self::Storage>>>;

    /// Under the owner's lock: [`SegmentedLog::mark_durable`] with `sync`,
    /// which succeeded, then whatever the owner does with newly durable
    /// entries.
    ///
    /// [`SegmentedLog::mark_durable`]: super::SegmentedLog::mark_durable
    fn end_sync(&self, sync: &TailSync<LogFile<Self::Storage>>);
}

/// The shared state of one log's group commit.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<GroupState>,
    /// Signalled whenever `state` changes.
    changed: Condvar,
    latch: Arc<Latch>,
    /// How long a sync runs before a writer it does not cover may start a
    /// second one (see [`GroupCommit::set_second_sync_after`]), in
    /// nanoseconds; `u64::MAX`: never.
    second_sync_after_nanos: AtomicU64,
}

/// At most this many syncs are in flight at once.
const MAX_SYNCS_IN_FLIGHT: usize = 2;

/// The default of [`GroupCommit::set_second_sync_after`]: well above a
/// fast disk's sync (≈ 0.1 ms here, p99 under 0.5 ms), well below a
/// throttled one's (≈ 4 ms).
pub const DEFAULT_SECOND_SYNC_AFTER: Duration = Duration::from_millis(1);

/// Invariants: `durable_end` is the log's durable end (published by the
/// log under its owner's lock); at most [`MAX_SYNCS_IN_FLIGHT`] waiters
/// lead a sync at once (`syncs_in_flight`), numbered in the order they
/// started (`next_sync`), and syncs finish in that order: every sync
/// numbered below `finished_syncs` has been recorded or has failed, and a
/// sync is recorded only once all before it are (so acknowledgements
/// follow the order of the syncs). When one sync is in flight it is the
/// latest started, at `latest_started`, covering `latest_covers` (epoch,
/// end) once its leader has taken it. `open_epochs` holds exactly the
/// epochs with a live [`Ticket`], once each, with the lowest truncation
/// point since each. (A vector: it almost always holds one epoch, and keeps
/// its capacity, so taking and dropping tickets allocates nothing.)
/// `sleepers` counts the threads blocked on `changed`: each one counted
/// itself under the lock before it slept.
#[derive(Debug)]
struct GroupState {
    durable_end: u64,
    syncs_in_flight: usize,
    next_sync: u64,
    finished_syncs: u64,
    latest_started: Option<Instant>,
    latest_covers: Option<(u64, u64)>,
    /// Whether a waiter sleeps with a timeout, to start a second sync when
    /// it is due (at most one does). Every broadcast wake-up clears it: the
    /// watcher wakes with everyone else and watches no longer.
    watching: bool,
    /// How many times every sleeper was woken: a watcher that wakes to the
    /// same count woke alone (its timeout passed, or spuriously) and still
    /// watches.
    broadcasts: u64,
    open_epochs: Vec<OpenEpoch>,
    sleepers: usize,
}

#[derive(Debug)]
struct OpenEpoch {
    epoch: u64,
    tickets: usize,
    /// The lowest index a truncation cut the log at since this epoch
    /// (`u64::MAX`: none).
    lowest_cut: u64,
}

/// A writer's claim on its entries: the indexes it wrote and the log's
/// epoch then. Redeemed with [`GroupCommit::wait`].
#[derive(Debug)]
pub struct Ticket {
    written: Range<u64>,
    epoch: u64,
    group: Arc<GroupCommit>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        let open_epochs = &mut state.open_epochs;
        if let Some(at) = open_epochs.iter().position(|o| o.epoch == self.epoch) {
            open_epochs[at].tickets -= 1;
            if open_epochs[at].tickets == 0 {
                open_epochs.swap_remove(at);
            }
        }
    }
}

impl GroupState {
    /// The open epoch of a live ticket.
    fn open_epoch(&self, epoch: u64) -> &OpenEpoch {
        let found = self.open_epochs.iter().find(|o| o.epoch == epoch);
        found.expect("a live ticket keeps its epoch open")
    }
}

/// A sync in flight, numbered `number`: when it ends — returning or
/// unwinding — it waits for every sync started before it to end, the next
/// one may start, and every waiter is woken to see what it made durable.
struct Leading<'a> {
    group: &'a GroupCommit,
    number: u64,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut state = self.group.wait_for_earlier_syncs(self.number);
        state.finished_syncs = self.number + 1;
        state.syncs_in_flight -= 1;
        self.group.wake_sleepers(state);
    }
}

/// What a waiting caller does next.
enum Turn {
    Done(Result<()>),
    /// Lead the sync numbered `number`, on `description`.
    Lead {
        number: u64,
        description: SyncDescription,
    },
}

impl GroupCommit {
    /// The group of a log whose entries below `durable_end` are durable,
    /// failing with `latch`.
    pub(super) fn new(durable_end: u64, latch: Arc<Latch>) -> Self {
        let state = GroupState {
            durable_end,
            syncs_in_flight: 0,
            next_sync: 0,
            finished_syncs: 0,
            latest_started: None,
            latest_covers: None,
            watching: false,
            broadcasts: 0,
            open_epochs: Vec::new(),
            sleepers: 0,
        };
        Self {
            state: Mutex::new(state),
            changed: Condvar::new(),
            latch,
            second_sync_after_nanos: AtomicU64::new(DEFAULT_SECOND_SYNC_AFTER.as_nanos() as u64),
        }
    }

    /// Once a sync has been in flight for `after`, a writer it does not
    /// cover starts a second one on a second file description of the tail
    /// (see [`SyncDescription`]) instead of waiting for it: at most two are
    /// in flight, and they are recorded, so acknowledged, in the order they
    /// started. `Duration::MAX` never overlaps syncs. Default:
    /// [`DEFAULT_SECOND_SYNC_AFTER`].
    pub fn set_second_sync_after(&self, after: Duration) {
        let nanos = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
        self.second_sync_after_nanos.store(nanos, Ordering::Relaxed);
    }

    /// [`Self::set_second_sync_after`]'s value; `None` for never.
    fn second_sync_after(&self) -> Option<Duration> {
        match self.second_sync_after_nanos.load(Ordering::Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // The state is updated field by field, each update complete; a
        // panic elsewhere while the lock was held leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases `state`, which the caller changed, and wakes every thread
    /// sleeping on it, if any. With none, no wake-up is made: a condition
    /// variable's is a system call whether or not anyone waits, one per
    /// sync for a single writer. No wake-up is lost: a thread counts itself
    /// in `sleepers` under the lock and checks the state before it sleeps,
    /// so one not counted yet sees this change first. The watch is cleared:
    /// everyone wakes, and the first that needs the clock takes it.
    fn wake_sleepers(&self, mut state: MutexGuard<'_, GroupState>) {
        let anyone_sleeps = state.sleepers > 0;
        if anyone_sleeps {
            state.watching = false;
            state.broadcasts += 1;
        }
        drop(state);
        if anyone_sleeps {
            self.changed.notify_all();
        }
    }

    /// Releases `state` until woken (or, with a `timeout`, until it
    /// passes), counted in `sleepers` meanwhile (see
    /// [`Self::wake_sleepers`]).
    fn sleep<'a>(
        &self,
        mut state: MutexGuard<'a, GroupState>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, GroupState> {
        state.sleepers += 1;
        let mut state = match timeout {
            None => self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(timeout) => {
                let woken = self.changed.wait_timeout(state, timeout);
                woken.unwrap_or_else(PoisonError::into_inner).0
            }
        };
        state.sleepers -= 1;
        state
    }

    /// A ticket for `written`, written at `epoch` (under the owner's lock).
    pub(super) fn ticket(self: &Arc<Self>, written: Range<u64>, epoch: u64) -> Ticket {
        let mut state = self.lock();
        match state.open_epochs.iter_mut().find(|o| o.epoch == epoch) {
            Some(open) => open.tickets += 1,
            None => state.open_epochs.push(OpenEpoch {
                epoch,
                tickets: 1,
                lowest_cut: u64::MAX,
            }),
        }
        Ticket {
            written,
            epoch,
            group: Arc::clone(self),
        }
    }

    /// The log's durable end is now `durable_end`. The waiters are woken
    /// unless a sync is in flight: its leader wakes them all when it ends
    /// (right after recording it, which is most often what published this),
    /// and one wake-up per sync, not two, is what keeps many waiters on few
    /// cores from paying for a second stampede (measured: 16 threads on 2
    /// cores lost about a fifth of their rate to it).
    pub(super) fn publish(&self, durable_end: u64) {
        let mut state = self.lock();
        state.durable_end = durable_end;
        if state.syncs_in_flight == 0 {
            self.wake_sleepers(state);
        }
    }

    /// A truncation removed every index from `from` on, and the durable end
    /// is now `durable_end`.
    pub(super) fn publish_cut(&self, from: u64, durable_end: u64) {
        let mut state = self.lock();
        for open in &mut state.open_epochs {
            open.lowest_cut = open.lowest_cut.min(from);
        }
        state.durable_end = durable_end;
        self.wake_sleepers(state);
    }

    /// Returns once `ticket`'s entries are durable, leading syncs through
    /// `owner` as needed. Errors: [`Error::Truncated`] when a truncation
    /// removed some of them; [`Error::Failed`] when a failure stopped the
    /// log before they were durable.
    pub fn wait(&self, ticket: &Ticket, owner: &impl SyncOwner) -> Result<()> {
        debug_assert!(
            std::ptr::eq(self, &*ticket.group),
            "a ticket of another log"
        );
        loop {
            match self.next_turn(ticket) {
                Turn::Done(result) => return result,
                Turn::Lead {
                    number,
                    description,
                } => self.lead(owner, number, description)?,
            }
        }
    }

    /// Waits until `ticket` is settled, or no sync is in flight, or the one
    /// in flight does not cover `ticket` and has run long enough to start a
    /// second (then the caller leads the next one).
    fn next_turn(&self, ticket: &Ticket) -> Turn {
        let mut state = self.lock();
        // Whether this waiter watches the clock: it took the watch and no
        // broadcast has cleared it since.
        let mut watches = false;
        let turn = loop {
            let lowest_cut = state.open_epoch(ticket.epoch).lowest_cut;
            if lowest_cut < ticket.written.end {
                break Turn::Done(Err(Error::Truncated {
                    written: ticket.written.clone(),
                    removed_from: lowest_cut.max(ticket.written.start),
                }));
            }
            if state.durable_end >= ticket.written.end {
                break Turn::Done(Ok(()));
            }
            if let Some(cause) = self.latch.failure() {
                let cause = Arc::clone(cause);
                break Turn::Done(Err(Error::Failed { cause }));
            }
            let second_due_in = self.second_sync_due_in(&state, ticket);
            if state.syncs_in_flight == 0 || second_due_in == Some(Duration::ZERO) {
                break Self::start_sync(&mut state);
            }
            // One waiter watches the clock for a second sync; the others
            // sleep until woken (a timed sleep costs a timer per sleeper).
            let watch = second_due_in.filter(|_| watches || !state.watching);
            if watches && watch.is_none() {
                self.hand_over_watch(&mut state);
            }
            watches = watch.is_some();
            state.watching |= watches;
            let broadcasts = state.broadcasts;
            state = self.sleep(state, watch);
            watches &= state.broadcasts == broadcasts;
        };
        if watches {
            self.hand_over_watch(&mut state);
        }
        turn
    }

    /// The watcher gives up the watch while it was not woken with the
    /// others (its timeout passed): it wakes them, so that one of them
    /// watches the clock in its place if one must (else a writer no sync
    /// covers would wait out the whole sync in flight). Rare: a broadcast,
    /// once per sync, clears the watch without this second wake-up.
    fn hand_over_watch(&self, state: &mut GroupState) {
        state.watching = false;
        if state.sleepers > 0 {
            state.broadcasts += 1;
            self.changed.notify_all();
        }
    }

    /// How long until a waiter holding `ticket` may start a second sync
    /// beside the one in flight: `None` when it may not (none or two in
    /// flight, overlapping is off, or the one in flight covers `ticket`).
    fn second_sync_due_in(&self, state: &GroupState, ticket: &Ticket) -> Option<Duration> {
        if state.syncs_in_flight == 0 || state.syncs_in_flight == MAX_SYNCS_IN_FLIGHT {
            return None;
        }
        let after = self.second_sync_after()?;
        if let Some((epoch, end)) = state.latest_covers {
            if epoch == ticket.epoch && ticket.written.end <= end {
                return None;
            }
        }
        let running = state.latest_started.map_or(after, |t| t.elapsed());
        Some(after.saturating_sub(running))
    }

    /// The caller leads the next sync, numbered in order: even numbers on
    /// the writer's description, odd ones on the second. Two in flight are
    /// always consecutive (syncs end in the order they started), so they
    /// never share a description.
    fn start_sync(state: &mut GroupState) -> Turn {
        debug_assert!(state.syncs_in_flight < MAX_SYNCS_IN_FLIGHT);
        let number = state.next_sync;
        state.next_sync += 1;
        state.syncs_in_flight += 1;
        state.latest_started = Some(Instant::now());
        state.latest_covers = None;
        let description = if number.is_multiple_of(2) {
            SyncDescription::Writer
        } else {
            SyncDescription::Second
        };
        Turn::Lead {
            number,
            description,
        }
    }

    /// Waits until every sync numbered below `number` has ended.
    fn wait_for_earlier_syncs(&self, number: u64) -> MutexGuard<'_, GroupState> {
        let mut state = self.lock();
        while state.finished_syncs < number {
            state = self.sleep(state, None);
        }
        state
    }

    /// Sync `number` of the tail, on `description`, outside the owner's
    /// lock, covering everything written before it started. It is recorded
    /// only after every earlier sync ended, and only if none failed: a
    /// failure is latched by the storage (the waiters see it); one that is
    /// not (which no storage call makes) is returned to the leader.
    fn lead(
        &self,
        owner: &impl SyncOwner,
        number: u64,
        description: SyncDescription,
    ) -> Result<()> {
        let leading = Leading {
            group: self,
            number,
        };
        let synced = owner.begin_sync(description).and_then(|sync| {
            let mut state = self.lock();
            if state.next_sync == number + 1 {
                state.latest_covers = Some((sync.epoch(), sync.covered_end()));
            }
            drop(state);
            sync.run()?;
            drop(self.wait_for_earlier_syncs(number));
            if self.latch.failure().is_none() {
                owner.end_sync(&sync);
            }
            Ok(())
        });
        drop(leading);
        match synced {
            Err(error) if self.latch.failure().is_none() => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hard_state::{HardState, HardStateStore};
    use crate::identity::ClusterVoterIdentity;
    use crate::io::{Access, LockMode, OsStorage};
    use crate::log::{CommitStamp, LatchedStorage, SegmentedLog};
    use crate::node_role::NodeRole;

    /// A replica's log and hard state behind one lock, as the raft store
    /// keeps them.
    struct Owned {
        log: SegmentedLog<OsStorage>,
        store: HardStateStore<LogFile<OsStorage>>,
        state: HardState,
    }

    struct Owner(Mutex<Owned>);

    impl SyncOwner for Owner {
        type Storage = OsStorage;
        fn begin_sync(&self, description: SyncDescription) -> Result<TailSync<LogFile<OsStorage>>> {
            self.0.lock().unwrap().log.tail_sync_handle(description)
        }
        fn end_sync(&self, sync: &TailSync<LogFile<OsStorage>>) {
            self.0.lock().unwrap().log.mark_durable(sync);
        }
    }

    impl Owned {
        fn open(dir: &std::path::Path) -> Self {
            let storage = OsStorage::open(dir, LockMode::Exclusive).unwrap();
            let storage = Arc::new(LatchedStorage::new(storage));
            let node = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
            let state = HardState::new(node, NodeRole::Replica);
            let store = HardStateStore::create(&*storage, &state).unwrap();
            let (log, _) =
                SegmentedLog::open(storage, &state, 1 << 16, Access::Writable, |_| Ok(())).unwrap();
            Self { log, store, state }
        }

        /// Writes `count` entries of `term` and returns their ticket.
        fn write(&mut self, count: u64, term: u64) -> Ticket {
            let start = self.log.end_index();
            let payloads: Vec<_> = (0..count).map(|i| (term, vec![1 + i as u8; 16])).collect();
            let entries = payloads.iter().map(|(t, p)| (*t, &p[..]));
            self.log.write(entries, CommitStamp::Known(0)).unwrap();
            self.log.ticket(start..self.log.end_index())
        }

        fn truncate(&mut self, from: u64) {
            let Owned { log, store, state } = self;
            log.truncate_suffix(from, 0, store, state).unwrap();
        }
    }

    #[test]
    fn wait_tells_truncated_tickets_from_surviving_ones() {
        // Goal: a truncation fails exactly the tickets whose indexes it
        // reached, with their indexes, and the others are acknowledged once
        // durable. Method: write tickets for 0..2 and 2..4, truncate at 3,
        // write 3..5 with a new ticket; redeem all three.
        let dir = tempfile::tempdir().unwrap();
        let mut owned = Owned::open(dir.path());
        let (low, high) = (owned.write(2, 1), owned.write(2, 1));
        owned.truncate(3);
        let after = owned.write(2, 2);
        let group = Arc::clone(owned.log.group_commit());
        let owner = Owner(Mutex::new(owned));
        assert!(group.wait(&low, &owner).is_ok());
        let truncated = group.wait(&high, &owner);
        assert!(
            matches!(&truncated, Err(Error::Truncated { written, removed_from: 3 }) if *written == (2..4)),
            "{truncated:?}"
        );
        assert!(group.wait(&after, &owner).is_ok());
        assert_eq!(owner.0.lock().unwrap().log.durable_end(), 5);
        drop((low, high, after));
        assert!(group.lock().open_epochs.is_empty(), "every ticket released");
    }

    #[test]
    fn mark_durable_ignores_a_sync_taken_before_a_truncation() {
        // Goal: a sync taken before a truncation never marks the entries
        // written after it durable, though it covers their indexes. Method:
        // write 0..3 and take the tail's sync; truncate at 1 and write two
        // new entries (1..3, unsynced); run the old sync and record it: the
        // durable end stays where it was (0: nothing was recorded durable
        // before), and a ticket for the new entries still waits (its wait
        // leads a new sync).
        let dir = tempfile::tempdir().unwrap();
        let mut owned = Owned::open(dir.path());
        drop(owned.write(3, 1));
        let stale = owned.log.tail_sync_handle(SyncDescription::Writer).unwrap();
        owned.truncate(1);
        let rewritten = owned.write(2, 2);
        stale.run().unwrap();
        owned.log.mark_durable(&stale);
        assert_eq!(
            owned.log.durable_end(),
            0,
            "a stale sync marked entries durable"
        );
        let group = Arc::clone(owned.log.group_commit());
        let owner = Owner(Mutex::new(owned));
        assert!(group.wait(&rewritten, &owner).is_ok());
        assert_eq!(owner.0.lock().unwrap().log.durable_end(), 3);
    }

    #[test]
    fn waiters_are_woken_once_per_sync_not_twice() {
        // Goal: under contention every sleeping waiter is woken once per
        // sync that ends. A watcher woken with everyone else gives up the
        // watch without waking them all a second time (that second
        // stampede cost 16 writer threads on 2 cores a quarter of their
        // rate in the peers bench). Method: 8 threads each write and wait
        // 100 times, with `second_sync_after` an hour (waiters behind a
        // sync take the watch, whose timeout never passes): there are no
        // more broadcasts than syncs.
        let dir = tempfile::tempdir().unwrap();
        let owned = Owned::open(dir.path());
        let group = Arc::clone(owned.log.group_commit());
        group.set_second_sync_after(Duration::from_secs(3600));
        let owner = Owner(Mutex::new(owned));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        let ticket = owner.0.lock().unwrap().write(1, 1);
                        group.wait(&ticket, &owner).unwrap();
                    }
                });
            }
        });
        let state = group.lock();
        let (broadcasts, syncs) = (state.broadcasts, state.next_sync);
        eprintln!("{broadcasts} broadcasts, {syncs} syncs");
        assert!(
            broadcasts > syncs / 4,
            "too few waiters slept to test anything"
        );
        assert!(
            broadcasts <= syncs,
            "{broadcasts} broadcasts for {syncs} syncs"
        );
    }
}
