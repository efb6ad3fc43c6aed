//! One durable append (128 B and 1 KiB; the codec bounds an entry at
//! `MAX_ENTRY_BYTES` ≈ 1.3 KiB, so a 4 KiB entry cannot exist) against a raw
//! `pwrite` + `fdatasync` of the same bytes, and batches (64 and 1024 entries
//! of 128 B) against one raw write + `fdatasync` of the same bytes — all in
//! the same run, in temporary directories on the same file system.
//!
//! The raw baselines append into files prepared two ways: `fallocate`d
//! (unwritten extents, as cpwal's segments are) and filled with real zeros.
//! Run: `cargo bench --bench append`; the `RATIO` lines (interleaved rounds,
//! medians) are the summary.

mod common;

use std::time::{Duration, Instant};

use common::{bench, entry_of_size, interleave, open_engine, record_bytes, Preparation, RawLog};
use cpwal::{ControlPlaneEntry, DurableControlPlane};

const RAW_FILE_BYTES: u64 = 64 << 20;

/// cpwal appending `batch` (one entry or many) with one call per operation.
struct CpwalAppends {
    _dir: tempfile::TempDir,
    engine: DurableControlPlane,
    batch: Vec<ControlPlaneEntry>,
}

impl CpwalAppends {
    fn new(payload_bytes: usize, entries_per_call: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(&dir.path().join("cpwal"));
        let batch = (0..entries_per_call as u64)
            .map(|n| entry_of_size(payload_bytes, n))
            .collect();
        Self {
            _dir: dir,
            engine,
            batch,
        }
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            if self.batch.len() == 1 {
                self.engine.try_append(&self.batch[0]).unwrap();
            } else {
                self.engine.try_append_batch(&self.batch).unwrap();
            }
        }
        start.elapsed()
    }
}

/// A raw log writing `bytes` with one `pwrite` + `fdatasync` per operation.
struct RawAppends {
    _dir: tempfile::TempDir,
    raw: RawLog,
    bytes: Vec<u8>,
}

impl RawAppends {
    fn new(bytes: usize, preparation: Preparation) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawLog::new(dir.path(), RAW_FILE_BYTES, preparation);
        Self {
            _dir: dir,
            raw,
            bytes: vec![0x5a; bytes],
        }
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            self.raw.append(&self.bytes);
        }
        start.elapsed()
    }
}

/// Criterion measurements, then interleaved rounds for the ratio lines.
fn compare(c: &mut criterion::Criterion, payload_bytes: usize, entries_per_call: usize) {
    let label = format!("append {entries_per_call}x{payload_bytes}B per sync");
    let bytes = record_bytes(payload_bytes) * entries_per_call;
    let mut ours = CpwalAppends::new(payload_bytes, entries_per_call);
    let mut allocated = RawAppends::new(bytes, Preparation::Allocated);
    let mut zeroed = RawAppends::new(bytes, Preparation::Zeroed);
    let mut group = c.benchmark_group(format!("append_{entries_per_call}x{payload_bytes}B"));
    group.throughput(criterion::Throughput::Elements(entries_per_call as u64));
    bench(&mut group, "raw_fallocated", |n| allocated.run(n));
    bench(&mut group, "raw_zeroed", |n| zeroed.run(n));
    bench(&mut group, "cpwal", |n| ours.run(n));
    group.finish();
    // Many short rounds: sync latency on a shared virtual disk comes in
    // bursts, and fine interleaving exposes every contender to the same ones.
    let (rounds, ops) = if entries_per_call > 100 {
        (40, 2)
    } else {
        (150, 2)
    };
    interleave(
        &label,
        rounds,
        ops,
        entries_per_call as f64,
        &mut [
            (
                "raw pwrite+fdatasync (fallocated)",
                Box::new(|n| allocated.run(n)),
            ),
            ("raw pwrite+fdatasync (zeroed)", Box::new(|n| zeroed.run(n))),
            ("cpwal", Box::new(|n| ours.run(n))),
        ],
    );
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    compare(&mut c, 128, 1);
    compare(&mut c, 1024, 1);
    compare(&mut c, 128, 64);
    compare(&mut c, 128, 1024);
    c.final_summary();
}
