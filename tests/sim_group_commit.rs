//! Group commit under power loss: several threads append through one
//! `SharedControlPlane` on the simulated disk, the power is cut at a random
//! disk operation, and the reopened log must hold every acknowledged entry
//! exactly once, at its acknowledged index, in each thread's order, and
//! nothing no thread wrote.
//!
//! One seed in four lets two syncs overlap whenever a writer is not covered
//! by the one in flight (`Options::second_sync_after` of zero), each sync
//! waiting 100 µs before it starts so that writers arrive while one is in
//! flight:
//! the second runs on a second file description, and a sync through either
//! description makes the file's writes durable, as `fdatasync` does. The
//! other seeds keep one sync in flight (the simulated disk's syncs are
//! instant, far below the default threshold).
//!
//! Seeds: `CPWAL_SIM_SEEDS=n` runs n seeds (CI default below);
//! `CPWAL_SIM_SEED=s` replays seed `s` (the cut point and crash replay
//! exactly; the threads' interleaving is up to the scheduler).

mod support;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cpwal::{
    ApplyOutcome, ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, Options,
    OwnershipTransition, SharedControlPlane, SoleVoter,
};
use support::sim_disk::{Rng, SimDisk};
use support::workload::{options, voter, Node, NODE_SUBJECT};

const THREADS: u64 = 3;
const CALLS_PER_THREAD: u64 = 25;

/// The entry thread `thread` writes as its `sequence`-th: unique and
/// self-describing, so the checker knows who wrote what.
fn tagged_entry(thread: u64, sequence: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("t{thread}-{sequence}"),
        new_owner: voter("CN=node-b"),
        ownership_epoch: thread * 1000 + sequence,
    })
}

fn tag_of(entry: &ControlPlaneEntry) -> Option<(u64, u64)> {
    match entry {
        ControlPlaneEntry::OwnershipTransition(t) => {
            Some((t.ownership_epoch / 1000, t.ownership_epoch % 1000))
        }
        _ => None,
    }
}

/// What one thread did: acknowledged calls (indexes and sequence numbers)
/// and the call that failed, if any.
#[derive(Debug, Default)]
struct ThreadRecord {
    acknowledged: Vec<(Range<u64>, Range<u64>)>,
    in_flight: Option<Range<u64>>,
}

/// Appends single entries and small batches until a call fails.
fn writer(shared: SharedControlPlane<SoleVoter, SimDisk>, thread: u64, seed: u64) -> ThreadRecord {
    let mut rng = Rng::new(seed ^ thread);
    let mut record = ThreadRecord::default();
    let mut sequence = 0;
    while sequence < CALLS_PER_THREAD {
        let count = if rng.chance(1, 2) {
            1
        } else {
            1 + rng.below(3)
        };
        let sequences = sequence..sequence + count;
        let entries: Vec<_> = sequences.clone().map(|s| tagged_entry(thread, s)).collect();
        let result = if count == 1 {
            shared
                .try_append(&entries[0])
                .map(|a| (a.index, vec![a.outcome]))
        } else {
            shared
                .try_append_batch(&entries)
                .map(|b| (b.first_index, b.outcomes))
        };
        let result = result.map(|(first, outcomes)| {
            // Each entry opens a range of its own: applying it transfers
            // ownership, and the call must say so for each.
            let opened = ApplyOutcome::OwnershipTransferred { previous: None };
            assert!(outcomes.iter().all(|o| *o == opened), "{outcomes:?}");
            first.0..first.0 + outcomes.len() as u64
        });
        match result {
            Ok(indexes) => record.acknowledged.push((indexes, sequences.clone())),
            Err(error) => {
                // Only the armed fault may stop a writer: a storage error,
                // or the latched failure it left.
                assert!(
                    matches!(
                        error,
                        cpwal::Error::Io { .. }
                            | cpwal::Error::NoSpace { .. }
                            | cpwal::Error::Failed { .. }
                    ),
                    "thread {thread}: {error}"
                );
                record.in_flight = Some(sequences);
                break;
            }
        }
        sequence = sequences.end;
    }
    record
}

/// How the first phase of a run stops the node.
#[derive(Debug, Clone, Copy)]
enum Interruption {
    /// The power fails at a seeded disk operation.
    PowerCut,
    /// The process dies at a seeded disk operation; it restarts on the same
    /// boot, acknowledges more, and then the power fails.
    ProcessKill,
    /// A seeded sync fails (Linux's semantics); the process restarts on the
    /// same boot, acknowledges more, and then the power fails.
    FailedSync,
}

