//! Numbers from the network: terms and indexes a peer (or a buggy caller)
//! sends can hold any `u64`. None may panic, wrap, or change state; each is
//! refused with a typed `InvalidInput` that says what was out of range, and
//! the files on disk are left byte for byte as they were.
//!
//! The rule (see `cpwal::limits`): a node holds terms up to `MAX_TERM` and
//! entries at indexes up to `MAX_INDEX`; a larger term or an index no log
//! can hold is refused before anything is changed, and a node at `MAX_TERM`
//! refuses to start an election instead of wrapping to term 0.

use std::collections::BTreeMap;
use std::path::Path;

use cpwal::limits::{MAX_INDEX, MAX_TERM};
use cpwal::{
    AppendEntriesRequest, ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex,
    ControlPlaneNode, ControlPlaneTerm, DurableControlPlane, Error, InstallSnapshotRequest,
    InvalidInput, LogEntry, MembershipChange, Options, ReplicaControlPlane, Role, VoteRequest,
};
use proptest::prelude::*;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=m{n}"))))
}

/// Every file of `directory` and its bytes.
fn files(directory: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// A replica at term 2 holding indexes 0..3 (terms 1, 1, 2), 0..2 committed.
fn replica_with_log(directory: &Path) -> ReplicaControlPlane {
    let mut node = ReplicaControlPlane::create(directory, voter("CN=f"), options()).unwrap();
    let entries = [(0, 1), (1, 1), (2, 2)]
        .into_iter()
        .map(|(index, term)| LogEntry {
            index: ControlPlaneIndex(index),
            term: ControlPlaneTerm(term),
            entry: admit(index),
        })
        .collect();
    let request = AppendEntriesRequest {
        term: ControlPlaneTerm(2),
        leader: voter("CN=leader"),
        prev_log_index: None,
        prev_log_term: ControlPlaneTerm::GENESIS,
        entries,
        leader_commit: Some(ControlPlaneIndex(1)),
    };
    node.append_entries(&request).unwrap();
    node
}

/// What a caller can see of a node, to show a refusal changed nothing.
fn visible_state<R: Role>(node: &ControlPlaneNode<R>) -> impl PartialEq + std::fmt::Debug {
    (
        node.durable_vote(),
        node.leader(),
        node.commit_index(),
        node.last_index(),
        node.first_index(),
    )
}

/// Asserts `result` is the typed refusal `expected` names and that the
/// node's files and visible state are what they were before the call.
fn assert_refused<T: std::fmt::Debug>(
    result: cpwal::Result<T>,
    expected: fn(&InvalidInput) -> bool,
    directory: &Path,
    before: &BTreeMap<String, Vec<u8>>,
) {
    match &result {
        Err(Error::InvalidInput(input)) if expected(input) => {}
        other => panic!("expected a typed refusal, got {other:?}"),
    }
    assert!(files(directory) == *before, "a refused call changed a file");
}

fn is_term(input: &InvalidInput) -> bool {
    matches!(input, InvalidInput::Term { .. })
}

fn is_index(input: &InvalidInput) -> bool {
    matches!(input, InvalidInput::Index { .. })
}

#[test]
fn observe_term_beyond_the_term_space_is_refused() {
    // Goal: a term above MAX_TERM (u64::MAX, the classic "-1 as unsigned")
    // is refused and changes nothing; before the fix it was adopted, and
    // the next election panicked (debug) or wrapped the durable term to 0
    // (release). Method: observe u64::MAX and MAX_TERM + 1 on a sole voter,
    // compare files and state, then start an election and reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = DurableControlPlane::create(dir.path(), voter("CN=a"), options()).unwrap();
    let before = files(dir.path());
    let state = visible_state(&node);
    for term in [u64::MAX, MAX_TERM + 1] {
        let observed = node.observe_term(ControlPlaneTerm(term));
        assert_refused(observed, is_term, dir.path(), &before);
    }
    assert_eq!(visible_state(&node), state);
    assert_eq!(node.start_election().unwrap(), ControlPlaneTerm(2));
    drop(node);
    let node = DurableControlPlane::open(dir.path(), voter("CN=a"), options()).unwrap();
    assert_eq!(node.current_term(), ControlPlaneTerm(2));
}

#[test]
fn start_election_at_the_last_term_is_refused_not_wrapped() {
    // Goal: a node that reached MAX_TERM refuses to start an election (no
    // term is left) with a typed error, keeps its durable term, and still
    // reopens. Method: observe MAX_TERM (the highest term a peer may send),
    // start an election, compare the files, reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node = DurableControlPlane::create(dir.path(), voter("CN=a"), options()).unwrap();
    assert!(node.observe_term(ControlPlaneTerm(MAX_TERM)).unwrap());
    let before = files(dir.path());
    let state = visible_state(&node);
    assert_refused(node.start_election(), is_term, dir.path(), &before);
    assert_eq!(visible_state(&node), state);
    drop(node);
    let node = DurableControlPlane::open(dir.path(), voter("CN=a"), options()).unwrap();
    assert_eq!(node.current_term(), ControlPlaneTerm(MAX_TERM));
}

#[test]
fn grant_vote_refuses_out_of_range_terms_and_indexes() {
    // Goal: a vote request with a term above MAX_TERM, or a last log index
    // no log can hold (which panicked in `i + 1`), is refused whole: the
    // term is not adopted and no vote is recorded. Method: send each to a
    // replica with a log, comparing files and state after each.
    let dir = tempfile::tempdir().unwrap();
    let mut node = replica_with_log(dir.path());
    let before = files(dir.path());
    let state = visible_state(&node);
    let request = |term, last_log_index| VoteRequest {
        term: ControlPlaneTerm(term),
        candidate: voter("CN=candidate"),
        last_log_index: Some(ControlPlaneIndex(last_log_index)),
        last_log_term: ControlPlaneTerm(2),
    };
    let refused = node.grant_vote(&request(u64::MAX, 2));
    assert_refused(refused, is_term, dir.path(), &before);
    for index in [u64::MAX, MAX_INDEX + 1] {
        let refused = node.grant_vote(&request(3, index));
        assert_refused(refused, is_index, dir.path(), &before);
    }
    assert_eq!(visible_state(&node), state);
    // The largest index a log can hold is a plain, granted request.
    assert!(
        node.grant_vote(&request(3, MAX_INDEX))
            .unwrap()
            .vote_granted
    );
}

#[test]
fn append_entries_refuses_out_of_range_indexes_and_terms() {
    // Goal: `prev_log_index` or `leader_commit` at u64::MAX (both panicked
    // in `i + 1`), entries whose indexes run past MAX_INDEX, and a leader
    // term above MAX_TERM are refused before the leader's term is adopted.
    // Method: one request per field from a leader of a higher term, files
    // and state compared after each.
    let dir = tempfile::tempdir().unwrap();
    let mut node = replica_with_log(dir.path());
    let before = files(dir.path());
    let state = visible_state(&node);
    let base = AppendEntriesRequest {
        term: ControlPlaneTerm(3),
        leader: voter("CN=leader-3"),
        prev_log_index: Some(ControlPlaneIndex(2)),
        prev_log_term: ControlPlaneTerm(2),
        entries: Vec::new(),
        leader_commit: Some(ControlPlaneIndex(2)),
    };
    let at_end = |index| LogEntry {
        index: ControlPlaneIndex(index),
        term: ControlPlaneTerm(3),
        entry: admit(index),
    };
    let cases = [
        AppendEntriesRequest {
            prev_log_index: Some(ControlPlaneIndex(u64::MAX)),
            ..base.clone()
        },
        AppendEntriesRequest {
            leader_commit: Some(ControlPlaneIndex(u64::MAX)),
            ..base.clone()
        },
        AppendEntriesRequest {
            prev_log_index: Some(ControlPlaneIndex(MAX_INDEX)),
            entries: vec![at_end(MAX_INDEX + 1)],
            ..base.clone()
        },
    ];
    for request in &cases {
        let refused = node.append_entries(request);
        assert_refused(refused, is_index, dir.path(), &before);
    }
    let stale_leader = AppendEntriesRequest {
        term: ControlPlaneTerm(u64::MAX),
        ..base.clone()
    };
    let refused = node.append_entries(&stale_leader);
    assert_refused(refused, is_term, dir.path(), &before);
    assert_eq!(visible_state(&node), state);
    node.append_entries(&base).unwrap();
}

#[test]
fn install_snapshot_refuses_a_snapshot_from_a_later_term() {
    // Goal: a snapshot whose last term is above the sending leader's term
    // (no honest leader sends it) is refused; installing it made the next
    // open fail with TermAheadOfHardState, wedging the node. Method: a sole
    // voter at term 5 compacts; its snapshot is sent with term 3 to a fresh
    // replica; the replica must refuse, change nothing and reopen.
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader =
        DurableControlPlane::create(leader_dir.path(), voter("CN=l"), options()).unwrap();
    for _ in 0..4 {
        leader.start_election().unwrap();
    }
    for n in 0..5 {
        leader.try_append(&admit(n)).unwrap();
    }
    leader.compact(0).unwrap();
    let snapshot = leader.snapshot_for_peer().unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut node = ReplicaControlPlane::create(dir.path(), voter("CN=f"), options()).unwrap();
    let before = files(dir.path());
    let request = InstallSnapshotRequest {
        term: ControlPlaneTerm(3),
        leader: voter("CN=l"),
        snapshot,
    };
    assert_refused(
        node.install_snapshot(&request),
        is_term,
        dir.path(),
        &before,
    );
    drop(node);
    ReplicaControlPlane::open(dir.path(), voter("CN=f"), options()).unwrap();
}

#[test]
fn term_at_and_reads_at_the_largest_index_do_not_panic() {
    // Goal: reads by index take any u64 (they are how peers' requests are
    // served) and answer NotFound past the log. Method: ask for u64::MAX.
    let dir = tempfile::tempdir().unwrap();
    let node = replica_with_log(dir.path());
    let far = ControlPlaneIndex(u64::MAX);
    assert!(matches!(node.term_at(far), Err(Error::NotFound { .. })));
    assert!(matches!(node.read(far), Err(Error::NotFound { .. })));
    assert!(node.entries(far, far, 1024).unwrap().is_empty());
    assert!(node.entries_for_peer(far, 1024).is_ok());
}

/// A `u64` that is often at an edge: 0..8, near MAX_TERM/MAX_INDEX, near
/// u64::MAX, or anything.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        (MAX_TERM - 2)..=(MAX_TERM + 2),
        (u64::MAX - 2)..=u64::MAX,
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn vote_and_append_requests_with_any_numbers_never_panic(
        vote_term in edge_u64(),
        vote_index in proptest::option::of(edge_u64()),
        vote_last_term in edge_u64(),
        append_term in edge_u64(),
        prev in proptest::option::of(edge_u64()),
        prev_term in edge_u64(),
        first_entry_term in edge_u64(),
        commit in proptest::option::of(edge_u64()),
    ) {
        // Goal: any numbers in a vote or append request give an answer or a
        // typed error, never a panic; a refusal as InvalidInput changes no
        // file and no visible state. Method: one replica per case, a vote
        // request then an append-entries request with arbitrary fields.
        let dir = tempfile::tempdir().unwrap();
        let mut node = replica_with_log(dir.path());
        let before = files(dir.path());
        let state = visible_state(&node);
        let vote = VoteRequest {
            term: ControlPlaneTerm(vote_term),
            candidate: voter("CN=candidate"),
            last_log_index: vote_index.map(ControlPlaneIndex),
            last_log_term: ControlPlaneTerm(vote_last_term),
        };
        if let Err(error) = node.grant_vote(&vote) {
            prop_assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
            prop_assert!(files(dir.path()) == before);
            prop_assert_eq!(visible_state(&node), state);
        }
        let before = files(dir.path());
        let state = visible_state(&node);
        let first = prev.map_or(0, |p| p.wrapping_add(1));
        let request = AppendEntriesRequest {
            term: ControlPlaneTerm(append_term),
            leader: voter("CN=leader-x"),
            prev_log_index: prev.map(ControlPlaneIndex),
            prev_log_term: ControlPlaneTerm(prev_term),
            entries: vec![LogEntry {
                index: ControlPlaneIndex(first),
                term: ControlPlaneTerm(first_entry_term),
                entry: admit(7),
            }],
            leader_commit: commit.map(ControlPlaneIndex),
        };
        match node.append_entries(&request) {
            Ok(_) | Err(Error::Replication(_)) => {}
            Err(Error::InvalidInput(_)) => {
                prop_assert!(files(dir.path()) == before);
                prop_assert_eq!(visible_state(&node), state);
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

/// Rewrites the `T` header at the start of `path` with `change`, then its
/// checksum (over the bytes before `crc_offset`), as a crafted file would.
fn rewrite_header<T: bytemuck::Pod>(path: &Path, crc_offset: usize, change: impl FnOnce(&mut T)) {
    let mut bytes = std::fs::read(path).unwrap();
    let size = std::mem::size_of::<T>();
    let mut header: T = bytemuck::pod_read_unaligned(&bytes[..size]);
    change(&mut header);
    bytes[..size].copy_from_slice(bytemuck::bytes_of(&header));
    let crc = crc32fast::hash(&bytes[..crc_offset]);
    bytes[crc_offset..crc_offset + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn assert_out_of_range(result: cpwal::Result<DurableControlPlane>, field: &str) {
    match result.map(drop) {
        Err(Error::Corruption(c)) => match c.kind {
            cpwal::CorruptionKind::OutOfRange { field: found, .. } => assert_eq!(found, field),
            other => panic!("expected OutOfRange {field}, got {other:?}"),
        },
        other => panic!("expected OutOfRange {field}, got {other:?}"),
    }
}

#[test]
fn open_refuses_numbers_from_disk_that_would_overflow() {
    // Goal: numbers in files that pass their checksums but that cpwal never
    // writes (a crafted or misdirected file) are corruption at open, never
    // a later panic: a segment generation at u64::MAX (the next rollover
    // computed generation + 1), a snapshot ending at u64::MAX (the open
    // restarted the log there, and the next append computed end + 1), a
    // hard-state sequence at u64::MAX (the next save computed sequence + 1).
    // Method: a closed single-segment node; each file rewritten, checksum
    // recomputed, under its matching name; then open.
    use cpwal::format::*;
    let dir = tempfile::tempdir().unwrap();
    let mut node = DurableControlPlane::create(dir.path(), voter("CN=a"), options()).unwrap();
    node.try_append(&admit(0)).unwrap();
    drop(node);
    let first = dir.path().join(segment_file_name(1));
    let last = dir.path().join(segment_file_name(u64::MAX));
    std::fs::rename(&first, &last).unwrap();
    rewrite_header(&last, SEGMENT_HEADER_CRC_OFFSET, |h: &mut SegmentHeader| {
        h.generation = u64::MAX
    });
    assert_out_of_range(
        DurableControlPlane::open(dir.path(), voter("CN=a"), options()),
        "generation",
    );

    let dir = tempfile::tempdir().unwrap();
    let mut node = DurableControlPlane::create(dir.path(), voter("CN=a"), options()).unwrap();
    node.try_append(&admit(0)).unwrap();
    node.compact(0).unwrap();
    drop(node);
    let snapshot = dir.path().join(snapshot_file_name(1));
    let far = dir.path().join(snapshot_file_name(u64::MAX));
    std::fs::rename(&snapshot, &far).unwrap();
    rewrite_header(
        &far,
        SNAPSHOT_HEADER_CRC_OFFSET,
        |h: &mut SnapshotHeader| h.index_end = u64::MAX,
    );
    assert_out_of_range(
        DurableControlPlane::open(dir.path(), voter("CN=a"), options()),
        "index_end",
    );

    let dir = tempfile::tempdir().unwrap();
    drop(DurableControlPlane::create(dir.path(), voter("CN=a"), options()).unwrap());
    let hard_state = dir.path().join(HARD_STATE_FILE_NAME);
    let mut bytes = std::fs::read(&hard_state).unwrap();
    for slot in 0..2 {
        let start = slot * HARD_STATE_SLOT_BYTES as usize;
        let copy = &mut bytes[start..start + HARD_STATE_SLOT_BYTES as usize];
        let mut decoded: HardStateSlot = bytemuck::pod_read_unaligned(copy);
        decoded.sequence = u64::MAX;
        copy.copy_from_slice(bytemuck::bytes_of(&decoded));
        let crc = crc32fast::hash(&copy[..HARD_STATE_CRC_OFFSET]);
        copy[HARD_STATE_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&hard_state, bytes).unwrap();
    let mut opened = DurableControlPlane::open(dir.path(), voter("CN=a"), options());
    if let Ok(node) = &mut opened {
        node.start_election().unwrap(); // The old code's panic.
    }
    let kind = opened.unwrap_err().as_corruption().map(|c| c.kind.clone());
    assert_eq!(kind, Some(cpwal::CorruptionKind::HardStateUnreadable));
}
