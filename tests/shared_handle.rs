//! The shared handle as an adopter uses it: cheap reads that never sync,
//! the seed's trait through a clone per thread, a flat `with_engine`, and
//! failures that surface on every state-changing call (issue #13 item 4).
//! On the simulated disk, whose counters show every sync.

mod support;

use cpwal::{
    ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneError, ControlPlaneIndex,
    ControlPlaneTerm, Error, InvalidInput, MembershipChange, SharedControlPlane, SoleVoter,
};
use support::sim_disk::SimDisk;
use support::workload::{options, voter, Node, NODE_SUBJECT};

fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=m-{n}"))))
}

fn shared_on(disk: &SimDisk) -> SharedControlPlane<SoleVoter, SimDisk> {
    let node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options()).unwrap();
    SharedControlPlane::new(node)
}

/// The supervisor's code: it knows only the seed's trait.
fn append_through_the_trait(
    consensus: &mut impl ControlPlaneConsensus,
    entry: ControlPlaneEntry,
) -> Result<ControlPlaneIndex, ControlPlaneError> {
    consensus.append(entry)
}

#[test]
fn shared_reads_answer_without_syncing() {
    // Goal: reads through the shared handle (term, leader, vote, commit
    // index, entries, terms, the catalog) cost no sync, unlike
    // `with_engine`, and answer what the engine holds. Method: append
    // three entries, note the disk's sync count, read everything, compare
    // the count; then one `with_engine` read, which syncs.
    let disk = SimDisk::new();
    let shared = shared_on(&disk);
    for n in 0..3 {
        shared.try_append(&admit(n)).unwrap();
    }
    let syncs = disk.counters().syncs;
    assert_eq!(shared.current_term(), ControlPlaneTerm(1));
    assert_eq!(shared.leader(), Some(voter(NODE_SUBJECT)));
    assert!(shared.is_leader());
    assert_eq!(shared.durable_vote().voted_for, Some(voter(NODE_SUBJECT)));
    assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(2)));
    assert_eq!(shared.read(ControlPlaneIndex(1)).unwrap().entry, admit(1));
    let range = shared
        .read_range(ControlPlaneIndex(0), ControlPlaneIndex(3))
        .unwrap();
    assert_eq!(range.len(), 3);
    assert_eq!(
        shared.term_at(ControlPlaneIndex(2)).unwrap(),
        ControlPlaneTerm(1)
    );
    assert_eq!(shared.with_catalog(|c| c.members().len()), 3);
    assert!(shared.failure().is_none());
    assert_eq!(disk.counters().syncs, syncs, "a read synced");
    let last = shared.with_engine(|e| Ok(e.last_index())).unwrap();
    assert_eq!(last, Some(ControlPlaneIndex(2)));
}

#[test]
fn shared_read_past_the_log_is_not_found() {
    // Goal: an index past the log is a typed refusal naming the log's
    // end, not a panic or a stale answer. (An entry written but not yet
    // durable is refused too: tests/group_commit.rs holds a sync to show
    // it.) Method: read one past the last appended index, singly and as
    // the end of a range.
    let disk = SimDisk::new();
    let shared = shared_on(&disk);
    shared.try_append(&admit(0)).unwrap();
    for refused in [
        shared.read(ControlPlaneIndex(1)).map(drop),
        shared
            .read_range(ControlPlaneIndex(0), ControlPlaneIndex(2))
            .map(drop),
        shared.term_at(ControlPlaneIndex(1)).map(drop),
    ] {
        assert!(
            matches!(
                refused,
                Err(Error::NotFound {
                    index: 1,
                    end_index: 1
                })
            ),
            "{refused:?}"
        );
    }
}

#[test]
fn shared_handle_stands_where_the_trait_is_expected() {
    // Goal: code written against the seed's `ControlPlaneConsensus` runs
    // on the shared handle, each thread through its own clone, and every
    // append is committed at a distinct index. Method: four threads append
    // eight entries each through the trait; check the indexes and commit.
    let disk = SimDisk::new();
    let shared = shared_on(&disk);
    let workers: Vec<_> = (0..4u64)
        .map(|thread| {
            let mut mine = shared.clone();
            std::thread::spawn(move || {
                (0..8)
                    .map(|n| append_through_the_trait(&mut mine, admit(thread * 100 + n)))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut indexes: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap().unwrap())
        .map(|i| i.0)
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..32).collect::<Vec<_>>());
    assert_eq!(
        ControlPlaneConsensus::commit_index(&shared),
        Some(ControlPlaneIndex(31))
    );
}

#[test]
fn shared_trait_append_maps_refusals_and_keeps_each_clones_error() {
    // Goal: through the shared handle the trait's refusals follow the
    // engine's table (an invalid entry or a storage failure names no
    // leader, never this node), the typed error is this clone's right after
    // the call (another clone's is untouched), a success clears it, and a
    // latched failure surfaces on every later state-changing call. Method:
    // an invalid entry, a valid one, then a failed sync, on two clones.
    let disk = SimDisk::new();
    let mut first = shared_on(&disk);
    let mut second = first.clone();
    let invalid = ControlPlaneEntry::OwnershipTransition(cpwal::OwnershipTransition {
        range: String::new(),
        new_owner: voter("CN=owner"),
        ownership_epoch: 1,
    });
    let refused = append_through_the_trait(&mut first, invalid);
    assert_eq!(refused, Err(ControlPlaneError::NotLeader { leader: None }));
    assert!(matches!(
        first.last_append_error(),
        Some(Error::InvalidInput(InvalidInput::RangeName { .. }))
    ));
    assert!(second.last_append_error().is_none());
    append_through_the_trait(&mut first, admit(1)).unwrap();
    assert!(first.last_append_error().is_none());
    disk.fail_sync(disk.counters().syncs + 1);
    let refused = append_through_the_trait(&mut second, admit(2));
    assert_eq!(refused, Err(ControlPlaneError::NotLeader { leader: None }));
    // Group commit reports the failed sync as the latch holds it.
    let kept = second.last_append_error().cloned().expect("kept");
    let cause = match &kept {
        Error::Failed { cause } => &**cause,
        other => other,
    };
    assert!(matches!(cause, Error::Io { .. }), "{kept:?}");
    assert!(!first.is_leader());
    assert!(first.failure().is_some());
    let later = first.try_append(&admit(3));
    assert!(matches!(later, Err(Error::Failed { .. })), "{later:?}");
    let engine_call = first.with_engine(|e| e.observe_term(ControlPlaneTerm(9)));
    assert!(
        matches!(engine_call, Err(Error::Failed { .. })),
        "{engine_call:?}"
    );
}
