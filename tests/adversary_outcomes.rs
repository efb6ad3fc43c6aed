//! Adversarial tests of the shared handle's per-caller outcomes (the
//! `OutcomeBoard`, `SharedControlPlane::try_append*`, group commit): wrong or
//! foreign outcomes, spurious errors, Ok for lost entries, deadlocks,
//! unbounded memory, panics.
//!
//! Every test takes `SERIAL`: one of them counts live heap bytes through the
//! global allocator below, which other tests running beside it would skew.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpwal::{
    ApplyOutcome, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    DurableControlPlane, Error, InvalidInput, MembershipChange, Options, OwnershipTransition,
    VoteRequest,
};

// ---------------------------------------------------------------- harness

struct Counting;
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[path = "support/gated_storage.rs"]
mod gated_storage;

#[path = "support/gated_node.rs"]
mod gated_node;

use gated_node::{admit, create_shared, one_sync_at_a_time, voter, wait_until, Shared};
use gated_storage::Faults;

fn remove(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter(&format!("CN=node-{n}"))))
}

fn transition(range: u64, owner: u64, epoch: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{range}"),
        new_owner: voter(&format!("CN=owner-{owner}")),
        ownership_epoch: epoch,
    })
}

fn leader_config(term: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::LeaderConfiguration {
        term: ControlPlaneTerm(term),
        leader: voter("CN=node-a"),
    }
}

/// An entry cpwal refuses to store (a control character in a new name).
fn bad_entry() -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: "bad\u{7}range".into(),
        new_owner: voter("CN=owner-0"),
        ownership_epoch: 1,
    })
}

/// A mix whose outcomes depend on order: colliding ownership epochs,
/// admit/remove of few members, leader records with colliding terms.
fn mixed_entry(seed: u64) -> ControlPlaneEntry {
    let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
    match h % 5 {
        0 | 1 => transition(h % 3, seed % 7, (h >> 8) % 6),
        2 => admit(h % 4),
        3 => remove(h % 4),
        _ => leader_config((h >> 8) % 5),
    }
}

/// A node whose syncs never overlap ([`one_sync_at_a_time`]), with syncs that write but skip the real fdatasync: for
/// tests that check outcomes and memory, not power loss.
fn open_without_fsync(dir: &Path, segment_size_bytes: u64) -> (Shared, Arc<Faults>) {
    let (shared, faults) = create_shared(dir, one_sync_at_a_time(segment_size_bytes));
    faults.set(|g| g.skip_fsync = true);
    (shared, faults)
}

fn reopen(dir: &Path, segment_size_bytes: u64) -> DurableControlPlane {
    let options = Options::default().with_segment_size_bytes(segment_size_bytes);
    gated_node::reopen(dir, options)
}

/// Joins `handle` within `limit`, or fails the test naming a deadlock.
fn join_within<T: Send + 'static>(
    what: &str,
    handle: std::thread::JoinHandle<T>,
    limit: Duration,
) -> T {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "deadlock? {what} did not finish in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.join().unwrap()
}

/// Every (index, entry, outcome) some call reported.
type Reports = Vec<(u64, ControlPlaneEntry, ApplyOutcome)>;

/// Checks the reports cover `0..end` exactly once each and that each
/// outcome is what a fresh catalog fed the entries in index order returns;
/// returns that catalog.
fn check_reports(mut reports: Reports, end: u64) -> ControlPlaneCatalog {
    reports.sort_by_key(|(index, _, _)| *index);
    let indexes: Vec<u64> = reports.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(
        indexes,
        (0..end).collect::<Vec<_>>(),
        "every index reported exactly once"
    );
    let mut fresh = ControlPlaneCatalog::new();
    for (index, entry, outcome) in reports {
        let expected = fresh.apply(ControlPlaneIndex(index), &entry).unwrap();
        assert_eq!(
            outcome, expected,
            "wrong outcome reported for index {index} ({entry:?})"
        );
    }
    fresh
}

fn record_batch(
    reports: &mut Reports,
    batch: &[ControlPlaneEntry],
    appended: cpwal::AppendedBatch,
) {
    assert_eq!(
        appended.outcomes.len(),
        batch.len(),
        "one outcome per entry"
    );
    for ((index, outcome), entry) in appended.iter().zip(batch) {
        reports.push((index.0, entry.clone(), outcome.clone()));
    }
}

