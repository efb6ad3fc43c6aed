//! Test support shared by the simulation suites: a simulated disk behind
//! cpwal's io seam, and a seeded workload with its model and checker.
//! Included by test files with `mod support;`.
#![allow(dead_code)] // Each test file uses a different part of the support code.

pub mod crash_driver;
pub mod fuzz_bodies;
pub mod replica_workload;
pub mod sim_disk;
pub mod workload;

/// Seeds to run: `CPWAL_SIM_SEEDS` or `default` (CI's budget).
pub fn seed_count(default: u64) -> u64 {
    std::env::var("CPWAL_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seeds a test runs: just `CPWAL_SIM_SEED` when set (a replay), else
/// `0..seed_count(default)` offset by a per-test salt.
pub fn seeds(salt: u64, default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("CPWAL_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![seed];
    }
    (0..seed_count(default))
        .map(|n| salt * 1_000_000 + n)
        .collect()
}
