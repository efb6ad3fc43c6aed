//! Durable appends of the realistic control-plane workload
//! (`common::workload`: distinct ownership transitions over 4096 ranges at
//! rising epochs, with membership changes and leader records mixed in,
//! each entry built inside the timed loop from the caller's data): one
//! entry per call (128 B and 1 KiB transitions; the codec bounds an entry at
//! `MAX_ENTRY_BYTES` ≈ 1.3 KiB, so a 4 KiB entry cannot exist) and batches
//! of 64 and 1024 per call — each against a raw `pwrite` + `fdatasync` of
//! the same bytes cpwal writes for the same call (the framed records), in
//! the same run, in temporary directories on the same file system.
//!
//! Also measured, and labelled as such: the *bound* on any engine that takes
//! the API's owned entries, a raw write+sync of the same bytes after the
//! caller has built the call's entries exactly as for cpwal (nothing
//! encoded, checksummed or applied; an engine that does its own work while
//! the disk writes, as cpwal's `&mut` append does, can come level with it
//! or a little above, since the bound's one `fdatasync` starts the write
//! only once everything is built); and the *fenced replay*, the same
//! pre-built entries appended on every call, which the catalog refuses
//! after the first call (epoch not newer). The replay builds nothing and
//! applies nothing, so it is only a lower bound of the engine's own cost.
//!
//! The raw baselines append into files prepared two ways: `fallocate`d
//! (unwritten extents) and filled with real zeros (as cpwal's segments
//! are). Each realistic case prints the fraction of entries the catalog
//! fenced, and fails if it is not near zero.
//!
//! Last, the latency of single 64-entry calls over enough of them for cpwal
//! to roll over three segments (`TAIL`: p50 and p99 beside the raw log's;
//! `SPARE`: cpwal's calls split by whether they met a spare's preparation).
//! Run: `cargo bench --bench append`; the `RATIO` and `TAIL` lines
//! (interleaved rounds, medians, quantiles) are the summary.

mod common;

use std::time::{Duration, Instant};

use common::workload::{report_fenced, Workload};
use common::{bench, create_engine, interleave, percentile, Preparation, RawLog};
use cpwal::{ControlPlaneEntry, DurableControlPlane};

const RAW_FILE_BYTES: u64 = 64 << 20;

/// cpwal appending the workload, `per_call` entries per call, each call's
/// entries built inside the timed loop.
struct CpwalAppends<'w> {
    dir: tempfile::TempDir,
    engine: DurableControlPlane,
    workload: &'w Workload,
    next: u64,
    per_call: usize,
    batch: Vec<ControlPlaneEntry>,
}

impl<'w> CpwalAppends<'w> {
    fn new(workload: &'w Workload, per_call: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = create_engine(&dir.path().join("cpwal"));
        Self {
            dir,
            engine,
            workload,
            next: 0,
            per_call,
            batch: Vec::with_capacity(per_call),
        }
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            if self.per_call == 1 {
                let entry = self.workload.entry(self.next);
                self.engine.try_append(&entry).unwrap();
            } else {
                self.workload
                    .fill(self.next, self.per_call, &mut self.batch);
                self.engine.try_append_batch(&self.batch).unwrap();
            }
            self.next += self.per_call as u64;
        }
        start.elapsed()
    }

    /// Where the node keeps its spare segment while preparing it.
    fn spare_path(&self) -> std::path::PathBuf {
        let node = self.dir.path().join("cpwal");
        node.join(cpwal::format::SPARE_SEGMENT_FILE_NAME)
    }

    /// Prints and checks the fraction of appended entries the catalog fenced.
    fn report_fenced(&self, label: &str) {
        let refused = self.engine.catalog().refused_count();
        report_fenced(label, refused, self.next);
    }
}

/// The lower bound: the same pre-built entries (the workload's first call)
/// on every call; from the second call on the catalog fences all of them.
struct FencedReplay {
    _dir: tempfile::TempDir,
    engine: DurableControlPlane,
    batch: Vec<ControlPlaneEntry>,
}

impl FencedReplay {
    fn new(workload: &Workload, per_call: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = create_engine(&dir.path().join("cpwal"));
        let mut batch = Vec::new();
        workload.fill(0, per_call, &mut batch);
        Self {
            _dir: dir,
            engine,
            batch,
        }
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            self.engine.try_append_batch(&self.batch).unwrap();
        }
        start.elapsed()
    }
}

/// A raw log writing, per call, as many bytes as cpwal writes for the same
/// call of the workload, with one `pwrite` + `fdatasync`.
struct RawAppends<'w> {
    _dir: tempfile::TempDir,
    raw: RawLog,
    workload: &'w Workload,
    next: u64,
    per_call: usize,
    bytes: Vec<u8>,
    /// Where the bound variant builds each call's entries, as cpwal's
    /// caller does, before writing; `None` for the plain baseline.
    built: Option<Vec<ControlPlaneEntry>>,
}

impl<'w> RawAppends<'w> {
    fn new(workload: &'w Workload, per_call: usize, preparation: Preparation) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawLog::new(dir.path(), RAW_FILE_BYTES, preparation);
        Self {
            _dir: dir,
            raw,
            workload,
            next: 0,
            per_call,
            bytes: vec![0x5a; workload.max_record_bytes(per_call)],
            built: None,
        }
    }

    /// The bound on any engine that takes the API's owned entries (see the
    /// module documentation): the caller builds each call's entries exactly
    /// as for cpwal, then the raw log writes and syncs the bytes cpwal
    /// would (and nothing is encoded, checksummed or applied).
    fn after_building_entries(workload: &'w Workload, per_call: usize) -> Self {
        let mut raw = Self::new(workload, per_call, Preparation::Zeroed);
        raw.built = Some(Vec::with_capacity(per_call));
        raw
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            if let Some(batch) = &mut self.built {
                self.workload.fill(self.next, self.per_call, batch);
                std::hint::black_box(&*batch);
            }
            let length = self.workload.record_bytes(self.next, self.per_call);
            self.raw.append(&self.bytes[..length]);
            self.next += self.per_call as u64;
        }
        start.elapsed()
    }
}

