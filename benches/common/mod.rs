//! Shared by the benches: raw-syscall baselines, workload entries, and the
//! ratio summary read from the same run's samples.
#![allow(dead_code)] // Each bench uses a different subset.

pub mod slow_disk;
pub mod workload;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, Options, OwnershipTransition,
};
use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;

/// Criterion settings that keep a whole `cargo bench` within minutes on a
/// disk where one sync costs about a tenth of a millisecond or more.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .without_plots()
}

/// Benchmarks `routine(iters)` (which runs `iters` operations and returns
/// the time they took) as `id` in criterion.
pub fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    mut routine: impl FnMut(u64) -> Duration,
) {
    group.bench_function(id, |b| b.iter_custom(&mut routine));
}

/// A named workload for [`interleave`]: runs `n` operations, returns the
/// time they took.
pub type Routine<'a> = (&'static str, Box<dyn FnMut(u64) -> Duration + 'a>);

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Runs the routines in turn, `ops` operations each, for `rounds` rounds,
/// so slow drifts of a shared machine hit all of them alike; prints each
/// one's median time per operation and rate (`items` entries per
/// operation), and the median over rounds of `baseline time / routine
/// time` against the first routine (`> 1` means faster than the baseline).
/// Returns the median times per operation (ns), in order.
pub fn interleave(
    label: &str,
    rounds: usize,
    ops: u64,
    items: f64,
    routines: &mut [Routine<'_>],
) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(rounds); routines.len()];
    for _ in 0..rounds {
        for (slot, (_, run)) in times.iter_mut().zip(routines.iter_mut()) {
            slot.push(run(ops).as_nanos() as f64 / ops as f64);
        }
    }
    println!("\n=== {label}: {rounds} interleaved rounds x {ops} operations, medians ===");
    println!("(first routine = baseline: {})", routines[0].0);
    let medians: Vec<f64> = times.iter().map(|t| median(t.clone())).collect();
    for (position, (name, _)) in routines.iter().enumerate() {
        let ratios = times[0].iter().zip(&times[position]).map(|(b, t)| b / t);
        let p = percentile(&times[position], 0.99);
        println!(
            "RATIO {label} | {name:<34} {:>9.1} us/op {:>10.0} entries/s | p99 of rounds {:>8.1} us | speed vs first: ratio of medians {:.3}, median of paired rounds {:.3}",
            medians[position] / 1e3,
            items * 1e9 / medians[position],
            p / 1e3,
            medians[0] / medians[position],
            median(ratios.collect())
        );
    }
    medians
}

/// The `q` quantile of `values` (nearest rank).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// An ownership transition whose encoded payload is exactly `payload_bytes`
/// (between 64 and cpwal's entry limit), varied by `n`: range `n`, owner
/// `CN=owner`, epoch `n`.
pub fn entry_of_size(payload_bytes: usize, n: u64) -> ControlPlaneEntry {
    transition_of_size(payload_bytes, n, "CN=owner", n)
}

/// An ownership transition of `range` (a number, padded into the name) to
/// `owner` at `epoch`, whose encoded payload is exactly `payload_bytes`.
pub fn transition_of_size(
    payload_bytes: usize,
    range: u64,
    owner: &str,
    epoch: u64,
) -> ControlPlaneEntry {
    let make = |range_bytes: usize| {
        let mut name = format!("r{range:015}");
        name.extend(std::iter::repeat_n(
            'x',
            range_bytes.saturating_sub(name.len()),
        ));
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: name,
            new_owner: voter(owner),
            ownership_epoch: epoch,
        })
    };
    let overhead = cpwal::codec::encoded_entry(&make(16)).len() - 16;
    let entry = make(payload_bytes - overhead);
    assert_eq!(cpwal::codec::encoded_entry(&entry).len(), payload_bytes);
    entry
}

/// The bytes cpwal writes for one entry of `payload_bytes`.
pub fn record_bytes(payload_bytes: usize) -> usize {
    cpwal::format::record_bytes(payload_bytes as u64) as usize
}

