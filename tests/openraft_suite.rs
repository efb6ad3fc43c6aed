//! openraft's own storage suite against cpwal's on-disk stores, plus a test
//! the suite lacks: every step is followed by a reopen from disk.
#![cfg(feature = "openraft")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use cpwal::raft::types::{CpwalEntry, CpwalLogId, CpwalMembership, CpwalStorageError, CpwalVote};
use cpwal::raft::{
    ClusterNode, CpwalLogStore, CpwalRaftConfig, CpwalStateMachine, NodeRegistry, LOG_DIRECTORY,
    SNAPSHOT_DIRECTORY,
};
use cpwal::{ApplyOutcome, ClusterVoterIdentity, ControlPlaneEntry, MembershipChange, Options};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;

fn identity(text: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(text).unwrap()
}

/// The suite votes as node 0, an id it picks itself: bind it explicitly.
fn suite_registry() -> NodeRegistry {
    let registry = NodeRegistry::default();
    registry.bind(0, &identity("CN=suite-node-0")).unwrap();
    registry
}

fn small_segments() -> Options {
    // Small segments so the suite's purges and truncations cross segment
    // boundaries.
    Options::default().with_segment_size_bytes(4096)
}

fn open_stores(dir: &TempDir) -> (CpwalLogStore, CpwalStateMachine) {
    open_stores_at(dir.path())
}

fn open_stores_at(dir: &std::path::Path) -> (CpwalLogStore, CpwalStateMachine) {
    let registry = suite_registry();
    let log = CpwalLogStore::open(
        dir.join(LOG_DIRECTORY),
        identity("CN=suite-node-0"),
        registry.clone(),
        small_segments(),
    )
    .unwrap();
    let machine = CpwalStateMachine::open(dir.join(SNAPSHOT_DIRECTORY), registry).unwrap();
    (log, machine)
}

struct OnDiskBuilder;

