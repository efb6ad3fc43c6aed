//! Opening (recovering) a log of 10k, 100k and 1M entries of 128 bytes, page
//! cache warm, next to crc32 over the same record bytes in memory, in the
//! same run; reported in MB of log scanned per second.
//! Compaction (`remove_prefix`) has no engine API on this branch, so opening
//! a compacted log is not measured here.
//! Run: `cargo bench --bench open`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bench, build_log, interleave, record_bytes, voter, PAYLOAD_BYTES};
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

fn main() {
    let mut c = common::criterion().configure_from_args();
    for entries in [10_000u64, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cpwal");
        build_log(&log, entries);
        let log_bytes = entries as usize * record_bytes(PAYLOAD_BYTES);
        let files = segment_bytes(&log);
        let records = &files[..log_bytes.min(files.len())];
        let mut group = c.benchmark_group(format!("open_{entries}"));
        group.throughput(criterion::Throughput::Bytes(log_bytes as u64));
        bench(&mut group, "cpwal_open", |n| open_log(&log, n));
        bench(&mut group, "crc32_same_bytes", |n| crc_of(records, n));
        group.finish();
        let medians = interleave(
            &format!(
                "open {entries} entries ({:.1} MB of records)",
                log_bytes as f64 / 1e6
            ),
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
            "RATIO open {entries} | open {:.0} MB/s | crc32 {:.0} MB/s | open/crc32 time = {:.2} (goal >= 1000 MB/s)",
            mb_per_s(medians[1]),
            mb_per_s(medians[0]),
            medians[1] / medians[0]
        );
    }
    c.final_summary();
}
