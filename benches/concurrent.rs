//! 1, 4 and 16 threads appending the realistic workload
//! (`common::workload`: each thread takes the next sequence number and
//! builds that entry, a distinct ownership transition at a rising epoch over
//! 4096 ranges, or a membership change or leader record), each waiting for
//! its own entry to be durable: cpwal's group commit (`SharedControlPlane`)
//! against raw threads that each `pwrite` + `fdatasync` the same number of
//! bytes for themselves, and against a plain leader/follower group commit
//! over a raw file, and against cpwal's `&mut` API behind a mutex (no group
//! commit) — same run, same file system. Overlapping syncs (issue #15,
//! item 4): cpwal's default starts a second sync once one has run 1 ms
//! (`Options::second_sync_after`); two more cpwal contenders never overlap
//! and overlap at once, and a raw contender lets two syncs be in flight at
//! once. The fraction of entries each catalog fenced is printed and must be
//! near zero.
//!
//! With `CPWAL_BENCH_LONG_RUNS=<seconds>` it runs only
//! [`compare_overlap_settings_in_long_runs`]: the three overlap settings,
//! each appending for that long after a pause, for a disk with an
//! operations budget (`benches/budget_disk.sh` makes one and runs this).
//! Run: `cargo bench --bench concurrent`.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::slow_disk::SlowDisk;
use common::workload::{report_fenced, Workload};
use common::{bench, create_engine, interleave, Preparation};
use cpwal::io::{OsStorage, Storage};
use cpwal::{DurableControlPlane, Options, SharedControlPlane, SoleVoter};

/// What the emulated slow disk adds to every sync: the throttled regime's
/// `fdatasync` latency here.
const SLOW_SYNC_DELAY: Duration = Duration::from_millis(4);

const RAW_FILE_BYTES: u64 = 256 << 20;

/// The idle pause before each long run: long enough for a throttled
/// volume's budget to refill (the kernel's throttle accounts in slices of
/// at most 100 ms) and for a new node's spare segment to be zero-filled.
const LONG_RUN_PAUSE: Duration = Duration::from_millis(1500);

/// Rounds of long runs, the settings in a rotating order.
const LONG_RUN_ROUNDS: usize = 3;

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
/// `pwrite`s and `fdatasync`s on its own, as many bytes as cpwal writes for
/// the same entry of the workload.
struct RawEachSyncs<'w> {
    file: File,
    next_offset: AtomicU64,
    next_entry: AtomicU64,
    workload: &'w Workload,
    record: Vec<u8>,
}

impl RawEachSyncs<'_> {
    fn append(&self) {
        let n = self.next_entry.fetch_add(1, Ordering::Relaxed);
        let length = self.workload.record_bytes(n, 1) as u64;
        let offset =
            self.next_offset.fetch_add(length, Ordering::Relaxed) % (RAW_FILE_BYTES - length);
        let record = &self.record[..length as usize];
        self.file.write_all_at(record, offset).unwrap();
        self.file.sync_data().unwrap();
    }
}

/// A plain leader/follower group commit over a raw file: write under a lock,
/// then wait until a sync that started after the write has finished,
/// leading one if fewer than `max_in_flight` are in flight. With one in
/// flight it is the shape of cpwal's group commit; with two it models the
/// overlap issue #15 asks about (a sync of the file covers every write made
/// before it started, so the durable end is the largest end a finished
/// sync covered), to show what that could gain on this disk.
struct RawGroupCommit<'w> {
    file: File,
    state: Mutex<GroupState>,
    changed: Condvar,
    workload: &'w Workload,
    record: Vec<u8>,
    max_in_flight: u32,
}

#[derive(Default)]
struct GroupState {
    next_offset: u64,
    written: u64,
    durable: u64,
    /// The end the newest sync in flight covers.
    covering: u64,
    in_flight: u32,
}