impl StoreBuilder<CpwalRaftConfig, CpwalLogStore, CpwalStateMachine, TempDir> for OnDiskBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, CpwalLogStore, CpwalStateMachine), CpwalStorageError> {
        let dir = tempfile::tempdir().unwrap();
        let (log, machine) = open_stores(&dir);
        Ok((dir, log, machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_disk() {
    // Goal: cpwal's adapter meets openraft's storage contract. Method: run
    // openraft::testing::Suite::test_all (it makes its own runtimes) with a
    // builder that opens fresh on-disk stores in temporary directories.
    let started = Instant::now();
    Suite::test_all(OnDiskBuilder).unwrap();
    eprintln!("openraft storage suite: {:.2?}", started.elapsed());
}

fn log_id(term: u64, index: u64) -> CpwalLogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn blank(term: u64, index: u64) -> CpwalEntry {
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn admit(term: u64, index: u64, who: &str) -> CpwalEntry {
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(ControlPlaneEntry::MembershipChange(
            MembershipChange::Admit(identity(who)),
        )),
    }
}

fn membership(term: u64, index: u64) -> CpwalEntry {
    let nodes: BTreeMap<u64, ClusterNode> = [(
        0,
        ClusterNode::new(identity("CN=suite-node-0"), "127.0.0.1:1"),
    )]
    .into();
    let voters: BTreeSet<u64> = [0].into();
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(CpwalMembership::new(vec![voters], nodes)),
    }
}

/// Everything a store shows openraft, for comparison across a reopen.
#[derive(Debug, PartialEq)]
struct Observed {
    last_purged: Option<CpwalLogId>,
    last_log: Option<CpwalLogId>,
    entries: Vec<CpwalEntry>,
    vote: Option<CpwalVote>,
    committed: Option<CpwalLogId>,
    snapshot: Option<openraft::SnapshotMeta<u64, ClusterNode>>,
}

async fn observe(log: &mut CpwalLogStore, machine: &mut CpwalStateMachine) -> Observed {
    let state = log.get_log_state().await.unwrap();
    Observed {
        last_purged: state.last_purged_log_id,
        last_log: state.last_log_id,
        entries: log.try_get_log_entries(0..).await.unwrap(),
        vote: log.read_vote().await.unwrap(),
        committed: log.read_committed().await.unwrap(),
        snapshot: machine
            .get_current_snapshot()
            .await
            .unwrap()
            .map(|s| s.meta),
    }
}

async fn append(log: &mut CpwalLogStore, entries: Vec<CpwalEntry>) {
    // `append` reports durability through a `LogFlushed` callback, which
    // only openraft can build; the suite's helper does the same.
    openraft::storage::RaftLogStorageExt::blocking_append(log, entries)
        .await
        .unwrap();
}

type Step = for<'a> fn(
    &'a mut CpwalLogStore,
    &'a mut CpwalStateMachine,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

#[test]
fn reopen_after_each_step_preserves_the_store() {
    // Goal: every operation is durable, not just visible in memory. Method:
    // perform the suite's kinds of step one by one; after each, observe the
    // store, drop it, reopen both halves from disk and observe again: the
    // two observations must be equal (and the catalog too).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let steps: Vec<(&str, Step)> = vec![
        ("append", |l, _| {
            Box::pin(append(
                l,
                (0..12).map(|i| admit(1, i, &format!("CN=m{i}"))).collect(),
            ))
        }),
        ("save_vote", |l, _| {
            Box::pin(async { l.save_vote(&Vote::new(2, 0)).await.unwrap() })
        }),
        ("commit_vote", |l, _| {
            Box::pin(async { l.save_vote(&Vote::new_committed(2, 0)).await.unwrap() })
        }),
        ("append_membership", |l, _| {
            Box::pin(append(l, vec![membership(2, 12), blank(2, 13)]))
        }),
        ("save_committed", |l, _| {
            Box::pin(async { l.save_committed(Some(log_id(2, 12))).await.unwrap() })
        }),
        ("truncate", |l, _| {
            Box::pin(async { l.truncate(log_id(2, 13)).await.unwrap() })
        }),
        ("apply_and_snapshot", |l, m| {
            Box::pin(async move {
                let entries = l.try_get_log_entries(0..13).await.unwrap();
                let outcomes = m.apply(entries).await.unwrap();
                assert_eq!(outcomes[0], Some(ApplyOutcome::Admitted));
                m.get_snapshot_builder()
                    .await
                    .build_snapshot()
                    .await
                    .unwrap();
            })
        }),
        ("purge", |l, _| {
            Box::pin(async { l.purge(log_id(1, 9)).await.unwrap() })
        }),
        ("purge_past_end", |l, _| {
            Box::pin(async { l.purge(log_id(3, 40)).await.unwrap() })
        }),
        ("append_after_restart", |l, _| {
            Box::pin(append(l, vec![blank(3, 41), admit(3, 42, "CN=x")]))
        }),
        // openraft may commit past the local log right after a snapshot
        // install; the record must stay within the log or reopen fails.
        ("save_committed_past_end", |l, _| {
            Box::pin(async { l.save_committed(Some(log_id(3, 100))).await.unwrap() })
        }),
    ];
    runtime.block_on(async {
        let (mut log, mut machine) = open_stores(&dir);
        for (name, step) in steps {
            step(&mut log, &mut machine).await;
            let before = observe(&mut log, &mut machine).await;
            let catalog = machine.catalog();
            drop((log, machine));
            (log, machine) = open_stores(&dir);
            let after = observe(&mut log, &mut machine).await;
            assert_eq!(before, after, "step {name} did not survive a reopen");
            if name == "apply_and_snapshot" {
                assert_eq!(machine.catalog(), catalog, "snapshot lost catalog state");
                assert_eq!(machine.catalog().members().len(), 12);
            }
        }
        let last = observe(&mut log, &mut machine).await;
        assert_eq!(last.last_purged, Some(log_id(3, 40)));
        assert_eq!(last.last_log, Some(log_id(3, 42)));
        assert_eq!(last.vote, Some(Vote::new_committed(2, 0)));
        assert_eq!(last.committed, Some(log_id(3, 42)));
    });
}

/// A membership of `count` nodes, ids from `first_id`, whose identities and
/// addresses are `identity_bytes` and `address_bytes` long.
fn wide_membership(
    (term, index): (u64, u64),
    first_id: u64,
    count: u64,
    identity_bytes: usize,
    address_bytes: usize,
) -> CpwalEntry {
    let nodes: BTreeMap<u64, ClusterNode> = (first_id..first_id + count)
        .map(|n| {
            let prefix = format!("CN=node-{n},O=");
            let subject = format!("{prefix}{}", "x".repeat(identity_bytes - prefix.len()));
            let address = format!(
                "{n}:{}",
                "a".repeat(address_bytes - 1 - n.to_string().len())
            );
            (n, ClusterNode::new(identity(&subject), address))
        })
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    CpwalEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(CpwalMembership::new(vec![voters], nodes)),
    }
}