/// A thread that appends `batch` through its own clone of `shared` and
/// returns each entry's index, the entry and its reported outcome.
fn spawn_batch(
    shared: &Shared,
    batch: Vec<ControlPlaneEntry>,
) -> std::thread::JoinHandle<cpwal::Result<Reports>> {
    let shared = shared.clone();
    std::thread::spawn(move || {
        let appended = shared.try_append_batch(&batch)?;
        let mut reports = Reports::new();
        record_batch(&mut reports, &batch, appended);
        Ok(reports)
    })
}

// ---------------------------------------------------------------- attacks

#[test]
fn outcomes_are_each_callers_own_beside_inner_appends_compaction_and_elections() {
    // Attack (a)/(b)/(f): shared try_append/try_append_batch from 4 threads
    // (singles, batches that roll 4 KiB segments over, empty batches,
    // batches refused for an invalid entry or for size) while a fifth
    // thread appends through the inner DurableControlPlane inside
    // with_engine, compacts and starts elections. Every index must be
    // reported exactly once, with the outcome of replaying in index order.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (shared, _) = open_without_fsync(dir.path(), 4096);
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut reports = Reports::new();
                for i in 0..80u64 {
                    let seed = t * 10_000 + i;
                    match i % 6 {
                        0..=2 => {
                            let entry = mixed_entry(seed);
                            let appended = shared.try_append(&entry).unwrap();
                            reports.push((appended.index.0, entry, appended.outcome));
                        }
                        3 => {
                            let batch: Vec<_> = (0..(i % 25) + 1)
                                .map(|k| mixed_entry(seed * 31 + k))
                                .collect();
                            let appended = shared.try_append_batch(&batch).unwrap();
                            record_batch(&mut reports, &batch, appended);
                        }
                        4 => {
                            let before = shared.last_written_index();
                            let empty = shared.try_append_batch(&[]).unwrap();
                            assert!(empty.outcomes.is_empty());
                            assert_eq!(empty.last_index(), None);
                            let first = before.map_or(0, |i| i.0 + 1);
                            assert!(empty.first_index.0 >= first, "{empty:?} vs {before:?}");
                        }
                        _ => {
                            let refused =
                                shared.try_append_batch(&[mixed_entry(seed), bad_entry()]);
                            assert!(
                                matches!(refused, Err(Error::InvalidInput(_))),
                                "{refused:?}"
                            );
                            let huge: Vec<_> = (0..200).map(|k| admit(1000 + k)).collect();
                            let refused = shared.try_append_batch(&huge);
                            assert!(
                                matches!(
                                    refused,
                                    Err(Error::InvalidInput(InvalidInput::BatchTooLarge { .. }))
                                ),
                                "{refused:?}"
                            );
                        }
                    }
                }
                reports
            })
        })
        .collect();
    let inner = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut reports = Reports::new();
            for i in 0..40u64 {
                let seed = 900_000 + i;
                match i % 5 {
                    0 | 1 => {
                        let entry = mixed_entry(seed);
                        let appended = shared.with_engine(|e| e.try_append(&entry)).unwrap();
                        reports.push((appended.index.0, entry, appended.outcome));
                    }
                    2 => {
                        let batch: Vec<_> =
                            (0..(i % 9)).map(|k| mixed_entry(seed * 7 + k)).collect();
                        let appended = shared.with_engine(|e| e.try_append_batch(&batch)).unwrap();
                        record_batch(&mut reports, &batch, appended);
                    }
                    3 => {
                        shared.with_engine(|e| e.compact(3)).unwrap();
                    }
                    _ => {
                        shared.with_engine(|e| e.start_election()).unwrap();
                    }
                }
                std::thread::yield_now();
            }
            reports
        })
    };
    let mut reports = join_within("inner appender", inner, Duration::from_secs(30));
    for worker in workers {
        reports.extend(join_within(
            "shared appender",
            worker,
            Duration::from_secs(30),
        ));
    }
    let end = shared.last_written_index().unwrap().0 + 1;
    assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(end - 1)));
    let replayed = check_reports(reports, end);
    let live = shared.with_catalog(Clone::clone);
    assert_eq!(
        live, replayed,
        "the live catalog is the replay of the reports"
    );
    drop(shared);
    let reopened = reopen(dir.path(), 4096);
    assert_eq!(
        reopened.catalog(),
        &live,
        "the reopened catalog is the live one"
    );
}

