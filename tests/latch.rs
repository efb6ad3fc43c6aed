//! The one fail-stop latch, seen from the engine on the simulated disk: a
//! failed write, allocation, sync, create, rename, remove or directory sync
//! of any file the node keeps — segments, hard state, snapshots, the
//! directory — stops the node, and every later change, whatever file it
//! would touch, fails with `Error::Failed` naming that first error, without
//! reaching the disk.

mod support;

use cpwal::{ControlPlaneEntry, ControlPlaneTerm, Error, MembershipChange};
use support::sim_disk::{OperationKind, SimDisk};
use support::workload::{options, voter, Node, NODE_SUBJECT};

fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=m-{n}"))))
}

fn batch(from: u64, count: u64) -> Vec<ControlPlaneEntry> {
    (from..from + count).map(admit).collect()
}

/// What makes the node touch the file under test.
type Trigger = fn(&mut Node) -> cpwal::Result<()>;

fn vote(node: &mut Node) -> cpwal::Result<()> {
    let next = ControlPlaneTerm(node.current_term().0 + 1);
    node.observe_term(next).map(drop)
}

fn append(node: &mut Node) -> cpwal::Result<()> {
    node.try_append(&admit(9_000)).map(drop)
}

/// Batches that fill several 4 KiB segments: rollovers. (A sole voter's
/// batch stays in one segment, so they are small.)
fn roll_over(node: &mut Node) -> cpwal::Result<()> {
    append_batches(node, 10_000, 150)
}

/// `count` entries from `from`, in batches of ten.
fn append_batches(node: &mut Node, from: u64, count: u64) -> cpwal::Result<()> {
    (from..from + count)
        .step_by(10)
        .try_for_each(|start| node.try_append_batch(&batch(start, 10)).map(drop))
}

/// A new snapshot, segments removed behind it, the older snapshot removed.
fn compact(node: &mut Node) -> cpwal::Result<()> {
    node.compact(10).map(drop)
}

/// A sole voter with a snapshot, a compacted head and entries after it.
fn prepared_node(disk: &SimDisk) -> Node {
    let mut node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
    append_batches(&mut node, 0, 100).unwrap();
    node.compact(10).unwrap();
    append_batches(&mut node, 100, 100).unwrap();
    node
}

/// Every kind of change the node makes, each on other files than some
/// case's: each must fail with `Failed` naming `first`.
fn check_every_later_change_fails(node: &mut Node, first: &Error) -> Result<(), String> {
    let changes: [(&str, Trigger); 5] = [
        ("append", append),
        ("vote", vote),
        ("roll over", roll_over),
        ("compact", compact),
        ("election", |n| n.start_election().map(drop)),
    ];
    for (name, change) in changes {
        match change(node) {
            Err(Error::Failed { cause }) if cause.to_string() == first.to_string() => {}
            other => return Err(format!("{name} after the failure returned {other:?}")),
        }
    }
    if node.is_leader() {
        return Err("a stopped node still leads".into());
    }
    Ok(())
}