/// Runs `work` on a thread, failing the test if it takes five seconds (a
/// FIFO opened for reading blocks until a writer appears).
fn within_five_seconds<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the call hung (a FIFO was opened as a file?)")
}

#[test]
fn state_machine_open_refuses_a_fifo_snapshot_without_hanging() {
    // Goal: a FIFO named `snapshot` in the state machine's directory is a
    // typed error naming it, at once; the open used to block forever.
    // Method: make the FIFO, open under a five-second limit.
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().join(SNAPSHOT_DIRECTORY);
    std::fs::create_dir(&directory).unwrap();
    let fifo = directory.join("snapshot");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let opened =
        within_five_seconds(move || CpwalStateMachine::open(directory, suite_registry()).map(drop));
    match opened {
        Err(cpwal::Error::NotARegularFile { path, kind }) => {
            assert_eq!((path, kind), (fifo, cpwal::io::FileKind::Fifo));
        }
        other => panic!("expected NotARegularFile, got {other:?}"),
    }
}

#[test]
fn append_membership_the_envelope_accepts_is_stored() {
    // Goal: every membership the envelope accepts (`validate_payload`) is
    // stored by the log, whatever the segment size: the record payload
    // limit covers the envelope's maximum. Method: append a 5-node
    // membership of long subjects (about 1.4 KiB, above the entry codec's
    // maximum) and the largest one the envelope takes (64 nodes, 255-byte
    // identities and addresses) into 4 KiB segments; reopen and read both
    // back.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let five = wide_membership((1, 0), 100, 5, 200, 60);
    let largest = wide_membership((1, 1), 200, 64, 255, 255);
    for entry in [&five, &largest] {
        let EntryPayload::Membership(membership) = &entry.payload else {
            unreachable!()
        };
        cpwal::raft::envelope::validate_membership(membership).unwrap();
    }
    runtime.block_on(async {
        let (mut log, machine) = open_stores(&dir);
        append(&mut log, vec![five.clone()]).await;
        append(&mut log, vec![largest.clone()]).await;
        drop((log, machine));
        let (mut log, _machine) = open_stores(&dir);
        let stored = log.try_get_log_entries(0..2).await.unwrap();
        assert_eq!(stored, vec![five, largest]);
    });
}

#[test]
fn log_store_refuses_out_of_range_terms_and_indexes_without_change() {
    // Goal: openraft hands the store whatever a peer sent; a term above
    // MAX_TERM, a vote whose term goes back (a wrapped term), and indexes
    // past MAX_INDEX are refused and change nothing, where `purge(u64::MAX)`
    // panicked in `index + 1` and a `u64::MAX` vote was saved. Method: a
    // store with entries and a vote; each hostile call; observe, reopen,
    // observe.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let (mut log, mut machine) = open_stores(&dir);
        append(
            &mut log,
            (0..4).map(|i| admit(1, i, &format!("CN=m{i}"))).collect(),
        )
        .await;
        log.save_vote(&Vote::new(5, 0)).await.unwrap();
        let before = observe(&mut log, &mut machine).await;
        assert!(log.save_vote(&Vote::new(u64::MAX, 0)).await.is_err());
        assert!(log.save_vote(&Vote::new(4, 0)).await.is_err());
        assert!(log.purge(log_id(1, u64::MAX)).await.is_err());
        let far = vec![blank(1, cpwal::limits::MAX_INDEX + 1)];
        let appended = openraft::storage::RaftLogStorageExt::blocking_append(&mut log, far).await;
        assert!(appended.is_err());
        log.save_committed(Some(log_id(1, u64::MAX))).await.unwrap();
        log.truncate(log_id(1, u64::MAX)).await.unwrap();
        let mut after = observe(&mut log, &mut machine).await;
        // The commit point is clamped to the log's end, the one change.
        assert_eq!(after.committed, Some(log_id(1, 3)));
        after.committed = before.committed;
        assert_eq!(before, after);
        drop((log, machine));
        let (mut log, mut machine) = open_stores(&dir);
        let mut reopened = observe(&mut log, &mut machine).await;
        reopened.committed = before.committed;
        assert_eq!(before, reopened);
    });
}

