//! Data directories for the operator's tests: copies of the fixtures under
//! `fixtures/v1/`, a byte-for-byte picture of a directory (to prove a
//! command changed nothing), and a compacted directory written by the
//! library. Included with `#[path = "support/directories.rs"] mod ...;`.
#![allow(dead_code)] // Each test file uses a different part.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneCatalog, ControlPlaneEntry, DurableControlPlane,
    MembershipChange, Options, OwnershipTransition,
};

pub fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// Copies the files of fixture `name` into the existing directory `into`.
pub fn copy_fixture(name: &str, into: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/v1")
        .join(name);
    for entry in fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
    }
}

/// A copy of fixture `name` at `root/name`.
pub fn fixture(root: &Path, name: &str) -> PathBuf {
    let target = root.join(name);
    fs::create_dir(&target).unwrap();
    copy_fixture(name, &target);
    target
}

/// Every file's name and bytes.
pub fn files(directory: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(directory)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Entries appended after the compaction of [`compacted_directory`].
pub const LATE_ADMITS: u64 = 3;

/// A sole voter's directory (`CN=leader`, 4 KiB segments) compacted by the
/// library: 120 entries — 40 admits, 40 ownership transitions over 8 ranges,
/// 40 elections each recorded by a `LeaderConfiguration` — compacted keeping
/// 10 (snapshot at 120, log start 110), then [`LATE_ADMITS`] admits.
/// Returns it with the catalog the live node held before it closed.
pub fn compacted_directory(root: &Path) -> (PathBuf, ControlPlaneCatalog) {
    let dir = root.join("compacted");
    let options = Options::default().with_segment_size_bytes(4096);
    let mut node = DurableControlPlane::create(&dir, voter("CN=leader"), options).unwrap();
    for i in 0..120u64 {
        let entry = match i % 3 {
            0 => ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!(
                "CN=m{i}"
            )))),
            1 => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: format!("range-{}", i % 8),
                new_owner: voter(&format!("CN=m{}", i - 1)),
                ownership_epoch: i,
            }),
            _ => ControlPlaneEntry::LeaderConfiguration {
                term: node.start_election().unwrap(),
                leader: voter("CN=leader"),
            },
        };
        node.try_append(&entry).unwrap();
    }
    node.compact(10).unwrap();
    for i in 0..LATE_ADMITS {
        let member = voter(&format!("CN=late-{i}"));
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
        node.try_append(&entry).unwrap();
    }
    let catalog = node.catalog().clone();
    drop(node);
    (dir, catalog)
}
