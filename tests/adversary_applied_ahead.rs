//! Adversarial tests of the shared handle's apply-ahead
//! (src/engine/applied_ahead.rs): the group-commit leader applies the
//! entries its sync covers before the sync runs; readers must never see
//! them, and every writer must get exactly the outcomes a replay of the
//! committed log gives.
//!
//! Seeds of the two stress tests: `CPWAL_SIM_SEEDS=n` (default 6).

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

#[path = "support/catalog_replay.rs"]
mod catalog_replay;

use catalog_replay::replay;
use gated_node::{create_shared, voter, wait_until, Shared};

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
    std::env::var("CPWAL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
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
