//! `grant_vote` (a durable term + vote change: two checksummed copies, a sync
//! after each) against a raw 512-byte in-place overwrite + `fdatasync`, and
//! against the temp file + fsync + rename + directory fsync way — same run,
//! same file system. Run: `cargo bench --bench vote`.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{bench, create_engine, interleave, voter};
use cpwal::{ControlPlaneTerm, DurableControlPlane, VoteRequest};

/// Grants a vote in a new term on every call (so each one is written).
struct Votes {
    _dir: tempfile::TempDir,
    engine: DurableControlPlane,
    candidates: [cpwal::ClusterVoterIdentity; 2],
}

impl Votes {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = create_engine(&dir.path().join("cpwal"));
        Self {
            _dir: dir,
            engine,
            candidates: [voter("CN=candidate-a"), voter("CN=candidate-b")],
        }
    }

    fn run(&mut self, calls: u64) -> Duration {
        let start = Instant::now();
        for i in 0..calls {
            let request = VoteRequest {
                term: ControlPlaneTerm(self.engine.current_term().0 + 1),
                candidate: self.candidates[(i % 2) as usize].clone(),
                last_log_index: None,
                last_log_term: ControlPlaneTerm::GENESIS,
            };
            assert!(self.engine.grant_vote(&request).unwrap().vote_granted);
        }
        start.elapsed()
    }
}

/// 512 bytes overwritten in place at offset 0, then `fdatasync`.
fn raw_in_place(file: &File, calls: u64) -> Duration {
    let mut block = [0u8; 512];
    let start = Instant::now();
    for i in 0..calls {
        block[..8].copy_from_slice(&i.to_le_bytes());
        file.write_all_at(&block, 0).unwrap();
        file.sync_data().unwrap();
    }
    start.elapsed()
}

/// 512 bytes written to a new temporary file, fsync, rename over the old
/// file, fsync the directory.
fn raw_rename(dir: &Path, calls: u64) -> Duration {
    let (temporary, target): (PathBuf, PathBuf) = (dir.join("vote.tmp"), dir.join("vote"));
    let block = [0x5au8; 512];
    let start = Instant::now();
    for _ in 0..calls {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .unwrap();
        file.write_all(&block).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&temporary, &target).unwrap();
        File::open(dir).unwrap().sync_all().unwrap();
    }
    start.elapsed()
}

fn main() {
    let mut c = common::criterion().configure_from_args();
    let mut votes = Votes::new();
    let raw_dir = tempfile::tempdir().unwrap();
    let in_place = common::prepare_file(
        &raw_dir.path().join("vote"),
        4096,
        common::Preparation::Zeroed,
    );
    let rename_dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("vote");
    bench(&mut group, "raw_in_place_512B", |n| {
        raw_in_place(&in_place, n)
    });
    bench(&mut group, "raw_temp_rename", |n| {
        raw_rename(rename_dir.path(), n)
    });
    bench(&mut group, "cpwal_grant_vote", |n| votes.run(n));
    group.finish();
    let medians = interleave(
        "vote",
        60,
        5,
        1.0,
        &mut [
            (
                "raw 512 B in place + fdatasync",
                Box::new(|n| raw_in_place(&in_place, n)),
            ),
            (
                "raw temp+fsync+rename+dir fsync",
                Box::new(|n| raw_rename(rename_dir.path(), n)),
            ),
            ("cpwal grant_vote", Box::new(|n| votes.run(n))),
        ],
    );
    println!(
        "RATIO vote | grant_vote cost / raw in-place sync = {:.2} (goal <= 2) | temp+rename cost / grant_vote = {:.2} (goal >= 2)",
        medians[2] / medians[0],
        medians[1] / medians[2]
    );
    c.final_summary();
}
