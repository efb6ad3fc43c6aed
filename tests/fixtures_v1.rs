//! `fixtures/v1/basic` is a data directory written by cpwal with segment
//! format version 1 (frozen: this build writes version 2); `fixtures/v2/basic`
//! the same history written by this build. Goal: a change that stops cpwal
//! reading either fails here. Method: open a copy of each directory and
//! compare its full contents with what was written. (Regenerate `v2`, only
//! on purpose, with `CPWAL_WRITE_FIXTURES=1`.)

use std::path::{Path, PathBuf};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    DurableControlPlane, DurableVoteState, MembershipChange, Options, OwnershipTransition,
    VoteRequest,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// The fixture written with segment format `version`.
fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/v{version}/basic"))
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
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
    let mut node = DurableControlPlane::create(dir, voter("CN=node-a"), options()).unwrap();
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

/// Opens a copy of the fixture of `version` and checks every fact of it;
/// returns the copy.
fn check_fixture(version: u32) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(version), copy.path());
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
        std::fs::read_dir(fixture_dir(version)).unwrap().count() > 2,
        "the fixture spans several segments"
    );
    copy
}

/// The segment format version in the header of segment file `name`.
fn segment_version(dir: &Path, name: &str) -> u32 {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let header: cpwal::format::SegmentHeader =
        bytemuck::pod_read_unaligned(&bytes[..cpwal::format::SEGMENT_HEADER_BYTES as usize]);
    header.format_version
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("segment-0"))
        .collect();
    names.sort();
    names
}

#[test]
fn open_v1_fixture_reads_exact_contents() {
    check_fixture(1);
}

#[test]
fn open_v2_fixture_reads_exact_contents() {
    if std::env::var_os("CPWAL_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(fixture_dir(2));
        write_fixture(&fixture_dir(2));
        std::fs::remove_file(fixture_dir(2).join("LOCK")).unwrap();
    }
    let copy = check_fixture(2);
    for name in segment_names(copy.path()) {
        assert_eq!(segment_version(copy.path(), &name), 2, "{name}");
    }
}

#[test]
fn writable_open_of_a_v1_directory_continues_in_a_v2_segment() {
    // Goal: a directory written with segment format 1 keeps working, and no
    // record laid out as version 2 ever lands in a version 1 segment (whose
    // readers do not expect the padding before each sync). Method: open a
    // copy of the v1 fixture, append, reopen; the old segments are
    // untouched version 1 files, the tail is version 2, everything reads.
    let before = segment_names(&fixture_dir(1));
    let copy = check_fixture(1);
    let mut node = DurableControlPlane::open(copy.path(), voter("CN=node-a"), options()).unwrap();
    node.start_election().unwrap();
    let more: Vec<_> = (0..20).map(entry_after).collect();
    for entry in &more {
        node.try_append(entry).unwrap();
    }
    drop(node);
    let after = segment_names(copy.path());
    for name in &before {
        assert_eq!(segment_version(copy.path(), name), 1, "{name}");
        assert_eq!(
            std::fs::read(copy.path().join(name)).unwrap(),
            std::fs::read(fixture_dir(1).join(name)).unwrap(),
            "{name} was rewritten"
        );
    }
    let tail = after.last().unwrap();
    assert!(!before.contains(tail));
    assert_eq!(segment_version(copy.path(), tail), 2);
    let node = DurableControlPlane::open(copy.path(), voter("CN=node-a"), options()).unwrap();
    let expected = expected_entries().len() as u64;
    let read = node
        .read_range(
            ControlPlaneIndex(expected),
            ControlPlaneIndex(expected + 20),
        )
        .unwrap();
    let read: Vec<_> = read.into_iter().map(|e| e.entry).collect();
    assert_eq!(read, more);
    assert_eq!(node.commit_index(), Some(ControlPlaneIndex(expected + 19)));
}

fn entry_after(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("later:{n}"),
        new_owner: voter("CN=node-a"),
        ownership_epoch: 1000 + n,
    })
}
