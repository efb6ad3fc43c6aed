//! Adversarial tests of group commit's clock watch (commit 837bf85: a
//! broadcast wake-up clears `GroupState::watching`; only a watcher that
//! woke alone hands the watch over). The attack: strand a writer the sync
//! in flight does not cover, asleep without a timeout while nobody watches
//! the clock, so that it waits out a whole held sync instead of starting a
//! second one once `second_sync_after` has passed; or get more than two
//! syncs in flight, an acknowledgement out of sync order, or an
//! acknowledged entry lost. On the gated storage
//! (tests/support/gated_storage.rs): writes stay in memory until a sync of
//! the same inode passes the gate; dropping the node is a power loss.
//! Every wait has a deadline, and every test releases the gate before it
//! fails, so a hang is a failure, not a stuck run.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpwal::{
    AppendEntriesRequest, AppendOutcome, ControlPlaneIndex, ControlPlaneTerm, Error, LogEntry,
    Options, ReplicaControlPlane, SharedControlPlane,
};

#[path = "support/gated_storage.rs"]
mod gated_storage;

#[path = "support/gated_node.rs"]
mod gated_node;

use gated_node::{
    admit, create_shared, holds_within, reopen, spawn_append, voter, wait_until, Shared,
};
use gated_storage::{Faults, GatedStorage};

/// A shared node on the gated storage whose syncs overlap once one has run
/// for `after`, its syncs settling without a real fdatasync (the power loss
/// these tests check is the gated storage's), with entry 0 appended.
fn warmed_up(dir: &Path, after: Duration) -> (Shared, Arc<Faults>) {
    let (shared, faults) = create_shared(dir, Options::default().with_second_sync_after(after));
    faults.set(|g| g.skip_fsync = true);
    let first = shared.try_append(&admit(0)).unwrap().index;
    assert_eq!(first, ControlPlaneIndex(0));
    (shared, faults)
}

/// Joins `handle` if it finishes within `secs` seconds; otherwise lets
/// every sync through (so nothing stays blocked) and fails naming `what`.
fn join_within<T>(what: &str, handle: JoinHandle<T>, faults: &Faults, secs: u64) -> T {
    if !holds_within(Duration::from_secs(secs), || handle.is_finished()) {
        faults.set(|g| {
            g.pass_only = None;
            g.hold_syncs = false;
        });
        panic!("{what} did not return within {secs} s: a stranded or deadlocked writer");
    }
    handle.join().unwrap()
}

/// Fails naming `what` unless `condition` holds within `secs` seconds,
/// letting every sync through first so that no thread stays blocked.
fn require_within(what: &str, faults: &Faults, secs: u64, condition: impl Fn() -> bool) {
    if !holds_within(Duration::from_secs(secs), condition) {
        faults.set(|g| {
            g.pass_only = None;
            g.hold_syncs = false;
        });
        panic!("{what} did not happen within {secs} s");
    }
}

/// Two syncs held at the gate: P's (A), and Q's (B), which Q started
/// beside A once due.
struct TwoHeld {
    /// The gate count before A.
    base: usize,
    p: JoinHandle<cpwal::Result<ControlPlaneIndex>>,
    q: JoinHandle<cpwal::Result<ControlPlaneIndex>>,
}

/// Holds every sync, then appends entry 1 (P, leading sync A) and entry 2
/// (Q, behind A, starting sync B once A has run past the threshold).
fn two_syncs_held(shared: &Shared, faults: &Faults) -> TwoHeld {
    let base = faults.entered();
    faults.set(|g| g.pass_only = Some(Vec::new()));
    let p = spawn_append(shared, 1);
    require_within("sync A", faults, 5, || faults.entered() == base + 1);
    let q = spawn_append(shared, 2);
    require_within("sync B beside A", faults, 5, || {
        faults.entered() == base + 2
    });
    TwoHeld { base, p, q }
}

