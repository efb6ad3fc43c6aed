//! `cpwal`: the operator's tool for cpwal data directories.
//!
//! Every failure prints ONE line on stderr (what is wrong, what to do) and
//! exits with a documented code: 0 success, 1 the command could not do its
//! job, 2 usage error, 3 (`verify`) repairable: crash leftovers the next
//! writer drops, 4 corruption (`inspect`, `dump`, `catalog` print what is
//! readable and exit 4), 5 (`crash-test`) a guarantee was violated, 6
//! (`verify`) degraded: one hard-state copy lost.
//! The work itself (examination, backup, restore, salvage) is the
//! library's, in `cpwal::operate`; this binary parses, calls and renders.

mod backup;
mod bench;
mod catalog;
mod checker;
mod crash_child;
mod crash_test;
mod dump;
mod failure;
mod fs_shutdown;
mod inspect;
mod latency;
mod output;
mod overlap;
mod progress;
mod render;
mod sabotage;
mod salvage;
mod suspects;
mod verify;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cpwal::operate::{RestoreOptions, SalvageOptions};
use cpwal::ClusterVoterIdentity;

use crate::backup::{parse_identity, RoleArgument};
use crate::failure::CliError;

/// Tools for cpwal, a crash-safe write-ahead log for a Raft-style control plane.
#[derive(Debug, Parser)]
#[command(name = "cpwal", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success (verify: clean); 1 the command could not do its job; \
2 usage error; 3 verify: repairable, crash leftovers the next writer repairs, never acknowledged \
(a torn tail, an interrupted truncation or hard-state update); 4 corruption: a writer refuses the \
directory (inspect, dump and catalog print what is readable, marked DAMAGED, and exit 4); \
5 crash-test: a guarantee was violated; 6 verify: degraded, one hard-state copy fails its checks \
or is missing (the next writer rewrites it from the other)."
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
        /// Power loss on a real file system: in half the cycles, shut down
        /// the file system mounted at MOUNT (which holds --dir) without
        /// flushing its log (`xfs_io -x -c shutdown`), then mount it again
        /// and check. Needs root and xfs_io; XFS or ext4. Use a scratch
        /// file system (a loop-mounted image): it is unmounted each time.
        #[arg(long, value_name = "MOUNT")]
        shutdown_fs: Option<PathBuf>,
    },
    /// Show what a data directory holds: node, role, term, vote, both
    /// hard-state copies, commit, first/last index, leader history, the
    /// newest snapshot, segments, and what recovery would repair. On a
    /// damaged directory: everything readable, headed DAMAGED, with the
    /// damage listed (exit 4). Read-only (shared lock; refused while a
    /// writer holds the directory).
    Inspect {
        /// The data directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every file and every entry without changing anything. Exit 0:
    /// clean; 3: repairable (a torn tail, never acknowledged, or other
    /// crash leftovers the next open repairs); 6: degraded (one hard-state
    /// copy fails its checks or is missing; the next open rewrites it); 4:
    /// corruption (file, offset and index printed, and what is still
    /// readable); 1: could not check.
    Verify {
        /// The data directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print entries as JSON lines {"index","term","entry"} for jq.
    /// Read-only. On a damaged directory only the intact prefix, then a
    /// line on stderr saying so, and exit 4.
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
    /// List the control-plane state at the commit point: members, ranges
    /// with owner and epoch, the leader history (the snapshot, then every
    /// committed entry after it). Read-only; exit 4 on a damaged
    /// directory (the state at the last committed entry readable).
    Catalog {
        /// The data directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a stopped data directory into a new directory (absent or empty)
    /// and verify the copy before putting it in place. SRC is read under a
    /// shared lock and never changed; a damaged SRC is refused (exit 4; see
    /// salvage). A live node backs up with `DurableControlPlane::backup`.
    Backup {
        /// The data directory to copy.
        source: PathBuf,
        /// The new directory.
        destination: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a backup in place as a node's data directory (DEST absent or
    /// empty), verified, every file and directory synced. Refuses a backup
    /// of another node or role unless told otherwise.
    Restore {
        /// The backup (any stopped data directory).
        backup: PathBuf,
        /// The new data directory.
        destination: PathBuf,
        /// The node the restored directory is for (its certificate subject).
        #[arg(long, value_name = "ID", value_parser = parse_identity)]
        node: ClusterVoterIdentity,
        /// The role it must have (default: the backup's).
        #[arg(long, value_enum)]
        role: Option<RoleArgument>,
        /// Restore another node's backup as --node; its vote is cleared.
        #[arg(long)]
        allow_other_node: bool,
        /// Restore a backup of the other role as --role (to sole voter:
        /// the node commits every entry it holds at its next append).
        #[arg(long)]
        allow_role_change: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// For a node with no healthy peer left: copy the longest valid prefix
    /// of a damaged directory into a new directory (absent or empty) that a
    /// node can open, verified entry by entry, and print exactly what was
    /// lost (indexes, bytes, whether the term and vote survived and from
    /// which hard-state copy). DAMAGED is never changed.
    Salvage {
        /// The damaged data directory.
        damaged: PathBuf,
        /// The new directory.
        destination: PathBuf,
        /// Whose directory it is, needed only when no hard-state copy
        /// survived.
        #[arg(long, value_name = "ID", value_parser = parse_identity)]
        node: Option<ClusterVoterIdentity>,
        /// Its role, needed only when no hard-state copy survived.
        #[arg(long, value_enum)]
        role: Option<RoleArgument>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure this disk: durable append latency and throughput and vote
    /// latency, each beside raw pwrite+fdatasync, and a verdict against
    /// etcd's guidance (fdatasync p99 under 10 ms); then eight writers
    /// through group commit with one sync in flight and with the default,
    /// and which `second_sync_after` to use here.
    Bench {
        /// Where to measure (an existing directory): a scratch directory is
        /// made inside it and removed afterwards. Default: the current
        /// directory.
        #[arg(long, value_name = "D")]
        dir: Option<PathBuf>,
        /// Samples per figure (each figure also stops after 10 s; each of
        /// the four group-commit runs lasts 2 ms per sample, 0.1 to 2 s).
        #[arg(long, value_name = "N", default_value_t = 500)]
        samples: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
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
            shutdown_fs,
        } => {
            let seed = seed.unwrap_or_else(clock_seed);
            let shutdown = shutdown_fs
                .as_deref()
                .map(fs_shutdown::MountedFileSystem::at)
                .transpose()?;
            let config = crash_test::CrashTestConfig {
                directory: dir,
                seconds,
                seed,
                sabotage,
                shutdown,
            };
            crash_test::run(&config).map(|()| 0)
        }
        Command::Inspect { dir, json } => inspect::run(&dir, json),
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::Dump { dir, from, to } => dump::run(&dir, from, to),
        Command::Catalog { dir, json } => catalog::run(&dir, json),
        Command::Backup {
            source,
            destination,
            json,
        } => backup::run_backup(&source, &destination, json),
        Command::Restore {
            backup,
            destination,
            node,
            role,
            allow_other_node,
            allow_role_change,
            json,
        } => {
            let options = RestoreOptions {
                role: role.map(Into::into),
                allow_other_node,
                allow_role_change,
                ..RestoreOptions::new(node)
            };
            backup::run_restore(&backup, &destination, &options, json)
        }
        Command::Salvage {
            damaged,
            destination,
            node,
            role,
            json,
        } => {
            let role = role.map(Into::into);
            salvage::run(&damaged, &destination, &SalvageOptions { node, role }, json)
        }
        Command::Bench { dir, samples, json } => {
            bench::run(dir.as_deref(), samples, json).map(|()| 0)
        }
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