#[test]
fn storage_failure_of_each_kind_latches_and_stops_every_later_change() {
    // Goal: every mutating call on every kind of file latches its failure,
    // typed (operation and path), and afterwards nothing reaches the disk.
    // Method: for each (call, file) pair, prepare a node with a snapshot
    // and several segments, make the next such call fail with EIO, run the
    // operation that makes it; the operation returns the typed error and
    // `failure()` holds it; then every kind of change fails with `Failed`
    // naming it, and the disk counts no further mutating call.
    // The snapshot the prepared node's first compaction wrote: the one the
    // second removes (the new one's temporary is removed around the latch,
    // so its name must not match).
    let old_snapshot = cpwal::format::snapshot_file_name(100);
    let cases: [(OperationKind, &str, Trigger, &str); 15] = [
        (OperationKind::Write, "hardstate", vote, "write hard state"),
        (
            OperationKind::SyncData,
            "hardstate",
            vote,
            "fdatasync hard state",
        ),
        (OperationKind::Write, "segment-", append, "write segment"),
        (
            OperationKind::SyncData,
            "segment-",
            append,
            "fdatasync segment",
        ),
        (
            OperationKind::Create,
            "segment-",
            roll_over,
            "create segment",
        ),
        (
            OperationKind::Allocate,
            "segment-",
            roll_over,
            "allocate segment",
        ),
        (
            OperationKind::Rename,
            "segment-",
            roll_over,
            "rename segment",
        ),
        (
            OperationKind::SyncDirectory,
            "",
            roll_over,
            "fsync directory",
        ),
        (OperationKind::Remove, "segment-", compact, "remove segment"),
        (
            OperationKind::Create,
            "snapshot-",
            compact,
            "create snapshot",
        ),
        (OperationKind::Write, "snapshot-", compact, "write snapshot"),
        (
            OperationKind::SyncData,
            "snapshot-",
            compact,
            "fdatasync snapshot",
        ),
        (
            OperationKind::Rename,
            "snapshot-",
            compact,
            "rename snapshot",
        ),
        (
            OperationKind::Remove,
            &old_snapshot,
            compact,
            "remove snapshot",
        ),
        (OperationKind::SyncDirectory, "", compact, "fsync directory"),
    ];
    for (call, prefix, trigger, expected_operation) in cases {
        let case = format!("{call:?} of {prefix:?}");
        let disk = SimDisk::new();
        let mut node = prepared_node(&disk);
        disk.fail_next(call, prefix);
        let first = trigger(&mut node).expect_err(&case);
        match &first {
            Error::Io {
                operation, path, ..
            } => {
                assert_eq!(*operation, expected_operation, "{case}");
                let name = path.file_name().map_or("", |n| n.to_str().unwrap_or(""));
                assert!(name.starts_with(prefix), "{case}: {path:?}");
            }
            other => panic!("{case}: the failure surfaced as {other:?}"),
        }
        let latched = node.failure().map(ToString::to_string);
        assert_eq!(latched, Some(first.to_string()), "{case}");
        let operations = disk.counters().operations;
        check_every_later_change_fails(&mut node, &first).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            disk.counters().operations,
            operations,
            "{case}: a call reached the disk after the failure"
        );
    }
}

#[test]
fn trait_append_after_a_failed_sync_names_no_leader_and_keeps_the_typed_error() {
    // Goal: a storage failure during the trait's `append` (which stops the
    // node: it steps down) is `NotLeader { leader: None }`, and the typed
    // failure is reachable right after the call; the next append, refused
    // by the latch, reports the latch's error, not the earlier one.
    // Method: a leader whose next sync fails appends through the trait
    // twice.
    use cpwal::{ControlPlaneConsensus, ControlPlaneError};
    let disk = SimDisk::new();
    let mut node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
    disk.fail_sync(disk.counters().syncs + 1);
    let refused = ControlPlaneConsensus::append(&mut node, admit(1));
    assert_eq!(refused, Err(ControlPlaneError::NotLeader { leader: None }));
    assert!(!node.is_leader());
    let first = node
        .last_append_error()
        .cloned()
        .expect("the typed failure is kept");
    assert!(matches!(first, Error::Io { .. }), "{first:?}");
    let refused = ControlPlaneConsensus::append(&mut node, admit(2));
    assert_eq!(refused, Err(ControlPlaneError::NotLeader { leader: None }));
    assert!(
        matches!(node.last_append_error(), Some(Error::Failed { cause }) if cause.to_string() == first.to_string()),
        "{:?}",
        node.last_append_error()
    );
}

fn transfer(range: &str, owner: &str, epoch: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(cpwal::OwnershipTransition {
        range: range.into(),
        new_owner: voter(owner),
        ownership_epoch: epoch,
    })
}