#[test]
fn unapplied_cache_does_not_grow_under_pipelined_appends() {
    // Attack (e): two writers in lock step so that, whenever one writes, the
    // other's entry is written and not yet applied (exactly what sustained
    // concurrent load does): the sync of entry k is in flight while k+1 is
    // written; entry k+2 is written while k+1's sync is in flight; ...
    // Each append admits the same 255-byte member, so the catalog does not
    // grow and the log's per-entry index costs 4 bytes; anything that keeps
    // each entry's text shows up as ~300 live bytes per append.
    // Control: the same number of appends from one thread at a time.
    let _serial = serial();
    const ROUNDS: usize = 3000;
    let member = format!("CN={}", "m".repeat(252));
    let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&member)));

    // Control: sequential appends.
    let sequential_growth = {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _) = open_without_fsync(dir.path(), 16 << 20);
        for _ in 0..20 {
            shared.try_append(&entry).unwrap();
        }
        let before = live_bytes();
        for _ in 0..ROUNDS {
            shared.try_append(&entry).unwrap();
        }
        live_bytes() - before
    };

    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = open_without_fsync(dir.path(), 16 << 20);
    for _ in 0..20 {
        shared.try_append(&entry).unwrap();
    }
    let before = live_bytes();
    faults.set(|g| g.tokens = Some(0));
    let spawn = || {
        let (go, wait) = mpsc::channel::<()>();
        let shared = shared.clone();
        let entry = entry.clone();
        let worker = std::thread::spawn(move || {
            while wait.recv().is_ok() {
                shared.try_append(&entry).unwrap();
            }
        });
        (go, worker)
    };
    let (go_x, x) = spawn();
    let (go_y, y) = spawn();
    let go = [go_x, go_y];
    let written = |shared: &Shared| shared.last_written_index().unwrap().0;
    let mut last = written(&shared);
    let mut entered = faults.entered();
    // X leads a sync (held); Y writes behind it.
    go[0].send(()).unwrap();
    wait_until("X's sync", || faults.entered() == entered + 1);
    entered += 1;
    go[1].send(()).unwrap();
    wait_until("Y's write", || written(&shared) == last + 2);
    last += 2;
    for round in 0..ROUNDS {
        // The held sync completes; the waiter leads the next (held) sync,
        // which covers only its own entry; then the writer whose sync just
        // completed writes again behind it.
        faults.set(|g| g.tokens = Some(1));
        wait_until("the next sync", || faults.entered() == entered + 1);
        entered += 1;
        if round + 1 < ROUNDS {
            go[round % 2].send(()).unwrap();
            wait_until("the next write", || written(&shared) == last + 1);
            last += 1;
        }
    }
    faults.set(|g| g.tokens = None);
    drop(go);
    x.join().unwrap();
    y.join().unwrap();
    shared.with_engine(|_| Ok(())).unwrap();
    let pipelined_growth = live_bytes() - before;
    eprintln!(
        "live heap growth over {ROUNDS} appends: sequential {sequential_growth} B, \
         pipelined {pipelined_growth} B"
    );
    assert!(
        pipelined_growth < (ROUNDS as isize) * 64,
        "memory grows with every pipelined append and is never given back: \
         {pipelined_growth} live bytes after {ROUNDS} appends of an entry that changes \
         nothing (sequential: {sequential_growth} B)"
    );
}

