//! cpwal, okaywal, SQLite (bundled, WAL mode, `synchronous=FULL`) and a raw
//! `pwrite` + `fdatasync` baseline on the same durable-append workloads, in
//! the same run, on the same file system: one entry per sync, 64 entries
//! per sync, and 16 threads each waiting for its own entry. Prints one
//! table: appends/s (median over interleaved rounds, the order rotating
//! each round), the speed against okaywal and against the raw baseline,
//! and p50/p99 latency of one call (pooled).
//!
//! The workload is the control plane's (`benches/common/workload.rs`,
//! shared with cpwal's criterion benches): distinct ownership transitions
//! over 4096 ranges at rising epochs, with membership changes and leader
//! records mixed in, each built inside the timed call from the caller's
//! data. cpwal gets the typed entries; okaywal and SQLite get the same
//! fields serialized into exactly as many bytes as cpwal's encoding of the
//! entry (one okaywal chunk, one SQLite row per entry); the raw baseline
//! writes exactly the bytes cpwal writes (framed records) into a
//! zero-filled file. cpwal's rows print the fraction of entries its catalog
//! fenced, and the run fails if it is not near zero. The last cpwal row,
//! the *fenced replay*, appends the same pre-built entries on every call
//! (all fenced after the first): it builds and applies nothing, so it is
//! only a lower bound of the engine's own cost. The last row, the *bound*,
//! is the raw baseline after the caller has built each call's entries
//! exactly as for cpwal, with nothing encoded or applied: what an engine
//! that takes the API's owned entries and does its work before one
//! `fdatasync` cannot beat (one that works while the disk writes, as
//! cpwal's `&mut` append does, can come level with it).
//!
//! Run: `cd benches/peers && cargo run --release`.
//! Environment: `PEERS_ROUNDS` (default 5).

#[path = "../../common/workload.rs"]
mod workload;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, Options, SharedControlPlane,
};
use workload::{report_fenced, Workload};

const SINGLE_CALLS: usize = 500;
const BATCH_CALLS: usize = 300;
const BATCH_ENTRIES: usize = 64;
const THREADS: usize = 16;
const CALLS_PER_THREAD: usize = 100;
const RAW_FILE_BYTES: u64 = 64 << 20;

/// One system under test: appends the workload's entries
/// `first..first + count` as one durable unit, from any thread.
trait Wal: Sync {
    fn append(&self, first: u64, count: usize);
    /// How many appended entries cpwal's catalog fenced, for a system whose
    /// fenced fraction must be near zero.
    fn fenced(&self) -> Option<u64> {
        None
    }
}

/// Creates the cpwal node in `dir`: the one place a bench names the
/// opening API.
fn create_node(dir: &Path) -> DurableControlPlane {
    let identity = ClusterVoterIdentity::from_certificate_subject("CN=bench").unwrap();
    DurableControlPlane::create(dir, identity, Options::default()).unwrap()
}

/// Builds the entries of one call, as the caller does.
fn build(workload: &Workload, first: u64, count: usize) -> Vec<ControlPlaneEntry> {
    let mut entries = Vec::with_capacity(count);
    workload.fill(first, count, &mut entries);
    entries
}

struct Cpwal<'w> {
    shared: SharedControlPlane,
    workload: &'w Workload,
}

impl Wal for Cpwal<'_> {
    fn append(&self, first: u64, count: usize) {
        let entries = build(self.workload, first, count);
        self.shared.try_append_batch(&entries).unwrap();
    }
    fn fenced(&self) -> Option<u64> {
        Some(self.shared.with_catalog(|c| c.refused_count()))
    }
}

/// cpwal through its `&mut` API behind a mutex: one sync per call, no
/// group commit (threads queue on the lock while a sync runs).
struct CpwalDirect<'w> {
    engine: Mutex<DurableControlPlane>,
    workload: &'w Workload,
}

impl Wal for CpwalDirect<'_> {
    fn append(&self, first: u64, count: usize) {
        let entries = build(self.workload, first, count);
        let mut engine = self.engine.lock().unwrap();
        engine.try_append_batch(&entries).unwrap();
    }
    fn fenced(&self) -> Option<u64> {
        Some(self.engine.lock().unwrap().catalog().refused_count())
    }
}

/// The lower bound: the workload's first `BATCH_ENTRIES` entries, built
/// once, appended again on every call (fenced from the second call on).
struct CpwalFencedReplay {
    shared: SharedControlPlane,
    entries: Vec<ControlPlaneEntry>,
}

