//! Installing a leader's snapshot on a lagging follower (real files): the
//! three shapes of follower log, reopen after install, and the crash windows
//! of the log restart, each built as the directory a crash would leave.

use cpwal::{
    AppendEntriesRequest, AppendOutcome, ClusterVoterIdentity, ControlPlaneEntry,
    ControlPlaneIndex, ControlPlaneTerm, InstallSnapshotRequest, LogEntry, Options,
    OwnershipTransition, PeerBatch, ReplicaControlPlane,
};
use std::path::Path;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn create_replica(dir: &Path, name: &str) -> ReplicaControlPlane {
    let options = Options::default().with_segment_size_bytes(4096);
    ReplicaControlPlane::create(dir, voter(name), options).unwrap()
}

fn open_replica(dir: &Path, name: &str) -> ReplicaControlPlane {
    let options = Options::default().with_segment_size_bytes(4096);
    ReplicaControlPlane::open(dir, voter(name), options).unwrap()
}

fn transfer(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{}", n % 5),
        new_owner: voter(&format!("CN=owner-{n}")),
        ownership_epoch: n + 1,
    })
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

fn copy_dir(from: &Path, to: &Path) {
    for name in files(from) {
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

/// A term-2 replica leader with `count` committed entries, compacted.
fn compacted_leader(dir: &Path, count: u64) -> ReplicaControlPlane {
    let mut leader = create_replica(dir, "CN=leader");
    leader.start_election().unwrap();
    leader.start_election().unwrap();
    leader.become_leader(ControlPlaneTerm(2)).unwrap();
    let batch: Vec<_> = (0..count).map(transfer).collect();
    leader.append_uncommitted_batch(&batch).unwrap();
    leader.advance_commit(ControlPlaneIndex(count - 1)).unwrap();
    leader.compact(0).unwrap();
    leader
}

fn install_request(leader: &ReplicaControlPlane) -> InstallSnapshotRequest {
    assert!(matches!(
        leader
            .entries_for_peer(ControlPlaneIndex(0), 1 << 20)
            .unwrap(),
        PeerBatch::SendSnapshot { .. }
    ));
    InstallSnapshotRequest {
        term: leader.current_term(),
        leader: leader.identity().clone(),
        snapshot: leader.snapshot_for_peer().unwrap().unwrap(),
    }
}

/// Appends entries with `terms` from index `first` on, as the leader of
/// `term` would (no commit); term 2's leader is the one that compacted.
fn append(node: &mut ReplicaControlPlane, term: u64, first: u64, terms: &[u64], prev_term: u64) {
    let request = AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: if term == 2 {
            voter("CN=leader")
        } else {
            voter(&format!("CN=old-{term}"))
        },
        prev_log_index: first.checked_sub(1).map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(prev_term),
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, &t)| LogEntry {
                index: ControlPlaneIndex(first + k as u64),
                term: ControlPlaneTerm(t),
                entry: transfer(first + k as u64),
            })
            .collect(),
        leader_commit: None,
    };
    let reply = node.append_entries(&request).unwrap();
    assert!(matches!(reply.outcome, AppendOutcome::Accepted { .. }));
}

#[test]
fn install_snapshot_on_empty_follower_then_reopen() {
    // Goal: a follower with nothing takes the leader's snapshot: catalog,
    // commit and log start follow it, durably, and later entries replicate
    // on top. Method: leader with 100 compacted entries; install; append one
    // more entry through AppendEntries; reopen; compare with the leader.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = compacted_leader(leader_dir.path(), 100);
    let dir = tempfile::tempdir().unwrap();
    let mut follower = create_replica(dir.path(), "CN=f");
    let reply = follower
        .install_snapshot(&install_request(&leader))
        .unwrap();
    assert_eq!(
        reply.outcome,
        AppendOutcome::Accepted {
            match_index: Some(ControlPlaneIndex(99))
        }
    );
    assert_eq!(follower.catalog(), leader.catalog());
    assert_eq!(follower.first_index(), ControlPlaneIndex(100));
    append(&mut follower, 2, 100, &[2], 2);
    drop(follower);
    let follower = open_replica(dir.path(), "CN=f");
    assert_eq!(follower.catalog(), leader.catalog());
    assert_eq!(follower.commit_index(), Some(ControlPlaneIndex(99)));
    assert_eq!(
        follower.read(ControlPlaneIndex(100)).unwrap().entry,
        transfer(100)
    );
    assert_eq!(
        follower.term_at(ControlPlaneIndex(99)).unwrap(),
        ControlPlaneTerm(2)
    );
}

