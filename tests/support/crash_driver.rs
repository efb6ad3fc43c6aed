//! The crash-driving loops shared by the simulated-disk crash suites:
//! interrupt the node at a chosen disk operation — a power cut, a process
//! kill, or a failed sync — bring it back (crash, or restart on the same
//! boot), reopen (interrupting again while the open itself runs) and let the
//! harness check what it recovered. Sequences mix the three, with
//! acknowledged work in between: a node killed and restarted must survive a
//! later power cut, which is what a power-cut-only driver never tries.
//! Written once over [`CrashHarness`], which the engine, replica and
//! group-commit harnesses implement.

use cpwal::Error;

use super::replica_workload::ReplicaHarness;
use super::sim_disk::{Rng, SimDisk, Stop};
use super::workload::{Harness, Step};

/// How a run interrupts the node at its chosen disk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The power fails before the operation; a seeded crash decides what
    /// survived.
    PowerCut,
    /// The process is killed before the operation and restarted on the same
    /// boot: the page cache and every unsynced change survive, unsynced.
    ProcessKill,
    /// The sync (sync number, not operation number) fails with Linux's
    /// semantics: EIO once, its pages marked clean. The node latches the
    /// failure; the process is restarted on the same boot, as the README
    /// tells operators to do.
    FailedSync,
}

impl Interruption {
    /// Arms this interruption at `point` (an operation number, or a sync
    /// number for [`Interruption::FailedSync`]).
    fn arm(self, disk: &SimDisk, point: u64) {
        match self {
            Interruption::PowerCut => disk.stop_before_operation(point, Stop::PowerCut),
            Interruption::ProcessKill => disk.stop_before_operation(point, Stop::ProcessKill),
            Interruption::FailedSync => disk.fail_sync(point),
        }
    }

    /// A random interruption: power cuts half the time.
    fn random(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 | 1 => Interruption::PowerCut,
            2 => Interruption::ProcessKill,
            _ => Interruption::FailedSync,
        }
    }
}

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
    /// The process dies (if it still runs) and restarts on the same boot:
    /// the node is dropped, the page cache survives.
    fn restart(&mut self);

    /// Brings the node back after `interruption`: a crash after a power cut,
    /// a restart after a process kill or a failed sync. A process whose
    /// armed interruption never came is killed now.
    fn recover_from(&mut self, interruption: Interruption, crash_seed: u64) {
        match interruption {
            Interruption::PowerCut => self.crash(crash_seed),
            Interruption::ProcessKill | Interruption::FailedSync => self.restart(),
        }
    }
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

    fn restart(&mut self) {
        Harness::restart(self);
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

    fn restart(&mut self) {
        ReplicaHarness::restart(self);
    }
}

/// Reopens after an interruption; the open must succeed, unless an
/// interruption armed for the open itself stopped it: then the node is
/// brought back (crashed or restarted) and opened again.
pub fn reopen(harness: &mut impl CrashHarness, crash_seed: u64) -> Result<(), String> {
    let mut seed = crash_seed;
    while harness.open()?.is_err() {
        seed = seed.wrapping_add(1);
        match harness.disk().stopped() {
            Some(Stop::PowerCut) => harness.crash(seed),
            _ => harness.restart(),
        }
    }
    Ok(())
}

/// Arms a power cut before one of the next `within` disk operations, chosen
/// by `rng`.
fn cut_within(harness: &mut impl CrashHarness, rng: &mut Rng, within: u64) {
    arm_within(harness, rng, Interruption::PowerCut, within);
}

/// Arms `interruption` within the next `within` disk operations (or syncs,
/// for a failed sync), chosen by `rng`.
fn arm_within(
    harness: &mut impl CrashHarness,
    rng: &mut Rng,
    interruption: Interruption,
    within: u64,
) {
    let counters = harness.disk().counters();
    let now = match interruption {
        Interruption::FailedSync => counters.syncs,
        _ => counters.operations,
    };
    interruption.arm(harness.disk(), now + 1 + rng.below(within));
}

