//! A hard state behind its log: records (or a snapshot) carry a term above
//! the hard state's term. No crash leaves this, since a term is durable in the
//! hard state before anything is written in it; it is what restoring an old
//! copy of the hard-state file next to a newer log produces, and opening it
//! could grant a second vote in a term this node already voted in.

use cpwal::format::HARD_STATE_FILE_NAME;
use cpwal::inspect::Inspection;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, Corruption, CorruptionKind, DurableControlPlane,
    MembershipChange, Options, ReplicaControlPlane,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// Both inspection and `open` refuse the directory with exactly `expected`.
fn assert_refused<T: std::fmt::Debug>(
    dir: &std::path::Path,
    open: impl FnOnce() -> cpwal::Result<T>,
    expected: &Corruption,
) {
    let inspected = Inspection::open(dir).expect_err("inspection accepted it");
    assert_eq!(inspected.as_corruption(), Some(expected), "{inspected:?}");
    let error = open().expect_err("a hard state behind its log was accepted");
    assert_eq!(error.as_corruption(), Some(expected), "{error:?}");
}

#[test]
fn open_log_term_ahead_of_restored_hard_state_is_corruption() {
    // Goal: opening (and inspecting) a directory whose log's last term is
    // above the hard state's term fails with typed corruption at the hard
    // state, naming the last index and both terms, and changes nothing.
    // Method: a sole voter at term 1 has its hard-state file copied away; it
    // then runs elections up to term 5 and appends in term 5; the old copy
    // is restored and the directory reopened.
    let dir = tempfile::tempdir().unwrap();
    let me = voter("CN=stale");
    let admit = |s| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(s)));
    let mut node = DurableControlPlane::create(dir.path(), me.clone(), Options::default()).unwrap();
    node.try_append(&admit("CN=a")).unwrap();
    let hard_state_path = dir.path().join(HARD_STATE_FILE_NAME);
    let backup = std::fs::read(&hard_state_path).unwrap();
    for _ in 0..4 {
        node.start_election().unwrap();
    }
    node.try_append(&admit("CN=b")).unwrap();
    drop(node);
    std::fs::write(&hard_state_path, backup).unwrap();
    let expected = Corruption {
        path: hard_state_path,
        offset: 0,
        index: Some(1),
        kind: CorruptionKind::TermAheadOfHardState {
            entry_term: 5,
            hard_state_term: 1,
        },
    };
    let open = || DurableControlPlane::open(dir.path(), me, Options::default());
    assert_refused(dir.path(), open, &expected);
}

#[test]
fn open_record_epoch_ahead_of_restored_hard_state_is_corruption() {
    // Goal: a record written after a truncation the hard state does not
    // record (its log epoch is above the hard state's) is reported as what
    // it is — a stale hard state, typed, at the hard state, naming the
    // index and both epochs — not as a checksum failure of a record whose
    // checksum holds. Method: a replica takes three term-1 entries; its
    // hard-state file is copied away; a term-2 leader replaces index 1 (a
    // truncation: epoch 0 -> 1); the old copy is restored and the directory
    // opened and inspected.
    use cpwal::{AppendEntriesRequest, ControlPlaneIndex, ControlPlaneTerm, LogEntry};
    let dir = tempfile::tempdir().unwrap();
    let me = voter("CN=stale");
    let admit = |s: &str| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(s)));
    let entry = |index, term, name: &str| LogEntry {
        index: ControlPlaneIndex(index),
        term: ControlPlaneTerm(term),
        entry: admit(name),
    };
    let request = |term, leader: &str, prev: Option<u64>, entries| AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: voter(leader),
        prev_log_index: prev.map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(1),
        entries,
        leader_commit: None,
    };
    let open = || ReplicaControlPlane::open(dir.path(), me.clone(), Options::default());
    let mut node = ReplicaControlPlane::create(dir.path(), me.clone(), Options::default()).unwrap();
    let first = (0..3).map(|i| entry(i, 1, "CN=a")).collect();
    node.append_entries(&request(1, "CN=l1", None, first))
        .unwrap();
    let hard_state_path = dir.path().join(HARD_STATE_FILE_NAME);
    let backup = std::fs::read(&hard_state_path).unwrap();
    let replacement = vec![entry(1, 2, "CN=b")];
    node.append_entries(&request(2, "CN=l2", Some(0), replacement))
        .unwrap();
    drop(node);
    std::fs::write(&hard_state_path, backup).unwrap();
    let expected = Corruption {
        path: hard_state_path,
        offset: 0,
        index: Some(1),
        kind: CorruptionKind::EpochAheadOfHardState {
            record_epoch: 1,
            hard_state_epoch: 0,
        },
    };
    assert_refused(dir.path(), open, &expected);
}