/// Criterion measurements, then interleaved rounds for the ratio lines.
fn compare(c: &mut criterion::Criterion, transition_bytes: usize, per_call: usize) {
    let label = format!("append {per_call}x{transition_bytes}B per sync");
    let workload = Workload::with_transition_bytes(transition_bytes);
    let mut ours = CpwalAppends::new(&workload, per_call);
    let mut replay = FencedReplay::new(&workload, per_call);
    let mut allocated = RawAppends::new(&workload, per_call, Preparation::Allocated);
    let mut zeroed = RawAppends::new(&workload, per_call, Preparation::Zeroed);
    let mut bound = RawAppends::after_building_entries(&workload, per_call);
    let mut group = c.benchmark_group(format!("append_{per_call}x{transition_bytes}B"));
    group.throughput(criterion::Throughput::Elements(per_call as u64));
    bench(&mut group, "raw_fallocated", |n| allocated.run(n));
    bench(&mut group, "raw_zeroed", |n| zeroed.run(n));
    bench(&mut group, "raw_after_building_entries_bound", |n| {
        bound.run(n)
    });
    bench(&mut group, "cpwal", |n| ours.run(n));
    bench(&mut group, "cpwal_fenced_replay_lower_bound", |n| {
        replay.run(n)
    });
    group.finish();
    // Many short rounds: sync latency on a shared virtual disk comes in
    // bursts, and fine interleaving exposes every contender to the same ones.
    let (rounds, ops) = if per_call > 100 { (40, 2) } else { (150, 2) };
    interleave(
        &label,
        rounds,
        ops,
        per_call as f64,
        &mut [
            ("raw pwrite+fdatasync (zeroed)", Box::new(|n| zeroed.run(n))),
            (
                "raw pwrite+fdatasync (fallocated)",
                Box::new(|n| allocated.run(n)),
            ),
            (
                "raw after the caller's build (bound)",
                Box::new(|n| bound.run(n)),
            ),
            ("cpwal (realistic)", Box::new(|n| ours.run(n))),
            (
                "cpwal fenced replay (lower bound)",
                Box::new(|n| replay.run(n)),
            ),
        ],
    );
    ours.report_fenced(&label);
}

/// How many 64-entry calls the tail-latency run makes of each contender:
/// ≈ 49 MB, so cpwal rolls over three 16 MiB segments (preparing each next
/// one in the background while the appends run), and the raw log stays in
/// its one file, zeroed before the run.
const TAIL_CALLS: usize = 4000;

/// The latency of each call under a saturating load of `per_call`-entry
/// calls: a raw write+sync of the same bytes, then cpwal, each for
/// [`TAIL_CALLS`] calls, and the `TAIL` line gives each one's p50 and p99
/// and the ratio of the p99s. One after the other, not interleaved: cpwal
/// prepares its spare segments in the background, which would otherwise
/// go on during the raw log's calls and slow them. The raw log never
/// prepares a file during its run, so the ratio includes what cpwal's
/// spare segments cost the calls that meet their preparation; the `SPARE`
/// line splits cpwal's calls by whether the
/// spare was still being prepared when the call returned (its file shorter
/// than a segment), looked at after each call, outside its timing.
fn tail_latency(per_call: usize) {
    let label = format!("append {per_call}x128B per sync, latency of a call");
    let workload = Workload::new();
    let mut ours = CpwalAppends::new(&workload, per_call);
    let mut raw = RawAppends::new(&workload, per_call, Preparation::Zeroed);
    let spare = ours.spare_path();
    let segment_bytes = cpwal::Options::default().segment_size_bytes;
    let preparing = || std::fs::metadata(&spare).is_ok_and(|m| m.len() < segment_bytes);
    let raw_calls: Vec<f64> = (0..TAIL_CALLS).map(|_| raw.run(1).as_secs_f64()).collect();
    let (mut ours_calls, mut meeting, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TAIL_CALLS {
        let call = ours.run(1).as_secs_f64();
        ours_calls.push(call);
        if preparing() {
            &mut meeting
        } else {
            &mut others
        }
        .push(call);
    }
    let quantiles = |calls: &[f64]| (percentile(calls, 0.5) * 1e6, percentile(calls, 0.99) * 1e6);
    let ((raw_p50, raw_p99), (ours_p50, ours_p99)) =
        (quantiles(&raw_calls), quantiles(&ours_calls));
    println!(
        "TAIL {label} | {TAIL_CALLS} calls each | raw pwrite+fdatasync (zeroed) p50 {raw_p50:.0} us p99 {raw_p99:.0} us | cpwal p50 {ours_p50:.0} us p99 {ours_p99:.0} us | p99 raw/cpwal {:.3}",
        raw_p99 / ours_p99
    );
    let ((meeting_p50, _), (others_p50, others_p99)) = (quantiles(&meeting), quantiles(&others));
    println!(
        "SPARE {label} | cpwal calls that met the spare's preparation: {} of {TAIL_CALLS}, p50 {meeting_p50:.0} us | the others: p50 {others_p50:.0} us p99 {others_p99:.0} us",
        meeting.len()
    );
    ours.report_fenced(&label);
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    compare(&mut c, 128, 1);
    compare(&mut c, 1024, 1);
    compare(&mut c, 128, 64);
    compare(&mut c, 128, 1024);
    tail_latency(64);
    c.final_summary();
}
