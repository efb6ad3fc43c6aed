//! The catalog rebuild at open walks the segments in sequence and decodes
//! entries in place (see `DurableControlPlane::apply_committed_at_open`).
//! These tests pin that it rebuilds exactly the catalog the node had when it
//! closed, over many segments, from a snapshot that ends inside a segment,
//! on memory-mapped files (whose checksums the walk does not recompute) and
//! on the simulated disk (whose reads are fresh copies, verified again).

mod support;

use cpwal::io::Storage;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm,
    DurableControlPlane, MembershipChange, Options, OwnershipTransition, MIN_SEGMENT_SIZE_BYTES,
};
use support::sim_disk::SimDisk;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// Segments of the smallest size, so a few hundred entries span dozens.
fn small_segments() -> Options {
    Options::default().with_segment_size_bytes(MIN_SEGMENT_SIZE_BYTES)
}

/// Entry `n` of a mixed workload: ownership moving between three owners
/// over 40 ranges (epochs wrap around, so some transitions are fenced),
/// members admitted and removed, and leader records (terms wrap around too,
/// so some are refused).
fn mixed_entry(n: u64) -> ControlPlaneEntry {
    let owner = voter(&format!("CN=owner-{}", n % 3));
    match n % 7 {
        0 => ControlPlaneEntry::MembershipChange(MembershipChange::Admit(owner)),
        1 => ControlPlaneEntry::MembershipChange(MembershipChange::Remove(owner)),
        2 => ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm((n / 5) % 20 + 1),
            leader: owner,
        },
        _ => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: format!("range-{}/{}", n % 5, "x".repeat((n % 40) as usize)),
            new_owner: owner,
            ownership_epoch: (n / 3) % 50,
        }),
    }
}

/// How many of `names` are segment files.
fn segment_files_in(names: &[String]) -> usize {
    names.iter().filter(|n| n.starts_with("segment-")).count()
}

/// Appends entries `from..to` of the mixed workload in batches of 17.
fn append_mixed<S: Storage>(node: &mut DurableControlPlane<S>, from: u64, to: u64) {
    let entries: Vec<_> = (from..to).map(mixed_entry).collect();
    for batch in entries.chunks(17) {
        node.try_append_batch(batch).unwrap();
    }
}

#[test]
fn open_rebuilds_catalog_over_many_mapped_segments() {
    // Goal: the rebuild at open on real (memory-mapped) files applies every
    // committed entry of every segment, in order, with and without a
    // snapshot ending inside a segment. Method: 600 mixed entries in 4 KiB
    // segments; compare the reopened catalog with the one before closing;
    // then compact keeping 250 entries (a snapshot, the segments after it
    // kept), append 300 more, and compare again.
    let dir = tempfile::tempdir().unwrap();
    let segment_files = || {
        segment_files_in(
            &std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        )
    };
    let open = || DurableControlPlane::open(dir.path(), voter("CN=node"), small_segments());
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=node"), small_segments()).unwrap();
    append_mixed(&mut node, 0, 600);
    let mut node = open_after_close(node, &segment_files, &open);
    let report = node.compact(250).unwrap();
    assert!(report.snapshot_index_end.0 == 600 && report.log_start.0 == 350);
    append_mixed(&mut node, 600, 900);
    let node = open_after_close(node, &segment_files, &open);
    assert_eq!(node.applied_end(), ControlPlaneIndex(900));
}

#[test]
fn open_rebuilds_catalog_from_fresh_copies_on_the_simulated_disk() {
    // Goal: the rebuild also applies everything when the storage hands back
    // fresh copies of the segments (the simulated disk never maps), the path
    // on which every checksum is verified again. Method: as above, on a
    // simulated disk, reopening from the same disk.
    let disk = SimDisk::new();
    let segment_files = || {
        let entries = disk.list().unwrap();
        let names: Vec<_> = entries
            .iter()
            .filter_map(|e| e.name.to_str())
            .map(String::from)
            .collect();
        segment_files_in(&names)
    };
    let open =
        || DurableControlPlane::open_with_storage(disk.clone(), voter("CN=node"), small_segments());
    let mut node =
        DurableControlPlane::create_with_storage(disk.clone(), voter("CN=node"), small_segments())
            .unwrap();
    append_mixed(&mut node, 0, 400);
    let mut node = open_after_close(node, &segment_files, &open);
    node.compact(150).unwrap();
    append_mixed(&mut node, 400, 600);
    let node = open_after_close(node, &segment_files, &open);
    assert_eq!(node.applied_end(), ControlPlaneIndex(600));
}

/// Closes `node` (whose log must span many segments) and reopens it with
/// `open`; the rebuilt catalog must equal the one it had, with every
/// committed entry applied.
fn open_after_close<S: Storage>(
    node: DurableControlPlane<S>,
    segment_files: &impl Fn() -> usize,
    open: &impl Fn() -> cpwal::Result<DurableControlPlane<S>>,
) -> DurableControlPlane<S> {
    let catalog = node.catalog().clone();
    let applied_end = node.applied_end();
    let segments = segment_files();
    assert!(segments >= 5, "the log spans many segments, not {segments}");
    drop(node);
    let reopened = open().unwrap();
    assert_eq!(reopened.catalog(), &catalog);
    assert_eq!(reopened.applied_end(), applied_end);
    assert_eq!(
        reopened.applied_end().0,
        reopened.last_index().map_or(0, |i| i.0 + 1)
    );
    reopened
}
