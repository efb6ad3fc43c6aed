//! Resident memory per entry of an open log of 1M entries (128 B each),
//! beyond the OS page cache: heap bytes held by the open engine (counted by
//! a global allocator), and the anonymous resident memory (`RssAnon`) it
//! adds; the segment maps are file-backed page cache and excluded.
//! Goal: at most 16 bytes per entry. Also counts heap allocations per
//! durable append (`try_append` and `SharedControlPlane::append`), steady
//! state. Run: `cargo bench --bench memory`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cpwal::{DurableControlPlane, Options};

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
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cpwal");
    common::build_log(&log, entries);
    let (heap_before, anon_before) = (LIVE_BYTES.load(Ordering::Relaxed), rss_anon_bytes());
    let engine =
        DurableControlPlane::open(&log, common::voter("CN=bench"), Options::default()).unwrap();
    let (heap_after, anon_after) = (LIVE_BYTES.load(Ordering::Relaxed), rss_anon_bytes());
    assert_eq!(engine.last_index().map(|i| i.0 + 1), Some(entries));
    let heap = heap_after - heap_before;
    let anon = anon_after.saturating_sub(anon_before);
    println!(
        "RATIO memory {entries} entries | heap held by the open engine {heap} B = {:.2} B/entry | RssAnon delta {anon} B = {:.2} B/entry (goal <= 16)",
        heap as f64 / entries as f64,
        anon as f64 / entries as f64
    );
    allocations_per_append(engine);
}

/// Prints the heap allocations of one durable append, steady state (after
/// warm-up appends have grown every reused buffer).
fn allocations_per_append(mut engine: DurableControlPlane) {
    let entry = common::entry_of_size(common::PAYLOAD_BYTES, 7);
    let per_append = |engine: &mut DurableControlPlane| {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..1000 {
            engine.try_append(&entry).unwrap();
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 1000.0
    };
    per_append(&mut engine);
    let single = per_append(&mut engine);
    let shared = cpwal::SharedControlPlane::new(engine);
    let count_shared = || {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..1000 {
            shared.append(&entry).unwrap();
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 1000.0
    };
    count_shared();
    let through_shared = count_shared();
    println!(
        "RATIO allocations per durable append (steady state) | try_append {single:.3} | SharedControlPlane::append {through_shared:.3}"
    );
}
