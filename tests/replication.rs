//! Replication on real files: the follower's AppendEntries rules, the
//! multi-node leader (uncommitted appends, `advance_commit`), the Raft
//! paper's figure-7 and figure-8 scenarios, and reopen-after-each-step checks.

use cpwal::{
    AppendEntriesRequest, AppendOutcome, ApplyOutcome, ClusterVoterIdentity, ControlPlaneEntry,
    ControlPlaneIndex, ControlPlaneTerm, DurableControlPlane, Error, LogEntry, MembershipChange,
    Options, OwnershipTransition, PeerBatch, ReplicaControlPlane, ReplicationError,
};
use std::path::Path;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn small_segments() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn create_replica(dir: &Path, name: &str) -> ReplicaControlPlane {
    ReplicaControlPlane::create(dir, voter(name), small_segments()).unwrap()
}

fn open_replica(dir: &Path, name: &str) -> ReplicaControlPlane {
    ReplicaControlPlane::open(dir, voter(name), small_segments()).unwrap()
}

/// A distinct entry per (index, term), so a wrong entry cannot pass for a
/// right one.
fn entry_for(index: u64, term: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{index}"),
        new_owner: voter(&format!("CN=owner-{term}")),
        ownership_epoch: term * 1000 + index,
    })
}

fn log_entry(index: u64, term: u64) -> LogEntry {
    LogEntry {
        index: ControlPlaneIndex(index),
        term: ControlPlaneTerm(term),
        entry: entry_for(index, term),
    }
}

fn leader_of(term: u64) -> ClusterVoterIdentity {
    voter(&format!("CN=leader-{term}"))
}

/// A request from the leader of `term` carrying entries at `first..` with the
/// given terms, after `prev` with `prev_term`.
fn request(
    term: u64,
    prev: Option<u64>,
    prev_term: u64,
    terms: &[u64],
    leader_commit: Option<u64>,
) -> AppendEntriesRequest {
    let first = prev.map_or(0, |p| p + 1);
    AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: leader_of(term),
        prev_log_index: prev.map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(prev_term),
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, &t)| log_entry(first + k as u64, t))
            .collect(),
        leader_commit: leader_commit.map(ControlPlaneIndex),
    }
}

/// Builds a follower log with exactly `terms` (one request per run of equal
/// terms, each from the leader of that term), committing the first
/// `committed` entries.
fn build_log(node: &mut ReplicaControlPlane, terms: &[u64], committed: u64) {
    let mut at = 0usize;
    while at < terms.len() {
        let term = terms[at];
        let run = terms[at..].iter().take_while(|&&t| t == term).count();
        let prev = (at as u64).checked_sub(1);
        let prev_term = prev.map_or(0, |p| terms[p as usize]);
        let commit = committed.min((at + run) as u64).checked_sub(1);
        let reply = node
            .append_entries(&request(
                term,
                prev,
                prev_term,
                &terms[at..at + run],
                commit,
            ))
            .unwrap();
        assert!(matches!(reply.outcome, AppendOutcome::Accepted { .. }));
        at += run;
    }
}

/// The terms of every entry in the node's log.
fn terms_of(node: &ReplicaControlPlane) -> Vec<u64> {
    let end = node.last_index().map_or(0, |i| i.0 + 1);
    (node.first_index().0..end)
        .map(|i| {
            let entry = node.read(ControlPlaneIndex(i)).unwrap();
            assert_eq!(entry.entry, entry_for(i, entry.term.0), "entry {i} altered");
            entry.term.0
        })
        .collect()
}