#[test]
fn writers_asleep_behind_two_syncs_take_the_watch_again_after_the_broadcast() {
    // Goal: the broadcast that ends a sync clears the watch (837bf85), and
    // a writer that then needs the clock takes it: writers that slept
    // without a timeout (two syncs in flight) start a third sync once the
    // first ends, and again after the next broadcast. Method: threshold
    // 200 ms, every sync held. P leads sync A; Q writes behind it and
    // starts B once due; Y1..Y3 write behind B and sleep (two in flight:
    // no timeout, nobody may start a third; checked for 300 ms). Release A
    // alone: A's broadcast wakes them, B has run past the threshold, so
    // one of them starts C within 3 s. Z writes behind C (B, C held: two in
    // flight again); release B alone: Z starts D within 3 s. Release all;
    // everyone is acknowledged in index order; power loss; reopen: every
    // entry is there.
    let dir = tempfile::tempdir().unwrap();
    let after = Duration::from_millis(200);
    let (shared, faults) = warmed_up(dir.path(), after);
    let TwoHeld { base, p, q } = two_syncs_held(&shared, &faults);
    let ys: Vec<_> = (3..=5).map(|n| spawn_append(&shared, n)).collect();
    require_within("Y's writes", &faults, 5, || {
        shared.last_written_index() == Some(ControlPlaneIndex(5))
    });
    std::thread::sleep(Duration::from_millis(300));
    let third_early = faults.entered();
    // A ends alone: its broadcast clears the watch.
    faults.set(|g| g.pass_only = Some(vec![base + 1]));
    require_within(
        "a third sync (C) started by a writer woken by A's broadcast",
        &faults,
        3,
        || faults.entered() == base + 3,
    );
    let z = spawn_append(&shared, 6);
    require_within("Z's write", &faults, 5, || {
        shared.last_written_index() == Some(ControlPlaneIndex(6))
    });
    faults.set(|g| g.pass_only = Some(vec![base + 1, base + 2]));
    require_within(
        "a fourth sync (D) started by Z once B's broadcast woke it",
        &faults,
        3,
        || faults.entered() == base + 4,
    );
    faults.set(|g| g.pass_only = None);
    assert_eq!(
        third_early,
        base + 2,
        "a third sync while two were in flight"
    );
    let mut indexes = vec![join_within("P", p, &faults, 5).unwrap()];
    indexes.push(join_within("Q", q, &faults, 5).unwrap());
    for y in ys {
        indexes.push(join_within("Y", y, &faults, 5).unwrap());
    }
    indexes.push(join_within("Z", z, &faults, 5).unwrap());
    let got: BTreeSet<u64> = indexes.iter().map(|i| i.0).collect();
    assert_eq!(got, (1..=6).collect(), "{indexes:?}");
    drop(shared); // power loss
    let node = reopen(dir.path(), Options::default());
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(6)));
}

