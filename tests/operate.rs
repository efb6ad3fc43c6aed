//! The operator's library (`cpwal::operate`) on real directories: the
//! best-effort examination of clean, repairable, degraded and damaged
//! directories (the fixtures under `fixtures/v1/`), the catalog at the
//! commit point, backups of live and stopped nodes, restore, and salvage.
//! Every test that reads a directory also checks it was left byte for byte
//! as it was.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpwal::inspect::Inspection;
use cpwal::operate::{
    backup_directory, restore, salvage, Examination, HardStateCopyState, Progress, RestoreOptions,
    SalvageOptions, Verdict, VoteFate,
};
use cpwal::{
    AppendEntriesRequest, AppendOutcome, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    CorruptionKind, DurableControlPlane, DurableVoteState, Error, LogEntry, MembershipChange,
    NodeRole, Options, OwnershipTransition, Replica, ReplicaControlPlane, SharedControlPlane,
    Unsalvageable,
};

fn small_segments() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

#[path = "support/directories.rs"]
mod directories;

use directories::{compacted_directory, files, voter, LATE_ADMITS};

/// The indexes `range` holds, as the reports give them.
fn indexes(range: std::ops::Range<u64>) -> std::ops::Range<ControlPlaneIndex> {
    ControlPlaneIndex(range.start)..ControlPlaneIndex(range.end)
}

/// A copy of fixture `name` in a fresh temporary directory.
fn fixture(name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    directories::copy_fixture(name, copy.path());
    copy
}

/// Salvages `source` into `root/new` without naming node or role.
fn salvage_into(source: &Path, root: &Path) -> cpwal::Result<cpwal::operate::SalvageReport> {
    salvage(source, root.join("new"), &SalvageOptions::default(), &())
}

/// Entry `n` of the damaged fixtures (see `tests/fixtures_damaged.rs`).
fn fixture_entry(n: u64) -> LogEntry {
    LogEntry {
        index: ControlPlaneIndex(n),
        term: ControlPlaneTerm(if n < 12 { 1 } else { 2 }),
        entry: ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: format!("range-{n}-{}", "x".repeat((100 + n * 131 % 800) as usize)),
            new_owner: voter("CN=node-b"),
            ownership_epoch: n + 1,
        }),
    }
}

/// The term and vote every damaged fixture ends with.
fn fixture_vote() -> DurableVoteState {
    DurableVoteState {
        term: ControlPlaneTerm(3),
        voted_for: Some(voter("CN=node-c")),
    }
}

/// What a writer's open refuses `dir` with (on a copy, so nothing of
/// `dir` changes), as it would name it in `dir`.
fn writer_refusal(dir: &Path) -> cpwal::Corruption {
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in files(dir) {
        fs::write(copy.path().join(name), bytes).unwrap();
    }
    match DurableControlPlane::open(copy.path(), voter("CN=node-a"), small_segments()) {
        Ok(_) => panic!("the writer opened {}", dir.display()),
        Err(error) => {
            let mut corruption = error.as_corruption().expect("a corruption").clone();
            corruption.path = dir.join(corruption.path.strip_prefix(copy.path()).unwrap());
            corruption
        }
    }
}