/// Opens the node in `disk`, arms a fault with `arm`, and runs the
/// writers (tagged from `first_thread`) until each has made its calls or
/// failed, with a [`reader`] of the catalog beside them.
fn run_writers(
    disk: &SimDisk,
    first_thread: u64,
    seed: u64,
    opening: Opening,
    arm: impl FnOnce(&SimDisk),
) -> Result<Run, String> {
    if overlaps_syncs(seed) {
        disk.set_sync_delay(std::time::Duration::from_micros(100));
    }
    let node = opening(disk.clone(), voter(NODE_SUBJECT), options_of(seed))
        .map_err(|e| format!("open: {e}"))?;
    arm(disk);
    let shared = SharedControlPlane::new(node);
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (shared, writing) = (shared.clone(), Arc::clone(&writing));
        std::thread::spawn(move || reader(shared, &writing))
    };
    let workers: Vec<_> = (first_thread..first_thread + THREADS)
        .map(|thread| {
            let shared = shared.clone();
            std::thread::spawn(move || writer(shared, thread, seed))
        })
        .collect();
    let records = workers
        .into_iter()
        .map(|w| w.join().expect("writer thread panicked"))
        .collect();
    writing.store(false, Ordering::SeqCst);
    let seen = reader.join().expect("reader thread panicked");
    Ok(Run { records, seen })
}

/// What one [`run_writers`] did: each writer's record, and how far the
/// catalog a reader saw reached.
struct Run {
    records: Vec<ThreadRecord>,
    /// The highest `applied_end` a reader saw: every entry below it was
    /// committed, so durable, and must survive any power cut.
    seen: u64,
}

/// Reads the catalog over and over while `writing`, and returns the
/// highest `applied_end` it saw. The shared handle applies entries while
/// their sync runs; a reader must never see them before the sync ends.
fn reader(shared: SharedControlPlane<SoleVoter, SimDisk>, writing: &AtomicBool) -> u64 {
    let mut seen = 0;
    while writing.load(Ordering::SeqCst) {
        seen = seen.max(shared.with_catalog(|c| c.applied_end().0));
        std::thread::yield_now();
    }
    seen
}

/// Fails unless the log of `served` entries holds everything a reader saw
/// in the catalog.
fn check_seen(served: &[ControlPlaneEntry], seen: u64) -> Result<(), String> {
    if (served.len() as u64) < seen {
        return Err(format!(
            "a reader saw the catalog applied to index {} but only {} entries survived: it showed entries not yet durable",
            seen - 1,
            served.len()
        ));
    }
    Ok(())
}

/// Whether seed `seed` overlaps syncs (one in four; see the module docs).
fn overlaps_syncs(seed: u64) -> bool {
    seed % 4 == 1
}

/// The options of seed `seed`.
fn options_of(seed: u64) -> Options {
    if overlaps_syncs(seed) {
        options().with_second_sync_after(std::time::Duration::ZERO)
    } else {
        options()
    }
}

/// How [`run_writers`] gets its node: created on a fresh disk, opened after.
type Opening = fn(SimDisk, ClusterVoterIdentity, Options) -> cpwal::Result<Node>;

/// Reopens after an interruption, checks the log against what every
/// thread so far did, and returns the entries the reopened node serves.
fn reopen_and_check(
    disk: &SimDisk,
    records: &[ThreadRecord],
    served_before: &[ControlPlaneEntry],
) -> Result<Vec<ControlPlaneEntry>, String> {
    disk.cut_power_before_operation(u64::MAX);
    let node = Node::open_with_storage(disk.clone(), voter(NODE_SUBJECT), options())
        .map_err(|e| format!("reopen: {e}"))?;
    let served = check_log(&node, records)?;
    if served.get(..served_before.len()) != Some(served_before) {
        return Err(format!(
            "the log no longer starts with the {} entries the restarted node served (now {} entries)",
            served_before.len(),
            served.len()
        ));
    }
    Ok(served)
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let disk = SimDisk::new();
    let interruption = match rng.below(4) {
        0 | 1 => Interruption::PowerCut,
        2 => Interruption::ProcessKill,
        _ => Interruption::FailedSync,
    };
    let (operation, sync) = (1 + rng.below(200), 1 + rng.below(60));
    let first = run_writers(&disk, 0, seed, Node::create_with_storage, |disk| {
        let counters = disk.counters();
        match interruption {
            Interruption::PowerCut => {
                disk.cut_power_before_operation(counters.operations + operation)
            }
            Interruption::ProcessKill => {
                disk.kill_before_operation(counters.operations + operation)
            }
            Interruption::FailedSync => disk.fail_sync(counters.syncs + sync),
        }
    })?;
    let mut records = first.records;
    if let Interruption::PowerCut = interruption {
        disk.crash(rng.next_u64());
        let served = reopen_and_check(&disk, &records, &[])?;
        return check_seen(&served, first.seen);
    }
    // The process dies (if the fault did not stop it, now) and restarts on
    // the same boot: what it serves now must survive the power cut to come.
    disk.restart_process();
    let served = reopen_and_check(&disk, &records, &[])
        .map_err(|e| format!("after the {interruption:?}: {e}"))?;
    let operation = 1 + rng.below(200);
    let second = run_writers(
        &disk,
        THREADS,
        seed ^ 0xF00D,
        Node::open_with_storage,
        |disk| disk.cut_power_before_operation(disk.counters().operations + operation),
    )?;
    records.extend(second.records);
    disk.crash(rng.next_u64());
    let served = reopen_and_check(&disk, &records, &served)
        .map_err(|e| format!("after the {interruption:?}, a restart and a power cut: {e}"))?;
    check_seen(&served, first.seen.max(second.seen))
        .map_err(|e| format!("after the {interruption:?}, a restart and a power cut: {e}"))
}

