//! The catalog a log's entries give, replayed from nothing: what every
//! acknowledged outcome and every catalog a reader saw must agree with.

#![allow(dead_code)] // each test file uses part of it

use cpwal::{ApplyOutcome, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex};

/// Replays `entries` from an empty catalog: the outcome of each, and the
/// catalog after each prefix (index `k`: after `k` entries).
pub fn replay(entries: &[ControlPlaneEntry]) -> (Vec<ApplyOutcome>, Vec<ControlPlaneCatalog>) {
    let mut catalog = ControlPlaneCatalog::new();
    let mut prefixes = vec![catalog.clone()];
    let mut outcomes = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        outcomes.push(catalog.apply(ControlPlaneIndex(i as u64), entry).unwrap());
        prefixes.push(catalog.clone());
    }
    (outcomes, prefixes)
}
