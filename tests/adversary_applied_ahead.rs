//! Adversarial tests of the shared handle's apply-ahead
//! (src/engine/applied_ahead.rs): the group-commit leader applies the
//! entries its sync covers before the sync runs; readers must never see
//! them, and every writer must get exactly the outcomes a replay of the
//! committed log gives. On the gated storage and real files (a reader
//! during a held sync; stress with compactions and elections), and on the
//! simulated disk ([`on_the_simulated_disk`]: panics, failed syncs and
//! failed started writebacks, then a power cut).
//!
//! Seeds: `CPWAL_SIM_SEEDS=n` (default 6 for each stress test, 40 on the
//! simulated disk).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpwal::io::Storage;
use cpwal::{
    ApplyOutcome, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    DurableControlPlane, MembershipChange, Options, OwnershipTransition, SharedControlPlane,
    SoleVoter,
};

#[path = "support/gated_storage.rs"]
mod gated_storage;

#[path = "support/gated_node.rs"]
mod gated_node;

use gated_node::{create_shared, voter, wait_until, Shared};
use support::catalog_replay::replay;

fn transition(range: u64, owner: u64, epoch: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{range}"),
        new_owner: voter(&format!("CN=node-{owner}")),
        ownership_epoch: epoch,
    })
}

fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=m{n}"))))
}

fn remove(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter(&format!("CN=m{n}"))))
}

fn leader(term: u64, n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::LeaderConfiguration {
        term: ControlPlaneTerm(term),
        leader: voter(&format!("CN=node-{n}")),
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random entry over a tiny key space, so that every outcome kind
/// (transferred, new, fenced, admitted, already, removed, not member,
/// leader recorded, stale leader) happens often.
fn random_entry(rng: &mut Rng) -> ControlPlaneEntry {
    match rng.below(5) {
        0 | 1 => transition(rng.below(4), rng.below(3), rng.below(12)),
        2 => admit(rng.below(5)),
        3 => remove(rng.below(5)),
        _ => leader(rng.below(30), rng.below(3)),
    }
}

fn log_entries<S: Storage>(node: &DurableControlPlane<S>) -> Vec<ControlPlaneEntry> {
    let end = node.last_index().map_or(0, |i| i.0 + 1);
    assert_eq!(
        node.first_index().0,
        0,
        "the test never compacts away entries"
    );
    node.read_range(ControlPlaneIndex(0), ControlPlaneIndex(end))
        .unwrap()
        .into_iter()
        .map(|e| e.entry)
        .collect()
}

#[test]
fn a_reader_during_a_held_sync_sees_only_the_commit_point_and_outcomes_stay_right() {
    // Goal: while a sync is held at the gate (its entries applied ahead), a
    // reader, a second writer, a second reader after it, and then the sync's
    // end never show or misreport anything. Method: gated storage, one sync
    // at a time; a batch of every outcome kind is held; readers interleave
    // with a second batch written behind it; release; compare outcomes and
    // catalog with a replay of the log; power loss; reopen; same catalog.
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .with_segment_size_bytes(4096)
        .with_second_sync_after(Duration::MAX);
    let (shared, faults) = create_shared(dir.path(), options.clone());
    let setup = vec![
        transition(1, 1, 5),
        transition(2, 1, 5),
        admit(1),
        admit(2),
        leader(3, 1),
    ];
    shared.try_append_batch(&setup).unwrap();
    let before = shared.with_catalog(Clone::clone);
    faults.set(|g| g.hold_syncs = true);
    let batch1 = vec![
        transition(1, 2, 10),
        transition(9, 3, 1),
        transition(2, 3, 1),
        admit(7),
        admit(1),
        remove(2),
        remove(8),
        leader(50, 1),
        leader(40, 1),
        transition(9, 4, 2),
    ];
    let batch2 = vec![remove(7), transition(9, 1, 3), leader(60, 2), admit(2)];
    let entered = faults.entered();
    let w1 = {
        let s = shared.clone();
        let b = batch1.clone();
        std::thread::spawn(move || s.try_append_batch(&b))
    };
    wait_until("the first sync at the gate", || faults.entered() > entered);
    assert_eq!(
        shared.with_catalog(Clone::clone),
        before,
        "reader saw applied-ahead entries"
    );
    assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(4)));
    let w2 = {
        let s = shared.clone();
        let b = batch2.clone();
        std::thread::spawn(move || s.try_append_batch(&b))
    };
    wait_until("the second batch written", || {
        shared.last_written_index() == Some(ControlPlaneIndex(18))
    });
    assert_eq!(shared.with_catalog(Clone::clone), before);
    // Let the first sync through only.
    faults.set(|g| {
        g.hold_syncs = false;
        g.tokens = Some(1);
    });
    let r1 = w1.join().unwrap().unwrap();
    let mid = shared.with_catalog(Clone::clone);
    assert_eq!(mid.applied_end(), ControlPlaneIndex(15));
    faults.set(|g| g.tokens = None);
    let r2 = w2.join().unwrap().unwrap();
    let all: Vec<_> = setup
        .iter()
        .chain(&batch1)
        .chain(&batch2)
        .cloned()
        .collect();
    let (outcomes, prefixes) = replay(&all);
    assert_eq!(r1.first_index, ControlPlaneIndex(5));
    assert_eq!(r1.outcomes, outcomes[5..15].to_vec());
    assert_eq!(r2.first_index, ControlPlaneIndex(15));
    assert_eq!(r2.outcomes, outcomes[15..19].to_vec());
    assert_eq!(mid, prefixes[15]);
    assert_eq!(shared.with_catalog(Clone::clone), prefixes[19]);
    let node = shared.into_inner().unwrap();
    assert_eq!(node.catalog(), &prefixes[19]);
    drop(node);
    let reopened = gated_node::reopen(dir.path(), options);
    assert_eq!(reopened.catalog(), &prefixes[19]);
}

