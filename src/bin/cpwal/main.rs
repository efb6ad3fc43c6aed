//! `cpwal`: the operator's tool for cpwal data directories.
//!
//! Every failure prints ONE line on stderr (what is wrong, what to do) and
//! exits with a documented code: 0 success, 1 the command could not do its
//! job, 2 usage error, 3 (`verify`) torn tail that recovery would drop,
//! 4 corruption, 5 (`crash-test`) a guarantee was violated.

mod bench;
mod checker;
mod crash_child;
mod crash_test;
mod dump;
mod failure;
mod inspect;
mod latency;
mod render;
mod sabotage;
mod verify;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::failure::CliError;

/// Tools for cpwal, a crash-safe write-ahead log for a Raft-style control plane.
#[derive(Debug, Parser)]
#[command(name = "cpwal", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success; 1 the command could not do its job; 2 usage error; \
3 verify: torn tail that recovery would drop; 4 corruption; 5 crash-test: a guarantee was violated."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kill a real writer process with SIGKILL at random moments, reopen its
    /// directory each time, and check that every acknowledged vote and entry
    /// survived (G1-G5). Prints progress on stderr and a summary on stdout.
    CrashTest {
        /// Data directory to use (absent or empty). Default: a fresh
        /// temporary directory, removed afterwards unless a violation is found.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// About how many seconds to keep killing and checking.
        #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Seed for the kill moments and the child's operations (printed,
        /// so any run can be replayed). Default: from the clock.
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Self-test of the checker: destroy protected data after each
        /// kill; the run must then fail with violations.
        #[arg(long, hide = true, value_enum, value_name = "KIND")]
        sabotage: Option<sabotage::Sabotage>,
    },
    /// Show what a data directory holds: term, vote, commit, first/last
    /// index, leader history, the newest snapshot, segments, and what
    /// recovery would repair.
    /// Read-only (shared lock; refused while a writer holds the directory).
    Inspect {
        /// The data directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every file and every entry without changing anything. Exit 0:
    /// clean; 3: a torn tail (never acknowledged) that the next open drops;
    /// 4: corruption (file, offset and index printed); 1: could not check.
    Verify {
        /// The data directory.
        dir: PathBuf,
    },
    /// Print entries as JSON lines {"index","term","entry"} for jq.
    /// Read-only.
    Dump {
        /// The data directory.
        dir: PathBuf,
        /// First index to print (default: the first in the log).
        #[arg(long, value_name = "I")]
        from: Option<u64>,
        /// Last index to print, inclusive (default: the last in the log).
        #[arg(long, value_name = "J")]
        to: Option<u64>,
    },
    /// Measure this disk: durable append latency and throughput and vote
    /// latency, each beside raw pwrite+fdatasync, and a verdict against
    /// etcd's guidance (fdatasync p99 under 10 ms).
    Bench {
        /// Where to measure: a scratch directory is made inside it and
        /// removed afterwards. Default: the current directory.
        #[arg(long, value_name = "D")]
        dir: Option<PathBuf>,
        /// Samples per figure (each figure also stops after 10 s).
        #[arg(long, value_name = "N", default_value_t = 500)]
        samples: usize,
    },
    /// Internal: the writer process that crash-test kills.
    #[command(hide = true)]
    CrashChild {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        cycle: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("cpwal: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

/// Runs one command; `Ok` carries the exit code of a command that completed.
fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::CrashTest {
            dir,
            seconds,
            seed,
            sabotage,
        } => {
            let seed = seed.unwrap_or_else(clock_seed);
            let config = crash_test::CrashTestConfig {
                directory: dir,
                seconds,
                seed,
                sabotage,
            };
            crash_test::run(&config).map(|()| 0)
        }
        Command::Inspect { dir, json } => inspect::run(&dir, json).map(|()| 0),
        Command::Verify { dir } => verify::run(&dir),
        Command::Dump { dir, from, to } => dump::run(&dir, from, to).map(|()| 0),
        Command::Bench { dir, samples } => bench::run(dir.as_deref(), samples).map(|()| 0),
        Command::CrashChild { dir, seed, cycle } => crash_child::run(&dir, seed, cycle).map(|()| 0),
    }
}

/// A duration in seconds: finite and not negative.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a number of seconds (e.g. 10 or 2.5)"
        )),
    }
}

/// A seed from the clock, for runs that do not name one.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        % 1_000_000
}