#[test]
fn under_churn_every_writer_behind_a_held_sync_gets_a_second_once_due() {
    // Goal: across many rounds of random arrival orders (the watch taken
    // before the sync in flight says what it covers, by a writer that then
    // becomes covered, re-taken after broadcasts, handed over after a
    // timeout), (a) whenever a writer wrote behind the one held sync, a
    // second sync starts within 2 s (threshold 30 ms): no writer is
    // stranded without a clock; (b) never more than two syncs at the gate;
    // (c) a later sync that returns first moves no commit point until the
    // earlier one is released; (d) every acknowledged entry survives a
    // power loss. Method: 5 threads append 12 entries each; the test holds
    // every sync and releases them itself, the older first on even rounds
    // and the newer first (checking (c)) on odd ones; the gate count of
    // syncs is the only clock it reads.
    let dir = tempfile::tempdir().unwrap();
    let after = Duration::from_millis(30);
    let (shared, faults) = warmed_up(dir.path(), after);
    faults.set(|g| g.pass_only = Some(Vec::new()));
    let acknowledged = Arc::new(Mutex::new(vec![(ControlPlaneIndex(0), 0u64)]));
    let failed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..5u64)
        .map(|t| {
            let (shared, acknowledged) = (shared.clone(), Arc::clone(&acknowledged));
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                for i in 0..12u64 {
                    let n = 1000 * (t + 1) + i;
                    match shared.try_append(&admit(n)) {
                        Ok(appended) => acknowledged.lock().unwrap().push((appended.index, n)),
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            panic!("append {n}: {e:?}");
                        }
                    }
                }
            })
        })
        .collect();
    // Every sync so far (the creation's, the first append's) has passed.
    let mut passed: Vec<usize> = (1..=faults.entered()).collect();
    let held = |passed: &Vec<usize>| -> Vec<usize> {
        (1..=faults.entered())
            .filter(|c| !passed.contains(c))
            .collect()
    };
    let release = |passed: &mut Vec<usize>, count: usize| {
        passed.push(count);
        let list = passed.clone();
        faults.set(|g| g.pass_only = Some(list));
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut round, mut seconds_started) = (0u64, 0u64);
    while !writers.iter().all(|w| w.is_finished()) {
        assert!(!failed.load(Ordering::SeqCst), "a writer failed");
        if Instant::now() > deadline {
            faults.set(|g| g.pass_only = None);
            panic!("the writers did not finish in 40 s");
        }
        let now_held = held(&passed);
        assert!(now_held.len() <= 2, "syncs at the gate: {now_held:?}");
        match now_held.len() {
            0 => std::thread::sleep(Duration::from_millis(1)),
            1 => {
                let written = shared.last_written_index();
                // A write after the held sync reached the gate is one it
                // does not cover: a second sync is due within 30 ms.
                let behind = holds_within(Duration::from_millis(150), || {
                    shared.last_written_index() > written || held(&passed).len() == 2
                });
                if behind && held(&passed).len() < 2 {
                    let second = holds_within(Duration::from_secs(2), || held(&passed).len() == 2);
                    if !second {
                        faults.set(|g| g.pass_only = None);
                        panic!(
                            "round {round}: a writer wrote behind the held sync {:?} and no \
                             second sync started within 2 s (threshold 30 ms)",
                            held(&passed)
                        );
                    }
                }
                if held(&passed).len() == 1 {
                    release(&mut passed, now_held[0]);
                }
            }
            _ => {
                seconds_started += 1;
                round += 1;
                let (older, newer) = (now_held[0], now_held[1]);
                if round % 2 == 1 {
                    let commit = shared.commit_index();
                    let finished = faults.finished();
                    release(&mut passed, newer);
                    wait_until("the newer sync's return", || faults.finished() > finished);
                    std::thread::sleep(Duration::from_millis(5));
                    assert_eq!(
                        shared.commit_index(),
                        commit,
                        "round {round}: a later sync was recorded before the earlier one ended"
                    );
                }
                release(&mut passed, older);
                if round % 2 == 0 {
                    release(&mut passed, newer);
                }
            }
        }
    }
    faults.set(|g| g.pass_only = None);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(
        seconds_started >= 5,
        "only {seconds_started} rounds with two syncs in flight"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 61);
    drop(shared); // power loss
    let node = reopen(dir.path(), Options::default());
    for (index, n) in acknowledged {
        assert_eq!(node.read(index).unwrap().entry, admit(n), "entry {index:?}");
    }
}

#[test]
fn a_failed_first_sync_fails_every_sleeper_behind_two_syncs_promptly() {
    // Goal: with two syncs in flight and writers asleep without a timeout
    // behind them, a failure of the first returns every waiter (none is
    // stranded, none acknowledged: the second's writer included) and the
    // node stops. Method: threshold 50 ms, every sync held; P leads A, Q
    // starts B, Y1..Y4 write behind both; A fails, B passes; everyone
    // returns an error within 5 s; a new append fails at once.
    let dir = tempfile::tempdir().unwrap();
    let after = Duration::from_millis(50);
    let (shared, faults) = warmed_up(dir.path(), after);
    let TwoHeld { base, p, q } = two_syncs_held(&shared, &faults);
    let ys: Vec<_> = (3..=6).map(|n| spawn_append(&shared, n)).collect();
    require_within("Y's writes", &faults, 5, || {
        shared.last_written_index() == Some(ControlPlaneIndex(6))
    });
    std::thread::sleep(Duration::from_millis(100));
    faults.set(|g| {
        g.fail_entered = Some(base + 1);
        g.pass_only = None;
    });
    assert!(join_within("P", p, &faults, 5).is_err());
    let q = join_within("Q", q, &faults, 5);
    assert!(matches!(q, Err(Error::Failed { .. })), "Q: {q:?}");
    for y in ys {
        let y = join_within("Y", y, &faults, 5);
        assert!(
            y.is_err(),
            "a writer acknowledged after a failed sync: {y:?}"
        );
    }
    assert!(shared.failure().is_some());
    assert!(shared.try_append(&admit(7)).is_err());
    assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(0)));
}

