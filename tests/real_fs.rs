//! Power loss on real kernel file systems. Goal: what the simulated disk
//! proves holds on XFS and ext4 too, whose journals, writeback and `fsync`
//! are the real ones. Method: for each file system, an image on a loop
//! device is created and mounted; `cpwal crash-test --shutdown-fs` runs a
//! writer in a child process and, cycle after cycle, either kills it with
//! SIGKILL or shuts the file system down without flushing its log
//! (`xfs_io -x -c shutdown`, as xfstests simulates a crash), mounts it again
//! and checks every acknowledged vote and entry (G1–G5).
//!
//! Needs root, loop devices, `mount`, `mkfs.xfs`/`mkfs.ext4` and `xfs_io`
//! (Debian's xfsprogs, which `.ci/run` installs); where any is missing the
//! test says so on stderr and passes without running. Seconds per file
//! system: `CPWAL_REAL_FS_SECONDS` (default 6).

#[path = "support/binary.rs"]
mod binary;

use std::path::{Path, PathBuf};
use std::process::Command;

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
            _root: root,
        })
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
    if let Some(reason) = missing_prerequisite(mkfs[0]) {
        eprintln!("real_fs {name}: SKIPPED: {reason}");
        return;
    }
    let mounted = match Mounted::new(mkfs, megabytes) {
        Ok(mounted) => mounted,
        Err(reason) => {
            eprintln!("real_fs {name}: SKIPPED: cannot make a loop-mounted {name}: {reason}");
            return;
        }
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
