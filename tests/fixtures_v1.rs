//! `fixtures/v1/basic` is a data directory written by cpwal's format version 1.
//! Goal: a change that stops cpwal reading old files fails here. Method: open
//! a copy of the directory and compare its full contents with what was
//! written. (Regenerate, only on purpose, with `CPWAL_WRITE_FIXTURES=1`.)

use std::path::{Path, PathBuf};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneIndex,
    ControlPlaneTerm, DurableControlPlane, DurableVoteState, MembershipChange, Options,
    OwnershipTransition, VoteRequest,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1/basic")
}

fn options() -> Options {
    Options {
        segment_size_bytes: 4096,
    }
}

/// The entries of the fixture, in order, with their terms.
fn expected_entries() -> Vec<(u64, ControlPlaneEntry)> {
    let mut entries = vec![
        (
            1,
            ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(1),
                leader: voter("CN=node-a"),
            },
        ),
        (
            1,
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter("CN=node-b"))),
        ),
    ];
    for n in 0..60 {
        entries.push((
            2,
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: format!("users:[{},{})", n * 1000, (n + 1) * 1000),
                new_owner: voter(if n % 2 == 0 { "CN=node-a" } else { "CN=node-b" }),
                ownership_epoch: n + 1,
            }),
        ));
    }
    entries.push((
        2,
        ControlPlaneEntry::MembershipChange(MembershipChange::Remove(voter("CN=node-b"))),
    ));
    entries
}

fn write_fixture(dir: &Path) {
    let mut node = DurableControlPlane::open(dir, voter("CN=node-a"), options()).unwrap();
    let entries = expected_entries();
    for (term, entry) in &entries {
        if node.current_term().0 < *term {
            node.start_election().unwrap();
        }
        node.try_append(entry).unwrap();
    }
    // A vote for another candidate in a later term, then the node's term.
    node.grant_vote(&VoteRequest {
        term: ControlPlaneTerm(3),
        candidate: voter("CN=node-c"),
        last_log_index: Some(ControlPlaneIndex(entries.len() as u64 - 1)),
        last_log_term: ControlPlaneTerm(2),
    })
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn open_v1_fixture_reads_exact_contents() {
    if std::env::var_os("CPWAL_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(fixture_dir());
        write_fixture(&fixture_dir());
        std::fs::remove_file(fixture_dir().join("LOCK")).unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), copy.path());
    let node = DurableControlPlane::open(copy.path(), voter("CN=node-a"), options()).unwrap();

    assert_eq!(
        node.durable_vote(),
        DurableVoteState {
            term: ControlPlaneTerm(3),
            voted_for: Some(voter("CN=node-c")),
        }
    );
    assert_eq!(node.leader(), None);
    let expected = expected_entries();
    assert_eq!(
        node.commit_index(),
        Some(ControlPlaneIndex(expected.len() as u64 - 1))
    );
    assert_eq!(node.first_index(), ControlPlaneIndex(0));
    // The copy has the checkout's permissions (umask-dependent), which open
    // reports; beyond them, recovery found nothing to do.
    let report = cpwal::RecoveryReport {
        wide_permissions: Vec::new(),
        ..node.recovery_report().clone()
    };
    assert_eq!(report, cpwal::RecoveryReport::default());
    let read = node
        .read_range(
            ControlPlaneIndex(0),
            ControlPlaneIndex(expected.len() as u64),
        )
        .unwrap();
    for ((term, entry), got) in expected.iter().zip(&read) {
        assert_eq!((ControlPlaneTerm(*term), entry), (got.term, &got.entry));
    }
    assert!(
        std::fs::read_dir(fixture_dir()).unwrap().count() > 2,
        "the fixture spans several segments"
    );
}