#[test]
fn examine_verdicts_agree_with_the_writer_on_every_fixture() {
    // Goal: one verdict for one directory: the examination calls clean,
    // repairable, degraded or damaged exactly what the writer opens clean,
    // repairs, repairs a hard-state copy of, or refuses (with the writer's
    // own refusal first in the damage list); it reads the intact prefix of
    // a damaged log, term and vote from the valid copy, and changes
    // nothing. Method: every fixture, with its expected readable end.
    let cases = [
        ("basic", Verdict::Clean, 63, Some("A")),
        ("torn-tail", Verdict::Repairable, 23, Some("A")),
        (
            "hardstate-one-copy-damaged",
            Verdict::Degraded,
            24,
            Some("B"),
        ),
        ("bit-flip-last-record", Verdict::Damaged, 23, Some("A")),
        ("zeroed-sector-vouched", Verdict::Damaged, 21, Some("A")),
        ("stale-segment", Verdict::Damaged, 8, Some("A")),
        ("missing-middle-segment", Verdict::Damaged, 6, Some("A")),
        ("truncated-segment", Verdict::Damaged, 4, Some("A")),
        ("hardstate-both-damaged", Verdict::Damaged, 24, None),
        ("foreign-file", Verdict::Clean, 24, Some("A")),
    ];
    for (name, verdict, readable_end, served_by) in cases {
        let dir = fixture(name);
        let before = files(dir.path());
        let examination = Examination::open(dir.path()).unwrap();
        assert_eq!(examination.verdict(), verdict, "{name}");
        assert_eq!(examination.readable(), indexes(0..readable_end), "{name}");
        assert_eq!(examination.served_by().map(|c| c.name), served_by, "{name}");
        if verdict == Verdict::Damaged {
            assert_eq!(
                examination.damage()[0],
                writer_refusal(dir.path()),
                "{name}"
            );
            for n in 0..readable_end {
                let read = examination.read(ControlPlaneIndex(n)).unwrap();
                assert_eq!(read, fixture_entry(n), "{name} entry {n}");
            }
        } else {
            assert!(examination.damage().is_empty(), "{name}");
        }
        let vote = served_by.map(|_| fixture_vote());
        assert_eq!(examination.durable_vote(), vote, "{name}");
        drop(examination);
        assert_eq!(
            files(dir.path()),
            before,
            "{name}: examination changed a byte"
        );
    }
}

#[test]
fn examine_then_the_writer_repairs_what_the_verdict_names() {
    // Goal: "repairable" and "degraded" say what the next writer repairs:
    // after one writable open and close, the same directories examine
    // clean. Method: open and drop a writer on each, examine again.
    for name in ["torn-tail", "hardstate-one-copy-damaged"] {
        let dir = fixture(name);
        let node = DurableControlPlane::open(dir.path(), voter("CN=node-a"), small_segments());
        drop(node.unwrap());
        let examination = Examination::open(dir.path()).unwrap();
        assert_eq!(examination.verdict(), Verdict::Clean, "{name}");
        let copies = examination.hard_state_copies();
        assert!(copies
            .iter()
            .all(|c| matches!(c.state, HardStateCopyState::Current { .. })));
    }
}

#[test]
fn examine_stale_hard_state_copy_is_an_interrupted_update() {
    // Goal: a valid copy older than the other (what a crash between the two
    // copies of an update leaves) is reported as such, repairable, with the
    // newer copy serving. Method: vote twice; put copy B back as it was
    // after the first vote.
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=node-a"), small_segments()).unwrap();
    node.observe_term(ControlPlaneTerm(5)).unwrap();
    let hard_state = dir.path().join(cpwal::format::HARD_STATE_FILE_NAME);
    let older = fs::read(&hard_state).unwrap();
    node.observe_term(ControlPlaneTerm(6)).unwrap();
    drop(node);
    let mut bytes = fs::read(&hard_state).unwrap();
    bytes[1024..].copy_from_slice(&older[1024..]);
    fs::write(&hard_state, bytes).unwrap();
    let examination = Examination::open(dir.path()).unwrap();
    assert_eq!(examination.verdict(), Verdict::Repairable);
    let [a, b] = examination.hard_state_copies();
    assert!(
        matches!(a.state, HardStateCopyState::Current { .. }),
        "{a:?}"
    );
    assert!(matches!(b.state, HardStateCopyState::Stale { .. }), "{b:?}");
    assert_eq!(
        examination.durable_vote().unwrap().term,
        ControlPlaneTerm(6)
    );
}

