//! Power loss on a real kernel file system, for `cpwal crash-test
//! --shutdown-fs`: the file system under the data directory is shut down
//! without flushing its log (`xfs_io -x -c shutdown`, the
//! `XFS_IOC_GOINGDOWN` ioctl with `NOLOGFLUSH`, which ext4 implements too),
//! so everything not yet durable is lost as a power cut would lose it and
//! every later call fails with EIO; then it is unmounted and mounted again,
//! which replays its journal. This is how xfstests' shutdown tests simulate
//! a crash without a reboot.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::failure::CliError;

/// A mounted file system the crash test may shut down and mount again.
#[derive(Debug, Clone)]
pub struct MountedFileSystem {
    /// Where it is mounted (the root of the mount).
    pub mountpoint: PathBuf,
    /// What is mounted there (a block device, e.g. a loop device).
    source: String,
    /// The image a loop device was set up for by `mount -o loop`: it is
    /// detached at unmount (autoclear), so mounting again goes through the
    /// image, not the device.
    loop_image: Option<String>,
    /// Its type, e.g. `xfs` or `ext4`.
    fstype: String,
}

impl MountedFileSystem {
    /// The file system mounted at `mountpoint` (which must be the root of a
    /// mount), from `/proc/self/mountinfo`.
    pub fn at(mountpoint: &Path) -> Result<Self, CliError> {
        let mountpoint = std::fs::canonicalize(mountpoint)
            .map_err(|e| CliError::io(format!("resolve {}", mountpoint.display()), e))?;
        let table = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CliError::io("read /proc/self/mountinfo", e))?;
        let wanted = mountpoint.to_string_lossy().into_owned();
        // The last line for a mount point is the mount that is visible there.
        let found = table.lines().rev().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|&f| f == "-")?;
            if fields.get(4) != Some(&wanted.as_str()) {
                return None;
            }
            let source = fields.get(separator + 2)?.to_string();
            Some(Self {
                mountpoint: mountpoint.clone(),
                fstype: fields.get(separator + 1)?.to_string(),
                loop_image: autoclear_loop_image(&source),
                source,
            })
        });
        found.ok_or_else(|| CliError::NotAMountPoint(mountpoint.clone()))
    }

    /// Shuts the file system down without flushing its log: writes and
    /// metadata changes not yet durable are lost, and every later call on
    /// it fails.
    pub fn shut_down(&self) -> Result<(), CliError> {
        let mountpoint = self.mountpoint.to_string_lossy();
        run("xfs_io", &["-x", "-c", "shutdown", &mountpoint])
    }

    /// Unmounts it and mounts it again, as after a reboot: its journal is
    /// replayed and what was durable before the shutdown reappears.
    pub fn remount(&self) -> Result<(), CliError> {
        let mountpoint = self.mountpoint.to_string_lossy();
        run("umount", &[&mountpoint])?;
        match &self.loop_image {
            Some(image) => run(
                "mount",
                &["-t", &self.fstype, "-o", "loop", image, &mountpoint],
            ),
            None => run("mount", &["-t", &self.fstype, &self.source, &mountpoint]),
        }
    }

    /// Its type and what is mounted, for the run's first line.
    pub fn describe(&self) -> String {
        format!(
            "{} on {} at {}",
            self.fstype,
            self.source,
            self.mountpoint.display()
        )
    }
}

/// The backing file of loop device `source` when the device detaches itself
/// at unmount (as `mount -o loop` sets it up), else `None`.
fn autoclear_loop_image(source: &str) -> Option<String> {
    let device = source.strip_prefix("/dev/")?;
    if !device.starts_with("loop") {
        return None;
    }
    let sysfs = Path::new("/sys/block").join(device).join("loop");
    let autoclear = std::fs::read_to_string(sysfs.join("autoclear")).ok()?;
    if autoclear.trim() != "1" {
        return None;
    }
    let image = std::fs::read_to_string(sysfs.join("backing_file")).ok()?;
    Some(image.trim().to_owned())
}

/// Runs `program args...` and fails with its stderr if it fails.
fn run(program: &str, args: &[&str]) -> Result<(), CliError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| CliError::io(format!("run {program}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(CliError::CommandFailed {
        command: format!("{program} {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}