impl RawGroupCommit<'_> {
    fn append(&self) {
        let mut state = self.state.lock().unwrap();
        let length = self.workload.record_bytes(state.written, 1) as u64;
        let offset = state.next_offset % (RAW_FILE_BYTES - length);
        let record = &self.record[..length as usize];
        self.file.write_all_at(record, offset).unwrap();
        state.next_offset += length;
        state.written += 1;
        let mine = state.written;
        while state.durable < mine {
            if state.covering >= mine || state.in_flight >= self.max_in_flight {
                state = self.changed.wait(state).unwrap();
                continue;
            }
            state.in_flight += 1;
            let covered = state.written;
            state.covering = covered;
            drop(state);
            self.file.sync_data().unwrap();
            state = self.state.lock().unwrap();
            state.durable = state.durable.max(covered);
            state.in_flight -= 1;
            self.changed.notify_all();
        }
    }
}

/// A `SharedControlPlane` and the next entry of the workload it appends.
struct SharedAppends<S: Storage = OsStorage> {
    shared: SharedControlPlane<SoleVoter, S>,
    next: AtomicU64,
}

impl SharedAppends {
    /// A node in `dir` whose syncs overlap after `second_sync_after`.
    fn new(dir: &tempfile::TempDir, second_sync_after: Duration) -> Self {
        let options = Options::default().with_second_sync_after(second_sync_after);
        let node = DurableControlPlane::create(
            dir.path().join("cpwal"),
            common::voter("CN=bench"),
            options,
        );
        Self {
            shared: SharedControlPlane::new(node.unwrap()),
            next: AtomicU64::new(0),
        }
    }
}

impl SharedAppends<SlowDisk> {
    /// A node on the emulated slow disk in `dir` (see `common::slow_disk`)
    /// whose every sync is `delay` late, and whose syncs overlap after
    /// `second_sync_after`.
    fn on_slow_disk(dir: &tempfile::TempDir, delay: Duration, second_sync_after: Duration) -> Self {
        let storage = SlowDisk::open(&dir.path().join("cpwal"), delay);
        let options = Options::default().with_second_sync_after(second_sync_after);
        let voter = common::voter("CN=bench");
        let node = DurableControlPlane::create_with_storage(storage, voter, options);
        Self {
            shared: SharedControlPlane::new(node.unwrap()),
            next: AtomicU64::new(0),
        }
    }
}

impl<S: Storage> SharedAppends<S> {
    /// Each call takes the next sequence number and builds its entry.
    fn run(&self, workload: &Workload, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            self.shared.try_append(&workload.entry(n)).unwrap();
        })
    }

    /// How many entries its catalog fenced, of how many appended.
    fn fenced(&self) -> (u64, u64) {
        let refused = self.shared.with_catalog(|c| c.refused_count());
        (refused, self.next.load(Ordering::Relaxed))
    }

    /// Appends from `threads` threads, each taking the next entry as it
    /// goes, for `duration`; returns the entries appended per second.
    fn rate_over(&self, workload: &Workload, threads: u64, duration: Duration) -> f64 {
        let before = self.next.load(Ordering::Relaxed);
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let n = self.next.fetch_add(1, Ordering::Relaxed);
                        self.shared.try_append(&workload.entry(n)).unwrap();
                    }
                });
            }
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
        let appended = self.next.load(Ordering::Relaxed) - before;
        appended as f64 / start.elapsed().as_secs_f64()
    }
}

struct Contenders<'w> {
    _dirs: Vec<tempfile::TempDir>,
    workload: &'w Workload,
    /// The default: a second sync once one has run 1 ms.
    shared: SharedAppends,
    shared_one_in_flight: SharedAppends,
    shared_overlap_at_once: SharedAppends,
    /// The `&mut` API behind a mutex: one sync per call, no sharing.
    direct: Mutex<DurableControlPlane>,
    direct_next: AtomicU64,
    each_syncs: RawEachSyncs<'w>,
    group: RawGroupCommit<'w>,
    group_two_in_flight: RawGroupCommit<'w>,
}

