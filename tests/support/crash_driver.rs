//! The crash-driving loops shared by the simulated-disk crash suites: cut
//! the power at a chosen disk operation, crash, reopen (crashing again while
//! the open itself is cut) and let the harness check what it recovered.
//! Written once over [`CrashHarness`], which both the engine harness and the
//! replica harness implement.

use cpwal::Error;

use super::replica_workload::ReplicaHarness;
use super::sim_disk::{Rng, SimDisk};
use super::workload::{Harness, Step};

/// A simulated disk with a node on it that can be opened (and checked),
/// driven, and crashed.
pub trait CrashHarness {
    /// The simulated disk under the node.
    fn disk(&mut self) -> &mut SimDisk;
    /// Opens the node and checks what it recovered; `Ok(Err(_))` when the
    /// open was cut short by a power cut.
    fn open(&mut self) -> Result<Result<(), Error>, String>;
    /// Runs up to `operations` random operations; stops at the first one
    /// that fails (the power was cut).
    fn run_random(&mut self, operations: usize) -> Result<(), String>;
    /// Power loss: the node is dropped and the disk keeps what `seed` says.
    fn crash(&mut self, seed: u64);
}

impl CrashHarness for Harness {
    fn disk(&mut self) -> &mut SimDisk {
        &mut self.disk
    }

    fn open(&mut self) -> Result<Result<(), Error>, String> {
        Harness::open(self)
    }

    fn run_random(&mut self, operations: usize) -> Result<(), String> {
        for _ in 0..operations {
            if let Step::Failed(_) = self.step()? {
                break;
            }
        }
        Ok(())
    }

    fn crash(&mut self, seed: u64) {
        Harness::crash(self, seed);
    }
}

impl CrashHarness for ReplicaHarness {
    fn disk(&mut self) -> &mut SimDisk {
        &mut self.disk
    }

    fn open(&mut self) -> Result<Result<(), Error>, String> {
        ReplicaHarness::open(self)
    }

    fn run_random(&mut self, operations: usize) -> Result<(), String> {
        for _ in 0..operations {
            if !self.step()? {
                break;
            }
        }
        Ok(())
    }

    fn crash(&mut self, seed: u64) {
        ReplicaHarness::crash(self, seed);
    }
}

/// Reopens after a crash; the open must succeed (it may be cut again only if
/// a power cut was armed, in which case crash and retry).
pub fn reopen(harness: &mut impl CrashHarness, crash_seed: u64) -> Result<(), String> {
    let mut seed = crash_seed;
    while harness.open()?.is_err() {
        seed = seed.wrapping_add(1);
        harness.crash(seed);
    }
    Ok(())
}

/// Arms a power cut before one of the next `within` disk operations, chosen
/// by `rng`.
fn cut_within(harness: &mut impl CrashHarness, rng: &mut Rng, within: u64) {
    let operations = harness.disk().counters().operations;
    harness
        .disk()
        .cut_power_before_operation(operations + 1 + rng.below(within));
}

/// One run of an exhaustive test: the power is cut before mutating disk
/// operation `cut` of `workload`, the disk crashes with `crash_seed`, the
/// node reopens and is checked; then a few more random operations run with
/// another cut among the first writes after recovery (where a missing
/// zeroing sync would show), and the node is crashed, reopened and checked
/// again.
pub fn run_with_cut<H: CrashHarness>(
    mut harness: H,
    workload: impl Fn(&mut H) -> Result<(), String>,
    cut: u64,
    crash_seed: u64,
) -> Result<(), String> {
    harness.disk().cut_power_before_operation(cut);
    if harness.open()?.is_ok() {
        workload(&mut harness)?;
    }
    harness.crash(crash_seed);
    reopen(&mut harness, crash_seed)?;
    cut_within(&mut harness, &mut Rng::new(crash_seed), 8);
    harness.run_random(4)?;
    harness.crash(crash_seed ^ 0xC0FFEE);
    harness.disk().cut_power_before_operation(u64::MAX);
    reopen(&mut harness, crash_seed ^ 0xBEEF)
}

/// Every crash point of one seed: counts the mutating disk operations of a
/// dry run of `workload` on `new(seed)`, then for each one (and one past
/// the end) runs [`run_with_cut`] with `crashes_per_point` crash seeds.
pub fn exhaustive_seed<H: CrashHarness>(
    seed: u64,
    new: impl Fn(u64) -> H,
    workload: impl Fn(&mut H) -> Result<(), String>,
    crashes_per_point: u64,
) -> Result<(), String> {
    let mut dry_run = new(seed);
    dry_run.open()?.map_err(|e| format!("dry run open: {e}"))?;
    workload(&mut dry_run)?;
    let total = dry_run.disk().counters().operations;
    for cut in 1..=total + 1 {
        for attempt in 0..crashes_per_point {
            let crash_seed = seed
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(cut * 16 + attempt);
            run_with_cut(new(seed), &workload, cut, crash_seed).map_err(|violation| {
                format!("power cut before disk operation {cut} of {total}, crash attempt {attempt}: {violation}")
            })?;
        }
    }
    Ok(())
}

/// How a long random run is sized.
#[derive(Clone, Copy, Debug)]
pub struct RandomRun {
    /// The first cut falls within this many disk operations of the start.
    pub first_cut_within: u64,
    /// Later cuts fall within this many disk operations of the reopen.
    pub later_cut_within: u64,
    /// Random operations tried between two crashes.
    pub operations_per_round: usize,
}

/// A long workload in one directory with eight crashes in a row at random
/// points, some of them during the recovery of the previous crash; every
/// reopen is checked by the harness.
pub fn random_seed(
    seed: u64,
    mut harness: impl CrashHarness,
    sizes: RandomRun,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    for crash in 0..8u64 {
        let first = crash == 0;
        let within = if first {
            sizes.first_cut_within
        } else {
            sizes.later_cut_within
        };
        cut_within(&mut harness, &mut rng, within);
        let opened = if first { harness.open()?.is_ok() } else { true };
        if opened {
            harness.run_random(sizes.operations_per_round)?;
        }
        let crash_seed = rng.next_u64();
        harness.crash(crash_seed);
        // Now and then the recovery itself is cut short.
        if rng.chance(1, 4) {
            cut_within(&mut harness, &mut rng, 4);
        }
        reopen(&mut harness, crash_seed)
            .map_err(|violation| format!("after crash {crash}: {violation}"))?;
        harness.disk().cut_power_before_operation(u64::MAX);
    }
    Ok(())
}
