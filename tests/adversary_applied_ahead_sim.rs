//! Adversarial tests of the shared handle's apply-ahead
//! (src/engine/applied_ahead.rs) on the simulated disk: panics inside
//! syncs, failed syncs and failed started writebacks while readers take
//! applied-ahead entries back and a second sync overlaps; then a power cut. Every catalog a reader saw must
//! be a prefix of the log that survives; every acknowledged outcome must be
//! what a replay of that log gives.
//!
//! Seeds: `CPWAL_SIM_SEEDS=n` (default 40).

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpwal::{
    ApplyOutcome, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    MembershipChange, Options, OwnershipTransition, SharedControlPlane, SoleVoter,
};
use support::catalog_replay::replay;
use support::sim_disk::{Rng, SimDisk};
use support::workload::{voter, Node, NODE_SUBJECT};

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
    let seeds = support::seed_count(40);
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
