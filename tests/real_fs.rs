//! Power loss on real kernel file systems. Goal: what the simulated disk
//! proves holds on XFS and ext4 too, whose journals, writeback and `fsync`
//! are the real ones. Method: for each file system, an image on a loop
//! device is created and mounted; `cpwal crash-test --shutdown-fs` runs a
//! writer in a child process and, cycle after cycle, either kills it with
//! SIGKILL or shuts the file system down without flushing its log
//! (`xfs_io -x -c shutdown`, as xfstests simulates a crash), mounts it again
//! and checks every acknowledged vote and entry (G1–G5). A second pair of
//! tests shuts the file system down under eight threads appending through
//! a `SharedControlPlane` whose syncs overlap (group commit with two syncs
//! in flight, the second on a second file description of the tail), mounts
//! it again and checks every acknowledged entry at its index.
//!
//! Needs root, loop devices, `mount`, `mkfs.xfs`/`mkfs.ext4` and `xfs_io`
//! (Debian's xfsprogs, which `.ci/run` installs); where any is missing the
//! test says so on stderr and passes without running, unless
//! `CPWAL_REQUIRE_MOUNT_TESTS` is set (CI sets it): then it fails. Seconds per file
//! system: `CPWAL_REAL_FS_SECONDS` (default 6).

#[path = "support/binary.rs"]
mod binary;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane,
    MembershipChange, Options, SharedControlPlane,
};

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite(mkfs: &str) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if binary::text(&uid.stdout).trim() != "0" {
        return Some("not root (mounting needs root)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no loop devices (/dev/loop-control)".into());
    }
    for tool in [mkfs, "xfs_io", "mount", "umount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` not found (install xfsprogs / e2fsprogs)"));
        }
    }
    None
}

/// A file-system image mounted on a loop device; unmounted when dropped,
/// even when the test fails.
struct Mounted {
    mountpoint: PathBuf,
    image: PathBuf,
    _root: tempfile::TempDir,
}