/// One run of an exhaustive test: `interruption` strikes at `point` of
/// `workload` (an operation number; a sync number for a failed sync), the
/// node is brought back and reopened and checked; then a few more random
/// operations run with a power cut among the first writes after recovery
/// (where a missing zeroing sync, or anything the reopened node served from
/// the page cache without making it durable, would show), and the node is
/// crashed, reopened and checked again.
pub fn run_with_interruption<H: CrashHarness>(
    mut harness: H,
    workload: impl Fn(&mut H) -> Result<(), String>,
    interruption: Interruption,
    point: u64,
    crash_seed: u64,
) -> Result<(), String> {
    interruption.arm(harness.disk(), point);
    if harness.open()?.is_ok() {
        workload(&mut harness)?;
    }
    harness.recover_from(interruption, crash_seed);
    reopen(&mut harness, crash_seed)?;
    cut_within(&mut harness, &mut Rng::new(crash_seed), 8);
    harness.run_random(4)?;
    harness.crash(crash_seed ^ 0xC0FFEE);
    harness.disk().cut_power_before_operation(u64::MAX);
    reopen(&mut harness, crash_seed ^ 0xBEEF)
}

/// Every interruption point of one seed: counts the mutating disk
/// operations and syncs of a dry run of `workload` on `new(seed)`; then
/// before each operation (and one past the end) cuts the power with
/// `crashes_per_point` crash seeds and kills the process once, and fails
/// each sync once (see [`run_with_interruption`]).
pub fn exhaustive_seed<H: CrashHarness>(
    seed: u64,
    new: impl Fn(u64) -> H,
    workload: impl Fn(&mut H) -> Result<(), String>,
    crashes_per_point: u64,
) -> Result<(), String> {
    let mut dry_run = new(seed);
    dry_run.open()?.map_err(|e| format!("dry run open: {e}"))?;
    workload(&mut dry_run)?;
    let counters = dry_run.disk().counters();
    let crash_seed = |point: u64, attempt: u64| {
        seed.wrapping_mul(0x9E37_79B9)
            .wrapping_add(point * 16 + attempt)
    };
    let mut runs = Vec::new();
    for point in 1..=counters.operations + 1 {
        for attempt in 0..crashes_per_point {
            runs.push((Interruption::PowerCut, point, crash_seed(point, attempt)));
        }
        let kill_seed = crash_seed(point, crashes_per_point);
        runs.push((Interruption::ProcessKill, point, kill_seed));
    }
    for sync in 1..=counters.syncs {
        let failed_seed = crash_seed(sync, crashes_per_point + 1);
        runs.push((Interruption::FailedSync, sync, failed_seed));
    }
    for (interruption, point, crash_seed) in runs {
        run_with_interruption(new(seed), &workload, interruption, point, crash_seed).map_err(
            |violation| {
                let total = match interruption {
                    Interruption::FailedSync => format!("sync {point} of {}", counters.syncs),
                    _ => format!("disk operation {point} of {}", counters.operations),
                };
                format!("{interruption:?} at {total} (crash seed {crash_seed}): {violation}")
            },
        )?;
    }
    Ok(())
}

/// How a long random run is sized.
#[derive(Clone, Copy, Debug)]
pub struct RandomRun {
    /// The first interruption falls within this many disk operations of the
    /// start.
    pub first_cut_within: u64,
    /// Later interruptions fall within this many disk operations of the
    /// reopen.
    pub later_cut_within: u64,
    /// Random operations tried between two interruptions.
    pub operations_per_round: usize,
}

/// A long workload in one directory with eight interruptions in a row at
/// random points — power cuts, process kills and failed syncs mixed, some of
/// them during the recovery of the previous one; every reopen is checked by
/// the harness.
pub fn random_seed(
    seed: u64,
    mut harness: impl CrashHarness,
    sizes: RandomRun,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    for round in 0..8u64 {
        let first = round == 0;
        let within = if first {
            sizes.first_cut_within
        } else {
            sizes.later_cut_within
        };
        let interruption = Interruption::random(&mut rng);
        super::trace(format_args!("round {round}: {interruption:?}"));
        // Syncs are rarer than operations: aim a failed sync as early.
        let within = match interruption {
            Interruption::FailedSync => within / 4 + 1,
            _ => within,
        };
        arm_within(&mut harness, &mut rng, interruption, within);
        let opened = if first { harness.open()?.is_ok() } else { true };
        if opened {
            harness.run_random(sizes.operations_per_round)?;
        }
        let crash_seed = rng.next_u64();
        harness.recover_from(interruption, crash_seed);
        // Now and then the recovery itself is interrupted.
        if rng.chance(1, 4) {
            let during_open = match rng.below(3) {
                0 => Interruption::ProcessKill,
                _ => Interruption::PowerCut,
            };
            arm_within(&mut harness, &mut rng, during_open, 4);
        }
        reopen(&mut harness, crash_seed)
            .map_err(|violation| format!("after {interruption:?} in round {round}: {violation}"))?;
        harness.disk().cut_power_before_operation(u64::MAX);
    }
    Ok(())
}