impl Wal for CpwalFencedReplay {
    fn append(&self, _first: u64, count: usize) {
        self.shared
            .try_append_batch(&self.entries[..count])
            .unwrap();
    }
}

struct OkayWal<'w> {
    log: okaywal::WriteAheadLog,
    workload: &'w Workload,
}

impl Wal for OkayWal<'_> {
    fn append(&self, first: u64, count: usize) {
        let mut record = Vec::with_capacity(256);
        let mut writer = self.log.begin_entry().unwrap();
        for n in first..first + count as u64 {
            record.clear();
            self.workload.serialize(n, &mut record);
            writer.write_chunk(&record).unwrap();
        }
        writer.commit().unwrap();
    }
}

struct Sqlite<'w> {
    path: std::path::PathBuf,
    /// One connection per thread would be SQLite's usual shape; a pool of
    /// connections taken per call keeps the trait simple and still lets
    /// SQLite serialize writers itself.
    connections: Mutex<Vec<rusqlite::Connection>>,
    workload: &'w Workload,
}

impl<'w> Sqlite<'w> {
    fn open(dir: &Path, workload: &'w Workload) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("log.db");
        let first = Self::connect(&path);
        first
            .execute_batch("CREATE TABLE log (id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
            .unwrap();
        Self {
            path,
            connections: Mutex::new(vec![first]),
            workload,
        }
    }

    fn connect(path: &Path) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(path).unwrap();
        connection
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .unwrap();
        connection.busy_timeout(Duration::from_secs(30)).unwrap();
        connection
    }
}

impl Wal for Sqlite<'_> {
    fn append(&self, first: u64, count: usize) {
        let taken = self.connections.lock().unwrap().pop();
        let mut connection = taken.unwrap_or_else(|| Self::connect(&self.path));
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO log (data) VALUES (?1)")
                .unwrap();
            let mut record = Vec::with_capacity(256);
            for n in first..first + count as u64 {
                record.clear();
                self.workload.serialize(n, &mut record);
                insert.execute([&record]).unwrap();
            }
        }
        transaction.commit().unwrap();
        self.connections.lock().unwrap().push(connection);
    }
}

/// The raw baseline: the bytes cpwal writes for the same call (its framed
/// records), one `pwrite` at a reserved offset and one `fdatasync` per
/// call, into a zero-filled file (as cpwal's segments are); concurrent
/// callers each sync for themselves.
struct Raw<'w> {
    file: File,
    next_offset: AtomicU64,
    workload: &'w Workload,
    bytes: Vec<u8>,
    /// The bound variant: each call first builds its entries exactly as
    /// cpwal's caller does (and encodes, checksums and applies nothing).
    builds_entries: bool,
}

impl<'w> Raw<'w> {
    /// The bound on any engine that takes the API's owned entries.
    fn after_building_entries(dir: &Path, workload: &'w Workload) -> Self {
        Self {
            builds_entries: true,
            ..Self::open(dir, workload)
        }
    }

    fn open(dir: &Path, workload: &'w Workload) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("raw"))
            .unwrap();
        let zeros = vec![0u8; 1 << 20];
        for at in (0..RAW_FILE_BYTES).step_by(zeros.len()) {
            file.write_all_at(&zeros, at).unwrap();
        }
        file.sync_all().unwrap();
        Self {
            file,
            next_offset: AtomicU64::new(0),
            workload,
            bytes: vec![0x5a; workload.max_record_bytes(BATCH_ENTRIES)],
            builds_entries: false,
        }
    }
}

impl Wal for Raw<'_> {
    fn append(&self, first: u64, count: usize) {
        if self.builds_entries {
            std::hint::black_box(build(self.workload, first, count));
        }
        let length = self.workload.record_bytes(first, count) as u64;
        let offset =
            self.next_offset.fetch_add(length, Ordering::Relaxed) % (RAW_FILE_BYTES - length);
        self.file
            .write_all_at(&self.bytes[..length as usize], offset)
            .unwrap();
        self.file.sync_data().unwrap();
    }
}

/// A system and the next entry of the workload it appends.
struct System<'w> {
    name: &'static str,
    wal: Box<dyn Wal + 'w>,
    next: AtomicU64,
}

/// What one run of a workload measured.
struct Run {
    entries_per_second: f64,
    latencies: Vec<Duration>,
}

