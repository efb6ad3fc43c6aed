//! `cpwal bench`'s group-commit figure: writers sharing one node through
//! `SharedControlPlane`, with one sync in flight and with cpwal's default
//! (a second sync once one has run 1 ms), and which of the two to use on
//! this disk.
//!
//! Which pays depends on the disk, and only a run on it tells. A disk whose
//! syncs are slow because each waits (a network round trip) serves two at
//! once, and the default is faster there; a disk at its operations budget
//! (a cloud volume at its IOPS limit) serves them in turn, and a second
//! sync in flight only makes the batches smaller. The runs alternate (one,
//! default, default, one) so that a drift of the disk hits both alike, and
//! each starts after a pause as long as the run before it, so that a
//! budget the last run spent has refilled as fast as it was spent.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpwal::{DurableControlPlane, Options, SharedControlPlane};

use crate::bench::{bench_identity, sample_entry};
use crate::failure::CliError;

/// Threads appending at once, each waiting for its own entry.
pub const WRITERS: u64 = 8;

/// The default, by more than this factor faster or slower than one sync
/// in flight, is a difference the advice acts on; within it, noise.
const CLEAR_DIFFERENCE: f64 = 1.1;

/// The rates measured, in entries per second, in the order run.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapRuns {
    pub one_in_flight: Vec<f64>,
    pub default: Vec<f64>,
}

/// What the runs say to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// The default was clearly faster: a second sync in flight pays here.
    KeepDefaultFaster,
    /// No clear difference: keep the default.
    KeepDefaultSame,
    /// One sync in flight was clearly faster: set
    /// `Options::second_sync_after` to `Duration::MAX`.
    OneSyncInFlight,
}

impl OverlapRuns {
    /// The default's mean rate over one sync in flight's; `None` when
    /// either has no run or one sync in flight appended nothing.
    pub fn default_over_one(&self) -> Option<f64> {
        let mean = |rates: &[f64]| {
            (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
        };
        let one = mean(&self.one_in_flight).filter(|&rate| rate > 0.0)?;
        Some(mean(&self.default)? / one)
    }

    /// What the runs say; without a ratio, keep the default.
    pub fn advice(&self) -> Advice {
        let Some(ratio) = self.default_over_one() else {
            return Advice::KeepDefaultSame;
        };
        if ratio > CLEAR_DIFFERENCE {
            Advice::KeepDefaultFaster
        } else if ratio < 1.0 / CLEAR_DIFFERENCE {
            Advice::OneSyncInFlight
        } else {
            Advice::KeepDefaultSame
        }
    }
}

impl Advice {
    /// A stable name, for JSON.
    pub fn name(self) -> &'static str {
        match self {
            Advice::KeepDefaultFaster | Advice::KeepDefaultSame => "keep_default",
            Advice::OneSyncInFlight => "one_sync_in_flight",
        }
    }

    /// The advice in a sentence.
    pub fn sentence(self) -> &'static str {
        match self {
            Advice::KeepDefaultFaster => {
                "a second sync in flight pays on this disk (it serves slow syncs at once): keep the default"
            }
            Advice::KeepDefaultSame => "no clear difference on this disk: keep the default",
            Advice::OneSyncInFlight => {
                "this disk serves syncs one after the other (as a volume at its IOPS limit does): set Options::second_sync_after to Duration::MAX"
            }
        }
    }
}

/// Runs one sync in flight and the default in `scratch` (two nodes), each
/// run `WRITERS` threads appending until `total` entries or `budget`.
pub fn measure(scratch: &Path, total: u64, budget: Duration) -> Result<OverlapRuns, CliError> {
    let one = shared_node(&scratch.join("group-one"), Duration::MAX)?;
    let default = shared_node(
        &scratch.join("group-default"),
        Options::default().second_sync_after,
    )?;
    let mut runs = OverlapRuns {
        one_in_flight: Vec::new(),
        default: Vec::new(),
    };
    let mut pause = Duration::ZERO;
    for use_default in [false, true, true, false] {
        std::thread::sleep(pause);
        let started = Instant::now();
        let (node, rates) = if use_default {
            (&default, &mut runs.default)
        } else {
            (&one, &mut runs.one_in_flight)
        };
        rates.push(appends_per_second(node, total, budget)?);
        pause = started.elapsed();
    }
    Ok(runs)
}

