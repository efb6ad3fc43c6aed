//! `StorageFile::write_back` on a real block device: when it returns, the
//! range it was given is on the device (the device counts its sectors as
//! written), and the rest of the file's dirty pages are not. The spare
//! segment's preparation relies on both: each step leaves the page cache
//! before the next is written, and no step turns into a whole-file sync.
//!
//! A loop-mounted ext4 image, so that the device's counters see this
//! test's writes alone (see `support/mounts.rs` for what mounting needs
//! and when the test skips). Not pinned: that the call *waits* for its
//! writes (`WAIT_AFTER`); on this device they complete before the counter
//! is read either way.

#[path = "support/mounts.rs"]
mod mounts;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cpwal::io::{LockMode, OsStorage, Storage, StorageFile};
use mounts::{ext4, mount_or_skip};

const MIB: u64 = 1 << 20;

/// The bytes written so far to the block device that holds `path`, from its
/// `stat` in sysfs (the seventh field counts 512-byte sectors written).
fn bytes_written_to_device(path: &Path) -> u64 {
    let device = std::fs::metadata(path).unwrap().dev();
    let major = ((device >> 8) & 0xfff) | ((device >> 32) & !0xfff);
    let minor = (device & 0xff) | ((device >> 12) & !0xff);
    let stat_path = format!("/sys/dev/block/{major}:{minor}/stat");
    let stat = std::fs::read_to_string(&stat_path).unwrap();
    let sectors: u64 = stat.split_whitespace().nth(6).unwrap().parse().unwrap();
    sectors * 512
}

#[test]
fn write_back_puts_its_range_on_the_device_and_nothing_more() {
    // Method: dirty 4 MiB of zeros (the spare's own allocation), write the
    // second MiB back, and read the device's counter around the call. A
    // write-back that wrote nothing (no WRITE flag), or that synced the
    // whole file instead (4 MiB, and the journal), fails.
    let Some(mount) = mount_or_skip("ext4", ext4(64)) else {
        return;
    };
    let storage = OsStorage::open(mount.root(), LockMode::Exclusive).unwrap();
    let file = storage.create("spare").unwrap();
    file.allocate(4 * MIB).unwrap();
    let before = bytes_written_to_device(mount.root());
    file.write_back(MIB, MIB).unwrap();
    let written = bytes_written_to_device(mount.root()) - before;
    assert!(written >= MIB, "only {written} bytes reached the device");
    assert!(written < 2 * MIB, "{written} bytes: more than the range");
    let before = bytes_written_to_device(mount.root());
    file.write_back(MIB, MIB).unwrap();
    let again = bytes_written_to_device(mount.root()) - before;
    assert!(again < MIB, "{again} bytes: the range was clean already");
}
