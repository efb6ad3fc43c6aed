//! `cpwal bench [--dir D]`: on the operator's own disk, durable append and
//! vote latency and append throughput, each beside raw `pwrite` +
//! `fdatasync` measured in the same run, with a verdict against etcd's
//! guidance (fdatasync p99 under 10 ms); then eight writers through group
//! commit with one sync in flight and with the default, and which to use
//! (see [`crate::overlap`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpwal::codec::encoded_entry;
use cpwal::format::record_bytes;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneTerm, DurableControlPlane, Options,
    OwnershipTransition,
};

use crate::failure::CliError;
use crate::latency::{describe, millis, raw_fdatasync_latencies, Percentiles};
use crate::output::outln;
use crate::overlap::{self, OverlapRuns};

/// etcd's guidance for a disk under a consensus log: fdatasync p99 below this.
const FDATASYNC_P99_LIMIT_NS: u64 = 10_000_000;
/// Entries per call in the throughput run.
const BATCH_ENTRIES: usize = 64;
/// Each group-commit run lasts this long per sample, within
/// [`GROUP_RUN_MIN`, `GROUP_RUN_MAX`]: 1 s at the default 500 samples.
const GROUP_RUN_PER_SAMPLE: Duration = Duration::from_millis(2);
const GROUP_RUN_MIN: Duration = Duration::from_millis(100);
const GROUP_RUN_MAX: Duration = Duration::from_secs(2);

pub(crate) fn bench_identity() -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject("CN=cpwal-bench")
        .expect("a valid constant identity")
}

/// A node of the bench's own in `dir`, inside the scratch directory.
pub(crate) fn create_node(dir: &Path, options: Options) -> Result<DurableControlPlane, CliError> {
    DurableControlPlane::create(dir, bench_identity(), options).map_err(|e| {
        CliError::engine(
            "bench could not create its node in the scratch directory",
            e,
        )
    })
}

/// A typical control-plane entry.
pub(crate) fn sample_entry(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("users:[{},{})", n * 1000, (n + 1) * 1000),
        new_owner: bench_identity(),
        ownership_epoch: n + 1,
    })
}

/// Runs the benchmark in a scratch directory created inside `directory`
/// (default: the current directory) and removed afterwards.
pub fn run(directory: Option<&Path>, samples: usize, as_json: bool) -> Result<(), CliError> {
    let parent = directory.unwrap_or(Path::new(".")).to_path_buf();
    if !parent.is_dir() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory");
        return Err(CliError::io(
            format!("bench in {}", parent.display()),
            missing,
        ));
    }
    let scratch = parent.join(format!(".cpwal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| CliError::io(format!("create {}", scratch.display()), e))?;
    let result = measure(&parent, &scratch, samples.max(10), as_json);
    let removed = std::fs::remove_dir_all(&scratch)
        .map_err(|e| CliError::io(format!("remove {}", scratch.display()), e));
    result.and(removed)
}

fn measure(parent: &Path, scratch: &Path, samples: usize, as_json: bool) -> Result<(), CliError> {
    let entry_bytes = record_bytes(encoded_entry(&sample_entry(0)).len() as u64);
    let budget = Duration::from_secs(10);
    let group_run = GROUP_RUN_PER_SAMPLE
        .saturating_mul(u32::try_from(samples).unwrap_or(u32::MAX))
        .clamp(GROUP_RUN_MIN, GROUP_RUN_MAX);
    eprintln!(
        "bench: {samples} samples per figure (at most {} s each; group commit: 4 runs of {:.1} s, each after a pause as long) in {}",
        budget.as_secs(),
        group_run.as_secs_f64(),
        scratch.display()
    );
    let raw = raw_fdatasync_latencies(parent, entry_bytes as usize, samples, budget)?;
    let data: PathBuf = scratch.join("data");
    let mut node = create_node(&data, Options::default())?;
    let appends = timed(samples, budget, |n| {
        node.try_append(&sample_entry(n)).map(drop)
    })?;
    let batch: Vec<_> = (0..BATCH_ENTRIES as u64).map(sample_entry).collect();
    let batches = timed(samples / 4 + 1, budget, |_| {
        node.try_append_batch(&batch).map(drop)
    })?;
    let votes = timed(samples, budget, |_| {
        let next = ControlPlaneTerm(node.current_term().0 + 1);
        node.observe_term(next).map(drop)
    })?;
    let raw_p99 = Percentiles::of(&raw).map_or(0, |p| p.p99);
    let group_commit = overlap::measure(scratch, group_run, Duration::from_nanos(raw_p99))?;
    let figures = Figures {
        raw,
        appends,
        batches,
        votes,
        entry_bytes,
        group_commit,
    };
    if as_json {
        outln!("{:#}", figures.json())?;
    } else {
        report(&figures)?;
    }
    Ok(())
}

/// Runs `operation` up to `samples` times (stopping once `budget` passed)
/// and returns each call's latency in nanoseconds.
fn timed(
    samples: usize,
    budget: Duration,
    mut operation: impl FnMut(u64) -> cpwal::Result<()>,
) -> Result<Vec<u64>, CliError> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..samples as u64 {
        let began = Instant::now();
        operation(n).map_err(|e| CliError::engine("bench operation failed", e))?;
        latencies.push(began.elapsed().as_nanos() as u64);
        if started.elapsed() > budget {
            break;
        }
    }
    Ok(latencies)
}