/// What a writer thread saw: (first index, outcomes) per acknowledged call.
type Acks = Vec<(u64, Vec<ApplyOutcome>)>;

/// What a [`stress`] run leaves: the handle, each writer's
/// acknowledgements, and the catalogs the readers kept (each with the
/// index it reached).
type Stressed<S> = (
    SharedControlPlane<SoleVoter, S>,
    Vec<Acks>,
    Vec<(u64, ControlPlaneCatalog)>,
);

/// The stress body on `shared`: writers, readers and (with `engine_ops`)
/// a thread of `with_engine` compactions, step-downs and elections.
fn stress<S: Storage + 'static>(
    shared: SharedControlPlane<SoleVoter, S>,
    seed: u64,
    writers: u64,
    calls: u64,
    engine_ops: bool,
) -> Stressed<S> {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let s = shared.clone();
        let stop = Arc::clone(&stop);
        let seen = Arc::clone(&seen);
        let reads = Arc::clone(&reads);
        readers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let before = s.commit_index().map_or(0, |i| i.0 + 1);
                let (end, copy) = s.with_catalog(|c| {
                    let keep = n % 7 == r;
                    (c.applied_end().0, keep.then(|| c.clone()))
                });
                let after = s.commit_index().map_or(0, |i| i.0 + 1);
                assert!(
                    before <= end && end <= after,
                    "catalog applied_end {end} outside the commit points {before}..={after} read around it"
                );
                if let Some(copy) = copy {
                    seen.lock().unwrap().push((end, copy));
                }
                n += 1;
                reads.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(3) {
                    std::thread::yield_now();
                }
            }
        }));
    }
    let engine_thread = engine_ops.then(|| {
        let s = shared.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rng = Rng(seed ^ 0xABCDEF);
            while !stop.load(Ordering::SeqCst) {
                match rng.below(3) {
                    0 => {
                        // A snapshot (never removing entries: the replay needs them).
                        s.with_engine(|e| e.compact(u64::MAX / 2)).unwrap();
                    }
                    1 => {
                        s.with_engine(|e| {
                            let c = e.catalog().clone();
                            assert_eq!(c.applied_end().0, e.commit_index().map_or(0, |i| i.0 + 1));
                            Ok(())
                        })
                        .unwrap();
                    }
                    _ => {
                        // Step down and lead again: writers in between are refused.
                        s.with_engine(|e| {
                            let t = e.current_term().0 + 1;
                            e.observe_term(ControlPlaneTerm(t))?;
                            Ok(())
                        })
                        .unwrap();
                        std::thread::sleep(Duration::from_micros(200));
                        s.with_engine(|e| e.start_election().map(|_| ())).unwrap();
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    });
    let mut handles = Vec::new();
    for w in 0..writers {
        let s = shared.clone();
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(w * 7919 + 1));
            let mut acks = Acks::new();
            let mut made = 0;
            while made < calls {
                made += 1;
                let len = 1 + rng.below(6);
                let batch: Vec<_> = (0..len).map(|_| random_entry(&mut rng)).collect();
                if len == 1 && rng.below(2) == 0 {
                    match s.try_append(&batch[0]) {
                        Ok(a) => acks.push((a.index.0, vec![a.outcome])),
                        Err(cpwal::Error::NotLeader { .. }) => {
                            made -= 1;
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        Err(e) => panic!("writer {w}: {e:?}"),
                    }
                } else {
                    match s.try_append_batch(&batch) {
                        Ok(a) => acks.push((a.first_index.0, a.outcomes)),
                        Err(cpwal::Error::NotLeader { .. }) => {
                            made -= 1;
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        Err(e) => panic!("writer {w}: {e:?}"),
                    }
                }
            }
            acks
        }));
    }
    let acks: Vec<Acks> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    if let Some(e) = engine_thread {
        e.join().unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(reads.load(Ordering::Relaxed) > 0);
    (shared, acks, seen)
}

fn check_stress<S: Storage>(
    node: &DurableControlPlane<S>,
    acks: &[Acks],
    seen: &[(u64, ControlPlaneCatalog)],
) {
    assert!(node.failure().is_none());
    let entries = log_entries(node);
    let (outcomes, prefixes) = replay(&entries);
    // A sole voter writes no entry of its own: every one is a writer's.
    let mut covered = BTreeMap::new();
    for (w, list) in acks.iter().enumerate() {
        for (first, got) in list {
            let range = *first as usize..*first as usize + got.len();
            assert_eq!(
                got[..],
                outcomes[range.clone()],
                "writer {w}: outcomes of {range:?} differ from a replay"
            );
            for i in range {
                assert!(
                    covered.insert(i, w).is_none(),
                    "index {i} acknowledged twice"
                );
            }
        }
    }
    for (end, catalog) in seen {
        assert_eq!(
            catalog, &prefixes[*end as usize],
            "a reader saw a catalog at {end} that no prefix of the log gives"
        );
    }
    assert_eq!(node.catalog(), prefixes.last().unwrap());
    assert_eq!(node.applied_end().0, entries.len() as u64);
}

fn stress_options(seed: u64) -> Options {
    let options = Options::default().with_segment_size_bytes(4096);
    if seed.is_multiple_of(2) {
        options.with_second_sync_after(Duration::ZERO)
    } else {
        options
    }
}

fn seeds() -> u64 {
    support::seed_count(6)
}

#[test]
fn stress_readers_writers_and_engine_ops_on_real_files() {
    for seed in 1..=seeds() {
        let dir = tempfile::tempdir().unwrap();
        let options = stress_options(seed);
        let node =
            DurableControlPlane::create(dir.path(), voter("CN=node-a"), options.clone()).unwrap();
        let shared = SharedControlPlane::new(node);
        let (shared, acks, seen) = stress(shared, seed, 4, 60, seed % 3 != 0);
        let node = shared.into_inner().unwrap();
        check_stress(&node, &acks, &seen);
        let catalog = node.catalog().clone();
        drop(node);
        let reopened = DurableControlPlane::open(dir.path(), voter("CN=node-a"), options).unwrap();
        assert_eq!(reopened.catalog(), &catalog, "seed {seed}");
    }
}

#[test]
fn stress_on_gated_storage_with_slow_syncs() {
    // Syncs pass the gate one token at a time from a pacer thread, so that
    // many writers and readers pile up behind each applied-ahead sync.
    for seed in 1..=seeds() {
        let dir = tempfile::tempdir().unwrap();
        let options = stress_options(seed);
        let (shared, faults) = create_shared(dir.path(), options.clone());
        faults.set(|g| {
            g.skip_fsync = true;
            g.tokens = Some(0);
        });
        let done = Arc::new(AtomicBool::new(false));
        let pacer = {
            let faults = Arc::clone(&faults);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_micros(300));
                    faults.set(|g| g.tokens = Some(g.tokens.unwrap_or(0) + 1));
                }
                faults.set(|g| g.tokens = None);
            })
        };
        let (shared, acks, seen) = stress(shared, seed, 4, 40, seed % 3 != 0);
        done.store(true, Ordering::SeqCst);
        pacer.join().unwrap();
        let node = shared.into_inner().unwrap();
        check_stress(&node, &acks, &seen);
    }
}