fn leader(term: u64, subject: &str) -> ControlPlaneEntry {
    ControlPlaneEntry::LeaderConfiguration {
        term: ControlPlaneTerm(term),
        leader: voter(subject),
    }
}

fn remove(subject: &str) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter(subject)))
}

#[test]
fn a_failed_sync_leaves_the_catalog_and_the_commit_point_as_they_were() {
    // Goal: an append applies its entries to the catalog while their sync
    // runs; when that sync fails, the call returns its error and the
    // catalog (ranges, members, leaders, refusals), the applied end and the
    // commit index are exactly what they were before the call, whatever
    // the entries did. Method: a node holding ranges, members and leader
    // records; one batch that moves known ranges, adds new ones, is fenced,
    // admits, removes, records a leader and is refused a stale one, then a
    // single append, each with its sync failing on a fresh node; compare
    // with what was there before each call.
    let prepare = |disk: &SimDisk| {
        let mut node =
            Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
        let history = [
            admit(1),
            admit(2),
            transfer("r-1", "CN=m-1", 4),
            transfer("r-2", "CN=m-2", 7),
            leader(3, "CN=m-1"),
        ];
        node.try_append_batch(&history).unwrap();
        node
    };
    let batch = [
        transfer("r-1", "CN=m-2", 5),
        transfer("r-2", "CN=m-1", 6),
        transfer("r-3", "CN=m-1", 1),
        transfer("r-3", "CN=m-2", 2),
        admit(3),
        admit(1),
        remove("CN=m-2"),
        remove("CN=m-9"),
        leader(4, "CN=m-1"),
        leader(2, "CN=m-2"),
    ];
    type Call = fn(&mut Node, &[ControlPlaneEntry]) -> cpwal::Result<()>;
    let calls: [(&str, Call); 2] = [
        ("batch", |node, entries| {
            node.try_append_batch(entries).map(drop)
        }),
        ("single", |node, entries| {
            node.try_append(&entries[0]).map(drop)
        }),
    ];
    for (name, call) in calls {
        let disk = SimDisk::new();
        let mut node = prepare(&disk);
        let catalog = node.catalog().clone();
        let (applied, committed) = (node.applied_end(), node.commit_index());
        disk.fail_sync(disk.counters().syncs + 1);
        let failed = call(&mut node, &batch).expect_err(name);
        assert!(matches!(failed, Error::Io { .. }), "{name}: {failed:?}");
        assert_eq!(node.catalog(), &catalog, "{name}");
        assert_eq!(
            node.catalog().refused_count(),
            catalog.refused_count(),
            "{name}"
        );
        assert_eq!(node.applied_end(), applied, "{name}");
        assert_eq!(node.commit_index(), committed, "{name}");
        // The same batch on a healthy node is applied, refusals included:
        // the failed call had something to undo.
        let healthy = SimDisk::new();
        let mut node = prepare(&healthy);
        call(&mut node, &batch).unwrap();
        assert_ne!(node.catalog(), &catalog, "{name}");
    }
    // The shared handle's sync leader applies the entries its sync covers
    // while the sync runs too: after the sync fails, a reader sees the
    // catalog as it was, and so does whoever takes the node back.
    for (name, entries) in [("shared batch", &batch[..]), ("shared single", &batch[..1])] {
        let disk = SimDisk::new();
        let node = prepare(&disk);
        let catalog = node.catalog().clone();
        let (applied, committed) = (node.applied_end(), node.commit_index());
        let shared = cpwal::SharedControlPlane::new(node);
        disk.fail_sync(disk.counters().syncs + 1);
        let failed = shared.try_append_batch(entries).expect_err(name);
        assert!(
            matches!(failed, Error::Io { .. } | Error::Failed { .. }),
            "{name}: {failed:?}"
        );
        assert_eq!(shared.with_catalog(Clone::clone), catalog, "{name}");
        assert_eq!(shared.commit_index(), committed, "{name}");
        let node = shared.into_inner().unwrap();
        assert_eq!(node.catalog(), &catalog, "{name}");
        assert_eq!(node.applied_end(), applied, "{name}");
    }
}