#[test]
fn examine_hard_state_deleted_beside_segments_is_the_writers_corruption() {
    // Goal: one verdict: segments without a hard state are corruption
    // (HardStateUnreadable) for the writer, for Inspection and for the
    // examination alike, which still reads the whole log. Method: delete
    // `hardstate` from a copy of `basic`.
    let dir = fixture("basic");
    fs::remove_file(dir.path().join(cpwal::format::HARD_STATE_FILE_NAME)).unwrap();
    let refusal = writer_refusal(dir.path());
    assert_eq!(refusal.kind, CorruptionKind::HardStateUnreadable);
    let inspected = Inspection::open(dir.path()).unwrap_err();
    assert_eq!(inspected.as_corruption(), Some(&refusal));

    let examination = Examination::open(dir.path()).unwrap();
    assert_eq!(examination.verdict(), Verdict::Damaged);
    assert_eq!(examination.damage()[0], refusal);
    assert_eq!(examination.readable(), indexes(0..63));
    assert_eq!(examination.node(), None);
    // A directory with neither is not a data directory at all.
    let empty = tempfile::tempdir().unwrap();
    let error = Examination::open(empty.path()).unwrap_err();
    assert!(
        matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
}

#[test]
fn catalog_is_the_live_nodes_at_the_commit_point() {
    // Goal: the catalog view of a compacted directory (the snapshot, then
    // the committed log) is exactly the catalog the live node held: every
    // member, range owner and epoch, leader term. Method: compare with
    // `DurableControlPlane::catalog()` taken before the node closed.
    let root = tempfile::tempdir().unwrap();
    let (dir, live) = compacted_directory(root.path());
    let examination = Examination::open(&dir).unwrap();
    let view = examination.catalog().unwrap();
    assert_eq!(view.catalog, live);
    assert_eq!(view.snapshot_index_end, Some(ControlPlaneIndex(120)));
    assert_eq!(view.commit_end, live.applied_end());
    assert!(live.leader_history().len() == 40 && live.range_count() == 8);
}

#[test]
fn catalog_of_a_replica_stops_at_the_commit_point() {
    // Goal: entries a replica holds but that are not committed are not in
    // the catalog. Method: a replica with 6 entries of which 4 committed.
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        ReplicaControlPlane::create(dir.path(), voter("CN=f"), small_segments()).unwrap();
    let entries = (0..6)
        .map(|i| LogEntry {
            index: ControlPlaneIndex(i),
            term: ControlPlaneTerm(1),
            entry: ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!(
                "CN=m{i}"
            )))),
        })
        .collect();
    let reply = node
        .append_entries(&AppendEntriesRequest {
            term: ControlPlaneTerm(1),
            leader: voter("CN=leader"),
            prev_log_index: None,
            prev_log_term: ControlPlaneTerm(0),
            entries,
            leader_commit: Some(ControlPlaneIndex(3)),
        })
        .unwrap();
    assert!(matches!(reply.outcome, AppendOutcome::Accepted { .. }));
    drop(node);
    let view = Examination::open(dir.path()).unwrap().catalog().unwrap();
    assert_eq!(view.catalog.applied_end(), ControlPlaneIndex(4));
    assert_eq!(view.catalog.members().len(), 4);
}

/// Entry `n` of the live-backup test: distinct per index.
fn numbered_entry(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{n}"),
        new_owner: voter("CN=owner"),
        ownership_epoch: n + 1,
    })
}

/// A progress callback that, the first time it is called (the copy is
/// under way, without the engine lock), waits until the appender thread
/// acknowledges one more entry.
struct WaitForAnAppend {
    acknowledged: Arc<AtomicU64>,
    saw_append: AtomicBool,
    called: AtomicBool,
}

