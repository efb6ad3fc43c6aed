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
    Options {
        segment_size_bytes: 4096,
    }
}

fn open_stores(dir: &TempDir) -> (CpwalLogStore, CpwalStateMachine) {
    let registry = suite_registry();
    let log = CpwalLogStore::open(
        dir.path().join(LOG_DIRECTORY),
        identity("CN=suite-node-0"),
        registry.clone(),
        small_segments(),
    )
    .unwrap();
    let machine = CpwalStateMachine::open(dir.path().join(SNAPSHOT_DIRECTORY), registry).unwrap();
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
