//! Who may read and change a node's files: cpwal creates every directory
//! 0700 and every file 0600 whatever the process umask, and reports (never
//! refuses) an existing directory whose permissions are wider.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, MembershipChange, Options,
    WidePermission,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(16 << 10)
}

fn admit(n: u64) -> ControlPlaneEntry {
    let member = voter(&format!("CN=member-{n:06},OU={}", "p".repeat(100)));
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

fn mode_of(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().permissions().mode() & 0o7777
}

/// The environment variables that make this test binary run
/// [`create_node_under_umask`] instead of its tests.
const CHILD_DIRECTORY: &str = "CPWAL_PERMISSIONS_CHILD_DIRECTORY";
const CHILD_UMASK: &str = "CPWAL_PERMISSIONS_CHILD_UMASK";

/// In the child process: set `umask`, then create a node under two
/// directories that do not exist yet, with segments, a snapshot, the spare
/// segment being prepared and the lock held; the child then exits without
/// closing, so the spare stays behind for the parent to look at.
fn create_node_under_umask(directory: &Path, umask: libc::mode_t) -> ! {
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(umask) };
    let mut node = DurableControlPlane::create(directory, voter("CN=a"), options()).unwrap();
    let mut n = 0;
    while n < 400 || !directory.join("segment-spare.tmp").exists() {
        node.try_append(&admit(n)).unwrap();
        n += 1;
        if n == 200 {
            node.compact(50).unwrap();
        }
        assert!(n < 100_000, "no spare segment was ever prepared");
    }
    std::process::exit(0);
}

#[test]
fn create_under_any_umask_leaves_nothing_readable_by_others() {
    // Goal: a node created under the most permissive umask (000) has every
    // directory cpwal created (the data directory and its missing parent)
    // at 0700 and every file (hard state, segments, the spare segment, the
    // snapshot, the lock) at 0600; before, they were 0777 and 0666. Under
    // an odd umask (0277, which would strip the owner's write bit) they are
    // exactly the same: the mode is set, not left to the umask. Method: run
    // the node in a child process per umask (umask is process-wide), then
    // check the mode of everything it left.
    if let Some(directory) = std::env::var_os(CHILD_DIRECTORY) {
        let umask = std::env::var(CHILD_UMASK).unwrap();
        let umask = libc::mode_t::from_str_radix(&umask, 8).unwrap();
        create_node_under_umask(Path::new(&directory), umask);
    }
    for umask in ["000", "277"] {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("created-parent");
        let directory = parent.join("node");
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "create_under_any_umask_leaves_nothing_readable_by_others",
            ])
            .env(CHILD_DIRECTORY, &directory)
            .env(CHILD_UMASK, umask)
            .status()
            .unwrap();
        assert!(status.success(), "umask {umask}");
        assert_private(&parent, &directory, umask);
    }
}

/// Asserts that `parent` and `directory` are 0700 and that `directory`
/// holds each kind of cpwal file, every one 0600.
fn assert_private(parent: &Path, directory: &Path, umask: &str) {
    assert_eq!(
        mode_of(parent),
        0o700,
        "umask {umask}: {}",
        parent.display()
    );
    assert_eq!(
        mode_of(directory),
        0o700,
        "umask {umask}: {}",
        directory.display()
    );
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode_of(&path), 0o600, "umask {umask}: {}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        kinds.push(name.split('-').next().unwrap().to_owned());
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["LOCK", "hardstate", "segment", "snapshot"]);
    assert!(directory.join("segment-spare.tmp").exists());
}

fn wide(path: PathBuf, mode: u32, private_mode: u32) -> WidePermission {
    WidePermission {
        path,
        mode,
        private_mode,
    }
}

#[test]
fn open_reports_wider_permissions_without_refusing() {
    // Goal: a directory made world-readable by hand, and a file in it made
    // group-writable, are reported in the recovery report with their modes
    // (sorted by path), and the node opens and works anyway (as etcd does).
    // A foreign file's mode is not cpwal's business and is not reported.
    // Method: close a node, chmod, reopen, append.
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("node");
    let node = DurableControlPlane::create(&directory, voter("CN=a"), options()).unwrap();
    assert!(node.recovery_report().wide_permissions.is_empty());
    drop(node);
    let hard_state = directory.join("hardstate");
    let set_mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(&directory, 0o755);
    set_mode(&hard_state, 0o660);
    let notes = directory.join("notes.txt");
    std::fs::write(&notes, b"world-readable, but not cpwal's").unwrap();
    set_mode(&notes, 0o644);
    let mut node = DurableControlPlane::open(&directory, voter("CN=a"), options()).unwrap();
    assert_eq!(
        node.recovery_report().wide_permissions,
        vec![
            wide(directory.clone(), 0o755, 0o700),
            wide(hard_state, 0o660, 0o600)
        ]
    );
    node.try_append(&admit(0)).unwrap();
}
