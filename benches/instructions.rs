//! Instructions per appended entry, counted by callgrind (repeatable on a
//! shared, noisy machine, unlike time): the realistic workload
//! (`common::workload`) appended one entry per call, 64 and 1024 per call,
//! and 64 per call through `SharedControlPlane`, then the open that rebuilds
//! the catalog from all of them. Each case runs in its own `measure_*`
//! function, whose inclusive count callgrind reports; the driver prints how
//! many entries each one appended. It measures CPU only (the syncs are real
//! but their waiting is not counted), so it has no raw baseline: its numbers
//! compare builds, not cpwal with the disk.
//!
//! ```text
//! cargo bench --bench instructions --no-run
//! CPWAL_COUNT_INSTRUCTIONS=1 valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/deps/instructions-<hash>
//! callgrind_annotate --inclusive=yes cg.out | grep measure_
//! ```
//! Without `CPWAL_COUNT_INSTRUCTIONS=1` (as under `cargo bench`) it does
//! nothing.

mod common;

use common::workload::Workload;
use cpwal::{ControlPlaneEntry, DurableControlPlane, SharedControlPlane};

const SINGLE_CALLS: u64 = 2000;
const BATCH_CALLS: u64 = 100;
const LARGE_BATCH_CALLS: u64 = 10;

/// Appends `calls` calls of `per_call` entries from `*next` on.
fn appends(
    engine: &mut DurableControlPlane,
    workload: &Workload,
    next: &mut u64,
    calls: u64,
    per_call: usize,
) {
    let mut batch = Vec::with_capacity(per_call);
    for _ in 0..calls {
        if per_call == 1 {
            engine.try_append(&workload.entry(*next)).unwrap();
        } else {
            workload.fill(*next, per_call, &mut batch);
            engine.try_append_batch(&batch).unwrap();
        }
        *next += per_call as u64;
    }
}

#[inline(never)]
fn measure_single(e: &mut DurableControlPlane, w: &Workload, next: &mut u64) {
    appends(e, w, next, SINGLE_CALLS, 1);
}

#[inline(never)]
fn measure_batch_64(e: &mut DurableControlPlane, w: &Workload, next: &mut u64) {
    appends(e, w, next, BATCH_CALLS, 64);
}

#[inline(never)]
fn measure_batch_1024(e: &mut DurableControlPlane, w: &Workload, next: &mut u64) {
    appends(e, w, next, LARGE_BATCH_CALLS, 1024);
}

#[inline(never)]
fn measure_shared_64(shared: &SharedControlPlane, w: &Workload, next: &mut u64) {
    let mut batch: Vec<ControlPlaneEntry> = Vec::with_capacity(64);
    for _ in 0..BATCH_CALLS {
        w.fill(*next, 64, &mut batch);
        shared.try_append_batch(&batch).unwrap();
        *next += 64;
    }
}

#[inline(never)]
fn measure_open(dir: &std::path::Path) -> DurableControlPlane {
    common::reopen_engine(dir)
}

fn main() {
    if std::env::var_os("CPWAL_COUNT_INSTRUCTIONS").is_none_or(|v| v != "1") {
        return;
    }
    let workload = Workload::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpwal");
    let mut engine = common::create_engine(&path);
    let mut next = 0;
    // Warm-up: every range seen once, every buffer grown.
    appends(&mut engine, &workload, &mut next, 8, 1024);
    let before = next;
    measure_single(&mut engine, &workload, &mut next);
    println!("measure_single: {} entries", next - before);
    let before = next;
    measure_batch_64(&mut engine, &workload, &mut next);
    println!("measure_batch_64: {} entries", next - before);
    let before = next;
    measure_batch_1024(&mut engine, &workload, &mut next);
    println!("measure_batch_1024: {} entries", next - before);
    let shared = SharedControlPlane::new(engine);
    let before = next;
    measure_shared_64(&shared, &workload, &mut next);
    println!("measure_shared_64: {} entries", next - before);
    let refused = shared.with_catalog(|c| c.refused_count());
    common::workload::report_fenced("instructions", refused, next);
    drop(shared);
    let reopened = measure_open(&path);
    assert_eq!(reopened.applied_end().0, next);
    println!("measure_open: {next} entries");
}
