//! Resident memory per entry of an open log of 1M entries of the realistic
//! workload (`common::workload`: 4096 ranges), beyond the OS page cache:
//! heap bytes held by the open engine (counted by a global allocator), and
//! the anonymous resident memory (`RssAnon`) it adds; the segment maps are
//! file-backed page cache and excluded. Goal: at most 16 bytes per entry.
//! Then the catalog's own memory per range: heap held by a catalog of
//! 100,000 ranges with the workload's range names (the name's own bytes are
//! printed beside it). Also counts heap allocations per durable append
//! (`try_append` on the node and on `SharedControlPlane`), steady state.
//! Run: `cargo bench --bench memory`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::workload::{range_name, Workload};
use cpwal::{
    ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane,
    OwnershipTransition,
};

/// Counts live heap bytes.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a
// counter is updated beside it.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// `RssAnon` of this process in bytes.
fn rss_anon_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let entries = 1_000_000u64;
    let workload = Workload::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cpwal");
    common::build_log_of(&log, entries, |n| workload.entry(n));
    let (heap_before, anon_before) = (LIVE_BYTES.load(Ordering::Relaxed), rss_anon_bytes());
    let engine = common::reopen_engine(&log);
    let (heap_after, anon_after) = (LIVE_BYTES.load(Ordering::Relaxed), rss_anon_bytes());
    assert_eq!(engine.last_index().map(|i| i.0 + 1), Some(entries));
    let heap = heap_after - heap_before;
    let anon = anon_after.saturating_sub(anon_before);
    println!(
        "RATIO memory {entries} realistic entries, {} ranges | heap held by the open engine {heap} B = {:.2} B/entry | RssAnon delta {anon} B = {:.2} B/entry (goal <= 16)",
        engine.catalog().range_count(),
        heap as f64 / entries as f64,
        anon as f64 / entries as f64
    );
    catalog_bytes_per_range(&workload, 100_000);
    allocations_per_append(engine, &workload, entries);
}

/// Prints the heap a catalog holds per range, for `ranges` ranges named as
/// the workload names them, owned by its five owners.
fn catalog_bytes_per_range(workload: &Workload, ranges: u64) {
    let name_bytes = workload.range_name_bytes();
    let entries: Vec<ControlPlaneEntry> = (0..ranges)
        .map(|r| {
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: range_name(r, name_bytes),
                new_owner: workload.owner(r as usize).clone(),
                ownership_epoch: r + 1,
            })
        })
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut catalog = ControlPlaneCatalog::new();
    for (index, entry) in entries.iter().enumerate() {
        catalog
            .apply(ControlPlaneIndex(index as u64), entry)
            .unwrap();
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert_eq!(catalog.range_count() as u64, ranges);
    println!(
        "RATIO catalog memory, {ranges} ranges | heap held {held} B = {:.1} B/range (range names are {name_bytes} B, owners {} B)",
        held as f64 / ranges as f64,
        workload.owner(0).as_str().len()
    );
}

/// Prints the heap allocations of one durable append of the workload's
/// next entries, steady state (after warm-up appends have grown every
/// reused buffer), not counting the caller's building of the entry.
fn allocations_per_append(mut engine: DurableControlPlane, workload: &Workload, mut next: u64) {
    let mut per_append = |append: &mut dyn FnMut(&ControlPlaneEntry)| {
        let mut allocations = 0;
        for _ in 0..1000 {
            let entry = workload.entry(next);
            next += 1;
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            append(&entry);
            allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
        }
        allocations as f64 / 1000.0
    };
    let mut direct = |entry: &ControlPlaneEntry| {
        engine.try_append(entry).unwrap();
    };
    per_append(&mut direct);
    let single = per_append(&mut direct);
    let shared = cpwal::SharedControlPlane::new(engine);
    let mut through = |entry: &ControlPlaneEntry| {
        shared.try_append(entry).unwrap();
    };
    per_append(&mut through);
    let through_shared = per_append(&mut through);
    println!(
        "RATIO allocations per durable append (steady state, realistic entries) | try_append {single:.3} | SharedControlPlane::try_append {through_shared:.3}"
    );
}
