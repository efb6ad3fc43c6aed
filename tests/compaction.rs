//! Snapshots and prefix compaction on real files: reads below the log start,
//! reopen after each step, bounded disk use, and the crash windows of
//! compaction and of conflict truncation, each built as the directory a
//! crash at that step would leave.

use cpwal::{
    AppendEntriesRequest, ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex,
    ControlPlaneNode, ControlPlaneTerm, CorruptionKind, DurableControlPlane, Error, LogEntry,
    Options, OwnershipTransition, PeerBatch, ReplicaControlPlane, Role,
};
use std::path::Path;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn create(dir: &Path) -> DurableControlPlane {
    DurableControlPlane::create(dir, voter("CN=node-a"), options()).unwrap()
}

fn open(dir: &Path) -> DurableControlPlane {
    DurableControlPlane::open(dir, voter("CN=node-a"), options()).unwrap()
}

fn create_replica(dir: &Path) -> ReplicaControlPlane {
    ReplicaControlPlane::create(dir, voter("CN=f"), options()).unwrap()
}

fn open_replica(dir: &Path) -> ReplicaControlPlane {
    ReplicaControlPlane::open(dir, voter("CN=f"), options()).unwrap()
}

/// An entry that moves one of eight ranges forward, so the catalog stays
/// small however long the log grows.
fn transfer(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{}", n % 8),
        new_owner: voter(&format!("CN=owner-{}", n % 3)),
        ownership_epoch: n + 1,
    })
}

/// Appends `transfer(from..from + count)` in batches of 16 (a sole voter's
/// batch must fit in one of these small segments).
fn append_many(node: &mut DurableControlPlane, from: u64, count: u64) {
    let indexes: Vec<u64> = (from..from + count).collect();
    for chunk in indexes.chunks(16) {
        let batch: Vec<_> = chunk.iter().copied().map(transfer).collect();
        let appended = node.try_append_batch(&batch).unwrap();
        assert_eq!(appended.first_index, ControlPlaneIndex(chunk[0]));
        assert_eq!(appended.outcomes.len(), chunk.len());
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    names
}

fn bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Copies every file of `from` into `to` (a crash image to be).
fn copy_dir(from: &Path, to: &Path) {
    for name in files(from) {
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

fn check_entries<R: Role>(node: &ControlPlaneNode<R>, from: u64, to: u64) {
    for n in from..to {
        let read = node.read(ControlPlaneIndex(n)).unwrap();
        assert_eq!(read.entry, transfer(n), "entry {n}");
    }
}

#[test]
fn compact_then_reopen_reads_from_the_snapshot_and_the_log() {
    // Goal: after compaction, reads below the log start are a typed
    // Compacted error, a lagging peer is told to take the snapshot, the
    // catalog and later entries survive a reopen, and appends continue.
    // Method: 300 entries over many 4 KiB segments, compact keeping 20,
    // check, reopen, check, append, compact again, reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    append_many(&mut node, 0, 300);
    let catalog = node.catalog().clone();
    let report = node.compact(20).unwrap();
    assert_eq!(report.snapshot_index_end.0, 300);
    assert_eq!(report.log_start, ControlPlaneIndex(280));
    assert!(report.removed_segments > 5, "{report:?}");
    assert!(matches!(
        node.read(ControlPlaneIndex(279)),
        Err(Error::Compacted {
            index: 279,
            first_index: 280
        })
    ));
    assert!(matches!(
        node.entries(ControlPlaneIndex(0), ControlPlaneIndex(290), 1 << 20),
        Err(Error::Compacted { .. })
    ));
    assert_eq!(
        node.entries_for_peer(ControlPlaneIndex(100), 1 << 20)
            .unwrap(),
        PeerBatch::SendSnapshot {
            log_start: ControlPlaneIndex(280)
        }
    );
    let PeerBatch::Entries {
        prev_log_index,
        prev_log_term,
        entries,
    } = node
        .entries_for_peer(ControlPlaneIndex(280), 1 << 20)
        .unwrap()
    else {
        panic!("index 280 is in the log");
    };
    assert_eq!(prev_log_index, Some(ControlPlaneIndex(279)));
    assert_eq!(prev_log_term, ControlPlaneTerm(1));
    assert_eq!(entries.len(), 20);
    drop(node);
    let mut node = open(dir.path());
    assert_eq!(node.first_index(), ControlPlaneIndex(280));
    assert_eq!(node.catalog(), &catalog);
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(299)));
    assert_eq!(
        node.term_at(ControlPlaneIndex(279)).unwrap(),
        ControlPlaneTerm(1)
    );
    check_entries(&node, 280, 300);
    append_many(&mut node, 300, 50);
    let report = node.compact(0).unwrap();
    assert_eq!(
        report.removed_snapshots,
        vec!["snapshot-00000000000000000300".to_string()]
    );
    let catalog = node.catalog().clone();
    drop(node);
    let node = open(dir.path());
    assert_eq!(node.catalog(), &catalog);
    assert_eq!(node.first_index(), ControlPlaneIndex(350));
    assert_eq!(node.last_index(), None, "every entry is in the snapshot");
    assert_eq!(
        node.term_at(ControlPlaneIndex(349)).unwrap(),
        ControlPlaneTerm(1)
    );
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(349)));
    assert_eq!(
        files(dir.path())
            .iter()
            .filter(|n| n.starts_with("snapshot-"))
            .count(),
        1
    );
}

