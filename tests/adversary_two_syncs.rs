//! Adversarial tests of group commit with two syncs in flight, written by
//! an adversarial review session; two of them failed on the first version
//! (a second file description kept by generation number, reused for the
//! new file a rollover gives a truncated generation's number, so an
//! acknowledged entry was lost on power loss; and writers stranded without
//! a clock when the one timed waiter left). On the gated storage (tests/support/gated_storage.rs): writes
//! stay in memory until a sync of a handle of the same inode passes the
//! gate; dropping the node is a power loss that keeps exactly what was
//! synced.

use std::path::Path;
use std::time::{Duration, Instant};

use cpwal::{
    AppendEntriesRequest, ControlPlaneIndex, ControlPlaneTerm, LogEntry, Options,
    ReplicaControlPlane, SharedControlPlane,
};

#[path = "support/gated_storage.rs"]
mod gated_storage;

#[path = "support/gated_node.rs"]
mod gated_node;

use gated_node::{admit, create_shared, holds_within, spawn_append, voter, wait_until};
use gated_storage::GatedStorage;

/// The log segment files in `dir` (the spare excluded).
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("segment-") && !n.contains("spare"))
        .count()
}

#[test]
fn second_description_of_a_truncated_generation_is_not_reused_for_its_successor() {
    // Goal: an acknowledged append survives a power loss after a suffix
    // truncation removed the tail segment and a rollover re-created a tail
    // of the same generation. The log caches its second file description
    // by generation only (`second_description`, append.rs); the truncation
    // never clears it, so the new tail (a new inode, the installed spare)
    // would be synced through a description of the removed file.
    // Method: a replica leads term 1 with 4 KiB segments and appends
    // sequentially (each append leads exactly one group sync, numbered from
    // 0: odd numbers run on the second description) until the second
    // segment holds an entry synced on the second description; a term-2
    // leader's AppendEntries truncates into the first segment (removing the
    // second); the node leads term 3 and appends until a new second segment
    // holds an entry synced on the second description; power loss; reopen:
    // every acknowledged entry is there.
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = GatedStorage::open(dir.path());
    faults.set(|g| g.skip_fsync = true);
    let options = Options::default()
        .with_segment_size_bytes(4096)
        .with_second_sync_after(Duration::MAX);
    let mut engine =
        ReplicaControlPlane::create_with_storage(storage, voter("CN=node-a"), options.clone())
            .unwrap();
    let term = engine.start_election().unwrap();
    engine.become_leader(term).unwrap();
    let shared = SharedControlPlane::new(engine);
    let mut syncs = 0u64; // group syncs led so far: one per sequential append
    let mut acknowledged = Vec::new();
    let mut n = 0u64;
    let mut append = |shared: &SharedControlPlane<cpwal::Replica, GatedStorage>,
                      acknowledged: &mut Vec<(ControlPlaneIndex, u64)>|
     -> (ControlPlaneIndex, bool) {
        n += 1;
        let index = shared.append_uncommitted(&admit(n)).unwrap();
        acknowledged.push((index, n));
        let on_second = syncs % 2 == 1;
        syncs += 1;
        (index, on_second)
    };
    // Phase 1: fill the first segment; the second gets an entry synced on
    // the second description.
    let mut first_of_second = None;
    loop {
        let (index, on_second) = append(&shared, &mut acknowledged);
        if segment_files(dir.path()) == 2 {
            first_of_second.get_or_insert(index);
            if on_second {
                break;
            }
        }
        assert!(index.0 < 10_000, "no rollover");
    }
    let first_of_second = first_of_second.unwrap();
    assert!(first_of_second.0 >= 2);
    // Phase 2: a term-2 leader replaces everything from the entry before
    // the second segment's first: the second segment is removed.
    let cut = first_of_second.0 - 1;
    let request = AppendEntriesRequest {
        term: ControlPlaneTerm(term.0 + 1),
        leader: voter("CN=node-b"),
        prev_log_index: Some(ControlPlaneIndex(cut - 1)),
        prev_log_term: term,
        entries: vec![LogEntry {
            index: ControlPlaneIndex(cut),
            term: ControlPlaneTerm(term.0 + 1),
            entry: admit(999_999),
        }],
        leader_commit: None,
    };
    shared
        .with_engine(|e| {
            let reply = e.append_entries(&request)?;
            assert!(
                matches!(reply.outcome, cpwal::AppendOutcome::Accepted { .. }),
                "{reply:?}"
            );
            let t = e.start_election()?;
            e.become_leader(t)
        })
        .unwrap();
    assert_eq!(
        segment_files(dir.path()),
        1,
        "the truncation removed the second segment"
    );
    acknowledged.retain(|(i, _)| i.0 < cut);
    // Phase 3: refill until a new second segment holds an entry synced on
    // the second description.
    loop {
        let (index, on_second) = append(&shared, &mut acknowledged);
        if segment_files(dir.path()) == 2 && on_second {
            break;
        }
        assert!(index.0 < 10_000, "no rollover");
    }
    let last = acknowledged.last().unwrap().0;
    // Power loss: only what was synced survives.
    drop(shared);
    let node = ReplicaControlPlane::open(dir.path(), voter("CN=node-a"), options).unwrap();
    assert!(
        node.last_index() >= Some(last),
        "acknowledged entry {last:?} lost in a power loss: the log ends at {:?}",
        node.last_index()
    );
    for (index, n) in &acknowledged {
        assert_eq!(
            node.read(*index).unwrap().entry,
            admit(*n),
            "entry {index:?}"
        );
    }
}