/// Runs Raft's leader loop against one follower until its log matches the
/// leader's, using the follower's conflict hints; returns the rounds used.
fn replicate(leader: &ReplicaControlPlane, follower: &mut ReplicaControlPlane) -> usize {
    let mut next = leader.last_index().map_or(0, |i| i.0 + 1);
    for round in 1..=64 {
        let PeerBatch::Entries {
            prev_log_index,
            prev_log_term,
            entries,
        } = leader
            .entries_for_peer(ControlPlaneIndex(next), usize::MAX)
            .unwrap()
        else {
            panic!("no compaction in this test");
        };
        let request = AppendEntriesRequest {
            term: leader.current_term(),
            leader: leader.identity().clone(),
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: leader.commit_index(),
        };
        let reply = follower.append_entries(&request).unwrap();
        match reply.outcome {
            AppendOutcome::Accepted { .. } => return round,
            AppendOutcome::Mismatch(hint) => {
                next = match hint.conflict_term {
                    None => hint.first_index.0,
                    Some(term) => last_index_of_term(leader, term.0)
                        .map_or(hint.first_index.0, |last| last + 1),
                };
            }
            AppendOutcome::StaleTerm => panic!("the leader's term is current"),
        }
    }
    panic!("replication did not converge");
}

fn last_index_of_term(node: &ReplicaControlPlane, term: u64) -> Option<u64> {
    let end = node.last_index().map_or(0, |i| i.0 + 1);
    (0..end)
        .rev()
        .find(|&i| node.term_at(ControlPlaneIndex(i)).unwrap() == ControlPlaneTerm(term))
}

/// A replica that won `term` (its own vote, and a quorum the test counted).
fn elect(node: &mut ReplicaControlPlane, term: u64) {
    while node.current_term().0 + 1 < term {
        node.observe_term(ControlPlaneTerm(node.current_term().0 + 1))
            .unwrap();
    }
    node.start_election().unwrap();
    assert_eq!(node.current_term(), ControlPlaneTerm(term));
    assert!(!node.is_leader(), "a replica is only a candidate");
    node.become_leader(ControlPlaneTerm(term)).unwrap();
    assert!(node.is_leader());
}

const FIGURE_7_LEADER: [u64; 10] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];

#[test]
fn append_entries_repairs_figure_7_followers() {
    // Goal: the term-8 leader of the Raft paper's figure 7 brings each
    // divergent follower (a)-(f) to exactly its log, truncating conflicting
    // suffixes, and the result survives a reopen. Method: build each
    // follower's log through AppendEntries from past leaders, run the leader
    // loop with the conflict hints, compare, reopen, compare again.
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = create_replica(leader_dir.path(), "CN=leader-8");
    build_log(&mut leader, &FIGURE_7_LEADER, 3);
    elect(&mut leader, 8);
    leader
        .append_uncommitted(&entry_for(10, 8))
        .expect("the leader's own term-8 entry");
    let mut expected = FIGURE_7_LEADER.to_vec();
    expected.push(8);
    for (case, terms) in followers.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut follower = create_replica(dir.path(), "CN=follower");
        build_log(&mut follower, terms, 3);
        let rounds = replicate(&leader, &mut follower);
        assert!(rounds <= 4, "case {case}: {rounds} rounds");
        assert_eq!(terms_of(&follower), expected, "case {case}");
        drop(follower);
        let follower = open_replica(dir.path(), "CN=follower");
        assert_eq!(terms_of(&follower), expected, "case {case} after reopen");
        assert_eq!(follower.current_term(), ControlPlaneTerm(8));
        assert_eq!(follower.commit_index(), Some(ControlPlaneIndex(2)));
    }
}