#[test]
fn empty_batches_behind_a_held_sync_wait_and_report_nothing() {
    // Attack (a)/(d): empty batches from several threads while a sync is
    // held with writers behind it: each returns Ok, no outcome, and a
    // first_index at the log's end when it was written; none returns before
    // the entries written before it are durable.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    shared.try_append(&admit(0)).unwrap();
    faults.set(|g| g.hold_syncs = true);
    let entered = faults.entered();
    let leader = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.try_append(&admit(1)))
    };
    wait_until("the leader's sync", || faults.entered() == entered + 1);
    let empties: Vec<_> = (0..4)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || shared.try_append_batch(&[]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    for empty in &empties {
        assert!(
            !empty.is_finished(),
            "an empty batch returned before index 1 was durable"
        );
    }
    faults.set(|g| g.hold_syncs = false);
    let led = join_within("leader", leader, Duration::from_secs(10)).unwrap();
    assert_eq!(led.index, ControlPlaneIndex(1));
    assert_eq!(led.outcome, ApplyOutcome::Admitted);
    for empty in empties {
        let empty = join_within("empty batch", empty, Duration::from_secs(10)).unwrap();
        assert_eq!(empty.first_index, ControlPlaneIndex(2));
        assert!(empty.outcomes.is_empty());
    }
    let after = shared.try_append(&admit(1)).unwrap();
    assert_eq!(after.index, ControlPlaneIndex(2));
    assert_eq!(after.outcome, ApplyOutcome::AlreadyMember);
}

#[test]
fn writers_behind_a_held_sync_keep_their_outcomes_across_with_engine_compaction_and_step_down() {
    // Attack (a)/(b)/(d): a sync is held with 5 writers behind it (one a
    // batch); meanwhile with_engine (which must wait for the held sync, then
    // syncs and applies everything) compacts to nothing and makes the node
    // step down by granting a higher-term vote. Every writer must get its
    // own outcomes (applied by with_engine's sync, not its own group's),
    // nothing deadlocks, and later appends are NotLeader until an election.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    shared.try_append(&transition(0, 0, 5)).unwrap();
    faults.set(|g| g.hold_syncs = true);
    let entered = faults.entered();
    let spawn = |batch| spawn_batch(&shared, batch);
    let mut writers = vec![spawn(vec![transition(0, 1, 4)])];
    wait_until("the leader's sync", || faults.entered() == entered + 1);
    writers.push(spawn(vec![transition(0, 2, 6)]));
    writers.push(spawn(vec![
        transition(0, 3, 6),
        transition(0, 4, 7),
        admit(9),
    ]));
    writers.push(spawn(vec![admit(9)]));
    writers.push(spawn(vec![leader_config(3)]));
    wait_until("every write", || {
        shared.last_written_index() == Some(ControlPlaneIndex(7))
    });
    let engine_user = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            shared.with_engine(|e| {
                let report = e.compact(0)?;
                let term = ControlPlaneTerm(e.current_term().0 + 1);
                let vote = e.grant_vote(&VoteRequest {
                    term,
                    candidate: voter("CN=node-b"),
                    last_log_index: Some(ControlPlaneIndex(100)),
                    last_log_term: term,
                })?;
                Ok((report, vote))
            })
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    faults.set(|g| g.hold_syncs = false);
    let (_report, vote) = join_within("with_engine", engine_user, Duration::from_secs(10)).unwrap();
    assert!(vote.vote_granted);
    let mut reports = vec![(
        0,
        transition(0, 0, 5),
        ApplyOutcome::OwnershipTransferred { previous: None },
    )];
    for writer in writers {
        reports.extend(join_within("writer", writer, Duration::from_secs(10)).unwrap());
    }
    check_reports(reports, 8);
    let refused = shared.try_append(&admit(10));
    assert!(
        matches!(refused, Err(Error::NotLeader { .. })),
        "{refused:?}"
    );
    shared.with_engine(|e| e.start_election()).unwrap();
    let appended = shared.try_append(&admit(10)).unwrap();
    assert_eq!(
        (appended.index, appended.outcome),
        (ControlPlaneIndex(8), ApplyOutcome::Admitted)
    );
}

