//! A node on the gated storage (`gated_storage.rs`) and the small helpers
//! every test of group commit on it needs: identities, entries, polling.

#![allow(dead_code)] // each test file uses part of it

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane,
    MembershipChange, Options, SharedControlPlane, SoleVoter,
};

use super::gated_storage::{Faults, GatedStorage};

/// The identity every gated node runs as.
pub const NODE: &str = "CN=node-a";

pub type Shared = SharedControlPlane<SoleVoter, GatedStorage>;

pub fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// A membership entry admitting `CN=node-{n}`: distinct for each `n`.
pub fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=node-{n}"))))
}

/// A new shared sole voter ([`NODE`]) in `dir`, on the gated storage, with
/// `options`; the faults control its syncs.
pub fn create_shared(dir: &Path, options: Options) -> (Shared, Arc<Faults>) {
    let (storage, faults) = GatedStorage::open(dir);
    let node = DurableControlPlane::create_with_storage(storage, voter(NODE), options);
    (SharedControlPlane::new(node.unwrap()), faults)
}

/// Reopens the node in `dir` on plain storage, as after a power loss.
pub fn reopen(dir: &Path, options: Options) -> DurableControlPlane {
    DurableControlPlane::open(dir, voter(NODE), options).unwrap()
}

/// Polls `condition` every millisecond for up to `limit`; false if it
/// never held.
pub fn holds_within(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Fails the test, naming `what`, unless `condition` holds within ten
/// seconds.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    assert!(
        holds_within(Duration::from_secs(10), condition),
        "timed out waiting for {what}"
    );
}

/// Appends [`admit`]`(n)` on a thread of its own.
pub fn spawn_append(shared: &Shared, n: u64) -> JoinHandle<cpwal::Result<ControlPlaneIndex>> {
    let shared = shared.clone();
    std::thread::spawn(move || shared.try_append(&admit(n)).map(|a| a.index))
}

/// Options of a node whose syncs never overlap, so that a held sync holds
/// every caller behind it (tests/overlapping_syncs.rs covers two in
/// flight), with segments of `segment_size_bytes`.
pub fn one_sync_at_a_time(segment_size_bytes: u64) -> Options {
    Options::default()
        .with_segment_size_bytes(segment_size_bytes)
        .with_second_sync_after(Duration::MAX)
}