impl Progress for WaitForAnAppend {
    fn update(&self, _done: u64, _total: u64) {
        if self.called.swap(true, Ordering::SeqCst) {
            return;
        }
        let before = self.acknowledged.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.acknowledged.load(Ordering::SeqCst) > before {
                self.saw_append.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn backup_of_a_live_node_holds_every_entry_acknowledged_before_it() {
    // Goal: a backup taken while another thread appends through
    // SharedControlPlane is a state the node durably had: every entry
    // acknowledged before the call is in it, nothing in it was never
    // written, and appends go on while the bytes are copied (the engine
    // lock is not held for the copy). Method: one appender thread writes
    // entry n at index n and publishes how many were acknowledged; the
    // backup's progress callback waits for one more acknowledgement during
    // the copy; the backup is restored and opened, and read entry by entry.
    let root = tempfile::tempdir().unwrap();
    let options = Options::default().with_segment_size_bytes(64 << 10);
    let node =
        DurableControlPlane::create(root.path().join("live"), voter("CN=live"), options.clone());
    let shared = SharedControlPlane::new(node.unwrap());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (shared, acknowledged, stop) = (shared.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let index = shared.try_append(&numbered_entry(n)).unwrap().index;
                assert_eq!(index, ControlPlaneIndex(n));
                n += 1;
                acknowledged.store(n, Ordering::SeqCst);
            }
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 2000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let progress = WaitForAnAppend {
        acknowledged: acknowledged.clone(),
        saw_append: AtomicBool::new(false),
        called: AtomicBool::new(false),
    };
    let acknowledged_before = acknowledged.load(Ordering::SeqCst);
    let report = shared
        .backup_with_progress(root.path().join("backup"), &progress)
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    appender.join().unwrap();
    let written = acknowledged.load(Ordering::SeqCst);
    assert!(
        progress.saw_append.load(Ordering::SeqCst),
        "appends stalled during the copy"
    );
    assert!(report.segments > 1, "{report:?}");
    assert!(
        report.end_index.0 >= acknowledged_before,
        "{report:?} {acknowledged_before}"
    );
    assert!(report.end_index.0 <= written, "{report:?} {written}");

    let restored = root.path().join("restored");
    restore(
        &report.destination,
        &restored,
        &RestoreOptions::new(voter("CN=live")),
        &(),
    )
    .unwrap();
    let node = DurableControlPlane::open(&restored, voter("CN=live"), options).unwrap();
    assert_eq!(
        node.last_index(),
        Some(ControlPlaneIndex(report.end_index.0 - 1))
    );
    assert_eq!(node.commit_index(), node.last_index());
    for n in 0..report.end_index.0 {
        let read = node.read(ControlPlaneIndex(n)).unwrap();
        assert_eq!(read.entry, numbered_entry(n), "entry {n}");
    }
}

/// An AppendEntries from the leader of `term` with entries of that term at
/// `first..first + count`, after `first - 1` of term `prev_term`.
fn leader_request(
    term: u64,
    first: u64,
    count: u64,
    prev_term: u64,
    commit: u64,
) -> AppendEntriesRequest {
    AppendEntriesRequest {
        term: ControlPlaneTerm(term),
        leader: voter(&format!("CN=leader-{term}")),
        prev_log_index: first.checked_sub(1).map(ControlPlaneIndex),
        prev_log_term: ControlPlaneTerm(prev_term),
        entries: (first..first + count)
            .map(|i| LogEntry {
                index: ControlPlaneIndex(i),
                term: ControlPlaneTerm(term),
                entry: numbered_entry(i * 10 + term),
            })
            .collect(),
        leader_commit: Some(ControlPlaneIndex(commit)),
    }
}

/// Truncates the replica's uncommitted tail (a leader of term 2 replacing
/// indexes 95..) the first time the copy reports progress.
struct TruncateDuringTheCopy {
    shared: SharedControlPlane<Replica>,
    truncated: AtomicBool,
}

impl Progress for TruncateDuringTheCopy {
    fn update(&self, _done: u64, _total: u64) {
        if self.truncated.swap(true, Ordering::SeqCst) {
            return;
        }
        let reply = self
            .shared
            .with_engine(|engine| engine.append_entries(&leader_request(2, 95, 3, 1, 94)))
            .unwrap();
        assert!(matches!(reply.outcome, AppendOutcome::Accepted { .. }));
    }
}

#[test]
fn backup_starts_over_when_a_truncation_races_the_copy() {
    // Goal: a suffix truncation while the bytes are copied (it zeroes and
    // rewrites the tail the copy is reading) never yields a mix of two
    // states: the backup notices the truncation epoch moved and copies
    // again, and holds the log after the truncation. Method: a replica with
    // 100 entries of term 1 (90 committed) over several segments, behind a
    // SharedControlPlane; the first progress report of the copy makes a
    // term-2 leader replace indexes 95..; the backup must succeed and show
    // term 2 from index 95.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("replica");
    let mut node = ReplicaControlPlane::create(&dir, voter("CN=f"), small_segments()).unwrap();
    node.append_entries(&leader_request(1, 0, 100, 0, 89))
        .unwrap();
    let shared = SharedControlPlane::new(node);
    let progress = TruncateDuringTheCopy {
        shared: shared.clone(),
        truncated: AtomicBool::new(false),
    };
    let report = shared
        .backup_with_progress(root.path().join("backup"), &progress)
        .unwrap();
    assert!(progress.truncated.load(Ordering::SeqCst));
    assert_eq!(report.end_index, ControlPlaneIndex(98));
    let copy = Examination::open(&report.destination).unwrap();
    assert_eq!(copy.verdict(), Verdict::Clean);
    assert_eq!(
        copy.read(ControlPlaneIndex(94)).unwrap().term,
        ControlPlaneTerm(1)
    );
    assert_eq!(
        copy.read(ControlPlaneIndex(95)).unwrap().term,
        ControlPlaneTerm(2)
    );
}

#[test]
fn backup_of_a_stopped_directory_leaves_out_the_torn_tail() {
    // Goal: the CLI's form backs up what a reopened node would serve: the
    // torn tail (never acknowledged) is left out and reported, the copy is
    // clean, the source untouched. Method: back up the torn-tail fixture.
    let dir = fixture("torn-tail");
    let before = files(dir.path());
    let root = tempfile::tempdir().unwrap();
    let report = backup_directory(dir.path(), root.path().join("copy"), &()).unwrap();
    assert_eq!((report.first_index.0, report.end_index.0), (0, 23));
    assert_eq!(
        report.left_out.torn_tail.as_ref().map(|t| t.index),
        Some(ControlPlaneIndex(23))
    );
    assert_eq!(report.vote, fixture_vote());
    let copy = Examination::open(&report.destination).unwrap();
    assert_eq!(copy.verdict(), Verdict::Clean);
    assert_eq!(copy.read(ControlPlaneIndex(22)).unwrap(), fixture_entry(22));
    assert_eq!(files(dir.path()), before);
}

#[test]
fn backup_refuses_a_damaged_source_and_an_occupied_destination() {
    // Goal: backup copies only what a writer would open, and writes only
    // into a new or empty directory, leaving nothing behind when it
    // refuses. Method: a damaged fixture; then a destination holding a file.
    let root = tempfile::tempdir().unwrap();
    let damaged = fixture("bit-flip-last-record");
    let error = backup_directory(damaged.path(), root.path().join("copy"), &()).unwrap_err();
    assert!(error.as_corruption().is_some(), "{error:?}");
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "left something behind"
    );
    let occupied = root.path().join("occupied");
    fs::create_dir(&occupied).unwrap();
    fs::write(occupied.join("keep"), b"mine").unwrap();
    let clean = fixture("basic");
    let error = backup_directory(clean.path(), &occupied, &()).unwrap_err();
    assert!(
        matches!(error, Error::DestinationNotEmpty { .. }),
        "{error:?}"
    );
    assert_eq!(files(&occupied).len(), 1);
    // An empty directory is replaced; a staging leftover of an interrupted
    // run into it is removed first.
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let leftover = root.path().join(".empty.cpwal-partial");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("segment-00000000000000000001"), b"half").unwrap();
    backup_directory(clean.path(), &empty, &()).unwrap();
    assert!(!leftover.exists());
    assert_eq!(Examination::open(&empty).unwrap().verdict(), Verdict::Clean);
}

#[test]
fn restore_refuses_another_node_or_role_unless_allowed() {
    // Goal: restore checks the backup is the node and role it is restored
    // for, creates nothing when it refuses, and when told to, rewrites the
    // identity (clearing the vote, which was the other node's) or the
    // role, so the directory opens as asked. Method: a backup of node-a (a
    // sole voter) restored as node-b and as a replica.
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");
    backup_directory(fixture("basic").path(), &backup, &()).unwrap();
    let target = root.path().join("target");
    let as_b = RestoreOptions::new(voter("CN=node-b"));
    let error = restore(&backup, &target, &as_b, &()).unwrap_err();
    assert!(matches!(error, Error::IdentityMismatch { .. }), "{error:?}");
    let as_replica = RestoreOptions {
        role: Some(NodeRole::Replica),
        ..RestoreOptions::new(voter("CN=node-a"))
    };
    let error = restore(&backup, &target, &as_replica, &()).unwrap_err();
    assert!(matches!(error, Error::RoleMismatch { .. }), "{error:?}");
    assert!(!target.exists());

    let report = restore(
        &backup,
        &target,
        &RestoreOptions {
            allow_other_node: true,
            ..as_b
        },
        &(),
    )
    .unwrap();
    assert_eq!(report.node_changed_from, Some(voter("CN=node-a")));
    let node = DurableControlPlane::open(&target, voter("CN=node-b"), Options::default()).unwrap();
    assert_eq!(node.durable_vote().voted_for, None);
    assert_eq!(node.durable_vote().term, ControlPlaneTerm(3));
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(62)));
    drop(node);

    let replica = root.path().join("replica");
    let allowed = RestoreOptions {
        allow_role_change: true,
        ..as_replica
    };
    restore(&backup, &replica, &allowed, &()).unwrap();
    let node = ReplicaControlPlane::open(&replica, voter("CN=node-a"), Options::default());
    assert_eq!(node.unwrap().last_index(), Some(ControlPlaneIndex(62)));
}