fn run_workload(system: &System<'_>, threads: usize, calls: usize, per_call: usize) -> Run {
    let latencies = Mutex::new(Vec::with_capacity(threads * calls));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let began = Instant::now();
                    let first = system.next.fetch_add(per_call as u64, Ordering::Relaxed);
                    system.wal.append(first, per_call);
                    mine.push(began.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    Run {
        entries_per_second: (threads * calls * per_call) as f64 / elapsed,
        latencies: latencies.into_inner().unwrap(),
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn systems<'w>(root: &Path, workload: &'w Workload) -> Vec<System<'w>> {
    let system = |name, wal: Box<dyn Wal + 'w>| System {
        name,
        wal,
        next: AtomicU64::new(0),
    };
    let shared = |name: &str| SharedControlPlane::new(create_node(&root.join(name)));
    vec![
        system(
            "raw pwrite+fdatasync",
            Box::new(Raw::open(&root.join("raw"), workload)),
        ),
        system(
            "cpwal",
            Box::new(Cpwal {
                shared: shared("cpwal"),
                workload,
            }),
        ),
        system(
            "cpwal &mut (no group commit)",
            Box::new(CpwalDirect {
                engine: Mutex::new(create_node(&root.join("cpwal-direct"))),
                workload,
            }),
        ),
        system(
            "okaywal",
            Box::new(OkayWal {
                log: okaywal::WriteAheadLog::recover(root.join("okaywal"), okaywal::LogVoid)
                    .unwrap(),
                workload,
            }),
        ),
        system(
            "sqlite",
            Box::new(Sqlite::open(&root.join("sqlite"), workload)),
        ),
        system(
            "cpwal fenced replay (lower bound)",
            Box::new(CpwalFencedReplay {
                shared: shared("cpwal-replay"),
                entries: build(workload, 0, BATCH_ENTRIES),
            }),
        ),
        system(
            "raw after the caller's build (bound)",
            Box::new(Raw::after_building_entries(
                &root.join("raw-bound"),
                workload,
            )),
        ),
    ]
}

const RAW: usize = 0;
const OKAYWAL: usize = 3;

fn main() {
    let rounds: usize = std::env::var("PEERS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().unwrap();
    let workload = Workload::new();
    let systems = systems(root.path(), &workload);
    assert_eq!(systems[OKAYWAL].name, "okaywal");
    let workloads = [
        ("1 per sync", 1, SINGLE_CALLS, 1),
        ("64 per sync", 1, BATCH_CALLS, BATCH_ENTRIES),
        ("16 threads", THREADS, CALLS_PER_THREAD, 1),
    ];
    let mut results: Vec<Vec<Vec<Run>>> = (0..workloads.len())
        .map(|_| (0..systems.len()).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (w, &(_, threads, calls, per_call)) in workloads.iter().enumerate() {
            // Rotate who goes first, so no system always follows the same one
            // (and its leftover writeback).
            for k in 0..systems.len() {
                let s = (k + round + w) % systems.len();
                results[w][s].push(run_workload(&systems[s], threads, calls, per_call));
            }
        }
    }
    println!(
        "\nRealistic control-plane entries (transitions encode to {} B), {rounds} interleaved rounds; appends/s = median over rounds; latency of one call, pooled",
        workload::TRANSITION_PAYLOAD_BYTES
    );
    println!("| workload | system | appends/s | vs okaywal | vs raw | p50 latency | p99 latency |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (w, (workload, ..)) in workloads.iter().enumerate() {
        let rate = |s: usize| median(results[w][s].iter().map(|r| r.entries_per_second).collect());
        for (s, system) in systems.iter().enumerate() {
            let mut latencies: Vec<Duration> = results[w][s]
                .iter()
                .flat_map(|r| r.latencies.iter().copied())
                .collect();
            latencies.sort();
            println!(
                "| {workload} | {} | {:.0} | {:.2} | {:.2} | {:.0} us | {:.0} us |",
                system.name,
                rate(s),
                rate(s) / rate(OKAYWAL),
                rate(s) / rate(RAW),
                quantile(&latencies, 0.5).as_secs_f64() * 1e6,
                quantile(&latencies, 0.99).as_secs_f64() * 1e6
            );
        }
    }
    for system in &systems {
        if let Some(fenced) = system.wal.fenced() {
            let entries = system.next.load(Ordering::Relaxed);
            report_fenced(system.name, fenced, entries);
        }
    }
}