impl Mounted {
    /// Makes an image of `megabytes` with `mkfs` and mounts it, or says why
    /// it could not.
    fn new(mkfs: &[&str], megabytes: u64) -> Result<Self, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = root.path().join("image");
        let mountpoint = root.path().join("mnt");
        std::fs::create_dir(&mountpoint).map_err(|e| e.to_string())?;
        let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(megabytes << 20).map_err(|e| e.to_string())?;
        run(mkfs[0], &[&mkfs[1..], &[binary::arg(&image)]].concat())?;
        run(
            "mount",
            &["-o", "loop", binary::arg(&image), binary::arg(&mountpoint)],
        )?;
        Ok(Self {
            mountpoint,
            image,
            _root: root,
        })
    }

    /// Shuts the file system down without flushing its log: everything not
    /// yet durable is lost, as in a power cut, and every later call fails.
    fn shut_down(&self) -> Result<(), String> {
        run(
            "xfs_io",
            &["-x", "-c", "shutdown", binary::arg(&self.mountpoint)],
        )
    }

    /// Unmounts and mounts the image again (which replays its journal).
    fn remount(&self) -> Result<(), String> {
        run("umount", &[binary::arg(&self.mountpoint)])?;
        let (image, mountpoint) = (binary::arg(&self.image), binary::arg(&self.mountpoint));
        run("mount", &["-o", "loop", image, mountpoint])
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A shut-down file system may still be mounted; lazily if busy.
        if run("umount", &[binary::arg(&self.mountpoint)]).is_err() {
            let _ = run("umount", &["-l", binary::arg(&self.mountpoint)]);
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            binary::text(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn seconds() -> String {
    std::env::var("CPWAL_REAL_FS_SECONDS").unwrap_or_else(|_| "6".into())
}

/// Runs the crash test with shutdowns on a fresh file system made by
/// `mkfs`; skips (saying why) where the machine cannot.
fn crash_test_with_shutdowns(name: &str, mkfs: &[&str], megabytes: u64, seed: u64) {
    let Some(mounted) = mount_or_skip(name, mkfs, megabytes) else {
        return;
    };
    let data = mounted.mountpoint.join("data");
    let seed = seed.to_string();
    let seconds = seconds();
    let output = binary::cpwal(&[
        "crash-test",
        "--dir",
        binary::arg(&data),
        "--shutdown-fs",
        binary::arg(&mounted.mountpoint),
        "--seconds",
        &seconds,
        "--seed",
        &seed,
    ]);
    let stdout = binary::text(&output.stdout);
    eprintln!("real_fs {name}:\n{stdout}");
    assert!(
        output.status.success(),
        "crash-test on {name} failed ({}):\n{stdout}\n{}",
        output.status,
        binary::text(&output.stderr)
    );
    assert!(stdout.contains("violations: 0"), "{stdout}");
    let shutdowns = shutdown_count(&stdout).unwrap_or(0);
    assert!(shutdowns > 0, "no shutdown happened on {name}:\n{stdout}");
}

/// How many cycles were file-system shutdowns, from the summary line
/// `cycles: N (...); M of them file-system shutdowns ...`.
fn shutdown_count(summary: &str) -> Option<u64> {
    let line = summary.lines().find(|l| l.starts_with("cycles: "))?;
    let (_, after) = line.split_once("); ")?;
    after.split(' ').next()?.parse().ok()
}

#[test]
fn xfs_shutdowns_and_kills_keep_every_acknowledged_vote_and_entry() {
    // XFS needs 300 MB at least; the image file is sparse.
    crash_test_with_shutdowns("xfs", &["mkfs.xfs", "-q", "-f"], 320, 11);
}

#[test]
fn ext4_shutdowns_and_kills_keep_every_acknowledged_vote_and_entry() {
    crash_test_with_shutdowns("ext4", &["mkfs.ext4", "-q", "-F"], 64, 12);
}

/// A fresh image of `megabytes` made by `mkfs` and mounted, or `None` (the
/// reason said on stderr) where the machine cannot; a failure instead when
/// `CPWAL_REQUIRE_MOUNT_TESTS` is set (as CI sets it).
fn mount_or_skip(name: &str, mkfs: &[&str], megabytes: u64) -> Option<Mounted> {
    let mounted = match missing_prerequisite(mkfs[0]) {
        Some(reason) => Err(reason),
        None => Mounted::new(mkfs, megabytes)
            .map_err(|reason| format!("cannot make a loop-mounted {name}: {reason}")),
    };
    match mounted {
        Ok(mounted) => Some(mounted),
        Err(reason) if std::env::var_os("CPWAL_REQUIRE_MOUNT_TESTS").is_some() => {
            panic!("real_fs {name}: {reason}, and CPWAL_REQUIRE_MOUNT_TESTS is set")
        }
        Err(reason) => {
            eprintln!("real_fs {name}: SKIPPED: {reason}");
            None
        }
    }
}

/// The entry writer `thread` appends as its `n`th in `round`: distinct.
fn group_commit_entry(round: usize, thread: usize, n: u64) -> ControlPlaneEntry {
    let subject = format!("CN=r{round}-t{thread}-n{n}");
    let member = ClusterVoterIdentity::from_certificate_subject(&subject).unwrap();
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

/// Rounds of: eight threads append through one `SharedControlPlane` (small
/// segments, so rollovers happen under load), the file system is shut down
/// under them after `RUN_BEFORE_SHUTDOWN`, mounted again, and the node
/// reopened: every entry acknowledged in any round so far must be at the
/// index its append returned. Rounds alternate a second sync at once
/// (`second_sync_after` zero: syncs overlap whenever a writer arrives
/// during one) and the default threshold.
fn group_commit_shutdowns(name: &str, mkfs: &[&str], megabytes: u64) {
    const RUN_BEFORE_SHUTDOWN: Duration = Duration::from_millis(400);
    const WRITERS: usize = 8;
    let Some(mounted) = mount_or_skip(name, mkfs, megabytes) else {
        return;
    };
    let data = mounted.mountpoint.join("data");
    let identity = || ClusterVoterIdentity::from_certificate_subject("CN=node-a").unwrap();
    let mut acknowledged: Vec<(ControlPlaneIndex, ControlPlaneEntry)> = Vec::new();
    for round in 0..6 {
        let after = if round % 2 == 0 {
            Duration::ZERO
        } else {
            Options::default().second_sync_after
        };
        let options = Options::default()
            .with_segment_size_bytes(1 << 16)
            .with_second_sync_after(after);
        let node = if round == 0 {
            DurableControlPlane::create(&data, identity(), options)
        } else {
            DurableControlPlane::open(&data, identity(), options)
        };
        let shared = SharedControlPlane::new(node.unwrap());
        let acked_now = Mutex::new(Vec::new());
        let stopped = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for thread in 0..WRITERS {
                let (shared, acked_now, stopped) = (&shared, &acked_now, &stopped);
                scope.spawn(move || {
                    for n in 0.. {
                        let entry = group_commit_entry(round, thread, n);
                        match shared.try_append(&entry) {
                            Ok(appended) => acked_now.lock().unwrap().push((appended.index, entry)),
                            Err(_) => break,
                        }
                        if stopped.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                });
            }
            std::thread::sleep(RUN_BEFORE_SHUTDOWN);
            mounted.shut_down().unwrap();
            stopped.store(true, Ordering::Relaxed);
        });
        // The writers may all have been waiting on one sync that the
        // shutdown let finish, and stopped without touching the disk again:
        // an append after the shutdown must fail, whoever makes it.
        let after = shared.try_append(&group_commit_entry(round, WRITERS, 0));
        assert!(
            after.is_err() && shared.failure().is_some(),
            "{name} round {round}: the shutdown went unnoticed"
        );
        drop(shared);
        let acked_now = acked_now.into_inner().unwrap();
        assert!(
            acked_now.len() >= WRITERS,
            "{name} round {round}: only {} appends acknowledged",
            acked_now.len()
        );
        acknowledged.extend(acked_now);
        mounted.remount().unwrap();
        let node = DurableControlPlane::open(&data, identity(), Options::default()).unwrap();
        for (index, entry) in &acknowledged {
            let found = node.read(*index).map(|e| e.entry);
            assert_eq!(
                found.as_ref().ok(),
                Some(entry),
                "{name} round {round}: acknowledged entry {index:?} lost or changed in a shutdown \
                 (log ends at {:?})",
                node.last_index()
            );
        }
        eprintln!(
            "real_fs {name} group commit round {round} (second sync after {after:?}): \
             {} acknowledged in all, log ends at {:?}",
            acknowledged.len(),
            node.last_index()
        );
    }
}

#[test]
fn xfs_shutdown_under_overlapping_syncs_keeps_every_acknowledged_entry() {
    group_commit_shutdowns("xfs", &["mkfs.xfs", "-q", "-f"], 320);
}

#[test]
fn ext4_shutdown_under_overlapping_syncs_keeps_every_acknowledged_entry() {
    group_commit_shutdowns("ext4", &["mkfs.ext4", "-q", "-F"], 64);
}