#[test]
fn advance_commit_follows_figure_8() {
    // Goal: Raft's figure 8 — a leader must not commit an older-term entry by
    // counting replicas, and the entry that was not committed may then be
    // overwritten; once the leader commits an entry of its own term, every
    // entry before it is committed too. Method: five replicas on real files
    // replay the figure's steps (a)-(e) with the leader loop.
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(k, d)| create_replica(d.path(), &format!("CN=s{}", k + 1)))
        .collect();
    // (a) S1 leads term 2 and has index 1 (term 2) only on S1 and S2.
    for node in nodes.iter_mut() {
        build_log(node, &[1], 1);
    }
    elect(&mut nodes[0], 2);
    nodes[0].append_uncommitted(&entry_for(1, 2)).unwrap();
    let (s1, rest) = nodes.split_at_mut(1);
    replicate(&s1[0], &mut rest[0]);
    // (b) S5 leads term 3 with votes of S3, S4, S5 and writes index 1 (term 3).
    elect(&mut nodes[4], 3);
    nodes[4].append_uncommitted(&entry_for(1, 3)).unwrap();
    // (c) S1 leads term 4 and copies index 1 (term 2) to S3: a majority holds
    // it, but it is of an older term and must not be committed this way.
    elect(&mut nodes[0], 4);
    let (s1, rest) = nodes.split_at_mut(1);
    replicate(&s1[0], &mut rest[1]);
    assert_eq!(terms_of(&rest[1]), vec![1, 2]);
    nodes[0].append_uncommitted(&entry_for(2, 4)).unwrap();
    let refused = nodes[0].advance_commit(ControlPlaneIndex(1)).unwrap_err();
    assert!(matches!(
        refused,
        Error::Replication(ReplicationError::CommitOfOlderTerm { index: 1, .. })
    ));
    assert_eq!(nodes[0].commit_index(), Some(ControlPlaneIndex(0)));
    // (d) S5 wins term 5 (S2, S3, S4 vote) and overwrites index 1 everywhere.
    elect(&mut nodes[4], 5);
    let (left, s5) = nodes.split_at_mut(4);
    for follower in left.iter_mut() {
        replicate(&s5[0], follower);
        assert_eq!(terms_of(follower), vec![1, 3]);
    }
    // (e) alternatively S1, in term 4, replicates its term-4 entry to a
    // majority and commits it, which commits index 1 (term 2) with it.
    let dirs_e: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut s1 = create_replica(dirs_e[0].path(), "CN=s1");
    build_log(&mut s1, &[1, 2], 1);
    elect(&mut s1, 4);
    s1.append_uncommitted(&entry_for(2, 4)).unwrap();
    for dir in &dirs_e[1..] {
        let mut follower = create_replica(dir.path(), "CN=peer");
        build_log(&mut follower, &[1, 2], 1);
        replicate(&s1, &mut follower);
    }
    s1.advance_commit(ControlPlaneIndex(2)).unwrap();
    assert_eq!(s1.commit_index(), Some(ControlPlaneIndex(2)));
    assert_eq!(s1.applied_end(), ControlPlaneIndex(3));
    drop(s1);
    let s1 = open_replica(dirs_e[0].path(), "CN=s1");
    assert_eq!(s1.commit_index(), Some(ControlPlaneIndex(2)));
    assert_eq!(s1.catalog().applied_end(), ControlPlaneIndex(3));
}

#[test]
fn append_entries_refuses_stale_term_without_change() {
    // Goal: a request from an older term is refused and changes nothing.
    // Method: adopt term 5, send a term-3 request, compare state and reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    build_log(&mut node, &[1, 5], 0);
    let reply = node
        .append_entries(&request(3, Some(1), 5, &[3], None))
        .unwrap();
    assert_eq!(reply.outcome, AppendOutcome::StaleTerm);
    assert_eq!(reply.term, ControlPlaneTerm(5));
    assert_eq!(terms_of(&node), vec![1, 5]);
    drop(node);
    assert_eq!(terms_of(&open_replica(dir.path(), "CN=f")), vec![1, 5]);
}

#[test]
fn append_entries_adopts_higher_term_durably() {
    // Goal: a higher term is adopted durably with no vote, and its sender
    // recorded as leader, even when the log check fails. Method: vote in
    // term 2, receive a mismatching heartbeat of term 7, reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.start_election().unwrap();
    node.start_election().unwrap();
    let reply = node
        .append_entries(&request(7, Some(4), 6, &[], None))
        .unwrap();
    assert!(matches!(reply.outcome, AppendOutcome::Mismatch(_)));
    assert_eq!(reply.term, ControlPlaneTerm(7));
    assert_eq!(node.leader(), Some(leader_of(7)));
    drop(node);
    let node = open_replica(dir.path(), "CN=f");
    assert_eq!(node.current_term(), ControlPlaneTerm(7));
    assert_eq!(node.durable_vote().voted_for, None);
    assert_eq!(node.leader(), None, "leadership is not durable");
}

