//! cpwal, okaywal and SQLite (bundled, WAL mode, `synchronous=FULL`) on the
//! same durable-append workloads, in the same run, on the same file system:
//! one 128-byte entry per sync, 64 entries per sync, and 16 threads each
//! waiting for its own entry. Prints one table: appends/s (median over
//! interleaved rounds, the order rotating each round) and p50/p99 latency
//! of one call (pooled).
//!
//! Run: `cd benches/peers && cargo run --release`.
//! Environment: `PEERS_ROUNDS` (default 5).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, Options, OwnershipTransition,
    SharedControlPlane,
};

const PAYLOAD_BYTES: usize = 128;
const SINGLE_CALLS: usize = 500;
const BATCH_CALLS: usize = 300;
const BATCH_ENTRIES: usize = 64;
const THREADS: usize = 16;
const CALLS_PER_THREAD: usize = 100;

/// One system under test: appends `entries` as one durable unit, from any
/// thread.
trait Wal: Sync {
    fn append(&self, entries: &[Vec<u8>]);
}

struct Cpwal {
    shared: SharedControlPlane,
    /// Entries are kept typed; the payload only picks which one.
    entries: Vec<ControlPlaneEntry>,
}

impl Cpwal {
    fn open(dir: &Path) -> Self {
        let identity = ClusterVoterIdentity::from_certificate_subject("CN=bench").unwrap();
        let engine = DurableControlPlane::open(dir, identity, Options::default()).unwrap();
        let owner = ClusterVoterIdentity::from_certificate_subject("CN=owner").unwrap();
        // Range names as in cpwal's own benches: the number first, padded
        // with 'x' to make 128-byte entries (names that differ only in their
        // last characters would make every catalog lookup compare 100 bytes).
        let entries = (0..BATCH_ENTRIES as u64)
            .map(|n| {
                let make = |len: usize| {
                    let mut range = format!("r{n:015}");
                    range.extend(std::iter::repeat_n('x', len.saturating_sub(range.len())));
                    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                        range,
                        new_owner: owner.clone(),
                        ownership_epoch: n,
                    })
                };
                let overhead = cpwal::codec::encoded_entry(&make(16)).len() - 16;
                make(PAYLOAD_BYTES - overhead)
            })
            .collect();
        Self {
            shared: SharedControlPlane::new(engine),
            entries,
        }
    }
}

impl Wal for Cpwal {
    fn append(&self, entries: &[Vec<u8>]) {
        self.shared
            .append_batch(&self.entries[..entries.len()])
            .unwrap();
    }
}

/// cpwal through its `&mut` API behind a mutex: one sync per call, no
/// group commit (threads queue on the lock while a sync runs).
struct CpwalDirect {
    engine: Mutex<DurableControlPlane>,
    entries: Vec<ControlPlaneEntry>,
}

impl Wal for CpwalDirect {
    fn append(&self, entries: &[Vec<u8>]) {
        let mut engine = self.engine.lock().unwrap();
        engine
            .try_append_batch(&self.entries[..entries.len()])
            .unwrap();
    }
}

struct OkayWal {
    log: okaywal::WriteAheadLog,
}

impl Wal for OkayWal {
    fn append(&self, entries: &[Vec<u8>]) {
        let mut writer = self.log.begin_entry().unwrap();
        for entry in entries {
            writer.write_chunk(entry).unwrap();
        }
        writer.commit().unwrap();
    }
}

struct Sqlite {
    path: std::path::PathBuf,
    /// One connection per thread would be SQLite's usual shape; a pool of
    /// connections taken per call keeps the trait simple and still lets
    /// SQLite serialize writers itself.
    connections: Mutex<Vec<rusqlite::Connection>>,
}

impl Sqlite {
    fn open(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("log.db");
        let first = Self::connect(&path);
        first
            .execute_batch("CREATE TABLE log (id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
            .unwrap();
        Self {
            path,
            connections: Mutex::new(vec![first]),
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

impl Wal for Sqlite {
    fn append(&self, entries: &[Vec<u8>]) {
        let taken = self.connections.lock().unwrap().pop();
        let mut connection = taken.unwrap_or_else(|| Self::connect(&self.path));
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO log (data) VALUES (?1)")
                .unwrap();
            for entry in entries {
                insert.execute([entry]).unwrap();
            }
        }
        transaction.commit().unwrap();
        self.connections.lock().unwrap().push(connection);
    }
}

/// What one run of a workload measured.
struct Run {
    entries_per_second: f64,
    latencies: Vec<Duration>,
}

fn run_workload(wal: &dyn Wal, threads: usize, calls: usize, per_call: usize) -> Run {
    let payloads: Vec<Vec<u8>> = (0..per_call)
        .map(|n| vec![n as u8; PAYLOAD_BYTES])
        .collect();
    let latencies = Mutex::new(Vec::with_capacity(threads * calls));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let began = Instant::now();
                    wal.append(&payloads);
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

fn cpwal_direct(dir: &Path) -> CpwalDirect {
    let Cpwal { shared, entries } = Cpwal::open(dir);
    let engine = shared.into_inner().expect("the only handle");
    CpwalDirect {
        engine: Mutex::new(engine),
        entries,
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

fn main() {
    let rounds: usize = std::env::var("PEERS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().unwrap();
    let systems: Vec<(&str, Box<dyn Wal>)> = vec![
        ("cpwal", Box::new(Cpwal::open(&root.path().join("cpwal")))),
        (
            "cpwal &mut (no group commit)",
            Box::new(cpwal_direct(&root.path().join("cpwal-direct"))),
        ),
        (
            "okaywal",
            Box::new(OkayWal {
                log: okaywal::WriteAheadLog::recover(root.path().join("okaywal"), okaywal::LogVoid)
                    .unwrap(),
            }),
        ),
        (
            "sqlite",
            Box::new(Sqlite::open(&root.path().join("sqlite"))),
        ),
    ];
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
                let wal = systems[s].1.as_ref();
                results[w][s].push(run_workload(wal, threads, calls, per_call));
            }
        }
    }
    println!("\n128-byte entries, {rounds} interleaved rounds; appends/s = median over rounds; latency of one call, pooled");
    println!("| workload | system | appends/s | vs okaywal | p50 latency | p99 latency |");
    println!("|---|---|---:|---:|---:|---:|");
    for (w, (workload, ..)) in workloads.iter().enumerate() {
        let rate = |s: usize| median(results[w][s].iter().map(|r| r.entries_per_second).collect());
        let okaywal_rate = rate(2);
        for (s, (system, _)) in systems.iter().enumerate() {
            let mut latencies: Vec<Duration> = results[w][s]
                .iter()
                .flat_map(|r| r.latencies.iter().copied())
                .collect();
            latencies.sort();
            println!(
                "| {workload} | {system} | {:.0} | {:.2} | {:.0} us | {:.0} us |",
                rate(s),
                rate(s) / okaywal_rate,
                quantile(&latencies, 0.5).as_secs_f64() * 1e6,
                quantile(&latencies, 0.99).as_secs_f64() * 1e6
            );
        }
    }
}