#[allow(dead_code)]
fn _unused(_: Shared) {}

/// Panics inside syncs, failed syncs and failed started writebacks while
/// readers take applied-ahead entries back and a second sync overlaps;
/// then a power cut. Every catalog a reader saw must be a prefix of the
/// log that survives; every acknowledged outcome must be what a replay of
/// that log gives.
mod on_the_simulated_disk {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::support::catalog_replay::replay;
    use crate::support::sim_disk::{Rng, SimDisk};
    use crate::support::workload::{voter, Node, NODE_SUBJECT};
    use cpwal::{
        ApplyOutcome, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
        MembershipChange, Options, OwnershipTransition, SharedControlPlane, SoleVoter,
    };

    fn random_entry(rng: &mut Rng) -> ControlPlaneEntry {
        match rng.below(5) {
            0 | 1 => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: format!("r{}", rng.below(4)),
                new_owner: voter(&format!("CN=o{}", rng.below(3))),
                ownership_epoch: rng.below(12),
            }),
            2 => ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!(
                "CN=m{}",
                rng.below(5)
            )))),
            3 => ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter(&format!(
                "CN=m{}",
                rng.below(5)
            )))),
            _ => ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(rng.below(30)),
                leader: voter(&format!("CN=o{}", rng.below(3))),
            },
        }
    }

    fn entries_of(node: &Node, end: Option<u64>) -> Vec<ControlPlaneEntry> {
        let end = end.unwrap_or_else(|| node.last_index().map_or(0, |i| i.0 + 1));
        node.read_range(ControlPlaneIndex(0), ControlPlaneIndex(end))
            .unwrap()
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        Panics,
        FailedSync,
        FailedStartWriteBack,
    }

    type Acks = Vec<(u64, Vec<ApplyOutcome>, Vec<ControlPlaneEntry>)>;

    fn run_seed(seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let disk = SimDisk::new();
        disk.set_sync_delay(Duration::from_micros(50 + rng.below(150)));
        let mut options = Options::default().with_segment_size_bytes(4096);
        if seed.is_multiple_of(2) {
            options = options.with_second_sync_after(Duration::ZERO);
        }
        let fault = match rng.below(4) {
            0 | 1 => Fault::Panics,
            2 => Fault::FailedSync,
            _ => Fault::FailedStartWriteBack,
        };
        let node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options.clone())
            .map_err(|e| e.to_string())?;
        let shared: SharedControlPlane<SoleVoter, SimDisk> = SharedControlPlane::new(node);
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(u64, ControlPlaneCatalog)>>> = Arc::default();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, stop, seen) = (shared.clone(), Arc::clone(&stop), Arc::clone(&seen));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let c = s.with_catalog(Clone::clone);
                        seen.lock().unwrap().push((c.applied_end().0, c));
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let injector = {
            let (disk, stop) = (disk.clone(), Arc::clone(&stop));
            let mut rng = Rng::new(seed ^ 0x5EED);
            std::thread::spawn(move || {
                let mut injected = 0;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_micros(300 + rng.below(2000)));
                    match fault {
                        Fault::Panics => disk.panic_in_next_sync(),
                        Fault::FailedSync if injected == 0 => {
                            disk.fail_sync(disk.counters().syncs + 1 + rng.below(5))
                        }
                        Fault::FailedStartWriteBack if injected == 0 => {
                            disk.fail_next_start_write_back()
                        }
                        _ => {}
                    }
                    injected += 1;
                }
            })
        };
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let s = shared.clone();
                let mut rng = Rng::new(seed.wrapping_mul(1_000_003) ^ w);
                std::thread::spawn(move || {
                    let mut acks = Acks::new();
                    let mut failures = 0;
                    for _ in 0..40 {
                        let n = 1 + rng.below(4);
                        let batch: Vec<_> = (0..n).map(|_| random_entry(&mut rng)).collect();
                        let r = catch_unwind(AssertUnwindSafe(|| s.try_append_batch(&batch)));
                        match r {
                            Ok(Ok(a)) => acks.push((a.first_index.0, a.outcomes, batch)),
                            Ok(Err(_)) => {
                                failures += 1;
                                if failures > 3 {
                                    break;
                                }
                            }
                            Err(_) => {}
                        }
                    }
                    acks
                })
            })
            .collect();
        let acks: Vec<Acks> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::SeqCst);
        injector.join().unwrap();
        for r in readers {
            r.join().map_err(|_| "reader panicked".to_string())?;
        }
        // The node as handed back: its catalog at its commit point.
        let node = shared.into_inner().map_err(|_| "clones left")?;
        let committed = node.commit_index().map_or(0, |i| i.0 + 1);
        if node.applied_end().0 != committed {
            return Err(format!(
                "{fault:?}: into_inner gave applied_end {} but commit end {committed}",
                node.applied_end().0
            ));
        }
        let live = entries_of(&node, Some(committed));
        let (_, live_prefixes) = replay(&live);
        if node.catalog() != &live_prefixes[committed as usize] {
            return Err(format!(
                "{fault:?}: into_inner's catalog is not the log's prefix"
            ));
        }
        drop(node);
        disk.crash(rng.next_u64());
        disk.cut_power_before_operation(u64::MAX);
        // A panic armed after the last sync is still pending: the reopen's
        // first sync consumes it; open again.
        let open = || Node::open_with_storage(disk.clone(), voter(NODE_SUBJECT), options.clone());
        let node = match catch_unwind(AssertUnwindSafe(open)) {
            Ok(opened) => opened,
            Err(_) => open(),
        }
        .map_err(|e| format!("reopen: {e}"))?;
        let survived = entries_of(&node, None);
        let (outcomes, prefixes) = replay(&survived);
        for (w, list) in acks.iter().enumerate() {
            for (first, got, batch) in list {
                let range = *first as usize..*first as usize + got.len();
                if survived.get(range.clone()) != Some(&batch[..]) {
                    return Err(format!(
                        "{fault:?}: writer {w}'s acknowledged {range:?} lost"
                    ));
                }
                if got[..] != outcomes[range.clone()] {
                    return Err(format!(
                        "{fault:?}: writer {w}'s outcomes of {range:?}: got {got:?}, replay {:?}",
                        &outcomes[range.clone()]
                    ));
                }
            }
        }
        for (end, catalog) in seen.lock().unwrap().iter() {
            let Some(prefix) = prefixes.get(*end as usize) else {
                return Err(format!(
                    "{fault:?}: a reader saw applied_end {end}, only {} entries survived",
                    survived.len()
                ));
            };
            if prefix != catalog {
                return Err(format!(
                    "{fault:?}: a reader's catalog at {end} is no prefix of the surviving log"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn readers_never_see_what_a_panic_failure_or_power_cut_takes_back() {
        let seeds = crate::support::seed_count(40);
        // Silence the expected panics of the simulated disk.
        std::panic::set_hook(Box::new(|info| {
            let text = info.to_string();
            if !text.contains("simulated disk panics") {
                eprintln!("{text}");
            }
        }));
        let mut failures = Vec::new();
        for seed in 0..seeds {
            if let Err(e) = run_seed(seed) {
                failures.push(format!("seed {seed}: {e}"));
            }
        }
        let _ = std::panic::take_hook();
        for f in &failures {
            println!("{f}");
        }
        assert!(
            failures.is_empty(),
            "{} of {seeds} seeds failed",
            failures.len()
        );
    }
}