#[test]
fn a_panic_in_the_sync_leaves_no_entry_applied_ahead_of_the_disk() {
    // Goal: a panic while an append's entries are applied ahead of their
    // sync (a `Storage` that panics, or a bug) cannot leave the catalog
    // ahead of the commit point for the next reader, although the shared
    // handle goes on past the poisoned engine lock. Method: a shared
    // handle; one thread appends a batch through `with_engine` while the
    // disk panics inside its sync; another then reads the catalog and the
    // commit index, and appends once more.
    let disk = SimDisk::new();
    let node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
    let shared = cpwal::SharedControlPlane::new(node);
    shared.try_append(&admit(1)).unwrap();
    let before = shared.with_catalog(|c| c.clone());
    disk.panic_in_next_sync();
    let writer = shared.clone();
    let panicked = std::thread::spawn(move || {
        writer.with_engine(|engine| engine.try_append_batch(&batch(2, 3)))
    })
    .join();
    assert!(panicked.is_err(), "the append panicked");
    assert_eq!(shared.with_catalog(|c| c.clone()), before);
    assert_eq!(shared.commit_index(), Some(cpwal::ControlPlaneIndex(0)));
    // The batch was written; the next sync makes it durable, and the
    // catalog applies it in order before the new entry.
    let next = shared.try_append(&admit(9)).unwrap();
    assert_eq!(next.index, cpwal::ControlPlaneIndex(4));
    let applied = shared.with_catalog(|c| c.applied_end());
    assert_eq!(applied, cpwal::ControlPlaneIndex(5));
    // The same through the handle's own append: its sync's leader applied
    // the batch while the sync ran, and the panic left it applied, not
    // committed. A reader sees the catalog at the commit point; the next
    // append's sync commits the batch, which is applied again, in order.
    let before = shared.with_catalog(|c| c.clone());
    disk.panic_in_next_sync();
    let writer = shared.clone();
    let panicked = std::thread::spawn(move || writer.try_append_batch(&batch(10, 3))).join();
    assert!(panicked.is_err(), "the append panicked");
    assert_eq!(shared.with_catalog(|c| c.clone()), before);
    assert_eq!(shared.commit_index(), Some(cpwal::ControlPlaneIndex(4)));
    let next = shared.try_append(&admit(19)).unwrap();
    assert_eq!(next.index, cpwal::ControlPlaneIndex(8));
    let members = shared.with_catalog(|c| c.members().len());
    assert_eq!(members, 9, "1, 2, 3, 4, 9, 10, 11, 12 and 19");
    assert_eq!(
        shared.with_catalog(|c| c.applied_end()),
        cpwal::ControlPlaneIndex(9)
    );
}

#[test]
fn a_failed_start_of_the_writeback_stops_the_node_before_anything_is_applied() {
    // Goal: where starting an append's writeback fails (pages that may
    // never reach the disk), the append fails with the typed error, before
    // any of its entries is applied or committed, and the node is stopped:
    // every later change fails naming that error. Method: a node with a
    // few entries; the next started writeback fails; a batch, then every
    // kind of change.
    let disk = SimDisk::new();
    let mut node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
    node.try_append_batch(&batch(0, 3)).unwrap();
    let (catalog, committed) = (node.catalog().clone(), node.commit_index());
    disk.fail_next_start_write_back();
    let failed = node.try_append_batch(&batch(3, 3)).unwrap_err();
    assert!(
        matches!(
            &failed,
            Error::Io {
                operation: "write back segment",
                ..
            }
        ),
        "{failed:?}"
    );
    assert_eq!(node.catalog(), &catalog);
    assert_eq!(node.commit_index(), committed);
    check_every_later_change_fails(&mut node, &failed).unwrap();
}
