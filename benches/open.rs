//! Opening (recovering) a log, page cache warm, next to crc32 over the same
//! record bytes in memory, in the same run; reported in MB of log records
//! scanned per second. Workloads:
//!
//! * `open_<entries>_realistic` (100k and 1M entries, no snapshot): the
//!   control-plane workload of `common::workload` (ownership transitions of
//!   128 B over 4096 ranges at rising epochs, each changing its range's
//!   owner, with membership changes and leader records mixed in). Open scans
//!   the log and applies every entry to the catalog; the fraction fenced is
//!   checked to be near zero.
//! * `open_1000000_realistic_snapshot_90pct`: the same log with a snapshot
//!   covering its first 90% (taken with `compact`, segments kept, so the
//!   scanned bytes are the same): open applies only the last 10%.
//! * `open_1000000_fenced_replay_lower_bound`: the same 1000 transitions
//!   over and over, so after the first 1000 every entry is fenced (the
//!   catalog's cheapest path) and the catalog stays at 1000 ranges: a lower
//!   bound of open's cost, not a workload.
//!
//! With `CPWAL_BENCH_OPEN_GIB=1` a slow case is added:
//! `open_1gib_realistic`, the realistic workload at 1 GiB of records
//! (building it takes a while and the crc32 baseline holds the log in
//! memory).
//! Run: `cargo bench --bench open`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::workload::{report_fenced, Workload};
use common::{
    bench, build_log, build_log_of, interleave, record_bytes, reopen_engine, PAYLOAD_BYTES,
};

fn open_log(dir: &Path, calls: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        let engine = reopen_engine(dir);
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

/// Builds the realistic log of `entries` entries whose first 90% are
/// covered by a snapshot (taken with `compact`, keeping every segment).
fn build_log_with_snapshot(dir: &Path, workload: &Workload, entries: u64) {
    let covered = entries / 10 * 9;
    build_log_of(dir, covered, |n| workload.entry(n));
    let mut engine = reopen_engine(dir);
    let report = engine.compact(u64::MAX).unwrap();
    assert_eq!(report.snapshot_index_end.0, covered);
    assert_eq!(report.removed_segments, 0);
    let mut batch = Vec::new();
    let mut written = covered;
    while written < entries {
        let count = (entries - written).min(1000) as usize;
        workload.fill(written, count, &mut batch);
        engine.try_append_batch(&batch).unwrap();
        written += count as u64;
    }
}

/// How a case's log is built.
#[derive(Clone, Copy)]
enum LogShape {
    /// `common::workload`, every entry applied.
    Realistic,
    /// `Realistic`, with a snapshot covering the first 90%.
    RealisticWithSnapshot,
    /// `common::build_log`: 1000 transitions repeated, all but the first
    /// 1000 fenced (the lower bound).
    FencedReplay,
}

impl LogShape {
    /// What the RATIO line says about the workload.
    fn describe(self) -> &'static str {
        match self {
            Self::Realistic => {
                "realistic: 4096 ranges, rising epochs, owner changes, membership and leader mix"
            }
            Self::RealisticWithSnapshot => "realistic, snapshot of the first 90%",
            Self::FencedReplay => "LOWER BOUND: 1000 transitions repeated, later entries fenced",
        }
    }
}

/// Entries of the realistic workload in 1 GiB of records, rounded up.
fn entries_in_one_gib(workload: &Workload) -> u64 {
    let period = common::workload::SIZE_PERIOD;
    let period_bytes = workload.record_bytes(0, period as usize) as u64;
    (1u64 << 30).div_ceil(period_bytes) * period
}

fn cases(workload: &Workload) -> Vec<(String, u64, LogShape)> {
    let mut cases = vec![
        (
            "open_100000_realistic".to_string(),
            100_000,
            LogShape::Realistic,
        ),
        (
            "open_1000000_realistic".to_string(),
            1_000_000,
            LogShape::Realistic,
        ),
        (
            "open_1000000_realistic_snapshot_90pct".to_string(),
            1_000_000,
            LogShape::RealisticWithSnapshot,
        ),
        (
            "open_1000000_fenced_replay_lower_bound".to_string(),
            1_000_000,
            LogShape::FencedReplay,
        ),
    ];
    if std::env::var_os("CPWAL_BENCH_OPEN_GIB").is_some_and(|v| v == "1") {
        let name = "open_1gib_realistic".to_string();
        cases.push((name, entries_in_one_gib(workload), LogShape::Realistic));
    }
    cases
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    let realistic = Workload::new();
    for (name, entries, workload) in cases(&realistic) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cpwal");
        let log_bytes = match workload {
            LogShape::Realistic => {
                build_log_of(&log, entries, |n| realistic.entry(n));
                realistic.record_bytes(0, entries as usize)
            }
            LogShape::RealisticWithSnapshot => {
                build_log_with_snapshot(&log, &realistic, entries);
                realistic.record_bytes(0, entries as usize)
            }
            LogShape::FencedReplay => {
                build_log(&log, entries);
                entries as usize * record_bytes(PAYLOAD_BYTES)
            }
        };
        if !matches!(workload, LogShape::FencedReplay) {
            let refused = reopen_engine(&log).catalog().refused_count();
            report_fenced(&name, refused, entries);
        }
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
            "RATIO {name} | open {:.0} MB/s | crc32 {:.0} MB/s | open/crc32 time = {:.2} (goal for the realistic log without a snapshot: >= 1500 MB/s) | {}",
            mb_per_s(medians[1]),
            mb_per_s(medians[0]),
            medians[1] / medians[0],
            workload.describe()
        );
    }
    c.final_summary();
}
