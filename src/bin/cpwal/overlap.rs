//! `cpwal bench`'s group-commit figure: writers sharing one node through
//! `SharedControlPlane`, with one sync in flight and with cpwal's default
//! (a second sync once one has run 1 ms), and which of the two to use on
//! this disk.
//!
//! Which pays depends on the disk, and only a run on it tells. A disk whose
//! syncs are slow because each waits (a network round trip) serves two at
//! once, and the default is faster there; a disk at its operations budget
//! (a cloud volume at its IOPS limit) whose syncs are also slow serves them
//! in turn, and a second sync in flight only makes the batches smaller. On
//! a disk whose syncs end before the default's threshold a second sync
//! rarely starts, and the two settings differ only by noise.
//!
//! The runs are timed, not counted, and alternate in two pairs (one,
//! default; default, one) so that a drift of the disk hits both alike;
//! each starts after a pause as long as a run, so that a budget the last
//! run (or the figure before) spent has refilled as fast as it was spent.
//! A change is advised only when both pairs say the same.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpwal::{Options, SharedControlPlane};

use crate::bench::{create_node, sample_entry};
use crate::failure::CliError;

/// Threads appending at once, each waiting for its own entry.
pub const WRITERS: u64 = 8;

/// The default, by more than this factor faster or slower than one sync
/// in flight in both pairs of runs, is a difference the advice acts on;
/// within it, noise.
const CLEAR_DIFFERENCE: f64 = 1.1;

/// The rates measured, in entries per second: run `k` of each setting
/// belongs to pair `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapRuns {
    pub one_in_flight: Vec<f64>,
    pub default: Vec<f64>,
    /// Whether the raw syncs measured on this disk mostly ended (p99)
    /// before the default's threshold: then a second sync rarely starts.
    pub syncs_end_before_threshold: bool,
}

/// What the runs say to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Syncs end before the threshold: the setting makes no difference.
    NoEffect,
    /// The default was clearly faster in both pairs.
    KeepDefaultFaster,
    /// No difference both pairs agree on: keep the default.
    KeepDefaultSame,
    /// One sync in flight was clearly faster in both pairs: set
    /// `Options::second_sync_after` to `Duration::MAX`.
    OneSyncInFlight,
}

impl OverlapRuns {
    /// The default's mean rate over one sync in flight's; `None` when
    /// either has no run or one sync in flight appended nothing.
    pub fn default_over_one(&self) -> Option<f64> {
        let one = mean(&self.one_in_flight).filter(|&rate| rate > 0.0)?;
        Some(mean(&self.default)? / one)
    }

    /// Each pair's ratio, default over one sync in flight (a pair whose
    /// one-in-flight run appended nothing has none).
    fn pair_ratios(&self) -> Vec<f64> {
        let pairs = self.default.iter().zip(&self.one_in_flight);
        pairs
            .filter(|(_, &one)| one > 0.0)
            .map(|(default, one)| default / one)
            .collect()
    }

    /// What the runs say: a change only when every pair (at least two)
    /// clearly says the same; otherwise keep the default.
    pub fn advice(&self) -> Advice {
        if self.syncs_end_before_threshold {
            return Advice::NoEffect;
        }
        let ratios = self.pair_ratios();
        let all = |clear: fn(f64) -> bool| ratios.len() >= 2 && ratios.iter().all(|&r| clear(r));
        if all(|r| r > CLEAR_DIFFERENCE) {
            Advice::KeepDefaultFaster
        } else if all(|r| r < 1.0 / CLEAR_DIFFERENCE) {
            Advice::OneSyncInFlight
        } else {
            Advice::KeepDefaultSame
        }
    }
}

fn mean(rates: &[f64]) -> Option<f64> {
    (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
}

impl Advice {
    /// A stable name, for JSON.
    pub fn name(self) -> &'static str {
        match self {
            Advice::NoEffect => "no_effect",
            Advice::KeepDefaultFaster | Advice::KeepDefaultSame => "keep_default",
            Advice::OneSyncInFlight => "one_sync_in_flight",
        }
    }

    /// The advice in a sentence.
    pub fn sentence(self) -> &'static str {
        match self {
            Advice::NoEffect => {
                "this disk's syncs end before the default's threshold, so a second sync rarely starts: the setting makes no difference here"
            }
            Advice::KeepDefaultFaster => {
                "a second sync in flight was faster in both pairs of runs: keep the default"
            }
            Advice::KeepDefaultSame => "no difference both pairs of runs agree on: keep the default",
            Advice::OneSyncInFlight => {
                "one sync in flight was faster in both pairs of runs (as on a volume at its IOPS limit with slow syncs): set Options::second_sync_after to Duration::MAX"
            }
        }
    }
}