impl<'w> Contenders<'w> {
    fn new(workload: &'w Workload) -> Self {
        let dirs: Vec<_> = (0..7).map(|_| tempfile::tempdir().unwrap()).collect();
        let record = vec![0x5a; workload.max_record_bytes(1)];
        let raw_file = |d: &tempfile::TempDir| {
            common::prepare_file(
                &d.path().join("raw"),
                RAW_FILE_BYTES,
                Preparation::Allocated,
            )
        };
        Self {
            workload,
            each_syncs: RawEachSyncs {
                file: raw_file(&dirs[1]),
                next_offset: AtomicU64::new(0),
                next_entry: AtomicU64::new(0),
                workload,
                record: record.clone(),
            },
            group: RawGroupCommit {
                file: raw_file(&dirs[2]),
                state: Mutex::default(),
                changed: Condvar::new(),
                workload,
                record: record.clone(),
                max_in_flight: 1,
            },
            group_two_in_flight: RawGroupCommit {
                file: raw_file(&dirs[4]),
                state: Mutex::default(),
                changed: Condvar::new(),
                workload,
                record,
                max_in_flight: 2,
            },
            shared: SharedAppends::new(&dirs[0], Options::default().second_sync_after),
            shared_one_in_flight: SharedAppends::new(&dirs[5], Duration::MAX),
            shared_overlap_at_once: SharedAppends::new(&dirs[6], Duration::ZERO),
            direct: Mutex::new(create_engine(&dirs[3].path().join("cpwal"))),
            direct_next: AtomicU64::new(0),
            _dirs: dirs,
        }
    }

    fn cpwal(&self, threads: u64, ops: u64) -> Duration {
        self.shared.run(self.workload, threads, ops)
    }

    fn direct(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| {
            let n = self.direct_next.fetch_add(1, Ordering::Relaxed);
            let entry = self.workload.entry(n);
            let mut engine = self.direct.lock().unwrap();
            engine.try_append(&entry).unwrap();
        })
    }

    /// Prints and checks the fraction of entries each cpwal contender's
    /// catalog fenced (threads racing can reorder two transitions of one
    /// range, but they are 4096 entries apart).
    fn report_fenced(&self) {
        let direct = self.direct.lock().unwrap().catalog().refused_count();
        for (name, (refused, entries)) in [
            ("SharedControlPlane", self.shared.fenced()),
            (
                "SharedControlPlane, one sync in flight",
                self.shared_one_in_flight.fenced(),
            ),
            (
                "SharedControlPlane, overlapping at once",
                self.shared_overlap_at_once.fenced(),
            ),
            (
                "&mut behind a mutex",
                (direct, self.direct_next.load(Ordering::Relaxed)),
            ),
        ] {
            report_fenced(&format!("concurrent {name}"), refused, entries);
        }
    }

    fn raw_each(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| self.each_syncs.append())
    }

    fn raw_group(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| self.group.append())
    }

    fn raw_group_two_in_flight(&self, threads: u64, ops: u64) -> Duration {
        on_threads(threads, ops, |_, _| self.group_two_in_flight.append())
    }
}

fn main() {
    if let Ok(seconds) = std::env::var("CPWAL_BENCH_LONG_RUNS") {
        let run = seconds
            .parse()
            .ok()
            .and_then(|s: f64| Duration::try_from_secs_f64(s).ok())
            .filter(|run| !run.is_zero())
            .unwrap_or_else(|| {
                panic!("CPWAL_BENCH_LONG_RUNS={seconds}: want seconds per run, above 0")
            });
        compare_overlap_settings_in_long_runs(run);
        return;
    }
    let mut c = common::criterion().configure_from_args();
    let workload = Workload::new();
    let contenders = Contenders::new(&workload);
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
            &format!("{threads} threads, realistic entries, own durability"),
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
                    "cpwal SharedControlPlane (2nd sync after 1 ms)",
                    Box::new(|n| contenders.cpwal(threads, n)),
                ),
                (
                    "cpwal SharedControlPlane, one sync in flight",
                    Box::new(|n| {
                        let c = &contenders.shared_one_in_flight;
                        c.run(contenders.workload, threads, n)
                    }),
                ),
                (
                    "cpwal SharedControlPlane, 2nd sync at once",
                    Box::new(|n| {
                        let c = &contenders.shared_overlap_at_once;
                        c.run(contenders.workload, threads, n)
                    }),
                ),
                (
                    "cpwal &mut behind a mutex",
                    Box::new(|n| contenders.direct(threads, n)),
                ),
                (
                    "raw group commit, 2 syncs in flight",
                    Box::new(|n| contenders.raw_group_two_in_flight(threads, n)),
                ),
            ],
        );
    }
    contenders.report_fenced();
    compare_on_slow_disk();
    c.final_summary();
}