/// A new node in `dir` with default options (16 MiB segments). Every bench
/// creates its nodes here and [`reopen_engine`] reopens them, so a change of
/// the opening API is a change of these two lines.
pub fn create_engine(dir: &Path) -> DurableControlPlane {
    DurableControlPlane::create(dir, voter("CN=bench"), Options::default()).unwrap()
}

/// The node [`create_engine`] created in `dir`, opened again (recovery).
pub fn reopen_engine(dir: &Path) -> DurableControlPlane {
    DurableControlPlane::open(dir, voter("CN=bench"), Options::default()).unwrap()
}

/// How a raw baseline file is prepared before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preparation {
    /// `fallocate` (unwritten extents on ext4), as cpwal's segments.
    Allocated,
    /// Filled with real zeros and synced.
    Zeroed,
}

/// The raw baseline: records appended with `pwrite` at increasing offsets
/// into a file prepared in full, each append followed by `fdatasync`; when
/// the file is full a new one is prepared (outside nothing: that cost is
/// part of the baseline, as rollover is part of cpwal's).
pub struct RawLog {
    dir: std::path::PathBuf,
    file: File,
    offset: u64,
    size_bytes: u64,
    files: u64,
    preparation: Preparation,
}

impl RawLog {
    pub fn new(dir: &Path, size_bytes: u64, preparation: Preparation) -> Self {
        let file = prepare_file(&dir.join("raw-0"), size_bytes, preparation);
        Self {
            dir: dir.to_path_buf(),
            file,
            offset: 0,
            size_bytes,
            files: 1,
            preparation,
        }
    }

    /// Writes `bytes` at the end with one `pwrite` and syncs.
    pub fn append(&mut self, bytes: &[u8]) {
        self.write(bytes);
        self.file.sync_data().unwrap();
    }

    /// Writes `bytes` at the end with one `pwrite`, no sync.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.offset + bytes.len() as u64 > self.size_bytes {
            let path = self.dir.join(format!("raw-{}", self.files));
            self.file = prepare_file(&path, self.size_bytes, self.preparation);
            self.files += 1;
            self.offset = 0;
        }
        self.file.write_all_at(bytes, self.offset).unwrap();
        self.offset += bytes.len() as u64;
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

pub fn prepare_file(path: &Path, size_bytes: u64, preparation: Preparation) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    match preparation {
        Preparation::Allocated => fs2::FileExt::allocate(&file, size_bytes).unwrap(),
        Preparation::Zeroed => {
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < size_bytes {
                let n = (size_bytes - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at).unwrap();
                at += n as u64;
            }
        }
    }
    file.sync_all().unwrap();
    file
}

/// The entry size of the open and memory benches.
pub const PAYLOAD_BYTES: usize = 128;

/// Builds the *fenced replay* log of `entries` entries of [`PAYLOAD_BYTES`]
/// in `dir`, in batches of 1000: the same 1000 transitions (ranges 0..1000,
/// epochs 0..1000) over and over, so after the first batch every entry is
/// fenced and the catalog holds 1000 ranges. Only a lower bound: the
/// realistic workload is [`workload::Workload`].
pub fn build_log(dir: &Path, entries: u64) {
    let batch: Vec<_> = (0..1000).map(|n| entry_of_size(PAYLOAD_BYTES, n)).collect();
    build_log_of(dir, entries, |n| batch[(n % 1000) as usize].clone());
}

/// Builds a log in `dir` of `entries` entries, entry `n` being `entry(n)`,
/// appended in batches of 1000.
pub fn build_log_of(dir: &Path, entries: u64, entry: impl Fn(u64) -> ControlPlaneEntry) {
    let mut engine = create_engine(dir);
    let mut written = 0;
    while written < entries {
        let batch: Vec<_> = (written..entries.min(written + 1000)).map(&entry).collect();
        engine.try_append_batch(&batch).unwrap();
        written += batch.len() as u64;
    }
}
