//! Opening (recovering) a log of 10k, 100k and 1M entries of 128 bytes, page
//! cache warm, next to crc32 over the same record bytes in memory, in the
//! same run; reported in MB of log scanned per second. Each size is measured
//! twice: without a snapshot (open scans the log and applies every entry to
//! the catalog) and with a snapshot covering the first 90% of it (open scans
//! the same bytes but applies only the last 10%; the segments are kept, so
//! the scanned bytes are the same).
//! Run: `cargo bench --bench open`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bench, build_log, interleave, open_engine, record_bytes, voter, PAYLOAD_BYTES};
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

fn main() {
    let mut c = common::criterion().configure_from_args();
    let sizes = [10_000u64, 100_000, 1_000_000];
    let cases = sizes
        .iter()
        .flat_map(|&entries| [(entries, false), (entries, true)]);
    for (entries, with_snapshot) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cpwal");
        if with_snapshot {
            build_log_with_snapshot(&log, entries);
        } else {
            build_log(&log, entries);
        }
        let name = if with_snapshot {
            format!("open_{entries}_snapshot_90pct")
        } else {
            format!("open_{entries}")
        };
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
            "RATIO {name} | open {:.0} MB/s | crc32 {:.0} MB/s | open/crc32 time = {:.2} (goal >= 1000 MB/s)",
            mb_per_s(medians[1]),
            mb_per_s(medians[0]),
            medians[1] / medians[0]
        );
    }
    c.final_summary();
}