#[test]
fn salvage_keeps_the_intact_prefix_of_every_damaged_fixture() {
    // Goal: salvage writes a directory the library opens, holding exactly
    // the intact prefix (entry by entry), with the term and vote of the
    // valid hard-state copy, and reports the indexes known lost (and how
    // many were committed); the damaged source is not changed. Method:
    // every fixture, with its expected kept end and known lost end.
    let cases = [
        ("bit-flip-last-record", 23, 24),
        ("zeroed-sector-vouched", 21, 24),
        ("stale-segment", 8, 24),
        ("missing-middle-segment", 6, 24),
        ("truncated-segment", 4, 24),
        ("foreign-file", 24, 24),
        ("torn-tail", 23, 23),
        ("hardstate-one-copy-damaged", 24, 24),
    ];
    for (name, kept_end, lost_end) in cases {
        let dir = fixture(name);
        let before = files(dir.path());
        let root = tempfile::tempdir().unwrap();
        let report =
            salvage_into(dir.path(), root.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            files(dir.path()),
            before,
            "{name}: salvage changed the source"
        );
        assert_eq!(report.kept, indexes(0..kept_end), "{name}");
        assert_eq!(report.lost.known, indexes(kept_end..lost_end), "{name}");
        let committed_end = ControlPlaneIndex(lost_end);
        assert_eq!(report.lost.committed_end, committed_end, "{name}");
        assert_eq!(report.vote_fate, VoteFate::Kept, "{name}");
        let node =
            DurableControlPlane::open(&report.destination, voter("CN=node-a"), small_segments())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(node.durable_vote(), fixture_vote(), "{name}");
        assert_eq!(
            node.commit_index(),
            kept_end.checked_sub(1).map(ControlPlaneIndex),
            "{name}"
        );
        for n in 0..kept_end {
            assert_eq!(
                node.read(ControlPlaneIndex(n)).unwrap(),
                fixture_entry(n),
                "{name} {n}"
            );
        }
        assert_eq!(
            node.last_index(),
            kept_end.checked_sub(1).map(ControlPlaneIndex),
            "{name}"
        );
    }
}