#[test]
fn install_snapshot_replaces_a_conflicting_log_and_keeps_a_matching_suffix() {
    // Goal: Raft §7 — a log that conflicts with the snapshot is discarded;
    // a log that holds the snapshot's last entry keeps the entries after
    // it. Method: follower A holds 150 term-1 entries (conflicting); follower
    // B holds the leader's 100 entries plus 3 more of term 2; install on both,
    // reopen, check.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = compacted_leader(leader_dir.path(), 100);
    let request = install_request(&leader);
    let dir_a = tempfile::tempdir().unwrap();
    let mut a = create_replica(dir_a.path(), "CN=a");
    append(&mut a, 1, 0, &[1; 150], 0);
    a.install_snapshot(&request).unwrap();
    assert_eq!(a.last_index(), None);
    drop(a);
    let a = open_replica(dir_a.path(), "CN=a");
    assert_eq!(
        (a.first_index(), a.last_index()),
        (ControlPlaneIndex(100), None)
    );
    assert_eq!(a.catalog(), leader.catalog());
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = create_replica(dir_b.path(), "CN=b");
    append(&mut b, 2, 0, &[2; 103], 0);
    b.install_snapshot(&request).unwrap();
    drop(b);
    let b = open_replica(dir_b.path(), "CN=b");
    assert_eq!(b.first_index(), ControlPlaneIndex(100));
    assert_eq!(b.last_index(), Some(ControlPlaneIndex(102)));
    assert_eq!(b.read(ControlPlaneIndex(102)).unwrap().entry, transfer(102));
    assert_eq!(b.catalog(), leader.catalog());
}

#[test]
fn install_snapshot_refuses_stale_terms_and_damaged_bytes() {
    // Goal: a stale leader's snapshot and damaged bytes change nothing, and
    // damage is a typed error that does not stop the node. Method: follower
    // in term 5; a term-2 install; then a flipped byte in a term-5 install.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = compacted_leader(leader_dir.path(), 10);
    let dir = tempfile::tempdir().unwrap();
    let mut follower = create_replica(dir.path(), "CN=f");
    follower.observe_term(ControlPlaneTerm(5)).unwrap();
    let mut request = install_request(&leader);
    let reply = follower.install_snapshot(&request).unwrap();
    assert_eq!(reply.outcome, AppendOutcome::StaleTerm);
    request.term = ControlPlaneTerm(5);
    let last = request.snapshot.len() - 1;
    request.snapshot[last] ^= 1;
    assert!(follower.install_snapshot(&request).is_err());
    assert!(follower.failure().is_none());
    assert_eq!(follower.commit_index(), None);
    assert!(files(dir.path())
        .iter()
        .all(|n| !n.starts_with("snapshot-")));
}

#[test]
fn install_snapshot_crash_windows_finish_the_restart() {
    // Goal: a crash at each step of an install that restarts the log (the
    // snapshot written; the hard state updated; the fresh segment created)
    // reopens to the installed state, never to a log with a hole. Method:
    // image a follower holding 60 term-1 entries before the install; build
    // each step's directory from the image plus the files the install had
    // written by then; reopen each twice.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = compacted_leader(leader_dir.path(), 100);
    let dir = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    let mut follower = create_replica(dir.path(), "CN=f");
    append(&mut follower, 1, 0, &[1; 60], 0);
    follower.observe_term(ControlPlaneTerm(2)).unwrap();
    drop(follower);
    copy_dir(dir.path(), before.path());
    let mut follower = open_replica(dir.path(), "CN=f");
    follower
        .install_snapshot(&install_request(&leader))
        .unwrap();
    drop(follower);
    let installed = files(dir.path());
    let snapshot = "snapshot-00000000000000000100".to_string();
    let fresh_segment = installed
        .iter()
        .find(|n| n.starts_with("segment-"))
        .unwrap()
        .clone();
    let steps: [&[&str]; 3] = [
        &[&snapshot],
        &[&snapshot, "hardstate"],
        &[&snapshot, "hardstate", &fresh_segment],
    ];
    for (step, written) in steps.iter().enumerate() {
        let image = tempfile::tempdir().unwrap();
        copy_dir(before.path(), image.path());
        for name in written.iter() {
            std::fs::copy(dir.path().join(name), image.path().join(name)).unwrap();
        }
        for _ in 0..2 {
            let node = open_replica(image.path(), "CN=f");
            assert_eq!(node.catalog(), leader.catalog(), "step {step}");
            assert_eq!(node.first_index(), ControlPlaneIndex(100), "step {step}");
            assert_eq!(node.last_index(), None, "step {step}");
            assert_eq!(node.commit_index(), Some(ControlPlaneIndex(99)));
        }
        assert_eq!(files(image.path()).len(), installed.len(), "step {step}");
    }
}
