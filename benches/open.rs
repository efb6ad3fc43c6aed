//! Opening (recovering) a log of entries of 128 bytes, page cache warm, next
//! to crc32 over the same record bytes in memory, in the same run; reported
//! in MB of log records scanned per second. Two workloads:
//!
//! * `open_<entries>` (10k, 100k, 1M entries): the same 1000 transitions
//!   over and over (ranges 0..1000, epochs 0..1000), so after the first 1000
//!   every entry is fenced and the catalog stays at 1000 ranges. Each size
//!   is measured twice: without a snapshot (open scans the log and applies
//!   every entry to the catalog) and with a snapshot covering the first 90%
//!   of it (open scans the same bytes but applies only the last 10%; the
//!   segments are kept, so the scanned bytes are the same).
//! * `open_<entries>_4096_ranges_rising` (100k, 1M entries, no snapshot):
//!   4096 ranges whose ownership keeps moving on at ever higher epochs, so
//!   every entry is applied and changes its range's owner (see
//!   `common::rising_transition`).
//!
//! With `CPWAL_BENCH_OPEN_GIB=1` a third, slow case is added:
//! `open_1gib_4096_ranges_rising`, the second workload at 5,835,554 entries
//! (1 GiB of records; building it takes a while and the crc32 baseline holds
//! the log in memory).
//! Run: `cargo bench --bench open`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    bench, build_log, build_log_of, interleave, open_engine, record_bytes, rising_transition,
    voter, PAYLOAD_BYTES,
};
use cpwal::{DurableControlPlane, Options};

fn open_log(dir: &Path, calls: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        let engine = DurableControlPlane::open(dir, voter("CN=bench"), Options::default()).unwrap();
        std::hint::black_box(engine.last_index());
    }
    start.elapsed()
}

/// Every segment file's bytes, read once into memory.
fn segment_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .collect();
    names.sort();
    for name in names {
        bytes.extend(std::fs::read(name).unwrap());
    }
    bytes
}

fn crc_of(bytes: &[u8], calls: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(crc32fast::hash(std::hint::black_box(bytes)));
    }
    start.elapsed()
}

/// Builds a log of `entries` entries whose first 90% are covered by a
/// snapshot (taken with `compact`, keeping every segment).
fn build_log_with_snapshot(dir: &Path, entries: u64) {
    let covered = entries / 10 * 9;
    build_log(dir, covered);
    let mut engine = open_engine(dir);
    let report = engine.compact(u64::MAX).unwrap();
    assert_eq!(report.snapshot_index_end, covered);
    assert_eq!(report.removed_segments, 0);
    let batch: Vec<_> = (0..1000)
        .map(|n| common::entry_of_size(PAYLOAD_BYTES, n))
        .collect();
    let mut written = covered;
    while written < entries {
        let n = (entries - written).min(1000) as usize;
        engine.try_append_batch(&batch[..n]).unwrap();
        written += n as u64;
    }
}

/// How a case's log is built.
#[derive(Clone, Copy)]
enum Workload {
    /// `common::build_log`: 1000 transitions repeated, all but the first
    /// 1000 fenced.
    Repeated,
    /// `Repeated`, with a snapshot covering the first 90%.
    RepeatedWithSnapshot,
    /// `common::rising_transition` over this many ranges.
    Rising(u64),
}

impl Workload {
    /// What the RATIO line says about the workload.
    fn describe(self) -> String {
        match self {
            Self::Repeated => "1000 ranges repeated, later entries fenced".into(),
            Self::RepeatedWithSnapshot => "as open_<n>, snapshot of the first 90%".into(),
            Self::Rising(ranges) => format!("{ranges} ranges, rising epochs, owner changes"),
        }
    }
}

/// Entries in 1 GiB of records of [`PAYLOAD_BYTES`], rounded up.
fn entries_in_one_gib() -> u64 {
    (1u64 << 30).div_ceil(record_bytes(PAYLOAD_BYTES) as u64)
}

fn cases() -> Vec<(String, u64, Workload)> {
    let mut cases = Vec::new();
    for entries in [10_000u64, 100_000, 1_000_000] {
        cases.push((format!("open_{entries}"), entries, Workload::Repeated));
        let name = format!("open_{entries}_snapshot_90pct");
        cases.push((name, entries, Workload::RepeatedWithSnapshot));
        if entries >= 100_000 {
            let name = format!("open_{entries}_4096_ranges_rising");
            cases.push((name, entries, Workload::Rising(4096)));
        }
    }
    if std::env::var_os("CPWAL_BENCH_OPEN_GIB").is_some_and(|v| v == "1") {
        let name = "open_1gib_4096_ranges_rising".to_string();
        cases.push((name, entries_in_one_gib(), Workload::Rising(4096)));
    }
    cases
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    for (name, entries, workload) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cpwal");
        match workload {
            Workload::Repeated => build_log(&log, entries),
            Workload::RepeatedWithSnapshot => build_log_with_snapshot(&log, entries),
            Workload::Rising(ranges) => build_log_of(&log, entries, |n| {
                rising_transition(PAYLOAD_BYTES, ranges, n)
            }),
        }
        let log_bytes = entries as usize * record_bytes(PAYLOAD_BYTES);
        let files = segment_bytes(&log);
        let records = &files[..log_bytes.min(files.len())];
        let mut group = c.benchmark_group(&name);
        group.throughput(criterion::Throughput::Bytes(log_bytes as u64));
        bench(&mut group, "cpwal_open", |n| open_log(&log, n));
        bench(&mut group, "crc32_same_bytes", |n| crc_of(records, n));
        group.finish();
        let medians = interleave(
            &format!("{name} ({:.1} MB of records)", log_bytes as f64 / 1e6),
            7,
            1,
            entries as f64,
            &mut [
                (
                    "crc32 over the record bytes",
                    Box::new(|n| crc_of(records, n)),
                ),
                (
                    "cpwal open (recovery scan)",
                    Box::new(|n| open_log(&log, n)),
                ),
            ],
        );
        let mb_per_s = |ns: f64| log_bytes as f64 / 1e6 / (ns / 1e9);
        println!(
            "RATIO {name} | open {:.0} MB/s | crc32 {:.0} MB/s | open/crc32 time = {:.2} (goal >= 1000 MB/s) | {}",
            mb_per_s(medians[1]),
            mb_per_s(medians[0]),
            medians[1] / medians[0],
            workload.describe()
        );
    }
    c.final_summary();
}
