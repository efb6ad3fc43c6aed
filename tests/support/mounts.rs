//! Real file systems mounted for a test: a tmpfs or a loop-mounted ext4
//! image on a temporary directory, undone by a guard even when the test
//! fails. Included by test files with `#[path = "support/mounts.rs"]`.
//!
//! Mounting needs root and, for ext4, loop devices and `mkfs.ext4`. Where
//! they are missing, [`mount_or_skip`] says so on stderr and the test
//! passes, so `cargo test` passes on any machine; CI sets
//! `CPWAL_REQUIRE_MOUNT_TESTS=1`, which turns a skip into a failure.
#![allow(dead_code)] // Each test file uses a different part.

use std::path::Path;
use std::process::Command;

/// A file system mounted on a temporary directory; unmounted on drop.
pub struct Mount {
    point: tempfile::TempDir,
    /// Holds the ext4 image file (the loop device detaches on unmount).
    _image: Option<tempfile::TempDir>,
}

impl Mount {
    pub fn root(&self) -> &Path {
        self.point.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.point.path()).status();
        if !matches!(unmounted, Ok(status) if status.success()) {
            // Busy (a handle leaked by a failing test): detach it lazily so
            // the mount does not outlive the test run.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.point.path())
                .status();
        }
    }
}

/// Runs `command`; `Err` carries what it printed when it failed.
pub fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{command:?}: {}", stderr.trim()))
}

/// A mounted tmpfs of `size_mib` MiB.
pub fn tmpfs(size_mib: u64) -> Result<Mount, String> {
    let point = tempfile::tempdir().map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size_mib}m,mode=0755"))
        .arg("tmpfs")
        .arg(point.path()))?;
    Ok(Mount {
        point,
        _image: None,
    })
}

/// A loop-mounted ext4 image of `size_mib` MiB, with no blocks reserved
/// for root (the tests run as root and must see the same limit), and its
/// inode tables and journal initialised by `mkfs` rather than by a kernel
/// thread after mounting, whose writes a test counting the device's could
/// mistake for its own.
pub fn ext4(size_mib: u64) -> Result<Mount, String> {
    let image_directory = tempfile::tempdir().map_err(|e| e.to_string())?;
    let image = image_directory.path().join("ext4.img");
    let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
    file.set_len(size_mib << 20).map_err(|e| e.to_string())?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .args(["-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(&image))?;
    let point = tempfile::tempdir().map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(point.path()))?;
    Ok(Mount {
        point,
        _image: Some(image_directory),
    })
}

/// The mount, or `None` (after saying why on stderr) where this machine
/// cannot mount; a failure when `CPWAL_REQUIRE_MOUNT_TESTS` is set.
pub fn mount_or_skip(what: &str, mount: Result<Mount, String>) -> Option<Mount> {
    match mount {
        Ok(mount) => Some(mount),
        Err(why) if std::env::var_os("CPWAL_REQUIRE_MOUNT_TESTS").is_some() => {
            panic!("cannot mount {what}, and CPWAL_REQUIRE_MOUNT_TESTS is set: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: cannot mount {what} here (needs root and loop devices): {why}");
            None
        }
    }
}
