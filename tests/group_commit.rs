//! Tests of group commit (`SharedControlPlane`) on real files, through a
//! small storage wrapper that keeps every write in memory until a sync makes
//! it durable, so dropping the handle is a power loss that keeps exactly what
//! was synced; it can also hold a sync in flight and make it fail.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpwal::{
    ApplyOutcome, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane, Error, Options,
    ReplicaControlPlane, SharedControlPlane,
};

#[path = "support/gated_node.rs"]
mod gated_node;
#[path = "support/gated_storage.rs"]
mod gated_storage;

use gated_node::{admit, create_shared, one_sync_at_a_time, voter, wait_until, Shared};
use gated_storage::{Faults, Gate, GatedStorage};

/// The node in `dir` after a power loss.
fn reopen(dir: &Path) -> DurableControlPlane {
    gated_node::reopen(dir, Options::default())
}

/// One acknowledged append: what was appended, where, and when the call
/// started and returned on a shared logical clock.
struct Ack {
    entry: ControlPlaneEntry,
    index: u64,
    started: u64,
    returned: u64,
}

fn append_concurrently(shared: &Shared, threads: u64, per_thread: u64) -> Vec<Ack> {
    let clock = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (shared, clock) = (shared.clone(), Arc::clone(&clock));
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let entry = admit(t * 1_000_000 + i);
                        let started = clock.fetch_add(1, Ordering::SeqCst);
                        let index = shared.try_append(&entry).unwrap().index.0;
                        let returned = clock.fetch_add(1, Ordering::SeqCst);
                        Ack {
                            entry,
                            index,
                            started,
                            returned,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect()
}

#[test]
fn shared_append_concurrent_appenders_survive_power_loss_in_order() {
    // Goal: with many threads appending through one handle, across segment
    // rollovers, every acknowledged entry is durable, present exactly once,
    // and a call that started after another returned got a higher index.
    // Method: 8 threads x 60 appends into 4 KiB segments on a storage that
    // loses every unsynced write; drop it (power loss), reopen on real files
    // and compare with the acknowledgements.
    let dir = tempfile::tempdir().unwrap();
    let (shared, _faults) = create_shared(dir.path(), one_sync_at_a_time(4096));
    let acks = append_concurrently(&shared, 8, 60);
    drop(shared);
    let node = reopen(dir.path());
    let total = acks.len() as u64;
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(total - 1)));
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(total - 1)));
    let mut seen = std::collections::HashMap::new();
    for index in 0..total {
        let entry = node.read(ControlPlaneIndex(index)).unwrap().entry;
        *seen.entry(format!("{entry:?}")).or_insert(0) += 1;
    }
    for ack in &acks {
        assert_eq!(
            node.read(ControlPlaneIndex(ack.index)).unwrap().entry,
            ack.entry
        );
        assert_eq!(seen[&format!("{:?}", ack.entry)], 1, "entry stored once");
    }
    for before in &acks {
        for after in acks.iter().filter(|a| a.started > before.returned) {
            assert!(
                after.index > before.index,
                "index order follows acknowledgement"
            );
        }
    }
}

/// Holds the first sync of `shared` in flight, lets `callers - 1` more
/// appends write behind it, then runs `release` and returns every result.
fn appends_behind_held_sync(
    shared: &Shared,
    faults: &Faults,
    callers: u64,
    release: impl FnOnce(&mut Gate),
) -> Vec<cpwal::Result<ControlPlaneIndex>> {
    let written_before = shared.last_written_index().map_or(0, |i| i.0 + 1);
    let entered_before = faults.entered();
    faults.set(|g| g.hold_syncs = true);
    let spawn = |n: u64| {
        let shared = shared.clone();
        std::thread::spawn(move || shared.try_append(&admit(n)).map(|a| a.index))
    };
    let mut workers = vec![spawn(0)];
    wait_until("the leader's sync", || {
        faults.entered() == entered_before + 1
    });
    workers.extend((1..callers).map(spawn));
    // Writes wait in the log's buffer: the next leader writes them all.
    wait_until("every write", || {
        shared.last_written_index() == Some(ControlPlaneIndex(written_before + callers - 1))
    });
    faults.set(release);
    workers.into_iter().map(|w| w.join().unwrap()).collect()
}