#[test]
fn append_entries_hints_conflict_term_and_log_end() {
    // Goal: the mismatch reply tells the leader where to retry. Method: a log
    // 1 1 2 2 2; prev beyond the end gives the log end; prev at a term-2
    // entry with another term gives term 2 and its first index.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    build_log(&mut node, &[1, 1, 2, 2, 2], 0);
    let too_far = node
        .append_entries(&request(3, Some(9), 3, &[], None))
        .unwrap();
    let AppendOutcome::Mismatch(hint) = too_far.outcome else {
        panic!("expected a mismatch, got {too_far:?}");
    };
    assert_eq!(
        (hint.conflict_term, hint.first_index),
        (None, ControlPlaneIndex(5))
    );
    let wrong_term = node
        .append_entries(&request(3, Some(4), 3, &[], None))
        .unwrap();
    let AppendOutcome::Mismatch(hint) = wrong_term.outcome else {
        panic!("expected a mismatch, got {wrong_term:?}");
    };
    assert_eq!(
        (hint.conflict_term, hint.first_index),
        (Some(ControlPlaneTerm(2)), ControlPlaneIndex(2))
    );
    assert_eq!(
        terms_of(&node),
        vec![1, 1, 2, 2, 2],
        "a mismatch writes nothing"
    );
}

#[test]
fn append_entries_replay_is_idempotent() {
    // Goal: a replayed request (same entries) writes nothing new and keeps
    // later entries. Method: append 0..5, replay 0..3, check the log and that
    // no truncation epoch was spent (the records' bytes stay where they were).
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.append_entries(&request(1, None, 0, &[1, 1, 1, 1, 1], None))
        .unwrap();
    let before = std::fs::read(dir.path().join("segment-00000000000000000001")).unwrap();
    let reply = node
        .append_entries(&request(1, None, 0, &[1, 1, 1], Some(2)))
        .unwrap();
    assert_eq!(
        reply.outcome,
        AppendOutcome::Accepted {
            match_index: Some(ControlPlaneIndex(2))
        }
    );
    assert_eq!(terms_of(&node), vec![1; 5]);
    let after = std::fs::read(dir.path().join("segment-00000000000000000001")).unwrap();
    assert_eq!(before, after, "a replay rewrote records");
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(2)));
}

#[test]
fn append_entries_refuses_to_truncate_committed_entries() {
    // Goal: a conflict at a committed index is a typed safety error and the
    // log is untouched (a correct leader never sends one). Method: commit
    // 0..3 in term 1, then a term-2 leader claims index 1 has term 2.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    build_log(&mut node, &[1, 1, 1], 3);
    let error = node
        .append_entries(&request(2, Some(0), 1, &[2], None))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::Replication(ReplicationError::TruncatesCommitted {
            index: 1,
            commit_end: 3
        })
    ));
    assert!(
        node.failure().is_none(),
        "a refusal is not a storage failure"
    );
    assert_eq!(terms_of(&node), vec![1, 1, 1]);
}

#[test]
fn append_entries_refuses_second_leader_in_a_term() {
    // Goal: two leaders in one term are a safety violation, refused typed.
    // Method: follow leader A in term 3, then receive from B in term 3.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.append_entries(&request(3, None, 0, &[3], None))
        .unwrap();
    let mut other = request(3, Some(0), 3, &[], None);
    other.leader = voter("CN=impostor");
    assert!(matches!(
        node.append_entries(&other).unwrap_err(),
        Error::Replication(ReplicationError::ConflictingLeader { term: 3, .. })
    ));
}