fn shared_node(dir: &Path, second_sync_after: Duration) -> Result<SharedControlPlane, CliError> {
    let options = Options::default().with_second_sync_after(second_sync_after);
    let node = DurableControlPlane::create(dir, bench_identity(), options).map_err(|e| {
        CliError::engine(
            "bench could not create its node in the scratch directory",
            e,
        )
    })?;
    Ok(SharedControlPlane::new(node))
}

/// `WRITERS` threads append distinct entries through `node` until `total`
/// were acknowledged or `budget` passed; returns entries per second.
fn appends_per_second(
    node: &SharedControlPlane,
    total: u64,
    budget: Duration,
) -> Result<f64, CliError> {
    let first = node.last_written_index().map_or(0, |i| i.0 + 1);
    let next = AtomicU64::new(first);
    let acknowledged = AtomicU64::new(0);
    let failure = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                while acknowledged.load(Ordering::Relaxed) < total && started.elapsed() < budget {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match node.try_append(&sample_entry(n)) {
                        Ok(_) => acknowledged.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                            break;
                        }
                    };
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(error) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(CliError::engine("bench group commit append failed", error));
    }
    Ok(acknowledged.into_inner() as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(one_in_flight: &[f64], default: &[f64]) -> OverlapRuns {
        OverlapRuns {
            one_in_flight: one_in_flight.to_vec(),
            default: default.to_vec(),
        }
    }

    #[test]
    fn advice_follows_a_clear_difference_and_keeps_the_default_within_noise() {
        // Measured: an emulated 4 ms disk (default 1.53x), a throttled one
        // (0.96x), the throttled one with 4 ms syncs (0.81x).
        assert_eq!(
            runs(&[470.0, 472.0], &[716.0, 720.0]).advice(),
            Advice::KeepDefaultFaster
        );
        assert_eq!(
            runs(&[303.0, 303.0], &[291.0, 290.0]).advice(),
            Advice::KeepDefaultSame
        );
        assert_eq!(
            runs(&[299.0, 300.0], &[242.0, 243.0]).advice(),
            Advice::OneSyncInFlight
        );
        // The edges: 1.1 and 1/1.1 are still noise.
        assert_eq!(runs(&[100.0], &[110.0]).advice(), Advice::KeepDefaultSame);
        assert_eq!(runs(&[100.0], &[111.0]).advice(), Advice::KeepDefaultFaster);
        assert_eq!(runs(&[110.0], &[100.0]).advice(), Advice::KeepDefaultSame);
        assert_eq!(runs(&[111.0], &[100.0]).advice(), Advice::OneSyncInFlight);
        assert_eq!(runs(&[100.0], &[111.0]).advice().name(), "keep_default");
        assert_eq!(
            runs(&[111.0], &[100.0]).advice().name(),
            "one_sync_in_flight"
        );
    }

    #[test]
    fn no_runs_or_a_stalled_disk_keep_the_default() {
        assert_eq!(runs(&[], &[]).default_over_one(), None);
        assert_eq!(runs(&[], &[]).advice(), Advice::KeepDefaultSame);
        assert_eq!(runs(&[0.0], &[0.0]).advice(), Advice::KeepDefaultSame);
        assert_eq!(runs(&[0.0], &[5.0]).advice(), Advice::KeepDefaultSame);
        assert_eq!(runs(&[5.0], &[0.0]).advice(), Advice::OneSyncInFlight);
    }
}