#[test]
fn a_truncation_during_a_held_sync_fails_its_writers_and_the_new_epoch_starts_a_second() {
    // Goal: on a replica, a leader's AppendEntries truncating entries whose
    // sync is held gets their writers `Truncated` (never `Ok`, though the
    // held sync later succeeds), and a writer of the new epoch, which the
    // held (now stale) sync does not cover, starts a second sync once due
    // instead of waiting out the held one. Method: threshold 300 ms; a warm-up
    // append (sync 0, writer's description); P's sync (1, second
    // description) is held, every other sync passes; `with_engine` syncs
    // (writer's description) and applies a term-2 leader's entry at P's
    // index, then leads term 3; X appends: a further sync must reach the
    // gate within 3 s while P's is still held. Release: P is Truncated, X
    // acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = GatedStorage::open(dir.path());
    faults.set(|g| g.skip_fsync = true);
    let options = Options::default().with_second_sync_after(Duration::from_millis(300));
    let mut engine =
        ReplicaControlPlane::create_with_storage(storage, voter("CN=node-a"), options).unwrap();
    let term = engine.start_election().unwrap();
    engine.become_leader(term).unwrap();
    let shared = SharedControlPlane::new(engine);
    assert_eq!(
        shared.append_uncommitted(&admit(0)).unwrap(),
        ControlPlaneIndex(0)
    );
    let held = faults.entered() + 1;
    faults.set(|g| g.pass_only = Some((1..100_000).filter(|&c| c != held).collect()));
    let p = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.append_uncommitted(&admit(1)))
    };
    require_within("P's sync", &faults, 5, || faults.entered() == held);
    let request = AppendEntriesRequest {
        term: ControlPlaneTerm(term.0 + 1),
        leader: voter("CN=node-b"),
        prev_log_index: Some(ControlPlaneIndex(0)),
        prev_log_term: term,
        entries: vec![LogEntry {
            index: ControlPlaneIndex(1),
            term: ControlPlaneTerm(term.0 + 1),
            entry: admit(999),
        }],
        leader_commit: None,
    };
    shared
        .with_engine(|e| {
            let reply = e.append_entries(&request)?;
            assert!(
                matches!(reply.outcome, AppendOutcome::Accepted { .. }),
                "{reply:?}"
            );
            let t = e.start_election()?;
            e.become_leader(t)
        })
        .unwrap();
    let before_x = faults.entered();
    let x = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.append_uncommitted(&admit(2)))
    };
    let started = Instant::now();
    let second = holds_within(Duration::from_secs(3), || faults.entered() > before_x);
    let waited = started.elapsed();
    faults.set(|g| g.pass_only = None);
    let p = join_within("P", p, &faults, 5);
    let x = join_within("X", x, &faults, 5);
    assert!(
        second,
        "X (new epoch) waited {waited:?} behind the held stale sync without starting a second"
    );
    assert!(
        matches!(p, Err(Error::Truncated { .. })),
        "P's truncated entry: {p:?}"
    );
    let x = x.unwrap();
    assert_eq!(x, ControlPlaneIndex(2));
    // Power loss: the term-2 entry and X's acknowledged entry survive;
    // P's held sync, released last, put nothing of its own over them.
    drop(shared);
    let node = ReplicaControlPlane::open(dir.path(), voter("CN=node-a"), Options::default());
    let node = node.unwrap();
    assert_eq!(
        node.last_index(),
        Some(ControlPlaneIndex(2)),
        "X's entry lost"
    );
    assert_eq!(node.read(ControlPlaneIndex(1)).unwrap().entry, admit(999));
    assert_eq!(node.read(ControlPlaneIndex(2)).unwrap().entry, admit(2));
}