#[test]
fn shared_append_callers_during_a_sync_share_the_next_one() {
    // Goal: calls arriving while a sync is in flight share the next sync.
    // Method: hold the first sync, let 7 more callers write, release; all 8
    // succeed with distinct indexes and exactly two syncs were made.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    let entered_before = faults.entered();
    let results = appends_behind_held_sync(&shared, &faults, 8, |g| g.hold_syncs = false);
    let mut indexes: Vec<u64> = results.into_iter().map(|r| r.unwrap().0).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..8).collect::<Vec<_>>());
    assert_eq!(
        faults.entered() - entered_before,
        2,
        "leader's sync + one shared sync"
    );
    drop(shared);
    assert_eq!(reopen(dir.path()).last_index(), Some(ControlPlaneIndex(7)));
}

#[test]
fn shared_commit_index_waits_for_the_sync() {
    // Goal: the sole voter's commit point covers only durable entries, never
    // ones written and waiting for their sync. Method: append one entry,
    // hold the next sync with 3 callers written behind it and check the
    // commit point from another thread, then release and check again.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    shared.try_append(&admit(100)).unwrap();
    let observer = shared.clone();
    let seen_while_held = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&seen_while_held);
    let results = appends_behind_held_sync(&shared, &faults, 3, move |g| {
        *seen.lock().unwrap() = Some(observer.commit_index());
        g.hold_syncs = false;
    });
    assert!(results.iter().all(Result::is_ok));
    let while_held = seen_while_held.lock().unwrap().take();
    assert_eq!(while_held, Some(Some(ControlPlaneIndex(0))));
    assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(3)));
}

#[test]
fn shared_append_sync_failure_fails_every_waiter_and_latches() {
    // Goal: a failed sync fails its leader and every caller waiting behind
    // it, even though a retry would succeed (fsync errors are not retried),
    // and the handle stays failed. Method: hold the first sync, let 5 more
    // callers write, make that one sync fail; check all 6 fail and later
    // calls too, then reopen and check no entry was acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    shared.try_append(&admit(100)).unwrap();
    let results = appends_behind_held_sync(&shared, &faults, 6, |g| {
        g.fail_next = true;
        g.hold_syncs = false;
    });
    for result in results {
        assert!(
            matches!(result, Err(Error::Failed { .. }) | Err(Error::Io { .. })),
            "{result:?}"
        );
    }
    assert!(matches!(
        shared.try_append(&admit(200)),
        Err(Error::Failed { .. })
    ));
    assert!(shared.with_engine(|e| Ok(e.is_leader())).is_err());
    drop(shared);
    let node = reopen(dir.path());
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(0)));
}

#[test]
fn shared_with_engine_sees_written_entries_durable_and_committed() {
    // Goal: `with_engine` hands out an engine with nothing unsynced and the
    // commit point at the durable end. Method: append through the handle,
    // then read commit and entries inside `with_engine`.
    let dir = tempfile::tempdir().unwrap();
    let (shared, _faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    let appended = shared
        .try_append_batch(&[admit(1), admit(2), admit(3)])
        .unwrap();
    assert_eq!(appended.first_index, ControlPlaneIndex(0));
    assert_eq!(appended.outcomes, vec![ApplyOutcome::Admitted; 3]);
    let commit = shared.with_engine(|e| Ok(e.commit_index())).unwrap();
    assert_eq!(commit, Some(ControlPlaneIndex(2)));
    let engine = shared.into_inner().unwrap();
    assert_eq!(engine.last_index(), Some(ControlPlaneIndex(2)));
}

#[test]
fn shared_append_catalog_and_outcomes_match_the_log_replayed_in_order() {
    // Goal: the catalog a `SharedControlPlane` builds while threads append
    // (applied from the entries kept in memory, not read back) is exactly
    // the catalog of the log replayed in index order, and each call gets
    // back what applying its own entries did (issue #13 item 3: applied by
    // whichever caller led the sync, handed over to the writer). Method: 8
    // threads race ownership transitions over 4 ranges with colliding
    // epochs (so the order decides which are fenced) plus membership
    // changes, as single appends and batches; compare the live catalog
    // with a reopened node's, which replays the log from disk, and every
    // reported (index, outcome) with a fresh catalog fed the log in order.
    let dir = tempfile::tempdir().unwrap();
    let (shared, _faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 16));
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut reported = Vec::new();
                for i in 0..60u64 {
                    let transition = cpwal::OwnershipTransition {
                        range: format!("range-{}", (t + i) % 4),
                        new_owner: voter(&format!("CN=owner-{t}")),
                        ownership_epoch: i / 3 + t % 2,
                    };
                    let transition = ControlPlaneEntry::OwnershipTransition(transition);
                    if i % 2 == 0 {
                        let batch = [transition, admit(t * 1000 + i % 5)];
                        let appended = shared.try_append_batch(&batch).unwrap();
                        assert_eq!(appended.outcomes.len(), 2);
                        reported.extend(appended.iter().map(|(i, o)| (i, o.clone())));
                    } else {
                        let appended = shared.try_append(&transition).unwrap();
                        reported.push((appended.index, appended.outcome));
                    }
                }
                reported
            })
        })
        .collect();
    let mut reported: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    reported.sort_by_key(|(index, _)| *index);
    let live = shared.with_engine(|e| Ok(e.catalog().clone())).unwrap();
    assert!(live.refused_count() > 0, "some transitions must be fenced");
    drop(shared);
    let replayed = reopen(dir.path());
    assert_eq!(replayed.catalog(), &live);
    assert_eq!(live.applied_end(), ControlPlaneIndex(8 * 60 + 8 * 30));
    let mut fresh = cpwal::ControlPlaneCatalog::new();
    assert_eq!(reported.len() as u64, live.applied_end().0, "one per entry");
    for (index, outcome) in reported {
        let entry = replayed.read(index).unwrap().entry;
        assert_eq!(fresh.apply(index, &entry).unwrap(), outcome, "at {index}");
    }
}