#[test]
fn compact_keeps_disk_use_bounded_over_many_cycles() {
    // Goal: disk use stays bounded under an append-and-compact workload.
    // Method: CPWAL_COMPACTION_CYCLES (default 100) cycles of a 60-entry
    // batch (~5 KiB of records, more than a 4 KiB segment) and a compaction
    // keeping 10 entries; after every cycle the directory must hold at most
    // 4 segments, the hard state and one small snapshot, while the records
    // written in total are many times that bound.
    let cycles: u64 = std::env::var("CPWAL_COMPACTION_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    let bound = 4 * 4096 + 2048 + 4096;
    let mut written = 0;
    for cycle in 0..cycles {
        append_many(&mut node, cycle * 60, 60);
        written += (0..60)
            .map(|k| 48 + 8 + cpwal::codec::encoded_entry(&transfer(cycle * 60 + k)).len())
            .sum::<usize>() as u64;
        node.compact(10).unwrap();
        let used = bytes_on_disk(dir.path());
        assert!(used <= bound, "cycle {cycle}: {used} bytes on disk");
    }
    assert!(written > 10 * bound, "the workload is too small to tell");
    drop(node);
    let node = open(dir.path());
    check_entries(&node, cycles * 60 - 10, cycles * 60);
}

#[test]
fn compact_crash_after_snapshot_before_log_start_recovers() {
    // Goal: a crash after the snapshot is durable but before the hard state
    // records the new log start loses nothing. Method: copy the directory
    // before compacting, compact, then put only the new snapshot into the
    // copy (the state after step 1) and open it: the old log start, every
    // entry, the catalog; a second compaction then completes.
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    append_many(&mut node, 0, 200);
    copy_dir(dir.path(), image.path());
    node.compact(0).unwrap();
    let catalog = node.catalog().clone();
    drop(node);
    let snapshot = "snapshot-00000000000000000200";
    std::fs::copy(dir.path().join(snapshot), image.path().join(snapshot)).unwrap();
    let mut crashed = open(image.path());
    assert_eq!(crashed.first_index(), ControlPlaneIndex(0));
    assert_eq!(crashed.catalog(), &catalog);
    check_entries(&crashed, 0, 200);
    let report = crashed.compact(0).unwrap();
    assert_eq!(report.log_start, ControlPlaneIndex(200));
}

#[test]
fn compact_crash_after_log_start_before_segment_removal_recovers() {
    // Goal: a crash after the new log start is durable but before the old
    // segments are removed leaves no hole: recovery removes the extra head
    // segments. Method: compact, then copy the removed segments (from an
    // image taken before) back into the directory, reopen.
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    append_many(&mut node, 0, 200);
    copy_dir(dir.path(), image.path());
    node.compact(5).unwrap();
    drop(node);
    let kept = files(dir.path());
    let restored: Vec<String> = files(image.path())
        .into_iter()
        .filter(|n| n.starts_with("segment-") && !n.ends_with(".tmp") && !kept.contains(n))
        .collect();
    assert!(!restored.is_empty());
    for name in &restored {
        std::fs::copy(image.path().join(name), dir.path().join(name)).unwrap();
    }
    let node = open(dir.path());
    assert_eq!(node.first_index(), ControlPlaneIndex(195));
    assert_eq!(&node.recovery_report().removed_files, &restored);
    check_entries(&node, 195, 200);
    assert_eq!(files(dir.path()), kept);
}

#[test]
fn compact_crash_before_old_snapshot_removal_recovers() {
    // Goal: a crash after compaction but before the older snapshot is
    // removed: recovery uses the newest and removes the older one. A stale
    // temporary snapshot is removed too. Method: two compactions, then put
    // the first snapshot and a half-written temporary file back; reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    append_many(&mut node, 0, 100);
    node.compact(0).unwrap();
    let old = std::fs::read(dir.path().join("snapshot-00000000000000000100")).unwrap();
    append_many(&mut node, 100, 100);
    node.compact(0).unwrap();
    let catalog = node.catalog().clone();
    drop(node);
    std::fs::write(dir.path().join("snapshot-00000000000000000100"), old).unwrap();
    std::fs::write(
        dir.path().join("snapshot-00000000000000000300.tmp"),
        [7u8; 100],
    )
    .unwrap();
    let node = open(dir.path());
    assert_eq!(node.catalog(), &catalog);
    let removed = &node.recovery_report().removed_files;
    assert!(removed.contains(&"snapshot-00000000000000000100".to_string()));
    assert!(removed.contains(&"snapshot-00000000000000000300.tmp".to_string()));
    assert_eq!(
        files(dir.path())
            .iter()
            .filter(|n| n.starts_with("snapshot-"))
            .count(),
        1
    );
}

#[test]
fn open_refuses_a_compacted_log_without_its_snapshot() {
    // Goal: entries compacted away with no snapshot covering them are a
    // typed corruption, never an empty catalog (G5). Method: compact, delete
    // the snapshot, reopen; then damage a snapshot byte and reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create(dir.path());
    append_many(&mut node, 0, 100);
    node.compact(0).unwrap();
    drop(node);
    let path = dir.path().join("snapshot-00000000000000000100");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let missing = DurableControlPlane::open(dir.path(), voter("CN=node-a"), options());
    assert!(matches!(
        missing.as_ref().map_err(Error::as_corruption),
        Err(Some(c)) if matches!(c.kind, CorruptionKind::CommittedEntryMissing { .. })
    ));
    let mut damaged = bytes;
    let last = damaged.len() - 1;
    damaged[last] ^= 0x10;
    std::fs::write(&path, damaged).unwrap();
    let refused = DurableControlPlane::open(dir.path(), voter("CN=node-a"), options());
    assert!(matches!(refused, Err(Error::Corruption(_))), "{refused:?}");
}

fn request(
    term: u64,
    prev: Option<u64>,
    terms: &[u64],
    commit: Option<u64>,
) -> AppendEntriesRequest {
    let first = prev.map_or(0, |p| p + 1);
    AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: voter(&format!("CN=leader-{term}")),
        prev_log_index: prev.map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(1),
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, &t)| LogEntry {
                index: ControlPlaneIndex(first + k as u64),
                term: ControlPlaneTerm(t),
                entry: transfer(first + k as u64),
            })
            .collect(),
        leader_commit: commit.map(ControlPlaneIndex),
    }
}

