//! A full disk on real file systems: a small tmpfs and a loop-mounted ext4
//! image, filled to the last block.
//!
//! Each creation cpwal makes (a new node's hard state, a rollover's spare
//! segment, a compaction's snapshot) must fail with the typed
//! `Error::NoSpace` — not `Io … Success (os error 0)`, which is what `fs2`
//! 0.4's `allocate` reported, since it read `errno` after
//! `posix_fallocate`, which returns its error instead — and must remove the
//! temporary file it was filling. Nothing acknowledged may be lost, and once
//! space is freed, a reopened node works again.
//!
//! Mounting needs root and, for ext4, loop devices and `mkfs.ext4`. Where
//! they are missing each test says so on stderr and passes, so `cargo test`
//! passes on any machine; CI sets `CPWAL_REQUIRE_MOUNT_TESTS=1`, which turns
//! a skip into a failure. Every mount is undone by a guard, even when the
//! test fails.

#[path = "support/mounts.rs"]
mod mounts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Mutex;
use std::time::Duration;

use mounts::{ext4, mount_or_skip, run, tmpfs};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane, Error,
    MembershipChange, Options, SharedControlPlane,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(256 << 10)
}

/// A distinct entry of about 250 bytes for index `n`.
fn entry(n: u64) -> ControlPlaneEntry {
    let member = voter(&format!("CN=member-{n:08},OU={}", "x".repeat(200)));
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

/// Fills the file system holding `root` with 256 KiB files until a write
/// fails for lack of space, adding them (the last one partial) to `fillers`.
fn fill(root: &Path, fillers: &mut Vec<PathBuf>) {
    let chunk = vec![0x5au8; 256 << 10];
    loop {
        let path = root.join(format!("filler-{:05}", fillers.len()));
        let mut file = std::fs::File::create(&path).unwrap();
        fillers.push(path);
        let written = file.write_all(&chunk).and_then(|()| file.sync_all());
        match written {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(28) => return,
            Err(e) => panic!("filling {}: {e}", root.display()),
        }
    }
}

/// Removes `count` fillers (all when `None`) and syncs the file system, so
/// that ext4 can hand out the freed blocks (it keeps them until the journal
/// commits the removal).
fn free(root: &Path, fillers: &mut Vec<PathBuf>, count: Option<usize>) {
    let keep = count.map_or(0, |c| fillers.len().saturating_sub(c));
    for path in fillers.drain(keep..) {
        std::fs::remove_file(path).unwrap();
    }
    run(Command::new("sync").arg("-f").arg(root)).unwrap();
}

/// Names in `directory` that end in `.tmp`.
fn temporaries(directory: &Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

fn assert_no_space(result: cpwal::Result<impl std::fmt::Debug>, what: &str) {
    match result {
        Err(Error::NoSpace { .. }) => {}
        other => panic!("{what}: expected NoSpace, got {other:?}"),
    }
}

/// Appends batches of 16 until one fails; returns how many entries were
/// acknowledged and the error. Entries are `entry(first..)`.
fn append_until_failure(node: &mut DurableControlPlane, first: u64) -> (u64, Error) {
    let mut next = first;
    loop {
        let batch: Vec<_> = (next..next + 16).map(entry).collect();
        match node.try_append_batch(&batch) {
            Ok(appended) => {
                assert_eq!(appended.first_index, ControlPlaneIndex(next));
                assert_eq!(appended.outcomes.len(), 16);
                next += 16;
            }
            Err(error) => return (next - first, error),
        }
        assert!(next < 1_000_000, "the disk never filled");
    }
}

/// Asserts the node holds `entry(0..acknowledged)` at indexes 0.. (entries
/// after them, from a batch that failed, are allowed; none was promised).
fn assert_holds(node: &DurableControlPlane, acknowledged: u64) {
    for n in 0..acknowledged {
        let read = node.read(ControlPlaneIndex(n)).unwrap();
        assert_eq!(read.entry, entry(n), "index {n}");
    }
}

/// The whole scenario on the file system mounted at `root`.
fn full_disk_scenario(root: &Path) {
    let node_dir = root.join("node");
    let create = || DurableControlPlane::create(&node_dir, voter("CN=a"), options());
    let open = || DurableControlPlane::open(&node_dir, voter("CN=a"), options());

    // 1. Creating a node on a full disk.
    let mut fillers = Vec::new();
    fill(root, &mut fillers);
    assert_no_space(create().map(drop), "creating a node on a full disk");
    if node_dir.exists() {
        assert_eq!(temporaries(&node_dir), Vec::<String>::new());
    }
    free(root, &mut fillers, None);

    // 2. Rollovers until the disk is full: room for about three segments.
    // The failed creation may have made the hard state durable before the
    // first segment ran out of space: then the node exists, and is opened.
    let mut node = match create() {
        Err(Error::NodeExists { .. }) => open().unwrap(),
        created => created.unwrap(),
    };
    fill(root, &mut fillers);
    free(root, &mut fillers, Some(3));
    let (acknowledged, error) = append_until_failure(&mut node, 0);
    assert!(acknowledged > 0, "nothing fit");
    assert_no_space(Err::<(), _>(error), "a rollover on a full disk");
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());
    drop(node);
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());

    // 3. Reopened on the still-full disk: every acknowledged entry is there,
    //    and a compaction's snapshot fails cleanly too.
    let mut node = open().unwrap();
    assert_holds(&node, acknowledged);
    fill(root, &mut fillers);
    assert_no_space(node.compact(0), "a compaction on a full disk");
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());
    drop(node);

    // 4. Space freed: the reopened node appends through more rollovers and
    //    compacts; a last reopen finds everything.
    free(root, &mut fillers, None);
    let mut node = open().unwrap();
    assert_holds(&node, acknowledged);
    let start = node.last_index().map_or(0, |i| i.0 + 1);
    let batches = 3 * (256 << 10) / (16 * 300);
    for b in 0..batches {
        let first = start + b * 16;
        let batch: Vec<_> = (first..first + 16).map(entry).collect();
        node.try_append_batch(&batch).unwrap();
    }
    node.compact(1_000_000).unwrap();
    let end = node.last_index().unwrap().0 + 1;
    drop(node);
    let node = open().unwrap();
    assert_holds(&node, acknowledged);
    assert_eq!(node.last_index().unwrap().0 + 1, end);
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());
}