/// Every acknowledged entry once at its index; every other entry is one a
/// failed call was writing, and a failed call's entries are all there or
/// none (a batch is atomic); each thread's entries in its own order.
/// Returns the log's entries.
fn check_log(node: &Node, records: &[ThreadRecord]) -> Result<Vec<ControlPlaneEntry>, String> {
    let end = node.last_index().map_or(0, |i| i.0 + 1);
    let log = node
        .read_range(ControlPlaneIndex(0), ControlPlaneIndex(end))
        .map_err(|e| format!("read back: {e}"))?;
    let mut position_of = HashMap::new();
    let mut last_sequence: HashMap<u64, u64> = HashMap::new();
    for entry in &log {
        let (thread, sequence) = tag_of(&entry.entry)
            .ok_or_else(|| format!("index {}: an entry no thread wrote", entry.index.0))?;
        let record = records
            .get(thread as usize)
            .ok_or_else(|| format!("index {}: invented thread {thread}", entry.index.0))?;
        let written = record
            .acknowledged
            .iter()
            .any(|(_, s)| s.contains(&sequence))
            || record
                .in_flight
                .as_ref()
                .is_some_and(|s| s.contains(&sequence));
        if !written {
            return Err(format!(
                "index {}: thread {thread} never wrote #{sequence}",
                entry.index.0
            ));
        }
        if position_of
            .insert((thread, sequence), entry.index.0)
            .is_some()
        {
            return Err(format!("thread {thread} #{sequence} present twice"));
        }
        if last_sequence
            .insert(thread, sequence)
            .is_some_and(|l| l >= sequence)
        {
            return Err(format!(
                "thread {thread} #{sequence} out of order at {}",
                entry.index.0
            ));
        }
    }
    for (thread, record) in records.iter().enumerate() {
        for (indexes, sequences) in &record.acknowledged {
            for (index, sequence) in indexes.clone().zip(sequences.clone()) {
                if position_of.get(&(thread as u64, sequence)) != Some(&index) {
                    return Err(format!(
                        "acknowledged thread {thread} #{sequence} at index {index} lost (log end {end})"
                    ));
                }
            }
        }
        if let Some(failed) = &record.in_flight {
            let present = failed
                .clone()
                .filter(|&s| position_of.contains_key(&(thread as u64, s)))
                .count();
            if present != 0 && present != failed.clone().count() {
                return Err(format!(
                    "thread {thread}'s failed batch #{failed:?} partly survived ({present} entries)"
                ));
            }
        }
    }
    Ok(log.into_iter().map(|e| e.entry).collect())
}

#[test]
fn group_commit_power_cut_keeps_every_acknowledged_entry_once() {
    // Goal: a group commit acknowledges an entry only once a sync covering
    // it returned, so power loss at any disk operation keeps every
    // acknowledged entry exactly once at its index, invents nothing, keeps
    // each writer's order and each batch whole or absent — also when the
    // process was killed or a sync failed first and the restarted node
    // acknowledged more. Method: three threads append singles and batches
    // through one SharedControlPlane on the simulated disk; the power is
    // cut at a seeded disk operation (the disk crashes with a seeded choice
    // of surviving sectors), or the process is killed there, or a seeded
    // sync fails; after a kill or failed sync the process restarts on the
    // same boot, three more threads append, and the power fails; every
    // reopen is checked against the whole log, and the last one must still
    // start with everything the restarted node served.
    support::for_each_seed(
        "sim_group_commit",
        "group_commit_power_cut_keeps_every_acknowledged_entry_once",
        21,
        2000,
        run_seed,
    );
}