#[test]
fn append_entries_commit_is_min_of_leader_commit_and_last_new_entry() {
    // Goal: commit advances to min(leader commit, last new entry), never
    // decreases, and survives reopen even when no record carried it.
    // Method: leader commit 9 with entries through 2; then a heartbeat with
    // prev 4 (after appending 3..5) and commit 4; then commit 1 (no regress);
    // reopen after each step.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.append_entries(&request(1, None, 0, &[1, 1, 1], Some(9)))
        .unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(2)));
    drop(node);
    let mut node = open_replica(dir.path(), "CN=f");
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(2)));
    node.append_entries(&request(1, Some(2), 1, &[1, 1], None))
        .unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(2)));
    node.append_entries(&request(1, Some(4), 1, &[], Some(4)))
        .unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(4)));
    drop(node);
    let mut node = open_replica(dir.path(), "CN=f");
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(4)));
    node.append_entries(&request(1, Some(4), 1, &[], Some(1)))
        .unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(4)));
    assert_eq!(node.applied_end(), ControlPlaneIndex(5));
}

#[test]
fn append_entries_refuses_malformed_requests() {
    // Goal: entries not consecutive after prev, or with terms above the
    // leader's, are refused before anything changes. Method: two bad
    // requests on an empty replica, then check term and log.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    let mut gap = request(2, None, 0, &[1, 1], None);
    gap.entries[1].index = ControlPlaneIndex(5);
    assert!(matches!(
        node.append_entries(&gap),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        node.append_entries(&request(2, None, 0, &[3], None)),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(node.current_term(), ControlPlaneTerm(0));
    assert_eq!(node.last_index(), None);
}

#[test]
fn truncation_then_reopen_keeps_only_the_new_suffix() {
    // Goal: a conflict truncation is durable (G4): after a reopen the removed
    // entries never come back, across segment boundaries. Method: 200
    // entries of term 1 (many 4 KiB segments), a term-2 leader overwrites
    // from index 50, reopen, check every entry.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.append_entries(&request(1, None, 0, &[1; 200], Some(9)))
        .unwrap();
    node.append_entries(&request(2, Some(49), 1, &[2, 2], None))
        .unwrap();
    let mut expected = vec![1; 50];
    expected.extend([2, 2]);
    assert_eq!(terms_of(&node), expected);
    drop(node);
    let node = open_replica(dir.path(), "CN=f");
    assert_eq!(terms_of(&node), expected);
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(9)));
}

#[test]
fn leader_appends_are_uncommitted_until_advance_commit() {
    // Goal: a replica leader's append is durable but not committed; commit
    // moves only through advance_commit, never past the log, never back, and
    // is durable; the catalog applies exactly the committed entries. Method:
    // elect, append 3 admits, check commit/catalog, advance, reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=l");
    assert_eq!(node.current_term(), ControlPlaneTerm(0));
    assert!(!node.is_leader());
    elect(&mut node, 1);
    let admit = |n| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(n)));
    let first = node.append_uncommitted(&admit("CN=a")).unwrap();
    node.append_uncommitted_batch(&[admit("CN=b"), admit("CN=c")])
        .unwrap();
    assert_eq!(first, ControlPlaneIndex(0));
    assert_eq!(node.commit_index(), None);
    assert!(node.catalog().members().is_empty());
    assert!(matches!(
        node.advance_commit(ControlPlaneIndex(3)),
        Err(Error::InvalidInput(_))
    ));
    drop(node);
    let mut node = open_replica(dir.path(), "CN=l");
    assert_eq!(node.commit_index(), None, "uncommitted after reopen");
    assert!(!node.is_leader(), "a reopened replica follows");
    assert!(matches!(
        node.become_leader(ControlPlaneTerm(1)),
        Ok(()) // it still holds its own vote in term 1
    ));
    node.advance_commit(ControlPlaneIndex(1)).unwrap();
    node.advance_commit(ControlPlaneIndex(0)).unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(1)));
    assert_eq!(node.catalog().members().len(), 2);
    drop(node);
    let node = open_replica(dir.path(), "CN=l");
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(1)));
    assert_eq!(node.catalog().members().len(), 2);
}

