//! Two group-commit syncs in flight (`Options::second_sync_after`): the
//! second runs on a second file description of the tail segment, and syncs
//! are recorded, so acknowledged, in the order they started, whichever
//! returns first; a failure of the first fails the writers of the second
//! though the second succeeded. On the gated storage: real files whose
//! writes stay in memory until a sync (of any handle of the file) passes a
//! gate the test holds, opens by the order syncs reached it, or fails.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cpwal::{ControlPlaneIndex, Error, Options};

#[path = "support/gated_storage.rs"]
mod gated_storage;

#[path = "support/gated_node.rs"]
mod gated_node;

use gated_node::{create_shared, reopen, spawn_append, wait_until, Shared};
use gated_storage::Faults;

/// A shared node whose syncs overlap once one has run for `after`.
fn open_gated(dir: &Path, after: Duration) -> (Shared, Arc<Faults>) {
    create_shared(dir, Options::default().with_second_sync_after(after))
}

/// Holds every sync, starts writer 0 (it leads the first sync) and writer 1
/// (it writes behind it and leads a second sync at once), lets only the
/// second sync through and waits until it has returned, with the first
/// still held. Returns the writers and the gate count of the first sync.
fn second_sync_returned_first(
    shared: &Shared,
    faults: &Faults,
) -> (
    JoinHandle<cpwal::Result<ControlPlaneIndex>>,
    JoinHandle<cpwal::Result<ControlPlaneIndex>>,
    usize,
) {
    let before = faults.entered();
    faults.set(|g| g.pass_only = Some(Vec::new()));
    let first = spawn_append(shared, 0);
    wait_until("the first sync", || faults.entered() == before + 1);
    let second = spawn_append(shared, 1);
    wait_until("a second sync beside it", || faults.entered() == before + 2);
    let finished = faults.finished();
    faults.set(|g| g.pass_only = Some(vec![before + 2]));
    // The second sync can return while the first is held only because it
    // runs on another file description: two syncs on one wait for each
    // other.
    wait_until("the second sync's return", || {
        faults.finished() == finished + 1
    });
    (first, second, before + 1)
}

#[test]
fn second_sync_returning_first_is_acknowledged_after_the_first() {
    // Goal: a second sync in flight that returns first does not
    // acknowledge its writer before the first sync ends (acknowledgement
    // follows the order of the syncs), and both writers' entries are
    // durable once acknowledged. Method: the second sync returns while the
    // first is held; its writer must still wait 200 ms later; release the
    // first: both return their indexes; drop the node (what was not synced
    // is lost) and reopen: both entries are there.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = open_gated(dir.path(), Duration::ZERO);
    let (first, second, _) = second_sync_returned_first(&shared, &faults);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !second.is_finished(),
        "the second sync's writer was acknowledged while the first sync was in flight"
    );
    assert!(!first.is_finished());
    faults.set(|g| g.pass_only = None);
    assert_eq!(first.join().unwrap().unwrap(), ControlPlaneIndex(0));
    assert_eq!(second.join().unwrap().unwrap(), ControlPlaneIndex(1));
    drop(shared);
    let node = reopen(dir.path(), Options::default());
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(1)));
}

#[test]
fn first_sync_failing_fails_the_writers_of_a_second_that_succeeded() {
    // Goal: the sync gate's failure rule holds with two in flight: when the
    // first fails after the second succeeded, the second's writer fails
    // too (nothing is acknowledged after a failure), and the node is
    // stopped. Method: the second sync returns while the first is held;
    // then the first fails.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = open_gated(dir.path(), Duration::ZERO);
    let (first, second, first_count) = second_sync_returned_first(&shared, &faults);
    faults.set(|g| {
        g.fail_entered = Some(first_count);
        g.pass_only = None;
    });
    assert!(first.join().unwrap().is_err(), "the failed sync's writer");
    let refused = second.join().unwrap();
    assert!(
        matches!(refused, Err(Error::Failed { .. })),
        "the second sync's writer after the first failed: {refused:?}"
    );
    assert!(shared.failure().is_some(), "the node stopped");
}

#[test]
fn syncs_overlap_only_after_the_first_has_run_for_second_sync_after() {
    // Goal: below `second_sync_after` a writer waits for the sync in flight
    // instead of starting a second one. Method: with 10 s, hold the first
    // sync, let a second writer write behind it: after 200 ms still one
    // sync at the gate; release: two syncs in all, both writers succeed.
    let dir = tempfile::tempdir().unwrap();
    let (shared, faults) = open_gated(dir.path(), Duration::from_secs(10));
    let before = faults.entered();
    faults.set(|g| g.hold_syncs = true);
    let first = spawn_append(&shared, 0);
    wait_until("the first sync", || faults.entered() == before + 1);
    let second = spawn_append(&shared, 1);
    wait_until("the second write", || {
        shared.last_written_index() == Some(ControlPlaneIndex(1))
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(faults.entered(), before + 1, "a second sync started early");
    faults.set(|g| g.hold_syncs = false);
    assert!(first.join().unwrap().is_ok() && second.join().unwrap().is_ok());
    assert_eq!(faults.entered(), before + 2);
}