/// Overlapping syncs on the emulated slow disk (every sync 4 ms late, see
/// `common::slow_disk`): cpwal's default against one sync in flight, 4 and
/// 16 threads, interleaved rounds.
fn compare_on_slow_disk() {
    let workload = Workload::new();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = SharedAppends::on_slow_disk(&dirs[0], SLOW_SYNC_DELAY, Duration::MAX);
    let two = SharedAppends::on_slow_disk(
        &dirs[1],
        SLOW_SYNC_DELAY,
        Options::default().second_sync_after,
    );
    for threads in [4u64, 16] {
        interleave(
            &format!("{threads} threads, EMULATED slow disk (each sync +4 ms)"),
            10,
            threads * 4,
            1.0,
            &mut [
                (
                    "cpwal SharedControlPlane, one sync in flight",
                    Box::new(|n| one.run(&workload, threads, n)),
                ),
                (
                    "cpwal SharedControlPlane (2nd sync after 1 ms)",
                    Box::new(|n| two.run(&workload, threads, n)),
                ),
            ],
        );
    }
}

/// cpwal's overlap settings (one sync in flight, the default, a second sync
/// at once), each appending from 4 and then 16 threads for `duration` after
/// a pause of [`LONG_RUN_PAUSE`], in [`LONG_RUN_ROUNDS`] rounds; on the
/// disk as it is, then with every sync [`SLOW_SYNC_DELAY`] late (the
/// emulation of `compare_on_slow_disk`). Made for a disk with an operations
/// budget, where the short interleaved rounds above mislead: a contender
/// that overspends the budget leaves the next one to pay for it.
fn compare_overlap_settings_in_long_runs(duration: Duration) {
    let workload = Workload::new();
    let settings = [
        ("one sync in flight", Duration::MAX),
        (
            "default (2nd sync after 1 ms)",
            Options::default().second_sync_after,
        ),
        ("2nd sync at once", Duration::ZERO),
    ];
    for delay in [Duration::ZERO, SLOW_SYNC_DELAY] {
        let dirs: Vec<_> = settings
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let nodes: Vec<_> = (settings.iter().zip(&dirs))
            .map(|(&(_, after), dir)| SharedAppends::on_slow_disk(dir, delay, after))
            .collect();
        for threads in [4u64, 16] {
            let mut rates = vec![Vec::new(); settings.len()];
            for round in 0..LONG_RUN_ROUNDS {
                for k in 0..settings.len() {
                    let s = (k + round) % settings.len();
                    std::thread::sleep(LONG_RUN_PAUSE);
                    rates[s].push(nodes[s].rate_over(&workload, threads, duration));
                }
            }
            let label = format!("{threads} threads, long runs, every sync +{delay:?}");
            for ((name, _), runs) in settings.iter().zip(&rates) {
                let paired = runs.iter().zip(&rates[0]).map(|(r, one)| r / one);
                println!(
                    "RATIO {label} | {name:<30} {:>8.0} entries/s | vs one sync in flight: median of paired runs {:.2} | runs {:.0?}",
                    common::median(runs.clone()),
                    common::median(paired.collect()),
                    runs
                );
            }
        }
        for ((name, _), node) in settings.iter().zip(&nodes) {
            let (refused, entries) = node.fenced();
            report_fenced(
                &format!("long runs, every sync +{delay:?}, {name}"),
                refused,
                entries,
            );
        }
    }
}