#[test]
fn a_writer_behind_a_slow_sync_starts_a_second_once_due_though_the_watcher_left() {
    // Goal: once the sync in flight has run `second_sync_after`, a writer
    // it does not cover leads a second sync (the promise of
    // `Options::second_sync_after`). Since f328c2f only one waiter sleeps
    // with a timeout (`GroupState::watching`); the others sleep until a
    // sync ends. If the watcher leaves without a sync ending (its entries
    // became durable through a sync outside group commit, whose publish
    // wakes nobody while a sync is in flight), nobody watches the clock.
    // Method: threshold 1 s; a warm-up append (sync 0, writer's
    // description); writer P's sync (1, second description) is held; W
    // writes behind it and watches; `with_engine` syncs the log on the
    // writer's description (let through alone), making W's entry durable;
    // X writes behind it (not covered by sync 1) and sleeps. Within 3 s X
    // must start a second sync beside the held one.
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().with_second_sync_after(Duration::from_secs(1));
    let (shared, faults) = create_shared(dir.path(), options);
    faults.set(|g| g.skip_fsync = true);
    assert_eq!(
        shared.try_append(&admit(0)).unwrap().index,
        ControlPlaneIndex(0)
    );
    let before = faults.entered();
    faults.set(|g| g.pass_only = Some(Vec::new()));
    let p = spawn_append(&shared, 1);
    wait_until("P's sync", || faults.entered() == before + 1);
    let w = spawn_append(&shared, 2);
    wait_until("W's write", || {
        shared.last_written_index() == Some(ControlPlaneIndex(2))
    });
    std::thread::sleep(Duration::from_millis(20)); // W reaches its timed wait
    faults.set(|g| g.pass_only = Some(vec![before + 2]));
    let q = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.with_engine(|_| Ok(())))
    };
    q.join().unwrap().unwrap();
    assert_eq!(faults.entered(), before + 2, "with_engine's own sync");
    let x = spawn_append(&shared, 3);
    wait_until("X's write", || {
        shared.last_written_index() == Some(ControlPlaneIndex(3))
    });
    let started = Instant::now();
    let second = holds_within(Duration::from_secs(3), || faults.entered() == before + 3);
    let waited = started.elapsed();
    // Let everything through so no thread is left blocked.
    faults.set(|g| g.pass_only = None);
    for t in [p, w, x] {
        assert!(t.join().unwrap().is_ok());
    }
    assert!(
        second,
        "X waited {waited:?} (threshold 1 s) behind a held sync without starting a second one"
    );
}

/// The same stale second description through the openraft log store (its
/// flusher leads the group syncs; a truncation is openraft's `truncate`).
/// Run with `--features openraft`.
#[cfg(feature = "openraft")]
mod raft_path {
    use super::*;
    use cpwal::raft::types::{CpwalEntry, CpwalLogId};
    use cpwal::raft::{CpwalLogStore, NodeRegistry};
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::{CommittedLeaderId, EntryPayload, LogId, Vote};

    fn registry() -> NodeRegistry {
        let registry = NodeRegistry::default();
        registry.bind(0, &voter("CN=node-0")).unwrap();
        registry
    }

    fn log_id(term: u64, index: u64) -> CpwalLogId {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn entry(term: u64, index: u64) -> CpwalEntry {
        CpwalEntry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(admit(term * 100_000 + index)),
        }
    }

    /// Appends one entry at a time until a second segment exists, `extra`
    /// more after it; returns the next index and the second segment's
    /// first.
    async fn fill(
        log: &mut CpwalLogStore<GatedStorage>,
        dir: &Path,
        term: u64,
        mut next: u64,
        extra: u64,
    ) -> (u64, u64) {
        while segment_files(dir) < 2 {
            log.blocking_append([entry(term, next)]).await.unwrap();
            next += 1;
            assert!(next < 10_000, "no rollover");
        }
        let first_of_second = next - 1;
        for _ in 0..extra {
            log.blocking_append([entry(term, next)]).await.unwrap();
            next += 1;
        }
        (next, first_of_second)
    }

    /// Fills a first segment and `before + 1` entries of a second; a
    /// truncation removes the second; refills until a new second segment
    /// and `after` more; power loss; every acknowledged index is there.
    /// (Each sequential append leads one group sync, numbered from 0, odd
    /// ones on the second description: the extras vary which description
    /// the last sync of each phase runs on.)
    async fn scenario(before: u64, after: u64) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().with_segment_size_bytes(4096);
        let (storage, faults) = GatedStorage::open(dir.path());
        faults.set(|g| g.skip_fsync = true);
        let mut log = CpwalLogStore::open_with_storage(
            storage,
            voter("CN=node-0"),
            registry(),
            options.clone(),
        )
        .unwrap();
        log.save_vote(&Vote::new_committed(1, 0)).await.unwrap();
        let (_, first_of_second) = fill(&mut log, dir.path(), 1, 0, before).await;
        let cut = first_of_second - 1;
        log.save_vote(&Vote::new_committed(2, 0)).await.unwrap();
        log.truncate(log_id(1, cut)).await.unwrap();
        assert_eq!(
            segment_files(dir.path()),
            1,
            "the truncation removed the second segment"
        );
        let (end, _) = fill(&mut log, dir.path(), 2, cut, after).await;
        let last = end - 1;
        drop(log); // power loss: only what was synced survives
        let mut log =
            CpwalLogStore::open(dir.path(), voter("CN=node-0"), registry(), options).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert!(
            state.last_log_id.map(|l| l.index) >= Some(last),
            "(before {before}, after {after}): acknowledged index {last} lost in a power \
             loss; the log ends at {:?}",
            state.last_log_id
        );
    }

    #[test]
    fn openraft_store_truncation_then_rollover_keeps_acknowledged_entries() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            for before in [1, 2] {
                for after in [0, 1] {
                    scenario(before, after).await;
                }
            }
        });
    }
}