#[test]
fn a_failed_sync_never_acknowledges_a_lost_entry_nor_misreports() {
    // Attack (b)/(c): a held sync with writers behind it fails; then the
    // rollover path: a batch that rolls a 4 KiB segment over while other
    // writers wait. No call may return Ok for an entry the reopened log
    // lacks, and no call fails with OutcomeNotReported (it must say the
    // storage failed).
    let _serial = serial();
    for fail_rollover in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(4096));
        shared.try_append(&admit(0)).unwrap();
        faults.set(|g| g.hold_syncs = true);
        let entered = faults.entered();
        let spawn = |batch| spawn_batch(&shared, batch);
        let mut writers = vec![spawn(vec![admit(1)])];
        wait_until("the leader's sync", || faults.entered() == entered + 1);
        writers.extend((2..5).map(|n| spawn(vec![admit(n)])));
        if fail_rollover {
            // A batch that does not fit the tail: its rollover syncs the
            // segment under the engine lock, behind the held sync.
            writers.push(spawn((100..125).map(admit).collect()));
        }
        std::thread::sleep(Duration::from_millis(50));
        faults.set(|g| {
            g.fail_next = true;
            g.hold_syncs = false;
        });
        let mut acknowledged = Vec::new();
        for writer in writers {
            match join_within("writer", writer, Duration::from_secs(10)) {
                Ok(entries) => acknowledged.extend(entries),
                Err(error) => assert!(
                    matches!(error, Error::Failed { .. } | Error::Io { .. }),
                    "a storage failure reported as {error:?}"
                ),
            }
        }
        drop(shared);
        let node = reopen(dir.path(), 4096);
        for (index, entry, _) in acknowledged {
            let read = node.read(ControlPlaneIndex(index));
            assert_eq!(
                read.map(|r| r.entry).ok(),
                Some(entry),
                "index {index} acknowledged, lost"
            );
        }
    }
}

#[test]
fn backup_of_a_live_shared_node_while_appending() {
    // Attack (b)/(d): backups of the shared node while 3 threads append;
    // each backup opens and holds every entry acknowledged before it began;
    // outcomes stay each caller's own.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let (shared, _) = open_without_fsync(dir.path(), 4096);
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (shared, acked) = (shared.clone(), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut reports = Reports::new();
                for i in 0..60 {
                    let entry = mixed_entry(t * 1000 + i);
                    let appended = shared.try_append(&entry).unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .insert(appended.index.0, entry.clone());
                    reports.push((appended.index.0, entry, appended.outcome));
                }
                reports
            })
        })
        .collect();
    for b in 0..3 {
        let before: BTreeMap<u64, ControlPlaneEntry> = acked.lock().unwrap().clone();
        let destination = backups.path().join(format!("b{b}"));
        shared.backup(&destination).unwrap();
        let copy = DurableControlPlane::open(&destination, voter("CN=node-a"), Options::default())
            .unwrap();
        for (index, entry) in before {
            if index >= copy.first_index().0 {
                assert_eq!(copy.read(ControlPlaneIndex(index)).unwrap().entry, entry);
            }
        }
    }
    let mut reports = Reports::new();
    for worker in workers {
        reports.extend(join_within("appender", worker, Duration::from_secs(30)));
    }
    check_reports(reports, 180);
}

#[test]
fn a_panic_under_the_engine_lock_and_into_inner_with_live_clones() {
    // Attack (d)/(f): with_engine's closure panics (poisoning the engine
    // lock) while threads append; the handle keeps working with correct
    // outcomes; into_inner refuses while a clone lives and succeeds after.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (shared, _) = open_without_fsync(dir.path(), 4096);
    let (finish, finished) = mpsc::channel::<()>();
    let finished = Arc::new(Mutex::new(finished));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (shared, finished) = (shared.clone(), Arc::clone(&finished));
            std::thread::spawn(move || {
                let mut reports = Reports::new();
                for i in 0..50 {
                    let entry = mixed_entry(t * 77 + i);
                    let appended = shared.try_append(&entry).unwrap();
                    reports.push((appended.index.0, entry, appended.outcome));
                }
                // Keep this clone alive until told.
                let _ = finished.lock().unwrap().recv();
                reports
            })
        })
        .collect();
    for _ in 0..3 {
        let panicker = shared.clone();
        let result = std::thread::spawn(move || {
            panicker.with_engine(|_| -> cpwal::Result<()> { panic!("caller bug under the lock") })
        })
        .join();
        assert!(result.is_err());
    }
    let shared = match shared.into_inner() {
        Ok(_) => panic!("into_inner succeeded while clones were appending"),
        Err(shared) => shared,
    };
    drop(finish);
    let mut reports = Reports::new();
    for worker in workers {
        reports.extend(join_within("appender", worker, Duration::from_secs(30)));
    }
    let end = shared.last_written_index().unwrap().0 + 1;
    let replayed = check_reports(reports, end);
    let engine = shared.into_inner().expect("the last handle");
    assert_eq!(engine.catalog(), &replayed);
}