#[test]
fn full_tmpfs_is_no_space_and_loses_nothing() {
    // Goal: on a real 16 MiB tmpfs, every creation on a full disk is a
    // typed NoSpace that leaves no temporary file, nothing acknowledged is
    // lost, and the node works again after space is freed. Method: the
    // scenario above, filling the file system with files between steps.
    let Some(mount) = mount_or_skip("a tmpfs", tmpfs(16)) else {
        return;
    };
    full_disk_scenario(mount.root());
}

#[test]
fn full_ext4_is_no_space_and_loses_nothing() {
    // Goal: the same on a real ext4 file system (a 32 MiB image on a loop
    // device, no reserved blocks), whose allocator and journal differ from
    // tmpfs's. Method: the scenario above.
    let Some(mount) = mount_or_skip("an ext4 image on a loop device", ext4(32)) else {
        return;
    };
    full_disk_scenario(mount.root());
}

/// A distinct entry of about 250 bytes, the `n`th of writer `thread`.
fn writer_entry(thread: usize, n: u64) -> ControlPlaneEntry {
    let subject = format!("CN=writer-{thread}-{n:08},OU={}", "y".repeat(200));
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&subject)))
}

/// Eight threads append through one `SharedControlPlane` until each gets an
/// error; returns what was acknowledged, at which index, and the errors.
fn shared_appends_until_failure(
    node: DurableControlPlane,
) -> (Vec<(ControlPlaneIndex, ControlPlaneEntry)>, Vec<Error>) {
    let shared = SharedControlPlane::new(node);
    let acknowledged = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (shared, acknowledged, errors) = (&shared, &acknowledged, &errors);
            scope.spawn(move || {
                for n in 0..1_000_000 {
                    let entry = writer_entry(thread, n);
                    match shared.try_append(&entry) {
                        Ok(appended) => acknowledged.lock().unwrap().push((appended.index, entry)),
                        Err(error) => return errors.lock().unwrap().push(error),
                    }
                }
                panic!("writer {thread}: the disk never filled");
            });
        }
    });
    (
        acknowledged.into_inner().unwrap(),
        errors.into_inner().unwrap(),
    )
}

/// Asserts `node` holds every `(index, entry)` of `acknowledged`.
fn assert_holds_at(
    node: &DurableControlPlane,
    acknowledged: &[(ControlPlaneIndex, ControlPlaneEntry)],
) {
    for (index, entry) in acknowledged {
        let read = node.read(*index).map(|r| r.entry);
        assert_eq!(read.as_ref().ok(), Some(entry), "index {index:?}");
    }
}

/// Group commit filling the disk at `root`: eight writers whose syncs
/// overlap (`second_sync_after` zero), room for about three segments. Each
/// writer stops at its first error, which must say the disk is full
/// (`NoSpace`, or `Failed` when another writer's failure stopped the node
/// first); no temporary file is left; a reopen on the still-full disk and,
/// after space is freed, a reopen that appends again find every
/// acknowledged entry at its index.
fn full_disk_under_group_commit(root: &Path) {
    let node_dir = root.join("node");
    let options = options().with_second_sync_after(Duration::ZERO);
    let node = DurableControlPlane::create(&node_dir, voter("CN=a"), options.clone()).unwrap();
    let mut fillers = Vec::new();
    fill(root, &mut fillers);
    free(root, &mut fillers, Some(3));
    let (mut acknowledged, errors) = shared_appends_until_failure(node);
    assert!(!acknowledged.is_empty(), "nothing fit");
    for error in &errors {
        assert!(
            matches!(error, Error::NoSpace { .. } | Error::Failed { .. }),
            "a writer on a full disk: {error:?}"
        );
    }
    assert!(
        errors.iter().any(|e| matches!(e, Error::NoSpace { .. })),
        "no writer was told the disk is full: {errors:?}"
    );
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());
    let open = || DurableControlPlane::open(&node_dir, voter("CN=a"), options.clone());
    assert_holds_at(&open().unwrap(), &acknowledged);

    free(root, &mut fillers, None);
    let node = open().unwrap();
    let shared = SharedControlPlane::new(node);
    for n in 0..64 {
        let entry = writer_entry(99, n);
        acknowledged.push((shared.try_append(&entry).unwrap().index, entry));
    }
    drop(shared);
    assert_holds_at(&open().unwrap(), &acknowledged);
    assert_eq!(temporaries(&node_dir), Vec::<String>::new());
}

#[test]
fn full_tmpfs_under_group_commit_loses_nothing() {
    // Goal: concurrent writers with overlapping syncs on a full 16 MiB
    // tmpfs get typed errors, and nothing acknowledged is lost. Method:
    // the group-commit scenario above.
    let Some(mount) = mount_or_skip("a tmpfs", tmpfs(16)) else {
        return;
    };
    full_disk_under_group_commit(mount.root());
}

#[test]
fn full_ext4_under_group_commit_loses_nothing() {
    // Goal: the same on a real 32 MiB ext4 image. Method: as above.
    let Some(mount) = mount_or_skip("an ext4 image on a loop device", ext4(32)) else {
        return;
    };
    full_disk_under_group_commit(mount.root());
}
