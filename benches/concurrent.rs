//! 1, 4 and 16 threads appending 128-byte entries, each waiting for its own
//! entry to be durable: cpwal's group commit (`SharedControlPlane`) against
//! raw threads that each `pwrite` + `fdatasync` for themselves, and against
//! a plain leader/follower group commit over a raw file, and against cpwal's
//! `&mut` API behind a mutex (no group commit) — same run, same
//! file system. Run: `cargo bench --bench concurrent`.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{bench, entry_of_size, interleave, open_engine, record_bytes, Preparation};
use cpwal::{ControlPlaneEntry, DurableControlPlane, SharedControlPlane};

const RAW_FILE_BYTES: u64 = 256 << 20;
const PAYLOAD_BYTES: usize = 128;

/// Runs `ops` operations split over `threads` threads; returns the time.
fn on_threads(threads: u64, ops: u64, op: impl Fn(u64, u64) + Sync) -> Duration {
    let per_thread = ops.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let op = &op;
            scope.spawn(move || (0..per_thread).for_each(|i| op(t, i)));
        }
    });
    start.elapsed()
}

/// Raw threads sharing one fallocated file: each reserves its offset, then
/// `pwrite`s and `fdatasync`s on its own.
struct RawEachSyncs {
    file: File,
    next_offset: AtomicU64,
    record: Vec<u8>,
}

impl RawEachSyncs {
    fn append(&self) {
        let length = self.record.len() as u64;
        let offset =
            self.next_offset.fetch_add(length, Ordering::Relaxed) % (RAW_FILE_BYTES - length);
        self.file.write_all_at(&self.record, offset).unwrap();
        self.file.sync_data().unwrap();
    }
}

/// A plain leader/follower group commit over a raw file: write under a lock,
/// then wait until a sync that started after the write has finished,
/// leading one if none is in flight.
struct RawGroupCommit {
    file: File,
    state: Mutex<GroupState>,
    changed: Condvar,
    record: Vec<u8>,
}

#[derive(Default)]
struct GroupState {
    next_offset: u64,
    written: u64,
    durable: u64,
    syncing: bool,
}

impl RawGroupCommit {
    fn append(&self) {
        let mut state = self.state.lock().unwrap();
        let length = self.record.len() as u64;
        let offset = state.next_offset % (RAW_FILE_BYTES - length);
        self.file.write_all_at(&self.record, offset).unwrap();
        state.next_offset += length;
        state.written += 1;
        let mine = state.written;
        while state.durable < mine {
            if state.syncing {
                state = self.changed.wait(state).unwrap();
                continue;
            }
            state.syncing = true;
            let covered = state.written;
            drop(state);
            self.file.sync_data().unwrap();
            state = self.state.lock().unwrap();
            state.durable = state.durable.max(covered);
            state.syncing = false;
            self.changed.notify_all();
        }
    }
}

struct Contenders {
    _dirs: Vec<tempfile::TempDir>,
    shared: SharedControlPlane,
    /// The `&mut` API behind a mutex: one sync per call, no sharing.
    direct: Mutex<DurableControlPlane>,
    entries: Vec<ControlPlaneEntry>,
    each_syncs: RawEachSyncs,
    group: RawGroupCommit,
}

impl Contenders {
    fn new() -> Self {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let shared = SharedControlPlane::new(open_engine(&dirs[0].path().join("cpwal")));
        let record = vec![0x5a; record_bytes(PAYLOAD_BYTES)];
        let raw_file = |d: &tempfile::TempDir| {
            common::prepare_file(
                &d.path().join("raw"),
                RAW_FILE_BYTES,
                Preparation::Allocated,
            )
        };
        Self {
            entries: (0..16).map(|n| entry_of_size(PAYLOAD_BYTES, n)).collect(),
            each_syncs: RawEachSyncs {
                file: raw_file(&dirs[1]),
                next_offset: AtomicU64::new(0),
                record: record.clone(),
            },
            group: RawGroupCommit {
                file: raw_file(&dirs[2]),
                state: Mutex::default(),
                changed: Condvar::new(),
                record,
            },
            shared,
            direct: Mutex::new(open_engine(&dirs[3].path().join("cpwal"))),
            _dirs: dirs,
        }
    }

    fn cpwal(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |t, _| {
            self.shared.append(&self.entries[t as usize]).unwrap();
        })
    }

    fn direct(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |t, _| {
            let mut engine = self.direct.lock().unwrap();
            engine.try_append(&self.entries[t as usize]).unwrap();
        })
    }

    fn raw_each(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| self.each_syncs.append())
    }

    fn raw_group(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| self.group.append())
    }
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    let contenders = Contenders::new();
    for threads in [1u64, 4, 16] {
        let mut group = c.benchmark_group(format!("concurrent_{threads}_threads"));
        group.throughput(criterion::Throughput::Elements(1));
        bench(&mut group, "raw_each_syncs", |n| {
            contenders.raw_each(threads, n)
        });
        bench(&mut group, "raw_group_commit", |n| {
            contenders.raw_group(threads, n)
        });
        bench(&mut group, "cpwal_shared", |n| contenders.cpwal(threads, n));
        bench(&mut group, "cpwal_mut_mutex", |n| {
            contenders.direct(threads, n)
        });
        group.finish();
        interleave(
            &format!("{threads} threads, 128 B each, own durability"),
            30,
            threads * 8,
            1.0,
            &mut [
                (
                    "raw threads each fdatasync",
                    Box::new(|n| contenders.raw_each(threads, n)),
                ),
                (
                    "raw leader/follower group commit",
                    Box::new(|n| contenders.raw_group(threads, n)),
                ),
                (
                    "cpwal SharedControlPlane",
                    Box::new(|n| contenders.cpwal(threads, n)),
                ),
                (
                    "cpwal &mut behind a mutex",
                    Box::new(|n| contenders.direct(threads, n)),
                ),
            ],
        );
    }
    c.final_summary();
}