/// Set in the child process of
/// [`raft_stores_create_private_files_under_umask_000`]: the data directory.
const UMASK_CHILD_DIRECTORY: &str = "CPWAL_RAFT_UMASK_CHILD_DIRECTORY";

#[test]
fn raft_stores_create_private_files_under_umask_000() {
    // Goal: the openraft stores' directories are 0700 and their files 0600
    // whatever the umask. Method: a child process (umask is process-wide)
    // sets umask 000, opens both stores, appends and builds a snapshot;
    // the parent checks every mode.
    use std::os::unix::fs::PermissionsExt;
    if let Some(directory) = std::env::var_os(UMASK_CHILD_DIRECTORY) {
        // SAFETY: umask only sets the process's file-creation mask.
        unsafe { libc::umask(0) };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let dir = std::path::PathBuf::from(directory);
            let (mut log, mut machine) = open_stores_at(&dir);
            append(
                &mut log,
                (0..4).map(|i| admit(1, i, &format!("CN=m{i}"))).collect(),
            )
            .await;
            let entries = log.try_get_log_entries(0..4).await.unwrap();
            machine.apply(entries).await.unwrap();
            machine
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        });
        std::process::exit(0);
    }
    let root = tempfile::tempdir().unwrap();
    let node = root.path().join("node");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "raft_stores_create_private_files_under_umask_000",
        ])
        .env(UMASK_CHILD_DIRECTORY, &node)
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |path: &std::path::Path| path.metadata().unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&node), 0o700);
    let mut files = 0;
    for sub in [LOG_DIRECTORY, SNAPSHOT_DIRECTORY] {
        let directory = node.join(sub);
        assert_eq!(mode(&directory), 0o700, "{}", directory.display());
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
    }
    assert!(
        files >= 5,
        "hard state, segment, two locks and the snapshot"
    );
}

#[test]
fn log_store_reports_what_its_open_found() {
    // Goal: a supervisor running the openraft adapter learns what opening
    // its log store found, as engine users do: files cpwal does not own and
    // permissions wider than the owner's are reported (and left alone), and
    // a clean directory reports nothing. Method: open, append, drop; reopen
    // and expect an empty report; put a foreign file into the log directory
    // and widen the directory to 0755; reopen and expect both reported, the
    // entries intact and the foreign file untouched.
    use std::os::unix::fs::PermissionsExt;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _machine) = open_stores(&dir);
        let entries = (0..3).map(|i| admit(1, i, &format!("CN=m{i}"))).collect();
        runtime.block_on(append(&mut log, entries));
    }
    {
        let (log, _machine) = open_stores(&dir);
        let report = log.recovery_report();
        assert!(!report.repairs_anything(), "{report:?}");
        assert!(report.foreign_files.is_empty() && report.wide_permissions.is_empty());
    }
    let log_dir = dir.path().join(LOG_DIRECTORY);
    std::fs::write(log_dir.join("notes.txt"), b"operator notes").unwrap();
    std::fs::set_permissions(&log_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut log, _machine) = open_stores(&dir);
    let report = log.recovery_report().clone();
    let foreign: Vec<_> = report
        .foreign_files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(foreign, [log_dir.join("notes.txt")], "{report:?}");
    let wide = &report.wide_permissions;
    assert!(
        wide.iter()
            .any(|w| w.path == log_dir && w.mode & 0o777 == 0o755),
        "{report:?}"
    );
    let read = runtime.block_on(log.try_get_log_entries(0..3)).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(
        std::fs::read(log_dir.join("notes.txt")).unwrap(),
        b"operator notes"
    );
}