/// Calls per second at the median latency.
fn per_second(samples: &[u64]) -> f64 {
    Percentiles::of(samples).map_or(0.0, |p| 1e9 / p.p50.max(1) as f64)
}

/// Median of `samples` divided by the raw median, as "N.NNx".
fn ratio(samples: &[u64], raw: &[u64]) -> String {
    match (Percentiles::of(samples), Percentiles::of(raw)) {
        (Some(a), Some(b)) => format!("{:.2}x raw", a.p50 as f64 / b.p50.max(1) as f64),
        _ => "n/a".to_owned(),
    }
}

/// Latencies of each measured operation, in nanoseconds.
struct Figures {
    raw: Vec<u64>,
    appends: Vec<u64>,
    batches: Vec<u64>,
    votes: Vec<u64>,
    entry_bytes: u64,
    group_commit: OverlapRuns,
}

impl Figures {
    /// Whether the disk meets etcd's guidance (`None`: no raw samples).
    fn fit(&self) -> Option<(bool, u64)> {
        Percentiles::of(&self.raw).map(|p| (p.p99 < FDATASYNC_P99_LIMIT_NS, p.p99))
    }

    /// Every figure as JSON: percentiles in nanoseconds, each operation's
    /// median over the raw median, and the verdict.
    fn json(&self) -> serde_json::Value {
        let figure = |samples: &[u64], entries_per_call: usize| {
            let p = Percentiles::of(samples);
            let raw = Percentiles::of(&self.raw);
            serde_json::json!({
                "samples": p.map_or(0, |p| p.count),
                "p50_ns": p.map(|p| p.p50),
                "p99_ns": p.map(|p| p.p99),
                "median_over_raw_median": p.zip(raw).map(|(a, b)| a.p50 as f64 / b.p50.max(1) as f64),
                "entries_per_call": entries_per_call,
            })
        };
        serde_json::json!({
            "entry_bytes": self.entry_bytes,
            "raw_pwrite_fdatasync": figure(&self.raw, 1),
            "durable_append": figure(&self.appends, 1),
            "durable_append_batch": figure(&self.batches, BATCH_ENTRIES),
            "vote_or_term_change": figure(&self.votes, 0),
            "group_commit": {
                "writers": overlap::WRITERS,
                "one_sync_in_flight_entries_per_s": self.group_commit.one_in_flight,
                "default_entries_per_s": self.group_commit.default,
                "default_over_one_sync_in_flight": self.group_commit.default_over_one(),
                "syncs_end_before_threshold": self.group_commit.syncs_end_before_threshold,
                "second_sync_after_advice": self.group_commit.advice().name(),
            },
            "fdatasync_p99_limit_ns": FDATASYNC_P99_LIMIT_NS,
            "verdict": self.fit().map(|(fit, _)| if fit { "fit" } else { "too_slow" }),
        })
    }
}

fn report(figures: &Figures) -> Result<(), CliError> {
    let Figures {
        raw,
        appends,
        batches,
        votes,
        entry_bytes,
        group_commit,
    } = figures;
    outln!(
        "raw pwrite+fdatasync ({entry_bytes:>3} B):       {}",
        describe(raw)
    )?;
    outln!(
        "durable append (1 entry/call):      {}  [median {}; {:.0} appends/s vs {:.0} raw syncs/s]",
        describe(appends),
        ratio(appends, raw),
        per_second(appends),
        per_second(raw)
    )?;
    outln!(
        "durable append ({BATCH_ENTRIES} entries/call):   {}  [median {}; {:.0} entries/s]",
        describe(batches),
        ratio(batches, raw),
        per_second(batches) * BATCH_ENTRIES as f64
    )?;
    outln!(
        "vote/term change (2 syncs):         {}  [median {}; the floor is 2x raw]",
        describe(votes),
        ratio(votes, raw)
    )?;
    let rates = |runs: &[f64]| {
        let each: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
        each.join(", ")
    };
    outln!(
        "group commit ({} writers):           one sync in flight {} entries/s; default (second sync after {:?}) {} entries/s{}",
        overlap::WRITERS,
        rates(&group_commit.one_in_flight),
        Options::default().second_sync_after,
        rates(&group_commit.default),
        group_commit
            .default_over_one()
            .map_or(String::new(), |r| format!(" [{r:.2}x]"))
    )?;
    outln!("overlap: {}", group_commit.advice().sentence())?;
    match figures.fit() {
        Some((true, p99)) => outln!(
            "verdict: FIT for a control plane: fdatasync p99 {} is under etcd's 10 ms guidance",
            millis(p99)
        )?,
        Some((false, p99)) => outln!(
            "verdict: TOO SLOW for a control plane: fdatasync p99 {} exceeds etcd's 10 ms guidance; elections will time out under load, use a faster (SSD/NVMe) disk",
            millis(p99)
        )?,
        None => {}
    }
    Ok(())
}