#[test]
fn truncation_crash_windows_leave_a_prefix_of_the_old_log() {
    // Goal: a crash at each step of a conflict truncation (later segments
    // removed; hard state marks the truncation; records zeroed) reopens to a
    // prefix of the old log that keeps every committed entry, and the
    // finished truncation never brings removed entries back (G4). Method:
    // image the directory before a truncation at index 30 of a 150-entry
    // log (many segments); build the state after step 1 (later segment files
    // deleted, old hard state) and after step 2 (also the new hard state) in
    // copies; reopen each and check.
    let dir = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path());
    node.append_entries(&request(1, None, &[1; 150], Some(9)))
        .unwrap();
    node.append_entries(&request(2, Some(29), &[], None))
        .unwrap();
    drop(node);
    copy_dir(dir.path(), before.path());
    let mut node = open_replica(dir.path());
    let reply = node
        .append_entries(&request(2, Some(29), &[2], None))
        .unwrap();
    assert!(matches!(
        reply.outcome,
        cpwal::AppendOutcome::Accepted { .. }
    ));
    drop(node);
    let after = files(dir.path());
    let removed: Vec<String> = files(before.path())
        .into_iter()
        .filter(|n| !after.contains(n))
        .collect();
    assert!(!removed.is_empty(), "the truncation spans segments");
    for step in 1..=2 {
        let image = tempfile::tempdir().unwrap();
        copy_dir(before.path(), image.path());
        for name in &removed {
            std::fs::remove_file(image.path().join(name)).unwrap();
        }
        if step == 2 {
            std::fs::copy(dir.path().join("hardstate"), image.path().join("hardstate")).unwrap();
        }
        let node = open_replica(image.path());
        let end = node.last_index().map_or(0, |i| i.0 + 1);
        assert!(end >= 10, "step {step}: committed entries lost");
        if step == 2 {
            assert_eq!(end, 30, "step 2: the truncation must be finished");
            assert!(node.recovery_report().finished_truncation.is_some());
        }
        check_entries(&node, 0, end);
        assert_eq!(node.commit_index(), Some(ControlPlaneIndex(9)));
        drop(node);
        let node = open_replica(image.path());
        assert_eq!(node.last_index().map_or(0, |i| i.0 + 1), end, "step {step}");
    }
    let node = open_replica(dir.path());
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(30)));
    assert_eq!(
        node.term_at(ControlPlaneIndex(30)).unwrap(),
        ControlPlaneTerm(2)
    );
}