#[test]
fn become_leader_requires_candidacy_in_that_term() {
    // Goal: only a candidate of the current term may become leader (a sole
    // voter has no such step: that does not compile, see the compile_fail
    // doc test on `ControlPlaneNode`). Method: try before and after an
    // election and for a wrong term.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=l");
    assert!(matches!(
        node.become_leader(ControlPlaneTerm(0)),
        Err(Error::Replication(ReplicationError::NotCandidate { .. }))
    ));
    node.start_election().unwrap();
    assert!(node.become_leader(ControlPlaneTerm(2)).is_err());
    node.become_leader(ControlPlaneTerm(1)).unwrap();
    // A sole voter has no `become_leader` at all: a compile_fail doc test
    // on `ControlPlaneNode` shows it.
}

#[test]
fn catalog_applies_committed_entries_and_fences_stale_epochs() {
    // Goal: the engine applies committed entries in order with the catalog
    // rules and rebuilds the same catalog at reopen. Method: a sole voter
    // appends transitions with epochs 2, 1, 3 and an admit; reopen; compare.
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=s"), small_segments()).unwrap();
    let transfer = |owner: &str, epoch| {
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "r".into(),
            new_owner: voter(owner),
            ownership_epoch: epoch,
        })
    };
    for entry in [
        transfer("CN=a", 2),
        transfer("CN=b", 1),
        transfer("CN=c", 3),
        ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter("CN=a"))),
    ] {
        node.try_append(&entry).unwrap();
    }
    let owner = node.catalog().owner_of("r").unwrap().clone();
    assert_eq!((owner.owner, owner.epoch), (voter("CN=c"), 3));
    assert_eq!(node.catalog().refused_count(), 1);
    assert_eq!(node.applied_end(), ControlPlaneIndex(4));
    let catalog = node.catalog().clone();
    drop(node);
    let node = DurableControlPlane::open(dir.path(), voter("CN=s"), small_segments()).unwrap();
    assert_eq!(node.catalog(), &catalog);
    let mut fresh = cpwal::ControlPlaneCatalog::new();
    assert_eq!(
        fresh
            .apply(ControlPlaneIndex(0), &transfer("CN=a", 2))
            .unwrap(),
        ApplyOutcome::OwnershipTransferred { previous: None }
    );
}

#[test]
fn entries_respect_the_byte_budget() {
    // Goal: range reads stop at the byte budget but always return one entry.
    // Method: 10 entries; budget 0 gives 1; a large budget gives all; the
    // range is capped at the log end.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    node.append_entries(&request(1, None, 0, &[1; 10], None))
        .unwrap();
    let one = node
        .entries(ControlPlaneIndex(3), ControlPlaneIndex(10), 0)
        .unwrap();
    assert_eq!(one, vec![log_entry(3, 1)]);
    let all = node
        .entries(ControlPlaneIndex(0), ControlPlaneIndex(99), usize::MAX)
        .unwrap();
    assert_eq!(all.len(), 10);
    let size = cpwal::codec::encoded_entry(&entry_for(0, 1)).len();
    let some = node
        .entries(ControlPlaneIndex(0), ControlPlaneIndex(10), 3 * size + 2)
        .unwrap();
    assert_eq!(some.len(), 3);
}

#[test]
fn append_entries_never_commits_past_what_the_leader_vouched_for() {
    // Goal: commit stops at the last entry the request proved to match, not
    // at the end of a longer log whose tail may still conflict (Raft's
    // min(leaderCommit, index of last new entry)). Method: a follower holds
    // five uncommitted term-1 entries; a term-2 leader's heartbeat matches
    // through index 1 and claims commit 9; then its entry at 2 conflicts.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create_replica(dir.path(), "CN=f");
    build_log(&mut node, &[1, 1, 1, 1, 1], 0);
    node.append_entries(&request(2, Some(1), 1, &[], Some(9)))
        .unwrap();
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(1)));
    node.append_entries(&request(2, Some(1), 1, &[2], Some(9)))
        .unwrap();
    assert_eq!(terms_of(&node), vec![1, 1, 2]);
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(2)));
}
