//! Test support shared by the simulation suites: a simulated disk behind
//! cpwal's io seam, and a seeded workload with its model and checker.
//! Included by test files with `mod support;`.
#![allow(dead_code)] // Each test file uses a different part of the support code.

pub mod catalog_replay;
pub mod crash_driver;
pub mod fuzz_bodies;
pub mod long_log;
pub mod records;
pub mod replica_workload;
pub mod sim_disk;
pub mod workload;

/// The number in environment variable `name`, if it is set and parses.
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Prints a line of a replayed run's story when `CPWAL_SIM_TRACE` is set
/// (operations, their results, interruptions), to see how a seed fails.
pub fn trace(line: std::fmt::Arguments<'_>) {
    if std::env::var_os("CPWAL_SIM_TRACE").is_some() {
        eprintln!("{line}");
    }
}

/// The single seed to replay: `CPWAL_SIM_SEED`, when set.
pub fn replay_seed() -> Option<u64> {
    env_number("CPWAL_SIM_SEED")
}

/// Seeds to run: `CPWAL_SIM_SEEDS` or `default` (CI's budget).
pub fn seed_count(default: u64) -> u64 {
    env_number("CPWAL_SIM_SEEDS").unwrap_or(default)
}

/// The seeds a test runs: just `CPWAL_SIM_SEED` when set (a replay), else
/// `0..seed_count(default)` offset by a per-test salt.
pub fn seeds(salt: u64, default: u64) -> Vec<u64> {
    if let Some(seed) = replay_seed() {
        return vec![seed];
    }
    (0..seed_count(default))
        .map(|n| salt * 1_000_000 + n)
        .collect()
}

/// Runs `run(seed)` for each of [`seeds`]`(salt, default)`, panicking on the
/// first failure with the command that replays that seed of
/// `test_file`'s `test_name`.
pub fn for_each_seed(
    test_file: &str,
    test_name: &str,
    salt: u64,
    default: u64,
    run: impl Fn(u64) -> Result<(), String>,
) {
    for seed in seeds(salt, default) {
        if let Err(violation) = run(seed) {
            panic!(
                "seed {seed}: {violation}\nreplay: {}",
                workload::replay_command(test_file, test_name, seed)
            );
        }
    }
}