/// Runs one sync in flight and the default in `scratch` (two nodes), each
/// run `WRITERS` threads appending for `run`, each after a pause as long;
/// `raw_sync_p99` is the raw `fdatasync` p99 measured on the same disk.
pub fn measure(
    scratch: &Path,
    run: Duration,
    raw_sync_p99: Duration,
) -> Result<OverlapRuns, CliError> {
    let threshold = Options::default().second_sync_after;
    let one = shared_node(&scratch.join("group-one"), Duration::MAX)?;
    let default = shared_node(&scratch.join("group-default"), threshold)?;
    let mut runs = OverlapRuns {
        one_in_flight: Vec::new(),
        default: Vec::new(),
        syncs_end_before_threshold: raw_sync_p99 < threshold,
    };
    for use_default in [false, true, true, false] {
        std::thread::sleep(run);
        let (node, rates) = if use_default {
            (&default, &mut runs.default)
        } else {
            (&one, &mut runs.one_in_flight)
        };
        rates.push(appends_per_second(node, run)?);
    }
    Ok(runs)
}

fn shared_node(dir: &Path, second_sync_after: Duration) -> Result<SharedControlPlane, CliError> {
    let options = Options::default().with_second_sync_after(second_sync_after);
    Ok(SharedControlPlane::new(create_node(dir, options)?))
}

/// `WRITERS` threads append distinct entries through `node` for `run`;
/// returns entries acknowledged per second. The first failure ends the
/// run and is returned.
fn appends_per_second(node: &SharedControlPlane, run: Duration) -> Result<f64, CliError> {
    let first = node.last_written_index().map_or(0, |i| i.0 + 1);
    let next = AtomicU64::new(first);
    let acknowledged = AtomicU64::new(0);
    let failure = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                while started.elapsed() < run {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match node.try_append(&sample_entry(n)) {
                        Ok(_) => acknowledged.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            let mut first = failure.lock().unwrap_or_else(|p| p.into_inner());
                            first.get_or_insert(error);
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

    /// Runs of the two settings, pair by pair, on a disk whose syncs last.
    fn runs(one_in_flight: &[f64], default: &[f64]) -> OverlapRuns {
        OverlapRuns {
            one_in_flight: one_in_flight.to_vec(),
            default: default.to_vec(),
            syncs_end_before_threshold: false,
        }
    }

    #[test]
    fn advice_follows_a_difference_both_pairs_agree_on() {
        // Measured: an emulated 4 ms disk (default 1.53x), a throttled one
        // (0.96x), the throttled one with 4 ms syncs (0.81x).
        // The edges: 1.1 and 1/1.1 are still noise.
        let cases: [(&[f64], &[f64], Advice); 7] = [
            (&[470.0, 472.0], &[716.0, 720.0], Advice::KeepDefaultFaster),
            (&[303.0, 303.0], &[291.0, 290.0], Advice::KeepDefaultSame),
            (&[299.0, 300.0], &[242.0, 243.0], Advice::OneSyncInFlight),
            (&[100.0, 100.0], &[110.0, 111.0], Advice::KeepDefaultSame),
            (&[100.0, 100.0], &[111.0, 111.0], Advice::KeepDefaultFaster),
            (&[110.0, 111.0], &[100.0, 100.0], Advice::KeepDefaultSame),
            (&[111.0, 111.0], &[100.0, 100.0], Advice::OneSyncInFlight),
        ];
        for (one, default, expected) in cases {
            let advice = runs(one, default).advice();
            assert_eq!(advice, expected, "one {one:?}, default {default:?}");
        }
        assert_eq!(Advice::KeepDefaultFaster.name(), "keep_default");
        assert_eq!(Advice::OneSyncInFlight.name(), "one_sync_in_flight");
    }

    #[test]
    fn pairs_that_disagree_or_a_single_pair_keep_the_default() {
        // Noise: one pair says one sync in flight, the other the default,
        // though the means differ by more than 10%.
        let noisy = runs(&[100.0, 80.0], &[70.0, 88.0]);
        assert!(noisy.default_over_one().unwrap() < 1.0 / 1.1);
        assert_eq!(noisy.advice(), Advice::KeepDefaultSame);
        assert_eq!(
            runs(&[100.0, 100.0], &[80.0, 95.0]).advice(),
            Advice::KeepDefaultSame
        );
        assert_eq!(runs(&[100.0], &[50.0]).advice(), Advice::KeepDefaultSame);
    }

    #[test]
    fn syncs_shorter_than_the_threshold_make_the_setting_moot() {
        let mut fast = runs(&[100.0, 100.0], &[70.0, 70.0]);
        fast.syncs_end_before_threshold = true;
        assert_eq!(fast.advice(), Advice::NoEffect);
        assert_eq!(fast.advice().name(), "no_effect");
    }

    #[test]
    fn no_runs_or_a_stalled_disk_keep_the_default() {
        assert_eq!(runs(&[], &[]).default_over_one(), None);
        assert_eq!(runs(&[], &[]).advice(), Advice::KeepDefaultSame);
        assert_eq!(
            runs(&[0.0, 0.0], &[0.0, 0.0]).advice(),
            Advice::KeepDefaultSame
        );
        assert_eq!(
            runs(&[0.0, 0.0], &[5.0, 5.0]).advice(),
            Advice::KeepDefaultSame
        );
        assert_eq!(
            runs(&[5.0, 5.0], &[0.0, 0.0]).advice(),
            Advice::OneSyncInFlight
        );
    }
}