#[test]
fn shared_append_no_sync_after_a_failed_one_acknowledges_anything() {
    // Goal: a sync of the log that overlaps or follows a failed one never
    // acknowledges entries: Linux reports a writeback error to one fdatasync
    // only and marks the pages clean, so such a sync can succeed for pages
    // the failed one lost. Method: 4 KiB segments; hold the leader's sync;
    // another thread writes a batch that rolls the segment over, which syncs
    // the same file under the engine lock; the leader's sync (first into the
    // gate) fails. Every call that returned Ok must find its entries after a
    // power loss. (Without the latch's one sync at a time per file the
    // rollover's sync ran beside the leader's, succeeded, and the leader's
    // entry was acknowledged and lost; with it, the rollover's sync waits
    // and then fails.)
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(4096));
    let first_sync = faults.entered() + 1;
    faults.set(|g| {
        g.hold_syncs = true;
        g.fail_entered = Some(first_sync);
    });
    let leader = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.try_append(&admit(0)).map(|a| vec![a.index.0]))
    };
    wait_until("the leader's sync", || faults.entered() == first_sync);
    let roller = {
        let shared = shared.clone();
        let batch: Vec<_> = (1..60).map(admit).collect();
        std::thread::spawn(move || {
            shared
                .try_append_batch(&batch)
                .map(|b| b.iter().map(|(i, _)| i.0).collect::<Vec<_>>())
        })
    };
    // Without the latch's rule the rollover's sync enters the fault gate
    // too; with it, it waits behind the held sync and never gets there while
    // held.
    let deadline = Instant::now() + Duration::from_millis(300);
    while faults.entered() == first_sync && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    faults.set(|g| g.hold_syncs = false);
    let acknowledged: Vec<u64> = [leader.join().unwrap(), roller.join().unwrap()]
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .collect();
    drop(shared);
    let reopened = DurableControlPlane::open(
        dir.path(),
        voter("CN=node-a"),
        Options::default().with_segment_size_bytes(4096),
    );
    let node = reopened.expect("recovery after the failed sync");
    for index in acknowledged {
        assert!(
            node.read(ControlPlaneIndex(index)).is_ok(),
            "entry {index} was acknowledged and lost"
        );
    }
}