#[test]
fn salvage_without_a_hard_state_needs_the_node_and_restores_the_term_from_the_log() {
    // Goal: with both hard-state copies lost, salvage refuses until told
    // whose directory it is, then starts at the highest term the log holds
    // with no vote, and says the vote was lost. Method: the
    // hardstate-both-damaged fixture.
    let dir = fixture("hardstate-both-damaged");
    let root = tempfile::tempdir().unwrap();
    let error = salvage_into(dir.path(), root.path()).unwrap_err();
    assert!(
        matches!(error, Error::Unsalvageable(Unsalvageable::HardStateLost)),
        "{error:?}"
    );
    let options = SalvageOptions {
        node: Some(voter("CN=node-a")),
        role: Some(NodeRole::SoleVoter),
    };
    let report = salvage(dir.path(), root.path().join("new"), &options, &()).unwrap();
    assert_eq!(report.vote_fate, VoteFate::Lost);
    assert_eq!(report.hard_state_from, None);
    assert_eq!(
        (report.term, report.vote.clone()),
        (ControlPlaneTerm(2), None)
    );
    let node = DurableControlPlane::open(&report.destination, voter("CN=node-a"), small_segments())
        .unwrap();
    assert_eq!(node.durable_vote().term, ControlPlaneTerm(2));
    assert_eq!(node.last_index(), Some(ControlPlaneIndex(23)));
}