#[test]
fn shared_append_on_a_replica_truncated_during_its_sync_is_not_acknowledged() {
    // Goal: an append through `SharedControlPlane` on a replica leader whose
    // entry is removed by a suffix truncation while its sync is in flight
    // never returns `Ok`: the index it would report holds another leader's
    // entry. Method: a replica leads term 1 and holds index 0; its append of
    // index 1 is held in fdatasync; meanwhile `with_engine` takes the engine
    // lock and serves a term-2 leader's AppendEntries that replaces index 1
    // (it waits for the file's sync, then truncates); release the sync and
    // check the append's answer (a typed `Truncated`, never `Ok`) and what
    // index 1 holds.
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = GatedStorage::open(dir.path());
    let options = Options::default().with_segment_size_bytes(1 << 20);
    let mut engine =
        ReplicaControlPlane::create_with_storage(storage, voter("CN=node-a"), options).unwrap();
    let term = engine.start_election().unwrap();
    engine.become_leader(term).unwrap();
    let shared = SharedControlPlane::new(engine);
    let first = shared.append_uncommitted(&admit(0)).unwrap();
    assert_eq!(first, ControlPlaneIndex(0));
    let entered_before = faults.entered();
    faults.set(|g| g.hold_syncs = true);
    let appender = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.append_uncommitted_batch(&[admit(1)]))
    };
    wait_until("the append's sync", || {
        faults.entered() == entered_before + 1
    });
    let replacement = cpwal::LogEntry {
        index: ControlPlaneIndex(1),
        term: cpwal::ControlPlaneTerm(2),
        entry: admit(99),
    };
    let request = cpwal::AppendEntriesRequest {
        term: cpwal::ControlPlaneTerm(2),
        leader: voter("CN=node-b"),
        prev_log_index: Some(ControlPlaneIndex(0)),
        prev_log_term: cpwal::ControlPlaneTerm(1),
        entries: vec![replacement],
        leader_commit: None,
    };
    let truncator = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.with_engine(|e| e.append_entries(&request)))
    };
    // Nothing to observe while `with_engine` waits for the held sync under
    // the engine lock; give it ample time to get there.
    std::thread::sleep(Duration::from_millis(300));
    faults.set(|g| g.hold_syncs = false);
    let appended = appender.join().unwrap();
    let reply = truncator.join().unwrap().unwrap();
    assert!(
        matches!(reply.outcome, cpwal::AppendOutcome::Accepted { .. }),
        "{reply:?}"
    );
    let held = shared
        .with_engine(|e| e.read(ControlPlaneIndex(1)))
        .unwrap();
    assert_eq!(held.entry, admit(99), "the term-2 leader's entry is at 1");
    assert!(
        matches!(
            &appended,
            Err(Error::Truncated { written, removed_from: 1 }) if *written == (1..2)
        ),
        "the append returned {appended:?}, but index 1 holds the term-2 leader's entry"
    );
}

#[test]
fn shared_read_of_an_entry_whose_sync_is_held_is_refused() {
    // Goal: the shared handle's reads (which do not sync) never serve an
    // entry a crash could take back: an entry written by an append whose
    // sync is still running is refused, typed, until the sync completes;
    // durable entries are served meanwhile. Method: hold syncs; a thread
    // appends index 1 and waits in its sync; read 1 and 0; release; read 1.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = create_shared(dir.path(), one_sync_at_a_time(1 << 20));
    let first = shared.try_append(&admit(0)).unwrap();
    assert_eq!(first.index, ControlPlaneIndex(0));
    let entered_before = faults.entered();
    faults.set(|g| g.hold_syncs = true);
    let appender = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.try_append(&admit(1)))
    };
    wait_until("the append's sync", || {
        faults.entered() == entered_before + 1
    });
    assert_eq!(shared.last_written_index(), Some(ControlPlaneIndex(1)));
    for refused in [
        shared.read(ControlPlaneIndex(1)).map(drop),
        shared.term_at(ControlPlaneIndex(1)).map(drop),
        shared
            .read_range(ControlPlaneIndex(0), ControlPlaneIndex(2))
            .map(drop),
    ] {
        assert!(
            matches!(
                refused,
                Err(cpwal::Error::InvalidInput(cpwal::InvalidInput::Index {
                    index: 1,
                    ..
                }))
            ),
            "{refused:?}"
        );
    }
    assert_eq!(shared.read(ControlPlaneIndex(0)).unwrap().entry, admit(0));
    faults.set(|g| g.hold_syncs = false);
    let appended = appender.join().unwrap().unwrap();
    assert_eq!(appended.index, ControlPlaneIndex(1));
    assert_eq!(appended.outcome, ApplyOutcome::Admitted);
    assert_eq!(shared.read(ControlPlaneIndex(1)).unwrap().entry, admit(1));
}