#[test]
fn salvage_of_a_compacted_directory_keeps_the_snapshot() {
    // Goal: a compacted directory whose last record rotted salvages into
    // the snapshot plus the log's intact entries, with the same catalog up
    // to the last kept entry. Method: flip a bit in the last record of the
    // compacted directory.
    let root = tempfile::tempdir().unwrap();
    let (dir, live) = compacted_directory(root.path());
    let last_segment = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .max()
        .unwrap();
    let mut bytes = fs::read(&last_segment).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end - 20] ^= 0x10;
    fs::write(&last_segment, bytes).unwrap();
    let report = salvage_into(&dir, root.path()).unwrap();
    assert_eq!(report.snapshot_index_end, Some(ControlPlaneIndex(120)));
    assert_eq!(report.kept, indexes(110..(120 + LATE_ADMITS - 1)));
    let node = DurableControlPlane::open(&report.destination, voter("CN=leader"), small_segments())
        .unwrap();
    assert_eq!(node.catalog().members().len(), live.members().len() - 1);
    assert!(node.catalog().ranges().eq(live.ranges()));
    assert_eq!(node.catalog().leader_history(), live.leader_history());
}

#[test]
fn salvage_refuses_a_compacted_log_whose_snapshot_is_damaged() {
    // Goal: with the snapshot damaged, entries below the log start exist
    // nowhere: salvage refuses with a reason instead of building a node
    // that forgot them. Method: flip a bit in the snapshot's body.
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = compacted_directory(root.path());
    let snapshot = dir.join(cpwal::format::snapshot_file_name(120));
    let mut bytes = fs::read(&snapshot).unwrap();
    bytes[100] ^= 0x04;
    fs::write(&snapshot, bytes).unwrap();
    let error = salvage_into(&dir, root.path()).unwrap_err();
    let log_start = 110;
    assert!(
        matches!(error, Error::Unsalvageable(Unsalvageable::CompactedWithoutSnapshot { log_start: s }) if s == log_start),
        "{error:?}"
    );
    assert!(!root.path().join("new").exists());
}

#[test]
fn salvage_raises_a_stale_hard_states_term_to_the_log() {
    // Goal: a hard state older than its log (term 1 beside entries of term
    // 3) salvages to term 3 with the old vote dropped, and says so.
    // Method: put back the hard state saved after the first append.
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=s"), small_segments()).unwrap();
    node.try_append(&numbered_entry(0)).unwrap();
    let hard_state = dir.path().join(cpwal::format::HARD_STATE_FILE_NAME);
    let old = fs::read(&hard_state).unwrap();
    node.start_election().unwrap();
    node.start_election().unwrap();
    node.try_append(&numbered_entry(1)).unwrap();
    drop(node);
    fs::write(&hard_state, old).unwrap();
    let root = tempfile::tempdir().unwrap();
    let report = salvage_into(dir.path(), root.path()).unwrap();
    assert_eq!(
        report.vote_fate,
        VoteFate::DroppedByTermRaise {
            old_term: ControlPlaneTerm(1),
            old_vote: Some(voter("CN=s"))
        }
    );
    assert_eq!(
        (report.term, report.kept.clone()),
        (ControlPlaneTerm(3), indexes(0..2))
    );
    let node =
        DurableControlPlane::open(&report.destination, voter("CN=s"), small_segments()).unwrap();
    assert_eq!(node.durable_vote().term, ControlPlaneTerm(3));
    assert!(!node.is_leader());
}
